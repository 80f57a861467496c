/* Starves the supervisor's receivers through the user's process limit: when sockstrace itself
 * runs as the program's user, its threads and the program's count against the same
 * RLIMIT_NPROC. The program makes a stalling thread and a leaking thread first (both wait),
 * then threads that only sleep until the user has no thread left; then the first thread
 * makes an allowed blocking connect that stalls (a loopback listener whose accept queue is
 * full), which holds the one receiver, and a child process tries a connect to a forbidden
 * address; the child is killed after WAIT_MS, then the program exits.
 *
 * usage: r27_nproc STALL_HOST STALL_PORT LEAK_HOST LEAK_PORT WAIT_MS
 * Prints "fillers: N", then "leak: answered errno=N" or "leak: unanswered", and exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in stall_addr, leak_addr;
static atomic_int go_stall;
/* Shared with the leaking child. */
static atomic_int *go_leak, *leak_done, *leak_errno;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void wait_for(atomic_int *flag) {
    while (!atomic_load(flag)) sleep_ms(1);
}

static void *stall(void *arg) {
    (void)arg;
    wait_for(&go_stall);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0) connect(fd, (struct sockaddr *)&stall_addr, sizeof stall_addr);
    return NULL;
}

/* In a child process: killed on its own while its call waits, so that the notification
 * goes with it before the program's end frees the user's threads. */
static void leak(void) {
    wait_for(go_leak);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rc = connect(fd, (struct sockaddr *)&leak_addr, sizeof leak_addr);
    atomic_store(leak_errno, rc == 0 ? 0 : errno);
    atomic_store(leak_done, 1);
    if (rc == 0) write(fd, "r27-leak", 8);
    _exit(0);
}

static void *filler(void *arg) {
    (void)arg;
    for (;;) pause();
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
    if (argc != 6) {
        fprintf(stderr, "usage: %s STALL_HOST STALL_PORT LEAK_HOST LEAK_PORT WAIT_MS\n", argv[0]);
        return 2;
    }
    fill(&stall_addr, argv[1], argv[2]);
    fill(&leak_addr, argv[3], argv[4]);
    long wait = atol(argv[5]);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    atomic_int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    go_leak = &shared[0];
    leak_done = &shared[1];
    leak_errno = &shared[2];
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 2;
    }
    if (child == 0) leak();
    pthread_t t;
    if (pthread_create(&t, &attr, stall, NULL) != 0) {
        perror("pthread_create");
        return 2;
    }
    int fillers = 0;
    while (fillers < 100000 && pthread_create(&t, &attr, filler, NULL) == 0) fillers++;
    printf("fillers: %d\n", fillers);
    fflush(stdout);
    atomic_store(&go_stall, 1);
    sleep_ms(200);
    atomic_store(go_leak, 1);
    for (long waited = 0; waited < wait && !atomic_load(leak_done); waited += 10) sleep_ms(10);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    if (atomic_load(leak_done))
        printf("leak: answered errno=%d\n", atomic_load(leak_errno));
    else
        printf("leak: unanswered\n");
    fflush(stdout);
    _exit(0);
}
