//! cgroups of the tests' own (root, cgroup v2), for `sockstrace audit` tests:
//! created per test, removed (children first) on drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::util::{cgroup2_mount, wait_until};

/// Why the audit tests cannot run here, if they cannot: root and a cgroup v2 mount.
pub fn audit_skip_reason() -> Option<String> {
    if !crate::is_root() {
        return Some("audit needs root (eBPF programs on a cgroup)".into());
    }
    if cgroup2_mount().is_none() {
        return Some("no cgroup2 mount in /proc/self/mountinfo".into());
    }
    None
}

/// A cgroup created for one test (and its children), removed on drop.
pub struct TestCgroup {
    path: PathBuf,
}

impl TestCgroup {
    /// `<cgroup2>/sockstrace-<kind>-test-<pid>-<n>-<name>`.
    pub fn new(kind: &str, name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let root = cgroup2_mount().expect("cgroup2 mount");
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = root.join(format!("sockstrace-{kind}-test-{}-{n}-{name}", std::process::id()));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("create cgroup {}: {e}", path.display()));
        TestCgroup { path }
    }

    /// A child cgroup (removed with its parent).
    pub fn child(&self, name: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("create cgroup {}: {e}", path.display()));
        path
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path relative to the cgroup2 mount, as `/proc/PID/cgroup` writes it ("/name").
    pub fn proc_path(&self) -> String {
        proc_path(&self.path)
    }
}

/// A cgroup's path relative to the cgroup2 mount, as `/proc/PID/cgroup` writes it.
pub fn proc_path(cgroup: &Path) -> String {
    let root = cgroup2_mount().expect("cgroup2 mount");
    format!("/{}", cgroup.strip_prefix(&root).expect("under the mount").display())
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        fn remove(path: &Path) {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    remove(&entry.path());
                }
            }
            // Exiting clients may still be leaving it.
            if !wait_until(Duration::from_secs(5), || std::fs::remove_dir(path).is_ok() || !path.exists()) {
                eprintln!("warning: could not remove cgroup {}", path.display());
            }
        }
        remove(&self.path);
    }
}
