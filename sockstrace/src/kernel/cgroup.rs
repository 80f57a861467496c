//! cgroup v2 for the witness: the hierarchy found (or mounted); either a fresh directory of the
//! run's own (its `cgroup.procs` for the child to join, its removal at the end), or an existing
//! cgroup that `audit` watches and leaves as it found it.

use std::{
    fs::{self, File, OpenOptions},
    io::ErrorKind,
    os::{
        fd::{AsFd, BorrowedFd},
        unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    },
    path::{Component, Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use nix::mount::{mount, MsFlags};

use super::mountinfo::find_cgroup2_mount;

/// Where we mount cgroup2 ourselves when nothing has.
pub const FALLBACK_MOUNT: &str = "/run/sockstrace/cgroup2";
/// Our directory in the hierarchy; each run gets `run-<pid>-<n>` below it.
const PARENT: &str = "sockstrace";
/// How long `remove` waits for the cgroup to empty (exiting tasks leave it asynchronously).
const REMOVE_PATIENCE: Duration = Duration::from_secs(2);

/// Distinguishes the cgroups of one process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The cgroup v2 mount point: the one `/proc/self/mountinfo` lists, or a new mount at
/// [`FALLBACK_MOUNT`].
pub fn cgroup2_root() -> Result<PathBuf> {
    if let Some(root) = find_cgroup2_mount() {
        return Ok(root);
    }
    let dir = Path::new(FALLBACK_MOUNT);
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    match mount_cgroup2(dir) {
        Ok(()) => Ok(dir.to_path_buf()),
        // Someone (a concurrent run) mounted it first.
        Err(err) => find_cgroup2_mount().with_context(|| format!("{err:#}")),
    }
}

/// `mount -t cgroup2 none DIR`.
pub fn mount_cgroup2(dir: &Path) -> Result<()> {
    mount(
        Some("none"),
        dir,
        Some("cgroup2"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .with_context(|| format!("mounting cgroup2 at {}", dir.display()))
}

/// A cgroup the witness attaches to, with the descriptors attaching and joining need: one we
/// created ([`Cgroup::create`], removed at the end), or an existing one ([`Cgroup::existing`],
/// left alone).
#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
    id: u64,
    /// The directory, `O_RDONLY | O_DIRECTORY`: what programs attach to.
    dir: File,
    /// `cgroup.procs`, `O_WRONLY | O_CLOEXEC`; only for a cgroup we created.
    procs: Option<File>,
    /// Whether we created it (and so remove it).
    owned: bool,
}

impl Cgroup {
    /// Creates `<root>/sockstrace/run-<our pid>-<n>`.
    pub fn create(root: &Path) -> Result<Self> {
        let parent = root.join(PARENT);
        match fs::create_dir(&parent) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err).with_context(|| format!("creating cgroup {}", parent.display())),
        }
        let path = loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!("run-{}-{n}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => break path,
                // Left over from an earlier process with our pid: take the next name.
                Err(err) if err.kind() == ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err).with_context(|| format!("creating cgroup {}", path.display())),
            }
        };
        Self::open_created(path.clone()).inspect_err(|_| {
            let _ = fs::remove_dir(&path);
        })
    }

    fn open_created(path: PathBuf) -> Result<Self> {
        let (dir, id) = open_dir(&path)?;
        let procs_path = path.join("cgroup.procs");
        let procs = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&procs_path)
            .with_context(|| format!("opening {}", procs_path.display()))?;
        Ok(Self { path, id, dir, procs: Some(procs), owned: true })
    }

    /// An existing cgroup v2 directory (see [`resolve`]), opened read-only: nothing is created
    /// in it, nothing joins it, and [`Cgroup::remove`] leaves it. A read-only mount of the
    /// hierarchy is enough.
    pub fn existing(path: &Path) -> Result<Self> {
        let (dir, id) = open_dir(path)?;
        if !is_cgroup2(&dir) {
            bail!("{} is not a directory of a cgroup v2 file system", path.display());
        }
        Ok(Self { path: path.to_path_buf(), id, dir, procs: None, owned: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn dir_fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// `cgroup.procs` of a cgroup we created; `None` for an existing one.
    pub fn procs_fd(&self) -> Option<BorrowedFd<'_>> {
        self.procs.as_ref().map(AsFd::as_fd)
    }

    /// Removes a cgroup we created, child cgroups first, retrying while tasks are still leaving
    /// it. (Our open descriptors do not keep a cgroup from being removed.) An existing cgroup
    /// is left as it is.
    pub fn remove(&self) -> Result<()> {
        if !self.owned {
            return Ok(());
        }
        remove_run_cgroup(&self.path)
    }
}

/// Removes the cgroup of a run at `path` (made by [`Cgroup::create`]) and any below it,
/// waiting briefly while exiting tasks leave, as [`Cgroup::remove`], for a caller that no
/// longer holds the [`Cgroup`]; then the leftovers of earlier runs beside it
/// ([`sweep_leftovers`]).
pub fn remove_run_cgroup(path: &Path) -> Result<()> {
    let removed = remove_tree(path, Instant::now() + REMOVE_PATIENCE);
    if let Some(parent) = path.parent() {
        sweep_leftovers(parent);
    }
    removed
}

/// How long a run's cgroup must have stayed unchanged, its run's process gone, before the end
/// of another run removes it.
const LEFTOVER_AGE: Duration = Duration::from_secs(60);

/// The pid in a run cgroup's name (`run-<pid>-<n>`, see [`Cgroup::create`]), if it is one.
fn run_pid(name: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix("run-")?.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Whether the entry `name` of our parent cgroup, unchanged for `age`, is a cgroup an earlier
/// run left: a run's name, old enough, whose supervisor (`pid_alive`) is gone.
fn is_leftover(name: &str, age: Duration, pid_alive: impl Fn(u32) -> bool) -> bool {
    run_pid(name).is_some_and(|pid| age >= LEFTOVER_AGE && !pid_alive(pid))
}

/// Removes the run cgroups in `parent` that earlier runs left ([`is_leftover`]): a supervisor
/// killed before its end (`SIGKILL`, a crash) removes nothing. Only empty ones go: the kernel
/// refuses to remove a cgroup that holds a process or a cgroup, so whatever a live run (in
/// another pid namespace, say, where its pid means nothing here) still holds stays. Failures
/// are ignored: this is housekeeping.
fn sweep_leftovers(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|name| run_pid(name).is_some()) else {
            // The parent's own files (cgroup.procs...) need no look at their age.
            continue;
        };
        let age = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|changed| changed.elapsed().ok())
            .unwrap_or_default();
        if is_leftover(name, age, |pid| Path::new("/proc").join(pid.to_string()).exists()) {
            let _ = fs::remove_dir(entry.path());
        }
    }
}

/// Opens a cgroup directory `O_RDONLY | O_DIRECTORY` and reads its id.
fn open_dir(path: &Path) -> Result<(File, u64)> {
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("opening cgroup {}", path.display()))?;
    // On 64-bit kernels a cgroup's id is its directory's inode number.
    let id = dir.metadata().with_context(|| format!("stat {}", path.display()))?.ino();
    Ok((dir, id))
}

/// Whether `dir` is on a cgroup2 file system.
fn is_cgroup2(dir: &File) -> bool {
    use nix::sys::statfs::{fstatfs, CGROUP2_SUPER_MAGIC};
    fstatfs(dir).is_ok_and(|fs| fs.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// Whether `path` is a directory of a cgroup2 file system.
fn is_cgroup2_dir(path: &Path) -> bool {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .is_ok_and(|dir| is_cgroup2(&dir))
}

/// The cgroup `--cgroup` names, given the hierarchy's mount point `root`:
///
/// - none: `root` itself (the whole machine, or the whole of this cgroup namespace);
/// - an absolute path on a cgroup2 file system: that directory
///   (`/sys/fs/cgroup/system.slice/nginx.service`);
/// - anything else: relative to `root`, a leading `/` ignored, so that both
///   `system.slice/nginx.service` and the `/system.slice/nginx.service` of
///   `/proc/PID/cgroup` work.
///
/// `..` components are refused in the relative form; the result must be a cgroup2 directory.
pub fn resolve(root: &Path, arg: Option<&Path>) -> Result<PathBuf> {
    let Some(arg) = arg else {
        return Ok(root.to_path_buf());
    };
    if arg.is_absolute() && is_cgroup2_dir(arg) {
        return Ok(arg.to_path_buf());
    }
    let relative: PathBuf = arg.components().filter(|c| !matches!(c, Component::RootDir)).collect();
    if relative.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        bail!("cgroup {}: only plain names may follow the cgroup2 mount (no '..')", arg.display());
    }
    let candidate = root.join(&relative);
    if is_cgroup2_dir(&candidate) {
        return Ok(candidate);
    }
    if arg.is_absolute() {
        bail!("no cgroup {}: neither it nor {} is a cgroup v2 directory", arg.display(), candidate.display());
    }
    bail!(
        "no cgroup {} under the cgroup2 mount {} ({} does not exist)",
        arg.display(),
        root.display(),
        candidate.display()
    )
}

/// `rmdir` of a cgroup and the cgroups below it (in cgroupfs the only directories are child
/// cgroups; the files go with their directory).
fn remove_tree(path: &Path, deadline: Instant) -> Result<()> {
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path(), deadline)?;
            }
        }
    }
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
            // EBUSY: tasks are still in it (or still exiting).
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                wait_unpopulated(path, deadline);
            }
            Err(err) => {
                let populated = fs::read_to_string(path.join("cgroup.procs"))
                    .map(|procs| procs.split_whitespace().collect::<Vec<_>>().join(" "))
                    .unwrap_or_default();
                if populated.is_empty() {
                    return Err(err).with_context(|| format!("removing cgroup {}", path.display()));
                }
                bail!("removing cgroup {}: still holds processes {populated} ({err})", path.display());
            }
        }
    }
}

/// Waits until the cgroup at `path` holds no task (its `cgroup.events` says `populated 0`,
/// which the kernel signals to `poll` as a priority event), at most 10 ms at a time (then the
/// caller tries again), or until `deadline`. The file is read again every millisecond: the
/// kernel sends a cgroup's events at most once per 10 ms, so the wake-up that says the last
/// task left can come that much later than the change.
/// How often [`wait_unpopulated`] reads `cgroup.events` again, in milliseconds.
const REREAD_EVERY_MS: i32 = 1;

fn wait_unpopulated(path: &Path, deadline: Instant) {
    use std::os::unix::fs::FileExt as _;
    let step = Instant::now() + Duration::from_millis(10);
    let until = step.min(deadline);
    let Ok(events) = File::open(path.join("cgroup.events")) else {
        thread::sleep(until.saturating_duration_since(Instant::now()));
        return;
    };
    let mut buf = [0u8; 128];
    loop {
        let populated = match events.read_at(&mut buf, 0) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "populated 1"),
            Err(_) => true,
        };
        let left = until.saturating_duration_since(Instant::now());
        if !populated || left.is_zero() {
            return;
        }
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).clamp(1, REREAD_EVERY_MS);
        crate::supervisor::sys::poll_one(events.as_fd(), libc::POLLPRI, ms);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_leftover_is_an_old_run_cgroup_whose_supervisor_is_gone() {
        use super::{is_leftover, run_pid, Duration, LEFTOVER_AGE};
        let old = LEFTOVER_AGE + Duration::from_secs(1);
        let dead = |_| false;
        assert_eq!(run_pid("run-1234-0"), Some(1234));
        assert!(is_leftover("run-1234-7", old, dead));
        assert!(!is_leftover("run-1234-7", old, |pid| pid == 1234), "its supervisor still runs");
        assert!(!is_leftover("run-1234-7", Duration::from_secs(5), dead), "too new: may be starting");
        for other in ["cgroup.procs", "run-1234", "run--0", "run-x-0", "run-1234-x", "audit-1-0", "run-1-0-0"]
        {
            assert!(!is_leftover(other, old, dead), "{other} is not a run's cgroup");
        }
    }

    use std::io::Write as _;

    use super::*;
    use crate::kernel::mountinfo::parse_cgroup2_mount;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn creates_joins_and_removes_a_cgroup() {
        if !is_root() {
            crate::testing::skipped("creating cgroups needs root");
            return;
        }
        let root = cgroup2_root().unwrap_or_else(|err| panic!("{err:#}"));
        let cgroup = Cgroup::create(&root).unwrap_or_else(|err| panic!("{err:#}"));
        let path = cgroup.path().to_path_buf();
        assert!(path.starts_with(root.join(PARENT)), "{}", path.display());
        assert_ne!(cgroup.id(), 0);
        // A child that joins, then exits: remove must wait for it to be gone.
        let mut child = std::process::Command::new("sleep").arg("0.2").spawn().unwrap();
        let mut procs = File::options().write(true).open(path.join("cgroup.procs")).unwrap();
        write!(procs, "{}", child.id()).unwrap();
        let listed = fs::read_to_string(path.join("cgroup.procs")).unwrap();
        assert_eq!(listed.trim(), child.id().to_string());
        let waiter = thread::spawn(move || child.wait());
        cgroup.remove().unwrap_or_else(|err| panic!("{err:#}"));
        assert!(!path.exists());
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn mounts_cgroup2_where_asked() {
        if !is_root() {
            crate::testing::skipped("mounting needs root");
            return;
        }
        let dir = std::env::temp_dir().join(format!("sockstrace-cg2-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        mount_cgroup2(&dir).unwrap_or_else(|err| panic!("{err:#}"));
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let ours =
            mountinfo.lines().filter(|l| l.contains(dir.to_str().unwrap())).collect::<Vec<_>>().join("\n");
        let unmounted = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_dir(&dir);
        unmounted.unwrap();
        assert_eq!(parse_cgroup2_mount(&ours).as_deref(), Some(dir.as_path()));
    }
}
