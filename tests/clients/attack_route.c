/* attack_route: socket options and control messages that try to move a
 * packet's first hop away from the address the program connects or sends to
 * (the proxy, or an allowed loopback address).
 *
 * Prints "actor: pid=P tid=T", then one line per step, "OP: ok" or
 * "OP: errno=N (message)"; exits 1 at the first failed step that matters.
 *
 *   rthdr6 PORT SEG                 TCP to [::1]:PORT with an IPv6 type-4 routing header via SEG
 *   bind-dev IF HOST PORT tcp|udp   SO_BINDTODEVICE(IF), then connect or sendto HOST:PORT
 *   bind-ifindex IF HOST PORT tcp|udp   SO_BINDTOIFINDEX
 *   unicast-if IF HOST PORT tcp|udp IP_UNICAST_IF / IPV6_UNICAST_IF (by HOST's family)
 *   mark HOST PORT                  SO_MARK, then UDP sendto
 *   lsrr HOST PORT HOP              IP_OPTIONS loose source route via HOP, then UDP sendto
 *   cmsg-retopts HOST PORT HOP      UDP sendmsg with an IP_RETOPTS source route via HOP
 *   cmsg-pktinfo HOST PORT IF       UDP sendmsg with IP_PKTINFO naming interface IF
 *   cmsg-pktinfo6 HOST PORT IF      UDP sendmsg with IPV6_PKTINFO naming interface IF
 *   cmsg-rthdr6 HOST PORT SEG       UDP sendmsg with an IPV6_RTHDR (type 2) via SEG
 *   cmsg-ok HOST PORT               UDP sendmsg with harmless control messages (TTL, TOS, PKTINFO ifindex 0)
 *   packet-hibits                   socket() with AF_PACKET plus high bits set in the register
 *   mptcp HOST PORT                 socket(IPPROTO_MPTCP), falling back to TCP on EPROTONOSUPPORT
 *   ordinary HOST PORT              ordinary options (SO_REUSEADDR, TCP_NODELAY, ...) then connect
 *
 * Built with -m32, setsockopt goes through socketcall(SYS_SETSOCKOPT) when
 * the environment has ATTACK_SOCKETCALL=1, else through the direct call.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_BINDTOIFINDEX
#define SO_BINDTOIFINDEX 62
#endif
#ifndef IP_UNICAST_IF
#define IP_UNICAST_IF 50
#endif
#ifndef IPV6_UNICAST_IF
#define IPV6_UNICAST_IF 76
#endif
#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

static int step(const char *op, long r) {
    if (r < 0) {
        int err = errno;
        printf("%s: errno=%d (%s)\n", op, err, strerror(err));
        fflush(stdout);
        errno = err;
        return -1;
    }
    printf("%s: ok\n", op);
    fflush(stdout);
    return 0;
}

static void must(const char *op, long r) {
    if (step(op, r) < 0)
        exit(1);
}

static int opt(int fd, int level, int name, const void *val, socklen_t len) {
#ifdef __i386__
    const char *sc = getenv("ATTACK_SOCKETCALL");
    if (sc && strcmp(sc, "1") == 0) {
        unsigned long args[5] = {(unsigned long)fd, (unsigned long)level, (unsigned long)name,
                                 (unsigned long)val, (unsigned long)len};
        return (int)syscall(SYS_socketcall, 14 /* SYS_SETSOCKOPT */, args);
    }
    return (int)syscall(366 /* setsockopt */, fd, level, name, val, len);
#else
    return (int)syscall(SYS_setsockopt, fd, level, name, val, len);
#endif
}

static void actor(void) {
    printf("actor: pid=%d tid=%ld\n", (int)getpid(), (long)syscall(SYS_gettid));
    fflush(stdout);
}

/* HOST and PORT as a sockaddr; returns its length. */
static socklen_t dest(const char *host, const char *port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)atoi(port));
        return sizeof *a4;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)atoi(port));
        return sizeof *a6;
    }
    fprintf(stderr, "bad host %s\n", host);
    exit(2);
}

static const char payload[] = "attack-route";

/* Connects (TCP, non-blocking: the SYN leaves, nobody may answer) or sends
 * one datagram (UDP) to sa. */
static void reach(int fd, int tcp, const struct sockaddr_storage *sa, socklen_t len) {
    if (tcp) {
        int r = connect(fd, (const struct sockaddr *)sa, len);
        if (r < 0 && errno == EINPROGRESS) {
            printf("connect: in progress\n");
            usleep(300 * 1000);
            return;
        }
        must("connect", r);
    } else {
        must("sendto", sendto(fd, payload, sizeof payload - 1, 0, (const struct sockaddr *)sa, len));
        usleep(100 * 1000);
    }
}

static int open_for(int family, int tcp) {
    int fd = socket(family, tcp ? SOCK_STREAM | SOCK_NONBLOCK : SOCK_DGRAM, 0);
    must("socket", fd);
    return fd;
}

static int cmd_rthdr6(char **argv) {
    struct sockaddr_storage sa;
    socklen_t len = dest("::1", argv[0], &sa);
    unsigned char srh[8 + 32];
    memset(srh, 0, sizeof srh);
    srh[1] = 4; /* hdrlen: 2 segments of 16 bytes, in 8-byte units */
    srh[2] = 4; /* type 4: segment routing */
    srh[3] = 1; /* segments left */
    srh[4] = 1; /* first segment */
    inet_pton(AF_INET6, "::1", srh + 8);
    if (inet_pton(AF_INET6, argv[1], srh + 8 + 16) != 1)
        return 2;
    int fd = open_for(AF_INET6, 1);
    actor();
    must("setsockopt", opt(fd, IPPROTO_IPV6, IPV6_RTHDR, srh, sizeof srh));
    reach(fd, 1, &sa, len);
    return 0;
}

static int cmd_bind(char **argv, int how) {
    struct sockaddr_storage sa;
    socklen_t len = dest(argv[1], argv[2], &sa);
    int tcp = strcmp(argv[3], "tcp") == 0;
    int fd = open_for(sa.ss_family, tcp);
    unsigned idx = if_nametoindex(argv[0]);
    actor();
    if (how == 0) {
        must("setsockopt", opt(fd, SOL_SOCKET, SO_BINDTODEVICE, argv[0], (socklen_t)strlen(argv[0])));
    } else if (how == 1) {
        int v = (int)idx;
        must("setsockopt", opt(fd, SOL_SOCKET, SO_BINDTOIFINDEX, &v, sizeof v));
    } else if (sa.ss_family == AF_INET) {
        uint32_t v = htonl(idx);
        must("setsockopt", opt(fd, IPPROTO_IP, IP_UNICAST_IF, &v, sizeof v));
    } else {
        uint32_t v = htonl(idx); /* network byte order here too */
        must("setsockopt", opt(fd, IPPROTO_IPV6, IPV6_UNICAST_IF, &v, sizeof v));
    }
    reach(fd, tcp, &sa, len);
    return 0;
}

static int cmd_mark(char **argv) {
    struct sockaddr_storage sa;
    socklen_t len = dest(argv[0], argv[1], &sa);
    int fd = open_for(sa.ss_family, 0);
    int mark = 77;
    actor();
    must("setsockopt", opt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark));
    reach(fd, 0, &sa, len);
    return 0;
}

/* An IPv4 loose source route option via HOP (NOP-padded to 8 bytes). */
static void lsrr(const char *hop, unsigned char out[8]) {
    out[0] = IPOPT_NOP;
    out[1] = IPOPT_LSRR;
    out[2] = 7;
    out[3] = 4;
    if (inet_pton(AF_INET, hop, out + 4) != 1)
        exit(2);
}

static int cmd_lsrr(char **argv) {
    struct sockaddr_storage sa;
    socklen_t len = dest(argv[0], argv[1], &sa);
    unsigned char o[8];
    lsrr(argv[2], o);
    int fd = open_for(AF_INET, 0);
    actor();
    must("setsockopt", opt(fd, IPPROTO_IP, IP_OPTIONS, o, sizeof o));
    reach(fd, 0, &sa, len);
    return 0;
}

/* sendmsg of the payload to HOST:PORT with one control message. */
static int send_with_cmsg(const char *host, const char *port, int level, int type, const void *data,
                          size_t dlen) {
    struct sockaddr_storage sa;
    socklen_t len = dest(host, port, &sa);
    int fd = open_for(sa.ss_family, 0);
    union {
        char buf[256];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct iovec iov = {.iov_base = (void *)payload, .iov_len = sizeof payload - 1};
    struct msghdr m = {.msg_name = &sa, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1};
    m.msg_control = u.buf;
    m.msg_controllen = CMSG_SPACE(dlen);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(dlen);
    memcpy(CMSG_DATA(c), data, dlen);
    actor();
    must("sendmsg", sendmsg(fd, &m, 0));
    usleep(100 * 1000);
    return 0;
}

static int cmd_cmsg_ok(char **argv) {
    struct sockaddr_storage sa;
    socklen_t len = dest(argv[0], argv[1], &sa);
    int fd = open_for(AF_INET, 0);
    union {
        char buf[256];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct iovec iov = {.iov_base = (void *)payload, .iov_len = sizeof payload - 1};
    struct msghdr m = {.msg_name = &sa, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1};
    m.msg_control = u.buf;
    m.msg_controllen = 2 * CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct in_pktinfo));
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    int ttl = 9, tos = 0x10;
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_TTL;
    c->cmsg_len = CMSG_LEN(sizeof ttl);
    memcpy(CMSG_DATA(c), &ttl, sizeof ttl);
    c = CMSG_NXTHDR(&m, c);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_TOS;
    c->cmsg_len = CMSG_LEN(sizeof tos);
    memcpy(CMSG_DATA(c), &tos, sizeof tos);
    c = CMSG_NXTHDR(&m, c);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    actor();
    must("sendmsg", sendmsg(fd, &m, 0));
    return 0;
}

static int cmd_packet_hibits(void) {
    actor();
    long r = syscall(SYS_socket, 0x100000011L, SOCK_DGRAM, 0);
    must("socket", r);
    return 0;
}

static int cmd_mptcp(char **argv) {
    struct sockaddr_storage sa;
    socklen_t len = dest(argv[0], argv[1], &sa);
    actor();
    int fd = socket(sa.ss_family, SOCK_STREAM, IPPROTO_MPTCP);
    if (step("socket-mptcp", fd) < 0) {
        if (errno != EPROTONOSUPPORT)
            return 1;
        fd = socket(sa.ss_family, SOCK_STREAM, 0);
        must("socket-tcp", fd);
    }
    must("connect", connect(fd, (struct sockaddr *)&sa, len));
    must("send", send(fd, payload, sizeof payload - 1, 0));
    return 0;
}

static int cmd_ordinary(char **argv) {
    struct sockaddr_storage sa;
    socklen_t len = dest(argv[0], argv[1], &sa);
    int one = 1, tos = 0x10;
    int v6 = socket(AF_INET6, SOCK_STREAM, 0);
    must("socket6", v6);
    must("IPV6_V6ONLY", opt(v6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one));
    int fd = socket(sa.ss_family, SOCK_STREAM, 0);
    must("socket", fd);
    actor();
    must("SO_REUSEADDR", opt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    must("SO_KEEPALIVE", opt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one));
    must("TCP_NODELAY", opt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    if (sa.ss_family == AF_INET)
        must("IP_TOS", opt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos));
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    must("SO_RCVTIMEO", opt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    struct timeval back;
    socklen_t blen = sizeof back;
    must("getsockopt", getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &back, &blen));
    printf("rcvtimeo: sec=%ld\n", (long)back.tv_sec);
    int got = 0;
    blen = sizeof got;
    must("getsockopt", getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &got, &blen));
    printf("nodelay: value=%d\n", got);
    must("connect", connect(fd, (struct sockaddr *)&sa, len));
    must("send", send(fd, payload, sizeof payload - 1, 0));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: attack_route CMD ARGS...\n");
        return 2;
    }
    const char *cmd = argv[1];
    char **a = argv + 2;
    int n = argc - 2;
    if (!strcmp(cmd, "rthdr6") && n == 2)
        return cmd_rthdr6(a);
    if (!strcmp(cmd, "bind-dev") && n == 4)
        return cmd_bind(a, 0);
    if (!strcmp(cmd, "bind-ifindex") && n == 4)
        return cmd_bind(a, 1);
    if (!strcmp(cmd, "unicast-if") && n == 4)
        return cmd_bind(a, 2);
    if (!strcmp(cmd, "mark") && n == 2)
        return cmd_mark(a);
    if (!strcmp(cmd, "lsrr") && n == 3)
        return cmd_lsrr(a);
    if (!strcmp(cmd, "cmsg-retopts") && n == 3) {
        unsigned char o[8];
        lsrr(a[2], o);
        return send_with_cmsg(a[0], a[1], IPPROTO_IP, IP_RETOPTS, o, sizeof o);
    }
    if (!strcmp(cmd, "cmsg-pktinfo") && n == 3) {
        struct in_pktinfo pi;
        memset(&pi, 0, sizeof pi);
        pi.ipi_ifindex = (int)if_nametoindex(a[2]);
        return send_with_cmsg(a[0], a[1], IPPROTO_IP, IP_PKTINFO, &pi, sizeof pi);
    }
    if (!strcmp(cmd, "cmsg-pktinfo6") && n == 3) {
        struct in6_pktinfo pi;
        memset(&pi, 0, sizeof pi);
        pi.ipi6_ifindex = if_nametoindex(a[2]);
        return send_with_cmsg(a[0], a[1], IPPROTO_IPV6, IPV6_PKTINFO, &pi, sizeof pi);
    }
    if (!strcmp(cmd, "cmsg-rthdr6") && n == 3) {
        unsigned char rt[24];
        memset(rt, 0, sizeof rt);
        rt[1] = 2; /* hdrlen */
        rt[2] = 2; /* type 2 */
        rt[3] = 1; /* segments left */
        if (inet_pton(AF_INET6, a[2], rt + 8) != 1)
            return 2;
        return send_with_cmsg(a[0], a[1], IPPROTO_IPV6, IPV6_RTHDR, rt, sizeof rt);
    }
    if (!strcmp(cmd, "cmsg-ok") && n == 2)
        return cmd_cmsg_ok(a);
    if (!strcmp(cmd, "packet-hibits") && n == 0)
        return cmd_packet_hibits();
    if (!strcmp(cmd, "mptcp") && n == 2)
        return cmd_mptcp(a);
    if (!strcmp(cmd, "ordinary") && n == 2)
        return cmd_ordinary(a);
    fprintf(stderr, "unknown command or wrong arguments: %s\n", cmd);
    return 2;
}
