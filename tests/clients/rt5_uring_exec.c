/* rt5_uring_exec: a leak that only the kernel layer sees (an io_uring connect), then an exec at
 * once, before the supervisor reads who made it.
 *
 *   rt5_uring_exec HOST4 PORT DECOY [ARGS...]
 *       submits an IORING_OP_CONNECT to HOST4:PORT (which the kernel's connect hook judges when
 *       the submission runs, inline) and, without waiting for its completion, execs DECOY
 *       with ARGS. Prints "uring: pid=P" first. With RT5_NAME set in the environment, the
 *       thread takes that name first (PR_SET_NAME).
 *
 * Exit status: the decoy's; 2 on a setup failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: rt5_uring_exec HOST4 PORT DECOY [ARGS...]\n");
        return 2;
    }
    static struct io_uring ring;
    int r = io_uring_queue_init(8, &ring, 0);
    if (r < 0) {
        printf("setup: errno=%d\n", -r);
        return 2;
    }
    static struct sockaddr_in sin;
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1)
        return 2;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 2;
    if (getenv("RT5_NAME"))
        prctl(PR_SET_NAME, getenv("RT5_NAME"), 0, 0, 0);
    printf("uring: pid=%d\n", getpid());
    fflush(stdout);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&sin, sizeof(sin));
    if (io_uring_submit(&ring) != 1)
        return 2;
    execv(argv[3], argv + 3);
    perror("execv");
    return 2;
}
