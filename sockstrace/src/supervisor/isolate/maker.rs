//! The socket maker: a process left in the program's network namespace that
//! makes TCP sockets there for the supervisor (a socket belongs to the
//! namespace of whoever made it, and a supervisor without root cannot
//! `setns` into a namespace its child's user namespace owns).
//!
//! Started by the child between fork and exec, after the namespaces and
//! before the cgroup, Landlock and the seccomp filter: a double fork makes it
//! an orphan, so it becomes our child (we are the subreaper), not the
//! program's. It is not dumpable (it is a copy of our memory), holds only its
//! end of a `SOCK_SEQPACKET` pair, and serves requests until we close ours:
//! one byte (4 or 6: the family) in, a 4-byte errno out, with the new socket
//! as `SCM_RIGHTS` when it is 0. The program cannot ptrace it (it is outside
//! the program's Landlock domain); a socket it sent could only be one of the
//! program's namespace, where the supervisor only connects to the program's
//! own listener.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

/// The pair, made before fork (both ends close-on-exec).
pub fn channel() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two fds into a live array.
    if unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr())
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just made and are ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A raw `fork`: no atfork handlers run in the forked child of a
/// multi-threaded process.
///
/// # Safety
/// Only in the child between fork and exec.
unsafe fn raw_fork() -> libc::c_long {
    // SAFETY: clone with only SIGCHLD behaves as fork.
    unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) }
}

/// In the child between fork and exec: starts the maker (double fork) and
/// waits for the intermediate process. `ours` is the supervisor's end (the
/// maker closes it), `theirs` the maker's.
///
/// # Safety
/// Only in the freshly forked child: raw system calls, no allocation.
pub unsafe fn spawn(ours: libc::c_int, theirs: libc::c_int) -> Result<(), i32> {
    // SAFETY: this fn's contract: we are the freshly forked child, so these raw system
    // calls (forks, `wait4` on our own child into a live local, errno of this thread)
    // take no lock another thread held at fork; nothing is allocated.
    unsafe {
        let errno = || *libc::__errno_location();
        let middle = raw_fork();
        if middle < 0 {
            return Err(errno());
        }
        if middle == 0 {
            let maker = raw_fork();
            if maker == 0 {
                serve(ours, theirs);
            }
            libc::_exit(if maker < 0 { 1 } else { 0 });
        }
        let mut status = 0;
        while libc::wait4(middle as libc::pid_t, &mut status, 0, std::ptr::null_mut()) < 0 {
            if errno() != libc::EINTR {
                return Err(errno());
            }
        }
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            return Err(libc::ECHILD);
        }
        Ok(())
    }
}

/// The maker's loop. Never returns.
unsafe fn serve(ours: libc::c_int, theirs: libc::c_int) -> ! {
    // SAFETY: this fn's contract: we are the maker, a fork of the freshly forked child, with
    // one thread. Raw system calls on our own fds (`chan`, the sockets we make) and on
    // pointers to live locals (`req`, a static C string); nothing is allocated.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        // What `ps` shows (its command line is still ours).
        libc::prctl(libc::PR_SET_NAME, c"sockstrace-mkr".as_ptr(), 0, 0, 0);
        // Only the channel stays open (as fd 3): a copy of the program's
        // stdout would keep whoever reads it waiting for its end.
        let chan = 3;
        if theirs != chan && libc::dup2(theirs, chan) != chan {
            libc::_exit(1);
        }
        // `ours` (the supervisor's end, inherited) is closed with the rest,
        // so we see end of file once the supervisor's copy is gone.
        let _ = ours;
        libc::syscall(libc::SYS_close_range, 0u32, 2u32, 0u32);
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
        loop {
            let mut req = [0u8; 1];
            let n = libc::recv(chan, req.as_mut_ptr().cast(), 1, 0);
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            if n != 1 {
                libc::_exit(0);
            }
            let family = if req[0] == 6 { libc::AF_INET6 } else { libc::AF_INET };
            let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            let code: i32 = if fd < 0 { *libc::__errno_location() } else { 0 };
            send_fd(chan, code, fd);
            if fd >= 0 {
                libc::close(fd);
            }
        }
    }
}

/// Sends `code`, and `fd` as `SCM_RIGHTS` when it is one.
unsafe fn send_fd(chan: libc::c_int, code: i32, fd: libc::c_int) {
    // SAFETY: a msghdr over live locals; the control buffer is aligned (u64)
    // and big enough for one fd (CMSG_SPACE(4) = 24).
    unsafe {
        let mut data = code.to_ne_bytes();
        let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
        let mut control = [0u64; 3];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if fd >= 0 {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(4) as usize;
            std::ptr::copy_nonoverlapping((&fd as *const libc::c_int).cast::<u8>(), libc::CMSG_DATA(cmsg), 4);
        }
        libc::sendmsg(chan, &msg, libc::MSG_NOSIGNAL);
    }
}

/// Our end of the channel.
pub struct Maker {
    chan: Mutex<OwnedFd>,
}

impl Maker {
    pub fn new(chan: OwnedFd) -> Maker {
        Maker { chan: Mutex::new(chan) }
    }

    /// A new TCP socket of `family` in the program's namespace. Blocking
    /// (one round trip to the maker): call it off the runtime's threads.
    pub fn make(&self, v6: bool) -> std::io::Result<OwnedFd> {
        let chan = self.chan.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let chan = chan.as_raw_fd();
        let req = [if v6 { 6u8 } else { 4u8 }];
        // SAFETY: send/recvmsg on our own fd with live buffers; the control
        // buffer is aligned and holds one fd.
        unsafe {
            if libc::send(chan, req.as_ptr().cast(), 1, libc::MSG_NOSIGNAL) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            let mut data = [0u8; 4];
            let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
            let mut control = [0u64; 3];
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control);
            let n = libc::recvmsg(chan, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n != 4 {
                return Err(if n < 0 {
                    std::io::Error::last_os_error()
                } else {
                    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the socket maker is gone")
                });
            }
            let mut fd = None;
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let mut raw: libc::c_int = -1;
                    std::ptr::copy_nonoverlapping(
                        libc::CMSG_DATA(cmsg),
                        (&mut raw as *mut libc::c_int).cast(),
                        4,
                    );
                    fd = Some(OwnedFd::from_raw_fd(raw));
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
            let code = i32::from_ne_bytes(data);
            match fd {
                _ if code != 0 => Err(std::io::Error::from_raw_os_error(code)),
                Some(fd) => check_tcp(fd, v6),
                None => Err(std::io::Error::from_raw_os_error(libc::EPROTO)),
            }
        }
    }
}

/// What came back must be an unconnected TCP socket of the family asked
/// for (whatever the process on the other end did).
fn check_tcp(fd: OwnedFd, v6: bool) -> std::io::Result<OwnedFd> {
    let int = |opt| -> std::io::Result<libc::c_int> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into a live int.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(v)
    };
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    if int(libc::SO_DOMAIN)? != family
        || int(libc::SO_TYPE)? != libc::SOCK_STREAM
        || int(libc::SO_PROTOCOL)? != libc::IPPROTO_TCP
    {
        return Err(std::io::Error::from_raw_os_error(libc::EPROTO));
    }
    Ok(fd)
}
