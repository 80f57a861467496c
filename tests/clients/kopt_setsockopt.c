/*
 * kopt_setsockopt: plain setsockopt(2) calls, each on a fresh socket, for the
 * kernel layer's setsockopt hook.
 *
 *   kopt_setsockopt routing
 *       SO_MARK (7) on a UDP socket and SO_BINDTODEVICE ("lo") on a TCP
 *       socket: options that move the first hop (root may set both)
 *   kopt_setsockopt ordinary
 *       SO_REUSEADDR, TCP_NODELAY and IP_TTL: options nobody refuses
 *
 * Prints "NAME: ok" or "NAME: errno=N" for each; exit status 0 when every
 * call succeeded, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int set(const char *name, int type, int level, int optname, const void *value, socklen_t len) {
    int s = socket(AF_INET, type, 0);
    if (s < 0) {
        printf("%s: socket errno=%d\n", name, errno);
        return 1;
    }
    int r = setsockopt(s, level, optname, value, len);
    if (r == 0)
        printf("%s: ok\n", name);
    else
        printf("%s: errno=%d\n", name, errno);
    fflush(stdout);
    close(s);
    return r != 0;
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    int one = 1, mark = 7, ttl = 33, failed = 0;
    if (strcmp(argv[1], "routing") == 0) {
        failed |= set("SO_MARK", SOCK_DGRAM, SOL_SOCKET, SO_MARK, &mark, sizeof mark);
        failed |= set("SO_BINDTODEVICE", SOCK_STREAM, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3);
    } else if (strcmp(argv[1], "ordinary") == 0) {
        failed |= set("SO_REUSEADDR", SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        failed |= set("TCP_NODELAY", SOCK_STREAM, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        failed |= set("IP_TTL", SOCK_DGRAM, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
    } else {
        return 2;
    }
    return failed;
}
