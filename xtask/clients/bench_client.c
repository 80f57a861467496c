/*
 * bench_client: the workloads of `cargo xtask bench`, and the listener they talk to.
 *
 *   bench_client connect  HOST PORT COUNT THREADS  COUNT connect+close cycles, split over THREADS
 *                                                  (closed with a reset: no TIME_WAIT pile-up)
 *   bench_client udp      HOST PORT COUNT [RATE]   COUNT sendto() calls with an address; with
 *                                                  RATE, paced at RATE calls a second
 *   bench_client bulk     HOST PORT MIB            one connection, MIB MiB written with write()
 *   bench_client syscalls COUNT                    COUNT/2 getpid() and COUNT/2 stat("/")
 *   bench_client seccomp-allow PROGRAM ARGS...     runs PROGRAM under a one-instruction seccomp filter
 *                                                  that allows every call: the cost of any filter
 *   bench_client notify-floor COUNT                COUNT getppid() calls trapped by SECCOMP_RET_USER_NOTIF
 *                                                  and answered CONTINUE by the parent at once (with
 *                                                  SYNC_WAKE_UP when the kernel has it): the bare cost
 *                                                  of a user-notification round trip; also prints
 *                                                  "sync_wake_up 0|1"
 *   bench_client notify-connect HOST PORT COUNT continue|perform
 *                                                  the 1-thread connect storm with connect() trapped
 *                                                  by SECCOMP_RET_USER_NOTIF (sync wake-up) and answered
 *                                                  by the parent with the least a supervisor does:
 *                                                  `continue` answers CONTINUE at once; `perform`
 *                                                  reads the address (process_vm_readv), takes the
 *                                                  socket (pidfd_getfd), checks the call is still
 *                                                  pending (ID_VALID), connects its copy, closes it
 *                                                  and answers the result: the floor of a design
 *                                                  that runs allowed connects itself
 *   bench_client notify-udp HOST PORT COUNT continue|perform
 *                                                  the same for the UDP storm's sendto(): `perform`
 *                                                  reads the payload and the address (one
 *                                                  process_vm_readv), takes the socket, checks the
 *                                                  call is still pending, sends on its copy, closes it
 *   bench_client sink     HOST close|drain THREADS listener on HOST:0; prints "port N", then serves
 *                                                  forever with THREADS accepting threads; `close`
 *                                                  closes each connection at once, `drain` reads
 *                                                  it to EOF first. Dies with its parent.
 *
 * Workloads print "ops N" and "elapsed_ns N" (the timed loop only, CLOCK_MONOTONIC) on stdout and
 * exit 0; any failed call prints the call and errno to stderr and exits 1.
 *
 * Built by `cargo xtask bench` with `gcc -O2 -pthread`. IPv4 only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "bench_client: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void usage(void) {
    fprintf(stderr, "usage: bench_client connect|udp|bulk|syscalls|sink|seccomp-allow|notify-floor|notify-connect|notify-udp ARGS... (see the source)\n");
    exit(2);
}

static long parse_count(const char *text) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || value <= 0) {
        fprintf(stderr, "bench_client: not a positive number: %s\n", text);
        exit(2);
    }
    return value;
}

static struct sockaddr_in parse_addr(const char *host, const char *port) {
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "bench_client: not an IPv4 address: %s\n", host);
        exit(2);
    }
    addr.sin_port = htons((uint16_t)parse_count(port));
    return addr;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void print_result(long ops, uint64_t start) {
    uint64_t elapsed = now_ns() - start;
    printf("ops %ld\nelapsed_ns %llu\n", ops, (unsigned long long)elapsed);
}

/* ---- connect storm ---- */

struct storm {
    struct sockaddr_in addr;
    long count;
};

static void *connect_loop(void *arg) {
    const struct storm *storm = arg;
    for (long i = 0; i < storm->count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            die("socket");
        if (connect(fd, (const struct sockaddr *)&storm->addr, sizeof storm->addr) != 0)
            die("connect");
        /* Closed with a reset: no TIME_WAIT, so thousands of cycles do not fill the port range
         * and slow every later connect's port search (which would measure the kernel, not us). */
        struct linger reset = {.l_onoff = 1, .l_linger = 0};
        if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset) != 0)
            die("setsockopt");
        close(fd);
    }
    return NULL;
}

static int cmd_connect(int argc, char **argv) {
    if (argc != 4)
        usage();
    struct sockaddr_in addr = parse_addr(argv[0], argv[1]);
    long count = parse_count(argv[2]);
    long threads = parse_count(argv[3]);
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    struct storm *work = calloc((size_t)threads, sizeof *work);
    if (ids == NULL || work == NULL)
        die("calloc");
    uint64_t start = now_ns();
    for (long t = 0; t < threads; t++) {
        work[t].addr = addr;
        work[t].count = count / threads + (t < count % threads ? 1 : 0);
        errno = pthread_create(&ids[t], NULL, connect_loop, &work[t]);
        if (errno != 0)
            die("pthread_create");
    }
    for (long t = 0; t < threads; t++)
        pthread_join(ids[t], NULL);
    print_result(count, start);
    return 0;
}

/* ---- UDP sendto storm ---- */

/* Paced sends are checked against the schedule every PACE_BATCH calls. */
#define PACE_BATCH 100

static void sleep_until_ns(uint64_t when) {
    struct timespec ts = {.tv_sec = (time_t)(when / 1000000000u), .tv_nsec = (long)(when % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* The UDP storm's loop: COUNT sendto() calls with an address on one socket, paced at RATE calls a
 * second when RATE > 0; returns the loop's start. */
static uint64_t udp_loop(struct sockaddr_in addr, long count, long rate) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    char payload[32] = "sockstrace bench datagram";
    uint64_t start = now_ns();
    for (long i = 0; i < count; i++) {
        if (rate > 0 && i % PACE_BATCH == 0)
            sleep_until_ns(start + (uint64_t)((double)i * 1e9 / (double)rate));
        if (sendto(fd, payload, sizeof payload, 0, (const struct sockaddr *)&addr, sizeof addr) < 0)
            die("sendto");
    }
    return start;
}

static int cmd_udp(int argc, char **argv) {
    if (argc != 3 && argc != 4)
        usage();
    struct sockaddr_in addr = parse_addr(argv[0], argv[1]);
    long count = parse_count(argv[2]);
    long rate = argc == 4 ? parse_count(argv[3]) : 0;
    uint64_t start = udp_loop(addr, count, rate);
    print_result(count, start);
    return 0;
}

/* ---- bulk transfer ---- */

static int cmd_bulk(int argc, char **argv) {
    if (argc != 3)
        usage();
    struct sockaddr_in addr = parse_addr(argv[0], argv[1]);
    long mib = parse_count(argv[2]);
    static char chunk[256 * 1024];
    memset(chunk, 'x', sizeof chunk);
    uint64_t start = now_ns();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    if (connect(fd, (const struct sockaddr *)&addr, sizeof addr) != 0)
        die("connect");
    long long left = (long long)mib * 1024 * 1024;
    while (left > 0) {
        size_t want = left < (long long)sizeof chunk ? (size_t)left : sizeof chunk;
        ssize_t sent = write(fd, chunk, want);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            die("write");
        }
        left -= sent;
    }
    if (shutdown(fd, SHUT_WR) != 0)
        die("shutdown");
    /* Wait for the sink's EOF so the time covers delivery, not just the send buffer. */
    char byte;
    if (read(fd, &byte, 1) < 0)
        die("read");
    close(fd);
    print_result(mib, start);
    return 0;
}

/* ---- non-network system calls ---- */

static int cmd_syscalls(int argc, char **argv) {
    if (argc != 1)
        usage();
    long count = parse_count(argv[0]);
    struct stat st;
    uint64_t start = now_ns();
    for (long i = 0; i < count / 2; i++) {
        if (syscall(SYS_getpid) < 0)
            die("getpid");
        if (stat("/", &st) != 0)
            die("stat");
    }
    print_result(count / 2 * 2, start);
    return 0;
}

/* ---- the seccomp floor ---- */

static int cmd_seccomp_allow(int argc, char **argv) {
    if (argc < 1)
        usage();
    struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {.len = 1, .filter = allow};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        die("prctl");
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        die("seccomp");
    execvp(argv[0], argv);
    die("execvp");
    return 1;
}

/* ---- the user-notification floor ---- */

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif

static void send_fd(int sock, int fd) {
    char control[CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof control);
    char byte = 'f';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    if (sendmsg(sock, &msg, 0) != 1)
        die("sendmsg");
}

static int recv_fd(int sock) {
    char control[CMSG_SPACE(sizeof(int))];
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    if (recvmsg(sock, &msg, 0) != 1)
        die("recvmsg");
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    if (cmsg == NULL || cmsg->cmsg_type != SCM_RIGHTS) {
        fprintf(stderr, "bench_client: no listener fd received\n");
        exit(1);
    }
    int fd;
    memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
    return fd;
}

/* In a forked child: installs a filter that sends system call `nr` to a listener, hands the
 * listener to the parent over `sock`, and waits for its go. */
static void trap_and_wait(int sock, long nr) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = 4, .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        die("prctl");
    int listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (listener < 0)
        die("seccomp");
    send_fd(sock, listener);
    close(listener);
    char go;
    if (read(sock, &go, 1) != 1)
        die("read");
}

/* In the child, after its timed loop: hands the parent the time and ends. */
static void report_and_exit(int sock, uint64_t elapsed) {
    if (write(sock, &elapsed, sizeof elapsed) != sizeof elapsed)
        die("write");
    _exit(0);
}

/* A child whose calls are trapped and answered by this process. */
struct trapped {
    pid_t child;
    int sock;     /* our end of the pair: the go, then the child's time */
    int listener; /* the child's seccomp listener */
    int sync;     /* whether the kernel took SYNC_WAKE_UP */
};

/* Forks the child, which runs `body(sock, arg)` (starting with trap_and_wait), takes its
 * listener, asks for sync wake-up and gives the go. */
static struct trapped start_trapped(void (*body)(int, const void *), const void *arg) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
        die("socketpair");
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        close(pair[0]);
        body(pair[1], arg);
        _exit(1);
    }
    close(pair[1]);
    struct trapped t = {.child = child, .sock = pair[0], .listener = recv_fd(pair[0])};
    __u64 flags = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
    t.sync = ioctl(t.listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags) == 0;
    if (write(t.sock, "g", 1) != 1)
        die("write");
    return t;
}

/* Takes the child's time, reaps it and prints the workload's lines. */
static int finish_trapped(struct trapped t, long count, const char *what) {
    uint64_t elapsed;
    if (read(t.sock, &elapsed, sizeof elapsed) != sizeof elapsed)
        die("read");
    int status;
    if (waitpid(t.child, &status, 0) != t.child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_client: the %s child failed\n", what);
        return 1;
    }
    printf("ops %ld\nelapsed_ns %llu\nsync_wake_up %d\n", count, (unsigned long long)elapsed, t.sync);
    return 0;
}

/* The notify-floor child: COUNT trapped getppid calls, timed. */
static void notify_floor_child(int sock, const void *arg) {
    long count = *(const long *)arg;
    trap_and_wait(sock, SYS_getppid);
    uint64_t start = now_ns();
    for (long i = 0; i < count; i++)
        syscall(SYS_getppid);
    report_and_exit(sock, now_ns() - start);
}

static int cmd_notify_floor(int argc, char **argv) {
    if (argc != 1)
        usage();
    long count = parse_count(argv[0]);
    struct trapped t = start_trapped(notify_floor_child, &count);
    for (long i = 0; i < count; i++) {
        struct seccomp_notif req;
        memset(&req, 0, sizeof req);
        if (ioctl(t.listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0)
            die("SECCOMP_IOCTL_NOTIF_RECV");
        struct seccomp_notif_resp resp = {.id = req.id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
        if (ioctl(t.listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) != 0)
            die("SECCOMP_IOCTL_NOTIF_SEND");
    }
    return finish_trapped(t, count, "notify-floor");
}

/* ---- the user-notification floor of a trapped connect ---- */

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/* The notify-connect child: connect() trapped, then the storm's loop. */
static void notify_connect_child(int sock, const void *arg) {
    const struct storm *work = arg;
    trap_and_wait(sock, SYS_connect);
    uint64_t start = now_ns();
    connect_loop((void *)work);
    report_and_exit(sock, now_ns() - start);
}

/* The parent's copy of the trapped call's socket (its first argument), once the call is known
 * to be still pending: what a supervisor that performs the call on its copy must do. */
static int take_socket(int listener, int pidfd, const struct seccomp_notif *req) {
    int fd = (int)syscall(SYS_pidfd_getfd, pidfd, (int)req->data.args[0], 0);
    if (fd < 0)
        die("pidfd_getfd");
    __u64 id = req->id;
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) != 0)
        die("SECCOMP_IOCTL_NOTIF_ID_VALID");
    return fd;
}

/* One trapped connect performed on the parent's copy of the socket. */
static void perform_connect(int listener, int pidfd, pid_t child, const struct seccomp_notif *req,
                            struct seccomp_notif_resp *resp) {
    struct sockaddr_storage addr;
    size_t len = req->data.args[2] < sizeof addr ? (size_t)req->data.args[2] : sizeof addr;
    struct iovec local = {.iov_base = &addr, .iov_len = len};
    struct iovec remote = {.iov_base = (void *)(uintptr_t)req->data.args[1], .iov_len = len};
    if (process_vm_readv(child, &local, 1, &remote, 1, 0) != (ssize_t)len)
        die("process_vm_readv");
    int fd = take_socket(listener, pidfd, req);
    if (connect(fd, (const struct sockaddr *)&addr, (socklen_t)len) == 0)
        resp->val = 0;
    else
        resp->error = -errno;
    close(fd);
}

/* The notify-udp child: sendto() trapped, then the UDP storm's loop. */
static void notify_udp_child(int sock, const void *arg) {
    const struct storm *work = arg;
    trap_and_wait(sock, SYS_sendto);
    uint64_t start = udp_loop(work->addr, work->count, 0);
    report_and_exit(sock, now_ns() - start);
}

/* One trapped sendto performed on the parent's copy of the socket: its payload and address
 * read in one call, as a supervisor that judges the copy it sends must. */
static void perform_sendto(int listener, int pidfd, pid_t child, const struct seccomp_notif *req,
                           struct seccomp_notif_resp *resp) {
    char payload[256];
    struct sockaddr_storage addr;
    size_t len = req->data.args[2] < sizeof payload ? (size_t)req->data.args[2] : sizeof payload;
    size_t addr_len = req->data.args[5] < sizeof addr ? (size_t)req->data.args[5] : sizeof addr;
    struct iovec local[2] = {{.iov_base = payload, .iov_len = len}, {.iov_base = &addr, .iov_len = addr_len}};
    struct iovec remote[2] = {{.iov_base = (void *)(uintptr_t)req->data.args[1], .iov_len = len},
                              {.iov_base = (void *)(uintptr_t)req->data.args[4], .iov_len = addr_len}};
    if (process_vm_readv(child, local, 2, remote, 2, 0) != (ssize_t)(len + addr_len))
        die("process_vm_readv");
    int fd = take_socket(listener, pidfd, req);
    ssize_t sent = sendto(fd, payload, len, (int)req->data.args[3], (const struct sockaddr *)&addr,
                          (socklen_t)addr_len);
    if (sent >= 0)
        resp->val = sent;
    else
        resp->error = -errno;
    close(fd);
}

/* notify-connect and notify-udp: the storm's call trapped and answered by this process. */
static int cmd_notify_storm(int argc, char **argv, int udp) {
    if (argc != 4)
        usage();
    struct storm work = {.addr = parse_addr(argv[0], argv[1]), .count = parse_count(argv[2])};
    int perform = strcmp(argv[3], "perform") == 0;
    if (!perform && strcmp(argv[3], "continue") != 0)
        usage();
    struct trapped t = start_trapped(udp ? notify_udp_child : notify_connect_child, &work);
    int pidfd = (int)syscall(SYS_pidfd_open, t.child, 0);
    if (pidfd < 0)
        die("pidfd_open");
    for (long i = 0; i < work.count; i++) {
        struct seccomp_notif req;
        memset(&req, 0, sizeof req);
        if (ioctl(t.listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0)
            die("SECCOMP_IOCTL_NOTIF_RECV");
        struct seccomp_notif_resp resp = {.id = req.id};
        if (!perform)
            resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        else if (udp)
            perform_sendto(t.listener, pidfd, t.child, &req, &resp);
        else
            perform_connect(t.listener, pidfd, t.child, &req, &resp);
        if (ioctl(t.listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) != 0)
            die("SECCOMP_IOCTL_NOTIF_SEND");
    }
    return finish_trapped(t, work.count, udp ? "notify-udp" : "notify-connect");
}

/* ---- the listener ---- */

static int sink_fd;
static int sink_drain;

static void *sink_loop(void *arg) {
    (void)arg;
    static __thread char buf[256 * 1024];
    for (;;) {
        int conn = accept4(sink_fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            die("accept4");
        }
        if (sink_drain) {
            while (read(conn, buf, sizeof buf) > 0) {
            }
        }
        close(conn);
    }
    return NULL;
}

static int cmd_sink(int argc, char **argv) {
    if (argc != 3)
        usage();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        die("prctl");
    if (getppid() == 1)
        return 1;
    struct sockaddr_in addr = parse_addr(argv[0], "1");
    addr.sin_port = 0;
    if (strcmp(argv[1], "drain") == 0)
        sink_drain = 1;
    else if (strcmp(argv[1], "close") != 0)
        usage();
    long threads = parse_count(argv[2]);
    sink_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sink_fd < 0)
        die("socket");
    int one = 1;
    setsockopt(sink_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(sink_fd, (const struct sockaddr *)&addr, sizeof addr) != 0)
        die("bind");
    if (listen(sink_fd, 4096) != 0)
        die("listen");
    socklen_t len = sizeof addr;
    if (getsockname(sink_fd, (struct sockaddr *)&addr, &len) != 0)
        die("getsockname");
    printf("port %u\n", ntohs(addr.sin_port));
    fflush(stdout);
    for (long t = 1; t < threads; t++) {
        pthread_t id;
        errno = pthread_create(&id, NULL, sink_loop, NULL);
        if (errno != 0)
            die("pthread_create");
    }
    sink_loop(NULL);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2)
        usage();
    const char *mode = argv[1];
    argc -= 2;
    argv += 2;
    if (strcmp(mode, "connect") == 0)
        return cmd_connect(argc, argv);
    if (strcmp(mode, "udp") == 0)
        return cmd_udp(argc, argv);
    if (strcmp(mode, "bulk") == 0)
        return cmd_bulk(argc, argv);
    if (strcmp(mode, "syscalls") == 0)
        return cmd_syscalls(argc, argv);
    if (strcmp(mode, "sink") == 0)
        return cmd_sink(argc, argv);
    if (strcmp(mode, "seccomp-allow") == 0)
        return cmd_seccomp_allow(argc, argv);
    if (strcmp(mode, "notify-floor") == 0)
        return cmd_notify_floor(argc, argv);
    if (strcmp(mode, "notify-connect") == 0)
        return cmd_notify_storm(argc, argv, 0);
    if (strcmp(mode, "notify-udp") == 0)
        return cmd_notify_storm(argc, argv, 1);
    usage();
    return 2;
}
