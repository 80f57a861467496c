//! `--core-on-leak DIR`: a core file of the leaking process, written by
//! gdb's `gcore` while the leaking call is held.
//!
//! The leaking thread waits in a killable wait while we hold its call, so
//! gdb's attach (a SIGSTOP) cannot stop it there: we start gcore, wait until
//! it has attached to the thread (`TracerPid` in `/proc/TID/status`), and only
//! then answer the call. The thread then stops on its way out of the system
//! call, so the core's top frame is the leaking call (`connect`, ...) and its
//! callers below.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long we wait for gcore to attach before answering the call anyway.
const ATTACH_LIMIT: Duration = Duration::from_secs(10);

pub struct Cores {
    dir: PathBuf,
    limit: u32,
    taken: AtomicU32,
    gcore: Option<PathBuf>,
}

impl Cores {
    pub fn new(dir: PathBuf, limit: u32) -> Cores {
        Cores { dir, limit, taken: AtomicU32::new(0), gcore: find_gcore() }
    }

    /// Starts a core file of process `pid` for the leak of thread `tid`, and
    /// returns once gcore holds the thread: the file's path, or why there is
    /// none. `None` once `--core-limit` cores were taken.
    pub fn take(&self, pid: u32, tid: u32) -> Option<Result<String, String>> {
        let n = self.taken.fetch_add(1, Ordering::AcqRel) + 1;
        if n > self.limit {
            return None;
        }
        let Some(gcore) = &self.gcore else {
            return Some(Err("gcore not found (install gdb)".into()));
        };
        let prefix = self.dir.join(format!("sockstrace-leak-{pid}-{n}"));
        let child = Command::new(gcore)
            .arg("-o")
            .arg(&prefix)
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => return Some(Err(format!("cannot run {}: {e}", gcore.display()))),
        };
        // gcore names the file PREFIX.PID.
        let path = format!("{}.{pid}", prefix.display());
        let deadline = Instant::now() + ATTACH_LIMIT;
        loop {
            if traced(tid) {
                break;
            }
            if let Some(failed) = ended(&mut child) {
                return Some(Err(failed));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Some(Err("gcore did not attach in time".into()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let shown = path.clone();
        std::thread::spawn(move || {
            if let Ok(out) = child.wait_with_output() {
                if !out.status.success() || !Path::new(&shown).exists() {
                    eprintln!(
                        "sockstrace: gcore failed for {shown}: {}",
                        String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
                    );
                }
            }
        });
        Some(Ok(path))
    }
}

/// Whether a tracer (gcore's gdb) is attached to thread `tid`.
fn traced(tid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .is_ok_and(|s| s.lines().any(|l| l.strip_prefix("TracerPid:").is_some_and(|v| v.trim() != "0")))
}

/// Why gcore ended before attaching, if it did.
fn ended(child: &mut Child) -> Option<String> {
    match child.try_wait() {
        Ok(None) => None,
        Ok(Some(status)) => Some(format!("gcore ended before attaching ({status})")),
        // Reaped by the supervisor's own reaper (we are a subreaper).
        Err(_) => Some("gcore ended before attaching".into()),
    }
}

/// gcore on PATH, or where gdb installs it.
pub fn find_gcore() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("gcore"))
        .find(|p| p.is_file())
}
