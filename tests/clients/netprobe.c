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
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>
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
#if defined(__i386__)
#include <linux/net.h>
#endif

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif
#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif
#ifndef ETH_P_ALL
#define ETH_P_ALL 0x0003
#endif
#ifndef ETH_P_IP
#define ETH_P_IP 0x0800
#endif

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
            "  fork-sleep-then-connect HOST PORT\n"
            "  tfo-sendto HOST PORT | tfo-sendmsg HOST PORT\n"
            "  raw-socket 4|6 | raw-udp HOST PORT\n"
            "  packet-socket | packet-udp HOST PORT\n"
            "  vfork-connect HOST PORT | clone-vm-connect HOST PORT\n"
            "  clone3-thread-connect HOST PORT (x86_64)\n"
            "  bad-pointers PROXYHOST PROXYPORT\n"
            "  race PROXYHOST PROXYPORT SINKHOST SINKPORT COUNT\n"
            "  race-sendto ALLOWEDHOST ALLOWEDPORT SINKHOST SINKPORT COUNT\n"
            "  uring-setup-raw | udp-bind HOST PORT\n"
            "  connect-wait-connect PROXYHOST PROXYPORT SINKHOST SINKPORT FIFO\n"
            "  tcp-connect-info HOST PORT\n"
            "  stall-then-connect connect|accept PROXYHOST PROXYPORT\n"
            "  serve HOST PORT N\n"
            "  tcp-exchange HOST PORT\n"
            "  (i386 only) sc-connect HOST PORT | sc-sendto HOST PORT |\n"
            "  i386-connect HOST PORT | sc-unix-connect PATH THREADS\n");
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

/* One step's result: "OP: ok" when r >= 0, else "OP: errno=N (...)" for
 * errno. Returns 0 or 1. */
static int say_result(const char *op, long r) {
    if (r < 0) {
        say_err(op, errno);
        return 1;
    }
    say_ok(op);
    return 0;
}

/* The last step of a subcommand: prints its result (as say_result) and, when
 * it succeeded, closes fd. Returns the exit status, 0 or 1. */
static int finish(const char *op, long r, int fd) {
    if (say_result(op, r) != 0)
        return 1;
    close(fd);
    return 0;
}

static void actor(void) {
    printf("actor: pid=%d tid=%ld\n", (int)getpid(), (long)syscall(SYS_gettid));
    fflush(stdout);
}

/* "main: pid=P" (and " tid=T" when with_tid), for subcommands whose network
 * call is made by another thread or process. */
static void say_main(int with_tid) {
    if (with_tid)
        printf("main: pid=%d tid=%ld\n", (int)getpid(), (long)syscall(SYS_gettid));
    else
        printf("main: pid=%d\n", (int)getpid());
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

/* parse_dest, then the actor line: how most subcommands start. */
static void start_dest(const char *host, const char *port, struct dest *d) {
    parse_dest(host, port, d);
    actor();
}

/* A msghdr sending iov[0..n) to name (namelen bytes). */
static struct msghdr make_msghdr(void *name, socklen_t namelen, struct iovec *iov, size_t n) {
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_name = name;
    mh.msg_namelen = namelen;
    mh.msg_iov = iov;
    mh.msg_iovlen = n;
    return mh;
}

static int open_socket(const struct dest *d, int type) {
    int fd = socket(d->family, type | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        say_err("socket", errno);
        exit(1);
    }
    return fd;
}

/* connect(2) to d as step "connect"; returns 0 or 1. */
static int connect_step(int fd, const struct dest *d) {
    return say_result("connect", connect(fd, (const struct sockaddr *)&d->ss, d->len));
}

/* start_dest, a socket of `type`, and connect_step: the connected socket, or
 * -1 when the connect failed (printed). */
static int connect_dest(const char *host, const char *port, int type, struct dest *d) {
    start_dest(host, port, d);
    int fd = open_socket(d, type);
    if (connect_step(fd, d) != 0)
        return -1;
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
        say_result("send", send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL));
    }
    close(fd);
    return 0;
}

static int cmd_tcp_connect(const char *host, const char *port) {
    struct dest d;
    start_dest(host, port, &d);
    return tcp_connect_once(&d, 0) == 0 ? 0 : 1;
}

static int cmd_tcp_connect_nonblock(const char *host, const char *port) {
    struct dest d;
    start_dest(host, port, &d);
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
    int fd = connect_dest(host, port, SOCK_STREAM, &d);
    if (fd < 0)
        return 1;
    int rc = 0;
    static const char m1[] = "sendto-null\n";
    rc |= say_result("sendto-null", sendto(fd, m1, sizeof(m1) - 1, MSG_NOSIGNAL, NULL, 0));
    static const char m2[] = "sendto-same\n";
    rc |= say_result("sendto-same",
                     sendto(fd, m2, sizeof(m2) - 1, MSG_NOSIGNAL, (const struct sockaddr *)&d.ss, d.len));
    close(fd);
    return rc;
}

static int cmd_udp_sendto(const char *host, const char *port) {
    struct dest d;
    start_dest(host, port, &d);
    int fd = open_socket(&d, SOCK_DGRAM);
    static const char msg[] = "netprobe-udp-sendto";
    return finish("sendto", sendto(fd, msg, sizeof(msg) - 1, 0, (const struct sockaddr *)&d.ss, d.len), fd);
}

static int cmd_udp_connect_send(const char *host, const char *port) {
    struct dest d;
    int fd = connect_dest(host, port, SOCK_DGRAM, &d);
    if (fd < 0)
        return 1;
    static const char msg[] = "netprobe-udp-send";
    return finish("send", send(fd, msg, sizeof(msg) - 1, 0), fd);
}

static int cmd_udp_sendmsg(const char *host, const char *port) {
    struct dest d;
    start_dest(host, port, &d);
    int fd = open_socket(&d, SOCK_DGRAM);
    static char part1[] = "netprobe-";
    static char part2[] = "udp-sendmsg";
    struct iovec iov[2] = {{part1, sizeof(part1) - 1}, {part2, sizeof(part2) - 1}};
    struct msghdr mh = make_msghdr(&d.ss, d.len, iov, 2);
    return finish("sendmsg", sendmsg(fd, &mh, 0), fd);
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
    start_dest(server, "53", &d);
    int fd = open_socket(&d, SOCK_DGRAM);
    unsigned char q[512];
    size_t n = build_dns_query(q);
    return finish("sendto", sendto(fd, q, n, 0, (const struct sockaddr *)&d.ss, d.len), fd);
}

static int cmd_dns_tcp(const char *server) {
    struct dest d;
    int fd = connect_dest(server, "53", SOCK_STREAM, &d);
    if (fd < 0)
        return 1;
    unsigned char q[514];
    size_t n = build_dns_query(q + 2);
    q[0] = (unsigned char)(n >> 8);
    q[1] = (unsigned char)(n & 0xff);
    return finish("send", send(fd, q, n + 2, MSG_NOSIGNAL), fd);
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
    say_main(1);
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
    if (say_result("connect", connect(fd, (struct sockaddr *)&sun, sizeof(sun))) != 0)
        return 1;
    static const char msg[] = "netprobe-unix\n";
    return finish("send", send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL), fd);
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

/* ---------------------------------------------------------------------------
 * Bypass vectors.
 * ------------------------------------------------------------------------- */

/* A system call without libc's errno: returns -errno on failure. Used where
 * the caller runs without a TLS area of its own (vfork/clone children). */
#if defined(__x86_64__)
static long rsys(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
}
#else
static long rsys(long nr, long a, long b, long c) {
    long r = syscall(nr, a, b, c);
    return r < 0 ? -errno : r;
}
#endif

/* tfo-sendto / tfo-sendmsg: a TCP Fast Open connect (the data rides on the
 * SYN, or right after the handshake when no cookie is cached yet). */
static int cmd_tfo(const char *host, const char *port, int use_sendmsg) {
    struct dest d;
    start_dest(host, port, &d);
    int fd = open_socket(&d, SOCK_STREAM);
    static char msg[] = "netprobe-tfo\n";
    ssize_t r;
    const char *op = use_sendmsg ? "sendmsg" : "sendto";
    if (use_sendmsg) {
        struct iovec iov = {msg, sizeof(msg) - 1};
        struct msghdr mh = make_msghdr(&d.ss, d.len, &iov, 1);
        r = sendmsg(fd, &mh, MSG_FASTOPEN | MSG_NOSIGNAL);
    } else {
        r = sendto(fd, msg, sizeof(msg) - 1, MSG_FASTOPEN | MSG_NOSIGNAL, (const struct sockaddr *)&d.ss, d.len);
    }
    if (r < 0) {
        say_err(op, errno);
        close(fd);
        return 1;
    }
    printf("%s: ok sent=%ld\n", op, (long)r);
    fflush(stdout);
    /* Give the handshake time to complete before close. */
    shutdown(fd, SHUT_WR);
    char buf[64];
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    close(fd);
    return 0;
}

static int cmd_raw_socket(const char *fam) {
    int family = strcmp(fam, "6") == 0 ? AF_INET6 : AF_INET;
    int proto = family == AF_INET6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
    actor();
    int fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, proto);
    return finish("socket", fd, fd);
}

static uint16_t ip_checksum(const void *data, size_t len) {
    const uint8_t *p = data;
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)(p[len - 1] << 8);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Writes a UDP header (checksum 0: none, allowed over IPv4) and payload. */
static size_t build_udp(uint8_t *buf, uint16_t dport, const char *payload) {
    size_t plen = strlen(payload);
    uint16_t sport = htons(40000), dp = htons(dport), ulen = htons((uint16_t)(8 + plen));
    memcpy(buf, &sport, 2);
    memcpy(buf + 2, &dp, 2);
    memcpy(buf + 4, &ulen, 2);
    memset(buf + 6, 0, 2);
    memcpy(buf + 8, payload, plen);
    return 8 + plen;
}

/* raw-udp HOST PORT: a UDP datagram written by hand on a raw IPv4 socket. */
static int cmd_raw_udp(const char *host, const char *port) {
    struct dest d;
    parse_dest(host, port, &d);
    if (d.family != AF_INET)
        usage();
    actor();
    int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP);
    if (say_result("socket", fd) != 0)
        return 1;
    uint8_t pkt[128];
    size_t n = build_udp(pkt, (uint16_t)atoi(port), "netprobe-raw-udp");
    struct sockaddr_in to = *(struct sockaddr_in *)&d.ss;
    to.sin_port = 0;
    return finish("sendto", sendto(fd, pkt, n, 0, (struct sockaddr *)&to, sizeof(to)), fd);
}

static int cmd_packet_socket(void) {
    actor();
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    return finish("socket", fd, fd);
}

/* packet-udp HOST PORT: an IPv4/UDP packet built by hand and written to the
 * loopback device through an AF_PACKET socket. */
static int cmd_packet_udp(const char *host, const char *port) {
    struct dest d;
    parse_dest(host, port, &d);
    if (d.family != AF_INET)
        usage();
    actor();
    int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_IP));
    if (say_result("socket", fd) != 0)
        return 1;
    uint8_t pkt[128];
    memset(pkt, 0, sizeof(pkt));
    size_t ulen = build_udp(pkt + 20, (uint16_t)atoi(port), "netprobe-packet-udp");
    uint16_t total = htons((uint16_t)(20 + ulen));
    pkt[0] = 0x45;
    memcpy(pkt + 2, &total, 2);
    pkt[8] = 64;
    pkt[9] = IPPROTO_UDP;
    struct in_addr src;
    inet_pton(AF_INET, "127.0.0.1", &src);
    memcpy(pkt + 12, &src, 4);
    memcpy(pkt + 16, &((struct sockaddr_in *)&d.ss)->sin_addr, 4);
    uint16_t csum = htons(ip_checksum(pkt, 20));
    memcpy(pkt + 10, &csum, 2);
    struct sockaddr_ll ll;
    memset(&ll, 0, sizeof(ll));
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_IP);
    ll.sll_ifindex = (int)if_nametoindex("lo");
    ll.sll_halen = 6;
    return finish("sendto", sendto(fd, pkt, 20 + ulen, 0, (struct sockaddr *)&ll, sizeof(ll)), fd);
}

/* State shared with children that run in our memory (vfork, clone). */
static struct {
    struct dest d;
    volatile long pid, tid, sock_ret, conn_ret;
    volatile int done;
} shared;

/* Runs in a child sharing our memory: raw system calls only. */
static int shared_connect(void *unused) {
    (void)unused;
    static const char msg[] = "netprobe-shared\n";
    shared.pid = rsys(SYS_getpid, 0, 0, 0);
    shared.tid = rsys(SYS_gettid, 0, 0, 0);
    long fd = rsys(SYS_socket, shared.d.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    shared.sock_ret = fd;
    if (fd >= 0) {
        shared.conn_ret = rsys(SYS_connect, fd, (long)&shared.d.ss, (long)shared.d.len);
        if (shared.conn_ret == 0)
            rsys(SYS_write, fd, (long)msg, (long)sizeof(msg) - 1);
        rsys(SYS_close, fd, 0, 0);
    }
    __atomic_store_n(&shared.done, 1, __ATOMIC_SEQ_CST);
    return 0;
}

/* A stack for a child sharing our memory; NULL (after printing why) when
 * none could be mapped. */
#define CHILD_STACK_SIZE (256 * 1024)
static char *child_stack(void) {
    char *stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                       -1, 0);
    if (stack == MAP_FAILED) {
        say_err("mmap", errno);
        return NULL;
    }
    return stack;
}

/* Prints what a shared-memory child did, in the usual format. */
static int report_shared(void) {
    printf("actor: pid=%ld tid=%ld\n", shared.pid, shared.tid);
    if (shared.sock_ret < 0) {
        say_err("socket", (int)-shared.sock_ret);
        return 1;
    }
    if (shared.conn_ret != 0) {
        say_err("connect", (int)-shared.conn_ret);
        return 1;
    }
    say_ok("connect");
    return 0;
}

static int cmd_vfork_connect(const char *host, const char *port) {
    parse_dest(host, port, &shared.d);
    say_main(0);
    pid_t child = vfork();
    if (child < 0) {
        say_err("vfork", errno);
        return 1;
    }
    if (child == 0) {
        shared_connect(NULL);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    return report_shared();
}

/* clone-vm-connect: clone(CLONE_VM) without CLONE_THREAD or CLONE_VFORK: a
 * separate process that shares our memory and runs concurrently. */
static int cmd_clone_vm_connect(const char *host, const char *port) {
    parse_dest(host, port, &shared.d);
    say_main(0);
    char *stack = child_stack();
    if (!stack)
        return 1;
    pid_t child = clone(shared_connect, stack + CHILD_STACK_SIZE, CLONE_VM | SIGCHLD, NULL);
    if (child < 0) {
        say_err("clone", errno);
        return 1;
    }
    int st = 0;
    waitpid(child, &st, 0);
    return report_shared();
}

#if defined(__x86_64__)
struct clone3_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};

/* clone3 with a new stack: the child calls fn(NULL) there and exits the
 * thread with its result; the parent gets the child's tid (or -errno). */
static long clone3_run(struct clone3_args *ca, int (*fn)(void *)) {
    long ret;
    register int (*r12)(void *) __asm__("r12") = fn;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "xor %%ebp, %%ebp\n\t"
                     "xor %%edi, %%edi\n\t"
                     "call *%%r12\n\t"
                     "mov %%eax, %%edi\n\t"
                     "mov $60, %%eax\n\t"
                     "syscall\n\t"
                     "hlt\n\t"
                     "1:\n\t"
                     : "=a"(ret)
                     : "a"(435L), "D"(ca), "S"(sizeof(*ca)), "r"(r12)
                     : "rcx", "r11", "memory");
    return ret;
}

/* clone3-thread-connect: a thread made with a raw clone3 (no glibc). */
static int cmd_clone3_thread_connect(const char *host, const char *port) {
    parse_dest(host, port, &shared.d);
    say_main(1);
    char *stack = child_stack();
    if (!stack)
        return 1;
    struct clone3_args ca;
    memset(&ca, 0, sizeof(ca));
    ca.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    ca.stack = (uint64_t)(uintptr_t)stack;
    ca.stack_size = CHILD_STACK_SIZE;
    long tid = clone3_run(&ca, shared_connect);
    if (tid < 0) {
        say_err("clone3", (int)-tid);
        return 1;
    }
    printf("clone3: tid=%ld\n", tid);
    fflush(stdout);
    while (!__atomic_load_n(&shared.done, __ATOMIC_SEQ_CST))
        sched_yield();
    return report_shared();
}
#endif

/* A call that must fail (bad pointers): prints its result as say_result;
 * returns 1 when it succeeded after all. */
static int must_fail(const char *op, long r) {
    return say_result(op, r) == 0;
}

/* bad-pointers PROXYHOST PROXYPORT: network calls with addresses the kernel
 * cannot read must fail with EFAULT; then a proxy connect must still work. */
static int cmd_bad_pointers(const char *host, const char *port) {
    struct dest d;
    start_dest(host, port, &d);
    int rc = 0;
    void *bad = (void *)(uintptr_t)16;
    /* A sockaddr that starts on a mapped page and runs into an unmapped one. */
    long pg = sysconf(_SC_PAGESIZE);
    char *two = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (two == MAP_FAILED) {
        say_err("mmap", errno);
        return 1;
    }
    munmap(two + pg, (size_t)pg);
    char *straddle = two + pg - 4;
    memcpy(straddle, &d.ss, 4);

    int tcp = open_socket(&d, SOCK_STREAM);
    rc |= must_fail("connect-bad", connect(tcp, bad, d.len));
    rc |= must_fail("connect-straddle", connect(tcp, (struct sockaddr *)straddle, d.len));
    close(tcp);
    int udp = open_socket(&d, SOCK_DGRAM);
    static char msg[] = "netprobe-bad";
    rc |= must_fail("sendto-bad", sendto(udp, msg, sizeof(msg) - 1, 0, bad, d.len));
    rc |= must_fail("sendto-baddata", sendto(udp, bad, 64, 0, (struct sockaddr *)&d.ss, d.len));
    struct iovec iov = {msg, sizeof(msg) - 1};
    struct msghdr mh = make_msghdr(bad, d.len, &iov, 1);
    rc |= must_fail("sendmsg-bad", sendmsg(udp, &mh, 0));
    rc |= must_fail("sendmsg-badhdr", sendmsg(udp, bad, 0));
    close(udp);
    if (tcp_connect_once(&d, 0) != 0)
        rc = 1;
    return rc;
}

/* race: one thread flips a shared sockaddr between two destinations as fast
 * as it can while this one connects COUNT times with it. */
static struct {
    uint64_t a, b; /* the first 8 bytes of each sockaddr_in */
    union {
        struct sockaddr_in sin;
        uint64_t head;
    } cur;
    volatile int stop;
    volatile long flips;
} race;

static void *race_flipper(void *unused) {
    (void)unused;
    long flips = 0;
    while (!race.stop) {
        __atomic_store_n(&race.cur.head, race.a, __ATOMIC_RELAXED);
        __atomic_store_n(&race.cur.head, race.b, __ATOMIC_RELAXED);
        flips += 2;
    }
    race.flips = flips;
    return NULL;
}

/* Parses "HOST PORT HOST PORT COUNT" (both IPv4) for the race between the
 * two addresses (the first one is where race.cur starts), prints the actor
 * line, and returns COUNT; the first destination goes to *first. */
static int race_setup(char **a, struct dest *first) {
    struct dest s;
    parse_dest(a[0], a[1], first);
    parse_dest(a[2], a[3], &s);
    int count = atoi(a[4]);
    if (first->family != AF_INET || s.family != AF_INET || count <= 0)
        usage();
    memcpy(&race.a, &first->ss, 8);
    memcpy(&race.b, &s.ss, 8);
    memcpy(&race.cur.sin, &first->ss, sizeof(race.cur.sin));
    actor();
    return count;
}

/* Starts the flipper thread; 0, or 1 after printing why it could not. */
static int race_start(pthread_t *t) {
    int e = pthread_create(t, NULL, race_flipper, NULL);
    if (e != 0) {
        say_err("pthread_create", e);
        return 1;
    }
    return 0;
}

/* How the raced calls went. */
struct race_tally {
    int ok, eperm, other, first_other;
};

static void tally_other(struct race_tally *n, int err) {
    n->other++;
    if (!n->first_other)
        n->first_other = err;
}

/* Counts one raced call by its result r (>= 0: ok) and errno. */
static void tally(struct race_tally *n, long r) {
    if (r >= 0)
        n->ok++;
    else if (errno == EPERM)
        n->eperm++;
    else
        tally_other(n, errno);
}

/* Stops the flipper and prints the "race:" line; the exit status is 0 unless
 * a call failed otherwise than with EPERM. */
static int race_end(pthread_t t, const struct race_tally *n) {
    race.stop = 1;
    pthread_join(t, NULL);
    printf("race: ok=%d eperm=%d other=%d flips=%ld", n->ok, n->eperm, n->other, race.flips);
    if (n->first_other)
        printf(" first_other=%d (%s)", n->first_other, strerror(n->first_other));
    printf("\n");
    fflush(stdout);
    return n->other == 0 ? 0 : 1;
}

static int cmd_race(char **a) {
    struct dest p;
    int count = race_setup(a, &p);
    pthread_t t;
    if (race_start(&t) != 0)
        return 1;
    struct race_tally n = {0, 0, 0, 0};
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            tally_other(&n, errno);
            continue;
        }
        tally(&n, connect(fd, (struct sockaddr *)&race.cur.sin, sizeof(race.cur.sin)));
        close(fd);
    }
    return race_end(t, &n);
}

/* race-sendto: as race, with UDP sendto calls on one socket. */
static int cmd_race_sendto(char **a) {
    struct dest p;
    int count = race_setup(a, &p);
    int fd = open_socket(&p, SOCK_DGRAM);
    pthread_t t;
    if (race_start(&t) != 0)
        return 1;
    static const char msg[] = "netprobe-race";
    struct race_tally n = {0, 0, 0, 0};
    for (int i = 0; i < count; i++)
        tally(&n, sendto(fd, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&race.cur.sin, sizeof(race.cur.sin)));
    int rc = race_end(t, &n);
    close(fd);
    return rc;
}

/* uring-setup-raw: io_uring_setup as a raw system call (no liburing), in
 * whatever ABI this binary was built for (425 on both x86_64 and i386). */
static int cmd_uring_setup_raw(void) {
    actor();
    unsigned char params[120];
    memset(params, 0, sizeof(params));
    long fd = syscall(425, 8, params);
    return finish("setup", fd, (int)fd);
}

/* udp-bind HOST PORT: bind a datagram socket (to receive on it). */
static int cmd_udp_bind(const char *host, const char *port) {
    struct dest d;
    start_dest(host, port, &d);
    int fd = open_socket(&d, SOCK_DGRAM);
    return finish("bind", bind(fd, (const struct sockaddr *)&d.ss, d.len), fd);
}

/* "OP: ok" when err is 0, else "OP: errno=ERR (...)". */
static void say_errno(const char *op, int err) {
    if (err != 0)
        say_err(op, err);
    else
        say_ok(op);
}

/* connect-wait-connect: proxy connect, then wait for a line on FIFO (the
 * test kills the supervisor meanwhile), then connect to the sink and to the
 * proxy again. */
static int cmd_connect_wait_connect(char **a) {
    struct dest p, s;
    parse_dest(a[0], a[1], &p);
    parse_dest(a[2], a[3], &s);
    actor();
    say_errno("first", tcp_connect_once(&p, 1));
    int fifo = open(a[4], O_RDONLY | O_CLOEXEC);
    if (fifo < 0) {
        say_err("open-fifo", errno);
        return 1;
    }
    char buf[64];
    ssize_t n = read(fifo, buf, sizeof(buf));
    close(fifo);
    printf("waited: %zd\n", n);
    fflush(stdout);
    say_errno("second-sink", tcp_connect_once(&s, 1));
    say_errno("second-proxy", tcp_connect_once(&p, 1));
    return 0;
}

/* stall-then-connect connect|accept PROXYHOST PROXYPORT: a second thread
 * starts a call that waits and never ends by itself (a blocking connect to a
 * loopback listener whose accept queue is full, or a blocking accept nobody
 * answers); a moment later the main thread connects to the proxy, reports,
 * and exits without waiting for the stalled thread. */
static int stall_listener = -1;
static int stall_port;

static void *stall_thread(void *arg) {
    const char *mode = arg;
    if (!strcmp(mode, "accept")) {
        int c = accept(stall_listener, NULL, NULL);
        say_result("stalled-accept", c);
        return NULL;
    }
    struct dest d;
    char port[16];
    snprintf(port, sizeof port, "%d", stall_port);
    parse_dest("127.0.0.1", port, &d);
    /* The first fills the accept queue (backlog 0); the second waits for room. */
    say_errno("fill", tcp_connect_once(&d, 1));
    say_errno("stalled-connect", tcp_connect_once(&d, 1));
    return NULL;
}

static int cmd_stall_then_connect(char **a) {
    if (strcmp(a[0], "connect") && strcmp(a[0], "accept"))
        usage();
    struct dest p;
    parse_dest(a[1], a[2], &p);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof local;
    stall_listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (stall_listener < 0 || bind(stall_listener, (struct sockaddr *)&local, sizeof local) != 0 ||
        listen(stall_listener, 0) != 0 || getsockname(stall_listener, (struct sockaddr *)&local, &len) != 0) {
        say_err("listener", errno);
        return 1;
    }
    stall_port = ntohs(local.sin_port);
    pthread_t t;
    if ((errno = pthread_create(&t, NULL, stall_thread, a[0])) != 0) {
        say_err("pthread_create", errno);
        return 1;
    }
    usleep(300 * 1000);
    actor();
    int err = tcp_connect_once(&p, 1);
    say_errno("proxy", err);
    _exit(err == 0 ? 0 : 1);
}

/* tcp-connect-info: connect, then print the socket cookie and local port. */
static int cmd_tcp_connect_info(const char *host, const char *port) {
    struct dest d;
    int fd = connect_dest(host, port, SOCK_STREAM, &d);
    if (fd < 0)
        return 1;
    uint64_t cookie = 0;
    socklen_t cl = sizeof(cookie);
    if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &cl) != 0) {
        say_err("getsockopt-cookie", errno);
        return 1;
    }
    struct sockaddr_storage local;
    socklen_t ll = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &ll) != 0) {
        say_err("getsockname", errno);
        return 1;
    }
    int lport = local.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&local)->sin_port)
                                           : ntohs(((struct sockaddr_in6 *)&local)->sin6_port);
    printf("info: fd=%d cookie=%" PRIu64 " local_port=%d\n", fd, cookie, lport);
    fflush(stdout);
    static const char msg[] = "netprobe-info\n";
    send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL);
    close(fd);
    return 0;
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t len) {
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        port = ntohs(in->sin_port);
        snprintf(out, len, "%s:%d", ip, port);
    } else {
        const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in->sin6_addr, ip, sizeof(ip));
        port = ntohs(in->sin6_port);
        snprintf(out, len, "[%s]:%d", ip, port);
    }
}

/* serve HOST PORT N: listen, then accept N connections; each gets a greeting
 * and is closed. */
static int cmd_serve(const char *host, const char *port, const char *n_s) {
    struct dest d;
    start_dest(host, port, &d);
    int n = atoi(n_s);
    int fd = open_socket(&d, SOCK_STREAM);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&d.ss, d.len) != 0) {
        say_err("bind", errno);
        return 1;
    }
    if (listen(fd, 16) != 0) {
        say_err("listen", errno);
        return 1;
    }
    struct sockaddr_storage local;
    socklen_t ll = sizeof(local);
    getsockname(fd, (struct sockaddr *)&local, &ll);
    char shown[80];
    format_addr(&local, shown, sizeof(shown));
    printf("listen: ok local=%s port=%d\n", shown,
           local.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&local)->sin_port)
                                      : ntohs(((struct sockaddr_in6 *)&local)->sin6_port));
    fflush(stdout);
    for (int i = 0; i < n; i++) {
        struct sockaddr_storage peer;
        socklen_t pl = sizeof(peer);
        memset(&peer, 0, sizeof(peer));
        int c = accept(fd, (struct sockaddr *)&peer, &pl);
        if (c < 0) {
            say_err("accept", errno);
            return 1;
        }
        format_addr(&peer, shown, sizeof(shown));
        printf("accept: ok peer=%s\n", shown);
        fflush(stdout);
        static const char greeting[] = "hello-from-server\n";
        if (send(c, greeting, sizeof(greeting) - 1, MSG_NOSIGNAL) < 0)
            say_err("send", errno);
        close(c);
    }
    close(fd);
    return 0;
}

/* tcp-exchange HOST PORT: connect and read until the server closes. */
static int cmd_tcp_exchange(const char *host, const char *port) {
    struct dest d;
    int fd = connect_dest(host, port, SOCK_STREAM, &d);
    if (fd < 0)
        return 1;
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[256];
    size_t total = 0;
    int err = 0;
    for (;;) {
        ssize_t r = read(fd, buf + total, sizeof(buf) - 1 - total);
        if (r < 0) {
            err = errno;
            break;
        }
        if (r == 0)
            break;
        total += (size_t)r;
        if (total >= sizeof(buf) - 1)
            break;
    }
    buf[total] = '\0';
    for (size_t i = 0; i < total; i++)
        if (buf[i] == '\n')
            buf[i] = '|';
    if (err)
        printf("recv: bytes=%zu errno=%d (%s) data=%s\n", total, err, strerror(err), buf);
    else
        printf("recv: bytes=%zu eof data=%s\n", total, buf);
    fflush(stdout);
    close(fd);
    return 0;
}

#if defined(__i386__)
/* The i386 ABI by hand: socketcall(2) multiplexing and the direct calls. */
static int cmd_sc_connect(const char *host, const char *port) {
    struct dest d;
    start_dest(host, port, &d);
    int fd = open_socket(&d, SOCK_STREAM);
    unsigned long args[3] = {(unsigned long)fd, (unsigned long)&d.ss, d.len};
    if (say_result("connect", syscall(SYS_socketcall, SYS_CONNECT, args)) != 0)
        return 1;
    static const char msg[] = "netprobe-socketcall\n";
    unsigned long sargs[6] = {(unsigned long)fd, (unsigned long)msg, sizeof(msg) - 1, MSG_NOSIGNAL, 0, 0};
    say_result("send", syscall(SYS_socketcall, SYS_SENDTO, sargs));
    close(fd);
    return 0;
}

static int cmd_sc_sendto(const char *host, const char *port) {
    struct dest d;
    start_dest(host, port, &d);
    int fd = open_socket(&d, SOCK_DGRAM);
    static const char msg[] = "netprobe-socketcall-sendto";
    unsigned long args[6] = {(unsigned long)fd, (unsigned long)msg, sizeof(msg) - 1, 0,
                             (unsigned long)&d.ss, d.len};
    return finish("sendto", syscall(SYS_socketcall, SYS_SENDTO, args), fd);
}

/* i386-connect: the direct i386 connect system call (362), not socketcall. */
static int cmd_i386_connect(const char *host, const char *port) {
    struct dest d;
    start_dest(host, port, &d);
    int fd = (int)syscall(359, d.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        say_err("socket", errno);
        return 1;
    }
    return finish("connect", syscall(362, fd, &d.ss, d.len), fd);
}

static int hold_pipe[2];

static void *sc_holder(void *unused) {
    (void)unused;
    char c;
    while (read(hold_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

/* sc-unix-connect PATH THREADS: a unix connect through socketcall while
 * THREADS other threads exist (0: single-threaded). */
static int cmd_sc_unix_connect(const char *path, const char *threads_s) {
    int threads = atoi(threads_s);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path))
        usage();
    strcpy(sun.sun_path, path);
    /* Created before any thread exists. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        say_err("socket", errno);
        return 1;
    }
    if (pipe(hold_pipe) != 0) {
        say_err("pipe", errno);
        return 1;
    }
    pthread_t *ts = calloc((size_t)threads + 1, sizeof(*ts));
    for (int i = 0; i < threads; i++) {
        int e = pthread_create(&ts[i], NULL, sc_holder, NULL);
        if (e != 0) {
            say_err("pthread_create", e);
            return 1;
        }
    }
    actor();
    printf("threads: extra=%d\n", threads);
    fflush(stdout);
    unsigned long args[3] = {(unsigned long)fd, (unsigned long)&sun, sizeof(sun)};
    int rc = 0;
    if (syscall(SYS_socketcall, SYS_CONNECT, args) != 0) {
        say_err("connect", errno);
        rc = 1;
    } else {
        say_ok("connect");
        static const char msg[] = "netprobe-sc-unix\n";
        say_result("send", write(fd, msg, sizeof(msg) - 1));
    }
    close(hold_pipe[1]);
    for (int i = 0; i < threads; i++)
        pthread_join(ts[i], NULL);
    close(fd);
    return rc;
}
#endif

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
    if (!strcmp(cmd, "tfo-sendto") && n == 2)
        return cmd_tfo(a[0], a[1], 0);
    if (!strcmp(cmd, "tfo-sendmsg") && n == 2)
        return cmd_tfo(a[0], a[1], 1);
    if (!strcmp(cmd, "raw-socket") && n == 1)
        return cmd_raw_socket(a[0]);
    if (!strcmp(cmd, "raw-udp") && n == 2)
        return cmd_raw_udp(a[0], a[1]);
    if (!strcmp(cmd, "packet-socket") && n == 0)
        return cmd_packet_socket();
    if (!strcmp(cmd, "packet-udp") && n == 2)
        return cmd_packet_udp(a[0], a[1]);
    if (!strcmp(cmd, "vfork-connect") && n == 2)
        return cmd_vfork_connect(a[0], a[1]);
    if (!strcmp(cmd, "clone-vm-connect") && n == 2)
        return cmd_clone_vm_connect(a[0], a[1]);
#if defined(__x86_64__)
    if (!strcmp(cmd, "clone3-thread-connect") && n == 2)
        return cmd_clone3_thread_connect(a[0], a[1]);
#endif
    if (!strcmp(cmd, "bad-pointers") && n == 2)
        return cmd_bad_pointers(a[0], a[1]);
    if (!strcmp(cmd, "race") && n == 5)
        return cmd_race(a);
    if (!strcmp(cmd, "race-sendto") && n == 5)
        return cmd_race_sendto(a);
    if (!strcmp(cmd, "uring-setup-raw") && n == 0)
        return cmd_uring_setup_raw();
    if (!strcmp(cmd, "udp-bind") && n == 2)
        return cmd_udp_bind(a[0], a[1]);
    if (!strcmp(cmd, "connect-wait-connect") && n == 5)
        return cmd_connect_wait_connect(a);
    if (!strcmp(cmd, "stall-then-connect") && n == 3)
        return cmd_stall_then_connect(a);
    if (!strcmp(cmd, "tcp-connect-info") && n == 2)
        return cmd_tcp_connect_info(a[0], a[1]);
    if (!strcmp(cmd, "serve") && n == 3)
        return cmd_serve(a[0], a[1], a[2]);
    if (!strcmp(cmd, "tcp-exchange") && n == 2)
        return cmd_tcp_exchange(a[0], a[1]);
#if defined(__i386__)
    if (!strcmp(cmd, "sc-connect") && n == 2)
        return cmd_sc_connect(a[0], a[1]);
    if (!strcmp(cmd, "sc-sendto") && n == 2)
        return cmd_sc_sendto(a[0], a[1]);
    if (!strcmp(cmd, "i386-connect") && n == 2)
        return cmd_i386_connect(a[0], a[1]);
    if (!strcmp(cmd, "sc-unix-connect") && n == 2)
        return cmd_sc_unix_connect(a[0], a[1]);
#endif
    usage();
    return 2;
}
