/*
 * r33_evict: attacks on a run's smaller socket table (`SOCKETS`, a 2-way set-associative cache
 * keyed by socket cookie: 8,192 sets on two CPUs). Making and closing many sockets (natively:
 * socket() and close() are not trapped) walks the cookies through every set several times, so
 * that the facts of a socket still in use that no hook touched since its set last filled are
 * given to a newer socket.
 *
 *   r33_evict serve-churn HOST N
 *       Listens on HOST:0 (prints "listen: ok port=P"), accepts one connection (prints
 *       "accept: ok"), then makes and closes N UDP sockets, pinned to CPU 0 (prints
 *       "churn: N"), then writes "after-churn\n" on the accepted connection and closes it.
 *       Prints "write: ok" and exits 0.
 *
 *   r33_evict churn-send N HOST PORT
 *       Makes a UDP socket S, then makes and closes N other UDP sockets (pinned to CPU 0),
 *       then sends one datagram "r33" on S to HOST:PORT (prints "send: rc=R errno=E").
 *
 *   r33_evict churn-opts N HOST PORT
 *       Makes a UDP socket S, makes and closes N other UDP sockets (pinned to CPU 0), sends
 *       "first" on S to HOST:PORT (an allowed address: the supervisor performs it on its
 *       duplicate of S), sets IPv4 options on S (IP_OPTIONS: four NOPs), and sends "opts" on S
 *       to HOST:PORT (prints "first: rc=R errno=E", "opts: rc=R errno=E", "send: rc=R errno=E").
 *
 * Exits 0, or 2 on a usage or setup error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void pin_cpu0(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    sched_setaffinity(0, sizeof(set), &set);
}

static long churn(long n) {
    pin_cpu0();
    long made = 0;
    for (long i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        if (s < 0)
            continue;
        close(s);
        made++;
    }
    printf("churn: %ld\n", made);
    fflush(stdout);
    return made;
}

static int serve_churn(const char *host, long n) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0)
        return 2;
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return 2;
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0) {
        printf("listen: errno=%d\n", errno);
        return 1;
    }
    socklen_t len = sizeof(a);
    getsockname(l, (struct sockaddr *)&a, &len);
    printf("listen: ok port=%d\n", ntohs(a.sin_port));
    fflush(stdout);
    int c = accept(l, NULL, NULL);
    if (c < 0) {
        printf("accept: errno=%d\n", errno);
        return 1;
    }
    printf("accept: ok\n");
    fflush(stdout);
    churn(n);
    const char msg[] = "after-churn\n";
    ssize_t w = write(c, msg, sizeof(msg) - 1);
    printf("write: %s\n", w == (ssize_t)(sizeof(msg) - 1) ? "ok" : "failed");
    fflush(stdout);
    /* Let the data (and any retransmission) go before the close. */
    sleep(2);
    close(c);
    close(l);
    return 0;
}

static int churn_send(long n, const char *host, const char *port) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0)
        return 2;
    churn(n);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return 2;
    ssize_t r = sendto(s, "r33", 3, 0, (struct sockaddr *)&a, sizeof(a));
    printf("send: rc=%zd errno=%d\n", r, r < 0 ? errno : 0);
    fflush(stdout);
    close(s);
    return 0;
}

static int churn_opts(long n, const char *host, const char *port) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0)
        return 2;
    if (n > 0)
        churn(n);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return 2;
    ssize_t r = sendto(s, "first", 5, 0, (struct sockaddr *)&a, sizeof(a));
    printf("first: rc=%zd errno=%d\n", r, r < 0 ? errno : 0);
    unsigned char opts[4] = {1, 1, 1, 1};
    int o = setsockopt(s, IPPROTO_IP, IP_OPTIONS, opts, sizeof(opts));
    printf("opts: rc=%d errno=%d\n", o, o < 0 ? errno : 0);
    r = sendto(s, "opts", 4, 0, (struct sockaddr *)&a, sizeof(a));
    printf("send: rc=%zd errno=%d\n", r, r < 0 ? errno : 0);
    fflush(stdout);
    close(s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "churn-opts") == 0)
        return churn_opts(atol(argv[2]), argv[3], argv[4]);
    if (argc == 4 && strcmp(argv[1], "serve-churn") == 0)
        return serve_churn(argv[2], atol(argv[3]));
    if (argc == 5 && strcmp(argv[1], "churn-send") == 0)
        return churn_send(atol(argv[2]), argv[3], argv[4]);
    fprintf(stderr, "usage: r33_evict serve-churn HOST N | churn-send N HOST PORT\n");
    return 2;
}
