/*
 * root_host: what a root program can still do to files and to the host.
 *
 *   root_host FILE VICTIM_PID MOUNT_DIR HOST_PID
 *
 * Prints one line per try, "OP: ok ..." or "OP: errno=N":
 *   uid          getuid/geteuid
 *   read         reads FILE (a root-only file) and prints its first line
 *   init_module  an empty module image: EPERM without CAP_SYS_MODULE in the
 *                initial user namespace, ENOEXEC (loads nothing) with it,
 *                ENOSYS on a kernel without modules
 *   swapoff      a path that does not exist: EPERM without CAP_SYS_ADMIN in
 *                the initial user namespace, ENOENT with it
 *   kill         kill(VICTIM_PID, 0): a process of another user outside
 *   mount        a tmpfs on MOUNT_DIR, left mounted: in the program's own
 *                mount namespace it goes with the program; in the host's,
 *                the test sees (and unmounts) it
 *   setns        the network namespace of HOST_PID (/proc/PID/ns/net)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <unistd.h>

static void result(const char *op, int rc) {
    if (rc == 0)
        printf("%s: ok\n", op);
    else
        printf("%s: errno=%d (%s)\n", op, errno, strerror(errno));
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: root_host FILE VICTIM_PID MOUNT_DIR HOST_PID\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("uid: %d euid: %d\n", (int)getuid(), (int)geteuid());

    FILE *f = fopen(argv[1], "r");
    if (!f) {
        printf("read: errno=%d (%s)\n", errno, strerror(errno));
    } else {
        char line[256] = {0};
        if (fgets(line, sizeof line, f))
            line[strcspn(line, "\n")] = 0;
        printf("read: ok %s\n", line);
        fclose(f);
    }

    static char empty[1];
    result("init_module", (int)syscall(SYS_init_module, empty, 0UL, ""));

    result("swapoff", swapoff("/nonexistent/sockstrace-swap"));

    result("kill", kill((pid_t)atoi(argv[2]), 0));

    result("mount", mount("none", argv[3], "tmpfs", 0, "size=16k"));

    char path[64];
    snprintf(path, sizeof path, "/proc/%s/ns/net", argv[4]);
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
        printf("setns: open errno=%d (%s)\n", errno, strerror(errno));
    } else {
        result("setns", setns(ns, CLONE_NEWNET));
        close(ns);
    }
    return 0;
}
