/* attack_fastpath: races an allowed connect or datagram whose answer may be
 * CONTINUE (the kernel then reads the address and the fd number again): a
 * thread flips the address in memory between the allowed one and a forbidden
 * one, or swaps what the fd number names, while the main thread repeats the
 * call. Waits WAIT_MS first (the supervisor turns its fast path on shortly
 * after the start). Prints "ok=N refused=N other=N"; the tests judge by what
 * reached their sinks and what the report says.
 *
 *   flip-connect-udp WAIT_MS OKHOST OKPORT BADHOST BADPORT N
 *                       UDP connects (then one datagram) to an address another
 *                       thread flips
 *   flip-connect WAIT_MS OKHOST OKPORT BADHOST BADPORT N
 *                       TCP connects to an address another thread flips
 *   flip-sendto WAIT_MS OKHOST OKPORT BADHOST BADPORT N
 *                       UDP sendto of an address another thread flips
 *   flip-sendto-fd3 WAIT_MS OKHOST OKPORT BADHOST BADPORT N
 *                       the same on fd 3, a UDP socket the program inherits
 *                       (made outside its cgroup, where no hook of the kernel
 *                       layer runs)
 *   swap-sendto WAIT_MS OKHOST OKPORT BADHOST BADPORT N
 *                       sendto on an fd number another thread points at a UDP,
 *                       UDP-Lite, TCP, ping, unix or netlink socket in turn,
 *                       the address flipping too
 *   swap-connect WAIT_MS OKHOST OKPORT BADHOST BADPORT N
 *                       connect on an fd number another thread points at a
 *                       TCP, a UDP or a UDP-Lite socket in turn, the address
 *                       flipping too; a datagram is sent on every connected one
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IPPROTO_UDPLITE
#define IPPROTO_UDPLITE 136
#endif

static struct sockaddr_in ok_addr, bad_addr;
static struct sockaddr_in shared; /* what the calls pass */
static volatile int stop_flag;
static volatile int swap_fd = -1;

static void usage(void) {
    fprintf(stderr, "usage: attack_fastpath flip-connect|flip-connect-udp|flip-sendto|flip-sendto-fd3|swap-sendto|swap-connect WAIT_MS OKHOST OKPORT BADHOST BADPORT N\n");
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

/* Points swap_fd at a new TCP, UDP or UDP-Lite socket in turn. */
static void *swapper(void *arg) {
    (void)arg;
    static const int kinds[3][2] = {{SOCK_STREAM, 0}, {SOCK_DGRAM, 0}, {SOCK_DGRAM, IPPROTO_UDPLITE}};
    for (unsigned i = 0; !stop_flag; i++) {
        int s = socket(AF_INET, kinds[i % 3][0], kinds[i % 3][1]);
        if (s < 0)
            continue;
        dup2(s, swap_fd);
        close(s);
    }
    return NULL;
}

/* Points swap_fd at a new socket of every kind a sendto may find under it. */
static void *send_swapper(void *arg) {
    (void)arg;
    static const int kinds[6][3] = {
        {AF_INET, SOCK_DGRAM, 0},          {AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE},
        {AF_INET, SOCK_STREAM, 0},         {AF_INET, SOCK_DGRAM, IPPROTO_ICMP},
        {AF_UNIX, SOCK_DGRAM, 0},          {AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE},
    };
    for (unsigned i = 0; !stop_flag; i++) {
        int s = socket(kinds[i % 6][0], kinds[i % 6][1] | SOCK_NONBLOCK, kinds[i % 6][2]);
        if (s < 0)
            continue;
        dup2(s, swap_fd);
        close(s);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 8)
        usage();
    const char *mode = argv[1];
    usleep((useconds_t)atoi(argv[2]) * 1000);
    ok_addr = addr_of(argv[3], argv[4]);
    bad_addr = addr_of(argv[5], argv[6]);
    long n = atol(argv[7]);
    shared = ok_addr;
    long ok = 0, refused = 0, other = 0;
    pthread_t flip, swap;
    pthread_create(&flip, NULL, flipper, NULL);
    int swapping = strcmp(mode, "swap-connect") == 0;
    int send_swapping = strcmp(mode, "swap-sendto") == 0;
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    if (swapping || send_swapping) {
        swap_fd = socket(AF_INET, swapping ? SOCK_STREAM : SOCK_DGRAM, 0);
        pthread_create(&swap, NULL, swapping ? swapper : send_swapper, NULL);
    }
    for (long i = 0; i < n; i++) {
        int r;
        if (strcmp(mode, "flip-connect") == 0) {
            int s = socket(AF_INET, SOCK_STREAM, 0);
            r = connect(s, (struct sockaddr *)&shared, sizeof(shared));
            if (r == 0)
                (void)!write(s, "x", 1);
            int e = errno;
            close(s);
            errno = e;
        } else if (strcmp(mode, "flip-connect-udp") == 0) {
            int s = socket(AF_INET, SOCK_DGRAM, 0);
            r = connect(s, (struct sockaddr *)&shared, sizeof(shared));
            if (r == 0)
                (void)!send(s, "x", 1, 0);
            int e = errno;
            close(s);
            errno = e;
        } else if (strcmp(mode, "flip-sendto") == 0) {
            r = (int)sendto(udp, "x", 1, 0, (struct sockaddr *)&shared, sizeof(shared));
        } else if (strcmp(mode, "flip-sendto-fd3") == 0) {
            r = (int)sendto(3, "x", 1, 0, (struct sockaddr *)&shared, sizeof(shared));
        } else if (send_swapping) {
            r = (int)sendto(swap_fd, "x", 1, MSG_DONTWAIT, (struct sockaddr *)&shared, sizeof(shared));
        } else if (swapping) {
            r = connect(swap_fd, (struct sockaddr *)&shared, sizeof(shared));
            if (r == 0)
                (void)!send(swap_fd, "x", 1, MSG_DONTWAIT);
        } else {
            usage();
            return 2;
        }
        if (r >= 0)
            ok++;
        else if (errno == EPERM)
            refused++;
        else
            other++;
    }
    stop_flag = 1;
    pthread_join(flip, NULL);
    if (swapping || send_swapping)
        pthread_join(swap, NULL);
    printf("ok=%ld refused=%ld other=%ld\n", ok, refused, other);
    return 0;
}
