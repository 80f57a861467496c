//! Cgroup files closed to the program (unless it runs as root).
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
//! it, and a domain cannot mount anything else). A program run as root is out of scope.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The mount points of the cgroup file systems (v1 and v2) in `/proc/self/mountinfo`'s text.
pub fn cgroup_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            let fstype = fs.split_whitespace().next()?;
            let point = PathBuf::from(unescape(mount.split_whitespace().nth(4)?));
            matches!(fstype, "cgroup" | "cgroup2").then_some(point)
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

/// The directories and files beneath which a program run as `uid` may write: everything but
/// the cgroup file systems. `None` for root (out of scope: it can undo any fence) or where
/// this cannot be told (an unreadable `/proc`).
pub fn plan(uid: u32) -> Option<Vec<PathBuf>> {
    if uid == 0 {
        return None;
    }
    let mounts = cgroup_mounts(&std::fs::read_to_string("/proc/self/mountinfo").ok()?);
    let list = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
    };
    Some(cover(&mounts, list))
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
        assert_eq!(found, vec![PathBuf::from("/sys/fs/cgroup"), PathBuf::from("/mnt/my cg")]);
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
        assert_eq!(plan(0), None);
    }
}
