//! `sockstrace doctor`: which layers work on this machine, and why not.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use crate::kernel::{self, LayerStatus};

/// One line of the diagnosis.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

/// Prints the diagnosis (a line per check, or one JSON object); 0 where the supervisor works.
#[expect(clippy::print_stdout, reason = "doctor's answer is its lines on stdout")]
pub fn main(json: bool) -> crate::exit::Exit {
    let checks = [
        seccomp_user_notification(),
        pidfd_getfd(),
        kernel_at_least("killable notification wait (WAIT_KILLABLE_RECV)", (5, 19)),
        kernel_at_least("synchronous wake-up (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)", (6, 6)),
        kernel_layer(),
        non_dumpable(),
        landlock(),
        program_user(),
        isolation(),
        syscalls(),
        core_files(),
    ];
    // The supervisor needs the first two; the rest make it faster, add the
    // kernel view, or fence the program off from its supervisor.
    let works = checks[0].ok && checks[1].ok;
    if json {
        println!("{}", as_json(&checks, works));
    } else {
        for check in &checks {
            println!("{} {:<58} {}", if check.ok { "ok  " } else { "off " }, check.name, check.detail);
        }
    }
    if works {
        crate::exit::Exit::Success
    } else {
        crate::exit::Exit::Unsupported
    }
}

fn as_json(checks: &[Check], works: bool) -> serde_json::Value {
    let checks: Vec<_> = checks
        .iter()
        .map(|c| serde_json::json!({ "name": c.name, "ok": c.ok, "detail": c.detail }))
        .collect();
    serde_json::json!({ "ok": works, "checks": checks })
}

fn seccomp_user_notification() -> Check {
    let actions = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    let ok = actions.split_whitespace().any(|a| a == "user_notif");
    let detail =
        if ok { "supervisor available".into() } else { format!("kernel offers: {}", actions.trim()) };
    Check { name: "seccomp user notification", ok, detail }
}

fn pidfd_getfd() -> Check {
    let result = (|| -> std::io::Result<()> {
        // SAFETY: pidfd_open on our own pid; returns a new fd or -1.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, std::process::id(), 0) };
        if pidfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the fd was just returned to us.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
        let stdin = std::io::stdin();
        // SAFETY: integer arguments; a new fd or -1.
        let dup =
            unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), stdin.as_fd().as_raw_fd(), 0) };
        if dup < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the fd was just returned to us; dropping it closes it.
        drop(unsafe { OwnedFd::from_raw_fd(dup as i32) });
        Ok(())
    })();
    match result {
        Ok(()) => {
            Check { name: "pidfd_getfd (acting on the program's sockets)", ok: true, detail: "works".into() }
        }
        Err(e) => {
            Check { name: "pidfd_getfd (acting on the program's sockets)", ok: false, detail: e.to_string() }
        }
    }
}

fn kernel_release() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut parts = release.trim().split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn kernel_at_least(name: &'static str, want: (u32, u32)) -> Check {
    match kernel_release() {
        Some(have) => Check {
            name,
            ok: have >= want,
            detail: format!("kernel {}.{} (needs {}.{})", have.0, have.1, want.0, want.1),
        },
        None => Check { name, ok: false, detail: "kernel version unreadable".into() },
    }
}

fn kernel_layer() -> Check {
    let status = kernel::probe();
    let ok = status.is_available();
    let detail = match (&status, status.reason()) {
        (LayerStatus::Available { cgroup2 }, _) => {
            format!("programs verified (egress gate included); cgroup2 at {}", cgroup2.display())
        }
        (_, Some(why)) => why.to_string().lines().next().unwrap_or_default().to_owned(),
        (_, None) => String::new(),
    };
    Check { name: "kernel layer (eBPF cgroup hooks, root)", ok, detail }
}

fn core_files() -> Check {
    let name = "core files at a leak (run --core-on-leak, gdb's gcore)";
    match crate::stack::gcore_status() {
        Ok(path) => Check { name, ok: true, detail: format!("{}", path.display()) },
        Err(why) => Check { name, ok: false, detail: why },
    }
}

fn non_dumpable() -> Check {
    let name = "supervisor non-dumpable (no ptrace by same-uid programs)";
    let ok = crate::supervisor::fence::make_non_dumpable().is_ok()
        // SAFETY: prctl with integer arguments.
        && unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) } == 0;
    let detail = if ok { "works" } else { "prctl(PR_SET_DUMPABLE, 0) refused" };
    Check { name, ok, detail: detail.into() }
}

fn isolation() -> Check {
    let name = "user+network namespaces (--isolate-network)";
    let unprivileged = crate::supervisor::isolate::probe(true);
    if !nix::unistd::geteuid().is_root() {
        return match unprivileged {
            Ok(()) => Check { name, ok: true, detail: "work".into() },
            Err(why) => Check { name, ok: false, detail: format!("{why}: --isolate-network fails here") },
        };
    }
    // As root the program's user namespace maps every id to itself.
    let without_root = match unprivileged {
        Ok(()) => "work without root too".to_owned(),
        Err(why) => format!("without root: {why}"),
    };
    match crate::supervisor::isolate::probe(false) {
        Ok(()) => Check {
            name,
            ok: true,
            detail: format!("work (as root: a user namespace mapping every id to itself); {without_root}"),
        },
        Err(why) => {
            Check { name, ok: false, detail: format!("{why}: --isolate-network fails here, as root too") }
        }
    }
}

fn landlock() -> Check {
    let name = "Landlock domain (ptrace fence, signal scope, tcp)";
    match crate::supervisor::fence::probe() {
        Ok(what) => Check { name, ok: true, detail: what },
        Err(why) => Check { name, ok: false, detail: why },
    }
}

fn program_user() -> Check {
    let name = "the program as its own user (run --user)";
    if nix::unistd::geteuid().is_root() {
        let detail = "as root: run --user NAME (under sudo the invoking user is the default) so the program \
                      has no capabilities; a root program can leave its cgroup and change the network";
        Check { name, ok: true, detail: detail.into() }
    } else {
        Check { name, ok: false, detail: "needs root: the program runs as you".into() }
    }
}

/// Which system call profile a `run` gets from the configuration file (the
/// default otherwise), and whether the strict filter builds here.
fn syscalls() -> Check {
    let name = "system call allowlist (run --syscalls)";
    let builds = crate::syscalls::filter::Plan::of(&crate::syscalls::Setting::Enforce(
        crate::syscalls::Profile::strict(),
    ))
    .map(|plan| crate::supervisor::build_filter(&plan));
    if let Some(Err(e)) = builds {
        return Check { name, ok: false, detail: format!("the strict filter does not build: {e:#}") };
    }
    let given = std::env::var_os("SOCKSTRACE_CONFIG").map(std::path::PathBuf::from);
    let from_env = std::env::var("SOCKSTRACE_SYSCALLS").ok();
    let (source, value) = match (from_env, crate::config::locate(given.as_deref())) {
        (Some(value), _) => ("from SOCKSTRACE_SYSCALLS".into(), value),
        (None, Some(path)) => match crate::config::load(&path) {
            Ok(file) => (format!("from {}", path.display()), file.syscalls.unwrap_or_else(|| "all".into())),
            Err(e) => return Check { name, ok: false, detail: format!("configuration: {e:#}") },
        },
        (None, None) => ("the default".into(), "all".into()),
    };
    let profile = crate::syscalls::SyscallsArg::parse(&value)
        .map_err(anyhow::Error::msg)
        .and_then(|arg| crate::syscalls::Setting::resolve(&arg, None));
    match profile {
        Ok(setting) => Check {
            name,
            ok: true,
            detail: format!(
                "in force: {} ({source}); built in: {}",
                setting.describe(),
                crate::syscalls::strict::NAME
            ),
        },
        Err(e) => Check { name, ok: false, detail: format!("syscalls = {value:?} ({source}): {e:#}") },
    }
}
