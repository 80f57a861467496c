//! `--core-on-leak DIR`: a core file of the leaking process, written by
//! gdb's `gcore` while the leaking call is held.
//!
//! The leaking thread waits in a killable wait while we hold its call, so
//! gdb's attach (a SIGSTOP) cannot stop it there: we start gcore, wait until
//! it has attached to the thread (`TracerPid` in `/proc/TID/status`), and only
//! then answer the call. The thread then stops on its way out of the system
//! call, so the core's top frame is the leaking call (`connect`, ...) and its
//! callers below.
//!
//! gcore writes as the supervisor (root, often) at a name the program can predict, in a
//! directory it may be able to write: it writes into a private directory of ours instead
//! (`mkdtemp` under the sticky temporary directory), and the finished file is copied into
//! `DIR` with `O_CREAT|O_EXCL`, which never follows a link the program planted there.

use std::os::unix::fs::OpenOptionsExt as _;
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
    /// Where gcore writes: a directory only we can enter, or why there is none.
    staging: Result<PathBuf, String>,
    /// Cores gcore is still writing or we are still copying into place.
    pending: std::sync::Arc<AtomicU32>,
}

impl Cores {
    pub fn new(dir: PathBuf, limit: u32) -> Cores {
        Cores {
            dir,
            limit,
            taken: AtomicU32::new(0),
            gcore: find_gcore(),
            staging: make_staging(),
            pending: Default::default(),
        }
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
        let staging = match &self.staging {
            Ok(dir) => dir,
            Err(why) => return Some(Err(why.clone())),
        };
        let name = format!("sockstrace-leak-{pid}-{n}");
        let prefix = staging.join(&name);
        let mut command = Command::new(gcore);
        command.arg("-o").arg(&prefix).arg(pid.to_string());
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        // Its exit status says whether the core is whole: not reaped by the run's sweep.
        let child = crate::supervisor::reap::spawn_own(&mut command);
        let mut child = match child {
            Ok(c) => c,
            Err(e) => return Some(Err(format!("cannot run {}: {e}", gcore.display()))),
        };
        // gcore names the file PREFIX.PID.
        let file = format!("{name}.{pid}");
        let written = staging.join(&file);
        let path = self.dir.join(&file).display().to_string();
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
        let shown = PathBuf::from(&path);
        let pending = self.pending.clone();
        pending.fetch_add(1, Ordering::AcqRel);
        std::thread::spawn(move || {
            let _done = Done(pending);
            let gcore_pid = child.id();
            let result = match child.wait_with_output() {
                Ok(out) if out.status.success() && written.exists() => publish(&written, &shown),
                Ok(out) => Err(String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("").to_string()),
                Err(e) => Err(format!("waiting for gcore: {e}")),
            };
            crate::supervisor::reap::forget_own(gcore_pid);
            let _ = std::fs::remove_file(&written);
            if let Err(why) = result {
                crate::report_writer::human::write_line(&format!(
                    "sockstrace: gcore failed for {}: {why}",
                    shown.display()
                ));
            }
        });
        Some(Ok(path))
    }
}

/// Counts a core as done when its copying thread ends, however it ends.
struct Done(std::sync::Arc<AtomicU32>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Cores {
    /// Waits (at most `limit`) until every core taken is in place or has failed.
    pub fn wait(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.pending.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Cores {
    fn drop(&mut self) {
        if let Ok(dir) = &self.staging {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A directory only we can enter, for gcore to write in: `mkdtemp` makes it (mode 0700) under
/// the temporary directory, whose sticky bit keeps others from renaming or replacing it.
fn make_staging() -> Result<PathBuf, String> {
    use std::os::unix::ffi::OsStringExt as _;
    let template = std::env::temp_dir().join("sockstrace-cores-XXXXXX");
    let mut bytes = template.into_os_string().into_vec();
    bytes.push(0);
    // SAFETY: `bytes` is a NUL-terminated, writable template that mkdtemp fills in place.
    let made = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if made.is_null() {
        return Err(format!(
            "cannot make a private directory for gcore: {}",
            std::io::Error::last_os_error()
        ));
    }
    bytes.pop();
    Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

/// Copies the finished core into place: a new file (`O_CREAT|O_EXCL`: a name that exists,
/// a planted link included, is refused, never followed), mode 0600.
fn publish(written: &Path, dest: &Path) -> Result<(), String> {
    let mut from = std::fs::File::open(written).map_err(|e| format!("{}: {e}", written.display()))?;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dest)
        .map_err(|e| format!("{}: {e} (not following or replacing what is there)", dest.display()))?;
    std::io::copy(&mut from, &mut to).map(drop).map_err(|e| format!("{}: {e}", dest.display()))
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
