/* A leak from a known place in the code, for `run --stack` and
 * `--core-on-leak`: main -> leak_outer -> leak_middle -> leak_inner, which
 * calls connect (tcp) or sendto (udp) to 127.0.0.1:PORT directly.
 * `noipa` keeps each function whole and under its own name at any
 * optimization level (no inlining, cloning or sibling calls).
 *
 * usage: stack_leak tcp|udp PORT
 * prints "result=0" or "result=-1 errno=N" for the leaking call. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile int keep;

__attribute__((noipa)) int leak_inner(int udp, int port) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (fd < 0) {
        perror("socket");
        return -2;
    }
    int r;
    if (udp)
        r = (int)sendto(fd, "stack", 5, 0, (struct sockaddr *)&sin, sizeof sin);
    else
        r = connect(fd, (struct sockaddr *)&sin, sizeof sin);
    int e = errno;
    close(fd);
    errno = e;
    return r < 0 ? -1 : 0;
}

__attribute__((noipa)) int leak_middle(int udp, int port) {
    int r = leak_inner(udp, port);
    keep = r;
    return r;
}

__attribute__((noipa)) int leak_outer(int udp, int port) {
    int r = leak_middle(udp, port);
    keep = r;
    return r;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: stack_leak tcp|udp PORT\n");
        return 2;
    }
    int r = leak_outer(strcmp(argv[1], "udp") == 0, atoi(argv[2]));
    if (r == 0)
        printf("result=0\n");
    else
        printf("result=%d errno=%d\n", r, errno);
    return 0;
}
