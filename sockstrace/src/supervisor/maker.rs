//! Socket makers: processes that make sockets in the program's context (a
//! socket belongs to the network namespace, cgroup and credentials of whoever
//! made it), for two users:
//!
//! - `--isolate-network` with inbound connections: TCP sockets in the
//!   program's network namespace, made for the supervisor, which a supervisor
//!   without root cannot `setns` into (started after the namespaces, before
//!   the cgroup);
//! - the program's own i386 `socketcall(SYS_SOCKET)`, whose arguments are in
//!   memory another thread or process can rewrite after our decision: we never
//!   let the kernel read them again, a maker makes the socket we judged (in the
//!   program's cgroup, namespaces and credentials: started after `--user`) and
//!   we install it in the caller's fd table.
//!
//! Started by the child between fork and exec, before Landlock and the seccomp
//! filter: a double fork makes it an orphan, so it becomes our child (we are
//! the subreaper), not the program's. It is not dumpable (it is a copy of our
//! memory), holds only its end of a `SOCK_SEQPACKET` pair, and serves requests
//! until we close ours: three `int`s (family, type, protocol) in, a 4-byte
//! errno out, with the new socket as `SCM_RIGHTS` when it is 0. The program
//! cannot ptrace it (it is outside the program's Landlock domain, and not
//! dumpable); whatever comes back is checked to be the socket asked for.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
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
/// maker closes it), `theirs` the maker's. `kill` (or -1; given under
/// `--allow-io-uring`): the program's cgroup's `cgroup.kill`, opened for
/// writing, which the maker writes when the channel ends: if the supervisor
/// dies, the program goes with it (nothing would be left that judges what
/// io_uring does past seccomp). At the end of a run only the maker itself is
/// left in the cgroup.
///
/// # Safety
/// Only in the freshly forked child: raw system calls, no allocation.
pub unsafe fn spawn(ours: libc::c_int, theirs: libc::c_int, kill: libc::c_int) -> Result<(), i32> {
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
                serve(ours, theirs, kill);
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
unsafe fn serve(ours: libc::c_int, theirs: libc::c_int, kill: libc::c_int) -> ! {
    // SAFETY: this fn's contract: we are the maker, a fork of the freshly forked child, with
    // one thread. Raw system calls on our own fds (`chan`, `home`, a received namespace, the
    // sockets we make) and on pointers to live locals (`req`, static C strings); nothing is
    // allocated.
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
        // `cgroup.kill`, if any, as fd 4.
        let kill = match kill {
            -1 => -1,
            4 => 4,
            fd if libc::dup2(fd, 4) == 4 => 4,
            _ => libc::_exit(1),
        };
        // `ours` (the supervisor's end, inherited) is closed with the rest,
        // so we see end of file once the supervisor's copy is gone.
        let _ = ours;
        libc::syscall(libc::SYS_close_range, 0u32, 2u32, 0u32);
        libc::syscall(libc::SYS_close_range, 5u32, u32::MAX, 0u32);
        if kill < 0 {
            libc::close(4);
        }
        // Our own network namespace, to come back to after a request made
        // in another (-1: we cannot, and refuse such requests).
        let home = libc::open(c"/proc/self/ns/net".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        loop {
            let mut req = [0u8; REQUEST_LEN];
            let (n, netns) = recv_with_fd(chan, &mut req);
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            if n != REQUEST_LEN as isize {
                // The supervisor is gone (or done): so is every process of the cgroup.
                if kill >= 0 {
                    libc::write(kill, b"1".as_ptr().cast(), 1);
                }
                libc::_exit(0);
            }
            let [family, kind, protocol] = decode_request(&req);
            let mut fd = -1;
            // > 0: socket()'s errno (the caller's answer); < 0: ours (setns).
            let code: i32 = match netns {
                Some(_) if home < 0 => -libc::EPERM,
                Some(ns) if libc::setns(ns, libc::CLONE_NEWNET) != 0 => -*libc::__errno_location(),
                _ => {
                    fd = libc::socket(family, kind | libc::SOCK_CLOEXEC, protocol);
                    if fd < 0 {
                        *libc::__errno_location()
                    } else {
                        0
                    }
                }
            };
            let strayed = netns.is_some() && code >= 0 && libc::setns(home, libc::CLONE_NEWNET) != 0;
            if let Some(ns) = netns {
                libc::close(ns);
            }
            send_with_fd(chan, &code.to_ne_bytes(), fd);
            if fd >= 0 {
                libc::close(fd);
            }
            if strayed {
                // Stuck in another namespace: serve nothing more.
                libc::_exit(1);
            }
        }
    }
}

/// Sends `data`, and `fd` as `SCM_RIGHTS` when it is one; `sendmsg`'s result.
unsafe fn send_with_fd(chan: libc::c_int, data: &[u8], fd: libc::c_int) -> isize {
    // SAFETY: a msghdr over live locals; the control buffer is aligned (u64)
    // and big enough for one fd (CMSG_SPACE(4) = 24).
    unsafe {
        let mut iov = libc::iovec { iov_base: data.as_ptr().cast_mut().cast(), iov_len: data.len() };
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
        libc::sendmsg(chan, &msg, libc::MSG_NOSIGNAL)
    }
}

/// Receives into `buf`, with at most one fd (`SCM_RIGHTS`, close-on-exec;
/// any more are closed); `recvmsg`'s result and the fd.
unsafe fn recv_with_fd(chan: libc::c_int, buf: &mut [u8]) -> (isize, Option<libc::c_int>) {
    // SAFETY: a msghdr over live locals; the control buffer is aligned (u64)
    // and holds a few fds; each fd the kernel wrote into it is ours.
    unsafe {
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let mut control = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = libc::recvmsg(chan, &mut msg, libc::MSG_CMSG_CLOEXEC);
        let mut fd = None;
        let mut cmsg = if n < 0 { std::ptr::null_mut() } else { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..count {
                    let mut raw: libc::c_int = -1;
                    std::ptr::copy_nonoverlapping(
                        libc::CMSG_DATA(cmsg).add(4 * i),
                        (&mut raw as *mut libc::c_int).cast(),
                        4,
                    );
                    match fd {
                        None => fd = Some(raw),
                        Some(_) => {
                            libc::close(raw);
                        }
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        (n, fd)
    }
}

/// A request: family, type (with `SOCK_NONBLOCK`, never `SOCK_CLOEXEC`: the
/// fd flag is the installer's) and protocol, native-endian `int`s.
const REQUEST_LEN: usize = 12;

fn encode_request(family: i32, kind: i32, protocol: i32) -> [u8; REQUEST_LEN] {
    let mut req = [0u8; REQUEST_LEN];
    for (chunk, v) in req.chunks_exact_mut(4).zip([family, kind, protocol]) {
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    req
}

fn decode_request(req: &[u8; REQUEST_LEN]) -> [i32; 3] {
    let int = |i: usize| i32::from_ne_bytes([req[i], req[i + 1], req[i + 2], req[i + 3]]);
    [int(0), int(4), int(8)]
}

/// Our end of the channel.
pub struct Maker {
    /// `None` once closed ([`Maker::close`]): the maker sees end of file and exits.
    chan: Mutex<Option<OwnedFd>>,
}

impl Maker {
    pub fn new(chan: OwnedFd) -> Maker {
        Maker { chan: Mutex::new(Some(chan)) }
    }

    /// Ends the maker (it leaves the program's cgroup, which can then go).
    pub fn close(&self) {
        self.chan.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    }

    /// A new TCP socket of `family` in the program's namespace. Blocking
    /// (one round trip to the maker): call it off the runtime's threads.
    pub fn make(&self, v6: bool) -> std::io::Result<OwnedFd> {
        let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        self.make_socket(family, libc::SOCK_STREAM, libc::IPPROTO_TCP, None)?
            .map_err(std::io::Error::from_raw_os_error)
    }

    /// A new socket of `family`, `kind` (a type, with `SOCK_NONBLOCK` if
    /// wanted) and `protocol`, made in the network namespace `netns` when one
    /// is given (else the maker's), checked to be the socket asked for
    /// (whatever the process on the other end did). The maker's own `socket()`
    /// failing is `Ok(Err(errno))`, the kernel's answer for the caller; a
    /// channel that fails, a namespace the maker cannot enter, or a socket
    /// that is not the one asked for, is `Err`. Blocking (one round trip).
    pub fn make_socket(
        &self,
        family: i32,
        kind: i32,
        protocol: i32,
        netns: Option<BorrowedFd<'_>>,
    ) -> std::io::Result<Result<OwnedFd, i32>> {
        let chan = self.chan.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(chan) = chan.as_ref() else {
            return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the socket maker is closed"));
        };
        let chan = chan.as_raw_fd();
        let req = encode_request(family, kind, protocol);
        let ns = netns.map_or(-1, |fd| fd.as_raw_fd());
        // SAFETY: our own channel fd, live buffers.
        if unsafe { send_with_fd(chan, &req, ns) } != REQUEST_LEN as isize {
            return Err(std::io::Error::last_os_error());
        }
        let mut data = [0u8; 4];
        // SAFETY: our own channel fd, a live buffer; a received fd is ours.
        let (n, fd) = unsafe { recv_with_fd(chan, &mut data) };
        // SAFETY: the kernel installed it for us just now; nobody else owns it.
        let fd = fd.map(|raw| unsafe { OwnedFd::from_raw_fd(raw) });
        if n != 4 {
            return Err(if n < 0 {
                std::io::Error::last_os_error()
            } else {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the socket maker is gone")
            });
        }
        match (i32::from_ne_bytes(data), fd) {
            (code, _) if code < 0 => Err(std::io::Error::from_raw_os_error(-code)),
            (code, _) if code > 0 => Ok(Err(code)),
            (_, Some(fd)) => check_socket(fd, family, kind, protocol).map(Ok),
            (_, None) => Err(std::io::Error::from_raw_os_error(libc::EPROTO)),
        }
    }
}

/// What came back must be a socket of the family, type and (when one was
/// named) protocol asked for: never another kind of socket, whatever the
/// process on the other end did.
fn check_socket(fd: OwnedFd, family: i32, kind: i32, protocol: i32) -> std::io::Result<OwnedFd> {
    let int = |opt| {
        crate::supervisor::sys::getsockopt_int(fd.as_fd(), libc::SOL_SOCKET, opt)
            .map_err(std::io::Error::from_raw_os_error)
    };
    if int(libc::SO_DOMAIN)? != family
        || int(libc::SO_TYPE)? != kind & crate::net::socket::SOCK_TYPE_MASK
        || (protocol != 0 && int(libc::SO_PROTOCOL)? != protocol)
    {
        return Err(std::io::Error::from_raw_os_error(libc::EPROTO));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let req = encode_request(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, libc::IPPROTO_UDP);
        assert_eq!(
            decode_request(&req),
            [libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, libc::IPPROTO_UDP]
        );
    }

    /// A maker of our own (a forked child of the test process) makes what it
    /// is asked, checked; the maker's refusal comes back as the kernel's errno.
    #[test]
    fn makes_the_socket_asked_for() {
        let (ours, theirs) = channel().unwrap();
        // SAFETY: the test process forks; the maker's branch only makes raw
        // system calls (`serve`), and the intermediate process exits at once.
        let started = unsafe { spawn(ours.as_raw_fd(), theirs.as_raw_fd(), -1) };
        assert_eq!(started, Ok(()));
        drop(theirs);
        let maker = Maker::new(ours);
        let udp = maker
            .make_socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0, None)
            .unwrap()
            .unwrap();
        assert!(crate::supervisor::sys::is_nonblocking(std::os::fd::AsFd::as_fd(&udp)).unwrap());
        let unix = maker.make_socket(libc::AF_UNIX, libc::SOCK_STREAM, 0, None).unwrap().unwrap();
        drop((udp, unix));
        assert!(maker.make(true).is_ok());
        let refused = maker.make_socket(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_UDP, None).unwrap();
        assert_eq!(refused.err(), Some(libc::EPROTONOSUPPORT));
        // In another network namespace (as root: the maker, root too, may enter it).
        if nix::unistd::geteuid().is_root() {
            let mut other =
                std::process::Command::new("unshare").args(["-n", "sleep", "30"]).spawn().unwrap();
            let ours_ns = std::fs::metadata("/proc/self/ns/net").unwrap();
            let mut ns = None;
            for _ in 0..200 {
                let path = format!("/proc/{}/ns/net", other.id());
                if std::fs::metadata(&path).is_ok_and(|m| {
                    std::os::unix::fs::MetadataExt::ino(&m) != std::os::unix::fs::MetadataExt::ino(&ours_ns)
                }) {
                    ns = Some(std::fs::File::open(path).unwrap());
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let ns = ns.expect("unshare -n made no network namespace");
            let cookie = |fd: std::os::fd::BorrowedFd<'_>| {
                let mut v = 0u64;
                let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
                // SAFETY: getsockopt into a live u64 of the length given.
                let r = unsafe {
                    libc::getsockopt(
                        fd.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_NETNS_COOKIE,
                        (&mut v as *mut u64).cast(),
                        &mut len,
                    )
                };
                assert_eq!(r, 0, "SO_NETNS_COOKIE");
                v
            };
            let there = maker
                .make_socket(libc::AF_INET, libc::SOCK_DGRAM, 0, Some(std::os::fd::AsFd::as_fd(&ns)))
                .unwrap()
                .unwrap();
            let here = maker.make_socket(libc::AF_INET, libc::SOCK_DGRAM, 0, None).unwrap().unwrap();
            let mine = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            assert_eq!(
                cookie(std::os::fd::AsFd::as_fd(&here)),
                cookie(std::os::fd::AsFd::as_fd(&mine)),
                "the maker came back home"
            );
            assert_ne!(
                cookie(std::os::fd::AsFd::as_fd(&there)),
                cookie(std::os::fd::AsFd::as_fd(&mine)),
                "not made in the other namespace"
            );
            let _ = other.kill();
            let _ = other.wait();
        } else {
            crate::testing::skipped("the other-namespace half needs root");
        }
        maker.close();
        assert_eq!(maker.make(false).unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
    }
}
