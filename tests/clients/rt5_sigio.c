/*
 * rt5_sigio: a program that has the kernel signal its supervisor for it: a pipe's owner set to
 * the parent (F_SETOWN), its I/O signal set to SIGKILL (F_SETSIG), O_ASYNC on, then a write
 * to the pipe (the kernel sends the signal to the owner).
 *
 * Prints "sigio: armed" and then "supervisor: alive" or "supervisor: gone" (the parent
 * changed); exit status 0 when it stayed alive, 1 when it is gone, 2 on a setup failure.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    int p[2];
    if (pipe(p) != 0)
        return 2;
    pid_t supervisor = getppid();
    if (fcntl(p[0], F_SETOWN, supervisor) != 0 || fcntl(p[0], F_SETSIG, SIGKILL) != 0 ||
        fcntl(p[0], F_SETFL, O_ASYNC | O_NONBLOCK) != 0) {
        perror("fcntl");
        return 2;
    }
    printf("sigio: armed\n");
    fflush(stdout);
    if (write(p[1], "x", 1) != 1)
        return 2;
    usleep(300000);
    int alive = getppid() == supervisor;
    printf("supervisor: %s\n", alive ? "alive" : "gone");
    return alive ? 0 : 1;
}
