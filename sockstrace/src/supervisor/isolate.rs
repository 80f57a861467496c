//! `run --isolate-network`: the program in a network namespace of its own,
//! holding only loopback, where sockstrace's forwarders are its only way out.
//!
//! Built before fork ([`Isolation::prepare`]); the child, between fork and
//! exec, makes only raw system calls ([`Isolation::child_enter`]):
//! - as root, first a mount namespace where `/proc/sys`, `/sys` and
//!   `/proc/sysrq-trigger` are read-only binds ([`read_only_mounts`]), and
//!   after the user namespace another one, owned by it, which locks them;
//! - `unshare(CLONE_NEWUSER)`: without root, with its own one-line uid/gid
//!   maps (the caller's ids mapped to themselves, written to
//!   `/proc/self/*_map`); as root, with the full identity map
//!   (`0 0 4294967295`), which only a writer with `CAP_SETUID` in the parent
//!   namespace may write: the parent writes it ([`map_whole`]) while the child
//!   waits. Root inside keeps its file access (every owner is mapped) but holds
//!   no capability over the host's namespaces and processes: the kernel
//!   refuses ptrace-mode access (`ptrace`, `process_vm_writev`,
//!   `pidfd_getfd`, opening `/proc/PID/ns/*`) to a process of another user
//!   namespace without `CAP_SYS_PTRACE` there, and `setns` into the host's
//!   network namespace needs `CAP_SYS_ADMIN` in the initial one;
//! - `unshare(CLONE_NEWNET)`, then `lo` up (`SIOCSIFFLAGS`);
//! - each forwarded address that is not loopback is added to `lo`
//!   (`SIOCSIFADDR`, a /32 or /128);
//! - a listening TCP socket (close-on-exec) on each forwarded address, whose fd
//!   number goes to the parent, which takes it with `pidfd_getfd`.
//!
//!   Allowed single destinations get a UDP socket too ([`udp`]);
//! - a listening abstract unix socket for each bridged name ([`abstract_unix`]);
//! - with inbound connections allowed, a socket maker: a process left in the
//!   program's namespace that makes TCP sockets there for the supervisor
//!   ([`inbound`], [`super::maker`]).
//!
//! The parent relays each connection accepted on those listeners to the same
//! address in its own (the host's) namespace ([`forward`]). The supervisor
//! performs allowed connects on its duplicates of the program's sockets, which
//! live in the program's namespace: a connect to the proxy is a plain loopback
//! connect there, answered by the forwarder.

pub mod abstract_unix;
pub mod forward;
pub mod inbound;
pub mod udp;

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use super::maker;
use crate::policy::{AllowRule, Incoming, Policy};

/// Why the child could not isolate itself: the step, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    UserNamespace = 1,
    IdMap = 2,
    NetNamespace = 3,
    Loopback = 4,
    Address = 5,
    Listener = 6,
    Bridge = 7,
    Maker = 8,
    ReadOnly = 9,
    LockMounts = 10,
}

impl Step {
    pub fn from_code(code: i32) -> Option<Step> {
        Some(match code {
            1 => Step::UserNamespace,
            2 => Step::IdMap,
            3 => Step::NetNamespace,
            4 => Step::Loopback,
            5 => Step::Address,
            6 => Step::Listener,
            7 => Step::Bridge,
            8 => Step::Maker,
            9 => Step::ReadOnly,
            10 => Step::LockMounts,
            _ => return None,
        })
    }

    pub fn describe(self) -> &'static str {
        match self {
            Step::UserNamespace => "creating a user namespace (unprivileged user namespaces may be disabled here: see `sockstrace doctor`)",
            Step::IdMap => "writing the user namespace's uid/gid map",
            Step::NetNamespace => "creating a network namespace",
            Step::Loopback => "bringing up lo in the program's network namespace",
            Step::Address => "adding a forwarded address to lo in the program's network namespace",
            Step::Listener => "listening on a forwarded address in the program's network namespace",
            Step::Bridge => "listening on a bridged abstract unix socket in the program's network namespace",
            Step::Maker => "starting the socket maker in the program's network namespace",
            Step::ReadOnly => "making /proc/sys, /sys and /proc/sysrq-trigger read-only in a mount namespace of the program's",
            Step::LockMounts => "locking the read-only mounts in a mount namespace of the program's user namespace",
        }
    }
}

/// Packs a failed step and its errno into one message value.
pub fn pack_failure(step: Step, errno: i32) -> i32 {
    ((step as i32) << 16) | (errno & 0xffff)
}

/// The step and errno of a packed failure.
pub fn unpack_failure(value: i32) -> (Option<Step>, i32) {
    (Step::from_code(value >> 16), value & 0xffff)
}

/// One way out: a socket the child makes on `inside` in the program's
/// namespace, relayed to `outside` in the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub inside: SocketAddr,
    pub outside: SocketAddr,
    /// A datagram relay (an allowed UDP destination, the `--dns proxy`
    /// resolver) rather than TCP.
    pub udp: bool,
}

impl Forward {
    /// TCP to the same address on both sides.
    pub fn tcp(addr: SocketAddr) -> Forward {
        Forward { inside: addr, outside: addr, udp: false }
    }

    /// UDP to the same address on both sides.
    pub fn udp(addr: SocketAddr) -> Forward {
        Forward { inside: addr, outside: addr, udp: true }
    }
}

/// The ways out of the program's namespace, decided before fork.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub forwards: Vec<Forward>,
    /// Abstract unix socket names (without the leading NUL) bridged to the
    /// host's namespace.
    pub bridges: Vec<Vec<u8>>,
    /// Listeners the program opens are reachable from the host
    /// (`--incoming allow`, `--allow-incoming-from`).
    pub inbound: bool,
}

impl Plan {
    /// Every proxy (TCP) and every allowed single address with a port (TCP
    /// and UDP: an `--allow` rule names no protocol); `dns`, the resolver's
    /// own forwards, replace plain ones to its address. What cannot be
    /// forwarded is returned apart, for a warning.
    pub fn new(policy: &Policy, dns: &[Forward], bridges: Vec<Vec<u8>>) -> (Plan, Vec<String>) {
        let (targets, unreachable) = forwarded(policy);
        let mut forwards: Vec<Forward> = Vec::new();
        let proxies: Vec<SocketAddr> = policy.proxies.iter().chain(&policy.http_proxies).copied().collect();
        for t in targets.into_iter().filter(|t| !dns.iter().any(|d| d.inside == *t)) {
            forwards.push(Forward::tcp(t));
            if !proxies.contains(&t) {
                forwards.push(Forward::udp(t));
            }
        }
        forwards.extend_from_slice(dns);
        let inbound = policy.incoming == Incoming::Allow || !policy.incoming_from.is_empty();
        (Plan { forwards, bridges, inbound }, unreachable)
    }
}

/// The addresses the program reaches through forwarders: every proxy, and
/// every allowed single address with a port. What cannot be forwarded (a
/// network, a rule without a port) is returned apart, for a warning.
pub fn forwarded(policy: &Policy) -> (Vec<SocketAddr>, Vec<String>) {
    let mut out: Vec<SocketAddr> = Vec::new();
    let mut unreachable = Vec::new();
    for &addr in policy.proxies.iter().chain(&policy.http_proxies) {
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    for rule in &policy.allow {
        if let AllowRule::Net { net, port } = rule {
            match port {
                Some(port) if net.prefix_len() == net.max_prefix_len() => {
                    let addr = crate::net::sockaddr::normalize(SocketAddr::new(net.addr(), *port));
                    if !out.contains(&addr) {
                        out.push(addr);
                    }
                }
                _ => unreachable.push(match port {
                    Some(p) => format!("{net} port {p}"),
                    None => net.to_string(),
                }),
            }
        }
    }
    (out, unreachable)
}

/// One forwarded address or bridged name, encoded for the child.
struct Listen {
    family: libc::c_int,
    kind: libc::c_int,
    addr: libc::sockaddr_storage,
    len: libc::socklen_t,
    /// The address must be added to lo first (not loopback).
    add_to_lo: bool,
    /// `None` for an abstract unix name.
    ip: Option<IpAddr>,
}

/// The user namespace the child makes first, and who writes its maps.
enum IdMaps {
    /// Not root: the child writes these one-line maps itself (`setgroups`
    /// denied first).
    Own { uid_map: Vec<u8>, gid_map: Vec<u8> },
    /// Root: every id mapped to itself, written by the parent
    /// ([`map_whole`]); `setgroups` stays allowed (`run --user`).
    Whole,
}

/// The full identity map: every uid (gid) mapped to itself.
const WHOLE_MAP: &[u8] = b"0 0 4294967295\n";

/// As root, in the parent: writes the full identity map of the user namespace
/// `pid` just made (`uid_map`, then `gid_map`). Returns the errno.
pub fn map_whole(pid: libc::pid_t) -> Result<(), i32> {
    for name in ["uid_map", "gid_map"] {
        let path = std::ffi::CString::new(format!("/proc/{pid}/{name}")).map_err(|_| libc::EINVAL)?;
        // SAFETY: a NUL-terminated path and a live buffer.
        unsafe { write_file(&path, WHOLE_MAP)? };
    }
    Ok(())
}

/// Everything the child needs to isolate itself, built before fork.
pub struct Isolation {
    id_maps: IdMaps,
    /// The forwards', then the bridges' sockets.
    listens: Vec<Listen>,
    /// The ways out, in the order of the sockets the child sends (the
    /// bridges' follow).
    pub forwards: Vec<Forward>,
    pub bridges: Vec<Vec<u8>>,
    /// The socket maker's channel: (ours, the maker's), when inbound
    /// connections are forwarded.
    maker: Option<(OwnedFd, OwnedFd)>,
}

/// What [`Isolation::start`] started.
pub struct Started {
    /// For the layers line.
    pub description: String,
    /// What the forwarders still have to pass on, drained at the run's end.
    pub uploads: forward::Uploads,
    /// Forwards the program's listeners (inbound connections allowed).
    pub inbound: Option<Arc<inbound::Inbound>>,
}

/// Size of `struct ifreq`.
const IFREQ_SIZE: usize = 40;

/// `struct in6_ifreq`.
#[repr(C)]
struct In6Ifreq {
    addr: libc::in6_addr,
    prefixlen: u32,
    ifindex: libc::c_int,
}

impl Isolation {
    /// `root`: the user namespace maps every id to itself (the parent writes
    /// the maps); otherwise only the caller's ids (the child writes them).
    pub fn prepare(plan: Plan, root: bool) -> std::io::Result<Isolation> {
        let Plan { forwards, bridges, inbound } = plan;
        let id_maps = if root {
            IdMaps::Whole
        } else {
            let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
            IdMaps::Own {
                uid_map: format!("{uid} {uid} 1\n").into_bytes(),
                gid_map: format!("{gid} {gid} 1\n").into_bytes(),
            }
        };
        let mut added: Vec<IpAddr> = Vec::new();
        let listens = forwards
            .iter()
            .map(|f| {
                let t = f.inside;
                let bytes = crate::net::sockaddr::encode_inet(t);
                // SAFETY: sockaddr_storage is plain data; all zeroes is valid.
                let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
                let n = bytes.len().min(std::mem::size_of::<libc::sockaddr_storage>());
                // SAFETY: copies n <= size_of(addr) bytes into a live local.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), &mut addr as *mut _ as *mut u8, n) };
                // A TCP and a UDP forward to one address add it once.
                let add_to_lo = !t.ip().is_loopback() && !added.contains(&t.ip());
                if add_to_lo {
                    added.push(t.ip());
                }
                Listen {
                    family: if t.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 },
                    kind: if f.udp { libc::SOCK_DGRAM } else { libc::SOCK_STREAM },
                    addr,
                    len: n as libc::socklen_t,
                    add_to_lo,
                    ip: Some(t.ip()),
                }
            })
            .chain(bridges.iter().map(|name| {
                let (addr, len) = abstract_unix::sockaddr(name);
                Listen {
                    family: libc::AF_UNIX,
                    kind: libc::SOCK_STREAM,
                    addr,
                    len,
                    add_to_lo: false,
                    ip: None,
                }
            }))
            .collect();
        let maker = if inbound { Some(maker::channel()?) } else { None };
        Ok(Isolation { id_maps, listens, forwards, bridges, maker })
    }

    /// After the program started: relays every forward's and bridge's
    /// socket (`sockets`, in the order the child sent them; `None` for a
    /// forward left out) and, with inbound connections allowed, returns what
    /// forwards the program's listeners. `description` ends the layers line.
    pub fn start(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        mut sockets: Vec<Option<OwnedFd>>,
        root: bool,
        inspector: Option<crate::inspect::Handoff>,
    ) -> anyhow::Result<Started> {
        let bridged = sockets.split_off(self.forwards.len().min(sockets.len()));
        let listeners: Vec<(Forward, OwnedFd)> =
            self.forwards.iter().copied().zip(sockets).filter_map(|(f, fd)| Some((f, fd?))).collect();
        let mut shown: Vec<String> = listeners
            .iter()
            .map(|(f, _)| format!("{}{}", if f.udp { "udp " } else { "" }, f.inside))
            .collect();
        let uploads = forward::start(runtime, listeners, inspector)?;
        let bridges: Vec<(Vec<u8>, OwnedFd)> =
            self.bridges.iter().cloned().zip(bridged).filter_map(|(n, fd)| Some((n, fd?))).collect();
        shown.extend(bridges.iter().map(|(n, _)| format!("unix:@{}", String::from_utf8_lossy(n))));
        abstract_unix::start(runtime, bridges)?;
        let inbound = match self.maker.take() {
            Some((ours, theirs)) => {
                drop(theirs);
                shown.push("inbound listeners".into());
                Some(Arc::new(inbound::Inbound::new(runtime.handle().clone(), maker::Maker::new(ours))))
            }
            None => None,
        };
        let description = format!(
            "; network namespace of its own in a user namespace{} (forwarded: {})",
            if root { " (root mapped whole)" } else { "" },
            shown.join(", ")
        );
        Ok(Started { description, inbound, uploads })
    }

    /// In the child between fork and exec: isolates it and sends each
    /// forwarder listener's fd number with `send_listener`, in `forwards`
    /// order; -1 for an IPv6 loopback forward where the kernel has no IPv6
    /// (a default proxy `[::1]:9050` must not make isolation fail there).
    /// As root, `parent_maps` asks the parent to write the full identity map
    /// and waits until it did (`false`: it could not; the parent reports why).
    ///
    /// # Safety
    /// Only called in a freshly forked child: raw system calls on data built
    /// before fork, no allocation.
    pub unsafe fn child_enter(
        &self,
        send_listener: impl Fn(i32),
        parent_maps: impl Fn() -> bool,
    ) -> Result<(), (Step, i32)> {
        // SAFETY: this fn's contract: we are the freshly forked child, whose one thread takes
        // no lock (no allocation). Pointers go to data prepared before fork (`self`'s
        // paths and maps, fork's copy) or to live locals; fds are ones we just created.
        unsafe {
            let errno = || *libc::__errno_location();
            // As root, the program stays uid 0, which is all the kernel asks
            // of a writer of a global sysctl or a sysfs attribute: those go
            // read-only first, while we still may (see read_only_mounts).
            if matches!(self.id_maps, IdMaps::Whole) {
                read_only_mounts().map_err(|e| (Step::ReadOnly, e))?;
            }
            // The user namespace first: the network namespace made next is
            // owned by it, so the program's capabilities reach no further.
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                return Err((Step::UserNamespace, errno()));
            }
            match &self.id_maps {
                IdMaps::Own { uid_map, gid_map } => {
                    // setgroups must be denied before an unprivileged gid_map.
                    for (path, data) in [
                        (c"/proc/self/setgroups", &b"deny"[..]),
                        (c"/proc/self/uid_map", &uid_map[..]),
                        (c"/proc/self/gid_map", &gid_map[..]),
                    ] {
                        write_file(path, data).map_err(|e| (Step::IdMap, e))?;
                    }
                }
                // Only a writer with CAP_SETUID in the parent namespace may
                // map every id: ours would be judged with our new credentials.
                IdMaps::Whole => {
                    if !parent_maps() {
                        return Err((Step::IdMap, libc::EPERM));
                    }
                    // A copy of the mount tree owned by the less privileged
                    // user namespace: the kernel locks every mount in it
                    // (MNT_LOCKED, and the read-only flag), so the program
                    // can neither unmount the read-only binds to uncover what
                    // they cover nor remount them read-write.
                    if libc::unshare(libc::CLONE_NEWNS) != 0 {
                        return Err((Step::LockMounts, errno()));
                    }
                }
            }
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err((Step::NetNamespace, errno()));
            }
            let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if s < 0 {
                return Err((Step::Loopback, errno()));
            }
            let mut ifr = [0u8; IFREQ_SIZE];
            ifr[..2].copy_from_slice(b"lo");
            let up = libc::ioctl(s, libc::SIOCGIFFLAGS, ifr.as_mut_ptr()) == 0 && {
                let flags = i16::from_ne_bytes([ifr[16], ifr[17]]) | libc::IFF_UP as i16;
                ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
                libc::ioctl(s, libc::SIOCSIFFLAGS, ifr.as_ptr()) == 0
            };
            let up_errno = errno();
            if !up {
                libc::close(s);
                return Err((Step::Loopback, up_errno));
            }
            for (n, l) in self.listens.iter().enumerate().filter(|(_, l)| l.add_to_lo) {
                if let Err(e) = add_to_lo(s, n, l) {
                    libc::close(s);
                    return Err((Step::Address, e));
                }
            }
            libc::close(s);
            for l in &self.listens {
                let no_ipv6 = |e: i32| l.family == libc::AF_INET6 && !l.add_to_lo && is_no_ipv6(e);
                let fd = libc::socket(l.family, l.kind | libc::SOCK_CLOEXEC, 0);
                if fd < 0 && no_ipv6(errno()) {
                    send_listener(-1);
                    continue;
                }
                let step = if l.family == libc::AF_UNIX { Step::Bridge } else { Step::Listener };
                if fd < 0 {
                    return Err((step, errno()));
                }
                let one: libc::c_int = 1;
                let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_REUSEADDR,
                    (&one as *const libc::c_int).cast(),
                    len,
                );
                if l.family == libc::AF_INET6 {
                    libc::setsockopt(
                        fd,
                        libc::IPPROTO_IPV6,
                        libc::IPV6_V6ONLY,
                        (&one as *const libc::c_int).cast(),
                        len,
                    );
                }
                if libc::bind(fd, (&l.addr as *const libc::sockaddr_storage).cast(), l.len) != 0 {
                    let e = errno();
                    libc::close(fd);
                    if no_ipv6(e) {
                        send_listener(-1);
                        continue;
                    }
                    return Err((step, e));
                }
                if l.kind == libc::SOCK_STREAM && libc::listen(fd, 1024) != 0 {
                    return Err((step, errno()));
                }
                send_listener(fd);
            }
            if let Some((ours, theirs)) = &self.maker {
                maker::spawn(ours.as_raw_fd(), theirs.as_raw_fd(), -1).map_err(|e| (Step::Maker, e))?;
            }
            Ok(())
        }
    }
}

/// What the program gets read-only as root: each bound onto itself with every
/// mount below it.
const READ_ONLY: [&std::ffi::CStr; 3] = [c"/proc/sys", c"/sys", c"/proc/sysrq-trigger"];

/// `struct mount_attr` (`mount_setattr(2)`).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const AT_RECURSIVE: libc::c_int = 0x8000;

/// As root in the initial user namespace, in the child before its user
/// namespace: a mount namespace of its own, `/` recursively private (nothing
/// propagates to the host's), and each of [`READ_ONLY`] bound onto itself
/// (recursively) and made read-only, every mount below it too
/// (`mount_setattr(AT_RECURSIVE)`; on a kernel before 5.12 the top mount
/// only). A path that does not exist (no magic SysRq) is left out. The
/// mount namespace made after the user namespace locks them. Raw calls only.
///
/// # Safety
/// Only called in the freshly forked child.
unsafe fn read_only_mounts() -> Result<(), i32> {
    // SAFETY: raw system calls on static NUL-terminated paths and live locals.
    unsafe {
        let errno = || *libc::__errno_location();
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(errno());
        }
        let null = std::ptr::null();
        if libc::mount(null, c"/".as_ptr(), null, libc::MS_REC | libc::MS_PRIVATE, null.cast()) != 0 {
            return Err(errno());
        }
        for path in READ_ONLY {
            let p = path.as_ptr();
            if libc::mount(p, p, null, libc::MS_BIND | libc::MS_REC, null.cast()) != 0 {
                match errno() {
                    libc::ENOENT => continue,
                    e => return Err(e),
                }
            }
            let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
            let size = std::mem::size_of::<MountAttr>();
            if libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                p,
                AT_RECURSIVE,
                &attr as *const MountAttr,
                size,
            ) == 0
            {
                continue;
            }
            if errno() != libc::ENOSYS {
                return Err(errno());
            }
            // procfs and sysfs hold no set-id programs or devices to keep.
            let flags = libc::MS_BIND
                | libc::MS_REMOUNT
                | libc::MS_RDONLY
                | libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_NOEXEC;
            if libc::mount(null, p, null, flags, null.cast()) != 0 {
                return Err(errno());
            }
        }
        Ok(())
    }
}

/// The errors of a kernel without IPv6 (`ipv6.disable=1`: no family) or
/// with IPv6 disabled on lo (no `::1`).
fn is_no_ipv6(errno: i32) -> bool {
    errno == libc::EAFNOSUPPORT || errno == libc::EADDRNOTAVAIL
}

/// Writes `data` to `path` with raw calls. Async-signal-safe.
unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> Result<(), i32> {
    // SAFETY: a NUL-terminated path and a live buffer; the fd is ours.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(*libc::__errno_location());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let e = *libc::__errno_location();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(if n < 0 { e } else { libc::EIO });
        }
        Ok(())
    }
}

/// Adds a forwarded non-loopback address to lo: IPv4 as an alias `lo:N`
/// with a /32 mask, IPv6 as a /128. `s` is an AF_INET datagram socket.
unsafe fn add_to_lo(s: libc::c_int, n: usize, l: &Listen) -> Result<(), i32> {
    // SAFETY: ioctls on our own sockets with live, correctly sized structs.
    unsafe {
        let errno = || *libc::__errno_location();
        match l.ip {
            None => Ok(()),
            Some(IpAddr::V4(ip)) => {
                let mut ifr = [0u8; IFREQ_SIZE];
                // "lo:N" (N < 1000 here: one per forwarded address).
                let label = [
                    b'l',
                    b'o',
                    b':',
                    b'0' + (n / 100 % 10) as u8,
                    b'0' + (n / 10 % 10) as u8,
                    b'0' + (n % 10) as u8,
                ];
                ifr[..label.len()].copy_from_slice(&label);
                let sin = |ifr: &mut [u8; IFREQ_SIZE], a: [u8; 4]| {
                    ifr[16..18].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
                    ifr[20..24].copy_from_slice(&a);
                };
                sin(&mut ifr, ip.octets());
                if libc::ioctl(s, libc::SIOCSIFADDR, ifr.as_ptr()) != 0 {
                    return Err(errno());
                }
                sin(&mut ifr, [255; 4]);
                if libc::ioctl(s, libc::SIOCSIFNETMASK, ifr.as_ptr()) != 0 {
                    return Err(errno());
                }
                Ok(())
            }
            Some(IpAddr::V6(ip)) => {
                let s6 = libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
                if s6 < 0 {
                    return Err(errno());
                }
                let req =
                    In6Ifreq { addr: libc::in6_addr { s6_addr: ip.octets() }, prefixlen: 128, ifindex: 1 };
                let r = libc::ioctl(s6, libc::SIOCSIFADDR, &req as *const In6Ifreq);
                let e = errno();
                libc::close(s6);
                if r != 0 {
                    return Err(e);
                }
                Ok(())
            }
        }
    }
}

/// Whether this machine lets us create a user and a network namespace (for
/// `doctor`): tried in a forked child; `unprivileged`: as `nobody` when we are
/// root.
pub fn probe(unprivileged: bool) -> Result<(), String> {
    let (r, w) = super::sys::pipe_cloexec().map_err(|e| std::io::Error::from_raw_os_error(e).to_string())?;
    use std::os::fd::{AsFd, AsRawFd};
    // SAFETY: the child below only makes raw system calls on integers and a live local (no
    // lock, no allocation) and `_exit`s.
    let pid = unsafe { super::sys::fork() }.map_err(|e| std::io::Error::from_raw_os_error(e).to_string())?;
    if pid == 0 {
        // SAFETY: we are the forked child, with one thread: raw system calls with integer
        // arguments, and a 4-byte write from a live local to our pipe end; then `_exit`.
        unsafe {
            let mut code: i32 = 0;
            if unprivileged && libc::geteuid() == 0 && (libc::setgid(65534) != 0 || libc::setuid(65534) != 0)
            {
                code = -*libc::__errno_location();
            } else if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0 {
                code = *libc::__errno_location();
            }
            libc::write(w.as_raw_fd(), (&code as *const i32).cast(), 4);
            libc::_exit(0);
        }
    }
    drop(w);
    let mut code = [0u8; 4];
    let n = super::sys::read(r.as_fd(), &mut code);
    let _ = super::sys::wait_child(pid);
    match (n, i32::from_ne_bytes(code)) {
        (Ok(4), 0) => Ok(()),
        (Ok(4), c) if c < 0 => {
            Err(format!("cannot switch to nobody to try: {}", std::io::Error::from_raw_os_error(-c)))
        }
        (Ok(4), c) => Err(format!(
            "unshare(CLONE_NEWUSER|CLONE_NEWNET) refused: {}",
            std::io::Error::from_raw_os_error(c)
        )),
        _ => Err("the probe process died".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> Policy {
        Policy {
            proxies: vec!["127.0.0.1:9050".parse().unwrap(), "[::1]:9050".parse().unwrap()],
            allow: allow.iter().map(|a| a.parse().unwrap()).collect(),
            ..Policy::default()
        }
    }

    #[test]
    fn proxies_and_single_allowed_addresses_are_forwarded() {
        let (f, unreachable) = forwarded(&policy(&[
            "10.1.2.3:443",
            "127.0.0.2:80",
            "127.0.0.1:9050",
            "10.0.0.0/8:443",
            "192.0.2.1",
            "unix:/x",
        ]));
        let want: Vec<SocketAddr> = ["127.0.0.1:9050", "[::1]:9050", "10.1.2.3:443", "127.0.0.2:80"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(f, want);
        assert_eq!(unreachable, vec!["10.0.0.0/8 port 443".to_string(), "192.0.2.1/32".to_string()]);
    }

    #[test]
    fn allowed_destinations_are_forwarded_for_udp_too_and_proxies_for_tcp_only() {
        let dns = [Forward {
            inside: "127.77.1.2:53".parse().unwrap(),
            outside: "127.77.1.2:4000".parse().unwrap(),
            udp: true,
        }];
        let mut p = policy(&["127.0.0.2:7", "127.0.0.1:9050", "127.77.1.2:53"]);
        let (plan, _) = Plan::new(&p, &dns, vec![b"/tmp/.X11-unix/X0".to_vec()]);
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            plan.forwards,
            vec![
                Forward::tcp(a("127.0.0.1:9050")),
                Forward::tcp(a("[::1]:9050")),
                Forward::tcp(a("127.0.0.2:7")),
                Forward::udp(a("127.0.0.2:7")),
                dns[0]
            ]
        );
        assert_eq!(plan.bridges, vec![b"/tmp/.X11-unix/X0".to_vec()]);
        assert!(!plan.inbound);
        p.incoming_from.push("10.0.0.1/32".parse().unwrap());
        assert!(Plan::new(&p, &[], vec![]).0.inbound);
        p.incoming_from.clear();
        p.incoming = Incoming::Allow;
        assert!(Plan::new(&p, &[], vec![]).0.inbound);
    }

    #[test]
    fn failures_pack_and_unpack() {
        for step in [
            Step::UserNamespace,
            Step::IdMap,
            Step::NetNamespace,
            Step::Loopback,
            Step::Address,
            Step::Listener,
            Step::Bridge,
            Step::Maker,
            Step::ReadOnly,
            Step::LockMounts,
        ] {
            assert_eq!(unpack_failure(pack_failure(step, libc::ENOSPC)), (Some(step), libc::ENOSPC));
        }
        assert_eq!(unpack_failure(libc::EPERM).0, None);
    }
}
