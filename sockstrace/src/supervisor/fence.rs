//! The fence between the traced program and its supervisor (and every other
//! process outside the run).
//!
//! - The supervisor makes itself non-dumpable, so a same-uid program without
//!   `CAP_SYS_PTRACE` can neither ptrace it nor take its fds (`pidfd_getfd`)
//!   nor read or write its memory (`process_vm_*`, `/proc/PID/mem`).
//! - The program runs in a Landlock domain, which forbids ptrace-mode access
//!   to any process outside it whatever the program's capabilities (root
//!   included): the supervisor's seccomp listener, other processes' sockets.
//!   From ABI 6 the domain also scopes signals (the program cannot kill its
//!   supervisor); from ABI 4 it handles TCP bind and connect with no rule, so
//!   the program's own TCP connects fail in the kernel: the supervisor, outside
//!   the domain, performs every allowed one on its duplicate of the socket.
//!
//! The ruleset is built here, before `fork`; the child only calls
//! `landlock_restrict_self` on its fd (see `spawn.rs`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::sys::{self, Errno};

const SYS_LANDLOCK_CREATE_RULESET: libc::c_long = 444;
const SYS_LANDLOCK_ADD_RULE: libc::c_long = 445;
/// `landlock_restrict_self`, called by the child between fork and exec.
pub const SYS_LANDLOCK_RESTRICT_SELF: libc::c_long = 446;

const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1 << 0;
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;

/// `LANDLOCK_ACCESS_FS_WRITE_FILE` (ABI 1): opening a file for writing.
const ACCESS_FS_WRITE_FILE: u64 = 1 << 1;
/// `LANDLOCK_ACCESS_FS_MAKE_BLOCK` (ABI 1): creating a block device node.
const ACCESS_FS_MAKE_BLOCK: u64 = 1 << 11;
const ACCESS_NET_BIND_TCP: u64 = 1 << 0;
const ACCESS_NET_CONNECT_TCP: u64 = 1 << 1;
const SCOPE_SIGNAL: u64 = 1 << 1;

/// `struct landlock_ruleset_attr` (its full ABI 6 form; older kernels take a
/// prefix of it).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `struct landlock_path_beneath_attr` (packed).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// What the domain handles for a given ABI: pure, unit-tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    attr: RulesetAttr,
    /// How many bytes of [`RulesetAttr`] this ABI knows.
    size: usize,
    /// Rights allowed beneath "/" (a domain needs one handled right; below
    /// ABI 4 it is a file system right that this rule then allows everywhere).
    root_rule: u64,
}

/// `close_cgroups`: the domain handles `WRITE_FILE`, allowed beneath everything but the cgroup
/// file systems (see `cgroup_files`).
fn plan(abi: u32, handle_tcp: bool, close_cgroups: bool) -> Plan {
    let mut attr = RulesetAttr::default();
    if abi >= 4 && handle_tcp {
        attr.handled_access_net = ACCESS_NET_BIND_TCP | ACCESS_NET_CONNECT_TCP;
    }
    if abi >= 6 {
        // Abstract unix sockets stay unscoped: X11 and D-Bus use them.
        attr.scoped = SCOPE_SIGNAL;
    }
    let mut root_rule = 0;
    if attr.handled_access_net == 0 && attr.scoped == 0 {
        attr.handled_access_fs = ACCESS_FS_MAKE_BLOCK;
        root_rule = ACCESS_FS_MAKE_BLOCK;
    }
    if close_cgroups {
        attr.handled_access_fs |= ACCESS_FS_WRITE_FILE;
    }
    let size = match abi {
        0..=3 => 8,
        4 | 5 => 16,
        _ => std::mem::size_of::<RulesetAttr>(),
    };
    Plan { attr, size, root_rule }
}

/// What the domain does, in words ("landlock ABI 7: ptrace fence, signal
/// scope, tcp").
fn describe(abi: u32, plan: &Plan, allow_io_uring: bool) -> String {
    let mut parts = vec!["ptrace fence"];
    if plan.attr.scoped & SCOPE_SIGNAL != 0 {
        parts.push("signal scope");
    }
    if plan.attr.handled_access_net != 0 {
        parts.push("tcp");
    } else if abi >= 4 && allow_io_uring {
        parts.push("tcp left to the kernel layer (--allow-io-uring)");
    }
    if plan.attr.handled_access_fs & ACCESS_FS_WRITE_FILE != 0 {
        parts.push(
            "cgroup files closed (its user can write a cgroup reaching its supervisor; mounts refused)",
        );
    }
    format!("landlock ABI {abi}: {}", parts.join(", "))
}

/// Errno as its name ("ENOSYS").
fn errno_name(e: Errno) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(e))
}

/// The kernel's Landlock ABI version, or why there is none.
pub fn abi() -> Result<u32, Errno> {
    // SAFETY: with a NULL attribute and size 0 the call reads no memory.
    let v = unsafe {
        libc::syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        Err(sys::last_errno())
    } else {
        Ok(v as u32)
    }
}

/// Adds a rule allowing `access` beneath `at` (a directory, or a file for file rights).
fn add_rule(ruleset: &OwnedFd, at: &std::ffi::CStr, access: u64) -> Result<(), Errno> {
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(at.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(sys::last_errno());
    }
    // SAFETY: the kernel just gave us this fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let rule = PathBeneathAttr { allowed_access: access, parent_fd: fd.as_raw_fd() };
    // SAFETY: the rule is a live local of the layout the kernel expects.
    let r = unsafe {
        libc::syscall(
            SYS_LANDLOCK_ADD_RULE,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_PATH_BENEATH,
            &rule as *const PathBeneathAttr,
            0u32,
        )
    };
    if r != 0 {
        return Err(sys::last_errno());
    }
    Ok(())
}

/// The ruleset of `plan`; `writable`: where `WRITE_FILE` is allowed when the plan handles it.
fn create_ruleset(plan: &Plan, writable: &[std::path::PathBuf]) -> Result<OwnedFd, Errno> {
    // SAFETY: the attribute is a live local at least `plan.size` bytes long.
    let fd = unsafe {
        libc::syscall(SYS_LANDLOCK_CREATE_RULESET, &plan.attr as *const RulesetAttr, plan.size, 0u32)
    };
    if fd < 0 {
        return Err(sys::last_errno());
    }
    // SAFETY: the kernel just gave us this fd (close-on-exec).
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    if plan.root_rule != 0 {
        add_rule(&ruleset, c"/", plan.root_rule)?;
    }
    if plan.attr.handled_access_fs & ACCESS_FS_WRITE_FILE != 0 {
        use std::os::unix::ffi::OsStrExt as _;
        for path in writable {
            let Ok(at) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { continue };
            // Gone since it was listed, or not ours to open: not writable then.
            match add_rule(&ruleset, &at, ACCESS_FS_WRITE_FILE) {
                Ok(()) | Err(libc::ENOENT | libc::EACCES | libc::ELOOP | libc::ENOTDIR) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(ruleset)
}

/// The Landlock side of the fence, prepared before fork.
pub struct Fence {
    ruleset: Option<OwnedFd>,
    /// "landlock ABI 7: ..." or why not (ends with the consequence).
    landlock: Result<String, String>,
    /// "supervisor non-dumpable" or why not.
    dumpable: Result<&'static str, String>,
}

const NO_FENCE: &str = "the program could reach its supervisor";

impl Fence {
    /// Builds the ruleset for the program (`handle_tcp` false under
    /// `--allow-io-uring`, whose connects run in the program's context); `writable`: where the
    /// program may write files, cgroup files closed to it (`cgroup_files::plan`; `None` for root).
    pub fn prepare(
        allow_io_uring: bool,
        dumpable: Result<(), Errno>,
        writable: Option<Vec<std::path::PathBuf>>,
    ) -> Fence {
        let dumpable = dumpable
            .map(|()| "supervisor non-dumpable")
            .map_err(|e| format!("supervisor dumpable ({})", errno_name(e)));
        if crate::testing::disabled("landlock") {
            return Fence {
                ruleset: None,
                landlock: Err(format!("landlock off (disabled for a test): {NO_FENCE}")),
                dumpable,
            };
        }
        let abi = match abi() {
            Ok(abi) => abi,
            Err(e) => {
                return Fence {
                    ruleset: None,
                    landlock: Err(format!("landlock unavailable ({}): {NO_FENCE}", errno_name(e))),
                    dumpable,
                }
            }
        };
        let plan = plan(abi, !allow_io_uring, writable.is_some());
        match create_ruleset(&plan, writable.as_deref().unwrap_or_default()) {
            Ok(fd) => {
                Fence { ruleset: Some(fd), landlock: Ok(describe(abi, &plan, allow_io_uring)), dumpable }
            }
            Err(e) => Fence {
                ruleset: None,
                landlock: Err(format!("landlock ruleset refused ({}): {NO_FENCE}", errno_name(e))),
                dumpable,
            },
        }
    }

    /// The ruleset the child restricts itself with, if any.
    pub fn ruleset_fd(&self) -> Option<RawFd> {
        self.ruleset.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// The fence in words, for the layers line, once the child said whether
    /// `landlock_restrict_self` worked (`Some(errno)` when it did not).
    pub fn layer(&self, restrict_failed: Option<Errno>) -> String {
        let landlock = match (&self.landlock, restrict_failed) {
            (Ok(_), Some(e)) => Err(format!("landlock refused ({}): {NO_FENCE}", errno_name(e))),
            (l, _) => l.clone(),
        };
        layer_text(&self.dumpable, &landlock)
    }
}

fn layer_text(dumpable: &Result<&'static str, String>, landlock: &Result<String, String>) -> String {
    let state = if dumpable.is_ok() && landlock.is_ok() { "on" } else { "partial" };
    let d = match dumpable {
        Ok(s) => s.to_string(),
        Err(s) => s.clone(),
    };
    let l = match landlock {
        Ok(s) | Err(s) => s.clone(),
    };
    format!("{state} ({d}; {l})")
}

/// Makes this process non-dumpable: same-uid processes without
/// `CAP_SYS_PTRACE` can no longer ptrace it or reach its memory and fds.
pub fn make_non_dumpable() -> Result<(), Errno> {
    sys::set_dumpable(false)
}

/// For `sockstrace doctor`: whether a process can enter the domain `run`
/// would build (tried in a forked child), and what it would do.
pub fn probe() -> Result<String, String> {
    let fence = Fence::prepare(false, Ok(()), None);
    let (Some(fd), Ok(what)) = (fence.ruleset_fd(), &fence.landlock) else {
        return Err(fence.landlock.clone().err().unwrap_or_default());
    };
    // SAFETY: the child below only makes raw system calls with integer arguments (no lock,
    // no allocation) and `_exit`s.
    let pid = unsafe { sys::fork() }.map_err(|e| format!("fork: {}", errno_name(e)))?;
    if pid == 0 {
        // SAFETY: we are the forked child, with one thread: prctl and landlock_restrict_self
        // take integers (`fd` is the ruleset, inherited), then `_exit`.
        unsafe {
            let entered = libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
                && libc::syscall(SYS_LANDLOCK_RESTRICT_SELF, fd, 0u32) == 0;
            libc::_exit(if entered { 0 } else { *libc::__errno_location() });
        }
    }
    let status = sys::wait_child(pid).unwrap_or_default();
    match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
        Some(0) => Ok(what.clone()),
        Some(e) => Err(format!("landlock refused ({}): {NO_FENCE}", errno_name(e))),
        None => Err("landlock probe died".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_7_scopes_signals_and_handles_tcp() {
        let p = plan(7, true, false);
        assert_eq!(p.attr.handled_access_net, ACCESS_NET_BIND_TCP | ACCESS_NET_CONNECT_TCP);
        assert_eq!(p.attr.scoped, SCOPE_SIGNAL, "abstract unix sockets must stay unscoped");
        assert_eq!(p.attr.handled_access_fs, 0, "nothing on the file system is restricted");
        assert_eq!((p.size, p.root_rule), (24, 0));
        assert_eq!(describe(7, &p, false), "landlock ABI 7: ptrace fence, signal scope, tcp");
    }

    #[test]
    fn closing_cgroup_files_handles_writes_on_every_abi() {
        for abi in [1, 3, 7] {
            let p = plan(abi, true, true);
            assert_ne!(p.attr.handled_access_fs & ACCESS_FS_WRITE_FILE, 0, "ABI {abi}");
            assert_eq!(p.root_rule & ACCESS_FS_WRITE_FILE, 0, "ABI {abi}: never allowed beneath /");
            assert!(describe(abi, &p, false).contains("cgroup files closed"), "ABI {abi}");
        }
    }

    #[test]
    fn io_uring_leaves_tcp_unhandled() {
        let p = plan(6, false, false);
        assert_eq!(p.attr.handled_access_net, 0);
        assert_eq!(p.attr.scoped, SCOPE_SIGNAL);
        assert_eq!(p.root_rule, 0);
        assert!(describe(6, &p, true).contains("tcp left to the kernel layer"));
    }

    #[test]
    fn abi_4_and_5_handle_tcp_without_scopes() {
        for abi in [4, 5] {
            let p = plan(abi, true, false);
            assert_eq!(p.attr.scoped, 0);
            assert_eq!(p.attr.handled_access_net, ACCESS_NET_BIND_TCP | ACCESS_NET_CONNECT_TCP);
            assert_eq!((p.size, p.root_rule, p.attr.handled_access_fs), (16, 0, 0));
            assert_eq!(describe(abi, &p, false), format!("landlock ABI {abi}: ptrace fence, tcp"));
        }
    }

    #[test]
    fn older_abis_handle_one_fs_right_allowed_everywhere() {
        for (abi, tcp) in [(1, true), (3, true), (5, false)] {
            let p = plan(abi, tcp, false);
            assert_eq!(p.attr.handled_access_fs, ACCESS_FS_MAKE_BLOCK, "ABI {abi}");
            assert_eq!(p.root_rule, ACCESS_FS_MAKE_BLOCK, "ABI {abi}: the rule on / allows it");
            assert_eq!((p.attr.handled_access_net, p.attr.scoped), (0, 0));
        }
        assert_eq!(plan(2, true, false).size, 8);
        assert_eq!(describe(2, &plan(2, true, false), false), "landlock ABI 2: ptrace fence");
    }

    #[test]
    fn the_layer_says_what_is_missing() {
        let on = layer_text(&Ok("supervisor non-dumpable"), &Ok("landlock ABI 7: ptrace fence".into()));
        assert_eq!(on, "on (supervisor non-dumpable; landlock ABI 7: ptrace fence)");
        let off = layer_text(
            &Ok("supervisor non-dumpable"),
            &Err(format!("landlock unavailable (ENOSYS): {NO_FENCE}")),
        );
        assert!(off.starts_with("partial ("), "{off}");
        assert!(off.contains("landlock unavailable (ENOSYS): the program could reach its supervisor"));
        assert_eq!(errno_name(libc::ENOSYS), "ENOSYS");
    }

    #[test]
    fn attr_layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<RulesetAttr>(), 24);
        assert_eq!(std::mem::size_of::<PathBeneathAttr>(), 12);
    }
}
