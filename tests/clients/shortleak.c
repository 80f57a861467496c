/* A leaker that lives about a millisecond: one UDP datagram to HOST:PORT (IPv4), then _exit.
 * Usage: shortleak HOST PORT
 * Exit status: 0 sent, 2 usage, 3 socket failed, 4 the send failed (errno in stderr).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: shortleak HOST PORT\n");
        return 2;
    }
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
        fprintf(stderr, "shortleak: bad address %s\n", argv[1]);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("shortleak: socket");
        return 3;
    }
    static const char payload[] = "shortleak";
    if (sendto(fd, payload, sizeof payload - 1, 0, (struct sockaddr *)&to, sizeof to) < 0) {
        fprintf(stderr, "shortleak: sendto: errno %d (%s)\n", errno, strerror(errno));
        _exit(4);
    }
    _exit(0);
}
