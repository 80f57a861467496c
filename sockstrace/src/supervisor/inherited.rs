//! Sockets the program inherits from whoever started sockstrace.
//!
//! The kernel layer's hooks are attached to the run's cgroup, and the kernel runs a cgroup's
//! socket hooks for the sockets *made* in it: a socket made before the run (a shell's
//! `exec 3<>/dev/udp/...`, a service manager's socket activation) is judged by none of them. The
//! fast path (see `supervisor::fast_path_otherwise`) lets the kernel send an allowed datagram on
//! the address it reads after our decision, trusting those hooks with any address the program
//! swaps in meanwhile; on an inherited socket nothing would judge it. So a program that starts
//! with an inet socket gets no fast path: every datagram with an address is sent by us, on our
//! copy of it.

use std::os::fd::{BorrowedFd, RawFd};

use super::sys;

/// What the program inherits that keeps the fast path off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inherited {
    /// No inet socket: every inet socket it will use is made in its cgroup.
    Nothing,
    /// An inet socket at this fd number (the lowest).
    InetSocket(RawFd),
    /// Our fd table could not be read: taken as an inet socket (fail closed).
    Unknown,
}

impl Inherited {
    pub fn keeps_fast_path_off(self) -> bool {
        self != Inherited::Nothing
    }

    /// Why the fast path is off, for the layers line.
    pub fn describe(self) -> Option<String> {
        match self {
            Inherited::Nothing => None,
            Inherited::InetSocket(fd) => Some(format!(
                "allowed datagrams sent by us: the program inherits an inet socket (fd {fd}), made \
                 outside its cgroup, where the kernel layer's hooks do not run"
            )),
            Inherited::Unknown => Some(
                "allowed datagrams sent by us: the program may inherit an inet socket (our fd table \
                 could not be read)"
                    .to_string(),
            ),
        }
    }
}

/// Our descriptors that a program started now inherits (not close-on-exec), judged: the lowest
/// inet socket among them, if any. Every descriptor sockstrace opens itself is close-on-exec, so
/// these are the ones we were started with.
pub fn inet_sockets() -> Inherited {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return Inherited::Unknown };
    let mut lowest: Option<RawFd> = None;
    for entry in entries {
        let Ok(entry) = entry else { return Inherited::Unknown };
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else {
            return Inherited::Unknown;
        };
        if is_inherited_inet_socket(fd) && lowest.is_none_or(|l| fd < l) {
            lowest = Some(fd);
        }
    }
    lowest.map_or(Inherited::Nothing, Inherited::InetSocket)
}

/// Whether `fd`, one of ours, is an inet socket that is not close-on-exec. An fd that is gone
/// (the directory's own, closed once read) is none.
fn is_inherited_inet_socket(fd: RawFd) -> bool {
    // SAFETY: fcntl(F_GETFD) reads no memory; a closed fd number answers EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 || flags & libc::FD_CLOEXEC != 0 {
        return false;
    }
    // SAFETY: `fd` is open (F_GETFD just said so) and stays so for this call: nothing else in
    // this process closes descriptors it did not open itself.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    matches!(sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN), Ok(libc::AF_INET | libc::AF_INET6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

    /// Clears close-on-exec on `fd`, as a shell's redirection leaves it.
    fn inheritable(fd: &OwnedFd) {
        // SAFETY: F_SETFD on an fd we own.
        assert_eq!(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) }, 0);
    }

    fn socket(family: i32, kind: i32) -> OwnedFd {
        // SAFETY: socket() takes no memory; a valid fd is ours to own.
        let fd = unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0);
        // SAFETY: just made, owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    #[test]
    fn an_inet_socket_without_close_on_exec_is_found_and_others_are_not() {
        // Other tests of this process may hold inheritable sockets of their own for a moment:
        // judge the descriptors of this test alone.
        let udp = socket(libc::AF_INET, libc::SOCK_DGRAM);
        let tcp6 = socket(libc::AF_INET6, libc::SOCK_STREAM);
        let unix = socket(libc::AF_UNIX, libc::SOCK_DGRAM);
        for fd in [&udp, &tcp6, &unix] {
            assert!(!is_inherited_inet_socket(fd.as_raw_fd()), "close-on-exec: not inherited");
        }
        for fd in [&udp, &tcp6, &unix] {
            inheritable(fd);
        }
        assert!(is_inherited_inet_socket(udp.as_raw_fd()));
        assert!(is_inherited_inet_socket(tcp6.as_raw_fd()));
        assert!(!is_inherited_inet_socket(unix.as_raw_fd()), "unix sockets stay local");
        let lowest = udp.as_raw_fd().min(tcp6.as_raw_fd());
        assert!(matches!(inet_sockets(), Inherited::InetSocket(fd) if fd <= lowest));
    }

    #[test]
    fn only_nothing_leaves_the_fast_path_on() {
        assert!(!Inherited::Nothing.keeps_fast_path_off());
        assert!(Inherited::InetSocket(3).keeps_fast_path_off());
        assert!(Inherited::Unknown.keeps_fast_path_off(), "fails closed");
        assert!(Inherited::InetSocket(3).describe().unwrap().contains("inherits an inet socket (fd 3)"));
        assert!(Inherited::Unknown.describe().unwrap().contains("inherit an inet socket"));
        assert_eq!(Inherited::Nothing.describe(), None);
    }
}
