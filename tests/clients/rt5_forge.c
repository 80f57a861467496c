/*
 * rt5_forge: a program that tries to make its leaks carry another image's name.
 *
 *   rt5_forge first NEXT OKHOST OKPORT HOST PORT
 *       one datagram to OKHOST:OKPORT (allowed: the supervisor now knows this image), then
 *       execs NEXT as `NEXT second ADDR BYTES HOST PORT`, passing where its AT_RANDOM bytes
 *       are and what they are
 *   rt5_forge first-thread NEXT OKHOST OKPORT HOST PORT
 *       the same, the exec made by a second thread (which takes the process id as its thread
 *       id: the one the main thread's datagram was reported under)
 *   rt5_forge second ADDR BYTES HOST PORT
 *       before any network call, maps a page at ADDR (the old image's stack, unmapped in this
 *       one) and writes BYTES there, as they were before the exec; then one datagram to
 *       HOST:PORT (a leak). Prints "second: pid=P tid=T" first.
 *   rt5_forge honest ADDR BYTES HOST PORT
 *       the same without writing the bytes (the control)
 *   rt5_forge erase HOST PORT
 *       one datagram to HOST:PORT (a leak), then finds its supervisor's report file (the
 *       argument after --report in /proc/PPID/cmdline) and blanks every line of it that
 *       reports a leak (spaces, the newline kept); prints "erase: N line(s)"
 *   rt5_forge nonblock HOST PORT
 *       makes its stdout and stderr (shared with its supervisor) non-blocking, fills them
 *       until they would block (pipes nobody reads yet), then one datagram to HOST:PORT (a
 *       leak); writes nothing more
 *   rt5_forge shutdown HOST PORT
 *       shuts down the sending side of its stdout and stderr (sockets it shares with its
 *       supervisor, as under systemd's journal), then one datagram to HOST:PORT (a leak); a
 *       refused shutdown is said on that fd ("shutdown 1: Socket operation on non-socket")
 *   rt5_forge glue HOST PORT
 *       writes half a line to stdout (no newline), then one datagram to HOST:PORT (a leak),
 *       then ends the line: with `--report -`, the leak's JSON line follows the half line
 *
 * Exits 0 when the datagram was refused with EPERM (printing "sendto: refused"), 1 when it
 * was sent or failed otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static int send_one(const char *host, const char *port, const char *what) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "bad host %s\n", host);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("socket");
        exit(2);
    }
    ssize_t n = sendto(fd, what, strlen(what), 0, (struct sockaddr *)&addr, sizeof addr);
    int err = errno;
    close(fd);
    if (n >= 0) {
        printf("sendto: sent\n");
        return 1;
    }
    printf("sendto: %s\n", err == EPERM ? "refused" : strerror(err));
    return err == EPERM ? 0 : 1;
}

static void hex(const unsigned char *b, size_t n, char *out) {
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static int unhex(const char *s, unsigned char *b, size_t n) {
    if (strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        b[i] = (unsigned char)v;
    }
    return 0;
}

static void *exec_next(void *arg) {
    char **next = arg;
    execv(next[0], next);
    perror("execv");
    exit(2);
}

/* The path after "--report" in the parent's command line, or NULL. */
static char *parents_report(void) {
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%d/cmdline", getppid());
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    for (size_t i = 0; i < n;) {
        size_t len = strlen(buf + i);
        if (strcmp(buf + i, "--report") == 0 && i + len + 1 < n)
            return strdup(buf + i + len + 1);
        i += len + 1;
    }
    return NULL;
}

static int erase_leaks(void) {
    char *report = parents_report();
    if (!report) {
        printf("erase: no report\n");
        return 0;
    }
    FILE *f = fopen(report, "r+");
    if (!f) {
        printf("erase: %s: %s\n", report, strerror(errno));
        return 0;
    }
    static char line[65536];
    int erased = 0;
    long at = 0;
    while (fgets(line, sizeof line, f)) {
        long next = ftell(f);
        if (strstr(line, "\"verdict\":\"leak\"")) {
            size_t len = strlen(line);
            memset(line, ' ', len - 1);
            fseek(f, at, SEEK_SET);
            fwrite(line, 1, len, f);
            fflush(f);
            fseek(f, next, SEEK_SET);
            erased++;
        }
        at = next;
    }
    fclose(f);
    printf("erase: %d line(s)\n", erased);
    return erased;
}

int main(int argc, char **argv) {
    if (argc == 7 && (strcmp(argv[1], "first") == 0 || strcmp(argv[1], "first-thread") == 0)) {
        const unsigned char *random = (const unsigned char *)getauxval(AT_RANDOM);
        if (!random) {
            fprintf(stderr, "no AT_RANDOM\n");
            return 2;
        }
        if (send_one(argv[3], argv[4], "first") != 1) {
            fprintf(stderr, "the allowed datagram was not sent\n");
            return 2;
        }
        static char addr[32], bytes[33];
        snprintf(addr, sizeof addr, "%lx", (unsigned long)(uintptr_t)random);
        hex(random, 16, bytes);
        fflush(stdout);
        static char *next[7];
        char *list[] = {argv[2], (char *)"second", addr, bytes, argv[5], argv[6], NULL};
        memcpy(next, list, sizeof list);
        if (strcmp(argv[1], "first-thread") == 0) {
            pthread_t t;
            if (pthread_create(&t, NULL, exec_next, next) != 0)
                return 2;
            pthread_join(t, NULL);
            return 2;
        }
        exec_next(next);
        return 2;
    }
    if (argc == 6 && (strcmp(argv[1], "second") == 0 || strcmp(argv[1], "honest") == 0)) {
        unsigned long addr = strtoul(argv[2], NULL, 16);
        unsigned char bytes[16];
        if (unhex(argv[3], bytes, sizeof bytes) != 0) {
            fprintf(stderr, "bad bytes\n");
            return 2;
        }
        if (strcmp(argv[1], "second") == 0) {
            long page = sysconf(_SC_PAGESIZE);
            unsigned long base = addr & ~(unsigned long)(page - 1);
            size_t len = (size_t)page * (addr + 16 > base + (unsigned long)page ? 2 : 1);
            void *p = mmap((void *)base, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                           -1, 0);
            if (p == MAP_FAILED || p != (void *)base) {
                /* This image's own mappings are there: exec again for another layout. */
                if (p != MAP_FAILED)
                    munmap(p, len);
                execv("/proc/self/exe", argv);
                perror("re-exec");
                return 2;
            }
            memcpy((void *)addr, bytes, sizeof bytes);
        }
        printf("second: pid=%d tid=%ld\n", getpid(), (long)syscall(SYS_gettid));
        fflush(stdout);
        return send_one(argv[4], argv[5], "second");
    }
    if (argc == 4 && strcmp(argv[1], "erase") == 0) {
        int rc = send_one(argv[2], argv[3], "erase");
        erase_leaks();
        return rc;
    }
    if (argc == 4 && strcmp(argv[1], "nonblock") == 0) {
        static char filler[4096];
        memset(filler, '.', sizeof filler);
        filler[sizeof filler - 1] = '\n';
        for (int fd = 1; fd <= 2; fd++) {
            if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
                return 2;
            while (write(fd, filler, sizeof filler) > 0)
                ;
            while (write(fd, filler, 1) > 0)
                ;
        }
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[3]))};
        if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1)
            return 2;
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        ssize_t n = sendto(fd, "nonblock", 8, 0, (struct sockaddr *)&addr, sizeof addr);
        return n < 0 && errno == EPERM ? 0 : 1;
    }
    if (argc == 4 && strcmp(argv[1], "shutdown") == 0) {
        /* Refused (ENOTSOCK) when the supervisor gave us pipes: say so, and leak all the same. */
        for (int fd = 1; fd <= 2; fd++)
            if (shutdown(fd, SHUT_WR) != 0)
                dprintf(fd, "shutdown %d: %s\n", fd, strerror(errno));
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[3]))};
        if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1)
            return 2;
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        ssize_t n = sendto(fd, "shutdown", 8, 0, (struct sockaddr *)&addr, sizeof addr);
        return n < 0 && errno == EPERM ? 0 : 1;
    }
    if (argc == 4 && strcmp(argv[1], "glue") == 0) {
        printf("working... ");
        fflush(stdout);
        return send_one(argv[2], argv[3], "glue");
    }
    fprintf(stderr, "usage: rt5_forge first|first-thread NEXT OKHOST OKPORT HOST PORT | second|honest ADDR BYTES HOST PORT | "
                    "erase|nonblock|shutdown|glue HOST PORT\n");
    return 2;
}
