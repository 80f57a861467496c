/*
 * root_sys: what a root program can still write under /proc/sys and /sys.
 *
 *   root_sys FILE SYS_ATTR SUB_ATTR MOUNT_DIR
 *
 * Never writes a new value anywhere: a file that unexpectedly opens for
 * writing gets its current value written back (the sysrq trigger nothing).
 * Prints one line per try, "OP: ok ..." or "OP: errno=N (...)":
 *   read           reads FILE (a root-only file)
 *   sysctl_read    reads /proc/sys/kernel/core_pattern
 *   sysctl_write   opens it for writing (writes the value read back)
 *   umount         umount2("/proc/sys", 0), then sysctl_write again
 *   umount_detach  umount2("/proc/sys", MNT_DETACH), then sysctl_write again
 *   remount_rw     mount -o remount,rw,bind /proc/sys, then sysctl_write again
 *   setattr_rw     mount_setattr clearing MOUNT_ATTR_RDONLY (recursive),
 *                  then sysctl_write again
 *   sys_remount_rw mount -o remount,rw,bind /sys
 *   sys_read       reads SYS_ATTR (a root-writable sysfs attribute)
 *   sys_write      opens it for writing (writes the value read back)
 *   sub_write      the same for SUB_ATTR, on a mount below /sys ("-": none)
 *   sysrq_write    opens /proc/sysrq-trigger for writing (writes nothing)
 *   cgroup_write   opens its own cgroup's cgroup.procs (cgroup v2) for
 *                  writing, the first step of leaving the run's cgroup
 *                  (writes its own pid: it stays where it is)
 *   via_init       core_pattern through /proc/1/root (init's mount namespace)
 *   via_parent     the same through the supervisor's /proc/PPID/root
 *   sysfs_mount    a new sysfs, read-write, on MOUNT_DIR (unmounted at once)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

struct attr {
    uint64_t set, clr, propagation, userns_fd;
};

static void result(const char *op, int rc) {
    if (rc == 0)
        printf("%s: ok\n", op);
    else
        printf("%s: errno=%d (%s)\n", op, errno, strerror(errno));
}

/* Reads the start of PATH into BUF; returns its length or -1. */
static ssize_t slurp(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    int e = errno;
    close(fd);
    errno = e;
    if (n >= 0)
        buf[n] = 0;
    return n;
}

static void read_line(const char *op, const char *path, char *buf, size_t size) {
    ssize_t n = slurp(path, buf, size);
    if (n < 0) {
        printf("%s: errno=%d (%s)\n", op, errno, strerror(errno));
        return;
    }
    char shown[256];
    snprintf(shown, sizeof shown, "%s", buf);
    shown[strcspn(shown, "\n")] = 0;
    printf("%s: ok %s\n", op, shown);
}

/* Opens PATH for writing; if it opens, writes VALUE (its current value) back. */
static void try_write(const char *op, const char *path, const char *value) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        printf("%s: errno=%d (%s)\n", op, errno, strerror(errno));
        return;
    }
    if (value && *value) {
        ssize_t n = write(fd, value, strlen(value));
        printf("%s: ok (wrote the same value back: %zd)\n", op, n);
    } else {
        printf("%s: ok (wrote nothing)\n", op);
    }
    close(fd);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: root_sys FILE SYS_ATTR SUB_ATTR MOUNT_DIR\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("uid: %d euid: %d\n", (int)getuid(), (int)geteuid());
    char buf[4096];
    read_line("read", argv[1], buf, sizeof buf);

    static char core[4096];
    const char *sysctl = "/proc/sys/kernel/core_pattern";
    read_line("sysctl_read", sysctl, core, sizeof core);
    try_write("sysctl_write", sysctl, core);

    result("umount", umount2("/proc/sys", 0));
    try_write("sysctl_write_after_umount", sysctl, core);
    result("umount_detach", umount2("/proc/sys", MNT_DETACH));
    try_write("sysctl_write_after_umount_detach", sysctl, core);
    result("remount_rw", mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL));
    try_write("sysctl_write_after_remount_rw", sysctl, core);
    struct attr clear = {.clr = 0x1 /* MOUNT_ATTR_RDONLY */};
    result("setattr_rw",
           (int)syscall(SYS_mount_setattr, -100 /* AT_FDCWD */, "/proc/sys", 0x8000 /* AT_RECURSIVE */,
                        &clear, sizeof clear));
    try_write("sysctl_write_after_setattr_rw", sysctl, core);
    result("sys_remount_rw", mount(NULL, "/sys", NULL, MS_REMOUNT | MS_BIND, NULL));

    static char attr[4096];
    read_line("sys_read", argv[2], attr, sizeof attr);
    try_write("sys_write", argv[2], attr);
    if (strcmp(argv[3], "-") != 0) {
        static char sub[4096];
        if (slurp(argv[3], sub, sizeof sub) < 0)
            printf("sub_read: errno=%d (%s)\n", errno, strerror(errno));
        else
            try_write("sub_write", argv[3], sub);
    }
    try_write("sysrq_write", "/proc/sysrq-trigger", NULL);

    FILE *cg = fopen("/proc/self/cgroup", "r");
    char line[1024], procs[1200] = "";
    while (cg && fgets(line, sizeof line, cg)) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = 0;
        const char *roots[] = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
        for (int i = 0; i < 2 && !*procs; i++) {
            snprintf(procs, sizeof procs, "%s%s/cgroup.procs", roots[i], line + 3);
            if (access(procs, F_OK) != 0)
                procs[0] = 0;
        }
    }
    if (cg)
        fclose(cg);
    if (*procs) {
        char pid[32];
        snprintf(pid, sizeof pid, "%d\n", (int)getpid());
        try_write("cgroup_write", procs, pid);
    } else {
        printf("cgroup_write: no cgroup v2 file found\n");
    }

    char via[128];
    snprintf(via, sizeof via, "/proc/1/root%s", sysctl);
    try_write("via_init", via, core);
    snprintf(via, sizeof via, "/proc/%d/root%s", (int)getppid(), sysctl);
    try_write("via_parent", via, core);

    int m = mount("sysfs", argv[4], "sysfs", 0, NULL);
    if (m == 0)
        umount2(argv[4], MNT_DETACH);
    result("sysfs_mount", m);
    return 0;
}
