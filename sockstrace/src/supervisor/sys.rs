//! Thin wrappers over the raw system calls the supervisor needs, behind safe
//! signatures; each returns the errno on failure. The two forks are `unsafe fn`:
//! their child may only make raw system calls until it execs or exits.
//!
//! Most of the crate's `unsafe` is here. Where it remains elsewhere, and why:
//! - code that runs in a forked child, between fork and exec: `spawn.rs`
//!   (the program's setup), `isolate.rs` (entering the namespaces),
//!   `maker.rs` (the socket makers, and their channel's `SCM_RIGHTS` messages),
//!   and the `doctor` probes' children
//!   in `fence.rs` and `isolate.rs`. Raw, async-signal-safe calls on memory
//!   prepared before the fork, kept next to the sequence they belong to;
//! - `notif.rs`: the seccomp user-notification ioctls and their `repr(C)` structs;
//! - `fence.rs`: Landlock's system calls and attribute structs;
//! - `interrupt.rs`: the signal that kicks a receiver thread out of its wait;
//! - `handlers/inbound.rs`: a scoped thread that takes the program's credentials;
//! - `handlers/socksify.rs`, `udp_proxy/assoc.rs`, `isolate/abstract_unix.rs`:
//!   `getrandom`, `poll` on several fds, a `sockaddr_un` built in place;
//! - outside the supervisor: `kernel/` (the ring buffers registered with tokio,
//!   `BPF_PROG_QUERY`; the maps' `Pod` impls live in the shared `sockstrace-common`),
//!   `stack/` (reading the program's stack, a core dump's directory),
//!   `socks/handshake.rs` (I/O on the program's socket), `doctor.rs` (feature probes).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// An errno value, as the tracee would see it.
pub type Errno = i32;

/// `PIDFD_THREAD` (Linux 6.9+): a pidfd for one thread rather than a thread group.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

pub fn last_errno() -> Errno {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

fn check(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret < 0 {
        Err(last_errno())
    } else {
        Ok(ret)
    }
}

/// A pidfd for one thread (`tid`), falling back to a thread-group pidfd on
/// kernels without `PIDFD_THREAD`.
pub fn pidfd_open_thread(tid: u32) -> Result<OwnedFd, Errno> {
    for flags in [PIDFD_THREAD, 0] {
        // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, tid as libc::pid_t, flags) };
        match check(ret) {
            // SAFETY: the kernel just returned this fd to us; we own it.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            Err(libc::EINVAL) if flags != 0 => continue,
            Err(e) => return Err(e),
        }
    }
    Err(libc::EINVAL)
}

/// `clone_args` of `clone3(2)` (the first 11 fields, `CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (Linux 5.7+).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Forks (as `fork(2)` does, `SIGCHLD` at exit) with the child born in the cgroup whose
/// directory is `cgroup_dir`: 0 in the child, its pid in the parent, the errno when the kernel
/// refuses (then there is no child). Unlike glibc's `fork` it runs no `atfork` handlers.
///
/// # Safety
/// Other threads of ours may hold locks (the allocator's, stdio's) that the child's copy of
/// them never releases: in the child, the caller makes only async-signal-safe raw system
/// calls on memory prepared before the fork, then execs or `_exit`s (as `spawn`'s child does).
pub unsafe fn fork_into_cgroup(cgroup_dir: RawFd) -> Result<libc::pid_t, Errno> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_dir as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM forks: the child has its own copy of our memory and
    // returns here with 0; `args` is a live, correctly sized clone_args. What the child may
    // do next is this fn's contract, passed on to the caller.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &raw const args, std::mem::size_of::<CloneArgs>()) };
    check(ret).map(|pid| pid as libc::pid_t)
}

/// `fork(2)`: 0 in the child, its pid in the parent, the errno when there is no child.
///
/// # Safety
/// As for [`fork_into_cgroup`]: in the child, only async-signal-safe raw system calls on
/// memory prepared before the fork, then exec or `_exit`.
pub unsafe fn fork() -> Result<libc::pid_t, Errno> {
    // SAFETY: what the child may do after the fork is this fn's contract, passed on to the
    // caller; in the parent, fork has no precondition.
    let pid = unsafe { libc::fork() };
    check(pid as libc::c_long).map(|pid| pid as libc::pid_t)
}

/// Waits for our child `pid` to end (blocking): its raw wait status, `None`
/// when it is not our child.
pub fn wait_child(pid: libc::pid_t) -> Option<libc::c_int> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into a live local; a pid that is not our child
    // is only ECHILD.
    let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
    (ret == pid).then_some(status)
}

/// Sets whether this process is dumpable (`PR_SET_DUMPABLE`): a non-dumpable one
/// cannot be ptraced or have its memory and fds reached by same-uid processes
/// without `CAP_SYS_PTRACE`.
pub fn set_dumpable(dumpable: bool) -> Result<(), Errno> {
    // SAFETY: prctl(PR_SET_DUMPABLE) takes integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(dumpable), 0, 0, 0) };
    check(ret as libc::c_long).map(drop)
}

/// The pid of a child that has exited, left unreaped (`WNOWAIT`); `None` when none has.
pub fn exited_child() -> Option<libc::pid_t> {
    // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes into a live local; WNOHANG never blocks, WNOWAIT reaps nothing.
    let ret =
        unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    // SAFETY: after a successful waitid, si_pid is the child's pid (0 when none has exited).
    let pid = unsafe { info.si_pid() };
    (ret == 0 && pid > 0).then_some(pid)
}

/// Reaps child `pid` if it has exited: its wait status.
pub fn reap_nohang(pid: libc::pid_t) -> Option<libc::c_int> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into a live local; WNOHANG never blocks.
    let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (ret == pid).then_some(status)
}

/// Sends `signal` to process `pid` (a stale pid is only `ESRCH`).
pub fn kill(pid: libc::pid_t, signal: i32) -> Result<(), Errno> {
    // SAFETY: kill takes two integers and touches none of our memory.
    let ret = unsafe { libc::kill(pid, signal) };
    check(ret as libc::c_long).map(drop)
}

/// Whether the terminal on stdin has our process group in the foreground.
pub fn stdin_foreground_is_our_group() -> bool {
    // SAFETY: tcgetpgrp and getpgrp take and return integers only (a stdin that is no
    // terminal is ENOTTY, -1).
    let (foreground, ours) = unsafe { (libc::tcgetpgrp(libc::STDIN_FILENO), libc::getpgrp()) };
    foreground >= 0 && foreground == ours
}

/// Makes us the subreaper of our descendants: orphans of the program are
/// re-parented to us, so we can reap them and see the tree end.
pub fn set_child_subreaper() -> Result<(), Errno> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    check(ret as libc::c_long).map(drop)
}

extern "C" fn do_nothing(_: libc::c_int) {}

/// Answers `signal` with a handler that does nothing (reset to the default by an exec, unlike
/// `SIG_IGN`): a call it interrupts fails with `EINTR`, or, with `restart`, goes on.
pub fn handle_by_doing_nothing(signal: libc::c_int, restart: bool) {
    // SAFETY: a zeroed sigaction is valid; the handler is an async-signal-safe function that
    // does nothing.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = do_nothing as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = if restart { libc::SA_RESTART } else { 0 };
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(signal, &sa, std::ptr::null_mut());
    }
}

/// Answers `SIGXFSZ` with a handler that does nothing: a write past the file size limit then
/// fails with `EFBIG` instead of ending the process. A handler rather than `SIG_IGN`, which
/// the program would inherit across its exec.
pub fn survive_file_size_limit() {
    handle_by_doing_nothing(libc::SIGXFSZ, true);
}

/// The signal mask sockstrace started with, given back to the program (`spawn`).
static PROGRAM_MASK: std::sync::OnceLock<libc::sigset_t> = std::sync::OnceLock::new();

/// Blocks `SIGTTOU` and `SIGTTIN` in the calling thread and the threads it starts from now on
/// (call it first, before any thread): a program that makes its own process group the
/// terminal's foreground and sets `TOSTOP` would otherwise have the terminal stop its
/// supervisor when it writes (its summary), a signal no Landlock scope covers; a writer that
/// blocks `SIGTTOU` is let through. The mask before is kept for the program.
pub fn hold_terminal_stops() {
    // SAFETY: sigemptyset/sigaddset on a live local set; pthread_sigmask reads it and writes
    // the old mask into a live local.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTTOU);
        libc::sigaddset(&mut set, libc::SIGTTIN);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) == 0 {
            let _ = PROGRAM_MASK.set(old);
        }
    }
}

/// The mask the program gets back before its exec ([`hold_terminal_stops`]), if held.
pub fn program_mask() -> Option<libc::sigset_t> {
    PROGRAM_MASK.get().copied()
}

/// Blocks every signal in the calling thread.
pub fn block_all_signals() {
    // SAFETY: sigset_t is plain data that sigfillset fully initializes; pthread_sigmask
    // reads the live local set and, with a null old set, writes nothing.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Sets the scheduling priority (nice value) of thread `tid`, 0 for the calling one (Linux
/// keeps a nice value per thread, and threads it starts inherit it). Lowering a priority
/// needs no privilege, raising it `CAP_SYS_NICE`.
pub fn set_thread_priority(tid: libc::pid_t, nice: i32) -> Result<(), Errno> {
    // SAFETY: plain integer arguments; with PRIO_PROCESS, `who` names one thread (0: ours).
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
    if r == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// The threads of this process named `name` (as the kernel keeps a name: its first 15 bytes).
pub fn threads_named(name: &str) -> Vec<libc::pid_t> {
    let name = &name.as_bytes()[..name.len().min(15)];
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            (comm.trim_end_matches('\n').as_bytes() == name).then_some(tid)
        })
        .collect()
}

/// Whether `path` names a file we may execute (`access(X_OK)`).
pub fn is_executable(path: &std::ffi::CStr) -> bool {
    // SAFETY: path is a live NUL-terminated string the kernel only reads.
    unsafe { libc::access(path.as_ptr(), libc::X_OK) == 0 }
}

/// An anonymous memory file, close-on-exec.
pub fn memfd_create(name: &std::ffi::CStr) -> Result<OwnedFd, Errno> {
    // SAFETY: name is a live NUL-terminated string the kernel only reads.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    check(fd as libc::c_long)?;
    // SAFETY: memfd_create succeeded: the fd is new and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A new socket of ours, close-on-exec (`ty` may add `SOCK_NONBLOCK`).
pub fn socket(domain: i32, ty: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: socket takes integer arguments only.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
    check(fd as libc::c_long)?;
    // SAFETY: socket succeeded: the fd is new and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Raises our soft limit on open files to the hard one (best effort).
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into a live local.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if got && lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads one rlimit from a live local.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}

/// `write(2)` from `data`: the bytes written.
pub fn write(fd: BorrowedFd<'_>, data: &[u8]) -> Result<usize, Errno> {
    // SAFETY: data is a live buffer of data.len() bytes the kernel only reads.
    let ret = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    check(ret as libc::c_long).map(|n| n as usize)
}

/// `read(2)` into `buf`: the bytes read, 0 at end of file.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: buf is a live, writable buffer of buf.len() bytes.
    let ret = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    check(ret as libc::c_long).map(|n| n as usize)
}

/// Duplicates file descriptor `fd` of the process behind `pidfd` into ours.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain integer arguments; returns a new fd (O_CLOEXEC) or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    // SAFETY: the kernel just returned this fd to us; we own it.
    check(ret).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends a signal through a pidfd.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> Result<(), Errno> {
    // SAFETY: integer arguments and a NULL siginfo, which the kernel allows.
    let ret = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal, std::ptr::null::<u8>(), 0)
    };
    check(ret).map(drop)
}

/// Copies `len` bytes at `addr` in process `tid` into a new buffer.
/// A short read is `EFAULT`, as the kernel's own copy would be.
pub fn read_process_memory(tid: u32, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; len];
    if len == 0 {
        return Ok(buf);
    }
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: len };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len };
    // SAFETY: `local` covers exactly our buffer of `len` bytes; `remote` is only
    // interpreted in the tracee's address space by the kernel.
    let n = unsafe { libc::process_vm_readv(tid as libc::pid_t, &local, 1, &remote, 1, 0) };
    match n {
        n if n < 0 => Err(last_errno()),
        n if n as usize != len => Err(libc::EFAULT),
        _ => Ok(buf),
    }
}

/// Writes `data` at `addr` in process `tid`.
pub fn write_process_memory(tid: u32, addr: u64, data: &[u8]) -> Result<(), Errno> {
    let local = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: `local` covers exactly `data`, which the kernel only reads.
    let n = unsafe { libc::process_vm_writev(tid as libc::pid_t, &local, 1, &remote, 1, 0) };
    match n {
        n if n < 0 => Err(last_errno()),
        n if n as usize != data.len() => Err(libc::EFAULT),
        _ => Ok(()),
    }
}

/// Sets a socket option to the bytes of `value`.
pub fn setsockopt(fd: BorrowedFd<'_>, level: i32, name: i32, value: &[u8]) -> Result<(), Errno> {
    // SAFETY: value is a live buffer of value.len() bytes that the kernel only reads.
    let ret = unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, name, value.as_ptr().cast(), value.len() as libc::socklen_t)
    };
    check(ret as libc::c_long).map(drop)
}

/// Sets an integer socket option.
pub fn setsockopt_int(fd: BorrowedFd<'_>, level: i32, name: i32, value: i32) -> Result<(), Errno> {
    setsockopt(fd, level, name, &value.to_ne_bytes())
}

/// Reads an integer socket option.
pub fn getsockopt_int(fd: BorrowedFd<'_>, level: i32, name: i32) -> Result<i32, Errno> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len point to live locals of the sizes we pass.
    let ret = unsafe {
        libc::getsockopt(fd.as_raw_fd(), level, name, (&mut value as *mut libc::c_int).cast(), &mut len)
    };
    check(ret as libc::c_long).map(|_| value)
}

/// The socket's send timeout (`SO_SNDTIMEO`; zero when none).
pub fn send_timeout(fd: BorrowedFd<'_>) -> Result<libc::timeval, Errno> {
    let mut value = libc::timeval { tv_sec: 0, tv_usec: 0 };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: value and len point to live locals of the sizes we pass.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&mut value as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    check(ret as libc::c_long).map(|_| value)
}

/// How many connections wait in a TCP listener's accept queue (`TCP_INFO`: a listening
/// socket's `tcpi_unacked`).
pub fn accept_queue(fd: BorrowedFd<'_>) -> Result<u32, Errno> {
    // SAFETY: tcp_info is plain integers; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info and len point to live locals of the sizes we pass.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    check(ret as libc::c_long).map(|_| info.tcpi_unacked)
}

/// The socket cookie (`SO_COOKIE`), the key that eBPF programs see too.
pub fn socket_cookie(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    let mut value: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: value and len point to live locals of the sizes we pass.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&mut value as *mut u64).cast(),
            &mut len,
        )
    };
    check(ret as libc::c_long).map(|_| value)
}

/// The local address of a socket, as raw sockaddr bytes.
pub fn getsockname(fd: BorrowedFd<'_>) -> Result<Vec<u8>, Errno> {
    let mut storage = [0u8; 128];
    let mut len = storage.len() as libc::socklen_t;
    // SAFETY: storage is 128 bytes and len says so; the kernel writes at most len.
    let ret = unsafe { libc::getsockname(fd.as_raw_fd(), storage.as_mut_ptr().cast(), &mut len) };
    check(ret as libc::c_long)?;
    Ok(storage[..(len as usize).min(storage.len())].to_vec())
}

/// Whether the open file description is non-blocking.
pub fn is_nonblocking(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    // SAFETY: F_GETFL takes no argument and returns flags or -1.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    check(flags as libc::c_long).map(|f| f as i32 & libc::O_NONBLOCK != 0)
}

/// `connect` on our duplicate with the address bytes we decided on.
pub fn connect(fd: BorrowedFd<'_>, addr: &[u8]) -> Result<(), Errno> {
    // SAFETY: addr is a live buffer of addr.len() bytes.
    let ret = unsafe { libc::connect(fd.as_raw_fd(), addr.as_ptr().cast(), addr.len() as libc::socklen_t) };
    check(ret as libc::c_long).map(drop)
}

/// `bind` on our duplicate with the address bytes we decided on.
pub fn bind(fd: BorrowedFd<'_>, addr: &[u8]) -> Result<(), Errno> {
    // SAFETY: addr is a live buffer of addr.len() bytes.
    let ret = unsafe { libc::bind(fd.as_raw_fd(), addr.as_ptr().cast(), addr.len() as libc::socklen_t) };
    check(ret as libc::c_long).map(drop)
}

pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::listen(fd.as_raw_fd(), backlog) };
    check(ret as libc::c_long).map(drop)
}

/// `sendmsg` on our duplicate: one data buffer, an optional destination and
/// control bytes, all private copies.
pub fn sendmsg(
    fd: BorrowedFd<'_>,
    data: &[u8],
    name: &[u8],
    control: &[u8],
    flags: i32,
) -> Result<usize, Errno> {
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: msghdr is plain data; zero is a valid initial value for every field.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if !name.is_empty() {
        msg.msg_name = name.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = name.len() as libc::socklen_t;
    }
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !control.is_empty() {
        msg.msg_control = control.as_ptr() as *mut libc::c_void;
        msg.msg_controllen = control.len();
    }
    // SAFETY: every pointer in msg refers to a buffer that outlives the call,
    // and the kernel only reads from them.
    let ret = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, flags) };
    check(ret as libc::c_long).map(|n| n as usize)
}

/// Creates a pipe with both ends close-on-exec.
pub fn pipe_cloexec() -> Result<(OwnedFd, OwnedFd), Errno> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    check(ret as libc::c_long)?;
    // SAFETY: pipe2 succeeded, so both fds are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The most iovecs one `process_vm_readv` takes (`UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

/// Copies several regions of process `tid` into one buffer, in order, with a
/// single system call (one per 1,024 regions). A short read is `EFAULT`.
pub fn read_process_memory_vectored(tid: u32, regions: &[(u64, usize)]) -> Result<Vec<u8>, Errno> {
    let total: usize = regions.iter().map(|&(_, len)| len).sum();
    let mut buf = vec![0u8; total];
    let mut at = 0;
    // process_vm_readv takes at most IOV_MAX remote iovecs: longer lists go in chunks.
    for chunk in regions.chunks(IOV_MAX) {
        let len: usize = chunk.iter().map(|&(_, len)| len).sum();
        if len == 0 {
            continue;
        }
        if readv_into(tid, &mut buf[at..at + len], chunk)? != len {
            return Err(libc::EFAULT);
        }
        at += len;
    }
    Ok(buf)
}

/// Copies up to [`IOV_MAX`] regions of process `tid` into one buffer with one
/// system call, stopping at the first region that cannot be read: the buffer
/// and how many bytes were read (a short count is no error here).
pub fn read_process_memory_upto(tid: u32, regions: &[(u64, usize)]) -> Result<(Vec<u8>, usize), Errno> {
    if regions.len() > IOV_MAX {
        return Err(libc::EINVAL);
    }
    let total: usize = regions.iter().map(|&(_, len)| len).sum();
    let mut buf = vec![0u8; total];
    if total == 0 {
        return Ok((buf, 0));
    }
    let n = readv_into(tid, &mut buf, regions)?;
    Ok((buf, n))
}

/// One `process_vm_readv` of at most [`IOV_MAX`] `regions` of process `tid` into `buf`
/// (as long as the regions together): the bytes read, which stop at the first region that
/// cannot be read.
fn readv_into(tid: u32, buf: &mut [u8], regions: &[(u64, usize)]) -> Result<usize, Errno> {
    let remote: Vec<libc::iovec> = regions
        .iter()
        .map(|&(addr, len)| libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len })
        .collect();
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: `local` covers exactly `buf`, which the regions' lengths fill at most; the
    // remote iovecs are only interpreted in the tracee's address space.
    let n = unsafe {
        libc::process_vm_readv(
            tid as libc::pid_t,
            &local,
            1,
            remote.as_ptr(),
            remote.len() as libc::c_ulong,
            0,
        )
    };
    if n < 0 {
        return Err(last_errno());
    }
    Ok(n as usize)
}

/// `accept4` on our duplicate of a listener: the new connection (ours, close-on-exec)
/// and the peer's address bytes.
pub fn accept4(fd: BorrowedFd<'_>, flags: i32) -> Result<(OwnedFd, Vec<u8>), Errno> {
    let mut storage = [0u8; 128];
    let mut len = storage.len() as libc::socklen_t;
    // SAFETY: storage is 128 bytes and len says so; the kernel writes at most len.
    let ret = unsafe {
        libc::accept4(fd.as_raw_fd(), storage.as_mut_ptr().cast(), &mut len, flags | libc::SOCK_CLOEXEC)
    };
    check(ret as libc::c_long)?;
    // SAFETY: accept4 returned a new fd that we own.
    let conn = unsafe { OwnedFd::from_raw_fd(ret) };
    Ok((conn, storage[..(len as usize).min(storage.len())].to_vec()))
}

/// Waits up to `ms` milliseconds for `events` on `fd`; whether any arrived.
pub fn poll_one(fd: BorrowedFd<'_>, events: libc::c_short, ms: i32) -> bool {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
    // SAFETY: one live pollfd.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}

#[cfg(test)]
mod tests {
    use super::read_process_memory_vectored;

    #[test]
    fn vectored_reads_keep_order_past_iov_max_and_fail_on_a_bad_region() {
        let source: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let base = source.as_ptr() as u64;
        // 3,000 one-byte regions, last byte first: three chunks of at most 1,024.
        let regions: Vec<(u64, usize)> = (0..source.len()).rev().map(|i| (base + i as u64, 1)).collect();
        let me = std::process::id();
        let got = read_process_memory_vectored(me, &regions).unwrap();
        let mut expected = source.clone();
        expected.reverse();
        assert_eq!(got, expected);
        assert_eq!(read_process_memory_vectored(me, &[(base, 0), (0, 0)]).unwrap(), Vec::<u8>::new());
        assert_eq!(read_process_memory_vectored(me, &[(base, 4), (8, 4)]), Err(libc::EFAULT));
    }
}
