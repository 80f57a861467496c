/*
 * r34_uring: red-team client for tests/redteam_r34.rs (built with liburing).
 *
 * Every network operation goes through io_uring only (the socket too, by
 * IORING_OP_SOCKET), so that under `sockstrace run --allow-io-uring` no syscall
 * of it reaches the seccomp layer: the kernel layer's hooks (sock_create,
 * connect4/6, sendmsg4/6, and the egress gate beyond loopback) judge it alone.
 *
 *   r34_uring PROBE...
 *
 * PROBE is TAG:OP:FAMILY:TYPE:PROTOCOL:PORT:HOST (HOST last: IPv6 has colons)
 *   OP c  IORING_OP_SOCKET, IORING_OP_CONNECT, then IORING_OP_SEND of "TAG"
 *      s  IORING_OP_SOCKET, then IORING_OP_SENDMSG of "TAG" to HOST:PORT
 *      k  IORING_OP_SOCKET only (HOST and PORT unused)
 *   FAMILY and PROTOCOL are numbers; TYPE is stream, dgram, raw, seqpacket or
 *   a number. An IPv6 socket (FAMILY 10) may be given a v4-mapped HOST.
 *
 * Prints "TAG: ok" or "TAG: STEP errno=N" per probe, "actor: pid=P" first.
 * Exit status 0 (every probe is reported, whatever its result), 2 on usage
 * errors or when io_uring itself cannot be set up.
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
#include <unistd.h>

static struct io_uring ring;

static int run_one(void) {
    int r = io_uring_submit(&ring);
    if (r < 0)
        return r;
    struct io_uring_cqe *cqe;
    r = io_uring_wait_cqe(&ring, &cqe);
    if (r < 0)
        return r;
    int res = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
    return res;
}

static int sock_type(const char *t) {
    if (!strcmp(t, "stream"))
        return SOCK_STREAM;
    if (!strcmp(t, "dgram"))
        return SOCK_DGRAM;
    if (!strcmp(t, "raw"))
        return SOCK_RAW;
    if (!strcmp(t, "seqpacket"))
        return SOCK_SEQPACKET;
    return atoi(t);
}

static socklen_t address(int family, const char *host, int port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
        in4->sin_family = AF_INET;
        in4->sin_port = htons((unsigned short)port);
        if (inet_pton(AF_INET, host, &in4->sin_addr) != 1)
            return 0;
        return sizeof(*in4);
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((unsigned short)port);
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
        return 0;
    return sizeof(*in6);
}

static void probe_spec(const char *arg, char *spec) {
    char *field[7];
    char *rest = spec;
    for (int i = 0; i < 6; i++) {
        char *colon = strchr(rest, ':');
        if (!colon) {
            fprintf(stderr, "bad probe %s\n", arg);
            exit(2);
        }
        *colon = 0;
        field[i] = rest;
        rest = colon + 1;
    }
    field[6] = rest;
    const char *tag = field[0], *op = field[1], *host = field[6];
    int family = atoi(field[2]), type = sock_type(field[3]), protocol = atoi(field[4]), port = atoi(field[5]);

    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_socket(sqe, family, type | SOCK_CLOEXEC, protocol, 0);
    int fd = run_one();
    if (fd < 0) {
        printf("%s: socket errno=%d\n", tag, -fd);
        fflush(stdout);
        return;
    }
    if (!strcmp(op, "k")) {
        printf("%s: ok\n", tag);
        fflush(stdout);
        close(fd);
        return;
    }
    struct sockaddr_storage ss;
    socklen_t len = address(family, host, port, &ss);
    if (!len) {
        fprintf(stderr, "bad host %s\n", host);
        exit(2);
    }
    int r;
    const char *step;
    if (!strcmp(op, "c")) {
        step = "connect";
        sqe = io_uring_get_sqe(&ring);
        io_uring_prep_connect(sqe, fd, (struct sockaddr *)&ss, len);
        r = run_one();
        if (r >= 0) {
            step = "send";
            sqe = io_uring_get_sqe(&ring);
            io_uring_prep_send(sqe, fd, tag, strlen(tag), MSG_NOSIGNAL);
            r = run_one();
        }
    } else {
        step = "sendmsg";
        struct iovec iov = {(void *)tag, strlen(tag)};
        struct msghdr mh;
        memset(&mh, 0, sizeof(mh));
        mh.msg_name = &ss;
        mh.msg_namelen = len;
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        sqe = io_uring_get_sqe(&ring);
        io_uring_prep_sendmsg(sqe, fd, &mh, 0);
        r = run_one();
    }
    if (r < 0)
        printf("%s: %s errno=%d\n", tag, step, -r);
    else
        printf("%s: ok\n", tag);
    fflush(stdout);
    close(fd);
}

static void probe(const char *arg) {
    /* A copy: the program's argv (its /proc cmdline, which the report shows) stays as given. */
    char *spec = strdup(arg);
    probe_spec(arg, spec);
    free(spec);
}

int main(int argc, char **argv) {
    printf("actor: pid=%d\n", (int)getpid());
    fflush(stdout);
    int r = io_uring_queue_init(8, &ring, 0);
    if (r < 0) {
        printf("setup: errno=%d\n", -r);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        probe(argv[i]);
    return 0;
}
