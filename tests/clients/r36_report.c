/*
 * r36_report: red-team client for tests/redteam_r36.rs. A program run as the same user as its
 * supervisor that leaks once and then works on the report file, the cgroup it shares with its
 * supervisor, or its supervisor's limits and scheduling, step by step.
 *
 *   r36_report STEP...
 *
 * STEP is one of (fields separated by ':', TEXT last: it may hold colons)
 *   leak:HOST:PORT     one UDP datagram to HOST:PORT (IPv4), a leak the supervisor refuses
 *   mv:FROM:TO         rename(FROM, TO)
 *   mkdir:PATH         mkdir(PATH, 0755)
 *   write:PATH:TEXT    PATH created or truncated, TEXT and a newline written
 *   poke:PATH:TEXT     PATH opened for writing as it is (no create, no truncate), TEXT written
 *                      (cgroup control files: cgroup.kill, cgroup.freeze, cgroup.procs)
 *   supervisor:PATH    the supervisor's pid (the parent's) written into PATH (a cgroup.procs)
 *   prlimit:HOW        the supervisor's soft RLIMIT_FSIZE set to 0, HOW being
 *                        native  prlimit64(getppid(), ...)
 *                        hipid   the raw syscall with the pid's upper 32 bits set
 *                        int80   the i386 prlimit64 (340) by int 0x80 from this 64-bit program
 *                        x32     the x32 prlimit64 (302 | __X32_SYSCALL_BIT)
 *                      prints "prlimit-HOW: ok" or "prlimit-HOW: errno=N"
 *   sched:idle         sched_setscheduler(TID, SCHED_IDLE) for every thread of the supervisor
 *                      (listed in /proc/PPID/task); prints how many were set
 *   nice:N             setpriority(PRIO_PROCESS, TID, N), the same threads
 *   fdlink:FILE:LINK   waits for FILE to hold a number N, then makes LINK a symbolic link to
 *                      /proc/self/fd/N (a new link renamed over LINK): a link that names, for
 *                      each process that follows it, that process's own fd N
 *   fill:DIR           an unnamed file (O_TMPFILE) in DIR written with zeros until its file
 *                      system is full, kept open: the space comes back when the program ends
 *   send:HOST:PORT:N   N UDP datagrams to HOST:PORT, one sendto each (allowed destinations:
 *                      each an allowed event in the report, carrying the program's argv)
 *   pad:TEXT           nothing: an argument that makes every event's argv long
 *   sleep:MS           sleeps MS milliseconds
 *   outlive:MS         forks; the parent exits at once (status 0), the child sleeps MS ms and
 *                      goes on with the remaining steps
 *
 * Prints "STEP-NAME: ok" or "STEP-NAME: errno=N" per step ("leak: refused" when the datagram
 * was refused with EPERM, "leak: sent" when it went out). Exit status 0; 2 on usage errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void said(const char *name, long r) {
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

static void leak(const char *host, const char *port) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "bad host %s\n", host);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        said("leak", -1);
        return;
    }
    ssize_t n = sendto(fd, "r36", 3, 0, (struct sockaddr *)&addr, sizeof addr);
    int err = errno;
    close(fd);
    if (n >= 0)
        printf("leak: sent\n");
    else if (err == EPERM)
        printf("leak: refused\n");
    else
        printf("leak: errno=%d\n", err);
    fflush(stdout);
}

static int poke(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    int err = errno;
    close(fd);
    errno = err;
    return n < 0 ? -1 : 0;
}

/* The i386 prlimit64 by int 0x80: arguments in ebx, ecx, edx, esi; pointers below 4 GiB. */
static long int80_prlimit(int pid, int resource, uint32_t new_limit, uint32_t old_limit) {
    long r;
    __asm__ volatile("int $0x80"
                     : "=a"(r)
                     : "a"(340L), "b"((long)pid), "c"((long)resource), "d"((long)new_limit), "S"((long)old_limit)
                     : "memory", "r8", "r9", "r10", "r11");
    if (r < 0 && r > -4096) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

static void set_limit(const char *how) {
    char name[64];
    snprintf(name, sizeof name, "prlimit-%s", how);
    pid_t parent = getppid();
    struct rlimit lim = {0, RLIM_INFINITY};
    if (prlimit(parent, RLIMIT_FSIZE, NULL, &lim) == 0)
        lim.rlim_cur = 0;
    long r;
    if (!strcmp(how, "native")) {
        r = syscall(SYS_prlimit64, parent, RLIMIT_FSIZE, &lim, NULL);
    } else if (!strcmp(how, "hipid")) {
        r = syscall(SYS_prlimit64, (long)parent | (1L << 32), RLIMIT_FSIZE, &lim, NULL);
    } else if (!strcmp(how, "x32")) {
        r = syscall(302 | 0x40000000, parent, RLIMIT_FSIZE, &lim, NULL);
    } else if (!strcmp(how, "int80")) {
        struct rlimit *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
        if (low == MAP_FAILED) {
            said(name, -1);
            return;
        }
        *low = lim;
        r = int80_prlimit(parent, RLIMIT_FSIZE, (uint32_t)(uintptr_t)low, 0);
    } else {
        fprintf(stderr, "bad prlimit way %s\n", how);
        exit(2);
    }
    said(name, r);
}

static int fdlink(const char *file, const char *link) {
    int n = -1;
    for (int tries = 0; tries < 2000 && n < 0; tries++) {
        FILE *f = fopen(file, "r");
        if (f) {
            if (fscanf(f, "%d", &n) != 1)
                n = -1;
            fclose(f);
        }
        if (n < 0)
            sleep_ms(10);
    }
    if (n < 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    char target[64], tmp[4096];
    snprintf(target, sizeof target, "/proc/self/fd/%d", n);
    snprintf(tmp, sizeof tmp, "%s.r36-new", link);
    unlink(tmp);
    if (symlink(target, tmp) < 0)
        return -1;
    return rename(tmp, link);
}

static int fill(const char *dir) {
    int fd = open(dir, O_RDWR | O_TMPFILE, 0600);
    if (fd < 0)
        return -1;
    static char zeros[65536];
    for (;;) {
        if (write(fd, zeros, sizeof zeros) < 0) {
            int err = errno;
            while (write(fd, zeros, 1) == 1) {
            }
            errno = err;
            return err == ENOSPC ? 0 : -1; /* fd kept open on purpose */
        }
    }
}

/* Every thread of the supervisor, `idle` or `nice`: -1 (errno) when one was refused. */
static int each_thread(int idle, int nice) {
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)getppid());
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int set = 0, failed = 0, err = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int tid = atoi(e->d_name);
        if (tid <= 0)
            continue;
        struct sched_param p = {0};
        int r = idle ? sched_setscheduler(tid, SCHED_IDLE, &p) : setpriority(PRIO_PROCESS, (id_t)tid, nice);
        if (r < 0) {
            failed++;
            err = errno;
        } else
            set++;
    }
    closedir(d);
    printf("%s: %d thread(s) set, %d refused\n", idle ? "sched" : "nice", set, failed);
    errno = err;
    return failed ? -1 : 0;
}

static int send_many(const char *host, char *rest) {
    char *count = strchr(rest, ':');
    if (!count) {
        errno = EINVAL;
        return -1;
    }
    *count++ = 0;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(rest))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return -1;
    long n = atol(count), sent = 0;
    for (long i = 0; i < n; i++)
        if (sendto(fd, "ok", 2, 0, (struct sockaddr *)&addr, sizeof addr) == 2)
            sent++;
    close(fd);
    printf("send: %ld of %ld sent\n", sent, n);
    return sent == n ? 0 : -1;
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
        else if (!strcmp(step, "write") && b) {
            FILE *f = fopen(a, "w");
            int r = f && fprintf(f, "%s\n", b) >= 0 ? 0 : -1;
            if (f && fclose(f) != 0)
                r = -1;
            said("write", r);
        } else if (!strcmp(step, "poke") && b)
            said("poke", poke(a, b));
        else if (!strcmp(step, "supervisor")) {
            char pid[32];
            snprintf(pid, sizeof pid, "%d\n", (int)getppid());
            said("supervisor", poke(a, pid));
        } else if (!strcmp(step, "prlimit"))
            set_limit(a);
        else if (!strcmp(step, "sched"))
            said("sched", each_thread(1, 0));
        else if (!strcmp(step, "nice"))
            said("nice", each_thread(0, atoi(a)));
        else if (!strcmp(step, "fdlink") && b)
            said("fdlink", fdlink(a, b));
        else if (!strcmp(step, "fill"))
            said("fill", fill(a));
        else if (!strcmp(step, "send") && b)
            said("send", send_many(a, b));
        else if (!strcmp(step, "pad")) {
        } else if (!strcmp(step, "sleep"))
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
