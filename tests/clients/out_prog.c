/*
 * out_prog: a program whose output, and whose supervisor's report, the tests of
 * tests/run_output.rs look at.
 *
 *   out_prog lines HOST PORT N
 *       N numbered lines ("line I " and 60 dots) on stdout through stdio (a pipe or a file:
 *       fully buffered, so its 4 KiB writes end mid-line), a datagram to HOST:PORT (a leak)
 *       after every 50th line; then "part " (no newline, flushed), one more leak, and
 *       "rest\n"
 *   out_prog prompt FLAG
 *       writes "prompt> " (no newline) and flushes, waits (10 s at most) until the file FLAG
 *       exists, then writes "answered\n"
 *   out_prog hold FLAG
 *       writes "pid=P\n", waits (10 s at most) until FLAG exists, writes "bye\n" and exits
 *       (the test holds the program's stdout open meanwhile, from outside the run)
 *   out_prog rename HOST PORT
 *       one datagram to HOST:PORT (a leak), then replaces its supervisor's report file (the
 *       argument after --report in /proc/PPID/cmdline) with a forged one by rename(2);
 *       prints "rename: done"
 *
 * Exits 0, or 2 on a usage or setup error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void leak(const char *host, const char *port) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        exit(2);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        exit(2);
    (void)sendto(fd, "out", 3, 0, (struct sockaddr *)&addr, sizeof addr);
    close(fd);
}

static void wait_for(const char *flag) {
    for (int i = 0; i < 1000 && access(flag, F_OK) != 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
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

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "lines") == 0) {
        int n = atoi(argv[4]);
        for (int i = 0; i < n; i++) {
            printf("line %d ............................................................\n", i);
            if (i % 50 == 49)
                leak(argv[2], argv[3]);
        }
        printf("part ");
        fflush(stdout);
        leak(argv[2], argv[3]);
        printf("rest\n");
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "prompt") == 0) {
        printf("prompt> ");
        fflush(stdout);
        wait_for(argv[2]);
        printf("answered\n");
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "hold") == 0) {
        printf("pid=%d\n", getpid());
        fflush(stdout);
        wait_for(argv[2]);
        printf("bye\n");
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "rename") == 0) {
        leak(argv[2], argv[3]);
        char *report = parents_report();
        if (!report) {
            printf("rename: no report\n");
            return 2;
        }
        char forged[4096];
        snprintf(forged, sizeof forged, "%s.forged", report);
        FILE *f = fopen(forged, "w");
        if (!f) {
            printf("rename: %s: %s\n", forged, strerror(errno));
            return 2;
        }
        fprintf(f, "{\"schema\":1,\"seq\":1,\"verdict\":\"allowed\"}\n");
        fclose(f);
        if (rename(forged, report) != 0) {
            printf("rename: %s\n", strerror(errno));
            return 2;
        }
        printf("rename: done\n");
        return 0;
    }
    fprintf(stderr, "usage: out_prog lines HOST PORT N | prompt FLAG | hold FLAG | rename HOST PORT\n");
    return 2;
}
