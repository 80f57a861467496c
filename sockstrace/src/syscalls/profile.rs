//! A system call profile: the names a program may call, what the others
//! fail with, and the TOML file that holds one (docs/SYSCALLS.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// Calls every profile allows: sockstrace's own child makes them between
/// installing the filter and `execve`, and a program cannot even start or end
/// (or return from a signal handler) without them.
pub const ALWAYS: &[&str] = &[
    "read",
    "write",
    "close",
    "execve",
    "exit",
    "exit_group",
    "rt_sigreturn",
    "sigreturn",
    "restart_syscall",
];

/// What a call outside the list gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The call fails with this errno.
    Errno(i32),
    /// The whole traced tree is killed (`default-action = "kill"`).
    Kill,
}

/// A profile in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// How reports name it: `strict-1`, or `file PATH`.
    pub label: String,
    pub allow: BTreeSet<String>,
    /// Calls denied with their own errno (never in `allow`).
    pub errno: BTreeMap<String, i32>,
    pub default: Denial,
}

impl Profile {
    /// The built-in `strict` list.
    pub fn strict() -> Self {
        Profile {
            label: super::strict::NAME.into(),
            allow: names(super::strict::NAMES.iter().copied()),
            errno: BTreeMap::new(),
            default: Denial::Errno(libc::EPERM),
        }
    }

    /// What a call named `name` gets: `None` when allowed.
    pub fn judge(&self, name: &str) -> Option<Denial> {
        if self.allow.contains(name) {
            return None;
        }
        match (self.errno.get(name), self.default) {
            (_, Denial::Kill) if !self.errno.contains_key(name) => Some(Denial::Kill),
            (Some(&e), _) => Some(Denial::Errno(e)),
            (None, d) => Some(d),
        }
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        parse(&text, &format!("file {}", path.display())).with_context(|| format!("in {}", path.display()))
    }
}

fn names<'a>(list: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    list.chain(ALWAYS.iter().copied()).map(str::to_owned).collect()
}

/// The file's keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    version: u32,
    allow: Vec<String>,
    #[serde(default)]
    default_action: Option<String>,
    #[serde(default)]
    default_errno: Option<toml::Value>,
    #[serde(default)]
    errno: BTreeMap<String, toml::Value>,
    /// Written by `--learn-syscalls`: how often each call was seen, by ABI.
    /// Informational; not read.
    #[serde(default)]
    #[allow(dead_code)]
    counts: Option<toml::Value>,
}

/// Parses a profile; `known` says whether libseccomp knows a name on x86_64
/// or i386 (a typo must not silently allow nothing or deny everything).
pub fn parse(text: &str, label: &str) -> Result<Profile> {
    parse_checked(text, label, super::table::known_name)
}

pub fn parse_checked(text: &str, label: &str, known: impl Fn(&str) -> bool) -> Result<Profile> {
    let file: File = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
    if file.version != 1 {
        bail!("version {} is not known (this sockstrace reads version 1)", file.version);
    }
    for name in file.allow.iter().chain(file.errno.keys()) {
        if !known(name) {
            bail!("{name:?} is not a system call on x86_64 or i386");
        }
    }
    let default_errno = match &file.default_errno {
        Some(v) => errno_value(v).context("default-errno")?,
        None => libc::EPERM,
    };
    let default = match file.default_action.as_deref() {
        None | Some("errno") => Denial::Errno(default_errno),
        Some("kill") => Denial::Kill,
        Some(other) => bail!("default-action {other:?} is neither \"errno\" nor \"kill\""),
    };
    let allow = names(file.allow.iter().map(String::as_str));
    let mut errno = BTreeMap::new();
    for (name, value) in &file.errno {
        if allow.contains(name) {
            bail!("{name} is both allowed and given an errno");
        }
        errno.insert(name.clone(), errno_value(value).with_context(|| format!("errno of {name}"))?);
    }
    Ok(Profile { label: label.into(), allow, errno, default })
}

/// Errno names a profile may use (or any number 1..=4095).
const ERRNO_NAMES: &[(&str, i32)] = &[
    ("EPERM", libc::EPERM),
    ("ENOENT", libc::ENOENT),
    ("ESRCH", libc::ESRCH),
    ("EINTR", libc::EINTR),
    ("EIO", libc::EIO),
    ("ENXIO", libc::ENXIO),
    ("EBADF", libc::EBADF),
    ("EAGAIN", libc::EAGAIN),
    ("ENOMEM", libc::ENOMEM),
    ("EACCES", libc::EACCES),
    ("EFAULT", libc::EFAULT),
    ("EBUSY", libc::EBUSY),
    ("EEXIST", libc::EEXIST),
    ("ENODEV", libc::ENODEV),
    ("EINVAL", libc::EINVAL),
    ("ENOSYS", libc::ENOSYS),
    ("EOPNOTSUPP", libc::EOPNOTSUPP),
    ("EAFNOSUPPORT", libc::EAFNOSUPPORT),
];

fn errno_value(v: &toml::Value) -> Result<i32> {
    match v {
        toml::Value::Integer(n) if (1..=4095).contains(n) => Ok(*n as i32),
        toml::Value::String(s) => {
            ERRNO_NAMES.iter().find(|(name, _)| name.eq_ignore_ascii_case(s)).map(|&(_, e)| e).with_context(
                || format!("{s:?} is not an errno this file may name (EPERM, ENOSYS, EACCES, ...)"),
            )
        }
        other => bail!("{other:?} is not an errno (a name such as \"EPERM\", or 1..4095)"),
    }
}

/// The errno's name, for the files `--learn-syscalls` writes and the docs.
pub fn errno_name(errno: i32) -> String {
    ERRNO_NAMES.iter().find(|&&(_, e)| e == errno).map_or_else(|| errno.to_string(), |(n, _)| (*n).into())
}

/// Writes a profile that allows `seen` (name -> count, by ABI), with the counts.
pub fn render_learned(program: &str, seen: &BTreeMap<&'static str, BTreeMap<&'static str, u64>>) -> String {
    let mut all: BTreeSet<&str> = seen.values().flat_map(|m| m.keys().copied()).collect();
    let always: BTreeSet<&str> = ALWAYS.iter().copied().collect();
    all.retain(|n| !always.contains(n));
    // `ABI:NUMBER`: calls this libseccomp cannot name, so no profile can allow them.
    let (unnamed, all): (BTreeSet<&str>, BTreeSet<&str>) = all.into_iter().partition(|n| n.contains(':'));
    let mut out = String::new();
    out.push_str("# A sockstrace system call profile (docs/SYSCALLS.md), learned from one run of:\n");
    out.push_str(&format!("#   {}\n", program.replace('\n', " ")));
    out.push_str("# Use it with: sockstrace run --syscalls THIS-FILE -- PROGRAM ...\n");
    out.push_str(&format!(
        "# Always allowed, whatever this file says (and not counted while learning): {}.\n",
        ALWAYS.join(", ")
    ));
    if !unnamed.is_empty() {
        out.push_str(&format!(
            "# Seen, but with no name in this libseccomp (newer calls), so they stay denied: {}.\n",
            unnamed.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    out.push_str("version = 1\n");
    out.push_str("# default-action = \"errno\"   # or \"kill\"\n# default-errno = \"EPERM\"\n");
    out.push_str("allow = [\n");
    for name in &all {
        out.push_str(&format!("    \"{name}\",\n"));
    }
    out.push_str("]\n");
    for (abi, counts) in seen {
        if counts.is_empty() {
            continue;
        }
        out.push_str(&format!("\n# How often each call was seen ({abi}); not read.\n[counts.{abi}]\n"));
        for (name, n) in counts {
            if name.contains(':') {
                out.push_str(&format!("\"{name}\" = {n}\n"));
            } else {
                out.push_str(&format!("{name} = {n}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Profile> {
        parse_checked(text, "test", |n| !n.starts_with("bogus"))
    }

    #[test]
    fn a_minimal_file_allows_its_names_and_the_calls_every_program_needs() {
        let p = parse("version = 1\nallow = [\"openat\"]").unwrap();
        assert!(p.judge("openat").is_none());
        assert!(p.judge("execve").is_none() && p.judge("exit_group").is_none());
        assert_eq!(p.judge("ptrace"), Some(Denial::Errno(libc::EPERM)));
    }

    #[test]
    fn per_call_errno_and_kill() {
        let p = parse(
            "version = 1\nallow = []\ndefault-errno = \"EACCES\"\n[errno]\nstatx = \"ENOSYS\"\nbpf = 13",
        )
        .unwrap();
        assert_eq!(p.judge("statx"), Some(Denial::Errno(libc::ENOSYS)));
        assert_eq!(p.judge("bpf"), Some(Denial::Errno(13)));
        assert_eq!(p.judge("ptrace"), Some(Denial::Errno(libc::EACCES)));
        let p =
            parse("version = 1\nallow = []\ndefault-action = \"kill\"\n[errno]\nstatx = \"ENOSYS\"").unwrap();
        assert_eq!(p.judge("ptrace"), Some(Denial::Kill));
        assert_eq!(p.judge("statx"), Some(Denial::Errno(libc::ENOSYS)), "a listed errno is not a kill");
    }

    #[test]
    fn refuses_typos_conflicts_and_unknown_keys() {
        for bad in [
            "version = 1\nallow = [\"bogus_call\"]",
            "version = 2\nallow = []",
            "version = 1\nallow = [\"statx\"]\n[errno]\nstatx = \"ENOSYS\"",
            "version = 1\nallow = []\ndefault-action = \"trap\"",
            "version = 1\nallow = []\ndefault-errno = \"EWHAT\"",
            "version = 1\nallow = []\ndefault-errno = 0",
            "version = 1\nallowed = []",
        ] {
            assert!(parse(bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn a_learned_file_reads_back_as_the_names_seen() {
        let mut seen = BTreeMap::new();
        seen.insert("x86_64", BTreeMap::from([("openat", 3u64), ("read", 9)]));
        seen.insert("i386", BTreeMap::from([("stat64", 1u64), ("i386:999", 2)]));
        let text = render_learned("prog --flag", &seen);
        let p = parse(&text).unwrap();
        assert!(p.judge("openat").is_none() && p.judge("stat64").is_none());
        assert!(p.judge("mount").is_some());
        assert!(text.contains("[counts.x86_64]") && text.contains("openat = 3"), "{text}");
        assert!(text.contains("no name in this libseccomp (newer calls), so they stay denied: i386:999."));
        assert!(text.contains("\"i386:999\" = 2"), "{text}");
    }

    #[test]
    fn strict_allows_the_network_calls_and_denies_the_dangerous_ones() {
        let p = Profile::strict();
        for ok in ["connect", "sendto", "mmap", "mmap2", "clone3", "futex", "epoll_pwait"] {
            assert!(p.judge(ok).is_none(), "{ok}");
        }
        for bad in ["ptrace", "bpf", "mount", "init_module", "userfaultfd", "process_vm_writev", "unshare"] {
            assert_eq!(p.judge(bad), Some(Denial::Errno(libc::EPERM)), "{bad}");
        }
    }
}
