/*
 * uringprobe: io_uring test client for the sockstrace integration tests
 * (built with liburing). Output format as netprobe's: "OP: ok" or
 * "OP: errno=N (message)"; "actor: pid=P tid=T" first.
 *
 *   uringprobe setup                 io_uring_setup only
 *   uringprobe connect HOST PORT     socket(2), then IORING_OP_CONNECT and
 *                                    IORING_OP_SEND of a short payload
 *   uringprobe sendmsg HOST PORT     UDP socket(2), then IORING_OP_SENDMSG
 *                                    with a destination
 *
 * Exit status: 0 when every step succeeded, 1 otherwise, 2 on usage errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void say_ok(const char *op) {
    printf("%s: ok\n", op);
    fflush(stdout);
}

static void say_err(const char *op, int err) {
    printf("%s: errno=%d (%s)\n", op, err, strerror(err));
    fflush(stdout);
}

static void usage(void) {
    fprintf(stderr, "usage: uringprobe setup | connect HOST PORT | sendmsg HOST PORT\n");
    exit(2);
}

static socklen_t parse(const char *host, const char *port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    int p = atoi(port);
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((unsigned short)p);
        return sizeof(*in4);
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((unsigned short)p);
        return sizeof(*in6);
    }
    usage();
    return 0;
}

/* Submits the prepared entry and waits for its completion; returns cqe->res. */
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

int main(int argc, char **argv) {
    if (argc < 2)
        usage();
    printf("actor: pid=%d tid=%ld\n", (int)getpid(), (long)syscall(SYS_gettid));
    fflush(stdout);
    struct io_uring ring;
    int r = io_uring_queue_init(8, &ring, 0);
    if (r < 0) {
        say_err("setup", -r);
        return 1;
    }
    say_ok("setup");
    if (!strcmp(argv[1], "setup") && argc == 2)
        return 0;
    if (argc != 4)
        usage();
    struct sockaddr_storage ss;
    socklen_t len = parse(argv[2], argv[3], &ss);
    if (!strcmp(argv[1], "connect")) {
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            say_err("socket", errno);
            return 1;
        }
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_connect(sqe, fd, (struct sockaddr *)&ss, len);
        r = run_one(&ring);
        if (r < 0) {
            say_err("uring-connect", -r);
            return 1;
        }
        say_ok("uring-connect");
        static const char msg[] = "uringprobe-tcp\n";
        sqe = io_uring_get_sqe(&ring);
        io_uring_prep_send(sqe, fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL);
        r = run_one(&ring);
        if (r < 0) {
            say_err("uring-send", -r);
            return 1;
        }
        say_ok("uring-send");
        close(fd);
        return 0;
    }
    if (!strcmp(argv[1], "sendmsg")) {
        int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            say_err("socket", errno);
            return 1;
        }
        static char msg[] = "uringprobe-udp";
        struct iovec iov = {msg, sizeof(msg) - 1};
        struct msghdr mh;
        memset(&mh, 0, sizeof(mh));
        mh.msg_name = &ss;
        mh.msg_namelen = len;
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_sendmsg(sqe, fd, &mh, 0);
        r = run_one(&ring);
        if (r < 0) {
            say_err("uring-sendmsg", -r);
            return 1;
        }
        say_ok("uring-sendmsg");
        close(fd);
        return 0;
    }
    usage();
    return 2;
}
