/*
 * r40_tty: a program that freezes its terminal's output (flow control) so that its supervisor's
 * writes to the terminal (the leak's line, the summary) block for ever: no signal is sent, so
 * no blocked signal or scope helps.
 *
 *   r40_tty MODE HOST PORT
 *     MODE tcooff   clears IXON (so ^Q cannot restart output) and suspends the terminal's output
 *                   (tcflow(TCOOFF): the driver's "stopped" flag, ^S without a keyboard)
 *   then sends one UDP datagram to HOST:PORT (a leak the supervisor refuses and reports on
 *   its stderr, the terminal), and exits.
 *
 * Prints "STEP: ok" or "STEP: errno=N" per step to the file named by $R40_LOG (the terminal is
 * stopped) and "leak: refused" / "leak: sent". Exit 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
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
    if (argc != 4) {
        fprintf(stderr, "usage: r40_tty tcooff HOST PORT\n");
        return 2;
    }
    const char *log = getenv("R40_LOG");
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
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[3]))};
    inet_pton(AF_INET, argv[2], &a.sin_addr);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    r = (int)sendto(fd, "leak", 4, 0, (struct sockaddr *)&a, sizeof a);
    fprintf(out, "leak: %s\n", r < 0 && errno == EPERM ? "refused" : r < 0 ? "failed" : "sent");
    fflush(out);
    return 0;
}
