//! `--syscalls strict`: the built-in allowlist for ordinary network clients
//! and browsers (glibc, musl, Go's runtime, Python, Node.js, Chromium), on
//! x86_64 and i386. Its name carries a version: a list that changes gets a
//! new name, so a run's report says exactly which list was in force.
//!
//! Names follow libseccomp's (one name for both ABIs; a name that exists on
//! one ABI only applies there). The network calls are in the list: the
//! supervisor still judges each of them as in any run.

/// The name of this list in reports and in `doctor`.
pub const NAME: &str = "strict-1";

/// Left out on purpose (denied with EPERM, each reported): ways to reach
/// other processes or the kernel's own state that no ordinary client needs.
/// `ptrace`, `process_vm_readv`/`writev`, `pidfd_getfd`, `kcmp`, `bpf`,
/// `perf_event_open`, `userfaultfd`, the mount family and `pivot_root`,
/// `chroot`, `unshare`, `setns`, module loading, `kexec_*`, `reboot`,
/// `swapon`/`swapoff`, `acct`, `quotactl`, `syslog`, the clock setters,
/// `sethostname`/`setdomainname`, `personality`, `iopl`/`ioperm`,
/// `modify_ldt`, `vm86`, `keyctl`/`add_key`/`request_key`, `fanotify_*`,
/// `name_to_handle_at`/`open_by_handle_at`, `move_pages`/`migrate_pages`,
/// `process_madvise`, `memfd_secret`.
pub const NAMES: &[&str] = &[
    // memory
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mlock", "mlock2", "munlock",
    "mlockall", "munlockall", "mincore", "msync", "membarrier", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "memfd_create", "get_mempolicy", "set_mempolicy", "mbind", "remap_file_pages",
    "map_shadow_stack", "mseal",
    // threads, scheduling
    "clone", "clone3", "fork", "vfork", "futex", "futex_time64", "futex_waitv", "futex_wait",
    "futex_wake", "futex_requeue", "set_robust_list", "get_robust_list", "set_tid_address",
    "set_thread_area", "get_thread_area", "arch_prctl", "rseq", "gettid", "sched_yield",
    "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_setparam",
    "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_getattr", "sched_setattr",
    "getpriority", "setpriority", "ioprio_get", "ioprio_set", "getcpu",
    // programs, exit, wait
    "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid",
    // signals
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigreturn", "rt_sigpending",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_sigsuspend", "rt_sigqueueinfo",
    "rt_tgsigqueueinfo", "sigaltstack", "signal", "sigaction", "sigprocmask", "sigpending",
    "sigsuspend", "kill", "tkill", "tgkill", "pause", "alarm", "signalfd", "signalfd4",
    "restart_syscall", "pidfd_open", "pidfd_send_signal",
    // identity and limits (a program may drop privileges, never gain them)
    "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getuid32", "geteuid32",
    "getgid32", "getegid32", "getresuid", "getresgid", "getresuid32", "getresgid32", "getgroups",
    "getgroups32", "getpgid", "getpgrp", "getsid", "setsid", "setpgid", "setuid", "setgid",
    "setuid32", "setgid32", "setreuid", "setregid", "setreuid32", "setregid32", "setresuid",
    "setresgid", "setresuid32", "setresgid32", "setgroups", "setgroups32", "setfsuid", "setfsgid",
    "setfsuid32", "setfsgid32", "capget", "capset", "prctl", "getrlimit", "setrlimit", "ugetrlimit",
    "prlimit64", "getrusage", "times", "umask", "uname", "sysinfo", "getrandom", "seccomp",
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    // time
    "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres",
    "clock_getres_time64", "clock_nanosleep", "clock_nanosleep_time64", "nanosleep",
    "timer_create", "timer_settime", "timer_settime64", "timer_gettime", "timer_gettime64",
    "timer_getoverrun", "timer_delete", "timerfd_create", "timerfd_settime", "timerfd_settime64",
    "timerfd_gettime", "timerfd_gettime64", "getitimer", "setitimer",
    // files and descriptors
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range", "dup", "dup2", "dup3",
    "lseek", "_llseek", "fcntl", "fcntl64", "ioctl", "flock", "fsync", "fdatasync",
    "sync_file_range", "syncfs", "sync", "ftruncate", "ftruncate64", "truncate", "truncate64",
    "fallocate", "fadvise64", "fadvise64_64", "readahead", "stat", "stat64", "fstat", "fstat64",
    "lstat", "lstat64", "newfstatat", "fstatat64", "statx", "statfs", "statfs64", "fstatfs",
    "fstatfs64", "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents",
    "getdents64", "getcwd", "chdir", "fchdir", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat",
    "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod",
    "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "chown32", "fchown32",
    "lchown32", "utime", "utimes", "utimensat", "utimensat_time64", "futimesat", "mknod", "mknodat",
    "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr", "setxattr",
    "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "sendfile",
    "sendfile64", "splice", "tee", "vmsplice", "copy_file_range", "pipe", "pipe2", "inotify_init",
    "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "eventfd", "eventfd2", "cachestat",
    // waiting for descriptors, asynchronous I/O
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "io_uring_enter", "io_uring_register",
    // System V and POSIX IPC
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semctl", "semtimedop",
    "semtimedop_time64", "msgget", "msgsnd", "msgrcv", "msgctl", "ipc", "mq_open", "mq_unlink",
    "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive", "mq_timedreceive_time64",
    "mq_notify", "mq_getsetattr",
    // sockets: the ones the filter never stops, then the ones the supervisor judges
    "socketpair", "getsockname", "getpeername", "getsockopt", "recvfrom", "recv", "recvmsg",
    "recvmmsg", "recvmmsg_time64", "send", "shutdown", "socket", "connect", "bind", "listen",
    "accept", "accept4", "sendto", "sendmsg", "sendmmsg", "setsockopt", "io_uring_setup",
];
