/*
 * exec_attribution: datagrams sent before and after an execve, for the events' process fields.
 *
 *   exec_attribution leader HOST PORT   one datagram, then the main thread execs this program
 *                                       as `exec_attribution after HOST PORT`
 *   exec_attribution thread HOST PORT   one datagram from the main thread, one from a second
 *                                       thread, which then execs as above (the exec'ing thread
 *                                       takes the process id as its thread id)
 *   exec_attribution after HOST PORT    one datagram
 *
 * Prints "STAGE: sent" for each datagram (the payload is the stage too).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *self_path;
static const char *host, *port;

static void send_one(const char *stage) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "bad host %s\n", host);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || sendto(fd, stage, strlen(stage), 0, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror(stage);
        exit(1);
    }
    close(fd);
    printf("%s: sent\n", stage);
    fflush(stdout);
}

static void exec_after(void) {
    char *argv[] = {(char *)"exec_attribution", (char *)"after", (char *)host, (char *)port, NULL};
    execv(self_path, argv);
    perror("execv");
    exit(1);
}

static void *second_thread(void *arg) {
    (void)arg;
    send_one("thread");
    exec_after();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: exec_attribution leader|thread|after HOST PORT\n");
        return 2;
    }
    self_path = "/proc/self/exe";
    host = argv[2];
    port = argv[3];
    if (!strcmp(argv[1], "after")) {
        send_one("after");
        return 0;
    }
    send_one("leader");
    if (!strcmp(argv[1], "leader"))
        exec_after();
    if (strcmp(argv[1], "thread"))
        return 2;
    pthread_t t;
    if (pthread_create(&t, NULL, second_thread, NULL))
        return 1;
    pthread_join(t, NULL); /* the exec ends this thread */
    return 1;
}
