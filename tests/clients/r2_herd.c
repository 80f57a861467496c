/*
 * r2_herd: a program that ties up every receiver of its supervisor with calls that wait for
 * the kernel layer, then tries a leak and ends before anyone received it.
 *
 *   r2_herd HOST PORT N
 *       N threads connect one unix stream socket to a path that does not exist (allowed: each
 *       such call waits for the kernel layer while it completes itself); 300 ms later the main
 *       thread sends one datagram to HOST:PORT (a leak, refused without waiting), and a
 *       helper ends the program 200 ms after that, whether or not the send returned. Prints
 *       "herd: N threads" first.
 *
 * Exits 0, or 2 on a usage or setup error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int unix_fd = -1;

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static void *waiter(void *arg) {
    (void)arg;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, "/nonexistent/r2_herd.sock");
    (void)connect(unix_fd, (struct sockaddr *)&addr, sizeof addr);
    return NULL;
}

static void *ender(void *arg) {
    (void)arg;
    pause_ms(200);
    fflush(stdout);
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: r2_herd HOST PORT N\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1)
        return 2;
    int n = atoi(argv[3]);
    unix_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    if (unix_fd < 0 || udp < 0)
        return 2;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int started = 0;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, waiter, NULL) == 0)
            started++;
    }
    printf("herd: %d threads\n", started);
    fflush(stdout);
    pause_ms(300);
    pthread_t t;
    if (pthread_create(&t, &attr, ender, NULL) != 0)
        return 2;
    (void)sendto(udp, "herd", 4, 0, (struct sockaddr *)&addr, sizeof addr);
    printf("herd: sendto returned\n");
    fflush(stdout);
    pause_ms(1000);
    return 0;
}
