/* i386 socketcall(SYS_SOCKET), whose arguments are in memory: the kernel
 * reads them again when it runs the call.
 *
 *   attack3_socketcall flip N    a thread flips the family word between
 *                                AF_INET and AF_VSOCK while the main thread
 *                                makes N sockets; prints how many of each
 *                                family it got ("vsock=V inet=I err=E")
 *   attack3_socketcall make      one UDP socket with SOCK_NONBLOCK and one TCP
 *                                socket with SOCK_CLOEXEC through socketcall;
 *                                prints their family, type, protocol and flags
 *   attack3_socketcall vsock     one AF_VSOCK socket through socketcall
 *   attack3_socketcall pair      socketpair of AF_INET and AF_UNIX, directly
 *                                and through socketcall; prints each errno
 *   attack3_socketcall send PORT the UDP socket made through socketcall sends
 *                                one datagram to 127.0.0.1:PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static volatile long flip_args[3];
static atomic_int stop;

static void *flipper(void *unused) {
    (void)unused;
    while (!atomic_load(&stop)) {
        flip_args[0] = AF_VSOCK;
        flip_args[0] = AF_INET;
    }
    return NULL;
}

static int socketcall_socket(int family, int type, int protocol) {
    long args[3] = {family, type, protocol};
    return syscall(SYS_socketcall, 1 /* SYS_SOCKET */, args);
}

static int opt(int fd, int name) {
    int v = -1;
    socklen_t l = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, name, &v, &l) != 0)
        return -1;
    return v;
}

static int flip(int n) {
    pthread_t t;
    flip_args[0] = AF_INET;
    flip_args[1] = SOCK_STREAM;
    flip_args[2] = 0;
    if (pthread_create(&t, NULL, flipper, NULL) != 0)
        return 1;
    int vsock = 0, inet = 0, err = 0;
    for (int i = 0; i < n; i++) {
        int fd = syscall(SYS_socketcall, 1 /* SYS_SOCKET */, flip_args);
        if (fd < 0) {
            err++;
            continue;
        }
        if (opt(fd, SO_DOMAIN) == AF_VSOCK)
            vsock++;
        else
            inet++;
        close(fd);
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("vsock=%d inet=%d err=%d\n", vsock, inet, err);
    return 0;
}

static void describe(const char *what, int fd) {
    if (fd < 0) {
        printf("%s: errno=%d\n", what, errno);
        return;
    }
    printf("%s: fd=%d domain=%d type=%d protocol=%d nonblock=%d cloexec=%d\n", what, fd, opt(fd, SO_DOMAIN),
           opt(fd, SO_TYPE), opt(fd, SO_PROTOCOL), !!(fcntl(fd, F_GETFL) & O_NONBLOCK),
           !!(fcntl(fd, F_GETFD) & FD_CLOEXEC));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 3 && strcmp(argv[1], "flip") == 0)
        return flip(atoi(argv[2]));
    if (argc == 2 && strcmp(argv[1], "make") == 0) {
        describe("udp", socketcall_socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
        describe("tcp6", socketcall_socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
        describe("unix", socketcall_socket(AF_UNIX, SOCK_STREAM, 0));
        describe("badproto", socketcall_socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "pair") == 0) {
        int sv[2];
        int families[2] = {AF_INET, AF_UNIX};
        for (int i = 0; i < 2; i++) {
            int direct = syscall(SYS_socketpair, families[i], SOCK_STREAM, 0, sv);
            printf("direct %d: %s\n", families[i], direct == 0 ? "made" : strerror(errno));
            long args[4] = {families[i], SOCK_STREAM, 0, (long)sv};
            int multiplexed = syscall(SYS_socketcall, 8 /* SYS_SOCKETPAIR */, args);
            printf("socketcall %d: %s\n", families[i], multiplexed == 0 ? "made" : strerror(errno));
        }
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "vsock") == 0) {
        describe("vsock", socketcall_socket(AF_VSOCK, SOCK_STREAM, 0));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "send") == 0) {
        int fd = socketcall_socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
        inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
        ssize_t n = sendto(fd, "x", 1, 0, (struct sockaddr *)&sin, sizeof sin);
        printf("send: %s\n", n == 1 ? "ok" : strerror(errno));
        return 0;
    }
    fprintf(stderr, "usage: %s flip N | make | vsock | pair | send PORT\n", argv[0]);
    return 2;
}
