/*
 * attack_memory: makes the supervisor copy as much as it can at once.
 *
 *   attack_memory stream HOST PORT THREADS SIZE SECONDS
 *       THREADS threads, each with its own TCP connection to HOST:PORT (whose
 *       peer never reads), each blocked in one sendmsg of SIZE bytes; all share
 *       one buffer, so the program itself holds SIZE bytes. Prints "ready" once
 *       the threads are started, then sleeps SECONDS and exits.
 *   attack_memory mmsg HOST PORT COUNT SIZE
 *       one sendmmsg of COUNT datagrams of SIZE bytes each to HOST:PORT (UDP);
 *       prints "sendmmsg: N" (messages sent) or "sendmmsg: errno=E".
 *   attack_memory control HOST PORT LEN
 *       one UDP sendmsg whose control buffer is LEN bytes; prints
 *       "sendmsg: ok" or "sendmsg: errno=E".
 *
 * Hosts are numeric IPv4.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static struct sockaddr_in dest;
static char *buffer;
static size_t size;

static void set_dest(const char *host, const char *port) {
    memset(&dest, 0, sizeof dest);
    dest.sin_family = AF_INET;
    dest.sin_port = htons((unsigned short)atoi(port));
    if (inet_pton(AF_INET, host, &dest.sin_addr) != 1) {
        fprintf(stderr, "bad host %s\n", host);
        exit(2);
    }
}

static void *stream_sender(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&dest, sizeof dest) != 0) {
        printf("connect: errno=%d\n", errno);
        fflush(stdout);
        return NULL;
    }
    struct iovec iov = {.iov_base = buffer, .iov_len = size};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = sendmsg(fd, &msg, 0);
    printf("sendmsg: %zd\n", n);
    fflush(stdout);
    return NULL;
}

static int stream(int threads, int seconds) {
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, stream_sender, NULL) != 0) {
            perror("pthread_create");
            return 1;
        }
        pthread_detach(t);
    }
    printf("ready\n");
    fflush(stdout);
    sleep((unsigned)seconds);
    _exit(0);
}

static int mmsg(unsigned count) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct mmsghdr *msgs = calloc(count, sizeof *msgs);
    struct iovec *iovs = calloc(count, sizeof *iovs);
    if (fd < 0 || !msgs || !iovs) {
        perror("setup");
        return 1;
    }
    for (unsigned i = 0; i < count; i++) {
        iovs[i].iov_base = buffer;
        iovs[i].iov_len = size;
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &dest;
        msgs[i].msg_hdr.msg_namelen = sizeof dest;
    }
    int n = sendmmsg(fd, msgs, count, 0);
    if (n < 0) {
        printf("sendmmsg: errno=%d\n", errno);
        return 1;
    }
    printf("sendmmsg: %d\n", n);
    return 0;
}

static int control(size_t len) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    char *ctl = calloc(1, len);
    if (fd < 0 || !ctl) {
        perror("setup");
        return 1;
    }
    char payload[] = "x";
    struct iovec iov = {.iov_base = payload, .iov_len = 1};
    struct msghdr msg = {.msg_name = &dest,
                         .msg_namelen = sizeof dest,
                         .msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctl,
                         .msg_controllen = len};
    if (sendmsg(fd, &msg, 0) < 0) {
        printf("sendmsg: errno=%d\n", errno);
        return 1;
    }
    printf("sendmsg: ok\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: attack_memory stream|mmsg|control HOST PORT ...\n");
        return 2;
    }
    set_dest(argv[2], argv[3]);
    if (!strcmp(argv[1], "control") && argc == 5)
        return control((size_t)atol(argv[4]));
    if (argc < 6)
        return 2;
    size = (size_t)atol(argv[5]);
    buffer = malloc(size);
    if (!buffer) {
        perror("malloc");
        return 1;
    }
    memset(buffer, 'm', size);
    if (!strcmp(argv[1], "stream") && argc == 7)
        return stream(atoi(argv[4]), atoi(argv[6]));
    if (!strcmp(argv[1], "mmsg"))
        return mmsg((unsigned)atoi(argv[4]));
    return 2;
}
