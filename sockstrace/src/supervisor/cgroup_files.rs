//! Cgroup files closed to the program where its user can write one that reaches its supervisor.
//!
//! On a systemd desktop a terminal's shell lives in a scope of the user's own manager
//! (`user@UID.service/app.slice/*.scope`), every file of it the user's; rootless containers
//! delegate the same way, and libcgroup or LXC give users cgroup v1 groups of their own. A
//! program of that user could then move its supervisor into a cgroup of its own and write
//! `cgroup.kill` there (or `cgroup.freeze`, `memory.max`, v1's `memory.limit_in_bytes` for the
//! OOM killer, `freezer.state`), or kill the whole scope: no Landlock scope or seccomp rule
//! covers a write to a file, and which groups a user may write (owner, group, ACLs, v1 or v2)
//! is not worth guessing. So the program's Landlock domain handles `WRITE_FILE` and allows it
//! beneath every directory and file except the cgroup file systems' mount points (v1 and v2):
//! the siblings of each directory on the way from `/` to a mount point are allowed, the way
//! itself is not (Landlock allows an access when any directory above the file has a rule for
//! it, and a domain cannot mount anything else). The cost: a domain that handles a file system
//! right refuses every mount, so a program that mounts in a user namespace of its own (`unshare
//! -rm`, bwrap) fails there; so only where the program's user can write a cgroup file that
//! reaches its supervisor (by the mode bits: a v2 group on the supervisor's way, which moving it
//! or killing it needs, or any v1 group, which a move into needs alone). A program run as root
//! is out of scope.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::identity::{Credentials, WRITE};

/// The cgroup file systems in `/proc/self/mountinfo`'s text: mount point, and whether v2.
pub fn cgroup_mounts(mountinfo: &str) -> Vec<(PathBuf, bool)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            let fstype = fs.split_whitespace().next()?;
            let point = PathBuf::from(unescape(mount.split_whitespace().nth(4)?));
            matches!(fstype, "cgroup" | "cgroup2").then_some((point, fstype == "cgroup2"))
        })
        .collect()
}

/// A mountinfo field with its octal escapes (`\040` for a space) undone.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| std::str::from_utf8(d).ok());
        match (bytes[i], octal.and_then(|d| u8::from_str_radix(d, 8).ok())) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What to allow `WRITE_FILE` beneath so that everything but `excluded` (and what is under
/// them) is covered: the entries (`list`) of every directory above an excluded point that are
/// neither excluded nor above one.
pub fn cover(excluded: &[PathBuf], list: impl Fn(&Path) -> Vec<PathBuf>) -> Vec<PathBuf> {
    let excluded: BTreeSet<&Path> = excluded.iter().map(PathBuf::as_path).collect();
    let above: BTreeSet<&Path> = excluded.iter().flat_map(|e| e.ancestors().skip(1)).collect();
    let mut grants = Vec::new();
    for dir in &above {
        for entry in list(dir) {
            if !above.contains(entry.as_path()) && !excluded.contains(entry.as_path()) {
                grants.push(entry);
            }
        }
    }
    grants
}

/// The files of a group that move, stop or kill its processes.
const CONTROLS: [&str; 9] = [
    "cgroup.procs",
    "cgroup.threads",
    "cgroup.kill",
    "cgroup.freeze",
    "memory.max",
    "pids.max",
    "tasks",
    "freezer.state",
    "memory.limit_in_bytes",
];

/// The files of a v1 group that move processes into it (all a move needs there).
const MOVES: [&str; 2] = ["tasks", "cgroup.procs"];

/// Whether `who` may write the group directory `dir` (make groups in it) or one of `controls`.
fn group_writable(who: &Credentials, dir: &Path, controls: &[&str]) -> bool {
    let may =
        |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| who.may(WRITE, m.uid(), m.gid(), m.mode()));
    may(dir) || controls.iter().any(|f| may(&dir.join(f)))
}

/// At most this many v1 groups are looked at (a walk of every hierarchy).
const V1_GROUPS: usize = 4096;

/// Whether `who` may write a v1 group anywhere in the hierarchy at `mount` (a move into it is
/// all the program needs to put its supervisor under its limits), or a control of the groups
/// this process is in (`own`: their paths, from `/proc/self/cgroup`).
fn v1_writable(who: &Credentials, mount: &Path, own: &BTreeSet<PathBuf>) -> bool {
    if own.iter().any(|group| group_writable(who, &mount.join(group), &CONTROLS)) {
        return true;
    }
    let mut todo = vec![mount.to_path_buf()];
    let mut seen = 0;
    while let Some(dir) = todo.pop() {
        seen += 1;
        if seen > V1_GROUPS || group_writable(who, &dir, &MOVES) {
            // Past the bound, as if writable: the fence costs less than a guess.
            return true;
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            todo.extend(
                entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()),
            );
        }
    }
    false
}

/// The directories and files beneath which the program (`who`) may write, cgroup files closed
/// to it, when it can write a cgroup file that reaches this process (see the module's doc);
/// `None` otherwise, for root (out of scope), or where this cannot be told.
pub fn plan(who: &Credentials) -> Option<Vec<PathBuf>> {
    if who.uid == 0 {
        return None;
    }
    let mounts = cgroup_mounts(&std::fs::read_to_string("/proc/self/mountinfo").ok()?);
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = own_cgroup(&cgroups);
    // Each path is looked for under every v1 mount (which hierarchy a line names is not
    // matched to its mount): once per path, the same for most hierarchies.
    let own_v1: BTreeSet<PathBuf> = cgroups
        .lines()
        .filter(|l| !l.starts_with("0::"))
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .map(|p| PathBuf::from(p.trim_start_matches('/')))
        .collect();
    let on_the_way = |point: &Path, own: &Path| {
        let group = point.join(own);
        let way: Vec<&Path> = group.ancestors().take_while(|d| d.starts_with(point)).collect();
        way.into_iter().any(|d| group_writable(who, d, &CONTROLS))
    };
    let reaches = mounts.iter().any(|(point, v2)| match (v2, &own) {
        (true, Some(own)) => on_the_way(point, own),
        (true, None) => false,
        (false, _) => v1_writable(who, point, &own_v1),
    });
    if !reaches {
        return None;
    }
    let list = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
    };
    let points: Vec<PathBuf> = mounts.into_iter().map(|(point, _)| point).collect();
    Some(cover(&points, list))
}

/// This process's cgroup v2 path (`0::/user.slice/...`) in `/proc/self/cgroup`'s text, relative.
fn own_cgroup(text: &str) -> Option<PathBuf> {
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(PathBuf::from(path.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw
26 25 0:22 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
40 22 0:35 / /mnt/my\\040cg rw - cgroup cgroup rw,freezer
41 22 0:36 / /tmp rw - tmpfs tmpfs rw
";

    #[test]
    fn cgroup_mounts_of_both_versions_are_found() {
        let found = cgroup_mounts(MOUNTINFO);
        assert_eq!(
            found,
            vec![(PathBuf::from("/sys/fs/cgroup"), true), (PathBuf::from("/mnt/my cg"), false)]
        );
        assert_eq!(own_cgroup("0::/user.slice/app.scope\n"), Some(PathBuf::from("user.slice/app.scope")));
        assert_eq!(own_cgroup("1:name=systemd:/x\n"), None);
    }

    #[test]
    fn the_cover_leaves_out_the_way_to_each_mount_and_nothing_else() {
        let tree = |dir: &Path| -> Vec<PathBuf> {
            let names: &[&str] = match dir.to_str() {
                Some("/") => &["bin", "home", "mnt", "sys", "tmp", "vmlinuz"],
                Some("/sys") => &["class", "fs", "kernel"],
                Some("/sys/fs") => &["bpf", "cgroup", "fuse"],
                Some("/mnt") => &["data", "my cg"],
                _ => &[],
            };
            names.iter().map(|n| dir.join(n)).collect()
        };
        let excluded = [PathBuf::from("/sys/fs/cgroup"), PathBuf::from("/mnt/my cg")];
        let mut grants = cover(&excluded, tree);
        grants.sort();
        let want: Vec<PathBuf> = [
            "/bin",
            "/home",
            "/mnt/data",
            "/sys/class",
            "/sys/fs/bpf",
            "/sys/fs/fuse",
            "/sys/kernel",
            "/tmp",
            "/vmlinuz",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(grants, want);
    }

    #[test]
    fn a_root_program_changes_nothing() {
        assert_eq!(plan(&Credentials { uid: 0, groups: vec![] }), None);
    }
}
