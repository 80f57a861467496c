//! Access to the calling thread: its memory, its file descriptors, who it is.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use super::sys::{self, Errno};
use crate::net::socket::SocketFacts;
use crate::report_writer::ProcessInfo;

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
    /// The call would wait on the reserve receiver, which must stay free to receive, and no
    /// thread can take the reserve's role (`receivers::step_down`): refused with `EAGAIN`.
    Busy,
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
    /// Whether a call on `pidfd` succeeded for this notification (so it is the caller's).
    pidfd_checked: bool,
    /// Whether the caller's exec mark (see `who`), read with its arguments, held.
    mark_held: std::cell::Cell<Option<bool>>,
    cache: Arc<TraceeCache>,
}

/// What is kept between calls, to spare system calls on every one:
/// - thread pidfds: opening one costs two calls (open, close). A cached pidfd
///   of a thread that has exited fails with `ESRCH`, even if a new thread has
///   its tid now; then a fresh one is opened;
/// - each socket's family, type and protocol, by socket cookie: they do not
///   change (but for `IPV6_ADDRFORM`, so IPv6 sockets are not kept), and a
///   cookie is never reused, so one `SO_COOKIE` read replaces three
///   `getsockopt` calls for a socket seen before;
/// - who each thread is, for its events (see `who`).
#[derive(Default)]
pub struct TraceeCache {
    pidfds: Mutex<HashMap<u32, Arc<OwnedFd>>>,
    sockets: Mutex<HashMap<u64, SocketFacts>>,
    identities: super::who::Identities,
}

/// Entries kept in each map before it starts over (exited threads and closed
/// sockets leave theirs).
const CACHE_MAX: usize = 4096;

/// Inserts into a bounded cache map, emptying it first when full.
pub(super) fn insert_bounded<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V) {
    if let Ok(mut map) = map.lock() {
        if map.len() >= CACHE_MAX {
            map.clear();
        }
        map.insert(key, value);
    }
}

impl TraceeCache {
    fn cached(&self, tid: u32) -> Option<Arc<OwnedFd>> {
        self.pidfds.lock().ok()?.get(&tid).cloned()
    }

    fn open(&self, tid: u32) -> Result<Arc<OwnedFd>, Failure> {
        let pidfd = match sys::pidfd_open_thread(tid) {
            Ok(pidfd) => Arc::new(pidfd),
            Err(libc::ESRCH) => return Err(Failure::Gone),
            Err(e) => return Err(Failure::Check(e)),
        };
        insert_bounded(&self.pidfds, tid, pidfd.clone());
        Ok(pidfd)
    }

    /// The family, type and protocol of socket `fd` (cookie `cookie`).
    fn socket_facts(&self, cookie: u64, fd: BorrowedFd<'_>) -> Result<SocketFacts, Errno> {
        if let Some(facts) = self.sockets.lock().ok().and_then(|map| map.get(&cookie).copied()) {
            return Ok(facts);
        }
        let facts = read_socket_facts(fd)?;
        // IPV6_ADDRFORM can turn an AF_INET6 socket into an AF_INET one: those
        // are asked every time.
        if facts.family != libc::AF_INET6 {
            insert_bounded(&self.sockets, cookie, facts);
        }
        Ok(facts)
    }
}

/// Asks the kernel for a socket's family, type and protocol.
fn read_socket_facts(fd: BorrowedFd<'_>) -> Result<SocketFacts, Errno> {
    let opt = |name| sys::getsockopt_int(fd, libc::SOL_SOCKET, name);
    Ok(SocketFacts {
        family: opt(libc::SO_DOMAIN)?,
        sock_type: opt(libc::SO_TYPE)?,
        protocol: opt(libc::SO_PROTOCOL)?,
    })
}

/// A socket errno from our duplicate: `ENOTSOCK` is the caller's mistake.
fn socket_failure(e: Errno) -> Failure {
    match e {
        libc::ENOTSOCK => Failure::Caller(libc::ENOTSOCK),
        e => Failure::Check(e),
    }
}

/// A duplicate of the caller's socket and what the kernel says it is.
pub struct Socket {
    pub fd: OwnedFd,
    pub facts: SocketFacts,
    /// `SO_COOKIE` (the socket's identity, which the eBPF programs see too),
    /// when already read.
    cookie: Option<u64>,
}

impl Socket {
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn cookie(&self) -> Option<u64> {
        self.cookie.or_else(|| sys::socket_cookie(self.fd.as_fd()).ok())
    }
}

impl Tracee {
    pub fn open(tid: u32, cache: &Arc<TraceeCache>) -> Result<Self, Failure> {
        let (pidfd, cached) = match cache.cached(tid) {
            Some(pidfd) => (pidfd, true),
            None => (cache.open(tid)?, false),
        };
        Ok(Tracee {
            tid,
            pidfd,
            cached,
            pidfd_checked: false,
            mark_held: std::cell::Cell::new(None),
            cache: cache.clone(),
        })
    }

    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Copies `len` bytes of the caller's memory.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Failure> {
        if let Some(read) = self.read_with_mark(&[(addr, len)]) {
            return read;
        }
        sys::read_process_memory(self.tid, addr, len).map_err(memory_failure)
    }

    /// Copies several regions of the caller's memory with one system call,
    /// one after the other into one buffer.
    pub fn read_regions(&self, regions: &[(u64, usize)]) -> Result<Vec<u8>, Failure> {
        if let Some(read) = self.read_with_mark(regions) {
            return read;
        }
        sys::read_process_memory_vectored(self.tid, regions).map_err(memory_failure)
    }

    /// When the caller's identity is kept, reads `regions` and its exec mark
    /// (last, so that a mark no longer mapped only shortens the read) in one
    /// call, and notes whether the mark held; `None` when there is no mark to
    /// read, or the regions are too many for one call.
    fn read_with_mark(&self, regions: &[(u64, usize)]) -> Option<Result<Vec<u8>, Failure>> {
        let mark = self.cache.identities.mark(self.tid, &self.pidfd)?;
        if self.mark_held.get().is_some() || regions.len() >= 64 {
            return None;
        }
        let mut all = regions.to_vec();
        all.push((mark.addr, mark.bytes.len()));
        let want: usize = regions.iter().map(|&(_, len)| len).sum();
        let (mut buf, n) = match sys::read_process_memory_upto(self.tid, &all) {
            Ok(read) => read,
            Err(e) => return Some(Err(memory_failure(e))),
        };
        if n < want {
            return Some(Err(Failure::Caller(libc::EFAULT)));
        }
        self.mark_held.set(Some(n == want + mark.bytes.len() && buf[want..] == mark.bytes));
        buf.truncate(want);
        Some(Ok(buf))
    }

    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), Failure> {
        sys::write_process_memory(self.tid, addr, data).map_err(memory_failure)
    }

    /// Duplicates the caller's fd `raw` (an argument register) and reads the
    /// socket's family, type and protocol from our duplicate.
    pub fn socket(&mut self, raw: u64) -> Result<Socket, Failure> {
        let fd = self.duplicate(raw)?;
        let facts = read_socket_facts(fd.as_fd()).map_err(socket_failure)?;
        Ok(Socket { fd, facts, cookie: None })
    }

    /// As [`Tracee::socket`], for calls that repeat on one socket (a UDP or
    /// QUIC flow sends thousands of datagrams): the facts come from the cache,
    /// by cookie, after the socket's first call.
    pub fn socket_seen_before(&mut self, raw: u64) -> Result<Socket, Failure> {
        let fd = self.duplicate(raw)?;
        let cookie = sys::socket_cookie(fd.as_fd()).map_err(socket_failure)?;
        let facts = self.cache.socket_facts(cookie, fd.as_fd()).map_err(socket_failure)?;
        Ok(Socket { fd, facts, cookie: Some(cookie) })
    }

    /// Our duplicate of the caller's fd `raw`.
    fn duplicate(&mut self, raw: u64) -> Result<OwnedFd, Failure> {
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
        self.pidfd_checked |= got.is_ok();
        got.map_err(|e| match e {
            libc::EBADF => Failure::Caller(libc::EBADF),
            libc::ESRCH => Failure::Gone,
            e => Failure::Check(e),
        })
    }

    /// Who the caller is (kept between its calls, see `who`), and whether /proc
    /// was read for it now. Best effort: missing pieces stay `None`.
    pub fn process_info(&self) -> (ProcessInfo, bool) {
        let proofs =
            super::who::Proofs { pidfd_checked: self.pidfd_checked, mark_held: self.mark_held.get() };
        self.cache.identities.read(self.tid, &self.pidfd, proofs)
    }

    /// Whether the caller may bind a port below `ip_unprivileged_port_start`
    /// when we bind for it with our own credentials: it holds
    /// `CAP_NET_BIND_SERVICE` in its effective set *and* lives in our own user
    /// namespace. `CapEff` is relative to the caller's user namespace: a
    /// program that made its own (`unshare(CLONE_NEWUSER)`, mapped to root)
    /// holds every capability there, but not over our network namespace,
    /// where the kernel would refuse it `EACCES`. (A program in its own user
    /// namespace then gets `EACCES` for a low port even in a network namespace
    /// it owns: the cautious answer.)
    pub fn can_bind_privileged(&self) -> bool {
        const CAP_NET_BIND_SERVICE: u32 = 10;
        self.shares_our_user_namespace() && self.has_capability(CAP_NET_BIND_SERVICE)
    }

    /// Whether the caller's user namespace is ours (unreadable: no).
    fn shares_our_user_namespace(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let id = |path: &str| std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        match (id(&format!("/proc/{}/ns/user", self.tid)), id("/proc/self/ns/user")) {
            (Some(theirs), Some(ours)) => theirs == ours,
            _ => false,
        }
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

/// Whether thread `tid` has a signal pending that it does not block (its own
/// or its process's), so that a call we hold it in should end with `EINTR`.
pub fn signal_pending(tid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{tid}/status")).is_ok_and(|s| pending_unblocked(&s))
}

/// [`signal_pending`] on the text of `/proc/TID/status`: a signal pending
/// for the thread or its process, neither blocked nor ignored (the same test
/// the interruption of performed calls makes).
fn pending_unblocked(status: &str) -> bool {
    super::interrupt::judge(status).is_some()
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    use super::{pending_unblocked, sys, TraceeCache};

    #[test]
    fn a_pending_signal_counts_unless_blocked_or_ignored() {
        let status = |pnd: &str, shd: &str, blk: &str, ign: &str| {
            format!("Name:\tx\nSigPnd:\t{pnd}\nShdPnd:\t{shd}\nSigBlk:\t{blk}\nSigIgn:\t{ign}\n")
        };
        let zero = "0000000000000000";
        assert!(!pending_unblocked(&status(zero, zero, zero, zero)));
        assert!(pending_unblocked(&status("0000000000000002", zero, zero, zero)));
        assert!(pending_unblocked(&status(zero, "0000000000004000", zero, zero)));
        assert!(!pending_unblocked(&status(zero, "0000000000004000", "0000000000004000", zero)));
        assert!(!pending_unblocked(&status("0000000000000002", zero, zero, "0000000000000002")));
        assert!(!pending_unblocked("garbage"));
    }

    #[test]
    fn socket_facts_are_kept_by_cookie_except_for_ipv6() {
        let cache = TraceeCache::default();
        let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let cookie = sys::socket_cookie(v4.as_fd()).unwrap();
        let facts = cache.socket_facts(cookie, v4.as_fd()).unwrap();
        assert_eq!((facts.family, facts.sock_type, facts.protocol), (libc::AF_INET, libc::SOCK_DGRAM, 17));
        assert_eq!(cache.sockets.lock().unwrap().get(&cookie), Some(&facts));

        let v6 = UdpSocket::bind("[::1]:0").unwrap();
        let cookie6 = sys::socket_cookie(v6.as_fd()).unwrap();
        assert_ne!(cookie6, cookie);
        assert_eq!(cache.socket_facts(cookie6, v6.as_fd()).unwrap().family, libc::AF_INET6);
        assert!(
            !cache.sockets.lock().unwrap().contains_key(&cookie6),
            "IPv6 facts may change (IPV6_ADDRFORM)"
        );
    }
}
