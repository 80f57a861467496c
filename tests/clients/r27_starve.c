/* Starves the supervisor's receivers: many threads each make an allowed blocking connect
 * that stalls (a loopback listener whose accept queue is full drops every SYN), so that
 * every receiver thread the supervisor may start is held; then one thread tries a connect
 * to a forbidden address, and the program exits while that call still waits.
 *
 * usage: r27_starve STALL_HOST STALL_PORT NTHREADS LEAK_HOST LEAK_PORT SETTLE_MS WAIT_MS
 * Prints "leak: answered errno=N" or "leak: unanswered", then exits 0 (exit_group kills
 * the threads still waiting).
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

static struct sockaddr_in stall_addr, leak_addr;
static atomic_int started;
static atomic_int leak_done;
static atomic_int leak_errno;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *stall(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    atomic_fetch_add(&started, 1);
    if (fd < 0) return NULL;
    connect(fd, (struct sockaddr *)&stall_addr, sizeof stall_addr);
    return NULL;
}

static void *leak(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rc = connect(fd, (struct sockaddr *)&leak_addr, sizeof leak_addr);
    atomic_store(&leak_errno, rc == 0 ? 0 : errno);
    atomic_store(&leak_done, 1);
    if (rc == 0) {
        write(fd, "r27-leak", 8);
    }
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
    if (argc != 8) {
        fprintf(stderr, "usage: %s STALL_HOST STALL_PORT NTHREADS LEAK_HOST LEAK_PORT SETTLE_MS WAIT_MS\n", argv[0]);
        return 2;
    }
    fill(&stall_addr, argv[1], argv[2]);
    fill(&leak_addr, argv[4], argv[5]);
    int n = atoi(argv[3]);
    long settle = atol(argv[6]), wait = atol(argv[7]);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int made = 0;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, stall, NULL) == 0) made++;
    }
    printf("stalls: %d threads\n", made);
    fflush(stdout);
    sleep_ms(settle);
    pthread_t t;
    if (pthread_create(&t, &attr, leak, NULL) != 0) {
        perror("pthread_create");
        return 2;
    }
    for (long waited = 0; waited < wait && !atomic_load(&leak_done); waited += 10) sleep_ms(10);
    if (atomic_load(&leak_done))
        printf("leak: answered errno=%d\n", atomic_load(&leak_errno));
    else
        printf("leak: unanswered\n");
    fflush(stdout);
    _exit(0);
}
