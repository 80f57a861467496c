//! Running sockstrace as an unprivileged user (nobody, through setpriv).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::paths::sockstrace_bin;
use crate::run::Trace;

/// The uid and gid tests switch to.
pub const NOBODY: &str = "65534";

/// Copies of the binary and of test clients in a world-readable directory
/// (the build tree may not be reachable for nobody).
pub struct Copies {
    dir: tempfile::TempDir,
    pub sockstrace: PathBuf,
}

impl Copies {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("sockstrace-unpriv").tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Copies { dir, sockstrace: PathBuf::new() };
        c.sockstrace = c.add(sockstrace_bin(), "sockstrace");
        c
    }

    /// Copies `src` into the directory as `name` (mode 755) and returns the copy.
    pub fn add(&mut self, src: &Path, name: &str) -> PathBuf {
        let sub = self.dir.path().join(format!("{}", std::fs::read_dir(self.dir.path()).unwrap().count()));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dst = sub.join(name);
        // Written by another process: an fd of ours open for writing would be inherited by
        // whatever another test thread forks meanwhile, and exec of the copy would fail with
        // ETXTBSY until that child execs.
        let copied = std::process::Command::new("cp").arg("--").arg(src).arg(&dst).status().expect("run cp");
        assert!(copied.success(), "cp {} {}", src.display(), dst.display());
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
        dst
    }

    /// `setpriv --reuid=nobody --regid=nobody --clear-groups sockstrace run ...`.
    pub fn as_nobody(&self) -> Trace {
        Trace::new().bin(&self.sockstrace).world_writable_dir().wrapper([
            "setpriv",
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
    }
}

impl Default for Copies {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh trace as root and, when we are root, one as nobody: `(who, trace, copies)`, the copies
/// kept alive as long as the nobody trace runs.
pub fn as_root_and_nobody() -> Vec<(&'static str, Trace, Option<Copies>)> {
    let mut v = vec![("root", Trace::new(), None)];
    if crate::is_root() {
        let c = Copies::new();
        v.push(("nobody", c.as_nobody(), Some(c)));
    } else {
        crate::util::skip_note("the nobody half", "switching to nobody needs root");
    }
    v
}
