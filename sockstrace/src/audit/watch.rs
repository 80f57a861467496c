//! The audit loop: attach, report every leak the kernel sees (attributed from /proc without
//! holding the stream up), stop on SIGINT/SIGTERM or `--duration`, detach and check that
//! nothing stays attached, then summarize.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::{json, Map, Value};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;

use super::args::AuditArgs;
use super::attribution::{Attribution, Cache, CgroupNames, Slot};
use super::metrics::{self, Metrics};
use super::tally::Tally;
use crate::kernel::exempt::{why_names, Exemptions};
use crate::kernel::tracking::{ExemptActivity, Tracker};
use crate::kernel::{self, KernelEvent, Witness};
use crate::report_writer::{human, Layers, ReportTarget, Reporter};

/// How long an event waits for its process's attribution, from its arrival.
const ATTRIBUTION_WAIT: Duration = Duration::from_millis(100);
/// How often the kernel's lost-event count is read (for the metrics).
const LOST_POLL: Duration = Duration::from_secs(1);
/// At most one stderr line about lost events this often.
const LOST_LINE_EVERY: Duration = Duration::from_secs(10);
/// How long the event pipeline may take to drain after the programs are detached.
const DRAIN_PATIENCE: Duration = Duration::from_secs(10);
/// Lookups running on blocking threads at once.
const LOOKUP_THREADS: usize = 4;

/// What stopped the audit.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Interrupt,
    Terminate,
    Duration,
}

impl Stop {
    fn describe(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
            Stop::Duration => "--duration elapsed",
        }
    }
}

/// Runs the audit to its end; errors are sockstrace's own failures.
pub fn run(args: &AuditArgs, config: Option<&Path>) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("audit needs root: it loads eBPF programs and attaches them to a cgroup");
    }
    let root = kernel::cgroup2_root().context("finding or mounting cgroup2")?;
    let cgroup = kernel::resolve_cgroup(&root, args.cgroup.as_deref())?;
    let exemptions = Exemptions::resolve(&args.exemptions(), &root)?;
    // Appending: run as a service, a restart must not wipe what was reported before.
    let reporter = Reporter::open_appending(&ReportTarget::from_arg(args.report.as_deref()), args.quiet)?;
    reporter.set_config(config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(LOOKUP_THREADS)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(audit(args, Where { root, cgroup, exemptions }, Arc::new(reporter)))
}

/// What is watched, and who is exempt.
struct Where {
    /// The cgroup2 mount.
    root: PathBuf,
    cgroup: PathBuf,
    exemptions: Exemptions,
}

/// Everything the emitter touches.
struct Sinks {
    reporter: Arc<Reporter>,
    tally: Mutex<Tally>,
    metrics: Arc<Metrics>,
}

/// An event on its way out, with its process's attribution slot.
struct Pending {
    event: KernelEvent,
    slot: Option<Arc<Slot>>,
    arrived: Instant,
}

async fn audit(args: &AuditArgs, place: Where, reporter: Arc<Reporter>) -> Result<()> {
    let Where { root, cgroup, exemptions } = place;
    let started = Instant::now();
    // Before anything is attached: a signal from now on stops us cleanly.
    let mut sigint = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let metrics = Arc::new(Metrics::new(args.enforce));
    let metrics_task = match args.metrics {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for --metrics on {addr}"))?;
            Some(tokio::spawn(metrics::serve(listener, metrics.clone())))
        }
        None => None,
    };

    let policy = args.policy();
    let mut witness = Witness::attach(&policy, args.enforce, &cgroup, &exemptions)
        .with_context(|| format!("attaching to cgroup {}", cgroup.display()))?;
    let mode = if args.enforce { "enforcing" } else { "observing" };
    let kernel_layer =
        format!("on ({mode}{}, cgroup {} id {})", witness.gates(), cgroup.display(), witness.cgroup_id());
    if !args.quiet {
        let proxies: Vec<String> = policy.proxies.iter().map(ToString::to_string).collect();
        human::write_line(&format!(
            "sockstrace: auditing cgroup {} (id {}) and every cgroup below it, {mode}; proxies {}; \
             stop with SIGINT or SIGTERM",
            cgroup.display(),
            witness.cgroup_id(),
            proxies.join(", ")
        ));
        if !exemptions.is_empty() {
            human::write_line(&format!(
                "sockstrace: exempt (neither reported nor refused, counted in the summary): {}{}",
                exemptions.describe(),
                match witness.exempt_running() {
                    0 => String::new(),
                    n => format!("; {n} process(es) of exempt executables already running"),
                }
            ));
        }
        if witness.tracker().is_none() {
            human::write_line(
                "sockstrace: warning: processes are not tracked: a leak of a process gone before /proc is read lacks exe and argv",
            );
        }
    }
    let events = match witness.take_events() {
        Ok(events) => events,
        Err(err) => {
            let _ = witness.stop();
            return Err(err.context("reading the kernel's events"));
        }
    };

    let sinks =
        Arc::new(Sinks { reporter: reporter.clone(), tally: Mutex::default(), metrics: metrics.clone() });
    let (pending_tx, pending_rx) = mpsc::unbounded_channel();
    let lookup =
        Lookup { cache: Cache::default(), tracker: witness.tracker(), cgroups: CgroupNames::new(&root) };
    let resolver = tokio::spawn(resolve(events, Arc::new(lookup), pending_tx));
    let emitter = tokio::spawn(emit(pending_rx, sinks.clone()));

    let stop = wait_for_stop(args.duration, &mut sigint, &mut sigterm, &witness, &metrics).await;
    if !args.quiet {
        human::write_line(&format!("sockstrace: stopping ({}); detaching", stop.describe()));
    }

    // Detach first (no hook runs from here on), check with the kernel, then let the reader
    // drain what the ring buffer still holds.
    let detached = witness.detach_verified();
    let lost = witness.dropped();
    let exempt = witness.exempt_activity();
    let lost_records = witness.tracker().map_or(0, |t| t.lost());
    metrics.set_lost(lost);
    let stopped = witness.stop();
    let drained = tokio::time::timeout(DRAIN_PATIENCE, async {
        let _ = resolver.await;
        let _ = emitter.await;
    })
    .await
    .is_ok();
    if let Some(task) = metrics_task {
        task.abort();
    }

    let layers = Layers {
        seccomp: "off (audit: the kernel layer alone)".into(),
        kernel: kernel_layer,
        fence: String::new(),
        program: String::new(),
        syscalls: String::new(),
        kernel_dropped: Some(lost),
        dns: None,
        udp_proxy: None,
    };
    let end = End { elapsed: started.elapsed(), detached: detached.is_ok(), stop, lost, lost_records };
    let (mut extra, mut lines) = match sinks.tally.lock() {
        Ok(tally) => (summary_extra(&cgroup, args, &tally, &end), tally.human_lines()),
        Err(_) => (Map::new(), Vec::new()),
    };
    if !exemptions.is_empty() {
        extra.insert("exempt".into(), exempt_json(&exemptions, &exempt));
        lines.extend(exempt_lines(&exempt));
    }
    if lost_records > 0 {
        lines.push(format!(
            "sockstrace: {lost_records} process record(s) lost (the kernel's process table was full)"
        ));
    }
    reporter.finish_with(layers, 0, extra);
    if !args.quiet {
        for line in lines {
            human::write_line(&line);
        }
    }
    // Lost events are said even under --quiet.
    if !args.quiet || lost > 0 {
        human::write_line(&format!("sockstrace: events lost by the kernel (ring buffer full): {lost}"));
    }
    if !args.quiet && detached.is_ok() {
        human::write_line(&format!(
            "sockstrace: detached: no program of ours is attached to {} any more",
            cgroup.display()
        ));
    }
    if !drained {
        human::write_line("sockstrace: warning: the last events were not all reported in time");
    }
    detached?;
    stopped
}

/// Waits for SIGINT, SIGTERM or the end of `duration`; meanwhile keeps the lost-event count
/// up to date and says on stderr when events were lost.
async fn wait_for_stop(
    duration: Option<Duration>,
    sigint: &mut tokio::signal::unix::Signal,
    sigterm: &mut tokio::signal::unix::Signal,
    witness: &Witness,
    metrics: &Metrics,
) -> Stop {
    // Beyond what an `Instant` can hold: no deadline at all.
    let deadline = duration.and_then(|d| Instant::now().checked_add(d));
    let mut poll = tokio::time::interval(LOST_POLL);
    let mut lost_lines = crate::kernel::lost::LostLines::new(LOST_LINE_EVERY);
    loop {
        tokio::select! {
            _ = sigint.recv() => return Stop::Interrupt,
            _ = sigterm.recv() => return Stop::Terminate,
            () = sleep_until_opt(deadline) => return Stop::Duration,
            _ = poll.tick() => {
                let lost = witness.dropped();
                metrics.set_lost(lost);
                if let Some(line) = lost_lines.next(lost, std::time::Instant::now()) {
                    human::write_line(&line);
                }
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Takes events as they come, starts the lookup of each new process at once (on a blocking
/// thread) and passes the events on in order. Never waits for /proc.
async fn resolve(
    mut events: UnboundedReceiver<KernelEvent>,
    lookup: Arc<Lookup>,
    out: UnboundedSender<Pending>,
) {
    while let Some(event) = events.recv().await {
        let arrived = Instant::now();
        // pid 0: no task was current (a listen seen in softirq without a known creator).
        let slot = (event.pid != 0).then(|| {
            let (slot, fresh) = lookup.cache.slot(event.pid, &event.comm);
            if fresh {
                let (filling, lookup) = (slot.clone(), lookup.clone());
                let (pid, tid, comm, cgroup_id) = (event.pid, event.tid, event.comm.clone(), event.cgroup_id);
                tokio::task::spawn_blocking(move || {
                    filling.fill(lookup.attribute(pid, tid, &comm, cgroup_id))
                });
            }
            slot
        });
        if out.send(Pending { event, slot, arrived }).is_err() {
            return;
        }
    }
}

/// Where an event's process is looked up.
struct Lookup {
    cache: Cache,
    /// The kernel's process records, where tracked.
    tracker: Option<Arc<Tracker>>,
    cgroups: CgroupNames,
}

impl Lookup {
    /// /proc first; what it cannot tell (the process is gone) from the kernel's record of
    /// the process and the id of the socket's cgroup.
    fn attribute(&self, pid: u32, tid: u32, comm: &str, cgroup_id: u64) -> Attribution {
        let found = if crate::testing::disabled("proc-attribution") {
            // Test-only: as if the process were gone.
            Attribution::default()
        } else {
            Attribution::lookup(pid, tid, comm)
        };
        if !found.is_partial() {
            return found;
        }
        let record = self.tracker.as_ref().and_then(|t| t.record(pid, comm));
        found.completed(record, || self.cgroups.path(cgroup_id))
    }
}

/// The summary's `exempt` object: the exemptions, and what each exempt process did.
fn exempt_json(exemptions: &Exemptions, activity: &[ExemptActivity]) -> Value {
    let sum = |f: fn(&ExemptActivity) -> u64| activity.iter().map(f).sum::<u64>();
    json!({
        "cgroups": exemptions.cgroups.iter().map(|c| c.path.display().to_string()).collect::<Vec<_>>(),
        "uids": exemptions.uids,
        "exes": exemptions.exes.iter().map(|e| e.path.display().to_string()).collect::<Vec<_>>(),
        "connects": sum(|a| a.connects),
        "sends": sum(|a| a.sends),
        "binds": sum(|a| a.binds),
        "sockets": sum(|a| a.sockets),
        "packets": sum(|a| a.packets),
        "processes": activity.iter().map(|a| json!({
            "pid": a.pid,
            "comm": a.comm,
            "uid": a.uid,
            "why": why_names(a.why),
            "connects": a.connects,
            "sends": a.sends,
            "binds": a.binds,
            "sockets": a.sockets,
            "packets": a.packets,
        })).collect::<Vec<_>>(),
    })
}

/// The summary's human lines on exempt processes: never silent.
fn exempt_lines(activity: &[ExemptActivity]) -> Vec<String> {
    if activity.is_empty() {
        return vec!["sockstrace: exempt: nothing went around the proxy".into()];
    }
    activity
        .iter()
        .map(|a| {
            let mut what = format!("{} connects, {} sends", a.connects, a.sends);
            for (n, name) in [(a.binds, "binds"), (a.sockets, "sockets"), (a.packets, "packets")] {
                if n > 0 {
                    what.push_str(&format!(", {n} {name}"));
                }
            }
            let who = if a.pid == 0 {
                "sockets of unknown processes".to_string()
            } else {
                format!("{} (pid {}, uid {})", a.comm, a.pid, a.uid)
            };
            format!("sockstrace: exempt: {what} by {who}, exempt by {}", why_names(a.why).join("+"))
        })
        .collect()
}

/// Reports each event in arrival order, with its attribution if it comes within
/// [`ATTRIBUTION_WAIT`] of the event's arrival.
async fn emit(mut pending: UnboundedReceiver<Pending>, sinks: Arc<Sinks>) {
    while let Some(Pending { event: kernel_event, slot, arrived }) = pending.recv().await {
        let attribution = match slot {
            Some(slot) => slot.wait_until(arrived + ATTRIBUTION_WAIT).await,
            None => None,
        }
        .unwrap_or_default();
        let mut event = kernel_event.to_report_event(attribution.process_info(kernel_event.pid));
        attribution.complete(&mut event);
        sinks.metrics.record(&event);
        if let Ok(mut tally) = sinks.tally.lock() {
            tally.record(&event, kernel_event.uid);
        }
        sinks.reporter.emit(event);
    }
}

/// How the audit ended.
struct End {
    elapsed: Duration,
    detached: bool,
    stop: Stop,
    /// Events the kernel dropped.
    lost: u64,
    /// Process records that did not fit in the kernel's table.
    lost_records: u64,
}

/// The audit's own keys of the JSON summary.
fn summary_extra(cgroup: &Path, args: &AuditArgs, tally: &Tally, end: &End) -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert(
        "audit".into(),
        json!({
            "cgroup": cgroup.display().to_string(),
            "enforce": args.enforce,
            "seconds": (end.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "stopped_by": end.stop.describe(),
            "detached": end.detached,
            "lost_events": end.lost,
            "attribution_missing": tally.attribution_missing,
            "lost_process_records": end.lost_records,
        }),
    );
    extra.insert("by_process".into(), tally.to_json());
    extra
}
