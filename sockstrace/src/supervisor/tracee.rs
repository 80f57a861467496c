//! Access to the calling thread: its memory, its file descriptors, who it is.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use super::sys::{self, Errno};
use crate::net::socket::SocketFacts;
use crate::report::ProcessInfo;

/// Why a handler could not reach a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The caller's own mistake (bad fd, bad pointer, bad length): the call
    /// fails with the errno the kernel would have given.
    Caller(Errno),
    /// The caller died or left the call; there is nobody to answer.
    Gone,
    /// Our own machinery failed: fail closed (deny and report).
    Check(Errno),
}

/// Maps an errno from reading the caller's memory.
fn memory_failure(e: Errno) -> Failure {
    match e {
        libc::EFAULT => Failure::Caller(libc::EFAULT),
        libc::ESRCH => Failure::Gone,
        e => Failure::Check(e),
    }
}

/// The thread whose call we are deciding.
pub struct Tracee {
    pub tid: u32,
    pidfd: Arc<OwnedFd>,
    /// Whether `pidfd` came from the cache (and may belong to an exited thread).
    cached: bool,
    cache: Arc<PidfdCache>,
}

/// Thread pidfds kept between calls: opening one for every call costs two
/// system calls (open, close). A cached pidfd of a thread that has exited
/// fails with `ESRCH`, even if a new thread has its tid now; then a fresh
/// one is opened.
#[derive(Default)]
pub struct PidfdCache {
    map: Mutex<HashMap<u32, Arc<OwnedFd>>>,
}

/// Entries kept before the cache starts over (exited threads leave theirs).
const PIDFD_CACHE_MAX: usize = 4096;

impl PidfdCache {
    fn cached(&self, tid: u32) -> Option<Arc<OwnedFd>> {
        self.map.lock().ok()?.get(&tid).cloned()
    }

    fn open(&self, tid: u32) -> Result<Arc<OwnedFd>, Failure> {
        let pidfd = match sys::pidfd_open_thread(tid) {
            Ok(pidfd) => Arc::new(pidfd),
            Err(libc::ESRCH) => return Err(Failure::Gone),
            Err(e) => return Err(Failure::Check(e)),
        };
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= PIDFD_CACHE_MAX {
                map.clear();
            }
            map.insert(tid, pidfd.clone());
        }
        Ok(pidfd)
    }
}

/// A duplicate of the caller's socket and what the kernel says it is.
pub struct Socket {
    pub fd: OwnedFd,
    pub facts: SocketFacts,
}

impl Socket {
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn cookie(&self) -> Option<u64> {
        sys::socket_cookie(self.fd.as_fd()).ok()
    }
}

impl Tracee {
    pub fn open(tid: u32, cache: &Arc<PidfdCache>) -> Result<Self, Failure> {
        let (pidfd, cached) = match cache.cached(tid) {
            Some(pidfd) => (pidfd, true),
            None => (cache.open(tid)?, false),
        };
        Ok(Tracee { tid, pidfd, cached, cache: cache.clone() })
    }

    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Copies `len` bytes of the caller's memory.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Failure> {
        sys::read_process_memory(self.tid, addr, len).map_err(memory_failure)
    }

    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), Failure> {
        sys::write_process_memory(self.tid, addr, data).map_err(memory_failure)
    }

    /// Duplicates the caller's fd `raw` (an argument register) and reads the
    /// socket's family, type and protocol from our duplicate.
    pub fn socket(&mut self, raw: u64) -> Result<Socket, Failure> {
        let fd_num = i32::try_from(raw as i64).map_err(|_| Failure::Caller(libc::EBADF))?;
        if fd_num < 0 {
            return Err(Failure::Caller(libc::EBADF));
        }
        let mut got = sys::pidfd_getfd(self.pidfd.as_fd(), fd_num);
        if matches!(got, Err(libc::ESRCH)) && self.cached {
            // The cached pidfd was of an earlier thread with this tid.
            self.pidfd = self.cache.open(self.tid)?;
            self.cached = false;
            got = sys::pidfd_getfd(self.pidfd.as_fd(), fd_num);
        }
        let fd = got.map_err(|e| match e {
            libc::EBADF => Failure::Caller(libc::EBADF),
            libc::ESRCH => Failure::Gone,
            e => Failure::Check(e),
        })?;
        let opt = |name| {
            sys::getsockopt_int(fd.as_fd(), libc::SOL_SOCKET, name).map_err(|e| match e {
                libc::ENOTSOCK => Failure::Caller(libc::ENOTSOCK),
                e => Failure::Check(e),
            })
        };
        let facts = SocketFacts {
            family: opt(libc::SO_DOMAIN)?,
            sock_type: opt(libc::SO_TYPE)?,
            protocol: opt(libc::SO_PROTOCOL)?,
        };
        Ok(Socket { fd, facts })
    }

    /// Who the caller is. Best effort: missing pieces stay `None`.
    pub fn process_info(&self) -> ProcessInfo {
        crate::procfs::process_info(self.tid)
    }

    /// How many threads the caller's process has (`None` if unreadable).
    pub fn thread_count(&self) -> Option<u32> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.tid)).ok()?;
        crate::procfs::status_field(&status, "Threads:")?.trim().parse().ok()
    }

    /// Whether the caller holds `CAP_NET_BIND_SERVICE` in its effective set.
    pub fn can_bind_privileged(&self) -> bool {
        const CAP_NET_BIND_SERVICE: u32 = 10;
        self.has_capability(CAP_NET_BIND_SERVICE)
    }

    /// Whether the caller holds `CAP_NET_RAW` (raw and packet sockets).
    pub fn can_open_raw_sockets(&self) -> bool {
        const CAP_NET_RAW: u32 = 13;
        self.has_capability(CAP_NET_RAW)
    }

    /// Whether the caller's effective set holds capability `cap`; unreadable
    /// counts as held (the cautious answer for every caller of this).
    fn has_capability(&self, cap: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{}/status", self.tid))
            .ok()
            .and_then(|s| crate::procfs::status_field(&s, "CapEff:").map(|v| v.trim().to_owned()))
            .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
            .is_none_or(|caps| caps & (1 << cap) != 0)
    }
}
