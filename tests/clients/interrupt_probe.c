/* interrupt_probe: a blocking TCP connect (or send) to a destination that
 * never answers, interrupted by the program's own signals.
 *
 *   interrupt_probe eintr HOST PORT
 *       SIGALRM handler without SA_RESTART, alarm(1), blocking connect.
 *       Prints "connect: errno=N (...) alarms=K" and exits 0 when connect
 *       failed with EINTR after the alarm, 1 otherwise.
 *   interrupt_probe restart HOST PORT
 *       SIGALRM handler with SA_RESTART every 300 ms; the third alarm makes
 *       the socket non-blocking, so the connect restarted after it returns
 *       EALREADY. Prints "connect: ... alarms=K": a connect restarted as the
 *       kernel does ends only then (K >= 3, EALREADY), never with EINTR.
 *   interrupt_probe hold HOST PORT
 *       SIGALRM handler with SA_RESTART, alarm(1), prints "connecting",
 *       then a blocking connect that nothing ends: for SIGTERM from outside.
 *   interrupt_probe send-eintr PORT
 *       Connects to 127.0.0.1:PORT (a listener that never reads), fills the
 *       send buffer with blocking sendmsg calls, interrupted by alarm(1) (no
 *       SA_RESTART): prints "send: errno=N (...)" for the send that was
 *       interrupted, or "send: partial N" when the interrupted send had
 *       copied part (it returns that count); exits 0 for either.
 *
 * HOST is numeric IPv4 or IPv6. */
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
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

static volatile sig_atomic_t alarms;
static volatile int shut_fd = -1;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
    if (shut_fd >= 0 && alarms >= 3)
        fcntl(shut_fd, F_SETFL, O_NONBLOCK);
}

static void handle_alarm(int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
}

static int dial(const char *host, const char *port_s)
{
    int port = atoi(port_s);
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        len = sizeof *v6;
    } else {
        fprintf(stderr, "bad host %s\n", host);
        exit(2);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("socket");
        exit(2);
    }
    shut_fd = -1;
    printf("connecting\n");
    fflush(stdout);
    return connect(fd, (struct sockaddr *)&ss, len) == 0 ? fd : -1 - fd;
}

static void report(const char *what, int ret)
{
    int e = errno;
    if (ret >= 0)
        printf("%s: ok alarms=%d\n", what, (int)alarms);
    else
        printf("%s: errno=%d (%s) alarms=%d\n", what, e, strerror(e), (int)alarms);
    fflush(stdout);
    errno = e;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 4 && strcmp(argv[1], "eintr") == 0) {
        handle_alarm(0);
        alarm(1);
        int r = dial(argv[2], argv[3]);
        report("connect", r);
        return r < 0 && errno == EINTR && alarms == 1 ? 0 : 1;
    }
    if (argc == 4 && strcmp(argv[1], "restart") == 0) {
        handle_alarm(SA_RESTART);
        /* The socket is made first, so the handler can shut it down. */
        int fd = socket(strchr(argv[2], ':') ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        socklen_t len;
        if (strchr(argv[2], ':')) {
            struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(atoi(argv[3]));
            inet_pton(AF_INET6, argv[2], &v6->sin6_addr);
            len = sizeof *v6;
        } else {
            struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
            v4->sin_family = AF_INET;
            v4->sin_port = htons(atoi(argv[3]));
            inet_pton(AF_INET, argv[2], &v4->sin_addr);
            len = sizeof *v4;
        }
        shut_fd = fd;
        struct itimerval t = {{0, 300000}, {0, 300000}};
        setitimer(ITIMER_REAL, &t, NULL);
        int r = connect(fd, (struct sockaddr *)&ss, len);
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
        report("connect", r);
        return r < 0 && errno == EALREADY && alarms >= 3 ? 0 : 1;
    }
    if (argc == 4 && strcmp(argv[1], "hold") == 0) {
        handle_alarm(SA_RESTART);
        alarm(1);
        int r = dial(argv[2], argv[3]);
        report("connect", r);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "send-eintr") == 0) {
        int fd = dial("127.0.0.1", argv[2]);
        if (fd < 0) {
            report("connect", -1);
            return 2;
        }
        handle_alarm(0);
        alarm(1);
        static char buf[1 << 16];
        memset(buf, 'x', sizeof buf);
        for (;;) {
            /* sendmsg: the supervisor performs it (a plain send on a
             * connected socket is not trapped). */
            struct iovec iov = {buf, sizeof buf};
            struct msghdr msg;
            memset(&msg, 0, sizeof msg);
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            ssize_t n = sendmsg(fd, &msg, 0);
            if (n < 0) {
                report("send", -1);
                return errno == EINTR && alarms == 1 ? 0 : 1;
            }
            if (alarms > 0) {
                /* Interrupted after copying part: the count, as natively. */
                printf("send: partial %zd alarms=%d\n", n, (int)alarms);
                return 0;
            }
        }
    }
    fprintf(stderr, "usage: interrupt_probe eintr|restart|hold HOST PORT | send-eintr PORT\n");
    return 2;
}
