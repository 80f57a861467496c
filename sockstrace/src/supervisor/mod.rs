//! `sockstrace run`: the seccomp supervisor.
//!
//! spawn (filter installed between fork and exec) -> serve notifications
//! concurrently on tokio -> reap -> summary.

// No panics in the supervisor: a failure is an error the caller answers
// (the call denied, reported `check-failed`), never an abort.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub(crate) mod abi;
mod cgroup_files;
mod copy_budget;
mod dns_setup;
mod error;
pub(crate) mod fence;
mod filter;
mod handlers;
pub mod identity;
mod inherited;
mod interrupt;
pub(crate) mod isolate;
mod kernel_events;
mod late_layer;
mod maker;
mod notif;
pub(crate) mod reap;
mod receivers;
mod spawn;
pub(crate) mod sys;
mod tracee;
mod tree;
mod udp_proxy;
mod who;

use std::ffi::OsString;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;

pub use error::RunError;
pub use handlers::LeakAction;
pub use handlers::SocksAuth;

use crate::kernel::Witness;
use crate::policy::Policy;
use crate::report_writer::{Layers, Reporter};
use notif::Notifier;
use tree::Tree;

/// What `run` was asked to do.
pub struct RunConfig {
    pub policy: Policy,
    pub on_leak: LeakAction,
    pub socks_auth: SocksAuth,
    pub dns: DnsMode,
    /// `--inspect-socks` and its rules.
    pub inspect: Option<crate::inspect::Rules>,
    pub kernel: KernelMode,
    pub allow_io_uring: bool,
    /// `--user` (or the invoking user under sudo), resolved: the program
    /// runs as this user with no capabilities; `None` keeps ours.
    pub user: Option<identity::Switch>,
    /// `--isolate-network`: the program in a network namespace of its own.
    pub isolate_network: bool,
    /// `--bridge-abstract`: abstract unix names bridged to the host's namespace.
    pub bridge_abstract: Vec<String>,
    /// `--syscalls` / `--learn-syscalls`.
    pub syscalls: crate::syscalls::Setting,
    /// `--stack`, `--core-on-leak`: where in the program each leak came from.
    pub leak_debug: Option<crate::stack::LeakDebug>,
    /// `--udp-proxy`: the SOCKS5 server for UDP (else the first `--proxy` offering it).
    pub udp_proxy: Option<std::net::SocketAddr>,
    pub command: Vec<OsString>,
}

/// `--dns`.
#[derive(Debug, Clone)]
pub enum DnsMode {
    Block,
    Log,
    Proxy(crate::dns::Upstream),
}

/// Whether to start the kernel layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelMode {
    Auto,
    Off,
    Required,
}

/// Shared by every notification handler.
pub struct Ctx {
    notifier: Arc<Notifier>,
    policy: Policy,
    on_leak: LeakAction,
    socks_auth: SocksAuth,
    /// `--dns log`: DNS leaks go through, reported.
    dns_log: bool,
    /// `--dns proxy`: the resolver, whose fake addresses socksify maps back to names.
    resolver: Option<crate::dns::Names>,
    /// `--inspect-socks`: the relay proxy connections go through.
    inspector: Option<crate::inspect::Inspector>,
    /// When each process last made a DNS query (for the inspector).
    dns_seen: crate::inspect::DnsSeen,
    allow_io_uring: bool,
    reporter: Arc<Reporter>,
    tree: Arc<Tree>,
    /// The kernel layer, when on; taken out at the end to stop it.
    witness: std::sync::RwLock<Option<Witness>>,
    receivers: receivers::Receivers,
    tracee_cache: Arc<tracee::TraceeCache>,
    /// What all calls in flight may copy out of the program together.
    copy_budget: copy_budget::CopyBudget,
    /// `--isolate-network` with inbound connections allowed: the program's listeners, forwarded.
    inbound: Option<Arc<isolate::inbound::Inbound>>,
    /// The system call allowlist (or learner), when not `--syscalls all`.
    syscalls: Option<crate::syscalls::Gate>,
    leak_debug: Option<crate::stack::LeakDebug>,
    /// `--on-leak socksify` for UDP: the proxy's relay, when one offers it.
    udp: Option<Arc<udp_proxy::UdpProxy>>,
    /// Makes the sockets of the program's i386 `socketcall(SYS_SOCKET)` (see `maker`).
    maker: maker::Maker,
    /// The network namespace the program (and its socket maker) started in.
    program_netns: Option<(u64, u64)>,
    /// Allowed UDP connects and addressed datagrams are answered CONTINUE, the kernel layer
    /// judging the address the kernel uses (see [`fast_path_otherwise`], `handlers::Call::kernel_judges`).
    /// Set when the kernel layer is attached.
    fast_path: Arc<std::sync::atomic::AtomicBool>,
    /// Whether the kernel layer is still loading, which every trapped call waits for (see
    /// `late_layer`).
    kernel: late_layer::LateLayer,
    /// The kernel's socket facts, from the start (also while the layer completes itself).
    kernel_facts: Option<crate::kernel::FactsReader>,
}

impl Ctx {
    /// Whether thread `tid` is in the network namespace the program started in
    /// (false when either cannot be read).
    pub(crate) fn in_program_netns(&self, tid: u32) -> bool {
        self.program_netns.is_some() && netns_of(tid) == self.program_netns
    }
}

/// A thread's network namespace, as the device and inode of its nsfs file.
fn netns_of(tid: u32) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(format!("/proc/{tid}/ns/net")).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Builds the seccomp filter with an allowlist's rules (for `doctor`).
pub fn build_filter(plan: &crate::syscalls::filter::Plan) -> Result<()> {
    filter::build(Some(plan)).map(drop)
}

/// Starts the kernel layer when we can (root); says why not otherwise.
fn start_witness(
    policy: &Policy,
    on_leak: LeakAction,
    mode: KernelMode,
    preload: Option<crate::kernel::Preload>,
) -> (Option<Witness>, String) {
    if mode == KernelMode::Off {
        return (None, "off (--kernel off)".into());
    }
    let Some(preload) = preload.filter(|_| nix::unistd::geteuid().is_root()) else {
        return (None, "off (not root)".into());
    };
    // Under --on-leak log the supervisor lets leaks through: the kernel only observes.
    let enforce = on_leak != LeakAction::Log;
    match Witness::start_preloaded(preload, policy, enforce) {
        Ok(w) => {
            let layer = layer_text(&w, enforce);
            (Some(w), layer)
        }
        Err(e) => (None, off_because(&e)),
    }
}

/// The `cgroup.kill` file of the run's cgroup at `cgroup`, open for writing (Linux 5.14+).
fn open_cgroup_kill(cgroup: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).open(cgroup.join("cgroup.kill"))
}

/// The layers line's text for a kernel layer that failed to start.
fn off_because(err: &anyhow::Error) -> String {
    let why = format!("{err:#}");
    format!("off ({})", why.lines().next().unwrap_or("failed to start"))
}

/// The layers line's text for an attached kernel layer.
fn layer_text(w: &Witness, enforce: bool) -> String {
    let mode = if enforce { "enforcing" } else { "observing" };
    format!("on ({mode}{}, cgroup {} id {})", w.gates(), w.cgroup_path().display(), w.cgroup_id())
}

/// Whether the kernel layer may join the program after its start (`late_layer`): where
/// nothing before its first trapped call needs the layer. Not with `--allow-io-uring` (its
/// operations pass no trapped call), UDP through the proxy (its relay is set up with the
/// layer) or `--isolate-network`. With `--kernel required`, a layer that fails to complete
/// kills the program before its first network call goes on.
fn joins_late(config: &RunConfig) -> bool {
    config.kernel != KernelMode::Off
        && !config.allow_io_uring
        && config.on_leak != LeakAction::Socksify
        && !config.isolate_network
        && !crate::testing::disabled("late-layer")
}

/// Runs the program under the supervisor; returns how it ended.
pub fn run(mut config: RunConfig, reporter: Reporter) -> Result<Outcome, RunError> {
    // First: from here on, same-uid programs cannot ptrace us or take our fds.
    let non_dumpable = fence::make_non_dumpable();
    // A file size limit (the user's) fails a report write with EFBIG, said at the end, instead
    // of killing us.
    sys::survive_file_size_limit();
    // The kernel layer's object loads (its verifier's time) while the rest is prepared.
    let root = nix::unistd::geteuid().is_root();
    // Where nothing needs the whole layer before the program's first trapped call, only the
    // socket-creation hook is attached before the program starts (`late_layer`).
    let late = root && joins_late(&config);
    let map_use = crate::kernel::object::Use::Run {
        udp_relay: config.on_leak == LeakAction::Socksify,
        inbound: config.policy.incoming == crate::policy::Incoming::Allow
            || !config.policy.incoming_from.is_empty(),
    };
    let preload = (config.kernel != KernelMode::Off && root).then(|| match late {
        true => Witness::preload_first(map_use),
        false => Witness::preload(map_use),
    });
    let program = config.command.first().context("no program given")?;
    let path = spawn::resolve_program(program)?;
    let plan = crate::syscalls::filter::Plan::of(&config.syscalls);
    let filter = filter::build(plan.as_ref()).context("building the seccomp filter")?;
    let gate = crate::syscalls::Gate::new(&config.syscalls);
    // The child makes raw system calls only, so the runtime's threads may exist at fork.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .on_thread_start(block_signals_in_this_thread)
        .build()
        .context("starting the async runtime")?;
    let dns_proxy = match &config.dns {
        DnsMode::Proxy(upstream) => {
            Some(dns_setup::DnsProxy::start(&runtime, *upstream, config.isolate_network)?)
        }
        DnsMode::Block | DnsMode::Log => None,
    };
    if let Some(proxy) = &dns_proxy {
        proxy.allow_in(&mut config.policy);
    }
    if config.allow_io_uring && !config.policy.incoming_from.is_empty() {
        // The kernel layer lets the listener through and does not filter peers: io_uring's
        // accepts would take any.
        return Err(RunError::Usage(
            "--allow-io-uring cannot be used with --allow-incoming-from: io_uring's accepts take \
             peers without passing the supervisor, which judges them"
                .into(),
        ));
    }
    if config.allow_io_uring && config.inspect.is_some() {
        // The kernel layer allows the proxy itself: io_uring's connects would reach it directly.
        return Err(RunError::Usage(
            "--allow-io-uring cannot be used with the SOCKS inspector (--inspect-socks, --require-socks-auth, \
             --isolation-regex): io_uring's connects reach the proxy without passing the inspector"
                .into(),
        ));
    }
    let reporter = Arc::new(reporter);
    let inspector = match config.inspect.take() {
        Some(rules) => {
            let refuse = config.on_leak != LeakAction::Log;
            let inspector = runtime
                .block_on(crate::inspect::Inspector::start(
                    rules,
                    refuse,
                    reporter.clone(),
                    config.isolate_network,
                    dns_proxy.as_ref().map(dns_setup::DnsProxy::names),
                ))
                .context("starting the SOCKS inspector")?;
            for addr in inspector.addrs() {
                let net = ipnet::IpNet::from(addr.ip());
                config.policy.allow.push(crate::policy::AllowRule::Net { net, port: Some(addr.port()) });
            }
            Some(inspector)
        }
        None => None,
    };
    // The kernel layer: attached now, or its first programs now and the rest once loaded.
    let enforce = config.on_leak != LeakAction::Log;
    let (mut witness, kernel_layer, mut early) = match preload {
        Some(preload) if late => match Witness::start_first(preload, &config.policy, enforce) {
            Ok(early) => (None, String::new(), Some(early)),
            Err(e) => (None, off_because(&e), None),
        },
        preload => {
            let (witness, layer) = start_witness(&config.policy, config.on_leak, config.kernel, preload);
            (witness, layer, None)
        }
    };
    let early_cgroup = early.as_ref().map(|e| (e.cgroup_path().to_path_buf(), e.cgroup_id()));
    // Under --kernel required, a layer that fails to complete kills the program (its trapped
    // calls are still waiting), and the run fails.
    let kill_if_failed = match (&early, config.kernel) {
        (Some(early), KernelMode::Required) => Some(
            open_cgroup_kill(early.cgroup_path())
                .context("opening the run cgroup's cgroup.kill (--kernel required)")?,
        ),
        _ => None,
    };
    if config.kernel == KernelMode::Required && witness.is_none() && early_cgroup.is_none() {
        return Err(anyhow::anyhow!("--kernel required, but the kernel layer is {kernel_layer}").into());
    }
    if config.allow_io_uring && witness.is_none() {
        return Err(RunError::Usage(format!(
            "--allow-io-uring needs the kernel layer to gate io_uring's connects, and it is {kernel_layer}"
        )));
    }
    let udp = udp_proxy::setup(
        &config.policy,
        config.on_leak,
        config.udp_proxy,
        &config.socks_auth,
        witness.as_mut(),
    );
    if let Some((None, state)) = &udp {
        crate::report_writer::human::write_line(&format!("sockstrace: UDP through the proxy: {state}"));
    }
    sys::set_child_subreaper()
        .map_err(std::io::Error::from_raw_os_error)
        .context("becoming a child subreaper")?;
    let procs = witness.as_ref().and_then(Witness::procs_fd).or(early.as_ref().and_then(|e| e.procs_fd()));
    let resolv_conf = dns_proxy.as_ref().map(dns_setup::DnsProxy::resolv_conf);
    let fast_path_configured = fast_path_otherwise(&config, inspector.is_some(), reporter.wants_allowed());
    // Judged just before the program starts: what we hold now is what it inherits.
    let inherited = match fast_path_configured {
        true => inherited::inet_sockets(),
        false => inherited::Inherited::Nothing,
    };
    let fast_path_otherwise = fast_path_configured && !inherited.keeps_fast_path_off();
    let fast_path =
        fast_path_otherwise && witness.as_ref().is_some_and(Witness::judges_every_inet_destination);
    let program = identity::Credentials::of_program(config.user.as_ref());
    let fence = fence::Fence::prepare(config.allow_io_uring, non_dumpable, cgroup_files::plan(&program));
    let isolation = match config.isolate_network {
        true => Some(prepare_isolation(&config.policy, dns_proxy.as_ref(), &config.bridge_abstract, root)?),
        false => None,
    };
    // The program's socket maker (its i386 socketcall(SYS_SOCKET), see `maker`).
    let (maker_ours, maker_theirs) = maker::channel().context("making the socket maker's channel")?;
    // With --allow-io-uring the program goes with its supervisor: io_uring's calls pass no
    // filter, and the kernel layer's programs go when the supervisor dies, so the maker kills
    // the cgroup when its channel ends (see `maker::spawn`; no cgroup.kill before Linux 5.14).
    // Without io_uring, a process that outlives its supervisor has every trapped call fail.
    let cgroup_kill = witness
        .as_ref()
        .filter(|_| config.allow_io_uring)
        .and_then(|w| open_cgroup_kill(w.cgroup_path()).ok());
    // The program's stdout and stderr, where shared with ours, through pipes we copy from.
    let mut relay = crate::report_writer::relay::Relay::start(reporter.writes_stdout());
    let setup = spawn::ChildSetup {
        no_new_privs: !root,
        cgroup_procs: procs,
        cgroup_dir: witness
            .as_ref()
            .and_then(Witness::cgroup_dir_fd)
            .or(early.as_ref().and_then(|e| e.cgroup_dir_fd())),
        resolv_conf: resolv_conf.as_deref(),
        landlock: fence.ruleset_fd(),
        user: config.user.as_ref(),
        isolate: isolation.as_ref(),
        maker: Some((std::os::fd::AsFd::as_fd(&maker_ours), std::os::fd::AsFd::as_fd(&maker_theirs))),
        cgroup_kill: cgroup_kill.as_ref().map(std::os::fd::AsFd::as_fd),
        stdio: relay.program_fds(),
    };
    let mut spawned = spawn::spawn(&path, &config.command, &filter, setup)?;
    relay.program_started();
    drop((maker_theirs, cgroup_kill));
    let mut fence_layer = fence.layer(spawned.landlock_failed);
    drop(fence);
    let mut inbound = None;
    let mut uploads = None;
    if let Some(mut isolation) = isolation {
        let sockets = std::mem::take(&mut spawned.forward_listeners);
        let handoff = inspector.as_ref().map(crate::inspect::Inspector::handoff);
        let started = isolation.start(&runtime, sockets, root, handoff).context("starting the forwarders")?;
        fence_layer.push_str(&started.description);
        inbound = started.inbound;
        uploads = Some(started.uploads);
    }
    let notifier = Notifier::new(spawned.listener);
    let sync_wakeup = notifier.enable_sync_wakeup();
    let seccomp_layer = format!(
        "on (user notification{}{})",
        if spawned.wait_killable { ", killable wait" } else { "" },
        if sync_wakeup { ", sync wake-up" } else { "" }
    );

    let fast_path = Arc::new(std::sync::atomic::AtomicBool::new(fast_path));
    let kernel_facts =
        witness.as_ref().map(Witness::facts_reader).or(early.as_ref().map(|e| e.facts_reader()));
    let (kernel_task, early_events) = {
        let _inside = runtime.enter();
        let (events, stop) = match (witness.as_mut(), early.as_mut()) {
            (Some(w), _) => (Some(w.take_events().context("reading the kernel's events")?), None),
            (None, Some(e)) => {
                let (events, stop) = e.take_events().context("reading the kernel's events")?;
                (Some(events), Some(stop))
            }
            (None, None) => (None, None),
        };
        let task = events
            .map(|events| runtime.spawn(kernel_events::report(events, reporter.clone(), fast_path.clone())));
        (task, stop)
    };
    let ctx = Arc::new(Ctx {
        notifier: Arc::new(notifier),
        policy: config.policy,
        on_leak: config.on_leak,
        socks_auth: config.socks_auth,
        dns_log: matches!(config.dns, DnsMode::Log),
        resolver: dns_proxy.as_ref().map(dns_setup::DnsProxy::names),
        inspector,
        dns_seen: Arc::default(),
        allow_io_uring: config.allow_io_uring,
        reporter: reporter.clone(),
        tree: Arc::new(Tree::new(std::process::id() as i32)),
        witness: std::sync::RwLock::new(witness),
        receivers: receivers::Receivers::default(),
        tracee_cache: Arc::default(),
        copy_budget: copy_budget::CopyBudget::default(),
        inbound,
        syscalls: gate,
        leak_debug: config.leak_debug.take(),
        udp: udp.as_ref().and_then(|(relay, _)| relay.clone()),
        maker: maker::Maker::new(maker_ours),
        program_netns: netns_of(spawned.pid as u32),
        fast_path,
        kernel: if early.is_some() { late_layer::loading() } else { late_layer::LateLayer::settled() },
        kernel_facts,
    });
    ctx.kernel.answer_with(ctx.notifier.clone());
    if let Some(early) = early {
        late_layer::join(
            ctx.clone(),
            late_layer::Joining { early, enforce, fast_path_otherwise, kill_if_failed },
        );
    }
    let status = runtime.block_on(serve(ctx.clone(), spawned.pid));
    // The maker leaves the program's cgroup before the kernel layer removes it.
    ctx.maker.close();
    let kernel_layer = match early_cgroup {
        None => kernel_layer,
        Some((cgroup, id)) => {
            let settled = ctx.kernel.end();
            if settled.is_none() || ctx.kernel.failed() {
                // Nothing holds the cgroup now: the rest is not attached and will not be (the
                // witness removes it otherwise). The program's tasks are leaving it.
                if let Err(e) = crate::kernel::remove_run_cgroup(&cgroup) {
                    crate::report_writer::human::say!("sockstrace: cleaning up the kernel layer: {e:#}");
                }
            }
            settled.unwrap_or_else(|| {
                let mode = if enforce { "enforcing" } else { "observing" };
                format!(
                    "on ({mode}, socket creation only: the rest was still loading when the program ended, \
                     which had no network call let through, each of which waits for it; cgroup {} id {id})",
                    cgroup.display()
                )
            })
        }
    };
    // Receiver threads still wait in the listener (nothing will come); they
    // end with the process. The kernel layer is taken down now.
    let witness = ctx.witness.write().ok().and_then(|mut w| w.take());
    let mut kernel_dropped = None;
    if let Some(w) = witness {
        kernel_dropped = Some(w.dropped());
        if let Err(e) = w.stop() {
            crate::report_writer::human::say!("sockstrace: cleaning up the kernel layer: {e:#}");
        }
    }
    if let Some(stop) = early_events {
        stop.stop();
    }
    if let Some(task) = kernel_task {
        // The channel closes once the reader has drained the ring buffer.
        let disagreements = runtime.block_on(task).unwrap_or(0);
        if disagreements > 0 {
            crate::report_writer::human::write_line(&format!(
                "sockstrace: warning: the kernel layer refused {disagreements} call(s) the supervisor had allowed \
                 and performed: the two layers disagree (a fault in one of them; see the events with \
                 kernel.performed_by_supervisor)"
            ));
        }
    }
    if let Some(uploads) = &uploads {
        // The program's last connections through the forwarders reach their destinations.
        uploads.drain(std::time::Duration::from_secs(2));
    }
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let dns = dns_proxy.as_ref().map(|p| serde_json::to_value(p.stats()).unwrap_or_default());
    let euid = nix::unistd::geteuid().as_raw();
    let program_layer = identity::describe(
        config.user.as_ref().map(|s| &s.identity),
        euid,
        identity::name_of(euid).as_deref(),
        config.isolate_network,
    );
    let mut kernel_layer = kernel_layer;
    if ctx.fast_path.load(std::sync::atomic::Ordering::Acquire) {
        kernel_layer
            .push_str("; fast path: allowed UDP connects and datagrams run in the kernel, which judges them");
    } else if let Some(why) = inherited.describe().filter(|_| kernel_layer.starts_with("on")) {
        kernel_layer.push_str(&format!("; {why}"));
    }
    let layers = Layers {
        seccomp: seccomp_layer,
        kernel: kernel_layer,
        fence: fence_layer,
        program: program_layer,
        syscalls: config.syscalls.describe(),
        kernel_dropped,
        dns,
        udp_proxy: udp.map(|(relay, state)| match relay {
            Some(relay) => relay.summary(),
            None => serde_json::json!({ "state": state }),
        }),
    };
    if let Some(gate) = &ctx.syscalls {
        let program = config.command.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
        match gate.finish(&config.syscalls, &program) {
            Ok(Some(line)) => crate::report_writer::human::write_line(&format!("sockstrace: {line}")),
            Ok(None) => {}
            Err(e) => crate::report_writer::human::say!("sockstrace: error: {e:#}"),
        }
    }
    relay.finish();
    let kernel_text = layers.kernel.clone();
    // The report is finished (its events written out, its summary last) whatever ends the run:
    // a run that fails below left the events still buffered, the last one cut in half.
    let summary = reporter.finish(layers, status);
    if ctx.kernel.failed() && config.kernel == KernelMode::Required {
        return Err(anyhow::anyhow!(
            "--kernel required, but the kernel layer is {kernel_text}: the program was killed before its first network call"
        )
        .into());
    }
    if ctx.receivers.starved() {
        // What the program tried while no thread could take its calls was never judged.
        return Err(anyhow::anyhow!(
            "no thread could take the program's calls for {:?}: it was killed, and what it tried meanwhile is not in the report",
            receivers::STARVED_LIMIT
        )
        .into());
    }
    if summary.report_failed {
        // Said above: a reader of the report's path would miss events or read a forgery.
        return Err(anyhow::anyhow!("the report file at its path does not hold sockstrace's report").into());
    }
    Ok(Outcome { status, leaks: summary.leaks })
}

/// Whether allowed UDP connects and addressed datagrams may be answered CONTINUE (the fast
/// path; `handlers::Call::kernel_judges` says why not TCP), the kernel running them in the
/// program's context on the address it reads then, instead of being performed by us on our
/// duplicate of the socket. The program may change the address, or what the fd number
/// names, after our decision; sound only where whatever it can put there is judged by the
/// kernel itself with the same policy:
/// - the kernel layer enforces, with its egress gate: the cgroup connect and sendmsg hooks
///   judge the kernel's own copy of the address, and the egress gate every packet of every
///   inet socket of the cgroup (ping, UDP-Lite, raw);
/// - no socket of another family can be swapped in: `socket()` of every family but unix,
///   inet, inet6, netlink and alg is refused (on registers, race-free), `socketpair()` of
///   every family but unix too (x86_64; i386 pairs are unix or TIPC), i386 `socketcall`'s
///   sockets are made by the socket maker from our copy of the arguments, and io_uring, which
///   makes sockets past seccomp, is refused (no `--allow-io-uring`);
/// - the program cannot take its sockets out of the hooks' reach: it runs as another user
///   than root, with no capabilities and no_new_privs (`--user`), so it can neither leave
///   its cgroup nor detach the kernel layer's programs;
/// - leaks are refused (not `--on-leak log`, which would let the kernel layer only report);
/// - what the kernel allows, the supervisor lets through unchanged: not with the SOCKS
///   inspector (`inspecting`), whose relay the supervisor puts in front of the proxy while the
///   kernel allows the proxy itself (a connect flipped to the proxy would skip the inspection);
/// - no event names an allowed call's destination (`reporting_allowed`: the JSON report of
///   `--report` has one per allowed call): the supervisor knows the address it judged, the
///   kernel sends to the one it reads later, which the program may have changed to another
///   allowed one. Without `--report`, allowed calls are only counted.
///
/// This says all but the first (the kernel layer, attached when this is asked, or later).
fn fast_path_otherwise(config: &RunConfig, inspecting: bool, reporting_allowed: bool) -> bool {
    !crate::testing::disabled("fast-path")
        && !inspecting
        && !reporting_allowed
        && !config.allow_io_uring
        && config.on_leak != LeakAction::Log
        && config.user.as_ref().is_some_and(|user| user.identity.uid != 0)
}

/// What the child needs to isolate itself; warns about allowed destinations
/// that stay unreachable (only single addresses with a port are forwarded).
fn prepare_isolation(
    policy: &Policy,
    dns: Option<&dns_setup::DnsProxy>,
    bridge_abstract: &[String],
    root: bool,
) -> Result<isolate::Isolation> {
    // The resolver's own forwards (UDP and TCP, to its port in our namespace) replace a plain one.
    let dns_forwards: Vec<isolate::Forward> =
        dns.into_iter().flat_map(dns_setup::DnsProxy::forwards).collect();
    let env: Vec<(&str, Option<String>)> = ["DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "DBUS_SYSTEM_BUS_ADDRESS"]
        .into_iter()
        .map(|k| (k, std::env::var(k).ok()))
        .collect();
    let bridges =
        isolate::abstract_unix::names(bridge_abstract, &env, &isolate::abstract_unix::listening_names());
    let (plan, unreachable) = isolate::Plan::new(policy, &dns_forwards, bridges);
    for rule in unreachable {
        crate::report_writer::human::say!(
            "sockstrace: warning: --isolate-network forwards single addresses with a port only; {rule} is unreachable from the program's namespace"
        );
    }
    isolate::Isolation::prepare(plan, root).context("preparing the program's network namespace")
}

/// How a run ended.
pub struct Outcome {
    /// The program's exit status (128+N when signal N ended it).
    pub status: i32,
    /// Leaks seen, whatever was done about them.
    pub leaks: u64,
}

/// Worker threads never take signals: a signal must not interrupt a connect
/// we perform for the tracee (the main thread takes them instead).
pub(crate) fn block_signals_in_this_thread() {
    sys::block_all_signals();
}

/// How often, once the main program has exited, we check whether every
/// traced process is gone.
const HANGUP_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// How long core files still being written at the end may take.
const CORE_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);
/// How long calls still in flight at the end may take to finish.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How often the kernel layer's count of lost events is looked at, and how often at most a
/// line says it grew.
const LOST_POLL: std::time::Duration = std::time::Duration::from_secs(1);
const LOST_LINE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Says on stderr, while the run goes on, that the kernel layer's ring buffer was full (the
/// summary gives the total); ends with the kernel layer.
async fn say_lost_events(ctx: Arc<Ctx>) {
    let mut lines = crate::kernel::lost::LostLines::new(LOST_LINE_EVERY);
    loop {
        tokio::time::sleep(LOST_POLL).await;
        let Some(lost) = ctx.witness.read().ok().and_then(|w| w.as_ref().map(Witness::dropped)) else {
            if ctx.kernel.is_loading() {
                continue;
            }
            return;
        };
        if let Some(line) = lines.next(lost, std::time::Instant::now()) {
            crate::report_writer::human::write_line(&line);
        }
    }
}

/// Serves notifications (on receiver threads) until every traced process is
/// gone, then returns the main program's exit status. It cannot fail: what follows it
/// (the report's end above all) always runs.
async fn serve(ctx: Arc<Ctx>, main: libc::pid_t) -> i32 {
    let (exit_tx, mut exit_rx) = watch::channel(None);
    tokio::spawn(reap::reaper(main, exit_tx));
    tokio::spawn(reap::forward_signals(main));
    tokio::spawn(say_lost_events(ctx.clone()));
    receivers::start(&ctx);
    // The listener hangs up only once the main program has been reaped.
    let code = exit_rx.wait_for(Option::is_some).await.map(|c| c.unwrap_or(1)).unwrap_or(1);
    while !ctx.notifier.hung_up() {
        tokio::time::sleep(HANGUP_POLL).await;
    }
    // Calls held for a kernel layer still loading have no caller left: they end now.
    ctx.kernel.abandon();
    // A leak's stack is symbolized after its call was answered: wait for it longer.
    let limit = if ctx.leak_debug.is_some() { 5 * DRAIN_LIMIT } else { DRAIN_LIMIT };
    let deadline = tokio::time::Instant::now() + limit;
    while ctx.receivers.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(HANGUP_POLL).await;
    }
    let busy = ctx.receivers.busy_refusals();
    if busy > 0 {
        crate::report_writer::human::say!("sockstrace: {busy} call(s) that would have waited were refused with EAGAIN while every receiver was held");
    }
    if ctx.leak_debug.is_some() {
        // Core files gcore is still writing (a large process takes seconds).
        let debug_ctx = ctx.clone();
        let finished = tokio::task::spawn_blocking(move || {
            if let Some(debug) = &debug_ctx.leak_debug {
                debug.finish(CORE_LIMIT);
            }
        });
        let _ = finished.await;
    }
    code
}
