//! The seccomp user-notification fd: receive, validate, respond.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::sys::{last_errno, Errno};

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct SeccompData {
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((b'!' as u64) << 8) | nr
}
const IOC_WRITE: u64 = 1;
const IOC_READ_WRITE: u64 = 3;
const NOTIF_RECV: u64 = ioc(IOC_READ_WRITE, 0, std::mem::size_of::<SeccompNotif>());
const NOTIF_SEND: u64 = ioc(IOC_READ_WRITE, 1, std::mem::size_of::<SeccompNotifResp>());
const NOTIF_ID_VALID: u64 = ioc(IOC_WRITE, 2, std::mem::size_of::<u64>());
const NOTIF_ADDFD: u64 = ioc(IOC_WRITE, 3, std::mem::size_of::<SeccompNotifAddfd>());
const NOTIF_SET_FLAGS: u64 = ioc(IOC_WRITE, 4, std::mem::size_of::<u64>());
const USER_NOTIF_FLAG_CONTINUE: u32 = 1;
const ADDFD_FLAG_SEND: u32 = 1 << 1;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct SeccompNotifAddfd {
    id: u64,
    flags: u32,
    srcfd: u32,
    newfd: u32,
    newfd_flags: u32,
}
const USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// Set in `nr` for x32 system calls.
pub const X32_SYSCALL_BIT: i32 = 0x4000_0000;

/// One trapped system call.
#[derive(Debug, Clone, Copy)]
pub struct Notification {
    pub id: u64,
    /// The calling thread, as a pid in our namespace.
    pub tid: u32,
    pub nr: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

/// The answer to a trapped call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The call returns this value (we performed it ourselves).
    Value(i64),
    /// The call fails with this errno.
    Errno(Errno),
    /// The kernel runs the call itself; only where its effect cannot depend on
    /// memory the tracee can still change.
    Continue,
    /// Already answered (with `add_fd_and_respond`).
    Answered,
}

pub struct Notifier {
    fd: OwnedFd,
}

impl AsRawFd for Notifier {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Notifier {
    pub fn new(fd: OwnedFd) -> Self {
        Notifier { fd }
    }

    /// Asks the kernel to wake the tracee on the responder's CPU (Linux 6.6+).
    pub fn enable_sync_wakeup(&self) -> bool {
        let flags = USER_NOTIF_FD_SYNC_WAKE_UP;
        // SAFETY: the ioctl takes the flags by value.
        unsafe { libc::ioctl(self.fd.as_raw_fd(), NOTIF_SET_FLAGS as _, flags) == 0 }
    }

    /// Whether every process under the filter is gone (the listener hung up).
    pub fn hung_up(&self) -> bool {
        self.poll_now(0) & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
    }

    /// Whether a trapped call waits to be received.
    pub fn pending(&self) -> bool {
        self.poll_now(libc::POLLIN) & libc::POLLIN != 0
    }

    /// The listener's poll events now (0 when poll fails).
    fn poll_now(&self, events: libc::c_short) -> libc::c_short {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events, revents: 0 };
        // SAFETY: one live pollfd, zero timeout.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        if n > 0 {
            pfd.revents
        } else {
            0
        }
    }

    /// Receives one notification. `ENOENT` means it vanished (the caller was
    /// killed) and is harmless.
    pub fn recv(&self) -> Result<Notification, Errno> {
        let mut raw = SeccompNotif::default();
        // SAFETY: raw is a zeroed SeccompNotif, the size the ioctl number encodes.
        let ret = unsafe { libc::ioctl(self.fd.as_raw_fd(), NOTIF_RECV as _, &mut raw as *mut SeccompNotif) };
        if ret < 0 {
            return Err(last_errno());
        }
        Ok(Notification {
            id: raw.id,
            tid: raw.pid,
            nr: raw.data.nr,
            arch: raw.data.arch,
            args: raw.data.args,
        })
    }

    /// Whether notification `id` is still waiting (its caller alive and in the
    /// call). Checked after reading the caller's memory, so the memory we read
    /// belonged to the caller and not to a recycled pid.
    pub fn id_valid(&self, id: u64) -> bool {
        let mut id = id;
        // SAFETY: the ioctl reads one u64 from a live local.
        unsafe { libc::ioctl(self.fd.as_raw_fd(), NOTIF_ID_VALID as _, &mut id as *mut u64) == 0 }
    }

    /// Installs a duplicate of `fd` in the caller's fd table and, in the same
    /// step, answers the call with its number (as accept would).
    pub fn add_fd_and_respond(
        &self,
        id: u64,
        fd: std::os::fd::BorrowedFd<'_>,
        cloexec: bool,
    ) -> Result<i64, Errno> {
        let mut addfd = SeccompNotifAddfd {
            id,
            flags: ADDFD_FLAG_SEND,
            srcfd: fd.as_raw_fd() as u32,
            newfd: 0,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        // SAFETY: addfd is a live SeccompNotifAddfd, the size the ioctl number encodes.
        let ret = unsafe {
            libc::ioctl(self.fd.as_raw_fd(), NOTIF_ADDFD as _, &mut addfd as *mut SeccompNotifAddfd)
        };
        if ret < 0 {
            Err(last_errno())
        } else {
            Ok(i64::from(ret))
        }
    }

    /// Answers notification `id`. `ENOENT` (caller gone) is not an error.
    pub fn respond(&self, id: u64, reply: Reply) -> Result<(), Errno> {
        let mut resp = SeccompNotifResp { id, ..Default::default() };
        match reply {
            Reply::Value(v) => resp.val = v,
            Reply::Errno(e) => resp.error = -e,
            Reply::Continue => resp.flags = USER_NOTIF_FLAG_CONTINUE,
            Reply::Answered => return Ok(()),
        }
        // SAFETY: resp is a live SeccompNotifResp, the size the ioctl number encodes.
        let ret =
            unsafe { libc::ioctl(self.fd.as_raw_fd(), NOTIF_SEND as _, &mut resp as *mut SeccompNotifResp) };
        match ret {
            0 => Ok(()),
            _ => match last_errno() {
                libc::ENOENT => Ok(()),
                e => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        assert_eq!(NOTIF_RECV, 0xc050_2100);
        assert_eq!(NOTIF_SEND, 0xc018_2101);
        assert_eq!(NOTIF_ID_VALID, 0x4008_2102);
        assert_eq!(NOTIF_SET_FLAGS, 0x4008_2104);
        assert_eq!(NOTIF_ADDFD, 0x4018_2103);
    }
}
