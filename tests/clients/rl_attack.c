/* rl_attack: a program that acts in its first moments, while the kernel layer
 * may still be joining it (the socket-creation hook attached, the rest
 * loading). Each subcommand prints what it achieved; the tests judge by what
 * reached their sinks and by the report.
 *
 *   exit-while-waiting udp|tcp HOST PORT MS
 *       a second thread sends a datagram (sendto with an address) or connects
 *       to HOST:PORT at once; the main thread exits the whole program
 *       (exit_group) MS milliseconds later, whether or not that call returned
 *   exec-while-waiting udp|tcp HOST PORT MS PROGRAM [ARGS...]
 *       the same, but the main thread executes PROGRAM after MS milliseconds
 *       (which ends the other thread, its call pending or not): a launcher
 *       whose helper thread leaks while it starts the real program
 *   untrapped HOST UDP_PORT TCP_PORT
 *       every way to send that passes no trapped call: write/send/sendto
 *       without an address on unconnected UDP, UDP-Lite, ping and IPv6 UDP
 *       sockets; TCP Fast Open without an address; TCP_FASTOPEN_CONNECT then
 *       write; splice into an unconnected UDP socket
 *   fds
 *       lists the fds the program was started with (past stdio): a socket
 *       sockstrace leaked into the program would be one nobody judged
 *   options-then-send HOST PORT MS
 *       sets, at once, socket options that are not trapped on a UDP socket
 *       (SO_REUSEADDR, SO_PRIORITY, IP_TOS, IP_TTL, IP_MTU_DISCOVER,
 *       IP_RECVERR, IP_FREEBIND, IP_MULTICAST_TTL, IP_MULTICAST_LOOP), then
 *       sleeps MS ms (the layer joins) and sends to HOST:PORT with an address
 *   burst HOST PORT N
 *       N threads released together by a barrier, and a forked child with as
 *       many, each send one datagram to HOST:PORT with an address at once;
 *       prints how many sends succeeded
 *   starve-supervisor NOFILE MS
 *       (same user as sockstrace: root) lowers its supervisor's RLIMIT_NOFILE
 *       to NOFILE at once, while the kernel layer may still be loading, then
 *       sleeps MS ms
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef IPPROTO_UDPLITE
#define IPPROTO_UDPLITE 136
#endif
#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30
#endif

static const char MARKER[] = "rl_attack-leak";

static void usage(void) {
    fprintf(stderr, "usage: rl_attack exit-while-waiting|exec-while-waiting|untrapped|fds|options-then-send|burst|"
                    "starve-supervisor ...\n");
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

static void say(const char *what, long rc, int err) {
    if (rc < 0)
        printf("%s: errno=%d (%s)\n", what, err, strerror(err));
    else
        printf("%s: ok (%ld)\n", what, rc);
    fflush(stdout);
}

/* ---- exit-while-waiting ---- */

static struct sockaddr_in target;
static int target_tcp;

static void *caller(void *arg) {
    (void)arg;
    int s = socket(AF_INET, target_tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    if (s < 0) {
        say("socket", -1, errno);
        return NULL;
    }
    long rc;
    if (target_tcp)
        rc = connect(s, (struct sockaddr *)&target, sizeof target);
    else
        rc = sendto(s, MARKER, sizeof MARKER - 1, 0, (struct sockaddr *)&target, sizeof target);
    say(target_tcp ? "connect" : "sendto", rc, errno);
    return NULL;
}

static int cmd_exit_while_waiting(const char *kind, const char *host, const char *port, const char *ms) {
    target = inet_addr_of(host, port);
    target_tcp = strcmp(kind, "tcp") == 0;
    pthread_t t;
    if (pthread_create(&t, NULL, caller, NULL) != 0) {
        printf("pthread_create failed\n");
        return 1;
    }
    usleep((useconds_t)atoi(ms) * 1000);
    printf("main: exiting\n");
    fflush(stdout);
    /* exit_group: the whole program ends, the other thread's call pending or not. */
    _exit(0);
}

static int cmd_exec_while_waiting(const char *kind, const char *host, const char *port, const char *ms,
                                  char **argv) {
    target = inet_addr_of(host, port);
    target_tcp = strcmp(kind, "tcp") == 0;
    pthread_t t;
    if (pthread_create(&t, NULL, caller, NULL) != 0) {
        printf("pthread_create failed\n");
        return 1;
    }
    usleep((useconds_t)atoi(ms) * 1000);
    printf("main: executing %s\n", argv[0]);
    fflush(stdout);
    execv(argv[0], argv);
    printf("execv: %s\n", strerror(errno));
    return 1;
}

/* ---- untrapped ---- */

static void try_write(const char *what, int domain, int type, int proto, int flags) {
    int s = socket(domain, type, proto);
    if (s < 0) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s socket", what);
        say(buf, -1, errno);
        return;
    }
    long rc = flags < 0 ? write(s, MARKER, sizeof MARKER - 1) : send(s, MARKER, sizeof MARKER - 1, flags);
    say(what, rc, errno);
    close(s);
}

static int cmd_untrapped(const char *host, const char *uport, const char *tport) {
    (void)host;
    (void)uport;
    try_write("udp write", AF_INET, SOCK_DGRAM, 0, -1);
    try_write("udp send", AF_INET, SOCK_DGRAM, 0, 0);
    try_write("udplite write", AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE, -1);
    try_write("ping write", AF_INET, SOCK_DGRAM, IPPROTO_ICMP, -1);
    try_write("udp6 write", AF_INET6, SOCK_DGRAM, 0, -1);
    try_write("tcp send", AF_INET, SOCK_STREAM, 0, MSG_NOSIGNAL);
    try_write("tcp fastopen without address", AF_INET, SOCK_STREAM, 0, MSG_FASTOPEN | MSG_NOSIGNAL);
    {
        /* sendto(NULL address, non-zero length): the filter looks at the pointer. */
        int s = socket(AF_INET, SOCK_STREAM, 0);
        long rc = sendto(s, MARKER, sizeof MARKER - 1, MSG_FASTOPEN | MSG_NOSIGNAL, NULL,
                         sizeof(struct sockaddr_in));
        say("tcp fastopen null address with a length", rc, errno);
        close(s);
    }
    {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        long o = setsockopt(s, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof one);
        say("tcp_fastopen_connect option", o, errno);
        long rc = send(s, MARKER, sizeof MARKER - 1, MSG_NOSIGNAL);
        say("tcp_fastopen_connect send without connect", rc, errno);
        close(s);
    }
    {
        int p[2];
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        if (pipe(p) == 0 && write(p[1], MARKER, sizeof MARKER - 1) > 0) {
            long rc = splice(p[0], NULL, s, NULL, sizeof MARKER - 1, 0);
            say("udp splice", rc, errno);
        }
        close(s);
    }
    (void)tport;
    printf("untrapped: done\n");
    return 0;
}

/* ---- fds ---- */

static int cmd_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        printf("opendir: %s\n", strerror(errno));
        return 1;
    }
    int me = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd <= 2 || fd == me)
            continue;
        char path[64], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        link[n < 0 ? 0 : n] = 0;
        int domain = -1;
        socklen_t len = sizeof domain;
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0)
            domain = -1;
        printf("fd %d: %s domain=%d\n", fd, link, domain);
    }
    closedir(d);
    printf("fds: done\n");
    return 0;
}

/* ---- options-then-send ---- */

static int cmd_options_then_send(const char *host, const char *port, const char *ms) {
    struct sockaddr_in sin = inet_addr_of(host, port);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1, prio = 6, tos = 0x10, ttl = 7, pmtu = IP_PMTUDISC_DO;
    say("SO_REUSEADDR", setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), errno);
    say("SO_PRIORITY", setsockopt(s, SOL_SOCKET, SO_PRIORITY, &prio, sizeof prio), errno);
    say("IP_TOS", setsockopt(s, IPPROTO_IP, IP_TOS, &tos, sizeof tos), errno);
    say("IP_TTL", setsockopt(s, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl), errno);
    say("IP_MTU_DISCOVER", setsockopt(s, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu), errno);
    say("IP_RECVERR", setsockopt(s, IPPROTO_IP, IP_RECVERR, &one, sizeof one), errno);
    say("IP_FREEBIND", setsockopt(s, IPPROTO_IP, IP_FREEBIND, &one, sizeof one), errno);
    say("IP_MULTICAST_TTL", setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl), errno);
    say("IP_MULTICAST_LOOP", setsockopt(s, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof one), errno);
    usleep((useconds_t)atoi(ms) * 1000);
    long rc = sendto(s, MARKER, sizeof MARKER - 1, 0, (struct sockaddr *)&sin, sizeof sin);
    say("sendto", rc, errno);
    return 0;
}

/* ---- burst ---- */

static pthread_barrier_t barrier;
static int burst_ok, burst_failed;
static pthread_mutex_t burst_lock = PTHREAD_MUTEX_INITIALIZER;

static void *burst_one(void *arg) {
    (void)arg;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    pthread_barrier_wait(&barrier);
    long rc = sendto(s, MARKER, sizeof MARKER - 1, 0, (struct sockaddr *)&target, sizeof target);
    pthread_mutex_lock(&burst_lock);
    if (rc < 0)
        burst_failed++;
    else
        burst_ok++;
    pthread_mutex_unlock(&burst_lock);
    close(s);
    return NULL;
}

static void burst_threads(const char *who, int n) {
    pthread_t t[64];
    if (n > 64)
        n = 64;
    pthread_barrier_init(&barrier, NULL, (unsigned)n);
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, burst_one, NULL);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    printf("burst %s: ok=%d failed=%d\n", who, burst_ok, burst_failed);
    fflush(stdout);
}

static int cmd_burst(const char *host, const char *port, const char *n) {
    target = inet_addr_of(host, port);
    pid_t child = fork();
    burst_threads(child == 0 ? "child" : "parent", atoi(n));
    if (child == 0)
        _exit(0);
    int status;
    waitpid(child, &status, 0);
    return 0;
}

/* ---- starve-supervisor ---- */

static int cmd_starve_supervisor(const char *nofile, const char *ms) {
    struct rlimit lim = {(rlim_t)atoi(nofile), (rlim_t)atoi(nofile)};
    long rc = syscall(SYS_prlimit64, getppid(), RLIMIT_NOFILE, &lim, NULL);
    say("prlimit(supervisor, RLIMIT_NOFILE)", rc, errno);
    usleep((useconds_t)atoi(ms) * 1000);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "exit-while-waiting") == 0 && argc == 6)
        return cmd_exit_while_waiting(argv[2], argv[3], argv[4], argv[5]);
    if (strcmp(cmd, "exec-while-waiting") == 0 && argc >= 7)
        return cmd_exec_while_waiting(argv[2], argv[3], argv[4], argv[5], argv + 6);
    if (strcmp(cmd, "untrapped") == 0 && argc == 5)
        return cmd_untrapped(argv[2], argv[3], argv[4]);
    if (strcmp(cmd, "fds") == 0 && argc == 2)
        return cmd_fds();
    if (strcmp(cmd, "options-then-send") == 0 && argc == 5)
        return cmd_options_then_send(argv[2], argv[3], argv[4]);
    if (strcmp(cmd, "burst") == 0 && argc == 5)
        return cmd_burst(argv[2], argv[3], argv[4]);
    if (strcmp(cmd, "starve-supervisor") == 0 && argc == 4)
        return cmd_starve_supervisor(argv[2], argv[3]);
    usage();
    return 2;
}
