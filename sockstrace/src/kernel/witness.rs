//! The kernel witness: our eBPF programs attached to a cgroup of the run's own (`run`), or to an
//! existing cgroup and everything below it (`audit`).

use std::{
    os::fd::BorrowedFd,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use aya::{
    maps::{MapData, PerCpuArray, RingBuf},
    Ebpf,
};
use sockstrace_common::{ExemptCount, EVENTS_MAP};
use tokio::sync::{mpsc, oneshot};

use super::{
    backstop,
    backstop::Backstop,
    cgroup::{cgroup2_root, Cgroup},
    events::{spawn_reader, KernelEvent},
    exempt::Exemptions,
    facts::KernelFacts,
    logs::KernelLogger,
    maps::{self, SocketsMap},
    object, query,
    tracking::{self, ExemptActivity, Tracker},
};
use crate::policy::Policy;

/// How long [`Witness::detach_verified`] waits for the kernel to let go of our programs.
const DETACH_PATIENCE: Duration = Duration::from_secs(2);

/// The object, loaded and verified, with the maps userspace keeps, not attached yet.
struct Loaded {
    ebpf: Ebpf,
    backstop: Backstop,
    sockets: SocketsMap,
    dropped: PerCpuArray<MapData, u64>,
    ring: RingBuf<MapData>,
    logger: Option<KernelLogger>,
}

impl Loaded {
    /// Compiles the policy and loads the object (before any cgroup is made or touched).
    fn new(policy: &Policy, enforce: bool) -> Result<Self> {
        Self::with(object::load(), policy, enforce)
    }

    /// As [`Loaded::new`], with the object loaded already (or having failed to).
    fn with(ebpf: Result<Ebpf>, policy: &Policy, enforce: bool) -> Result<Self> {
        let backstop = backstop::compile(policy, enforce).context("compiling the policy for the kernel")?;
        let mut ebpf = ebpf?;
        let sockets = maps::take_sockets(&mut ebpf)?;
        let dropped = maps::take_dropped(&mut ebpf)?;
        let ring =
            ebpf.take_map(EVENTS_MAP).with_context(|| format!("the eBPF object has no map {EVENTS_MAP}"))?;
        let ring =
            RingBuf::try_from(ring).with_context(|| format!("map {EVENTS_MAP} has an unexpected type"))?;
        // The programs' own diagnostics; we carry on without them if there is no log map.
        let logger = KernelLogger::init(&mut ebpf);
        Ok(Self { ebpf, backstop, sockets, dropped, ring, logger })
    }

    /// Writes the policy for `cgroup`, then attaches every program to it. On failure, whatever
    /// was attached is detached again and a cgroup we created is removed.
    ///
    /// For an audit (`audit` set), also the exemptions, and the process tracking tracepoints
    /// (attached before the cgroup programs, so no exempt process is missed).
    fn attach(self, cgroup: Cgroup, audit: Option<&Exemptions>) -> Result<Witness> {
        let Self { mut ebpf, backstop, sockets, dropped, ring, logger } = self;
        let enforcing = backstop.config.enforce != 0;
        let mut tracking = None;
        // The policy goes in before any program is attached: no hook ever runs without it.
        let attached = maps::write_backstop(&mut ebpf, &backstop.for_cgroup(cgroup.id()))
            .and_then(|()| match audit {
                Some(exemptions) => Self::track(&mut ebpf, exemptions).map(|t| tracking = Some(t)),
                None => Ok(()),
            })
            .and_then(|()| object::attach_all(&mut ebpf, cgroup.dir_fd()))
            .and_then(|()| object::program_ids(&ebpf));
        let program_ids = match attached {
            Ok(ids) => ids,
            Err(err) => return Err(undo(ebpf, &cgroup, err)),
        };
        let parts = Parts { sockets, dropped, ring: Some(ring), logger, enforcing };
        Ok(Witness::assemble(ebpf, cgroup, program_ids, parts, tracking))
    }

    /// Writes the policy for `cgroup` and attaches the [`object::FIRST`] programs only (a run's
    /// fresh cgroup: no audit); [`Early::finish`] attaches the rest. On failure, as
    /// [`Loaded::attach`].
    fn attach_first(self, cgroup: Cgroup) -> Result<Early> {
        let Self { mut ebpf, backstop, sockets, dropped, ring, logger } = self;
        let enforcing = backstop.config.enforce != 0;
        let attached = maps::write_backstop(&mut ebpf, &backstop.for_cgroup(cgroup.id()))
            .and_then(|()| object::attach(&mut ebpf, cgroup.dir_fd(), object::Programs::First));
        if let Err(err) = attached {
            return Err(undo(ebpf, &cgroup, err));
        }
        Ok(Early { ebpf, cgroup, parts: Parts { sockets, dropped, ring: Some(ring), logger, enforcing } })
    }

    /// Writes the exemptions, attaches the process tracking and marks the exempt processes
    /// already running.
    fn track(ebpf: &mut Ebpf, exemptions: &Exemptions) -> Result<Tracking> {
        tracking::write_exemptions(ebpf, exemptions)?;
        let attached = tracking::attach_tracking(ebpf);
        if let Err(err) = &attached {
            if !exemptions.exes.is_empty() {
                bail!("--exempt-exe needs the process tracking tracepoints: {err:#}");
            }
            log::warn!(
                "processes are not tracked (a leak of a process gone by then is not attributed): {err:#}"
            );
        }
        let (tracker, marked) = tracking::take_tracker(ebpf, exemptions)?;
        let exempt_counts = tracking::take_exempt_counts(ebpf)?;
        Ok(Tracking { tracker: attached.is_ok().then(|| Arc::new(tracker)), exempt_counts, marked })
    }
}

/// An audit's process tracking and exemption counts.
struct Tracking {
    /// `None` where the tracepoints could not be attached.
    tracker: Option<Arc<Tracker>>,
    exempt_counts: aya::maps::HashMap<MapData, u32, ExemptCount>,
    /// Processes of exempt executables found running at the start.
    marked: usize,
}

/// Drops `ebpf` (detaching whatever was attached) and removes `cgroup` if we made it, after
/// `err`; the error to return.
fn undo(ebpf: Ebpf, cgroup: &Cgroup, err: anyhow::Error) -> anyhow::Error {
    drop(ebpf);
    match cgroup.remove() {
        Ok(()) => err,
        Err(cleanup) => err.context(format!("(and cleaning up failed: {cleanup:#})")),
    }
}

/// What a [`Witness`] keeps of its loaded object besides the object itself.
struct Parts {
    sockets: SocketsMap,
    dropped: PerCpuArray<MapData, u64>,
    /// `None` once its reader was started.
    ring: Option<RingBuf<MapData>>,
    logger: Option<KernelLogger>,
    enforcing: bool,
}

/// Stops a reader of the kernel's events started by [`Early::take_events`]: it drains what is
/// queued and ends (as it does when this is dropped).
pub struct EventsStop {
    reader: oneshot::Sender<()>,
    logger: Option<oneshot::Sender<()>>,
}

impl EventsStop {
    pub fn stop(self) {
        // Err: the task has already ended (its receiver is gone); nothing to tell.
        let _ = self.reader.send(());
        if let Some(logger) = self.logger {
            let _ = logger.send(());
        }
    }
}

/// Starts reading `ring` (and the programs' log) on the current tokio runtime.
fn read_events(
    ring: RingBuf<MapData>,
    logger: Option<KernelLogger>,
) -> Result<(mpsc::UnboundedReceiver<KernelEvent>, EventsStop)> {
    tokio::runtime::Handle::try_current().context("the kernel's events are read inside a tokio runtime")?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = oneshot::channel();
    spawn_reader(ring, tx, stop_rx)?;
    let mut logger_stop = None;
    if let Some(logger) = logger {
        let (stop_tx, stop_rx) = oneshot::channel();
        match logger.spawn(stop_rx) {
            Ok(()) => logger_stop = Some(stop_tx),
            Err(err) => log::debug!("the eBPF programs' log is not read: {err:#}"),
        }
    }
    Ok((rx, EventsStop { reader: stop_tx, logger: logger_stop }))
}

/// Reads the kernel's socket facts by cookie ([`Witness::facts_reader`],
/// [`Early::facts_reader`]).
#[derive(Clone)]
pub struct FactsReader(SocketsMap);

impl FactsReader {
    /// What the kernel knows of a socket, by cookie (`getsockopt(SO_COOKIE)`); `None` if no
    /// hook of ours ever saw it (or its slot went to a newer socket).
    pub fn get(&self, cookie: u64) -> Option<KernelFacts> {
        maps::lookup_facts(&self.0, cookie).map(|raw| KernelFacts::from_raw(&raw))
    }
}

/// A run's kernel layer while most of it still loads ([`Witness::start_first`]): a fresh
/// cgroup for the program to be born in, the policy written and the [`object::FIRST`]
/// programs attached; [`Early::finish`] loads and attaches the others.
pub struct Early {
    ebpf: Ebpf,
    cgroup: Cgroup,
    parts: Parts,
}

impl Early {
    /// As [`Witness::procs_fd`].
    pub fn procs_fd(&self) -> Option<BorrowedFd<'_>> {
        self.cgroup.procs_fd()
    }

    /// As [`Witness::cgroup_dir_fd`].
    pub fn cgroup_dir_fd(&self) -> Option<BorrowedFd<'_>> {
        self.cgroup.procs_fd().map(|_| self.cgroup.dir_fd())
    }

    pub fn cgroup_path(&self) -> &Path {
        self.cgroup.path()
    }

    pub fn cgroup_id(&self) -> u64 {
        self.cgroup.id()
    }

    /// Reads the facts the socket-creation hook records from the start, and the complete
    /// layer's hooks later.
    pub fn facts_reader(&self) -> FactsReader {
        FactsReader(self.parts.sockets.clone())
    }

    /// Starts reading the kernel's events now (what the first programs see), on the current
    /// tokio runtime; the caller stops the reader when the run ends.
    pub fn take_events(&mut self) -> Result<(mpsc::UnboundedReceiver<KernelEvent>, EventsStop)> {
        let ring = self.parts.ring.take().context("the kernel events were already taken")?;
        read_events(ring, self.parts.logger.take())
    }

    /// Loads the other programs and, if `go_on` (asked once they are loaded, just before
    /// attaching) says yes, attaches them: the complete layer. If it says no, or anything
    /// fails, everything is detached; the cgroup, which holds the program, is left to the
    /// caller to remove ([`super::remove_run_cgroup`]) once the program has ended.
    pub fn finish(self, go_on: impl FnOnce() -> bool) -> Result<Option<Witness>> {
        let Early { mut ebpf, cgroup, parts } = self;
        object::load_rest(&mut ebpf)?;
        if !go_on() {
            return Ok(None);
        }
        let program_ids = object::attach(&mut ebpf, cgroup.dir_fd(), object::Programs::Rest)
            .and_then(|()| object::program_ids(&ebpf))?;
        Ok(Some(Witness::assemble(ebpf, cgroup, program_ids, parts, None)))
    }
}

/// The object being loaded ([`Witness::preload`], [`Witness::preload_first`]).
pub struct Preload {
    thread: Option<std::thread::JoinHandle<Result<Ebpf>>>,
    /// The programs loading.
    which: object::Programs,
    map_use: object::Use,
}

impl Preload {
    fn start(which: object::Programs, map_use: object::Use) -> Preload {
        let load = move || load_for(which, map_use);
        let thread = std::thread::Builder::new().name("sockstrace-preload".into()).spawn(load);
        Preload { thread: thread.ok(), which, map_use }
    }

    /// The loaded object (loaded here if no thread could be started).
    fn join(self) -> Result<Ebpf> {
        match self.thread {
            Some(thread) => {
                thread.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the loader thread panicked")))
            }
            None => load_for(self.which, self.map_use),
        }
    }
}

fn load_for(which: object::Programs, map_use: object::Use) -> Result<Ebpf> {
    match which {
        object::Programs::First => object::load_first(map_use),
        object::Programs::All | object::Programs::Rest => object::load_for(map_use),
    }
}

/// Our programs, attached to a fresh cgroup that the traced program joins ([`Witness::start`]),
/// or to an existing cgroup ([`Witness::attach`]).
///
/// Every inet socket created in the cgroup is recorded ([`Witness::socket_facts`]); every
/// leak its hooks see is reported ([`Witness::take_events`]) and, with `enforce`, refused with
/// `EPERM`. The hooks run against the socket's cgroup, so calls the supervisor performs on its
/// duplicates of the program's sockets pass through them too.
pub struct Witness {
    /// The programs and their cgroup links; `None` once detached.
    ebpf: Option<Ebpf>,
    cgroup: Cgroup,
    /// The kernel's ids of our programs, to tell them apart from others on the same cgroup.
    program_ids: Vec<u32>,
    sockets: SocketsMap,
    dropped: PerCpuArray<MapData, u64>,
    /// The event ring buffer until [`Witness::take_events`] hands it to its reader task.
    ring: Option<RingBuf<MapData>>,
    /// The programs' log (aya-log) until [`Witness::take_events`] starts its task.
    logger: Option<KernelLogger>,
    /// Tells the reader task to drain and end, and the logger task to forward what is left.
    events_stop: Option<EventsStop>,
    /// Set once `stop` has torn everything down, so `Drop` has nothing left to do.
    stopped: bool,
    /// The BPF LSM `socket_create` program: `None` until [`Witness::gate_socket_creation`]
    /// tried it, then whether it is attached.
    socket_lsm: Option<bool>,
    /// The egress gate is attached (see `object::attach_all`).
    egress_gate: bool,
    /// The hooks refuse what the policy does not allow (not only report it).
    enforcing: bool,
    /// An audit's process tracking and exemption counts.
    tracking: Option<Tracking>,
}

impl Witness {
    /// Finds or mounts cgroup2, creates a fresh cgroup (`<cgroup2>/sockstrace/run-<our
    /// pid>-<n>`), loads the object, fills the policy maps and attaches every program to that
    /// cgroup. Needs root. [`Witness::stop`] removes the cgroup again.
    #[cfg(test)]
    pub fn start(policy: &Policy, enforce: bool) -> Result<Witness> {
        let loaded = Loaded::new(policy, enforce)?;
        let root = cgroup2_root().context("finding or mounting cgroup2")?;
        loaded.attach(Cgroup::create(&root)?, None)
    }

    /// Starts loading the object (maps and programs, which need no policy) on a thread of its
    /// own, so that the verifier's time overlaps whatever the caller prepares meanwhile; see
    /// [`Witness::start_preloaded`].
    pub fn preload(map_use: object::Use) -> Preload {
        Preload::start(object::Programs::All, map_use)
    }

    /// [`Witness::start`] with the object `preload` loaded.
    pub fn start_preloaded(preload: Preload, policy: &Policy, enforce: bool) -> Result<Witness> {
        // Whatever the preload left (nothing, after `Witness::preload`) is loaded here.
        let ebpf = preload.join().and_then(|mut ebpf| object::load_rest(&mut ebpf).map(|()| ebpf));
        let loaded = Loaded::with(ebpf, policy, enforce)?;
        let root = cgroup2_root().context("finding or mounting cgroup2")?;
        loaded.attach(Cgroup::create(&root)?, None)
    }

    /// Starts loading the object with only the [`object::FIRST`] programs, on a thread of its
    /// own; see [`Witness::start_first`].
    pub fn preload_first(map_use: object::Use) -> Preload {
        Preload::start(object::Programs::First, map_use)
    }

    /// Makes the run's cgroup with the policy written and the [`object::FIRST`] programs of
    /// `preload` ([`Witness::preload_first`]) attached: the program can be born in it at once,
    /// and [`Early::finish`] completes the layer.
    pub fn start_first(preload: Preload, policy: &Policy, enforce: bool) -> Result<Early> {
        let loaded = Loaded::with(preload.join(), policy, enforce)?;
        let root = cgroup2_root().context("finding or mounting cgroup2")?;
        loaded.attach_first(Cgroup::create(&root)?)
    }

    /// Loads the object, fills the policy maps and attaches every program to the existing
    /// cgroup v2 directory `cgroup_dir` (see [`super::resolve_cgroup`]): the hooks then run for
    /// every socket of that cgroup and of every cgroup below it, whenever it joined (cgroup
    /// links are always inherited by descendants). Needs root. The cgroup is neither joined,
    /// changed nor removed: [`Witness::stop`] only detaches.
    ///
    /// Processes `exemptions` names are neither reported nor refused; their activity is
    /// counted ([`Witness::exempt_activity`]). Every process is tracked from exec or fork to
    /// exit ([`Witness::tracker`]), so a leak is attributed even when its process is gone.
    pub fn attach(
        policy: &Policy,
        enforce: bool,
        cgroup_dir: &Path,
        exemptions: &Exemptions,
    ) -> Result<Witness> {
        let mut loaded = Loaded::new(policy, enforce)?;
        loaded.backstop = loaded.backstop.for_audit();
        loaded.attach(Cgroup::existing(cgroup_dir)?, Some(exemptions))
    }

    /// A witness of `ebpf`, whose programs (`program_ids`) are attached to `cgroup`.
    fn assemble(
        ebpf: Ebpf,
        cgroup: Cgroup,
        program_ids: Vec<u32>,
        parts: Parts,
        tracking: Option<Tracking>,
    ) -> Self {
        let Parts { sockets, dropped, ring, logger, enforcing } = parts;
        Witness {
            ebpf: Some(ebpf),
            cgroup,
            program_ids,
            sockets,
            dropped,
            ring,
            logger,
            events_stop: None,
            stopped: false,
            socket_lsm: None,
            egress_gate: !crate::testing::disabled("egress"),
            enforcing,
            tracking,
        }
    }

    /// How many sets the socket facts map holds.
    #[cfg(test)]
    pub fn socket_sets(&self) -> u32 {
        self.sockets.sets()
    }

    /// The process records (audit), where the tracking tracepoints are attached.
    pub fn tracker(&self) -> Option<Arc<Tracker>> {
        self.tracking.as_ref().and_then(|t| t.tracker.clone())
    }

    /// Processes of exempt executables that were running when the audit began.
    pub fn exempt_running(&self) -> usize {
        self.tracking.as_ref().map_or(0, |t| t.marked)
    }

    /// What exempt processes did around the proxy (audit), by pid.
    pub fn exempt_activity(&self) -> Vec<ExemptActivity> {
        self.tracking.as_ref().map(|t| tracking::read_exempt_counts(&t.exempt_counts)).unwrap_or_default()
    }

    /// `<cgroup>/cgroup.procs`, opened `O_WRONLY | O_CLOEXEC`, for a cgroup of our own
    /// ([`Witness::start`]; `None` after [`Witness::attach`]). The traced child writes `"0"`
    /// into it (one `write(2)`, async-signal-safe) between fork and exec to join the cgroup;
    /// close-on-exec keeps it out of the program.
    pub fn procs_fd(&self) -> Option<BorrowedFd<'_>> {
        self.cgroup.procs_fd()
    }

    /// The directory of a cgroup of our own ([`Witness::start`]; `None` after
    /// [`Witness::attach`]), for a child to be born in (`clone3(CLONE_INTO_CGROUP)`).
    pub fn cgroup_dir_fd(&self) -> Option<BorrowedFd<'_>> {
        self.cgroup.procs_fd().map(|_| self.cgroup.dir_fd())
    }

    /// The gates beyond the socket-call hooks, for the layers line: `", egress gate"` when the
    /// egress program is attached (always, but for the test-only switch `egress`).
    pub fn gates(&self) -> &'static str {
        if self.egress_gate {
            ", egress gate"
        } else {
            ""
        }
    }

    /// The loaded object (`None` once detached), for `udp_peers`.
    pub(super) fn ebpf_mut(&mut self) -> Option<&mut Ebpf> {
        self.ebpf.as_mut()
    }

    /// Whether the kernel itself refuses, on its own copy of the address, every inet connect
    /// and addressed datagram the policy does not allow, on any inet socket of the cgroup: the
    /// hooks enforce, and the egress gate judges every packet (for sockets whose connect or
    /// send no hook sees, such as ping or UDP-Lite). Sockets of other families are the
    /// seccomp layer's to keep out (see `supervisor::fast_path`).
    pub fn judges_every_inet_destination(&self) -> bool {
        self.enforcing && self.egress_gate && self.ebpf.is_some()
    }

    /// The cgroup's id (what `bpf_get_current_cgroup_id` returns inside it).
    pub fn cgroup_id(&self) -> u64 {
        self.cgroup.id()
    }

    pub fn cgroup_path(&self) -> &Path {
        self.cgroup.path()
    }

    /// Reads socket facts by cookie, after this witness is gone too.
    pub fn facts_reader(&self) -> FactsReader {
        FactsReader(self.sockets.clone())
    }

    /// What the kernel knows of a socket, by cookie (`getsockopt(SO_COOKIE)`); `None` if no
    /// hook of ours ever saw it (or it was evicted: the map keeps the most recent 65536).
    #[cfg(test)]
    pub fn socket_facts(&self, cookie: u64) -> Option<KernelFacts> {
        maps::lookup_facts(&self.sockets, cookie).map(|raw| KernelFacts::from_raw(&raw))
    }

    /// Starts reading the event ring buffer on the current tokio runtime; every leak the
    /// kernel sees arrives on the returned channel. Once only. After [`Witness::stop`] the
    /// reader drains what is queued and the channel closes.
    ///
    /// Also starts forwarding the programs' own log messages to the `log` crate, on a task of
    /// their own (see `kernel::logs`); if that cannot start, the events come all the same.
    pub fn take_events(&mut self) -> Result<mpsc::UnboundedReceiver<KernelEvent>> {
        let ring = self.ring.take().context("the kernel events were already taken")?;
        let (rx, stop) = read_events(ring, self.logger.take())?;
        self.events_stop = Some(stop);
        Ok(rx)
    }

    /// Gates socket creation by tasks of the cgroup with the BPF LSM `socket_create` program
    /// (raw and packet sockets, families no hook sees: refused when enforcing), attaching it
    /// on the first call; whether it is attached. False where the kernel refuses BPF LSM
    /// programs (said once, at debug level), or once detached.
    pub fn gate_socket_creation(&mut self) -> bool {
        if let Some(on) = self.socket_lsm {
            return on && self.ebpf.is_some();
        }
        let Some(ebpf) = self.ebpf.as_mut() else {
            return false;
        };
        let on = match object::attach_socket_lsm(ebpf) {
            Ok(_) => true,
            Err(err) => {
                log::debug!("socket creation is not gated by BPF LSM: {err:#}");
                false
            }
        };
        self.socket_lsm = Some(on);
        on
    }

    /// Events the ring buffer had to drop because it was full (0 if the counter cannot be
    /// read, which does not happen with a loaded object).
    pub fn dropped(&self) -> u64 {
        maps::read_dropped(&self.dropped).unwrap_or(0)
    }

    /// Detaches every program (the hooks stop; socket facts stay readable).
    pub(crate) fn detach(&mut self) {
        // Dropping the object closes the program and link descriptors: the kernel detaches.
        drop(self.ebpf.take());
    }

    /// The hooks of the cgroup (attach type names, see `query::ATTACH_TYPES`) where one of our
    /// programs is still attached, asking the kernel (`BPF_PROG_QUERY`). Empty once
    /// [`Witness::detach`] has done its work; every hook while attached.
    pub fn attached_hooks(&self) -> Result<Vec<&'static str>> {
        let mut hooks = Vec::new();
        for &(name, attach_type) in query::ATTACH_TYPES {
            let ids = query::attached_ids(self.cgroup.dir_fd(), attach_type).with_context(|| {
                format!("asking which programs are attached to {}", self.cgroup.path().display())
            })?;
            if ids.iter().any(|id| self.program_ids.contains(id)) {
                hooks.push(name);
            }
        }
        Ok(hooks)
    }

    /// Detaches every program and makes sure the kernel agrees: polls `BPF_PROG_QUERY` on the
    /// cgroup until none of our programs is attached to any hook (the kernel releases a link
    /// when its last descriptor closes), or fails naming the hooks that kept one.
    pub fn detach_verified(&mut self) -> Result<()> {
        self.detach();
        let deadline = Instant::now() + DETACH_PATIENCE;
        loop {
            let left = self.attached_hooks()?;
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "programs of ours are still attached to {} after detaching: {}",
                    self.cgroup.path().display(),
                    left.join(", ")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Detaches every program, lets the event reader drain and end, and removes the cgroup if
    /// we created it (waiting briefly while exiting tasks leave it). Fails if tasks are still
    /// in it.
    pub fn stop(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        self.stopped = true;
        self.detach();
        if let Some(stop) = self.events_stop.take() {
            stop.stop();
        }
        self.cgroup.remove()
    }
}

impl Drop for Witness {
    /// Best effort: the same as [`Witness::stop`], errors ignored.
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.teardown();
        }
    }
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("cgroup", &self.cgroup.path())
            .field("cgroup_id", &self.cgroup.id())
            .field("attached", &self.ebpf.is_some())
            .finish_non_exhaustive()
    }
}
