//! Thin wrappers over the raw system calls the supervisor needs.
//!
//! All `unsafe` of the supervisor's kernel plumbing lives here or in
//! `notif.rs`/`spawn.rs`; each wrapper returns the errno on failure.

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
/// refuses (then there is no child). Unlike glibc's `fork` it runs no `atfork` handlers: the
/// child must only make raw system calls (as `spawn`'s child does).
pub fn fork_into_cgroup(cgroup_dir: RawFd) -> Result<libc::pid_t, Errno> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_dir as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM forks: the child has its own copy of our memory and
    // returns here with 0; `args` is a live, correctly sized clone_args.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &raw const args, std::mem::size_of::<CloneArgs>()) };
    check(ret).map(|pid| pid as libc::pid_t)
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
        let remote: Vec<libc::iovec> = chunk
            .iter()
            .map(|&(addr, len)| libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len })
            .collect();
        let local = libc::iovec { iov_base: buf[at..].as_mut_ptr().cast(), iov_len: len };
        // SAFETY: `local` covers `len` bytes of our buffer from `at` (the chunks' lengths sum to
        // the buffer's); the remote iovecs are only interpreted in the tracee's address space.
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
        match n {
            n if n < 0 => return Err(last_errno()),
            n if n as usize != len => return Err(libc::EFAULT),
            _ => at += len,
        }
    }
    Ok(buf)
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
