//! Finding the cgroup v2 hierarchy in `/proc/self/mountinfo`.
//!
//! It may be the unified `/sys/fs/cgroup`, the hybrid `/sys/fs/cgroup/unified`, somewhere else,
//! or nowhere; only mountinfo knows.

use std::{fs, path::PathBuf};

/// Where cgroup2 is mounted for this process, if anywhere (see [`parse_cgroup2_mount`]).
pub fn find_cgroup2_mount() -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    parse_cgroup2_mount(&mountinfo)
}

/// The mount point of a cgroup2 file system in mountinfo text (proc_pid_mountinfo(5)).
///
/// Prefers a mount of the hierarchy's root (root field `/`) over a bind mount of a sub-cgroup;
/// among equals, the first listed. Octal escapes in the mount point (`\040` for a space) are
/// decoded.
pub fn parse_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    let mut fallback = None;
    for line in mountinfo.lines() {
        let Some(mount) = parse_line(line) else {
            continue;
        };
        if mount.fstype != "cgroup2" {
            continue;
        }
        if mount.root == "/" {
            return Some(PathBuf::from(unescape(mount.mount_point)));
        }
        fallback.get_or_insert_with(|| PathBuf::from(unescape(mount.mount_point)));
    }
    fallback
}

/// The fields of one mountinfo line that we need.
struct Mount<'a> {
    root: &'a str,
    mount_point: &'a str,
    fstype: &'a str,
}

/// `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`
fn parse_line(line: &str) -> Option<Mount<'_>> {
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split(' ');
    let root = fields.nth(3)?;
    let mount_point = fields.next()?;
    let fstype = after.split(' ').next()?;
    Some(Mount { root, mount_point, fstype })
}

/// Decodes the kernel's `\ooo` octal escapes (space, tab, newline, backslash).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if let Some(byte) = bytes.get(i + 1..i + 4).and_then(octal_byte) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn octal_byte(digits: &[u8]) -> Option<u8> {
    if !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
        return None;
    }
    let value = digits.iter().fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
    u8::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const HYBRID: &str = "\
22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
27 26 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
29 26 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
";

    #[test]
    fn finds_the_hybrid_mount() {
        assert_eq!(parse_cgroup2_mount(HYBRID).as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn finds_the_unified_mount_without_optional_fields() {
        let info = "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(parse_cgroup2_mount(info).as_deref(), Some(Path::new("/sys/fs/cgroup")));
    }

    #[test]
    fn none_without_cgroup2() {
        let v1_only = "29 26 0:26 / /sys/fs/cgroup/memory rw shared:12 - cgroup cgroup rw,memory\n";
        assert_eq!(parse_cgroup2_mount(v1_only), None);
        assert_eq!(parse_cgroup2_mount(""), None);
        assert_eq!(parse_cgroup2_mount("garbage\n\n1 2 3\n"), None);
    }

    #[test]
    fn prefers_the_hierarchy_root_over_a_bind_mounted_sub_cgroup() {
        let info = "\
40 30 0:30 /system.slice/x.service /run/x/cgroup rw shared:1 - cgroup2 cgroup2 rw
41 30 0:30 / /mnt/cg2 rw shared:2 master:1 - cgroup2 none rw
";
        assert_eq!(parse_cgroup2_mount(info).as_deref(), Some(Path::new("/mnt/cg2")));
        let only_sub = info.lines().next().unwrap();
        assert_eq!(parse_cgroup2_mount(only_sub).as_deref(), Some(Path::new("/run/x/cgroup")));
    }

    #[test]
    fn decodes_escaped_mount_points() {
        let info = "41 30 0:30 / /mnt/my\\040cgroup\\134v2 rw - cgroup2 none rw\n";
        assert_eq!(parse_cgroup2_mount(info).as_deref(), Some(Path::new("/mnt/my cgroup\\v2")));
    }

    #[test]
    fn a_source_named_like_a_separator_does_not_confuse_it() {
        // Only the first " - " separates; an fstype of "cgroup2" must come right after it.
        let info = "41 30 0:30 / /mnt/a rw - tmpfs cgroup2 rw\n";
        assert_eq!(parse_cgroup2_mount(info), None);
    }

    #[test]
    fn reads_this_machine_without_panicking() {
        // Whatever the answer, the path must be absolute.
        if let Some(path) = find_cgroup2_mount() {
            assert!(path.is_absolute(), "{}", path.display());
        }
    }
}
