/* fuzzclient: executes a program of socket operations with raw syscalls,
 * for `cargo xtask fuzz` (the leak fuzzer; its oracle is a packet sniffer).
 *
 * Program: one operation per line (from the file named by argv[1], or built
 * in with -DFUZZ_REPRO: the fuzzer's standalone reproducers). Tokens are
 * separated by spaces; numbers are decimal; byte strings are hex ("-" =
 * empty); SLOT is an index into a table of file descriptors.
 *
 *   abi M                      0 native syscalls; 1 the i386 ABI (int 0x80);
 *                              2 socketcall through int 0x80 (i386 numbers)
 *   socket S FAM TYPE PROTO
 *   setsockopt S LEVEL OPT HEX
 *   bind S ADDR | connect S ADDR | listen S | accept S D | close S
 *   send S FLAGS DATA | write S DATA
 *   sendto S FLAGS ADDR DATA
 *   sendmsg S FLAGS ADDR CMSGS DATA       CMSGS: "-" or LEVEL:TYPE:HEX[,...]
 *   sendmmsg S FLAGS ADDR ADDR2 CMSGS DATA    two messages
 *   dup2 S D                   dup2(fd[S], fd[D]) (fd[D] unset: number 60+D)
 *   race S D N                 a thread swaps fd[D] onto fd[S]'s number N
 *                              times while the next ops run (until join)
 *   join
 *   fork N | vmclone N         the next N ops run in a child (fork, or clone
 *                              with CLONE_VM sharing this memory); waited for
 *   uring S ADDR DATA          io_uring_setup, then CONNECT and SEND on fd[S]
 *   sleep MS
 *   reset                      end of one sequence: join the racing thread,
 *                              close every slot, back to abi 0 (the fuzzer
 *                              runs several sequences in one process)
 *
 * A payload starting "FZseq:op;" is sent padded to 64 bytes with "#PPID;"
 * appended (PID of the sending process), so the oracle can match the
 * packet to the report's pid.
 *
 * Built for x86_64 (abi 1/2 reach the i386 ABI from a 64-bit process) and
 * for i386 (-m32: abi 0 enters through libc's syscall(), i.e. the vDSO, abi 1
 * through `int $0x80`, abi 2 is socketcall through `int $0x80`).
 *
 * Each op prints its result on stderr when FUZZ_VERBOSE is set (always in a
 * reproducer). Every blocking call is cut short by a timer: FUZZ_TIMER_MS
 * (default 150 ms; the fuzzer uses a shorter one). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXOPS 512
#define MAXTOK 8
#define SLOTS 16

struct op {
    char *tok[MAXTOK];
    int ntok;
};

static struct op ops[MAXOPS];
static int nops;
static int fds[SLOTS];
static int abi_mode;
static int verbose;

/* Memory below 4 GiB (the static binary is not position independent) for
 * the i386 ABI's 32-bit pointers. */
static unsigned char low[1 << 16];
static size_t low_used;

static void *low_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (low_used + n > sizeof low)
        low_used = 0;
    void *p = low + low_used;
    low_used += n;
    return p;
}

static void on_alarm(int sig) { (void)sig; }

static long timer_us = 150000;

static void arm_timer(void)
{
    struct itimerval t = {{0, 0}, {0, timer_us}};
    setitimer(ITIMER_REAL, &t, NULL);
}

static long num(const char *s) { return s ? strtol(s, NULL, 10) : 0; }

/* Decodes hex into a malloc'd buffer; "-" or NULL is empty. */
static unsigned char *hex(const char *s, size_t *len)
{
    *len = 0;
    if (!s || !strcmp(s, "-"))
        return calloc(1, 1);
    size_t n = strlen(s) / 2;
    unsigned char *b = calloc(1, n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(s + 2 * i, "%2x", &v);
        b[i] = (unsigned char)v;
    }
    *len = n;
    return b;
}

/* A payload starting "FZseq:op;" is padded with 'x' to 64 bytes and gets
 * "#PPID;" appended (PID of the sending process): the first 64 bytes stay
 * what the program said (a raw socket reads its headers there), the pid
 * lets the oracle match the packet to the report's line. */
static unsigned char *stamp(unsigned char *data, size_t *len)
{
    if (*len < 3 || data[0] != 'F' || data[1] != 'Z' || !memchr(data, ';', *len))
        return data;
    size_t body = *len < 64 ? 64 : *len;
    unsigned char *out = calloc(1, body + 32);
    memcpy(out, data, *len);
    memset(out + *len, 'x', body - *len);
    int plen = snprintf((char *)out + body, 32, "#P%ld;", (long)getpid());
    *len = body + (size_t)plen;
    free(data);
    return out;
}

static int slot(const char *s)
{
    long i = num(s);
    return (int)(i < 0 ? 0 : i % SLOTS);
}

static int fd_of(const char *s) { return fds[slot(s)]; }

#if defined(__x86_64__)
/* A 32-bit system call from this 64-bit process (pointers must be low). */
static long int80(long nr, long a, long b, long c, long d, long e, long f)
{
    long ret;
    __asm__ volatile("push %%rbp\n\tmov %[f], %%rbp\n\tint $0x80\n\tpop %%rbp"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e), [f] "r"(f)
                     : "memory", "r8", "r9", "r10", "r11", "cc");
    return ret;
}
#define I386_SOCKETCALL 102
#elif defined(__i386__)
/* The i386 client: a real `int $0x80` (libc's syscall() enters through the vDSO's
 * sysenter). Six arguments fill every register but esp: ebp is loaded from a
 * block whose address rides in eax with the call number. */
static long int80(long nr, long a, long b, long c, long d, long e, long f)
{
    long ret;
    long blk[2] = {nr, f};
    __asm__ volatile("push %%ebp\n\tmov 4(%%eax), %%ebp\n\tmov (%%eax), %%eax\n\tint $0x80\n\tpop %%ebp"
                     : "=a"(ret)
                     : "a"(blk), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                     : "memory", "cc");
    return ret;
}
#define I386_SOCKETCALL SYS_socketcall
#else
#error "fuzzclient: x86_64 or i386 only"
#endif

/* i386 numbers: direct calls and socketcall's call numbers. */
enum { N_SOCKET, N_BIND, N_CONNECT, N_LISTEN, N_ACCEPT4, N_SETSOCKOPT, N_SENDTO, N_SENDMSG, N_SENDMMSG, N_CLOSE, N_DUP2 };
static const long i386_nr[] = {359, 361, 362, 363, 364, 366, 369, 370, 345, 6, 63};
static const long sc_nr[] = {1, 2, 3, 4, 18, 14, 11, 16, 20, 0, 0};
static const long native_nr[] = {SYS_socket, SYS_bind, SYS_connect, SYS_listen, SYS_accept4, SYS_setsockopt,
                                 SYS_sendto, SYS_sendmsg, SYS_sendmmsg, SYS_close, SYS_dup2};

/* One socket call in the current ABI; pointer arguments are already low
 * copies when abi_mode != 0. */
static long call(int which, int nargs, long a, long b, long c, long d, long e, long f)
{
    if (abi_mode == 0)
        return syscall(native_nr[which], a, b, c, d, e, f);
    long r;
    if (abi_mode == 2 && sc_nr[which]) {
        uint32_t *args = low_alloc(6 * 4);
        long v[6] = {a, b, c, d, e, f};
        for (int i = 0; i < 6; i++)
            args[i] = (uint32_t)v[i];
        (void)nargs;
        r = int80(I386_SOCKETCALL, sc_nr[which], (long)(uintptr_t)args, 0, 0, 0, 0);
    } else {
        r = int80(i386_nr[which], a, b, c, d, e, f);
    }
    if (r < 0 && r > -4096) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

/* Copies a buffer where the current ABI can read it. */
static void *place(void *p, size_t n)
{
    if (abi_mode == 0 || !n)
        return p;
    void *q = low_alloc(n);
    memcpy(q, p, n);
    return q;
}

struct cm {
    int level, type;
    unsigned char *data;
    size_t len;
};

/* Parses "-" or LEVEL:TYPE:HEX,... */
static int parse_cmsgs(const char *spec, struct cm *out, int max)
{
    int n = 0;
    if (!spec || !strcmp(spec, "-"))
        return 0;
    char *copy = strdup(spec), *save = NULL;
    for (char *part = strtok_r(copy, ",", &save); part && n < max; part = strtok_r(NULL, ",", &save)) {
        char *c1 = strchr(part, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = 0;
        out[n].level = (int)num(part);
        out[n].type = (int)num(c1 + 1);
        out[n].data = hex(c2 + 1, &out[n].len);
        n++;
    }
    free(copy);
    return n;
}

/* Builds a control buffer: native layout (abi 0) or the i386 one. */
static void *build_control(struct cm *cms, int n, size_t *len)
{
    size_t total = 0;
    int compat = abi_mode != 0 && sizeof(long) == 8;
    size_t hdr = compat ? 12 : sizeof(struct cmsghdr);
    size_t align = compat ? 4 : sizeof(size_t);
    for (int i = 0; i < n; i++)
        total += (hdr + cms[i].len + align - 1) & ~(align - 1);
    *len = total;
    if (!total)
        return NULL;
    unsigned char *buf = abi_mode ? low_alloc(total) : calloc(1, total);
    memset(buf, 0, total);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (compat) {
            uint32_t h[3] = {(uint32_t)(hdr + cms[i].len), (uint32_t)cms[i].level, (uint32_t)cms[i].type};
            memcpy(buf + off, h, 12);
        } else {
            struct cmsghdr h = {0};
            h.cmsg_len = hdr + cms[i].len;
            h.cmsg_level = cms[i].level;
            h.cmsg_type = cms[i].type;
            memcpy(buf + off, &h, sizeof h);
        }
        memcpy(buf + off + hdr, cms[i].data, cms[i].len);
        off += (hdr + cms[i].len + align - 1) & ~(align - 1);
    }
    return buf;
}

/* A msghdr for the current ABI, in memory it can read. */
static void *build_msghdr(void *name, size_t namelen, void *data, size_t dlen, void *ctl, size_t ctllen)
{
    if (abi_mode != 0 && sizeof(long) == 8) {
        uint32_t *iov = low_alloc(8);
        iov[0] = (uint32_t)(uintptr_t)place(data, dlen);
        iov[1] = (uint32_t)dlen;
        uint32_t *m = low_alloc(28);
        m[0] = (uint32_t)(uintptr_t)place(name, namelen);
        m[1] = (uint32_t)namelen;
        m[2] = (uint32_t)(uintptr_t)iov;
        m[3] = 1;
        m[4] = (uint32_t)(uintptr_t)ctl;
        m[5] = (uint32_t)ctllen;
        m[6] = 0;
        return m;
    }
    struct iovec *iov = calloc(1, sizeof *iov);
    iov->iov_base = data;
    iov->iov_len = dlen;
    struct msghdr *m = calloc(1, sizeof *m);
    m->msg_name = namelen ? name : NULL;
    m->msg_namelen = (socklen_t)namelen;
    m->msg_iov = iov;
    m->msg_iovlen = 1;
    m->msg_control = ctl;
    m->msg_controllen = ctllen;
    return m;
}

struct race_arg {
    int a, b;
    long n;
};
static pthread_t race_thread;
static int racing;

static void *race_main(void *p)
{
    struct race_arg *r = p;
    int saved = dup(r->a);
    for (long i = 0; i < r->n; i++) {
        dup2(r->b, r->a);
        if (saved >= 0)
            dup2(saved, r->a);
    }
    if (saved >= 0)
        close(saved);
    return NULL;
}

static void join_race(void)
{
    if (racing) {
        pthread_join(race_thread, NULL);
        racing = 0;
    }
}

static long do_uring(int fd, unsigned char *addr, size_t alen, unsigned char *data, size_t dlen)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int ring = (int)syscall(SYS_io_uring_setup, 4, &p);
    if (ring < 0)
        return -1;
    size_t sqlen = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cqlen = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    unsigned char *sq = mmap(NULL, sqlen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
    unsigned char *cq = mmap(NULL, cqlen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
    struct io_uring_sqe *sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                                     MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
        close(ring);
        return -1;
    }
    unsigned *tail = (unsigned *)(sq + p.sq_off.tail);
    unsigned *array = (unsigned *)(sq + p.sq_off.array);
    unsigned mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    long last = 0;
    for (int step = 0; step < 2; step++) {
        unsigned t = *tail;
        struct io_uring_sqe *e = &sqes[t & mask];
        memset(e, 0, sizeof *e);
        e->fd = fd;
        if (step == 0) {
            e->opcode = IORING_OP_CONNECT;
            e->addr = (uintptr_t)addr;
            e->off = alen;
        } else {
            e->opcode = IORING_OP_SEND;
            e->addr = (uintptr_t)data;
            e->len = (unsigned)dlen;
        }
        array[t & mask] = t & mask;
        __atomic_store_n(tail, t + 1, __ATOMIC_RELEASE);
        last = syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    }
    close(ring);
    return last;
}

static void run_range(int from, int to);

static int clone_child(void *arg)
{
    int *range = arg;
    arm_timer();
    run_range(range[0], range[1]);
    return 0;
}

/* Runs op i; returns how many following ops it consumed. */
static int run_op(int i)
{
    struct op *o = &ops[i];
    char **t = o->tok;
    const char *name = t[0];
    long r = 0;
    int skip = 0;
    size_t alen = 0, dlen = 0, a2len = 0;
    unsigned char *addr = NULL, *data = NULL, *addr2 = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    errno = 0;
    arm_timer();
    if (!strcmp(name, "abi")) {
        abi_mode = (int)num(t[1]);
    } else if (!strcmp(name, "socket")) {
        r = call(N_SOCKET, 3, num(t[2]), num(t[3]), num(t[4]), 0, 0, 0);
        if (r >= 0)
            fds[slot(t[1])] = (int)r;
    } else if (!strcmp(name, "setsockopt")) {
        data = hex(t[4], &dlen);
        r = call(N_SETSOCKOPT, 5, fd_of(t[1]), num(t[2]), num(t[3]), (long)place(data, dlen), (long)dlen, 0);
    } else if (!strcmp(name, "bind") || !strcmp(name, "connect")) {
        addr = hex(t[2], &alen);
        r = call(name[0] == 'b' ? N_BIND : N_CONNECT, 3, fd_of(t[1]), (long)place(addr, alen), (long)alen, 0, 0, 0);
    } else if (!strcmp(name, "listen")) {
        r = call(N_LISTEN, 2, fd_of(t[1]), 8, 0, 0, 0, 0);
    } else if (!strcmp(name, "accept")) {
        r = call(N_ACCEPT4, 4, fd_of(t[1]), 0, 0, SOCK_NONBLOCK, 0, 0);
        if (r >= 0)
            fds[slot(t[2])] = (int)r;
    } else if (!strcmp(name, "close")) {
        r = call(N_CLOSE, 1, fd_of(t[1]), 0, 0, 0, 0, 0);
    } else if (!strcmp(name, "dup2")) {
        int d = slot(t[2]);
        if (fds[d] < 0)
            fds[d] = 60 + d;
        r = call(N_DUP2, 2, fd_of(t[1]), fds[d], 0, 0, 0, 0);
    } else if (!strcmp(name, "send") || !strcmp(name, "write")) {
        int w = name[0] == 'w';
        data = stamp(hex(t[w ? 2 : 3], &dlen), &dlen);
        if (w)
            r = syscall(SYS_write, fd_of(t[1]), data, dlen);
        else
            r = call(N_SENDTO, 6, fd_of(t[1]), (long)place(data, dlen), (long)dlen, num(t[2]), 0, 0);
    } else if (!strcmp(name, "sendto")) {
        addr = hex(t[3], &alen);
        data = stamp(hex(t[4], &dlen), &dlen);
        r = call(N_SENDTO, 6, fd_of(t[1]), (long)place(data, dlen), (long)dlen, num(t[2]),
                 alen ? (long)place(addr, alen) : 0, (long)alen);
    } else if (!strcmp(name, "sendmsg")) {
        struct cm cms[4];
        int n = parse_cmsgs(t[4], cms, 4);
        size_t clen;
        void *ctl = build_control(cms, n, &clen);
        addr = hex(t[3], &alen);
        data = stamp(hex(t[5], &dlen), &dlen);
        void *m = build_msghdr(addr, alen, data, dlen, ctl, clen);
        r = call(N_SENDMSG, 3, fd_of(t[1]), (long)m, num(t[2]), 0, 0, 0);
    } else if (!strcmp(name, "sendmmsg")) {
        struct cm cms[4];
        int n = parse_cmsgs(t[5], cms, 4);
        size_t clen;
        void *ctl = build_control(cms, n, &clen);
        addr = hex(t[3], &alen);
        addr2 = hex(t[4], &a2len);
        data = stamp(hex(t[6], &dlen), &dlen);
        int compat = abi_mode != 0 && sizeof(long) == 8;
        size_t one = compat ? 32 : sizeof(struct mmsghdr);
        unsigned char *v = compat ? low_alloc(2 * one) : calloc(2, one);
        memset(v, 0, 2 * one);
        void *m1 = build_msghdr(addr, alen, data, dlen, ctl, clen);
        void *m2 = build_msghdr(addr2, a2len, data, dlen, NULL, 0);
        memcpy(v, m1, compat ? 28 : sizeof(struct msghdr));
        memcpy(v + one, m2, compat ? 28 : sizeof(struct msghdr));
        r = call(N_SENDMMSG, 4, fd_of(t[1]), (long)v, 2, num(t[2]), 0, 0);
    } else if (!strcmp(name, "race")) {
        join_race();
        static struct race_arg ra;
        ra.a = fd_of(t[1]);
        ra.b = fd_of(t[2]);
        ra.n = num(t[3]);
        r = pthread_create(&race_thread, NULL, race_main, &ra);
        racing = r == 0;
    } else if (!strcmp(name, "join")) {
        join_race();
    } else if (!strcmp(name, "fork") || !strcmp(name, "vmclone")) {
        skip = (int)num(t[1]);
        if (i + 1 + skip > nops)
            skip = nops - i - 1;
        if (skip < 0)
            skip = 0;
        static int range[2];
        range[0] = i + 1;
        range[1] = i + 1 + skip;
        pid_t pid;
        if (name[0] == 'f') {
            pid = fork();
            if (pid == 0) {
                run_range(range[0], range[1]);
                _exit(0);
            }
        } else {
            static char stack[1 << 16] __attribute__((aligned(16)));
            pid = clone(clone_child, stack + sizeof stack, CLONE_VM | SIGCHLD, range);
        }
        r = pid;
        if (pid > 0) {
            struct itimerval off = {{0, 0}, {0, 0}};
            setitimer(ITIMER_REAL, &off, NULL);
            struct timespec start, now;
            clock_gettime(CLOCK_MONOTONIC, &start);
            for (;;) {
                if (waitpid(pid, NULL, WNOHANG) != 0)
                    break;
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (now.tv_sec - start.tv_sec > 2) {
                    kill(pid, SIGKILL);
                    waitpid(pid, NULL, 0);
                    break;
                }
                usleep(2000);
            }
        }
    } else if (!strcmp(name, "uring")) {
        addr = hex(t[2], &alen);
        data = stamp(hex(t[3], &dlen), &dlen);
        r = do_uring(fd_of(t[1]), addr, alen, data, dlen);
    } else if (!strcmp(name, "reset")) {
        join_race();
        for (int k = 0; k < SLOTS; k++) {
            if (fds[k] >= 0)
                close(fds[k]);
            close(60 + k);
            fds[k] = -1;
        }
        abi_mode = 0;
    } else if (!strcmp(name, "sleep")) {
        usleep((useconds_t)num(t[1]) * 1000);
    }
    if (verbose) {
        int e = errno;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000;
        fprintf(stderr, "fuzzclient: op %d %s -> %ld (%s) %ld us\n", i, name, r, r < 0 ? strerror(e) : "ok", us);
    }
    free(addr);
    free(addr2);
    free(data);
    return skip;
}

static void run_range(int from, int to)
{
    for (int i = from; i < to && i < nops; i++)
        i += run_op(i);
}

static void add_line(char *line)
{
    if (nops >= MAXOPS)
        return;
    struct op *o = &ops[nops];
    char *save = NULL;
    o->ntok = 0;
    for (char *tok = strtok_r(line, " \t\r\n", &save); tok && o->ntok < MAXTOK; tok = strtok_r(NULL, " \t\r\n", &save))
        o->tok[o->ntok++] = tok;
    if (o->ntok == 0 || o->tok[0][0] == '#')
        return;
    for (int k = o->ntok; k < MAXTOK; k++)
        o->tok[k] = NULL;
    nops++;
}

/* With -DFUZZ_REPRO, `program` (a NULL-terminated array of op lines) is
 * defined before this source. */

int main(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < SLOTS; i++)
        fds[i] = -1;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (getenv("FUZZ_TIMER_MS"))
        timer_us = 1000 * num(getenv("FUZZ_TIMER_MS"));
    if (timer_us <= 0)
        timer_us = 150000;
#ifdef FUZZ_REPRO
    (void)argc;
    (void)argv;
    verbose = 1;
    for (int i = 0; program[i]; i++)
        add_line(strdup(program[i]));
#else
    if (argc < 2) {
        fprintf(stderr, "usage: fuzzclient PROGRAM-FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    char buf[8192];
    while (fgets(buf, sizeof buf, f))
        add_line(strdup(buf));
    fclose(f);
#endif
    run_range(0, nops);
    join_race();
    return 0;
}
