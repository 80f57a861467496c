/*
 * r32_held: attacks on the calls a supervisor answers CONTINUE while its kernel layer is still
 * completing itself (held by `LateLayer::hold_continue`, answered when the layer settles).
 * Everything happens in the program's first milliseconds, inside that window.
 *
 *   r32_held swap-connect HOST PORT
 *   r32_held swap-send HOST PORT
 *   r32_held swap-sendmsg HOST PORT
 *   r32_held swap-connect-tcp HOST PORT
 *       A thread calls connect (or sendto, or sendmsg) on a unix datagram socket with a unix
 *       address nobody bound (allowed, answered CONTINUE, held); 3 ms later another thread rewrites the
 *       address in memory to HOST:PORT and dup2()s a UDP socket (swap-connect-tcp: unix and
 *       TCP stream sockets) onto the fd number, so that
 *       the kernel, running the held call when it is let go, finds an inet socket and an inet
 *       address. After a connect that succeeded the thread also write()s on the fd (a
 *       connected send passes no trapped call). Prints "swapped: pending=P" (P=1: the call had
 *       not returned when the swap was done) and "call: rc=R errno=E".
 *
 *   r32_held herd N HOST PORT
 *       N threads each send one datagram with an address to an abstract unix name nobody bound
 *       (each held for the layer; run, it fails with ECONNREFUSED, counted as ok; refused, with
 *       EPERM); 30 ms later a thread sends one datagram to HOST:PORT
 *       (a leak). The main thread waits for all of them, prints "herd: ok=K of N" and exits 0.
 *
 *   r32_held herd-exit N HOST PORT MS
 *       The same, but the main thread _exit(0)s MS ms after starting, whatever was answered
 *       (for a layer that never completes: the held calls must not hang the run). Prints
 *       "herd: started N" first.
 *
 *   r32_held exec32 PATH32
 *       Makes a unix stream socket natively (no trapped call) as fd 3 and executes the i386
 *       build PATH32 as "PATH32 sc-connect-fd 3", whose first trapped call is then a
 *       socketcall(SYS_CONNECT) of fd 3 to an abstract name nobody bound: run by the kernel it
 *       fails with ECONNREFUSED (111), refused with EPERM (1). Prints "sc-connect: rc=R errno=E".
 *
 *   r32_held sc-connect          (built -m32)
 *       An i386 program's first calls: a unix stream listener (direct calls), then a
 *       socketcall(SYS_CONNECT) to it (arguments in memory). Prints "sc-connect: rc=R errno=E".
 *
 * Exits 0, or 2 on a usage or setup error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

__attribute__((unused)) static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* An abstract unix name long enough that its length also fits a sockaddr_in. */
static socklen_t abstract_name(struct sockaddr_un *un, const char *tag) {
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    int n = snprintf(un->sun_path + 1, sizeof un->sun_path - 1, "r32-%s-%d-padding", tag, (int)getpid());
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

#ifndef __i386__
/* --- the swap: fd number and address changed under a held CONTINUE --------------------- */

static union {
    struct sockaddr_un un;
    struct sockaddr_in in;
    struct sockaddr_storage ss;
} shared_addr;
static socklen_t shared_len;
static struct sockaddr_in target;
static int victim_fd, udp_fd;
static atomic_int started, done;
static long rc;
static int err;
static const char *mode;
static struct msghdr shared_msg;
static struct iovec shared_iov = {.iov_base = "R32LEAK", .iov_len = 7};

static void *caller(void *arg) {
    (void)arg;
    atomic_store(&started, 1);
    if (!strncmp(mode, "swap-connect", 12)) {
        rc = connect(victim_fd, (struct sockaddr *)&shared_addr, shared_len);
        err = errno;
        if (rc == 0) {
            /* Connected: a send without an address passes no trapped call. */
            ssize_t w = write(victim_fd, "R32LEAK", 7);
            printf("write: rc=%zd errno=%d\n", w, w < 0 ? errno : 0);
        }
    } else if (!strcmp(mode, "swap-send")) {
        rc = sendto(victim_fd, "R32LEAK", 7, 0, (struct sockaddr *)&shared_addr, shared_len);
        err = errno;
    } else {
        rc = sendmsg(victim_fd, &shared_msg, 0);
        err = errno;
    }
    atomic_store(&done, 1);
    return NULL;
}

static int swap(const char *host, const char *port) {
    target.sin_family = AF_INET;
    target.sin_port = htons((unsigned short)atoi(port));
    if (inet_pton(AF_INET, host, &target.sin_addr) != 1)
        return 2;
    /* Nobody is bound at the name (a bind would be the first call, held itself): the call
     * fails with ECONNREFUSED when it runs unswapped. */
    struct sockaddr_un recv_name;
    socklen_t recv_len = abstract_name(&recv_name, "recv");
    int stream = !strcmp(mode, "swap-connect-tcp");
    victim_fd = socket(AF_UNIX, stream ? SOCK_STREAM : SOCK_DGRAM, 0);
    udp_fd = socket(AF_INET, stream ? SOCK_STREAM : SOCK_DGRAM, 0);
    if (victim_fd < 0 || udp_fd < 0)
        return 2;
    memcpy(&shared_addr.un, &recv_name, sizeof recv_name);
    shared_len = recv_len;
    shared_msg.msg_name = &shared_addr;
    shared_msg.msg_namelen = shared_len;
    shared_msg.msg_iov = &shared_iov;
    shared_msg.msg_iovlen = 1;
    pthread_t t;
    if (pthread_create(&t, NULL, caller, NULL) != 0)
        return 2;
    while (!atomic_load(&started))
        ;
    pause_ms(3);
    /* Both at once: the kernel will read an inet address for an inet socket. */
    memset(&shared_addr, 0, sizeof shared_addr);
    memcpy(&shared_addr.in, &target, sizeof target);
    dup2(udp_fd, victim_fd);
    int pending = !atomic_load(&done);
    printf("swapped: pending=%d\n", pending);
    pthread_join(t, NULL);
    printf("call: rc=%ld errno=%d\n", rc, rc < 0 ? err : 0);
    fflush(stdout);
    return 0;
}

/* --- the herd: many calls held at once ----------------------------------------------------- */

static struct sockaddr_un herd_name;
static socklen_t herd_len;
static atomic_int herd_ok;

static void *herd_member(void *arg) {
    (void)arg;
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0)
        return NULL;
    if (sendto(fd, "h", 1, 0, (struct sockaddr *)&herd_name, herd_len) == 1 || errno == ECONNREFUSED)
        atomic_fetch_add(&herd_ok, 1);
    close(fd);
    return NULL;
}

static void *leaker(void *arg) {
    (void)arg;
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    pause_ms(30);
    ssize_t r = sendto(udp, "R32LEAK", 7, 0, (struct sockaddr *)&target, sizeof target);
    printf("leak: rc=%zd errno=%d\n", r, r < 0 ? errno : 0);
    fflush(stdout);
    return NULL;
}

static int herd(int n, const char *host, const char *port, long exit_ms) {
    target.sin_family = AF_INET;
    target.sin_port = htons((unsigned short)atoi(port));
    if (inet_pton(AF_INET, host, &target.sin_addr) != 1)
        return 2;
    /* Nobody is bound at the name (a bind would be the first call, held itself): each send
     * fails with ECONNREFUSED once it runs; EPERM means it was refused. */
    herd_len = abstract_name(&herd_name, "herd");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t *threads = calloc((size_t)n + 1, sizeof *threads);
    int made = 0;
    pthread_t leak;
    int leaking = pthread_create(&leak, &attr, leaker, NULL) == 0;
    for (int i = 0; i < n; i++)
        if (pthread_create(&threads[made], &attr, herd_member, NULL) == 0)
            made++;
    printf("herd: started %d\n", made);
    fflush(stdout);
    if (exit_ms >= 0) {
        pause_ms(exit_ms);
        printf("herd: exiting with ok=%d\n", atomic_load(&herd_ok));
        fflush(stdout);
        _exit(0);
    }
    for (int i = 0; i < made; i++)
        pthread_join(threads[i], NULL);
    if (leaking)
        pthread_join(leak, NULL);
    printf("herd: ok=%d of %d\n", atomic_load(&herd_ok), n);
    fflush(stdout);
    return 0;
}
#endif

#ifdef __i386__
/* --- i386: socketcall(SYS_CONNECT) on a unix socket, in the first milliseconds ------------ */
static int sc_connect(void) {
    struct sockaddr_un name;
    socklen_t len = abstract_name(&name, "sc");
    int l = syscall(359 /* __NR_socket */, AF_UNIX, SOCK_STREAM, 0);
    if (l < 0 || syscall(361 /* __NR_bind */, l, &name, len) != 0 || syscall(363 /* __NR_listen */, l, 4) != 0) {
        printf("setup: errno=%d\n", errno);
        return 2;
    }
    int c = syscall(359, AF_UNIX, SOCK_STREAM, 0);
    if (c < 0)
        return 2;
    long args[3] = {c, (long)&name, len};
    long r = syscall(SYS_socketcall, 3 /* SYS_CONNECT */, args);
    printf("sc-connect: rc=%ld errno=%d\n", r, r < 0 ? errno : 0);
    fflush(stdout);
    return 0;
}

/* The first trapped call: socketcall(SYS_CONNECT) of the inherited unix socket FD to a name
 * nobody bound (ECONNREFUSED when the kernel runs it; EPERM when refused). */
static int sc_connect_fd(int fd) {
    struct sockaddr_un name;
    socklen_t len = abstract_name(&name, "nobody");
    long args[3] = {fd, (long)&name, len};
    long r = syscall(SYS_socketcall, 3 /* SYS_CONNECT */, args);
    printf("sc-connect: rc=%ld errno=%d\n", r, r < 0 ? errno : 0);
    fflush(stdout);
    return 0;
}
#else
/* A unix socket made natively (no trapped call), then the i386 program PATH executed with it
 * as fd 3: its socketcall connect is the run's first trapped call. */
static int exec32(const char *path) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0 || (s != 3 && dup2(s, 3) != 3))
        return 2;
    char *argv[] = {(char *)path, "sc-connect-fd", "3", NULL};
    execv(path, argv);
    return 2;
}
#endif

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
#ifdef __i386__
    if (!strcmp(argv[1], "sc-connect"))
        return sc_connect();
    if (argc == 3 && !strcmp(argv[1], "sc-connect-fd"))
        return sc_connect_fd(atoi(argv[2]));
#else
    if (argc == 3 && !strcmp(argv[1], "exec32"))
        return exec32(argv[2]);
    mode = argv[1];
    if (argc == 4 && !strncmp(mode, "swap-", 5))
        return swap(argv[2], argv[3]);
    if (argc == 5 && !strcmp(mode, "herd"))
        return herd(atoi(argv[2]), argv[3], argv[4], -1);
    if (argc == 6 && !strcmp(mode, "herd-exit"))
        return herd(atoi(argv[2]), argv[3], argv[4], atol(argv[5]));
#endif
    fprintf(stderr, "usage: see the comment at the top of r32_held.c\n");
    return 2;
}
