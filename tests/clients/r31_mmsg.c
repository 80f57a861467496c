/* Red team r31: datagram sends the supervisor holds (copied, not yet answered) while a SOCKS
 * exchange or the kernel layer keeps them waiting.
 *
 *   herd    NTHREADS threads, one shared UDP socket: each makes one blocking sendmmsg of NMSG
 *           datagrams of SIZE bytes to LEAK (the supervisor copies up to 1 MiB of a sendmmsg
 *           and, with no wait for room in its copy budget, holds it while the call waits)
 *   sendto  one datagram to LEAK
 *   conn    connect a UDP socket to LEAK, then send one datagram on it (send: not trapped)
 *   mixed   sendmmsg of two datagrams on one socket: the first to OK (allowed), the second to
 *           LEAK
 *
 * usage: r31_mmsg MODE LEAK_HOST LEAK_PORT OK_HOST OK_PORT NTHREADS NMSG SIZE WAIT_MS
 * conn exits WAIT_MS after its send returned, the others WAIT_MS after starting their call.
 * Prints "started: N" once the threads are made (herd), then after WAIT_MS "answered: A" (herd:
 * how many calls returned, and "sent: S" datagrams) or "leak: answered rc=R errno=E" / "leak:
 * unanswered", then exits 0 (exit_group ends the calls still waiting).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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

static struct sockaddr_in leak_addr, ok_addr;
static int shared_fd = -1;
static int nmsg;
static size_t size;
static char *payload;
static atomic_int answered, sent_total;
static atomic_int done;
static atomic_int rc_seen, errno_seen;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void addr_of(struct sockaddr_in *a, const char *host, const char *port) {
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((unsigned short)atoi(port));
    inet_pton(AF_INET, host, &a->sin_addr);
}

static void *herd(void *arg) {
    (void)arg;
    struct mmsghdr *m = calloc((size_t)nmsg, sizeof *m);
    struct iovec *iov = calloc((size_t)nmsg, sizeof *iov);
    if (!m || !iov) return NULL;
    for (int i = 0; i < nmsg; i++) {
        iov[i].iov_base = payload;
        iov[i].iov_len = size;
        m[i].msg_hdr.msg_iov = &iov[i];
        m[i].msg_hdr.msg_iovlen = 1;
        m[i].msg_hdr.msg_name = &leak_addr;
        m[i].msg_hdr.msg_namelen = sizeof leak_addr;
    }
    int n = sendmmsg(shared_fd, m, (unsigned)nmsg, 0);
    atomic_fetch_add(&answered, 1);
    if (n > 0) atomic_fetch_add(&sent_total, n);
    return NULL;
}

static void *single(void *arg) {
    const char *mode = arg;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int rc;
    if (strcmp(mode, "conn") == 0) {
        /* A UDP connect (socksified: connected to the peer's shim, no relay asked yet), then a
         * send on the connected socket: not trapped, it reaches the shim, whose association
         * thread asks the proxy for the relay. */
        rc = connect(fd, (struct sockaddr *)&leak_addr, sizeof leak_addr);
        if (rc == 0) rc = (int)send(fd, "r31 leak datagram", 17, 0);
    } else if (strcmp(mode, "sendto") == 0) {
        rc = (int)sendto(fd, "r31 leak datagram", 17, 0, (struct sockaddr *)&leak_addr, sizeof leak_addr);
    } else {
        struct mmsghdr m[2];
        struct iovec iov[2] = {{"r31 ok datagram", 15}, {"r31 leak datagram", 17}};
        memset(m, 0, sizeof m);
        for (int i = 0; i < 2; i++) {
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
            m[i].msg_hdr.msg_name = i == 0 ? &ok_addr : &leak_addr;
            m[i].msg_hdr.msg_namelen = sizeof ok_addr;
        }
        rc = sendmmsg(fd, m, 2, 0);
    }
    atomic_store(&errno_seen, rc < 0 ? errno : 0);
    atomic_store(&rc_seen, rc);
    atomic_store(&done, 1);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 10) {
        fprintf(stderr, "usage: %s MODE LEAK_HOST LEAK_PORT OK_HOST OK_PORT NTHREADS NMSG SIZE WAIT_MS\n",
                argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    addr_of(&leak_addr, argv[2], argv[3]);
    addr_of(&ok_addr, argv[4], argv[5]);
    int nthreads = atoi(argv[6]);
    nmsg = atoi(argv[7]);
    size = (size_t)atol(argv[8]);
    long wait_ms = atol(argv[9]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    if (strcmp(mode, "herd") == 0) {
        payload = malloc(size);
        memset(payload, 'd', size);
        shared_fd = socket(AF_INET, SOCK_DGRAM, 0);
        int started = 0;
        for (int i = 0; i < nthreads; i++) {
            pthread_t t;
            if (pthread_create(&t, &attr, herd, NULL) == 0) started++;
        }
        printf("started: %d\n", started);
        sleep_ms(wait_ms);
        printf("answered: %d sent: %d\n", atomic_load(&answered), atomic_load(&sent_total));
        fflush(stdout);
        _exit(0);
    }
    pthread_t t;
    pthread_create(&t, &attr, single, (void *)mode);
    if (strcmp(mode, "conn") == 0) {
        /* Exits WAIT_MS after its send returned (up to 5 s for it). */
        for (int i = 0; i < 5000 && !atomic_load(&done); i++) sleep_ms(1);
    }
    sleep_ms(wait_ms);
    if (atomic_load(&done)) {
        printf("leak: answered rc=%d errno=%d\n", atomic_load(&rc_seen), atomic_load(&errno_seen));
    } else {
        printf("leak: unanswered\n");
    }
    fflush(stdout);
    _exit(0);
}
