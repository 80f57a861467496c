/* attack_race: changes what a trapped call means after the supervisor decided
 * it, by swapping the fd number (dup2 from another thread) or rewriting the
 * i386 socketcall argument array (from another process sharing the page), and
 * tries families and privileges the supervisor must not lend. Each subcommand
 * prints what it achieved; the tests judge by what reached their sinks.
 *
 *   fd-swap-sendto HOST PORT N     unix dgram fd swapped with a UDP socket,
 *                                  sendto an inet address
 *   fd-swap-connect HOST PORT N    unix stream fd swapped with TCP sockets,
 *                                  connect to an inet address
 *   fd-swap-listen PORT N          unix stream fd swapped with a TCP socket
 *                                  bound to 0.0.0.0:PORT, listen
 *   double-race udp|tcp HOST PORT N  as above, and the address buffer flips
 *                                  between a unix and an inet address too
 *   mismatch-sendto HOST PORT      one sendto of an inet address on a unix
 *                                  socket (no race)
 *   sc-race vm|shm udp|tcp|socket HOST PORT N  (i386) socketcall whose argument
 *                                  array another process rewrites
 *   vsock PORT                     AF_VSOCK bind+listen, connect to the host
 *   userns-bind PORT               bind 127.0.0.1:PORT inside a new user
 *                                  namespace mapped to root
 *   accept-check                   accept as performed for the program: EAGAIN,
 *                                  flags, peer address, EINTR, unix listeners
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/net.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static void usage(void) {
    fprintf(stderr, "usage: attack_race fd-swap-sendto|fd-swap-connect|fd-swap-listen|double-race|"
                    "mismatch-sendto|sc-race|vsock|userns-bind ...\n");
    exit(2);
}

static void result(const char *op, int r) {
    if (r < 0)
        printf("%s: errno=%d (%s)\n", op, errno, strerror(errno));
    else
        printf("%s: ok\n", op);
    fflush(stdout);
}

static struct sockaddr_in inet_addr_of(const char *host, const char *port) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        usage();
    return sin;
}

/* ---- native fd-number races (a thread swaps what the number names) ---- */

static volatile int stop_flag;
static volatile int swap_fd = -1;      /* the number the calls use */
static volatile int swap_a = -1;       /* what it names at the check (unix) */
static volatile int swap_b = -1;       /* what it should name at the act (inet) */
static volatile int flip_addr;         /* double race: flip the address too */
static union {
    struct sockaddr_un un;
    struct sockaddr_in in;
    struct sockaddr_storage ss;
} race_addr;
static struct sockaddr_un addr_unix;
static struct sockaddr_in addr_inet;

static void *swapper(void *arg) {
    (void)arg;
    while (!stop_flag) {
        dup2(swap_a, swap_fd);
        if (flip_addr)
            memcpy(&race_addr, &addr_unix, sizeof(addr_unix));
        for (volatile int i = 0; i < 50; i++) {
        }
        dup2(swap_b, swap_fd);
        if (flip_addr) {
            memset(&race_addr, 0, sizeof(race_addr));
            memcpy(&race_addr, &addr_inet, sizeof(addr_inet));
        }
        for (volatile int i = 0; i < 50; i++) {
        }
    }
    return NULL;
}

static pthread_t start_swapper(void) {
    pthread_t t;
    stop_flag = 0;
    if (pthread_create(&t, NULL, swapper, NULL) != 0) {
        perror("pthread_create");
        exit(1);
    }
    return t;
}

static void stop_swapper(pthread_t t) {
    stop_flag = 1;
    pthread_join(t, NULL);
}

static void unix_addr_init(void) {
    memset(&addr_unix, 0, sizeof(addr_unix));
    addr_unix.sun_family = AF_UNIX;
    strcpy(addr_unix.sun_path, "/nonexistent/attack_race.sock");
}

static int cmd_fd_swap_sendto(const char *host, const char *port, int n, int dbl) {
    addr_inet = inet_addr_of(host, port);
    unix_addr_init();
    memcpy(&race_addr, &addr_inet, sizeof(addr_inet));
    swap_a = socket(AF_UNIX, SOCK_DGRAM, 0);
    swap_b = socket(AF_INET, SOCK_DGRAM, 0);
    swap_fd = dup(swap_a);
    flip_addr = dbl;
    pthread_t t = start_swapper();
    int sent = 0, einval = 0, eperm = 0, other = 0;
    for (int i = 0; i < n; i++) {
        long r = sendto(swap_fd, "race", 4, 0, (struct sockaddr *)&race_addr, sizeof(struct sockaddr_un));
        if (r >= 0)
            sent++;
        else if (errno == EINVAL)
            einval++;
        else if (errno == EPERM)
            eperm++;
        else
            other++;
    }
    stop_swapper(t);
    printf("sendto: sent=%d einval=%d eperm=%d other=%d\n", sent, einval, eperm, other);
    return 0;
}

static int cmd_fd_swap_connect(const char *host, const char *port, int n, int dbl) {
    addr_inet = inet_addr_of(host, port);
    unix_addr_init();
    memcpy(&race_addr, &addr_inet, sizeof(addr_inet));
    swap_a = socket(AF_UNIX, SOCK_STREAM, 0);
    swap_b = socket(AF_INET, SOCK_STREAM, 0);
    swap_fd = dup(swap_a);
    flip_addr = dbl;
    pthread_t t = start_swapper();
    int connected = 0, einval = 0, eperm = 0, other = 0;
    for (int i = 0; i < n; i++) {
        int r = connect(swap_fd, (struct sockaddr *)&race_addr, sizeof(struct sockaddr_un));
        if (r == 0) {
            connected++;
            /* A connected TCP socket: continue with a fresh one. */
            int fresh = socket(AF_INET, SOCK_STREAM, 0);
            int old = swap_b;
            swap_b = fresh;
            close(old);
        } else if (errno == EINVAL)
            einval++;
        else if (errno == EPERM)
            eperm++;
        else
            other++;
    }
    stop_swapper(t);
    printf("connect: connected=%d einval=%d eperm=%d other=%d\n", connected, einval, eperm, other);
    return 0;
}

static int cmd_fd_swap_listen(const char *port, int n) {
    swap_a = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "attack_race_%d", (int)getpid());
    result("bind-unix", bind(swap_a, (struct sockaddr *)&sun, sizeof(sun)));
    swap_b = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(swap_b, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in any = inet_addr_of("0.0.0.0", port);
    result("bind-inet", bind(swap_b, (struct sockaddr *)&any, sizeof(any)));
    swap_fd = dup(swap_a);
    pthread_t t = start_swapper();
    for (int i = 0; i < n; i++)
        listen(swap_fd, 1);
    stop_swapper(t);
    int acc = 0;
    socklen_t len = sizeof(acc);
    getsockopt(swap_b, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len);
    printf("inet-listening=%d\n", acc);
    fflush(stdout);
    return 0;
}

static int cmd_mismatch_sendto(const char *host, const char *port) {
    struct sockaddr_in sin = inet_addr_of(host, port);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    result("sendto", (int)sendto(fd, "x", 1, 0, (struct sockaddr *)&sin, sizeof(sin)));
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    result("connect", connect(s, (struct sockaddr *)&sin, sizeof(sin)));
    int b = socket(AF_UNIX, SOCK_DGRAM, 0);
    result("bind", bind(b, (struct sockaddr *)&sin, sizeof(sin)));
    return 0;
}

/* ---- i386 socketcall: another process rewrites the argument array ---- */

struct shared {
    volatile int stop;
    volatile int tcp_fd;
    volatile long args[6];
    long alt[2][6];   /* [0]: what we decide on (unix), [1]: the rewrite */
    int words;        /* how many words to flip */
};

static struct shared *sh;

static int rewriter(void *arg) {
    (void)arg;
    while (!sh->stop) {
        for (int i = 0; i < sh->words; i++)
            sh->args[i] = sh->alt[0][i];
        for (volatile int i = 0; i < 30; i++) {
        }
        for (int i = 0; i < sh->words; i++)
            sh->args[i] = (i == 0 && sh->tcp_fd >= 0) ? sh->tcp_fd : sh->alt[1][i];
        for (volatile int i = 0; i < 30; i++) {
        }
    }
    return 0;
}

static long socketcall_raw(int call, volatile long *args) {
#ifdef SYS_socketcall
    return syscall(SYS_socketcall, call, args);
#else
    (void)call;
    (void)args;
    errno = ENOSYS;
    return -1;
#endif
}

static int cmd_sc_race(const char *how, const char *what, const char *host, const char *port, int n) {
    sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    static struct sockaddr_in sin;
    static struct sockaddr_un sun;
    sin = inet_addr_of(host, port);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, "/nonexistent/attack_race.sock");
    int call;
    sh->tcp_fd = -1;
    if (strcmp(what, "udp") == 0) {
        int u = socket(AF_UNIX, SOCK_DGRAM, 0), d = socket(AF_INET, SOCK_DGRAM, 0);
        static char buf[] = "race";
        long a0[6] = {u, (long)(uintptr_t)buf, 4, 0, (long)(uintptr_t)&sun, sizeof(sun)};
        long a1[6] = {d, (long)(uintptr_t)buf, 4, 0, (long)(uintptr_t)&sin, sizeof(sun)};
        memcpy(sh->alt[0], a0, sizeof(a0));
        memcpy(sh->alt[1], a1, sizeof(a1));
        sh->words = 6;
        call = SYS_SENDTO;
    } else if (strcmp(what, "tcp") == 0) {
        int u = socket(AF_UNIX, SOCK_STREAM, 0);
        sh->tcp_fd = socket(AF_INET, SOCK_STREAM, 0);
        long a0[3] = {u, (long)(uintptr_t)&sun, sizeof(sun)};
        long a1[3] = {sh->tcp_fd, (long)(uintptr_t)&sin, sizeof(sun)};
        memcpy(sh->alt[0], a0, sizeof(a0));
        memcpy(sh->alt[1], a1, sizeof(a1));
        sh->words = 3;
        call = SYS_CONNECT;
    } else if (strcmp(what, "socket") == 0) {
        /* Packet sockets that might send: only in a network namespace of our
         * own (loopback only), never on this machine's real interfaces. */
        if (unshare(CLONE_NEWNET) != 0) {
            perror("unshare(CLONE_NEWNET)");
            return 1;
        }
        long a0[3] = {AF_UNIX, SOCK_DGRAM, 0};
        long a1[3] = {AF_PACKET, SOCK_RAW, 0};
        memcpy(sh->alt[0], a0, sizeof(a0));
        memcpy(sh->alt[1], a1, sizeof(a1));
        sh->words = 3;
        call = SYS_SOCKET;
    } else {
        usage();
        return 2;
    }
    for (int i = 0; i < sh->words; i++)
        sh->args[i] = sh->alt[0][i];
    pid_t child;
    if (strcmp(how, "vm") == 0) {
        /* A process (not a thread) sharing our whole address space. */
        size_t stack_size = 1 << 16;
        char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        child = clone(rewriter, stack + stack_size, CLONE_VM | SIGCHLD, NULL);
    } else if (strcmp(how, "shm") == 0) {
        /* A second process sharing only the MAP_SHARED page. */
        child = fork();
        if (child == 0) {
            rewriter(NULL);
            _exit(0);
        }
    } else {
        usage();
        return 2;
    }
    if (child < 0) {
        perror("clone");
        return 1;
    }
    int ok = 0, packet = 0, packet_sent = 0, race = 0, other = 0;
    for (int i = 0; i < n; i++) {
        long r = socketcall_raw(call, sh->args);
        if (r < 0) {
            if (errno == EPERM)
                race++;
            else
                other++;
            continue;
        }
        ok++;
        if (call == SYS_SOCKET) {
            int dom = 0;
            socklen_t len = sizeof(dom);
            getsockopt((int)r, SOL_SOCKET, SO_DOMAIN, &dom, &len);
            if (dom == AF_PACKET) {
                packet++;
                /* What needs no trapped call: write and send without an
                 * address. Both must fail (no device without bind). */
                char frame[64] = {0};
                if (write((int)r, frame, sizeof frame) >= 0)
                    packet_sent++;
                if (send((int)r, frame, sizeof frame, 0) >= 0)
                    packet_sent++;
            }
            close((int)r);
        } else if (call == SYS_CONNECT) {
            /* Whatever connected, start again with fresh sockets. */
            sh->tcp_fd = socket(AF_INET, SOCK_STREAM, 0);
        }
    }
    sh->stop = 1;
    waitpid(child, NULL, 0);
    printf("socketcall: ok=%d packet=%d packet_sent=%d eperm=%d other=%d\n", ok, packet, packet_sent, race, other);
    fflush(stdout);
    return 0;
}

/* ---- AF_VSOCK: a family that leaves the machine (to the VM's host) ---- */

static int cmd_vsock(const char *port) {
    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    result("socket", fd);
    if (fd < 0)
        return 0;
    struct sockaddr_vm svm;
    memset(&svm, 0, sizeof(svm));
    svm.svm_family = AF_VSOCK;
    svm.svm_cid = VMADDR_CID_ANY;
    svm.svm_port = (unsigned)atoi(port);
    result("bind", bind(fd, (struct sockaddr *)&svm, sizeof(svm)));
    result("listen", listen(fd, 1));
    int c = socket(AF_VSOCK, SOCK_STREAM, 0);
    memset(&svm, 0, sizeof(svm));
    svm.svm_family = AF_VSOCK;
    svm.svm_cid = VMADDR_CID_HOST;
    svm.svm_port = (unsigned)atoi(port);
    result("connect", connect(c, (struct sockaddr *)&svm, sizeof(svm)));
    return 0;
}

/* ---- privileges gained in a user namespace ---- */

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    int r = (int)write(fd, text, strlen(text));
    close(fd);
    return r < 0 ? -1 : 0;
}

static int cmd_userns_bind(const char *port) {
    uid_t uid = getuid();
    gid_t gid = getgid();
    result("unshare", unshare(CLONE_NEWUSER));
    char map[64];
    write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)uid);
    result("uid_map", write_file("/proc/self/uid_map", map));
    snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)gid);
    result("gid_map", write_file("/proc/self/gid_map", map));
    printf("uid-in-namespace=%u\n", (unsigned)getuid());
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sin = inet_addr_of("127.0.0.1", port);
    result("bind", bind(fd, (struct sockaddr *)&sin, sizeof(sin)));
    result("listen", listen(fd, 1));
    return 0;
}

/* ---- accept, now performed by the supervisor: semantics kept ---- */

static void on_alarm(int sig) {
    (void)sig;
}

static int cmd_accept_check(void) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sin = inet_addr_of("127.0.0.1", "0");
    socklen_t len = sizeof(sin);
    if (bind(l, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(l, 4) != 0 ||
        getsockname(l, (struct sockaddr *)&sin, &len) != 0) {
        result("listener", -1);
        return 1;
    }
    int r = accept4(l, NULL, NULL, 0);
    printf("nonblocking-empty: %s\n", r < 0 && errno == EAGAIN ? "EAGAIN" : "other");
    int c = socket(AF_INET, SOCK_STREAM, 0);
    result("connect", connect(c, (struct sockaddr *)&sin, sizeof(sin)));
    struct sockaddr_in mine, peer;
    len = sizeof(mine);
    getsockname(c, (struct sockaddr *)&mine, &len);
    memset(&peer, 0, sizeof(peer));
    len = sizeof(peer);
    int a = accept4(l, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    result("accept4", a);
    printf("cloexec=%d nonblock=%d\n", (fcntl(a, F_GETFD) & FD_CLOEXEC) != 0,
           (fcntl(a, F_GETFL) & O_NONBLOCK) != 0);
    printf("peer-matches=%d len=%u\n", peer.sin_family == AF_INET && peer.sin_port == mine.sin_port,
           (unsigned)len);
    write(c, "hi", 2);
    char buf[4] = {0};
    for (int i = 0; i < 100 && read(a, buf, 2) < 0; i++)
        usleep(10000);
    printf("data=%s\n", buf);
    /* A blocking accept with nobody connecting, interrupted by a signal. */
    int b = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin2 = inet_addr_of("127.0.0.1", "0");
    bind(b, (struct sockaddr *)&sin2, sizeof(sin2));
    listen(b, 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    alarm(1);
    r = accept(b, NULL, NULL);
    printf("blocking-interrupted: %s\n", r < 0 && errno == EINTR ? "EINTR" : "other");
    /* A unix listener. */
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "attack_race_acc_%d", (int)getpid());
    socklen_t sunlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sun.sun_path + 1));
    bind(u, (struct sockaddr *)&sun, sunlen);
    result("unix-listen", listen(u, 1));
    int uc = socket(AF_UNIX, SOCK_STREAM, 0);
    result("unix-connect", connect(uc, (struct sockaddr *)&sun, sunlen));
    result("unix-accept", accept(u, NULL, NULL));
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "fd-swap-sendto") == 0 && argc == 5)
        return cmd_fd_swap_sendto(argv[2], argv[3], atoi(argv[4]), 0);
    if (strcmp(cmd, "fd-swap-connect") == 0 && argc == 5)
        return cmd_fd_swap_connect(argv[2], argv[3], atoi(argv[4]), 0);
    if (strcmp(cmd, "fd-swap-listen") == 0 && argc == 4)
        return cmd_fd_swap_listen(argv[2], atoi(argv[3]));
    if (strcmp(cmd, "double-race") == 0 && argc == 6) {
        if (strcmp(argv[2], "udp") == 0)
            return cmd_fd_swap_sendto(argv[3], argv[4], atoi(argv[5]), 1);
        return cmd_fd_swap_connect(argv[3], argv[4], atoi(argv[5]), 1);
    }
    if (strcmp(cmd, "mismatch-sendto") == 0 && argc == 4)
        return cmd_mismatch_sendto(argv[2], argv[3]);
    if (strcmp(cmd, "sc-race") == 0 && argc == 7)
        return cmd_sc_race(argv[2], argv[3], argv[4], argv[5], atoi(argv[6]));
    if (strcmp(cmd, "vsock") == 0 && argc == 3)
        return cmd_vsock(argv[2]);
    if (strcmp(cmd, "accept-check") == 0 && argc == 2)
        return cmd_accept_check();
    if (strcmp(cmd, "userns-bind") == 0 && argc == 3)
        return cmd_userns_bind(argv[2]);
    usage();
    return 2;
}
