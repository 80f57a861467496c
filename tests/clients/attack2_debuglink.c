/* Leaks one UDP datagram to 127.0.0.1:PORT from a binary whose
 * .gnu_debuglink the test rewrites to name a file that never ends (the
 * supervisor's --stack symbolization looks for separate debug info there).
 * usage: attack2_debuglink PORT */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((noinline)) static int leak(int port) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0)
        return 1;
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons((unsigned short)port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ssize_t n = sendto(s, "debuglink", 9, 0, (struct sockaddr *)&to, sizeof to);
    printf("sendto %zd\n", n);
    fflush(stdout);
    close(s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    return leak(atoi(argv[1]));
}
