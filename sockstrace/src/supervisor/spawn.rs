//! Starting the traced program: fork, install the filter, hand the listener
//! to the supervisor, exec.
//!
//! Everything the child needs is prepared before `fork`; after it, the child
//! makes raw system calls only. The child cannot send the listener fd with
//! `sendmsg` (that call is trapped, and nobody serves it yet), so it writes the
//! fd's number into a pipe and the parent takes it with `pidfd_getfd`.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::filter::FilterProgram;
use super::sys::{self, Errno};
use crate::exit::Exit;

const SECCOMP_SET_MODE_FILTER: libc::c_long = 1;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_long = 1 << 3;
const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: libc::c_long = 1 << 5;

/// What the child tells the supervisor on the control pipe. On the wire a
/// message is `[tag, value]`, two native `i32`; the value is an fd number in
/// the child, an errno, or (`IsolateFailed`) an `isolate::pack_failure`.
/// The parent rejects tags it does not know ([`Message::from_wire`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
enum Tag {
    /// The filter is installed; value: the listener's fd (no killable wait).
    Listener = 1,
    /// `PR_SET_NO_NEW_PRIVS` failed; value: errno.
    NoNewPrivsFailed = 2,
    /// Installing a filter failed; value: errno.
    SeccompFailed = 3,
    /// `execve` failed (after the go byte); value: errno.
    ExecFailed = 4,
    /// The filter is installed with `WAIT_KILLABLE_RECV`; value: the listener's fd.
    ListenerKillable = 5,
    /// Joining the run's cgroup failed; value: errno.
    CgroupFailed = 6,
    /// The private `/etc/resolv.conf` failed; value: errno.
    ResolvConfFailed = 7,
    /// `landlock_restrict_self` failed (the program still runs, unfenced); value: errno.
    LandlockFailed = 8,
    /// `--user`: clearing the capability bounding set failed; value: errno.
    CapBsetFailed = 9,
    /// `--user`: clearing the ambient capabilities failed; value: errno.
    AmbientFailed = 10,
    /// `--user`: `setgroups` failed; value: errno.
    SetgroupsFailed = 11,
    /// `--user`: `setresgid` failed; value: errno.
    SetresgidFailed = 12,
    /// `--user`: `setresuid` failed; value: errno.
    SetresuidFailed = 13,
    /// `--user`: `capset` failed; value: errno.
    CapsetFailed = 14,
    /// `--isolate-network`: a step failed; value: `isolate::pack_failure`.
    IsolateFailed = 15,
    /// `--isolate-network`: a forwarder listener's fd number, in target order.
    ForwardListener = 16,
    /// `--isolate-network` as root: the child made its user namespace and waits
    /// on the go pipe for its full identity map (byte 1: written; 0: not).
    MapUserns = 17,
    /// The program's socket maker (`super::maker`) could not be started; value: errno.
    MakerFailed = 18,
    /// Giving the program its relayed stdout or stderr (`dup2`) failed; value: errno.
    StdioFailed = 19,
}

impl Tag {
    /// Every tag, for the wire decoding and its tests.
    const ALL: [Tag; 19] = [
        Tag::Listener,
        Tag::NoNewPrivsFailed,
        Tag::SeccompFailed,
        Tag::ExecFailed,
        Tag::ListenerKillable,
        Tag::CgroupFailed,
        Tag::ResolvConfFailed,
        Tag::LandlockFailed,
        Tag::CapBsetFailed,
        Tag::AmbientFailed,
        Tag::SetgroupsFailed,
        Tag::SetresgidFailed,
        Tag::SetresuidFailed,
        Tag::CapsetFailed,
        Tag::IsolateFailed,
        Tag::ForwardListener,
        Tag::MapUserns,
        Tag::MakerFailed,
        Tag::StdioFailed,
    ];

    /// The tag with wire value `raw`; `None` for anything else (fail closed).
    fn from_wire(raw: i32) -> Option<Tag> {
        Tag::ALL.into_iter().find(|tag| *tag as i32 == raw)
    }
}

/// One message on the control pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Message {
    tag: Tag,
    value: i32,
}

impl Message {
    /// Size of a message on the wire (small enough for one atomic pipe write).
    const WIRE_LEN: usize = 8;

    /// The wire bytes. Pure and allocation-free: the child calls it after fork.
    fn to_wire(self) -> [u8; Message::WIRE_LEN] {
        let mut buf = [0u8; Message::WIRE_LEN];
        buf[..4].copy_from_slice(&(self.tag as i32).to_ne_bytes());
        buf[4..].copy_from_slice(&self.value.to_ne_bytes());
        buf
    }

    /// The message in `buf`; an unknown tag is an error, never a guess.
    fn from_wire(buf: [u8; Message::WIRE_LEN]) -> Result<Message, SpawnError> {
        let raw = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let value = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
        Tag::from_wire(raw).map(|tag| Message { tag, value }).ok_or(SpawnError::Protocol(raw))
    }
}

/// Exit status of a child that failed before exec (it has told the parent why).
const CHILD_SETUP_FAILED: i32 = Exit::OwnFailure.code();

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{0}: command not found")]
    NotFound(String),
    #[error("{0}: permission denied (not executable)")]
    NotExecutable(String),
    #[error("cannot execute {program}: {err}")]
    Exec { program: String, err: std::io::Error },
    #[error("cannot install the seccomp filter: {0}")]
    Seccomp(std::io::Error),
    #[error("cannot set no_new_privs: {0}")]
    NoNewPrivs(std::io::Error),
    #[error("cannot join the run's cgroup: {0}")]
    Cgroup(std::io::Error),
    #[error("cannot give the program its own /etc/resolv.conf: {0}")]
    ResolvConf(std::io::Error),
    #[error("--isolate-network: {what}: {err}")]
    Isolate { what: &'static str, err: std::io::Error },
    #[error("{what}: {err}")]
    Setup { what: &'static str, err: std::io::Error },
    #[error("the program's setup sent a message of unknown kind {0} before exec")]
    Protocol(i32),
}

impl SpawnError {
    /// The exit status sockstrace reports, as `env(1)` and shells do.
    pub fn exit_status(&self) -> Exit {
        match self {
            SpawnError::NotFound(_) => Exit::NotFound,
            SpawnError::Exec { err, .. } if err.raw_os_error() == Some(libc::ENOENT) => Exit::NotFound,
            SpawnError::NotExecutable(_) | SpawnError::Exec { .. } => Exit::NotExecutable,
            SpawnError::Seccomp(_)
            | SpawnError::NoNewPrivs(_)
            | SpawnError::Cgroup(_)
            | SpawnError::ResolvConf(_)
            | SpawnError::Isolate { .. }
            | SpawnError::Setup { .. }
            | SpawnError::Protocol(_) => Exit::OwnFailure,
        }
    }
}

fn setup(what: &'static str) -> impl Fn(Errno) -> SpawnError {
    move |e| SpawnError::Setup { what, err: std::io::Error::from_raw_os_error(e) }
}

/// The traced program, running, and our end of its seccomp filter.
pub struct Spawned {
    pub pid: libc::pid_t,
    pub listener: OwnedFd,
    /// Whether the kernel took `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`.
    pub wait_killable: bool,
    /// Why `landlock_restrict_self` failed, when it was asked and did.
    pub landlock_failed: Option<Errno>,
    /// `--isolate-network`: the forwarder listeners, in `Isolation::forwards` order.
    /// `None`: an IPv6 loopback forward on a kernel without IPv6.
    pub forward_listeners: Vec<Option<OwnedFd>>,
}

/// Finds `program` as `execvp` would: a path if it has a slash, else in PATH.
pub fn resolve_program(program: &OsStr) -> Result<PathBuf, SpawnError> {
    let name = program.to_string_lossy().into_owned();
    let candidates: Vec<PathBuf> = if program.as_bytes().contains(&b'/') {
        vec![PathBuf::from(program)]
    } else {
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        std::env::split_paths(&path).map(|dir| dir.join(program)).collect()
    };
    let mut found_unexecutable = false;
    for candidate in candidates {
        if !candidate.is_file() {
            continue;
        }
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        found_unexecutable = true;
    }
    Err(if found_unexecutable { SpawnError::NotExecutable(name) } else { SpawnError::NotFound(name) })
}

fn is_executable(path: &Path) -> bool {
    CString::new(path.as_os_str().as_bytes()).is_ok_and(|c| sys::is_executable(&c))
}

fn cstring(s: &OsStr) -> Result<CString, SpawnError> {
    CString::new(s.as_bytes()).map_err(|_| SpawnError::Setup {
        what: "argument contains a NUL byte",
        err: std::io::Error::from_raw_os_error(libc::EINVAL),
    })
}

/// Everything the child uses, built before fork.
struct ChildPlan<'a> {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    filter: &'a FilterProgram,
    no_new_privs: bool,
    /// `cgroup.procs` of the run's cgroup, to join before anything else.
    cgroup_procs: Option<libc::c_int>,
    /// The run's cgroup directory, to be born in (`CLONE_INTO_CGROUP`).
    cgroup_dir: Option<libc::c_int>,
    /// A file to bind over /etc/resolv.conf in a private mount namespace.
    resolv_conf: Option<CString>,
    /// The Landlock ruleset to restrict the program with.
    landlock: Option<libc::c_int>,
    /// The user to become, with no capabilities (`--user`).
    user: Option<UserPlan>,
    /// `--isolate-network`: the namespaces to enter.
    isolate: Option<&'a super::isolate::Isolation>,
    /// The program's socket maker's channel (ours, the maker's).
    maker: Option<(libc::c_int, libc::c_int)>,
    /// The run's cgroup's `cgroup.kill`, for the maker to write when the supervisor is gone.
    maker_kill: libc::c_int,
    /// The pipe ends that become the program's fds 1 and 2 (-1: ours, as they are).
    stdio: [libc::c_int; 2],
    /// The signal mask sockstrace started with (it blocks terminal stops for itself).
    sigmask: Option<libc::sigset_t>,
}

/// `--user`, as raw values for the child's system calls.
struct UserPlan {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
    cap_last_cap: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// What the child does besides installing the filter.
#[derive(Default)]
pub struct ChildSetup<'a> {
    pub no_new_privs: bool,
    pub cgroup_procs: Option<std::os::fd::BorrowedFd<'a>>,
    /// The same cgroup's directory: the child is born in it where the kernel can
    /// (`clone3(CLONE_INTO_CGROUP)`), which spares the wait a move after fork costs (an RCU
    /// grace period, 8 to 30 ms here).
    pub cgroup_dir: Option<std::os::fd::BorrowedFd<'a>>,
    pub resolv_conf: Option<&'a Path>,
    /// A Landlock ruleset (built before fork) the child enters before exec.
    pub landlock: Option<std::os::fd::RawFd>,
    /// `--user`: the program runs as this user, with no capabilities.
    pub user: Option<&'a super::identity::Switch>,
    /// `--isolate-network`: a user namespace and a network namespace of its own.
    pub isolate: Option<&'a super::isolate::Isolation>,
    /// The channel (ours, the maker's) of a socket maker started in the program's
    /// cgroup, namespaces and credentials, outside its Landlock domain and filter.
    pub maker: Option<(std::os::fd::BorrowedFd<'a>, std::os::fd::BorrowedFd<'a>)>,
    /// The run's cgroup's `cgroup.kill` (opened for writing), which the maker writes when its
    /// channel to the supervisor ends: the program does not outlive its supervisor.
    pub cgroup_kill: Option<std::os::fd::BorrowedFd<'a>>,
    /// The program's stdout and stderr in place of ours (the relay's pipes), when given.
    pub stdio: [Option<std::os::fd::BorrowedFd<'a>>; 2],
}

/// Forks and execs `argv` under `filter`. The child makes only raw,
/// async-signal-safe system calls on data prepared here, so other threads of
/// ours (the async runtime) cannot deadlock it.
pub fn spawn(
    path: &Path,
    argv: &[OsString],
    filter: &FilterProgram,
    child: ChildSetup<'_>,
) -> Result<Spawned, SpawnError> {
    let plan = ChildPlan {
        path: cstring(path.as_os_str())?,
        argv: argv.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
        envp: match child.user {
            Some(switch) => super::identity::environment(std::env::vars_os(), &switch.identity),
            None => std::env::vars_os().collect(),
        }
        .into_iter()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstring(&kv)
        })
        .collect::<Result<_, _>>()?,
        filter,
        // A program that changes user must not regain privileges by exec.
        no_new_privs: child.no_new_privs || child.user.is_some(),
        cgroup_procs: child.cgroup_procs.map(|fd| fd.as_raw_fd()),
        // --isolate-network makes its forwarder listeners before joining (outside the cgroup).
        cgroup_dir: child.cgroup_dir.filter(|_| child.isolate.is_none()).map(|fd| fd.as_raw_fd()),
        resolv_conf: child.resolv_conf.map(|p| cstring(p.as_os_str())).transpose()?,
        landlock: child.landlock,
        user: child.user.map(|s| UserPlan {
            uid: s.identity.uid,
            gid: s.identity.gid,
            groups: s.identity.groups.clone(),
            cap_last_cap: s.cap_last_cap,
        }),
        isolate: child.isolate,
        maker: child.maker.map(|(ours, theirs)| (ours.as_raw_fd(), theirs.as_raw_fd())),
        maker_kill: child.cgroup_kill.map_or(-1, |fd| fd.as_raw_fd()),
        stdio: child.stdio.map(|fd| fd.map_or(-1, |fd| fd.as_raw_fd())),
        sigmask: super::sys::program_mask(),
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = plan.argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = plan.envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    let fprog = plan.filter.as_fprog();

    let (ctl_read, ctl_write) = sys::pipe_cloexec().map_err(setup("pipe"))?;
    let (go_read, go_write) = sys::pipe_cloexec().map_err(setup("pipe"))?;

    // Born in the run's cgroup where the kernel can.
    let into_cgroup = match plan.cgroup_dir {
        // SAFETY: other threads of ours may exist (the async runtime), but the child only
        // runs child_main, which takes no lock another thread could have held at fork (no
        // allocation, no stdio: raw system calls on the data built above), then execs or
        // `_exit`s.
        Some(dir) => unsafe { sys::fork_into_cgroup(dir) }.ok(),
        None => None,
    };
    let (pid, in_cgroup) = match into_cgroup {
        Some(pid) => (pid, true),
        // Refused (an old kernel): fork, and the child joins by itself.
        // SAFETY: as for fork_into_cgroup above: the child only runs child_main.
        None => (unsafe { sys::fork() }.map_err(setup("fork"))?, false),
    };
    if pid == 0 {
        // SAFETY: we are the child; see child_main's contract.
        unsafe {
            child_main(
                &plan,
                in_cgroup,
                &fprog,
                argv_ptrs.as_ptr(),
                envp_ptrs.as_ptr(),
                ctl_write.as_raw_fd(),
                go_read.as_raw_fd(),
            )
        }
    }
    drop(ctl_write);
    drop(go_read);
    parent_handshake(pid, &plan, ctl_read, go_write)
}

fn parent_handshake(
    pid: libc::pid_t,
    plan: &ChildPlan<'_>,
    ctl: OwnedFd,
    go: OwnedFd,
) -> Result<Spawned, SpawnError> {
    let program = plan.argv.first().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
    let fail = |e: SpawnError| {
        let _ = sys::wait_child(pid);
        Err(e)
    };
    let mut landlock_failed = None;
    let mut forward_fds = Vec::new();
    let errno = std::io::Error::from_raw_os_error;
    // Every tag is answered here: a new one does not compile until it is.
    let (wait_killable, listener_fd) = loop {
        let Message { tag, value } = match read_message(&ctl) {
            Ok(Some(message)) => message,
            Ok(None) => return fail(setup("child exited during setup")(libc::ECHILD)),
            Err(e) => return fail(e),
        };
        match tag {
            Tag::LandlockFailed => landlock_failed = Some(value),
            Tag::ForwardListener => forward_fds.push(value),
            Tag::MapUserns => {
                let mapped = super::isolate::map_whole(pid);
                let wrote = sys::write(go.as_fd(), &[u8::from(mapped.is_ok())]);
                if let Err(errno) = mapped {
                    return fail(isolate_error(super::isolate::pack_failure(
                        super::isolate::Step::IdMap,
                        errno,
                    )));
                }
                if wrote != Ok(1) {
                    return fail(setup("releasing the child")(wrote.err().unwrap_or(libc::EIO)));
                }
            }
            Tag::ListenerKillable => break (true, value),
            Tag::Listener => break (false, value),
            Tag::NoNewPrivsFailed => return fail(SpawnError::NoNewPrivs(errno(value))),
            Tag::CgroupFailed => return fail(SpawnError::Cgroup(errno(value))),
            Tag::ResolvConfFailed => return fail(SpawnError::ResolvConf(errno(value))),
            Tag::CapBsetFailed => return fail(setup("clearing the capability bounding set")(value)),
            Tag::AmbientFailed => return fail(setup("clearing the ambient capabilities")(value)),
            Tag::SetgroupsFailed => return fail(setup("setgroups for --user")(value)),
            Tag::SetresgidFailed => return fail(setup("setresgid for --user")(value)),
            Tag::SetresuidFailed => return fail(setup("setresuid for --user")(value)),
            Tag::CapsetFailed => return fail(setup("dropping the capabilities (capset)")(value)),
            Tag::IsolateFailed => return fail(isolate_error(value)),
            Tag::MakerFailed => return fail(setup("starting the program's socket maker")(value)),
            Tag::StdioFailed => {
                return fail(setup("giving the program its relayed stdout and stderr")(value))
            }
            // Exec comes after the go byte: before it, the child can only fail to install a filter.
            Tag::SeccompFailed | Tag::ExecFailed => return fail(SpawnError::Seccomp(errno(value))),
        }
    };
    let pidfd = match sys::pidfd_open_thread(pid as u32).map_err(setup("pidfd_open of the child")) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let listener = sys::pidfd_getfd(pidfd.as_fd(), listener_fd)
        .map_err(setup("taking the seccomp listener from the child (pidfd_getfd)"));
    let listener = match listener {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    // The forwarder listeners are close-on-exec in the child: take them before releasing it.
    let forward_listeners = forward_fds
        .iter()
        .map(|&fd| (fd >= 0).then(|| sys::pidfd_getfd(pidfd.as_fd(), fd)).transpose())
        .collect::<Result<Vec<_>, _>>()
        .map_err(setup("taking the forwarder listeners from the child (pidfd_getfd)"));
    let forward_listeners = match forward_listeners {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let wrote = sys::write(go.as_fd(), &[1]);
    if wrote != Ok(1) {
        return fail(setup("releasing the child")(wrote.err().unwrap_or(libc::EIO)));
    }
    drop(go);
    // End of file: the pipe closed on exec. A message: exec failed.
    match read_message(&ctl) {
        Ok(None) => Ok(Spawned { pid, listener, wait_killable, landlock_failed, forward_listeners }),
        Ok(Some(Message { value, .. })) => fail(SpawnError::Exec { program, err: errno(value) }),
        Err(e) => fail(e),
    }
}

/// Reads one message; `None` on end of file (or a failed read), an error for
/// an unknown tag.
fn read_message(fd: &OwnedFd) -> Result<Option<Message>, SpawnError> {
    let mut buf = [0u8; Message::WIRE_LEN];
    let mut got = 0;
    while got < buf.len() {
        match sys::read(fd.as_fd(), &mut buf[got..]) {
            Ok(0) => return Ok(None),
            Err(libc::EINTR) => continue,
            Err(_) => return Ok(None),
            Ok(n) => got += n,
        }
    }
    Message::from_wire(buf).map(Some)
}

/// The error for a failed `--isolate-network` step.
fn isolate_error(value: i32) -> SpawnError {
    let (step, errno) = super::isolate::unpack_failure(value);
    SpawnError::Isolate {
        what: step.map_or("isolating the program", super::isolate::Step::describe),
        err: std::io::Error::from_raw_os_error(errno),
    }
}

/// Writes a message to the parent. Async-signal-safe.
unsafe fn child_send(fd: libc::c_int, tag: Tag, value: i32) {
    let buf = Message { tag, value }.to_wire();
    // SAFETY: writes 8 bytes from a live local; a pipe write this small is atomic.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
}

/// Reads one byte from the go pipe; `None` when the parent is gone.
/// Async-signal-safe.
unsafe fn wait_go(go: libc::c_int) -> Option<u8> {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads one byte into a live local.
        let n = unsafe { libc::read(go, (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            return Some(byte);
        }
        // SAFETY: see child_errno.
        if n < 0 && unsafe { child_errno() } == libc::EINTR {
            continue;
        }
        return None;
    }
}

unsafe fn child_errno() -> i32 {
    // SAFETY: __errno_location is always valid for the calling thread.
    unsafe { *libc::__errno_location() }
}

/// The child between fork and exec.
///
/// # Safety
/// Only called in a freshly forked child; all
/// pointers refer to memory prepared before fork. Never returns.
unsafe fn child_main(
    plan: &ChildPlan<'_>,
    in_cgroup: bool,
    fprog: &libc::sock_fprog,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    ctl: libc::c_int,
    go: libc::c_int,
) -> ! {
    // SAFETY: this fn's contract: we are the freshly forked child, whose one thread
    // cannot meet a lock held at fork because it takes none (raw system calls, no
    // allocation). Every pointer passed to the kernel is to memory built before fork
    // (`plan`, `fprog`, `argv`, `envp`, NUL-terminated C strings), which fork copied and
    // nothing frees before exec or `_exit`; the fds are this process's own.
    unsafe {
        // The supervisor is non-dumpable and fork copied that: until exec
        // resets it, the parent (without CAP_SYS_PTRACE) could not take the
        // listener from us with pidfd_getfd.
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        // The program starts with the signal mask we were given (we block terminal stops);
        // before the filter, which may trap every call (`--learn-syscalls`, allowlists).
        if let Some(mask) = &plan.sigmask {
            libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut());
        }
        // --isolate-network: the namespaces first, so the forwarder listeners
        // (ours, not the program's) are made outside the run's cgroup.
        if let Some(isolation) = plan.isolate {
            let parent_maps = || {
                child_send(ctl, Tag::MapUserns, 0);
                wait_go(go) == Some(1)
            };
            if let Err((step, errno)) =
                isolation.child_enter(|fd| child_send(ctl, Tag::ForwardListener, fd), parent_maps)
            {
                child_send(ctl, Tag::IsolateFailed, super::isolate::pack_failure(step, errno));
                libc::_exit(CHILD_SETUP_FAILED);
            }
        }
        // Join the run's cgroup first, so every socket the program creates is
        // seen by the kernel layer's hooks.
        if let Some(procs) = plan.cgroup_procs.filter(|_| !in_cgroup) {
            if libc::write(procs, b"0".as_ptr().cast(), 1) != 1 {
                child_send(ctl, Tag::CgroupFailed, child_errno());
                libc::_exit(CHILD_SETUP_FAILED);
            }
        }
        // A private mount namespace whose /etc/resolv.conf names our resolver.
        if let Some(resolv_conf) = &plan.resolv_conf {
            let private = libc::unshare(libc::CLONE_NEWNS) == 0
                && libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) == 0
                && libc::mount(
                    resolv_conf.as_ptr(),
                    c"/etc/resolv.conf".as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ) == 0;
            if !private {
                child_send(ctl, Tag::ResolvConfFailed, child_errno());
                libc::_exit(CHILD_SETUP_FAILED);
            }
        }
        // Become the program's user (after the cgroup and the mount
        // namespace, which need root; before no_new_privs, Landlock and the
        // filter): the bounding set first (PR_CAPBSET_DROP needs
        // CAP_SETPCAP), then groups, gid, uid, and every set emptied.
        if let Some(user) = &plan.user {
            if let Err((tag, errno)) = become_user(user) {
                child_send(ctl, tag, errno);
                libc::_exit(CHILD_SETUP_FAILED);
            }
        }
        // The socket maker for the program's i386 socketcall(SYS_SOCKET): in
        // its cgroup, namespaces and credentials (so after all three), outside
        // its Landlock domain and filter (so before both).
        if let Some((ours, theirs)) = plan.maker {
            if let Err(errno) = super::maker::spawn(ours, theirs, plan.maker_kill) {
                child_send(ctl, Tag::MakerFailed, errno);
                libc::_exit(CHILD_SETUP_FAILED);
            }
        }
        // The relay's pipes as the program's stdout and stderr (after the maker, which must
        // not hold them; before the filter). dup2 clears close-on-exec on the copy; a pipe end
        // that already has the number keeps it, and loses close-on-exec here.
        for (target, &fd) in (1..).zip(plan.stdio.iter()) {
            if fd < 0 {
                continue;
            }
            let done = if fd == target { libc::fcntl(fd, libc::F_SETFD, 0) } else { libc::dup2(fd, target) };
            if done < 0 {
                child_send(ctl, Tag::StdioFailed, child_errno());
                libc::_exit(CHILD_SETUP_FAILED);
            }
        }
        if plan.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            child_send(ctl, Tag::NoNewPrivsFailed, child_errno());
            libc::_exit(CHILD_SETUP_FAILED);
        }
        // The Landlock domain (after no_new_privs, which it needs without
        // CAP_SYS_ADMIN; before the filter, so this call is not trapped). A
        // refusal is reported and the program runs unfenced.
        if let Some(ruleset) = plan.landlock {
            if libc::syscall(super::fence::SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0u32) != 0 {
                child_send(ctl, Tag::LandlockFailed, child_errno());
            }
        }
        // The guard first (no listener): the kernel runs both filters and the most
        // restrictive answer wins. (Two words pointing at memory prepared before fork.)
        let guard = plan.filter.guard_fprog();
        if libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &guard as *const libc::sock_fprog)
            != 0
        {
            child_send(ctl, Tag::SeccompFailed, child_errno());
            libc::_exit(CHILD_SETUP_FAILED);
        }
        let base = SECCOMP_FILTER_FLAG_NEW_LISTENER;
        let mut tag = Tag::ListenerKillable;
        let fprog_ptr = fprog as *const libc::sock_fprog;
        let mut fd = libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            base | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
            fprog_ptr,
        );
        if fd < 0 && child_errno() == libc::EINVAL {
            tag = Tag::Listener;
            fd = libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, base, fprog_ptr);
        }
        if fd < 0 {
            child_send(ctl, Tag::SeccompFailed, child_errno());
            libc::_exit(CHILD_SETUP_FAILED);
        }
        child_send(ctl, tag, fd as i32);
        if wait_go(go).is_none() {
            libc::_exit(CHILD_SETUP_FAILED);
        }
        // The tracee must never hold its own listener.
        libc::close(fd as libc::c_int);
        libc::execve(plan.path.as_ptr(), argv, envp);
        child_send(ctl, Tag::ExecFailed, child_errno());
        let status = if child_errno() == libc::ENOENT { Exit::NotFound } else { Exit::NotExecutable };
        libc::_exit(status.code());
    }
}

/// Drops to `user` with no capabilities left: bounding set, ambient set,
/// supplementary groups, gid, uid, then the effective, permitted and
/// inheritable sets (emptied by the uid change already, unless a securebit
/// kept them; `capset` makes sure). Raw system calls only (after fork).
///
/// # Safety
/// Only called in the freshly forked child; `user` was prepared before fork.
unsafe fn become_user(user: &UserPlan) -> Result<(), (Tag, i32)> {
    // SAFETY: we are the freshly forked child (this fn's contract): raw system calls with
    // integer arguments, or pointers to `user.groups` (built before fork, `len` entries)
    // and to live locals of the sizes the kernel reads (`CapHeader`, two `CapData`).
    unsafe {
        for cap in 0..=user.cap_last_cap {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0 {
                return Err((Tag::CapBsetFailed, child_errno()));
            }
        }
        if libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) != 0 {
            return Err((Tag::AmbientFailed, child_errno()));
        }
        if libc::syscall(libc::SYS_setgroups, user.groups.len(), user.groups.as_ptr()) != 0 {
            return Err((Tag::SetgroupsFailed, child_errno()));
        }
        if libc::syscall(libc::SYS_setresgid, user.gid, user.gid, user.gid) != 0 {
            return Err((Tag::SetresgidFailed, child_errno()));
        }
        if libc::syscall(libc::SYS_setresuid, user.uid, user.uid, user.uid) != 0 {
            return Err((Tag::SetresuidFailed, child_errno()));
        }
        let mut header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
        let data = [CapData { effective: 0, permitted: 0, inheritable: 0 }; 2];
        if libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) != 0 {
            return Err((Tag::CapsetFailed, child_errno()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_messages_round_trip_for_every_tag() {
        for tag in Tag::ALL {
            for value in [0, 1, libc::EPERM, i32::MAX, -1, i32::MIN] {
                let message = Message { tag, value };
                assert_eq!(Message::from_wire(message.to_wire()).ok(), Some(message));
            }
        }
    }

    #[test]
    fn spawn_tags_are_distinct_and_all_listed() {
        let mut raw: Vec<i32> = Tag::ALL.iter().map(|&tag| tag as i32).collect();
        raw.sort_unstable();
        raw.dedup();
        assert_eq!(raw.len(), Tag::ALL.len());
        // The wire values are 1..=N without gaps: nothing defined is missing from ALL.
        assert_eq!(raw, (1..=Tag::ALL.len() as i32).collect::<Vec<_>>());
    }

    #[test]
    fn spawn_rejects_unknown_tags() {
        for raw in [0, -1, Tag::ALL.len() as i32 + 1, 255, i32::MAX, i32::MIN] {
            let mut wire = [0u8; Message::WIRE_LEN];
            wire[..4].copy_from_slice(&raw.to_ne_bytes());
            let err = Message::from_wire(wire).expect_err("unknown tag accepted");
            assert!(matches!(err, SpawnError::Protocol(r) if r == raw), "{err}");
            assert_eq!(err.exit_status(), Exit::OwnFailure);
        }
    }

    #[test]
    fn spawn_reads_messages_and_fails_closed_on_unknown_ones() {
        let (read, write) = sys::pipe_cloexec().unwrap();
        // SAFETY: `write` is our own open pipe end; child_send writes 8 bytes from a local.
        unsafe { child_send(write.as_raw_fd(), Tag::ForwardListener, 42) };
        let unknown = [99i32.to_ne_bytes(), 7i32.to_ne_bytes()].concat();
        assert_eq!(sys::write(write.as_fd(), &unknown), Ok(8));
        drop(write);
        assert_eq!(read_message(&read).unwrap(), Some(Message { tag: Tag::ForwardListener, value: 42 }));
        assert!(matches!(read_message(&read), Err(SpawnError::Protocol(99))));
        assert!(matches!(read_message(&read), Ok(None)));
    }

    #[test]
    fn spawn_error_exit_statuses() {
        let io = std::io::Error::from_raw_os_error;
        assert_eq!(SpawnError::NotFound("x".into()).exit_status(), Exit::NotFound);
        assert_eq!(SpawnError::NotExecutable("x".into()).exit_status(), Exit::NotExecutable);
        let exec = |errno| SpawnError::Exec { program: "x".into(), err: io(errno) }.exit_status();
        assert_eq!(exec(libc::ENOENT), Exit::NotFound);
        assert_eq!(exec(libc::EACCES), Exit::NotExecutable);
        assert_eq!(SpawnError::Cgroup(io(libc::EBUSY)).exit_status(), Exit::OwnFailure);
    }
}
