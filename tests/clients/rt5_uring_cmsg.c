/* rt5_uring_cmsg: a datagram to an allowed address, sent with IORING_OP_SENDMSG (never seen by
 * seccomp) and a control message that moves its first hop.
 *
 *   rt5_uring_cmsg pktinfo4 HOST4 PORT IFNAME    IP_PKTINFO naming interface IFNAME
 *   rt5_uring_cmsg pktinfo6 HOST6 PORT IFNAME    IPV6_PKTINFO naming interface IFNAME
 *   rt5_uring_cmsg rthdr6 HOST6 PORT HOP6        IPV6_RTHDR (type 2) through HOP6
 *
 * Prints "uring-sendmsg: ok" or "uring-sendmsg: errno=N"; exit status 0 when sent, 1 when
 * refused, 2 on a setup failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <liburing.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: rt5_uring_cmsg pktinfo4|pktinfo6|rthdr6 HOST PORT IFNAME|HOP6\n");
        return 2;
    }
    const char *mode = argv[1];
    int v6 = strcmp(mode, "pktinfo4") != 0;
    struct sockaddr_storage dst;
    socklen_t dst_len;
    memset(&dst, 0, sizeof dst);
    if (v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&dst;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((unsigned short)atoi(argv[3]));
        if (inet_pton(AF_INET6, argv[2], &s6->sin6_addr) != 1)
            return 2;
        dst_len = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&dst;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((unsigned short)atoi(argv[3]));
        if (inet_pton(AF_INET, argv[2], &s4->sin_addr) != 1)
            return 2;
        dst_len = sizeof *s4;
    }
    static union {
        char buf[CMSG_SPACE(64)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct cmsghdr *c = &control.align;
    size_t control_len;
    if (!strcmp(mode, "pktinfo4")) {
        struct in_pktinfo pi;
        memset(&pi, 0, sizeof pi);
        pi.ipi_ifindex = (int)if_nametoindex(argv[4]);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof pi);
        memcpy(CMSG_DATA(c), &pi, sizeof pi);
        control_len = CMSG_SPACE(sizeof pi);
    } else if (!strcmp(mode, "pktinfo6")) {
        struct in6_pktinfo pi;
        memset(&pi, 0, sizeof pi);
        pi.ipi6_ifindex = if_nametoindex(argv[4]);
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof pi);
        memcpy(CMSG_DATA(c), &pi, sizeof pi);
        control_len = CMSG_SPACE(sizeof pi);
    } else if (!strcmp(mode, "rthdr6")) {
        unsigned char rt[24];
        memset(rt, 0, sizeof rt);
        rt[1] = 2; /* hdrlen */
        rt[2] = 2; /* type 2 */
        rt[3] = 1; /* segments left */
        if (inet_pton(AF_INET6, argv[4], rt + 8) != 1)
            return 2;
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_RTHDR;
        c->cmsg_len = CMSG_LEN(sizeof rt);
        memcpy(CMSG_DATA(c), rt, sizeof rt);
        control_len = CMSG_SPACE(sizeof rt);
    } else {
        return 2;
    }
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return 2;
    static struct io_uring ring;
    int r = io_uring_queue_init(8, &ring, 0);
    if (r < 0) {
        printf("setup: errno=%d\n", -r);
        return 2;
    }
    static char payload[] = "uring-cmsg";
    struct iovec iov = {.iov_base = payload, .iov_len = sizeof payload - 1};
    struct msghdr msg = {
        .msg_name = &dst, .msg_namelen = dst_len, .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = &control, .msg_controllen = control_len,
    };
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_sendmsg(sqe, fd, &msg, 0);
    io_uring_submit(&ring);
    struct io_uring_cqe *cqe;
    if (io_uring_wait_cqe(&ring, &cqe) < 0)
        return 2;
    int res = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
    if (res < 0) {
        printf("uring-sendmsg: errno=%d\n", -res);
        return 1;
    }
    printf("uring-sendmsg: ok\n");
    return 0;
}
