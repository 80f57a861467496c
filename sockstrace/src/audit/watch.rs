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
use super::attribution::{Attribution, Cache, Slot};
use super::metrics::{self, Metrics};
use super::tally::Tally;
use crate::kernel::{self, KernelEvent, Witness};
use crate::report::{human, Layers, ReportTarget, Reporter};

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
    // Appending: run as a service, a restart must not wipe what was reported before.
    let reporter = Reporter::open_appending(&ReportTarget::from_arg(args.report.as_deref()), args.quiet)?;
    reporter.set_config(config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(LOOKUP_THREADS)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(audit(args, cgroup, Arc::new(reporter)))
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

async fn audit(args: &AuditArgs, cgroup: PathBuf, reporter: Arc<Reporter>) -> Result<()> {
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
    let mut witness = Witness::attach(&policy, args.enforce, &cgroup)
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
    let resolver = tokio::spawn(resolve(events, Arc::new(Cache::default()), pending_tx));
    let emitter = tokio::spawn(emit(pending_rx, sinks.clone()));

    let stop = wait_for_stop(args.duration, &mut sigint, &mut sigterm, &witness, &metrics).await;
    if !args.quiet {
        human::write_line(&format!("sockstrace: stopping ({}); detaching", stop.describe()));
    }

    // Detach first (no hook runs from here on), check with the kernel, then let the reader
    // drain what the ring buffer still holds.
    let detached = witness.detach_verified();
    let lost = witness.dropped();
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
        kernel_dropped: Some(lost),
        dns: None,
    };
    let end = End { elapsed: started.elapsed(), detached: detached.is_ok(), stop, lost };
    let (extra, lines) = match sinks.tally.lock() {
        Ok(tally) => (summary_extra(&cgroup, args, &tally, &end), tally.human_lines()),
        Err(_) => (Map::new(), Vec::new()),
    };
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
    let mut reported_lost = 0;
    let mut last_line = Instant::now();
    loop {
        tokio::select! {
            _ = sigint.recv() => return Stop::Interrupt,
            _ = sigterm.recv() => return Stop::Terminate,
            () = sleep_until_opt(deadline) => return Stop::Duration,
            _ = poll.tick() => {
                let lost = witness.dropped();
                metrics.set_lost(lost);
                if lost > reported_lost && last_line.elapsed() >= LOST_LINE_EVERY {
                    human::write_line(&format!(
                        "sockstrace: {} event(s) lost in the last {} s ({lost} in all): the kernel's ring buffer was full",
                        lost - reported_lost,
                        last_line.elapsed().as_secs()
                    ));
                    reported_lost = lost;
                    last_line = Instant::now();
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
    cache: Arc<Cache>,
    out: UnboundedSender<Pending>,
) {
    while let Some(event) = events.recv().await {
        let arrived = Instant::now();
        // pid 0: no task was current (a listen seen in softirq without a known creator).
        let slot = (event.pid != 0).then(|| {
            let (slot, fresh) = cache.slot(event.pid, &event.comm);
            if fresh {
                let (filling, pid, tid, comm) = (slot.clone(), event.pid, event.tid, event.comm.clone());
                tokio::task::spawn_blocking(move || filling.fill(Attribution::lookup(pid, tid, &comm)));
            }
            slot
        });
        if out.send(Pending { event, slot, arrived }).is_err() {
            return;
        }
    }
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
        }),
    );
    extra.insert("by_process".into(), tally.to_json());
    extra
}
