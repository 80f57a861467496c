/*
 * rt5_tid: calls from a thread id or a memory that another process had before.
 *
 *   rt5_tid reuse OKHOST OKPORT HOST PORT
 *       a second thread sends one datagram to OKHOST:OKPORT (allowed: the supervisor now knows
 *       that thread) and exits; then the process forks a child that gets the same id (through
 *       /proc/sys/kernel/ns_last_pid: root in a pid namespace of its own), and the child sends
 *       one datagram to HOST:PORT (a leak). Prints "thread: pid=P tid=T" (for each try, a new
 *       thread), then "child: pid=T tid=T". Exits 3 when no child got a thread's id.
 *   rt5_tid vfork OKHOST OKPORT HOST PORT
 *       one datagram to OKHOST:OKPORT, then a vfork child (the parent's memory, so the same
 *       AT_RANDOM address and bytes) sends one datagram to HOST:PORT (a leak). Prints
 *       "parent: pid=P", "child: pid=C tid=C".
 *
 * Exits 0 when the leak was refused with EPERM, 1 otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ok_host, *ok_port, *host, *port;

static struct sockaddr_in sockaddr_of(const char *h, const char *p) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(p))};
    if (inet_pton(AF_INET, h, &addr.sin_addr) != 1)
        _exit(2);
    return addr;
}

/* 0: sent, else the errno. Raw calls only (safe in a vfork child). */
static int send_to(const char *h, const char *p) {
    struct sockaddr_in addr = sockaddr_of(h, p);
    int fd = (int)syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return errno;
    long n = syscall(SYS_sendto, fd, "x", 1, 0, (struct sockaddr *)&addr, sizeof addr);
    int err = n < 0 ? errno : 0;
    syscall(SYS_close, fd);
    return err;
}

static void say(const char *what, long a, long b) {
    char line[96];
    int n = snprintf(line, sizeof line, "%s: pid=%ld tid=%ld\n", what, a, b);
    if (write(1, line, (size_t)n) < 0)
        _exit(2);
}

static void *thread_main(void *arg) {
    long *tid = arg;
    *tid = syscall(SYS_gettid);
    say("thread", getpid(), *tid);
    if (send_to(ok_host, ok_port) != 0)
        _exit(2);
    return NULL;
}

static int leak_and_exit_status(void) {
    int err = send_to(host, port);
    return err == EPERM ? 0 : 1;
}

static int reuse(void) {
    /* Rounds: a thread sends and exits, then children are forked until one gets its id (another
     * process of the namespace, a thread of the supervisor's, may take it first: then a new
     * thread, a new id). */
    for (int round = 0; round < 10; round++) {
        long tid = 0;
        pthread_t t;
        if (pthread_create(&t, NULL, thread_main, &tid) != 0 || pthread_join(t, NULL) != 0)
            return 2;
        for (int attempt = 0; attempt < 5; attempt++) {
            int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
            if (fd < 0) {
                perror("ns_last_pid");
                return 2;
            }
            char buf[32];
            int len = snprintf(buf, sizeof buf, "%ld", tid - 1);
            if (write(fd, buf, (size_t)len) != len) {
                perror("write ns_last_pid");
                return 2;
            }
            close(fd);
            pid_t child = fork();
            if (child < 0)
                return 2;
            if (child == 0) {
                if (getpid() != tid)
                    _exit(3);
                say("child", getpid(), syscall(SYS_gettid));
                _exit(leak_and_exit_status());
            }
            int status;
            if (waitpid(child, &status, 0) != child || !WIFEXITED(status))
                return 2;
            if (WEXITSTATUS(status) != 3)
                return WEXITSTATUS(status);
        }
    }
    printf("reuse: missed\n");
    return 3;
}

static int vfork_leak(void) {
    say("parent", getpid(), syscall(SYS_gettid));
    if (send_to(ok_host, ok_port) != 0)
        return 2;
    pid_t child = vfork();
    if (child < 0)
        return 2;
    if (child == 0) {
        say("child", syscall(SYS_getpid), syscall(SYS_gettid));
        _exit(leak_and_exit_status());
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status))
        return 2;
    return WEXITSTATUS(status);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: rt5_tid reuse|vfork OKHOST OKPORT HOST PORT\n");
        return 2;
    }
    ok_host = argv[2], ok_port = argv[3], host = argv[4], port = argv[5];
    if (strcmp(argv[1], "reuse") == 0)
        return reuse();
    if (strcmp(argv[1], "vfork") == 0)
        return vfork_leak();
    return 2;
}
