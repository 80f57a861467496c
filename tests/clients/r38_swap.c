/*
 * r38_swap: a process of the program's user that runs beside sockstrace (left by an earlier
 * run, or started by the user's session) and swaps two names as fast as it can:
 *
 *   r38_swap A B SECONDS   renameat2(A, B, RENAME_EXCHANGE) in a loop for SECONDS seconds
 *
 * With A a symbolic link (to a file only root may write) and B a regular file at the report's
 * path, whoever lstat()s B and then open()s B sees one, then maybe the other. With A a named
 * pipe, a check of B's type and a later open() of B may name different files. Ends with an even
 * number of swaps (each name where it began). Prints how many swaps were made; exit 0, 1 when
 * the first swap fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: r38_swap A B SECONDS\n");
        return 2;
    }
    time_t end = time(NULL) + atoi(argv[3]);
    long n = 0;
    printf("swap: started\n");
    fflush(stdout);
    while (time(NULL) < end) {
        for (int i = 0; i < 4096; i++) {
            if (syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) < 0) {
                if (n == 0) {
                    printf("swap: errno=%d\n", errno);
                    return 1;
                }
                continue;
            }
            n++;
        }
    }
    while (n % 2 && syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) < 0)
        ;
    n += n % 2;
    printf("swap: %ld swaps\n", n);
    return 0;
}
