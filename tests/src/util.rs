//! Small helpers shared by the tests.

use std::time::{Duration, Instant};

/// Whether the tests run as root (needed for port 53 sinks, setpriv, mount
/// namespaces).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Time given to anything still in flight to arrive at a sink before a test
/// asserts that nothing arrived. Not a timing assertion: a correct run passes
/// however slow the machine is.
pub const SETTLE: Duration = Duration::from_millis(300);

/// Sleeps for [`SETTLE`].
pub fn settle() {
    std::thread::sleep(SETTLE);
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns
/// whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a skip fails the test: under CI (`CI=true`) as root, where every feature the tests
/// need is installed, a test that skips did not run, and must not count as a pass.
pub fn skips_fail() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true") && is_root()
}

/// Says that `what` (a test, or a part of one) does not run here, and why: a `SKIP` line on
/// stderr, or, where [`skips_fail`], a panic.
pub fn skip_note(what: &str, why: &str) {
    if skips_fail() {
        panic!("SKIP {what} under CI as root, where nothing may skip: {why}");
    }
    eprintln!("SKIP {what}: {why}");
}

/// Skips the current test with a visible message on stderr (a failure under CI as root: see
/// [`util::skips_fail`](crate::util::skips_fail)).
#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => {{
        $crate::util::skip_note(module_path!(), &format!($($arg)*));
        return;
    }};
}

/// Whether process `pid` is gone or a zombie (dead, not yet reaped).
pub fn process_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            // Format: "pid (comm) S ..."; comm may contain spaces and parens.
            let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()).unwrap_or("?");
            state == "Z" || state == "X"
        }
    }
}

/// Parses the numbers of "KEY=N" in the client's output lines that start with
/// `prefix` (e.g. `field(out, "actor:", "pid")`). Returns all matches in order.
pub fn fields(output: &str, prefix: &str, key: &str) -> Vec<i64> {
    let pat = format!("{key}=");
    output
        .lines()
        .filter(|l| l.starts_with(prefix))
        .flat_map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.strip_prefix(&pat))
                .filter_map(|v| v.parse::<i64>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Like [`fields`] but exactly one match is expected.
pub fn field(output: &str, prefix: &str, key: &str) -> i64 {
    let all = fields(output, prefix, key);
    assert_eq!(all.len(), 1, "expected one `{prefix} ... {key}=N` line in client output:\n{output}");
    all[0]
}

/// The pid and tid on the client's one "actor: pid=P tid=T" line (the
/// process and thread that made the network call).
pub fn actor(output: &str) -> (i64, i64) {
    (field(output, "actor:", "pid"), field(output, "actor:", "tid"))
}

/// A sysctl value set for a test and restored on drop (also on failure).
pub struct Sysctl {
    path: std::path::PathBuf,
    old: Option<String>,
}

impl Sysctl {
    /// The current value of `/proc/sys/NAME` ("net/ipv4/tcp_fastopen").
    pub fn read(name: &str) -> Option<String> {
        std::fs::read_to_string(std::path::Path::new("/proc/sys").join(name))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Sets `/proc/sys/NAME` to `value` when it differs; the old value comes
    /// back on drop.
    pub fn set(name: &str, value: &str) -> Result<Sysctl, String> {
        let path = std::path::Path::new("/proc/sys").join(name);
        let old = std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let old = old.trim().to_string();
        if old == value {
            return Ok(Sysctl { path, old: None });
        }
        std::fs::write(&path, value).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(Sysctl { path, old: Some(old) })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            if let Err(e) = std::fs::write(&self.path, old) {
                eprintln!("warning: restoring {} to {old}: {e}", self.path.display());
            }
        }
    }
}

/// Where cgroup v2 is mounted (from /proc/self/mountinfo), if anywhere.
pub fn cgroup2_mount() -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount_point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| std::path::PathBuf::from(mount_point))
    })
}
