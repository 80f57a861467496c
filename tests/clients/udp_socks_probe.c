/* UDP through a SOCKS5 relay, as a program sees it.
 *
 *   udp_socks_probe mmsg HOST PORT        sendmmsg 3 datagrams, recvmmsg the 3 replies and
 *                                         print each: "mmsg PAYLOAD SRC_IP SRC_PORT"
 *   udp_socks_probe burst N HOST PORT     sendto N datagrams ("seq-%d") on one socket
 *   udp_socks_probe burst-connected N HOST PORT
 *                                         connect, then send N datagrams (no address)
 *   udp_socks_probe rtt N HOST PORT       N sendto/recvfrom round trips; prints "rtt_ns AVG"
 *   udp_socks_probe flood N HOST PORT     N sendto as fast as they go; prints "send_ns AVG"
 *
 * HOST is an IPv4 or IPv6 literal. Bursts pause 1 ms every 10 datagrams, so that the
 * proxy's own socket buffers (not sockstrace) set no limit. Exits 0 on success. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static socklen_t peer_of(const char *host, const char *port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((unsigned short)atoi(port));
        return sizeof(*in4);
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((unsigned short)atoi(port));
        return sizeof(*in6);
    }
    fprintf(stderr, "bad host %s\n", host);
    exit(2);
}

static void show(const char *tag, const char *data, size_t len, const struct sockaddr_storage *from) {
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (from->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)from;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        port = ntohs(a->sin_port);
    } else if (from->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)from;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
    }
    printf("%s %.*s %s %u\n", tag, (int)len, data, ip, port);
    fflush(stdout);
}

static int open_socket(int family) {
    int fd = socket(family, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("socket");
        exit(1);
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int mmsg(const char *host, const char *port) {
    struct sockaddr_storage peer;
    socklen_t len = peer_of(host, port, &peer);
    int fd = open_socket(peer.ss_family);
    char *payloads[3] = {"alpha", "beta", "gamma"};
    struct mmsghdr out[3];
    struct iovec oiov[3];
    memset(out, 0, sizeof(out));
    for (int i = 0; i < 3; i++) {
        oiov[i].iov_base = payloads[i];
        oiov[i].iov_len = strlen(payloads[i]);
        out[i].msg_hdr.msg_name = &peer;
        out[i].msg_hdr.msg_namelen = len;
        out[i].msg_hdr.msg_iov = &oiov[i];
        out[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(fd, out, 3, 0);
    if (sent != 3) {
        fprintf(stderr, "sendmmsg: %d (%s)\n", sent, strerror(errno));
        return 1;
    }
    char bufs[3][64];
    struct sockaddr_storage froms[3];
    struct iovec iiov[3];
    struct mmsghdr in[3];
    int got = 0;
    while (got < 3) {
        memset(in, 0, sizeof(in));
        for (int i = 0; i < 3; i++) {
            iiov[i].iov_base = bufs[i];
            iiov[i].iov_len = sizeof(bufs[i]);
            in[i].msg_hdr.msg_name = &froms[i];
            in[i].msg_hdr.msg_namelen = sizeof(froms[i]);
            in[i].msg_hdr.msg_iov = &iiov[i];
            in[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, in, 3 - got, MSG_WAITFORONE, NULL);
        if (n <= 0) {
            fprintf(stderr, "recvmmsg: %d (%s)\n", n, strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) show("mmsg", bufs[i], in[i].msg_len, &froms[i]);
        got += n;
    }
    return 0;
}

static int burst(int connected, long count, const char *host, const char *port) {
    struct sockaddr_storage peer;
    socklen_t len = peer_of(host, port, &peer);
    int fd = open_socket(peer.ss_family);
    if (connected && connect(fd, (struct sockaddr *)&peer, len) != 0) {
        perror("connect");
        return 1;
    }
    struct timespec pause = {.tv_nsec = 1000000};
    for (long i = 0; i < count; i++) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "seq-%ld", i);
        ssize_t r = connected ? send(fd, buf, n, 0) : sendto(fd, buf, n, 0, (struct sockaddr *)&peer, len);
        if (r != n) {
            fprintf(stderr, "send %ld: %s\n", i, strerror(errno));
            return 1;
        }
        if (i % 10 == 9) nanosleep(&pause, NULL);
    }
    printf("sent %ld\n", count);
    return 0;
}

static int flood(long count, const char *host, const char *port) {
    struct sockaddr_storage peer;
    socklen_t len = peer_of(host, port, &peer);
    int fd = open_socket(peer.ss_family);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < count; i++) {
        if (sendto(fd, "datagram", 8, 0, (struct sockaddr *)&peer, len) != 8) {
            fprintf(stderr, "send %ld: %s\n", i, strerror(errno));
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    printf("send_ns %lld\n", ns / count);
    return 0;
}

static int rtt(long count, const char *host, const char *port) {
    struct sockaddr_storage peer;
    socklen_t len = peer_of(host, port, &peer);
    int fd = open_socket(peer.ss_family);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < count; i++) {
        char buf[64];
        if (sendto(fd, "ping", 4, 0, (struct sockaddr *)&peer, len) != 4 || recv(fd, buf, sizeof(buf), 0) != 4) {
            fprintf(stderr, "round trip %ld: %s\n", i, strerror(errno));
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    printf("rtt_ns %lld\n", ns / count);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "mmsg") == 0) return mmsg(argv[2], argv[3]);
    if (argc == 5 && strcmp(argv[1], "burst") == 0) return burst(0, atol(argv[2]), argv[3], argv[4]);
    if (argc == 5 && strcmp(argv[1], "burst-connected") == 0) return burst(1, atol(argv[2]), argv[3], argv[4]);
    if (argc == 5 && strcmp(argv[1], "flood") == 0) return flood(atol(argv[2]), argv[3], argv[4]);
    if (argc == 5 && strcmp(argv[1], "rtt") == 0) return rtt(atol(argv[2]), argv[3], argv[4]);
    fprintf(stderr, "usage: see the source\n");
    return 2;
}
