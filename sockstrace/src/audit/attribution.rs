//! Who a kernel event's process is, beyond what the kernel captured (pid, tid, comm, uid):
//! its executable, arguments and cgroup, read from /proc while it lives.
//!
//! Reading /proc can be slow (`/proc/PID/cmdline` waits for the process's memory map lock),
//! so lookups run on tokio's blocking threads, never on the event stream: the stream asks the
//! [`Cache`] for a [`Slot`], and waits for it at most until a deadline ([`Slot::wait_until`]).
//! A process that is gone by then (or too slow to answer) is reported with those fields
//! listed in the event's `missing`.
//!
//! Entries are keyed by pid *and* comm: an `exec` changes the comm of most programs, and a
//! reused pid rarely comes back with the same name within an entry's lifetime.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::kernel::tracking::ProcessRecord;
use crate::procfs::{cgroup2, cmdline, status_field};
use crate::report_writer::{Event, ProcessInfo};

/// What /proc told about one process, completed from the kernel's process record where /proc
/// could not tell (the process was gone); `None` for what neither could tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    pub exe: Option<String>,
    pub argv: Option<Vec<String>>,
    /// The cgroup v2 path, as `/proc/PID/cgroup` writes it (`/system.slice/nginx.service`).
    pub cgroup: Option<String>,
    /// The parent's pid.
    pub ppid: Option<u32>,
    /// The kernel's record of the process, when it filled in what /proc could not tell.
    pub record: Option<ProcessRecord>,
}

impl Attribution {
    /// Reads thread `tid` of process `pid`, which the kernel saw named `comm`. A thread that
    /// is gone, or whose id now belongs to another process, gives nothing; one that has
    /// exec'd another program since (its name changed) gives only its cgroup: its exe and
    /// argv are no longer the ones that made the call.
    pub fn lookup(pid: u32, tid: u32, comm: &str) -> Self {
        let base = format!("/proc/{tid}");
        let status = || std::fs::read_to_string(format!("{base}/status")).ok();
        let Some(before) = status() else {
            return Self::default();
        };
        if status_field(&before, "Tgid:").and_then(|v| v.parse().ok()) != Some(pid) {
            return Self::default();
        }
        let cgroup = std::fs::read_to_string(format!("{base}/cgroup")).ok().and_then(|c| cgroup2(&c));
        let ppid = status_field(&before, "PPid:").and_then(|v| v.parse().ok()).filter(|&p: &u32| p != 0);
        let same_image = |status: &str| status_field(status, "Name:") == Some(comm);
        if !same_image(&before) {
            return Self { cgroup, ppid, ..Self::default() };
        }
        let exe = std::fs::read_link(format!("{base}/exe")).ok().map(|p| p.to_string_lossy().into_owned());
        let argv = std::fs::read(format!("{base}/cmdline")).ok().and_then(|c| cmdline(&c));
        // An exec between the two looks would have changed the name.
        if !status().is_some_and(|after| same_image(&after)) {
            return Self { cgroup, ppid, ..Self::default() };
        }
        Self { exe, argv, cgroup, ppid, record: None }
    }

    /// Whether /proc left a field unknown.
    pub fn is_partial(&self) -> bool {
        self.exe.is_none() || self.argv.is_none() || self.cgroup.is_none() || self.ppid.is_none()
    }

    /// Fills in what /proc could not tell from the kernel's record of the process (its
    /// executable as `execve` was given it, which also stands for `argv[0]`, and its parent)
    /// and the cgroup the kernel saw (`cgroup`, a path found by the cgroup's id).
    pub fn completed(
        mut self,
        record: Option<ProcessRecord>,
        cgroup: impl FnOnce() -> Option<String>,
    ) -> Self {
        if self.cgroup.is_none() {
            self.cgroup = cgroup();
        }
        let Some(record) = record else {
            return self;
        };
        let mut used = false;
        if let Some(filename) = &record.filename {
            if self.exe.is_none() {
                self.exe = Some(filename.clone());
                used = true;
            }
            if self.argv.is_none() {
                self.argv = Some(vec![filename.clone()]);
                used = true;
            }
        }
        if self.ppid.is_none() && record.ppid.is_some() {
            self.ppid = record.ppid;
            used = true;
        }
        if used {
            self.record = Some(record);
        }
        self
    }

    /// Whether /proc told nothing (the process was gone).
    pub fn is_empty(&self) -> bool {
        self.exe.is_none() && self.argv.is_none() && self.cgroup.is_none()
    }

    /// The process fields for `KernelEvent::to_report_event`.
    pub fn process_info(&self, pid: u32) -> ProcessInfo {
        ProcessInfo { pid: Some(pid), comm: None, exe: self.exe.clone(), argv: self.argv.clone() }
    }

    /// Sets the event's cgroup and lists what is missing (exe and argv come in through
    /// [`Attribution::process_info`]).
    pub fn complete(&self, event: &mut Event) {
        event.cgroup.clone_from(&self.cgroup);
        event.ppid = self.ppid;
        if let (Some(record), Some(kernel)) = (&self.record, event.kernel.as_mut()) {
            // Where the fields /proc could not give came from.
            kernel["process"] = serde_json::json!({
                "filename": record.filename,
                "ppid": record.ppid,
                "exited": record.exited,
            });
        }
        event.missing =
            [("exe", self.exe.is_none()), ("argv", self.argv.is_none()), ("cgroup", self.cgroup.is_none())]
                .into_iter()
                .filter_map(|(name, missing)| missing.then_some(name.into()))
                .collect();
    }
}

/// Cgroup paths by cgroup id (a cgroup's id is its directory's inode number), as
/// `/proc/PID/cgroup` writes them; found by walking the hierarchy, cached.
#[derive(Debug)]
pub struct CgroupNames {
    root: PathBuf,
    cache: Mutex<HashMap<u64, String>>,
}

/// Directories the walk looks at, at most.
const CGROUP_WALK_MAX: usize = 100_000;

impl CgroupNames {
    /// Names for the hierarchy mounted at `root`.
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf(), cache: Mutex::default() }
    }

    /// The path of cgroup `id`, `None` if it is not (or no longer) in the hierarchy.
    pub fn path(&self, id: u64) -> Option<String> {
        if id == 0 {
            return None;
        }
        if let Some(found) = self.cache.lock().ok()?.get(&id) {
            return Some(found.clone());
        }
        let found = self.walk(id)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(id, found.clone());
        }
        Some(found)
    }

    fn walk(&self, id: u64) -> Option<String> {
        let mut queue = VecDeque::from([self.root.clone()]);
        let mut seen = 0;
        while let Some(dir) = queue.pop_front() {
            seen += 1;
            if seen > CGROUP_WALK_MAX {
                return None;
            }
            if std::fs::metadata(&dir).is_ok_and(|m| m.ino() == id) {
                let below = dir.strip_prefix(&self.root).ok()?;
                return Some(format!("/{}", below.display()));
            }
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    queue.push_back(entry.path());
                }
            }
        }
        None
    }
}

/// One process's attribution, filled once by whoever looks it up.
#[derive(Debug)]
pub struct Slot {
    value: OnceLock<Arc<Attribution>>,
    ready: Notify,
    born: Instant,
}

impl Slot {
    fn new() -> Self {
        Self { value: OnceLock::new(), ready: Notify::new(), born: Instant::now() }
    }

    /// Stores the lookup's result and wakes the waiters (a second fill is ignored).
    pub fn fill(&self, attribution: Attribution) {
        let _ = self.value.set(Arc::new(attribution));
        self.ready.notify_waiters();
    }

    /// The attribution, if filled.
    pub fn get(&self) -> Option<Arc<Attribution>> {
        self.value.get().cloned()
    }

    /// Waits until the slot is filled or `deadline` passes (then `None`).
    pub async fn wait_until(&self, deadline: Instant) -> Option<Arc<Attribution>> {
        loop {
            if let Some(value) = self.get() {
                return Some(value);
            }
            let notified = self.ready.notified();
            tokio::pin!(notified);
            // Registered before the second look: a fill in between still wakes us.
            notified.as_mut().enable();
            if let Some(value) = self.get() {
                return Some(value);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.get();
            }
        }
    }

    /// Whether the slot should be looked up again: older than `live`, or than `gone` when the
    /// process was gone.
    fn is_stale(&self, now: Instant, live: Duration, gone: Duration) -> bool {
        let ttl = match self.value.get() {
            Some(value) if value.is_empty() => gone,
            _ => live,
        };
        now.saturating_duration_since(self.born) > ttl
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    pid: u32,
    comm: String,
}

/// A bounded map of process attributions (oldest entries go first).
#[derive(Debug)]
pub struct Cache {
    inner: Mutex<Inner>,
    capacity: usize,
    live: Duration,
    gone: Duration,
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<Key, Arc<Slot>>,
    /// Keys in insertion order, for eviction.
    order: VecDeque<Key>,
}

/// Entries kept at most.
const CAPACITY: usize = 4096;
/// How long the attribution of a live process is trusted (an `exec` that keeps the comm is
/// noticed after this long).
const LIVE_TTL: Duration = Duration::from_secs(10);
/// How long a process found gone is not asked for again.
const GONE_TTL: Duration = Duration::from_secs(1);

impl Default for Cache {
    fn default() -> Self {
        Self::new(CAPACITY, LIVE_TTL, GONE_TTL)
    }
}

impl Cache {
    pub fn new(capacity: usize, live: Duration, gone: Duration) -> Self {
        Self { inner: Mutex::new(Inner::default()), capacity: capacity.max(1), live, gone }
    }

    /// The slot for process `pid` named `comm`, and whether it is new (the caller must then
    /// look it up and [`Slot::fill`] it). Never blocks on /proc.
    pub fn slot(&self, pid: u32, comm: &str) -> (Arc<Slot>, bool) {
        let key = Key { pid, comm: comm.to_owned() };
        let Ok(mut inner) = self.inner.lock() else {
            // A poisoned lock: serve uncached.
            return (Arc::new(Slot::new()), true);
        };
        let now = Instant::now();
        if let Some(slot) = inner.slots.get(&key) {
            if !slot.is_stale(now, self.live, self.gone) {
                return (slot.clone(), false);
            }
        }
        let slot = Arc::new(Slot::new());
        if inner.slots.insert(key.clone(), slot.clone()).is_none() {
            inner.order.push_back(key);
        }
        while inner.slots.len() > self.capacity {
            let Some(oldest) = inner.order.pop_front() else { break };
            inner.slots.remove(&oldest);
        }
        (slot, true)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().map(|i| i.slots.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Decision, Reason};
    use crate::report_writer::Action;

    #[test]
    fn parses_proc_files() {
        let status = "Name:\tmy prog\nTgid:\t42\nPid:\t43\n";
        assert_eq!(status_field(status, "Tgid:"), Some("42"));
        assert_eq!(status_field(status, "Name:"), Some("my prog"));
        assert_eq!(cmdline(b"nc\0-u\0localhost\0"), Some(vec!["nc".into(), "-u".into(), "localhost".into()]));
        assert_eq!(cmdline(b""), None);
        let hybrid = "12:pids:/system.slice/x.service\n1:name=systemd:/system.slice/x.service\n0::/system.slice/x.service\n";
        assert_eq!(cgroup2(hybrid).as_deref(), Some("/system.slice/x.service"));
        assert_eq!(cgroup2("1:cpu:/\n"), None);
    }

    #[test]
    fn reads_ourselves_and_nothing_for_the_wrong_process() {
        let pid = std::process::id();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let me = Attribution::lookup(pid, pid, comm.trim_end());
        assert!(me.exe.is_some() && me.argv.is_some(), "{me:?}");
        assert!(Attribution::lookup(pid + 1_000_000, pid, comm.trim_end()).is_empty());
        assert!(Attribution::lookup(u32::MAX - 1, u32::MAX - 1, "x").is_empty());
        // Another name: another program image since; only the cgroup still holds.
        let other = Attribution::lookup(pid, pid, "not-our-name");
        assert!(other.exe.is_none() && other.argv.is_none(), "{other:?}");
    }

    #[test]
    fn completes_events_and_names_what_is_missing() {
        let mut event = Event::new("connect", 5, Decision::leak(Reason::DirectTcp), Action::Logged);
        let partial =
            Attribution { exe: Some("/bin/x".into()), cgroup: Some("/a".into()), ..Attribution::default() };
        partial.complete(&mut event);
        assert_eq!((event.cgroup.as_deref(), event.missing.clone()), (Some("/a"), vec!["argv".into()]));
        Attribution::default().complete(&mut event);
        assert_eq!(
            (event.cgroup.as_deref(), event.missing.clone()),
            (None, vec!["exe".into(), "argv".into(), "cgroup".into()])
        );
        assert_eq!(partial.process_info(7).pid, Some(7));
    }

    #[test]
    fn kernel_records_fill_only_what_proc_could_not_tell() {
        let record = ProcessRecord {
            filename: Some("/usr/bin/leaker".into()),
            ppid: Some(40),
            uid: 0,
            cgroup_id: 9,
            exited: true,
        };
        let gone = Attribution::default().completed(Some(record.clone()), || Some("/svc".into()));
        assert_eq!(gone.exe.as_deref(), Some("/usr/bin/leaker"));
        assert_eq!(gone.argv, Some(vec!["/usr/bin/leaker".to_string()]));
        assert_eq!((gone.cgroup.as_deref(), gone.ppid), (Some("/svc"), Some(40)));
        assert!(!gone.is_partial() && gone.record.is_some());
        let mut event = Event::new("sendmsg", 5, Decision::leak(Reason::DirectUdp), Action::Logged);
        event.kernel = Some(serde_json::json!({"hook": "sendmsg4"}));
        gone.complete(&mut event);
        assert_eq!(event.ppid, Some(40));
        assert!(event.missing.is_empty());
        assert_eq!(event.kernel.as_ref().unwrap()["process"]["filename"], "/usr/bin/leaker");
        // What /proc said stays.
        let live = Attribution { exe: Some("/bin/x".into()), ppid: Some(1), ..Attribution::default() };
        let live = live.completed(Some(record), || None);
        assert_eq!((live.exe.as_deref(), live.ppid), (Some("/bin/x"), Some(1)));
        assert_eq!(live.argv, Some(vec!["/usr/bin/leaker".to_string()]));
        assert_eq!(Attribution::default().completed(None, || None), Attribution::default());
    }

    #[test]
    fn finds_cgroups_by_id() {
        let dir = std::env::temp_dir().join(format!("sockstrace-cgroup-names-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        let id = std::fs::metadata(dir.join("a/b")).unwrap().ino();
        let names = CgroupNames::new(&dir);
        assert_eq!(names.path(id).as_deref(), Some("/a/b"));
        assert_eq!(names.path(0), None);
        assert_eq!(names.path(u64::MAX), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn slots_are_shared_until_stale_and_evicted_oldest_first() {
        let cache = Cache::new(2, Duration::from_secs(60), Duration::from_millis(20));
        let (a, fresh) = cache.slot(1, "a");
        assert!(fresh);
        let (a2, fresh) = cache.slot(1, "a");
        assert!(!fresh && Arc::ptr_eq(&a, &a2));
        // Another comm is another process image.
        assert!(cache.slot(1, "b").1);
        // A gone process is asked for again sooner than a live one.
        a.fill(Attribution::default());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(cache.slot(1, "a").1);
        assert!(!cache.slot(1, "b").1);
        // Capacity 2: the first inserted goes.
        assert!(cache.slot(2, "c").1);
        assert_eq!(cache.len(), 2);
        assert!(!cache.slot(1, "b").1);
        assert!(cache.slot(1, "a").1, "evicted");
    }

    #[tokio::test]
    async fn waiting_ends_with_the_value_or_at_the_deadline() {
        let slot = Arc::new(Slot::new());
        let deadline = Instant::now() + Duration::from_millis(20);
        assert_eq!(slot.wait_until(deadline).await, None);
        let filler = slot.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            filler.fill(Attribution { exe: Some("/x".into()), ..Attribution::default() });
        });
        let got = slot.wait_until(Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(got.and_then(|a| a.exe.clone()).as_deref(), Some("/x"));
    }
}
