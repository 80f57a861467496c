/*
 * r38_tty: a program that takes its terminal's foreground from its supervisor, so that the
 * terminal driver, not the program, stops the supervisor (SIGTTOU: no Landlock signal scope
 * covers a signal the kernel sends for the terminal).
 *
 *   r38_tty MODE HOST PORT
 *     MODE tostop   ignores SIGTTOU, makes a process group of its own (setpgid), sets TOSTOP on
 *                   the terminal and makes its group the terminal's foreground (tcsetpgrp):
 *                   every process of the old group (the supervisor) that writes to the terminal
 *                   now stops with SIGTTOU
 *     MODE tstp     sends SIGTSTP to its own process group (kill(0, ...)), which its supervisor
 *                   shares, then SIGSTOP to that group from a child left in it
 *   then sends one UDP datagram to HOST:PORT (a leak the supervisor refuses and reports on its
 *   stderr, the terminal), and sleeps 3 s.
 *
 * Prints "STEP: ok" or "STEP: errno=N" per step and "leak: refused" / "leak: sent". Exit 0.
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
#include <termios.h>
#include <unistd.h>

static void say(const char *step, int r) {
    if (r < 0)
        printf("%s: errno=%d\n", step, errno);
    else
        printf("%s: ok\n", step);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: r38_tty tostop|tstp HOST PORT\n");
        return 2;
    }
    if (!strcmp(argv[1], "tostop")) {
        signal(SIGTTOU, SIG_IGN);
        int tty = open("/dev/tty", O_RDWR);
        say("open-tty", tty);
        say("setpgid", setpgid(0, 0));
        struct termios t;
        int r = tcgetattr(tty, &t);
        if (r == 0) {
            t.c_lflag |= TOSTOP;
            r = tcsetattr(tty, TCSANOW, &t);
        }
        say("tostop", r);
        say("tcsetpgrp", tcsetpgrp(tty, getpgrp()));
    } else {
        signal(SIGTSTP, SIG_IGN);
        pid_t group = getpgrp();
        say("tstp", kill(0, SIGTSTP));
        /* SIGSTOP cannot be ignored: sent to the old group by a child left in it, after this
         * program moved to a group of its own (the child stops with whoever else is there). */
        pid_t child = fork();
        if (child == 0) {
            usleep(100000);
            kill(-group, SIGSTOP);
            _exit(0);
        }
        setpgid(0, 0);
        usleep(300000);
        say("stop", 0);
        kill(child, SIGKILL);
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[3]))};
    inet_pton(AF_INET, argv[2], &a.sin_addr);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int r = (int)sendto(fd, "leak", 4, 0, (struct sockaddr *)&a, sizeof a);
    printf("leak: %s\n", r < 0 && errno == EPERM ? "refused" : r < 0 ? "failed" : "sent");
    fflush(stdout);
    sleep(3);
    return 0;
}
