/* Under --on-leak socksify with a proxy that relays UDP: sends leaked datagrams, each on a
 * new socket (a new flow, one event each), right after a thread's allowed blocking connect to
 * STALL (a loopback listener whose queue is full) has stalled the receiver that took it, so
 * that the reserve receiver takes the datagram.
 *
 * usage: r28_flow STALL_HOST STALL_PORT PEER_HOST PEER_PORT ROUNDS PROBE_FIRST
 * PROBE_FIRST 1: a first datagram (round 0) is sent before any stall. Prints
 * "send K: rc=N errno=N" per datagram, then "done".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in stall_addr, peer;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *stall(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0) connect(fd, (struct sockaddr *)&stall_addr, sizeof stall_addr);
    return NULL;
}

static int addr(struct sockaddr_in *sa, const char *host, const char *port) {
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((unsigned short)atoi(port));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static void send_one(int k) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    char msg[32];
    int len = snprintf(msg, sizeof msg, "r28-flow-%d", k);
    ssize_t rc = sendto(fd, msg, (size_t)len, 0, (struct sockaddr *)&peer, sizeof peer);
    printf("send %d: rc=%zd errno=%d\n", k, rc, rc < 0 ? errno : 0);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s STALL_HOST STALL_PORT PEER_HOST PEER_PORT ROUNDS PROBE_FIRST\n", argv[0]);
        return 2;
    }
    if (addr(&stall_addr, argv[1], argv[2]) || addr(&peer, argv[3], argv[4])) return 2;
    int rounds = atoi(argv[5]);
    if (atoi(argv[6])) send_one(0);
    for (int k = 1; k <= rounds; k++) {
        pthread_t t;
        if (pthread_create(&t, NULL, stall, NULL) != 0) return 2;
        sleep_ms(50);
        send_one(k);
        sleep_ms(50);
    }
    printf("done\n");
    fflush(stdout);
    sleep_ms(300);
    _exit(0);
}
