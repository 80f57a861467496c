/*
 * r41_tty: a program that freezes its terminal's output (flow control, as r40_tty) and then
 * makes a call whose handler writes to stderr with `eprintln!` (not through the terminal's
 * writer thread) before it answers: an i386 `socketcall(SETSOCKOPT)` of SO_ATTACH_FILTER, whose
 * value sockstrace does not convert (a check that fails: "could not check ...; call denied").
 * Build with -m32.
 *
 *   r41_tty HOST PORT
 *     1. clears IXON and suspends the terminal's output (tcflow(TCOOFF));
 *     2. a child makes the socketcall setsockopt; the parent waits up to 3 s for it to be
 *        answered ("setsockopt: answered errno=N" or "setsockopt: unanswered", then kills it);
 *     3. sends one UDP datagram to HOST:PORT (a leak), "leak: refused|sent|failed";
 *     4. switches the terminal's output back on (tcflow(TCOON)) when $R41_TCOON is set, exits.
 *
 * Lines go to the file named by $R41_LOG (the terminal is stopped).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static FILE *out;

static void say(const char *step, int r) {
    if (r < 0)
        fprintf(out, "%s: errno=%d\n", step, errno);
    else
        fprintf(out, "%s: ok\n", step);
    fflush(out);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: r41_tty HOST PORT\n");
        return 2;
    }
    const char *log = getenv("R41_LOG");
    out = log ? fopen(log, "a") : stdout;
    if (!out)
        out = stdout;
    int tty = open("/dev/tty", O_RDWR);
    say("open-tty", tty);
    struct termios t;
    int r = tcgetattr(tty, &t);
    if (r == 0) {
        t.c_iflag &= ~(tcflag_t)(IXON | IXANY);
        r = tcsetattr(tty, TCSANOW, &t);
    }
    say("noixon", r);
    say("tcooff", tcflow(tty, TCOOFF));

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    pid_t child = fork();
    if (child == 0) {
        struct {
            unsigned short len;
            unsigned int filter;
        } prog = {0, 0};
        unsigned long args[5] = {(unsigned long)fd, SOL_SOCKET, SO_ATTACH_FILTER, (unsigned long)&prog,
                                 sizeof prog};
        long rc = syscall(SYS_socketcall, 14 /* SYS_SETSOCKOPT */, args);
        fprintf(out, "setsockopt: answered rc=%ld errno=%d\n", rc, rc < 0 ? errno : 0);
        fflush(out);
        _exit(0);
    }
    int answered = 0;
    for (int i = 0; i < 300 && !answered; i++) {
        if (waitpid(child, NULL, WNOHANG) == child)
            answered = 1;
        else
            usleep(10000);
    }
    if (!answered) {
        fprintf(out, "setsockopt: unanswered\n");
        fflush(out);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }

    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    r = (int)sendto(fd, "leak", 4, 0, (struct sockaddr *)&a, sizeof a);
    fprintf(out, "leak: %s\n", r < 0 && errno == EPERM ? "refused" : r < 0 ? "failed" : "sent");
    fflush(out);
    if (getenv("R41_TCOON"))
        say("tcoon", tcflow(tty, TCOON));
    return 0;
}
