/*
 * rt5_exec_race: the main thread's refused calls, while another thread execs.
 *
 *   rt5_exec_race HOST PORT N DECOY
 *       N times: a child whose main thread sends datagrams to HOST:PORT (refused) in a loop
 *       while a second thread execs DECOY (which makes no network call): the exec kills the
 *       main thread, and the exec'ing thread takes its thread id (the process id). Prints
 *       "race: N children".
 *
 * Exit status 0, 2 on a setup failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sockaddr_in dst;
static volatile int go;
static char *decoy;

static void *execer(void *arg) {
    (void)arg;
    while (!go)
        ;
    char *argv[] = {decoy, NULL};
    execv(decoy, argv);
    _exit(2);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: rt5_exec_race HOST PORT N DECOY\n");
        return 2;
    }
    dst.sin_family = AF_INET;
    dst.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1)
        return 2;
    int n = atoi(argv[3]);
    decoy = argv[4];
    for (int i = 0; i < n; i++) {
        pid_t child = fork();
        if (child < 0)
            return 2;
        if (child == 0) {
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            pthread_t t;
            if (fd < 0 || pthread_create(&t, NULL, execer, NULL) != 0)
                _exit(2);
            go = 1;
            for (;;)
                sendto(fd, "x", 1, 0, (struct sockaddr *)&dst, sizeof dst);
        }
        if (waitpid(child, NULL, 0) != child)
            return 2;
    }
    printf("race: %d children\n", n);
    return 0;
}
