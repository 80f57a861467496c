/*
 * r2_out: a program that attacks how its supervisor writes the report and its own output.
 *
 *   r2_out glue HOST PORT
 *       writes "glue-out" to fd 1 and "glue-err" to fd 2 (no newline), waits 200 ms (longer
 *       than any partial line is held), sends one datagram to HOST:PORT (a leak), waits
 *       200 ms, then ends both lines
 *   r2_out gluefd FD HOST PORT
 *       the same on fd FD alone (an fd it inherited: the report's pipe, `--report >(...)`)
 *   r2_out flood HOST PORT
 *       writes 3 MiB of 'x' and NUL bytes to fd 2 with no newline (three times the relay's
 *       pipe), sends one datagram to HOST:PORT (a leak), writes 1 MiB more, and exits
 *       without ever ending the line
 *   r2_out steal FIFO HOST PORT
 *       one datagram to HOST:PORT (a leak), then opens FIFO (its supervisor's report, a
 *       named pipe) for reading and takes what is in it for 300 ms; prints "steal: N bytes"
 *   r2_out swapdir REPORT TARGET
 *       removes the report file REPORT (so that its supervisor restores it at the end), moves
 *       the directory that holds it aside (to DIR.old) and puts a symbolic link to TARGET in
 *       its place; prints "swapdir: done"
 *   r2_out plant REPORT PROGRAM [ARGS]...
 *       makes a directory at the name its supervisor (its parent) restores the report file
 *       through (".NAME.sockstrace-restore-PPID" beside REPORT), then executes PROGRAM
 *
 * Exits 0, or 2 on a usage or setup error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static void put(int fd, const char *s) {
    if (write(fd, s, strlen(s)) < 0)
        exit(2);
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "glue") == 0) {
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[3]))};
        if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1)
            return 2;
        put(1, "glue-out");
        put(2, "glue-err");
        pause_ms(200);
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0)
            return 2;
        (void)sendto(fd, "glue", 4, 0, (struct sockaddr *)&addr, sizeof addr);
        close(fd);
        pause_ms(200);
        put(1, "\n");
        put(2, "\n");
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "gluefd") == 0) {
        int out = atoi(argv[2]);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[4]))};
        if (inet_pton(AF_INET, argv[3], &addr.sin_addr) != 1)
            return 2;
        /* Not holding the report's fd any more is what the run must achieve: say so and leak
           anyway. */
        if (write(out, "glue-fd", 7) < 0)
            printf("gluefd: fd %d: %s\n", out, strerror(errno));
        pause_ms(200);
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0)
            return 2;
        (void)sendto(fd, "glue", 4, 0, (struct sockaddr *)&addr, sizeof addr);
        close(fd);
        pause_ms(200);
        (void)!write(out, "\n", 1);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "flood") == 0) {
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[3]))};
        if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1)
            return 2;
        static char junk[1 << 20];
        memset(junk, 'x', sizeof junk);
        for (size_t i = 0; i < sizeof junk; i += 4096)
            junk[i] = 0;
        for (int i = 0; i < 3; i++)
            if (write(2, junk, sizeof junk) != (ssize_t)sizeof junk)
                return 2;
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0)
            return 2;
        (void)sendto(fd, "flood", 5, 0, (struct sockaddr *)&addr, sizeof addr);
        close(fd);
        if (write(2, junk, sizeof junk) != (ssize_t)sizeof junk)
            return 2;
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "steal") == 0) {
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[4]))};
        if (inet_pton(AF_INET, argv[3], &addr.sin_addr) != 1)
            return 2;
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0)
            return 2;
        (void)sendto(fd, "steal", 5, 0, (struct sockaddr *)&addr, sizeof addr);
        close(fd);
        int in = open(argv[2], O_RDONLY | O_NONBLOCK);
        if (in < 0) {
            printf("steal: %s: %s\n", argv[2], strerror(errno));
            return 0;
        }
        long total = 0;
        char buf[65536];
        for (int i = 0; i < 30; i++) {
            ssize_t n;
            while ((n = read(in, buf, sizeof buf)) > 0)
                total += n;
            pause_ms(10);
        }
        printf("steal: %ld bytes\n", total);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "swapdir") == 0) {
        char *copy = strdup(argv[2]);
        if (!copy)
            return 2;
        const char *dir = dirname(copy);
        char aside[4096];
        snprintf(aside, sizeof aside, "%s.old", dir);
        if (unlink(argv[2]) != 0) {
            fprintf(stderr, "swapdir: unlink %s: %s\n", argv[2], strerror(errno));
            return 2;
        }
        if (rename(dir, aside) != 0) {
            fprintf(stderr, "swapdir: rename %s: %s\n", dir, strerror(errno));
            return 2;
        }
        if (symlink(argv[3], dir) != 0) {
            fprintf(stderr, "swapdir: symlink %s: %s\n", dir, strerror(errno));
            return 2;
        }
        printf("swapdir: done\n");
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "plant") == 0) {
        char *d = strdup(argv[2]), *b = strdup(argv[2]);
        if (!d || !b)
            return 2;
        char temp[4096];
        snprintf(temp, sizeof temp, "%s/.%s.sockstrace-restore-%d", dirname(d), basename(b), (int)getppid());
        if (mkdir(temp, 0755) != 0) {
            fprintf(stderr, "plant: mkdir %s: %s\n", temp, strerror(errno));
            return 2;
        }
        execv(argv[3], argv + 3);
        fprintf(stderr, "plant: exec %s: %s\n", argv[3], strerror(errno));
        return 2;
    }
    fprintf(stderr, "usage: r2_out glue HOST PORT | swapdir REPORT TARGET\n");
    return 2;
}
