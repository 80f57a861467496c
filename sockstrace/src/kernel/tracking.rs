//! Process tracking for `audit`: the `sched_process_exec`/`fork`/`exit` tracepoint programs,
//! which keep a record of every process (its executable as `execve` was given it, its parent,
//! uid, cgroup) in `PROCS` while it lives and in `GONE` for a while after, and mark the
//! processes of exempt executables; and the exemption maps.
//!
//! Userspace reads the records to attribute a leak whose process is gone before /proc could
//! be read ([`Tracker::record`]), and the exempt processes' counts for the summary
//! ([`read_exempt_counts`]).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use aya::{
    maps::{HashMap, MapData, PerCpuArray},
    programs::TracePoint,
    Ebpf, Pod,
};
use sockstrace_common::{
    proc_flags, programs, Config, ExemptCount, ProcRecord, CONFIG_MAP, EXEMPT_CGROUPS_MAP, EXEMPT_COUNTS_MAP,
    EXEMPT_EXES_MAP, EXEMPT_UIDS_MAP, FILENAME_LEN, GONE_MAP, PROCS_LOST_MAP, PROCS_MAP,
};

use super::exempt::{filename_key, Exemptions};

/// What the tracepoint records say of a process whose /proc entry is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRecord {
    /// The file name its last `execve` was given (inherited from the parent when it did not
    /// exec since the audit began); `None` if unknown.
    pub filename: Option<String>,
    /// The parent's pid; `None` if unknown.
    pub ppid: Option<u32>,
    pub uid: u32,
    pub cgroup_id: u64,
    pub exited: bool,
}

impl ProcessRecord {
    fn from_raw(raw: &ProcRecord, exited: bool) -> Self {
        let filename = raw.filename_bytes();
        Self {
            filename: (!filename.is_empty()).then(|| String::from_utf8_lossy(filename).into_owned()),
            ppid: (raw.ppid != 0).then_some(raw.ppid),
            uid: raw.uid_gid as u32,
            cgroup_id: raw.cgroup_id,
            exited,
        }
    }
}

/// The process records, for lookups while the audit runs.
pub struct Tracker {
    procs: HashMap<MapData, u32, ProcRecord>,
    gone: HashMap<MapData, u32, ProcRecord>,
    lost: PerCpuArray<MapData, u64>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker").finish_non_exhaustive()
    }
}

impl Tracker {
    /// The record of process `pid` whose thread was named `comm` at the call: the live one
    /// or the one that exited, whichever has that name (a pid reused since belongs to
    /// another); the live one if neither has (a thread may have named itself).
    pub fn record(&self, pid: u32, comm: &str) -> Option<ProcessRecord> {
        let live = self.procs.get(&pid, 0).ok();
        let gone = self.gone.get(&pid, 0).ok();
        let named = |r: &ProcRecord| r.comm_bytes() == comm.as_bytes();
        match (live, gone) {
            (Some(l), _) if named(&l) => Some(ProcessRecord::from_raw(&l, false)),
            (_, Some(g)) if named(&g) => Some(ProcessRecord::from_raw(&g, true)),
            // The process exec'd another program since (its name changed): its parent is
            // still right, its file name is not the one that acted.
            (Some(l), _) => Some(ProcessRecord { filename: None, ..ProcessRecord::from_raw(&l, false) }),
            _ => None,
        }
    }

    /// Records that did not fit in `PROCS` (map full).
    pub fn lost(&self) -> u64 {
        self.lost.get(&0, 0).map(|v| v.iter().fold(0u64, |s, &n| s.saturating_add(n))).unwrap_or(0)
    }
}

/// The exemption maps and `CONFIG.exempt`, written before any program is attached.
pub fn write_exemptions(ebpf: &mut Ebpf, exemptions: &Exemptions) -> Result<()> {
    {
        let mut cgroups: HashMap<_, u64, u8> = typed(ebpf, EXEMPT_CGROUPS_MAP)?;
        for c in &exemptions.cgroups {
            cgroups.insert(c.id, 1, 0).with_context(|| format!("writing {EXEMPT_CGROUPS_MAP}"))?;
        }
    }
    {
        let mut uids: HashMap<_, u32, u8> = typed(ebpf, EXEMPT_UIDS_MAP)?;
        for &uid in &exemptions.uids {
            uids.insert(uid, 1, 0).with_context(|| format!("writing {EXEMPT_UIDS_MAP}"))?;
        }
    }
    {
        let mut exes: HashMap<_, [u8; FILENAME_LEN], u8> = typed(ebpf, EXEMPT_EXES_MAP)?;
        for name in exemptions.exes.iter().flat_map(|e| &e.names) {
            exes.insert(filename_key(name), 1, 0).with_context(|| format!("writing {EXEMPT_EXES_MAP}"))?;
        }
    }
    let mut config: aya::maps::Array<_, Config> = aya::maps::Array::try_from(
        ebpf.map_mut(CONFIG_MAP).with_context(|| format!("the eBPF object has no map {CONFIG_MAP}"))?,
    )
    .with_context(|| format!("map {CONFIG_MAP} has an unexpected type"))?;
    let mut value = config.get(&0, 0).with_context(|| format!("reading {CONFIG_MAP}"))?;
    value.exempt = exemptions.bits();
    value.exempt_levels = exemptions.levels();
    config.set(0, value, 0).with_context(|| format!("writing {CONFIG_MAP}[0]"))
}

fn typed<'a, K: Pod, V: Pod>(ebpf: &'a mut Ebpf, name: &str) -> Result<HashMap<&'a mut MapData, K, V>> {
    let map = ebpf.map_mut(name).with_context(|| format!("the eBPF object has no map {name}"))?;
    HashMap::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
}

/// Where tracefs is: mounted if it is not.
fn tracefs() -> Result<PathBuf> {
    for dir in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(PathBuf::from(dir));
        }
    }
    let dir = Path::new("/sys/kernel/tracing");
    nix::mount::mount(Some("tracefs"), dir, Some("tracefs"), nix::mount::MsFlags::empty(), None::<&str>)
        .with_context(|| format!("mounting tracefs on {}", dir.display()))?;
    Ok(dir.to_path_buf())
}

/// The fields (and their offsets) the programs read from each tracepoint's record.
const FORMATS: &[(&str, &str, usize)] = &[
    ("sched_process_exec", "__data_loc char[] filename", 8),
    ("sched_process_fork", "pid_t child_pid", 20),
    ("sched_process_exit", "bool group_dead", 32),
];

/// The offset of `field` in a tracepoint's `format` text.
fn field_offset(format: &str, field: &str) -> Option<usize> {
    let line = format.lines().find(|l| l.contains(&format!("field:{field};")))?;
    let rest = line.split("offset:").nth(1)?;
    rest.split(';').next()?.trim().parse().ok()
}

/// Loads the tracking programs and attaches them to their tracepoints, after checking that
/// the kernel's records have the layout they read.
pub fn attach_tracking(ebpf: &mut Ebpf) -> Result<()> {
    let tracefs = tracefs()?;
    for &(event, field, offset) in FORMATS {
        let path = tracefs.join("events/sched").join(event).join("format");
        let format = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        if field_offset(&format, field) != Some(offset) {
            bail!("tracepoint sched/{event} has no field `{field}` at offset {offset} on this kernel");
        }
    }
    for &(name, category, event) in programs::TRACKING {
        let program: &mut TracePoint = ebpf
            .program_mut(name)
            .with_context(|| format!("the eBPF object has no program {name}"))?
            .try_into()
            .with_context(|| format!("program {name} is not a tracepoint program"))?;
        program.load().with_context(|| format!("loading program {name}"))?;
        program
            .attach(category, event)
            .with_context(|| format!("attaching program {name} to {category}/{event}"))?;
    }
    Ok(())
}

/// Takes the process maps out of the object, after marking the processes that already run an
/// exempt executable (found by device and inode of `/proc/PID/exe`); returns the tracker and
/// how many processes were marked.
pub fn take_tracker(ebpf: &mut Ebpf, exemptions: &Exemptions) -> Result<(Tracker, usize)> {
    let take = |ebpf: &mut Ebpf, name: &str| -> Result<HashMap<MapData, u32, ProcRecord>> {
        let map = ebpf.take_map(name).with_context(|| format!("the eBPF object has no map {name}"))?;
        HashMap::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
    };
    let mut procs = take(ebpf, PROCS_MAP)?;
    let gone = take(ebpf, GONE_MAP)?;
    let lost = ebpf
        .take_map(PROCS_LOST_MAP)
        .with_context(|| format!("the eBPF object has no map {PROCS_LOST_MAP}"))?;
    let lost = PerCpuArray::try_from(lost)
        .with_context(|| format!("map {PROCS_LOST_MAP} has an unexpected type"))?;
    let mut marked = 0;
    if !exemptions.exes.is_empty() {
        for (pid, name) in running_exempt(exemptions) {
            let mut record = ProcRecord::zeroed();
            record.flags = proc_flags::EXEMPT;
            record.filename = filename_key(&name);
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                let field = |key| crate::procfs::status_field(&status, key).map(str::to_owned);
                record.ppid = field("PPid:").and_then(|v| v.parse().ok()).unwrap_or(0);
                let comm = field("Name:").unwrap_or_default();
                let len = comm.len().min(15);
                record.comm[..len].copy_from_slice(&comm.as_bytes()[..len]);
                record.uid_gid = field("Uid:")
                    .and_then(|v| v.split_whitespace().nth(1).and_then(|u| u.parse::<u64>().ok()))
                    .unwrap_or(0);
            }
            // NOEXIST: an exec the tracepoint saw meanwhile is newer than what we read.
            if procs.insert(pid, record, u64::from(aya_ebpf_noexist())).is_ok() {
                marked += 1;
            }
        }
    }
    Ok((Tracker { procs, gone, lost }, marked))
}

/// `BPF_NOEXIST`.
const fn aya_ebpf_noexist() -> u32 {
    1
}

/// Processes (pid, exe path) whose `/proc/PID/exe` is one of the exempt executables.
fn running_exempt(exemptions: &Exemptions) -> Vec<(u32, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let meta = std::fs::metadata(entry.path().join("exe")).ok()?;
            let exe = exemptions.exes.iter().find(|e| e.dev == meta.dev() && e.ino == meta.ino())?;
            Some((pid, exe.names[0].clone()))
        })
        .collect()
}

/// One exempt process's counts, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExemptActivity {
    pub pid: u32,
    pub comm: String,
    pub uid: u32,
    pub why: u32,
    pub connects: u64,
    pub sends: u64,
    pub binds: u64,
    pub sockets: u64,
    pub packets: u64,
}

/// Takes `EXEMPT_COUNTS` out of the object.
pub fn take_exempt_counts(ebpf: &mut Ebpf) -> Result<HashMap<MapData, u32, ExemptCount>> {
    let map = ebpf
        .take_map(EXEMPT_COUNTS_MAP)
        .with_context(|| format!("the eBPF object has no map {EXEMPT_COUNTS_MAP}"))?;
    HashMap::try_from(map).with_context(|| format!("map {EXEMPT_COUNTS_MAP} has an unexpected type"))
}

/// Every exempt process's counts, by pid.
pub fn read_exempt_counts(map: &HashMap<MapData, u32, ExemptCount>) -> Vec<ExemptActivity> {
    let mut all: Vec<_> = map
        .iter()
        .flatten()
        .map(|(pid, c)| ExemptActivity {
            pid,
            comm: String::from_utf8_lossy(c.comm_bytes()).into_owned(),
            uid: c.uid,
            why: c.why,
            connects: c.connects,
            sends: c.sends,
            binds: c.binds,
            sockets: c.sockets,
            packets: c.packets,
        })
        .collect();
    all.sort_by_key(|a| a.pid);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_field_offsets_in_a_format() {
        let format = "name: sched_process_exit\nformat:\n\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
                      \tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;\n";
        assert_eq!(field_offset(format, "bool group_dead"), Some(32));
        assert_eq!(field_offset(format, "pid_t pid"), Some(24));
        assert_eq!(field_offset(format, "pid_t child_pid"), None);
    }

    #[test]
    fn records_say_what_they_know() {
        let mut raw = ProcRecord::zeroed();
        assert_eq!(
            ProcessRecord::from_raw(&raw, true),
            ProcessRecord { filename: None, ppid: None, uid: 0, cgroup_id: 0, exited: true }
        );
        raw.filename = filename_key(b"/usr/bin/tor");
        raw.ppid = 7;
        raw.uid_gid = (5 << 32) | 110;
        let rec = ProcessRecord::from_raw(&raw, false);
        assert_eq!((rec.filename.as_deref(), rec.ppid, rec.uid), (Some("/usr/bin/tor"), Some(7), 110));
    }
}
