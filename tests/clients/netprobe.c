/*
 * netprobe: a tiny network client for the sockstrace integration tests.
 *
 * Every subcommand does one network operation with plain libc calls and
 * prints one line per step, "OP: ok" or "OP: errno=N (message)".  The process
 * (or thread, or forked child) that performs the operation first prints
 * "actor: pid=P tid=T" so that tests can match it against the report.
 * Exit status: 0 when the operation succeeded, 1 when it failed, 2 on usage
 * errors.
 *
 * Hosts are numeric (inet_pton): "127.0.0.2", "::1", "::ffff:127.0.0.2".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>


struct dest {
    struct sockaddr_storage ss;
    socklen_t len;
    int family;
};

static void usage(void) {
    fprintf(stderr,
            "usage: netprobe SUBCOMMAND ARGS...\n"
            "  tcp-connect HOST PORT\n"
            "  tcp-connect-nonblock HOST PORT\n"
            "  tcp-sendto-connected HOST PORT\n"
            "  udp-sendto HOST PORT\n"
            "  udp-connect-send HOST PORT\n"
            "  udp-sendmsg HOST PORT\n"
            "  udp-sendmmsg N HOST PORT [HOST PORT]...\n"
            "  dns-udp SERVER\n"
            "  dns-tcp SERVER\n"
            "  fork-connect HOST PORT\n"
            "  thread-connect HOST PORT\n"
            "  exec-connect HOST PORT\n"
            "  unix-connect PATH\n"
            "  storm HOST PORT THREADS COUNT\n"
            "  fork-sleep-then-connect HOST PORT\n");
    exit(2);
}

static void say_ok(const char *op) {
    printf("%s: ok\n", op);
    fflush(stdout);
}

static void say_err(const char *op, int err) {
    printf("%s: errno=%d (%s)\n", op, err, strerror(err));
    fflush(stdout);
}

static void actor(void) {
    printf("actor: pid=%d tid=%ld\n", (int)getpid(), (long)syscall(SYS_gettid));
    fflush(stdout);
}

static void parse_dest(const char *host, const char *port, struct dest *d) {
    char *end = NULL;
    long p = strtol(port, &end, 10);
    if (end == port || *end != '\0' || p < 0 || p > 65535) {
        fprintf(stderr, "netprobe: bad port %s\n", port);
        exit(2);
    }
    memset(d, 0, sizeof(*d));
    struct sockaddr_in *in4 = (struct sockaddr_in *)&d->ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&d->ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((unsigned short)p);
        d->len = sizeof(*in4);
        d->family = AF_INET;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((unsigned short)p);
        d->len = sizeof(*in6);
        d->family = AF_INET6;
    } else {
        fprintf(stderr, "netprobe: bad host %s (numeric addresses only)\n", host);
        exit(2);
    }
}

static int open_socket(const struct dest *d, int type) {
    int fd = socket(d->family, type | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        say_err("socket", errno);
        exit(1);
    }
    return fd;
}

/* Connects over TCP and sends a short payload; returns 0 or an errno. */
static int tcp_connect_once(const struct dest *d, int quiet) {
    int fd = socket(d->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        if (!quiet)
            say_err("socket", e);
        return e;
    }
    if (connect(fd, (const struct sockaddr *)&d->ss, d->len) != 0) {
        int e = errno;
        if (!quiet)
            say_err("connect", e);
        close(fd);
        return e;
    }
    if (!quiet) {
        say_ok("connect");
        static const char msg[] = "netprobe-tcp\n";
        if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL) < 0)
            say_err("send", errno);
        else
            say_ok("send");
    }
    close(fd);
    return 0;
}

static int cmd_tcp_connect(const char *host, const char *port) {
    struct dest d;
    parse_dest(host, port, &d);
    actor();
    return tcp_connect_once(&d, 0) == 0 ? 0 : 1;
}

static int cmd_tcp_connect_nonblock(const char *host, const char *port) {
    struct dest d;
    parse_dest(host, port, &d);
    actor();
    int fd = socket(d.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        say_err("socket", errno);
        return 1;
    }
    if (connect(fd, (const struct sockaddr *)&d.ss, d.len) != 0) {
        if (errno != EINPROGRESS) {
            say_err("connect", errno);
            close(fd);
            return 1;
        }
        printf("connect: einprogress\n");
        fflush(stdout);
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int r = poll(&pfd, 1, 20000);
        if (r < 0) {
            say_err("poll", errno);
            close(fd);
            return 1;
        }
        if (r == 0) {
            printf("poll: timeout\n");
            fflush(stdout);
            close(fd);
            return 1;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
            say_err("getsockopt", errno);
            close(fd);
            return 1;
        }
        if (soerr != 0) {
            say_err("so_error", soerr);
            close(fd);
            return 1;
        }
    }
    say_ok("connect");
    close(fd);
    return 0;
}

static int cmd_tcp_sendto_connected(const char *host, const char *port) {
    struct dest d;
    parse_dest(host, port, &d);
    actor();
    int fd = open_socket(&d, SOCK_STREAM);
    if (connect(fd, (const struct sockaddr *)&d.ss, d.len) != 0) {
        say_err("connect", errno);
        return 1;
    }
    say_ok("connect");
    int rc = 0;
    static const char m1[] = "sendto-null\n";
    if (sendto(fd, m1, sizeof(m1) - 1, MSG_NOSIGNAL, NULL, 0) < 0) {
        say_err("sendto-null", errno);
        rc = 1;
    } else {
        say_ok("sendto-null");
    }
    static const char m2[] = "sendto-same\n";
    if (sendto(fd, m2, sizeof(m2) - 1, MSG_NOSIGNAL, (const struct sockaddr *)&d.ss, d.len) < 0) {
        say_err("sendto-same", errno);
        rc = 1;
    } else {
        say_ok("sendto-same");
    }
    close(fd);
    return rc;
}

static int cmd_udp_sendto(const char *host, const char *port) {
    struct dest d;
    parse_dest(host, port, &d);
    actor();
    int fd = open_socket(&d, SOCK_DGRAM);
    static const char msg[] = "netprobe-udp-sendto";
    if (sendto(fd, msg, sizeof(msg) - 1, 0, (const struct sockaddr *)&d.ss, d.len) < 0) {
        say_err("sendto", errno);
        return 1;
    }
    say_ok("sendto");
    close(fd);
    return 0;
}

static int cmd_udp_connect_send(const char *host, const char *port) {
    struct dest d;
    parse_dest(host, port, &d);
    actor();
    int fd = open_socket(&d, SOCK_DGRAM);
    if (connect(fd, (const struct sockaddr *)&d.ss, d.len) != 0) {
        say_err("connect", errno);
        return 1;
    }
    say_ok("connect");
    static const char msg[] = "netprobe-udp-send";
    if (send(fd, msg, sizeof(msg) - 1, 0) < 0) {
        say_err("send", errno);
        return 1;
    }
    say_ok("send");
    close(fd);
    return 0;
}

static int cmd_udp_sendmsg(const char *host, const char *port) {
    struct dest d;
    parse_dest(host, port, &d);
    actor();
    int fd = open_socket(&d, SOCK_DGRAM);
    static char part1[] = "netprobe-";
    static char part2[] = "udp-sendmsg";
    struct iovec iov[2] = {{part1, sizeof(part1) - 1}, {part2, sizeof(part2) - 1}};
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_name = &d.ss;
    mh.msg_namelen = d.len;
    mh.msg_iov = iov;
    mh.msg_iovlen = 2;
    if (sendmsg(fd, &mh, 0) < 0) {
        say_err("sendmsg", errno);
        return 1;
    }
    say_ok("sendmsg");
    close(fd);
    return 0;
}

/* udp-sendmmsg N HOST PORT [HOST PORT]...: N messages in one sendmmsg call,
 * message i going to destination i % (number of destinations). */
static int cmd_udp_sendmmsg(int argc, char **argv) {
    if (argc < 3 || (argc - 1) % 2 != 0)
        usage();
    int n = atoi(argv[0]);
    int ndest = (argc - 1) / 2;
    if (n <= 0 || n > 64)
        usage();
    struct dest *dests = calloc((size_t)ndest, sizeof(*dests));
    for (int i = 0; i < ndest; i++) {
        parse_dest(argv[1 + 2 * i], argv[2 + 2 * i], &dests[i]);
        if (dests[i].family != dests[0].family) {
            fprintf(stderr, "netprobe: all sendmmsg destinations must share a family\n");
            return 2;
        }
    }
    actor();
    int fd = open_socket(&dests[0], SOCK_DGRAM);
    struct mmsghdr *msgs = calloc((size_t)n, sizeof(*msgs));
    struct iovec *iovs = calloc((size_t)n, sizeof(*iovs));
    char(*bufs)[64] = calloc((size_t)n, 64);
    for (int i = 0; i < n; i++) {
        struct dest *d = &dests[i % ndest];
        int len = snprintf(bufs[i], 64, "netprobe-udp-sendmmsg-%d", i);
        iovs[i].iov_base = bufs[i];
        iovs[i].iov_len = (size_t)len;
        msgs[i].msg_hdr.msg_name = &d->ss;
        msgs[i].msg_hdr.msg_namelen = d->len;
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int r = sendmmsg(fd, msgs, (unsigned int)n, 0);
    if (r < 0) {
        say_err("sendmmsg", errno);
        return 1;
    }
    printf("sendmmsg: sent=%d of %d\n", r, n);
    fflush(stdout);
    close(fd);
    return r == n ? 0 : 1;
}

/* A real DNS query (A record of example.com, RD set). */
static size_t build_dns_query(unsigned char *buf) {
    static const unsigned char header[12] = {0x13, 0x37, 0x01, 0x00, 0x00, 0x01,
                                             0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    static const unsigned char qname[] = {7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0};
    size_t n = 0;
    memcpy(buf + n, header, sizeof(header));
    n += sizeof(header);
    memcpy(buf + n, qname, sizeof(qname));
    n += sizeof(qname);
    buf[n++] = 0x00; /* QTYPE A */
    buf[n++] = 0x01;
    buf[n++] = 0x00; /* QCLASS IN */
    buf[n++] = 0x01;
    return n;
}

static int cmd_dns_udp(const char *server) {
    struct dest d;
    parse_dest(server, "53", &d);
    actor();
    int fd = open_socket(&d, SOCK_DGRAM);
    unsigned char q[512];
    size_t n = build_dns_query(q);
    if (sendto(fd, q, n, 0, (const struct sockaddr *)&d.ss, d.len) < 0) {
        say_err("sendto", errno);
        return 1;
    }
    say_ok("sendto");
    close(fd);
    return 0;
}

static int cmd_dns_tcp(const char *server) {
    struct dest d;
    parse_dest(server, "53", &d);
    actor();
    int fd = open_socket(&d, SOCK_STREAM);
    if (connect(fd, (const struct sockaddr *)&d.ss, d.len) != 0) {
        say_err("connect", errno);
        return 1;
    }
    say_ok("connect");
    unsigned char q[514];
    size_t n = build_dns_query(q + 2);
    q[0] = (unsigned char)(n >> 8);
    q[1] = (unsigned char)(n & 0xff);
    if (send(fd, q, n + 2, MSG_NOSIGNAL) < 0) {
        say_err("send", errno);
        return 1;
    }
    say_ok("send");
    close(fd);
    return 0;
}

static int cmd_fork_connect(const char *host, const char *port) {
    struct dest d;
    parse_dest(host, port, &d);
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        say_err("fork", errno);
        return 1;
    }
    if (child == 0) {
        actor();
        _exit(tcp_connect_once(&d, 0) == 0 ? 0 : 1);
    }
    int st = 0;
    if (waitpid(child, &st, 0) < 0) {
        say_err("waitpid", errno);
        return 1;
    }
    if (WIFEXITED(st)) {
        printf("child: exit=%d\n", WEXITSTATUS(st));
        fflush(stdout);
        return WEXITSTATUS(st) == 0 ? 0 : 1;
    }
    printf("child: signal=%d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    fflush(stdout);
    return 1;
}

static void *thread_connect_main(void *arg) {
    actor();
    long rc = tcp_connect_once((const struct dest *)arg, 0) == 0 ? 0 : 1;
    return (void *)rc;
}

static int cmd_thread_connect(const char *host, const char *port) {
    struct dest d;
    parse_dest(host, port, &d);
    printf("main: pid=%d tid=%ld\n", (int)getpid(), (long)syscall(SYS_gettid));
    fflush(stdout);
    pthread_t t;
    int e = pthread_create(&t, NULL, thread_connect_main, &d);
    if (e != 0) {
        say_err("pthread_create", e);
        return 1;
    }
    void *ret = NULL;
    pthread_join(t, &ret);
    return (int)(long)ret;
}

static int cmd_exec_connect(const char *host, const char *port) {
    printf("exec: pid=%d\n", (int)getpid());
    fflush(stdout);
    /* Exec the real path (not /proc/self/exe) so that comm stays "netprobe". */
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len < 0) {
        say_err("readlink", errno);
        return 1;
    }
    self[len] = '\0';
    char *args[] = {"netprobe", "tcp-connect", (char *)host, (char *)port, NULL};
    execv(self, args);
    say_err("execv", errno);
    return 1;
}

static int cmd_unix_connect(const char *path) {
    actor();
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        fprintf(stderr, "netprobe: unix path too long\n");
        return 2;
    }
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        say_err("socket", errno);
        return 1;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        say_err("connect", errno);
        return 1;
    }
    say_ok("connect");
    static const char msg[] = "netprobe-unix\n";
    if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL) < 0) {
        say_err("send", errno);
        return 1;
    }
    say_ok("send");
    close(fd);
    return 0;
}

struct storm_arg {
    const struct dest *d;
    int count;
    int ok;
    int failed;
    int first_errno;
};

static void *storm_main(void *p) {
    struct storm_arg *a = p;
    for (int i = 0; i < a->count; i++) {
        int e = tcp_connect_once(a->d, 1);
        if (e == 0) {
            a->ok++;
        } else {
            a->failed++;
            if (a->first_errno == 0)
                a->first_errno = e;
        }
    }
    return NULL;
}

static int cmd_storm(const char *host, const char *port, const char *threads_s, const char *count_s) {
    struct dest d;
    parse_dest(host, port, &d);
    int threads = atoi(threads_s), count = atoi(count_s);
    if (threads <= 0 || threads > 1024 || count < 0)
        usage();
    actor();
    pthread_t *ts = calloc((size_t)threads, sizeof(*ts));
    struct storm_arg *args = calloc((size_t)threads, sizeof(*args));
    int started = 0;
    for (int i = 0; i < threads; i++) {
        args[i].d = &d;
        args[i].count = count;
        int e = pthread_create(&ts[i], NULL, storm_main, &args[i]);
        if (e != 0) {
            say_err("pthread_create", e);
            break;
        }
        started++;
    }
    int ok = 0, failed = 0, first_errno = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(ts[i], NULL);
        ok += args[i].ok;
        failed += args[i].failed;
        if (first_errno == 0)
            first_errno = args[i].first_errno;
    }
    printf("storm: ok=%d failed=%d", ok, failed);
    if (first_errno != 0)
        printf(" first_errno=%d (%s)", first_errno, strerror(first_errno));
    printf("\n");
    fflush(stdout);
    return (failed == 0 && started == threads) ? 0 : 1;
}

static int cmd_fork_sleep_then_connect(const char *host, const char *port) {
    struct dest d;
    parse_dest(host, port, &d);
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        say_err("fork", errno);
        return 1;
    }
    if (child == 0) {
        sleep(30);
        /* Evidence for the tests: the sleeper outlived the kill. */
        printf("sleeper: woke up\n");
        fflush(stdout);
        _exit(0);
    }
    printf("sleeper: pid=%d\n", (int)child);
    fflush(stdout);
    actor();
    int rc = tcp_connect_once(&d, 0) == 0 ? 0 : 1;
    /* Not reached under --on-leak kill; otherwise do not leave the sleeper. */
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    int n = argc - 2;
    char **a = argv + 2;
    if (!strcmp(cmd, "tcp-connect") && n == 2)
        return cmd_tcp_connect(a[0], a[1]);
    if (!strcmp(cmd, "tcp-connect-nonblock") && n == 2)
        return cmd_tcp_connect_nonblock(a[0], a[1]);
    if (!strcmp(cmd, "tcp-sendto-connected") && n == 2)
        return cmd_tcp_sendto_connected(a[0], a[1]);
    if (!strcmp(cmd, "udp-sendto") && n == 2)
        return cmd_udp_sendto(a[0], a[1]);
    if (!strcmp(cmd, "udp-connect-send") && n == 2)
        return cmd_udp_connect_send(a[0], a[1]);
    if (!strcmp(cmd, "udp-sendmsg") && n == 2)
        return cmd_udp_sendmsg(a[0], a[1]);
    if (!strcmp(cmd, "udp-sendmmsg") && n >= 3)
        return cmd_udp_sendmmsg(n, a);
    if (!strcmp(cmd, "dns-udp") && n == 1)
        return cmd_dns_udp(a[0]);
    if (!strcmp(cmd, "dns-tcp") && n == 1)
        return cmd_dns_tcp(a[0]);
    if (!strcmp(cmd, "fork-connect") && n == 2)
        return cmd_fork_connect(a[0], a[1]);
    if (!strcmp(cmd, "thread-connect") && n == 2)
        return cmd_thread_connect(a[0], a[1]);
    if (!strcmp(cmd, "exec-connect") && n == 2)
        return cmd_exec_connect(a[0], a[1]);
    if (!strcmp(cmd, "unix-connect") && n == 1)
        return cmd_unix_connect(a[0]);
    if (!strcmp(cmd, "storm") && n == 4)
        return cmd_storm(a[0], a[1], a[2], a[3]);
    if (!strcmp(cmd, "fork-sleep-then-connect") && n == 2)
        return cmd_fork_sleep_then_connect(a[0], a[1]);
    usage();
    return 2;
}
