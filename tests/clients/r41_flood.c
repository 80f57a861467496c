/*
 * r41_flood: a program that suspends its terminal's output (tcflow(TCOOFF), IXON cleared), makes
 * N leaks while it is off (UDP datagrams to HOST:PORT, each refused and reported), switches the
 * output back on (TCOON) and exits: sockstrace's queue for the terminal (4096 writes) overflows
 * and the lines past it are dropped, which matters when the report itself goes to the terminal
 * (`--report -`).
 *
 *   r41_flood HOST PORT N
 *
 * Lines go to the file named by $R41_LOG: "tcooff: ok", "refused: K", "tcoon: ok".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
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
        fprintf(stderr, "usage: r41_flood HOST PORT N\n");
        return 2;
    }
    const char *log = getenv("R41_LOG");
    out = log ? fopen(log, "a") : stdout;
    if (!out)
        out = stdout;
    int tty = open("/dev/tty", O_RDWR);
    struct termios t;
    int r = tcgetattr(tty, &t);
    if (r == 0) {
        t.c_iflag &= ~(tcflag_t)(IXON | IXANY);
        r = tcsetattr(tty, TCSANOW, &t);
    }
    say("noixon", r);
    say("tcooff", tcflow(tty, TCOOFF));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int n = atoi(argv[3]), refused = 0;
    for (int i = 0; i < n; i++)
        if (sendto(fd, "leak", 4, 0, (struct sockaddr *)&a, sizeof a) < 0 && errno == EPERM)
            refused++;
    fprintf(out, "refused: %d\n", refused);
    fflush(out);
    usleep(200000);
    say("tcoon", tcflow(tty, TCOON));
    return 0;
}
