/* Queues many quick allowed calls at once, a forbidden connect last, and exits right after:
 * THREADS threads wait at a barrier, then each makes one allowed connect (to ALLOWED, a
 * loopback port that refuses: answered at once); once every one of them is about to enter its
 * call, another thread connects to LEAK, and DELAY_US later the program exits.
 *
 * usage: r28_queue THREADS ALLOWED_HOST ALLOWED_PORT LEAK_HOST LEAK_PORT DELAY_US
 * Prints "threads: N", then "answered: N of N before the exit" and "leak: answered errno=N"
 * or "leak: unanswered".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in allowed_addr, leak_addr;
static pthread_barrier_t start;
static atomic_int entered, answered, leak_started, leak_done, leak_errno;

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *quick(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    pthread_barrier_wait(&start);
    atomic_fetch_add(&entered, 1);
    connect(fd, (struct sockaddr *)&allowed_addr, sizeof allowed_addr);
    atomic_fetch_add(&answered, 1);
    return NULL;
}

static void *leak(void *arg) {
    int total = *(int *)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    while (atomic_load(&entered) < total) sched_yield();
    atomic_store(&leak_started, 1);
    int rc = connect(fd, (struct sockaddr *)&leak_addr, sizeof leak_addr);
    atomic_store(&leak_errno, rc == 0 ? 0 : errno);
    atomic_store(&leak_done, 1);
    if (rc == 0) write(fd, "r28-queue", 9);
    return NULL;
}

static int addr(struct sockaddr_in *sa, const char *host, const char *port) {
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((unsigned short)atoi(port));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s THREADS ALLOWED_HOST ALLOWED_PORT LEAK_HOST LEAK_PORT DELAY_US\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[1]);
    if (addr(&allowed_addr, argv[2], argv[3]) || addr(&leak_addr, argv[4], argv[5])) return 2;
    long delay = atol(argv[6]);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    pthread_t t;
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t, &attr, quick, NULL) != 0) {
            printf("threads: only %d\n", i);
            return 2;
        }
    printf("threads: %d\n", threads);
    fflush(stdout);
    if (pthread_create(&t, &attr, leak, &threads) != 0) return 2;
    pthread_barrier_wait(&start);
    while (!atomic_load(&leak_started)) sched_yield();
    sleep_us(delay);
    int done = atomic_load(&leak_done);
    printf("answered: %d of %d before the exit\n", atomic_load(&answered), threads);
    if (done)
        printf("leak: answered errno=%d\n", atomic_load(&leak_errno));
    else
        printf("leak: unanswered\n");
    fflush(stdout);
    _exit(0);
}
