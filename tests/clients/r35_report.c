/*
 * r35_report: red-team client for tests/redteam_r35.rs. A program run as the same user as its
 * supervisor that leaks once and then does what it can to the report file (`--report FILE`,
 * whose path is in its supervisor's command line), step by step.
 *
 *   r35_report STEP...
 *
 * STEP is one of (fields separated by ':', TEXT last: it may hold colons)
 *   leak:HOST:PORT     one UDP datagram to HOST:PORT (IPv4), a leak the supervisor refuses
 *   mv:FROM:TO         rename(FROM, TO)
 *   mkdir:PATH         mkdir(PATH, 0755)
 *   rm:PATH            unlink(PATH)
 *   chmod:MODE:PATH    chmod(PATH, MODE), MODE in octal
 *   mkfifo:PATH        mkfifo(PATH, 0644)
 *   write:PATH:TEXT    PATH created or truncated, TEXT and a newline written
 *   relink:TARGET:LINK LINK made a symbolic link to TARGET (a new link renamed over LINK)
 *   blank:PATH         every byte of PATH overwritten in place with a space but the last
 *                      (a newline), without reading it: works on a write-only file
 *   fill:PATH          PATH written with zeros until the file system is full (ENOSPC), kept
 *   fsize:PATH:K       the supervisor's (parent's) soft RLIMIT_FSIZE set to the current size
 *                      of PATH plus K bytes (prlimit on a process of the same user; the hard
 *                      limit is left as it is)
 *   unfsize:-          the supervisor's soft RLIMIT_FSIZE raised back to its hard limit
 *   trunc:PATH         truncate(PATH, 0)
 *   sleep:MS           sleeps MS milliseconds
 *   outlive:MS         forks; the parent exits at once (status 0), the child sleeps MS ms and
 *                      goes on with the remaining steps
 *
 * Prints "STEP-NAME: ok" or "STEP-NAME: errno=N" per step ("leak: refused" when the datagram
 * was refused with EPERM, "leak: sent" when it went out). Exit status 0; 2 on usage errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void said(const char *name, int r) {
    if (r < 0)
        printf("%s: errno=%d\n", name, errno);
    else
        printf("%s: ok\n", name);
    fflush(stdout);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static int leak(const char *host, const char *port) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "bad host %s\n", host);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        said("leak", -1);
        return -1;
    }
    ssize_t n = sendto(fd, "r35", 3, 0, (struct sockaddr *)&addr, sizeof addr);
    int err = errno;
    close(fd);
    if (n >= 0)
        printf("leak: sent\n");
    else if (err == EPERM)
        printf("leak: refused\n");
    else
        printf("leak: errno=%d\n", err);
    fflush(stdout);
    return 0;
}

static int blank(const char *path) {
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    char buf[4096];
    memset(buf, ' ', sizeof buf);
    off_t at = 0;
    while (at < st.st_size) {
        size_t n = (size_t)(st.st_size - at) < sizeof buf ? (size_t)(st.st_size - at) : sizeof buf;
        if (at + (off_t)n == st.st_size)
            buf[n - 1] = '\n';
        if (pwrite(fd, buf, n, at) < 0) {
            close(fd);
            return -1;
        }
        at += (off_t)n;
    }
    close(fd);
    return 0;
}

static int fill(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    static char zeros[65536];
    for (;;) {
        ssize_t n = write(fd, zeros, sizeof zeros);
        if (n < 0) {
            int err = errno;
            /* A last partial block: fill what is left byte by byte. */
            while (write(fd, zeros, 1) == 1) {
            }
            close(fd);
            errno = err;
            return err == ENOSPC ? 0 : -1;
        }
    }
}

static int relink(const char *target, const char *link) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.r35-new", link);
    unlink(tmp);
    if (symlink(target, tmp) < 0)
        return -1;
    return rename(tmp, link);
}

static int fsize(const char *path, const char *more) {
    struct stat st;
    struct rlimit lim;
    if (stat(path, &st) < 0 || prlimit(getppid(), RLIMIT_FSIZE, NULL, &lim) < 0)
        return -1;
    lim.rlim_cur = (rlim_t)st.st_size + (rlim_t)atol(more ? more : "0");
    printf("fsize: %llu bytes\n", (unsigned long long)lim.rlim_cur);
    return prlimit(getppid(), RLIMIT_FSIZE, &lim, NULL);
}

static int unfsize(void) {
    struct rlimit lim;
    if (prlimit(getppid(), RLIMIT_FSIZE, NULL, &lim) < 0)
        return -1;
    lim.rlim_cur = lim.rlim_max;
    return prlimit(getppid(), RLIMIT_FSIZE, &lim, NULL);
}

int main(int argc, char **argv) {
    printf("actor: pid=%d\n", (int)getpid());
    fflush(stdout);
    for (int i = 1; i < argc; i++) {
        char *step = strdup(argv[i]);
        char *a = strchr(step, ':');
        if (!a) {
            fprintf(stderr, "bad step %s\n", argv[i]);
            return 2;
        }
        *a++ = 0;
        char *b = strchr(a, ':');
        if (b)
            *b++ = 0;
        if (!strcmp(step, "leak") && b)
            leak(a, b);
        else if (!strcmp(step, "mv") && b)
            said("mv", rename(a, b));
        else if (!strcmp(step, "mkdir"))
            said("mkdir", mkdir(a, 0755));
        else if (!strcmp(step, "rm"))
            said("rm", unlink(a));
        else if (!strcmp(step, "chmod") && b)
            said("chmod", chmod(b, (mode_t)strtol(a, NULL, 8)));
        else if (!strcmp(step, "mkfifo"))
            said("mkfifo", mkfifo(a, 0644));
        else if (!strcmp(step, "write") && b) {
            FILE *f = fopen(a, "w");
            int r = f && fprintf(f, "%s\n", b) >= 0 ? 0 : -1;
            if (f && fclose(f) != 0)
                r = -1;
            said("write", r);
        } else if (!strcmp(step, "relink") && b)
            said("relink", relink(a, b));
        else if (!strcmp(step, "blank"))
            said("blank", blank(a));
        else if (!strcmp(step, "fill"))
            said("fill", fill(a));
        else if (!strcmp(step, "fsize"))
            said("fsize", fsize(a, b));
        else if (!strcmp(step, "unfsize"))
            said("unfsize", unfsize());
        else if (!strcmp(step, "trunc"))
            said("trunc", truncate(a, 0));
        else if (!strcmp(step, "sleep"))
            sleep_ms(atol(a));
        else if (!strcmp(step, "outlive")) {
            pid_t pid = fork();
            if (pid < 0) {
                said("outlive", -1);
                return 0;
            }
            if (pid > 0) {
                printf("outlive: child %d\n", (int)pid);
                fflush(stdout);
                return 0;
            }
            sleep_ms(atol(a));
            printf("outlive: child goes on\n");
            fflush(stdout);
        } else {
            fprintf(stderr, "bad step %s\n", argv[i]);
            return 2;
        }
        free(step);
    }
    return 0;
}
