/*
 * attack2_hibits: socket(2) of AF_VSOCK with high bits set in the 64-bit family register, which
 * the kernel reads as an int (AF_VSOCK) but a 64-bit compare would not match. Prints
 * "socket: ok" or "socket: errno=N".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

int main(void) {
    long fd = syscall(SYS_socket, (1UL << 32) | AF_VSOCK, (long)SOCK_STREAM, 0L);
    if (fd < 0)
        printf("socket: errno=%d\n", errno);
    else
        printf("socket: ok\n");
    return 0;
}
