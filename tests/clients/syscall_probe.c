/* syscall_probe: makes the calls a system call allowlist is about, each by
 * raw syscall() (the i386 build uses that ABI's numbers), and prints what
 * each returned.
 *
 *   syscall_probe STEP...   where STEP is
 *     forbidden            ptrace, bpf, mount, init_module, userfaultfd
 *     work                 a fixed set of ordinary calls (getpid, uname, a file read, the clock)
 *     extra                sysinfo, which "work" never makes
 *     connect IP PORT      a TCP connect and a send of one byte
 *
 * Each call prints "NAME: ok" or "NAME: EPERM" / "NAME: errno=N". Exit 0. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

static void say(const char *name, long ret) {
    if (ret >= 0)
        printf("%s: ok\n", name);
    else if (errno == EPERM)
        printf("%s: EPERM\n", name);
    else if (errno == ENOSYS)
        printf("%s: ENOSYS\n", name);
    else
        printf("%s: errno=%d\n", name, errno);
    fflush(stdout);
}

static void forbidden(void) {
    /* Not traced by pid 1: ESRCH without an allowlist. */
    say("ptrace", syscall(SYS_ptrace, 2 /* PTRACE_PEEKDATA */, 1, 0, 0));
    /* An unknown command: EINVAL without an allowlist (as root). */
    say("bpf", syscall(SYS_bpf, 1000, NULL, 0));
    say("mount", syscall(SYS_mount, "none", "/nonexistent-sockstrace-probe", "tmpfs", 0, NULL));
    say("init_module", syscall(SYS_init_module, NULL, 0, ""));
    long fd = syscall(SYS_userfaultfd, 0);
    say("userfaultfd", fd);
    if (fd >= 0)
        close((int)fd);
}

static void work(void) {
    struct utsname u;
    struct timespec ts;
    char buf[256];
    say("getpid", syscall(SYS_getpid));
    say("uname", syscall(SYS_uname, &u));
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    say("open", fd);
    if (fd >= 0) {
        say("read", read(fd, buf, sizeof buf));
        close(fd);
    }
    say("clock_gettime", clock_gettime(CLOCK_REALTIME, &ts));
}

static void extra(void) {
    struct sysinfo si;
    say("sysinfo", syscall(SYS_sysinfo, &si));
}

static void do_connect(const char *ip, const char *port) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(port));
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", ip);
        exit(2);
    }
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    say("socket", s);
    if (s < 0)
        return;
    char name[64];
    snprintf(name, sizeof name, "connect %s:%s", ip, port);
    int r = connect(s, (struct sockaddr *)&sa, sizeof sa);
    say(name, r);
    if (r == 0)
        say("send", send(s, "x", 1, 0));
    close(s);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "forbidden"))
            forbidden();
        else if (!strcmp(argv[i], "work"))
            work();
        else if (!strcmp(argv[i], "extra"))
            extra();
        else if (!strcmp(argv[i], "connect") && i + 2 < argc) {
            do_connect(argv[i + 1], argv[i + 2]);
            i += 2;
        } else {
            fprintf(stderr, "unknown step %s\n", argv[i]);
            return 2;
        }
    }
    return 0;
}
