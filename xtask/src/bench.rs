//! `cargo xtask bench [--quick] [--rounds N]`: the brief's performance ratios, measured in one run.
//!
//! Each round runs every workload natively, under `sockstrace run` (release, with and without its
//! kernel layer; with it, the program runs as `nobody`, as under sudo, which takes the fast path),
//! under `strace --seccomp-bpf` (the ptrace reference) and in a cgroup watched by
//! `sockstrace audit`, and under a one-instruction allow-all seccomp filter (the floor any filter
//! costs), rotating the tools' order from round to round; the table shows medians and ratios to
//! native, marks the brief's targets, and the JSON goes to `target/bench/bench.json`. Then it
//! times a bare user-notification round trip (the floor under every trapped call), samples the
//! supervisor's memory during a 16-thread storm, and audit's leak flood counts the events audit
//! reports and loses at 100k leaks a second. It reports, it does not judge: it fails only when a
//! workload fails.
//!
//! With `--peers`, sandlock and Syd (the other seccomp user-notification sandboxes) are built once
//! into `target/peers` and measured in the same rounds, as columns beside strace (see `peers`).

mod audit;
pub mod fixture;
mod hooks;
mod measure;
mod option_cost;
mod peers;
mod report;
mod soak;
mod udp_socks;
mod workload;

use std::{
    net::{Ipv4Addr, UdpSocket},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use self::{
    audit::{Audit, BenchCgroup},
    fixture::{HttpServer, Microsocks, Sink},
    hooks::HookCost,
    measure::{NotifyFloor, StormFloors},
    peers::Peer,
    report::{Results, Sample},
    workload::{Endpoints, Sizes, Timing, Tool, Workload, FLOOD_RATE},
};
use crate::setup;

const USAGE: &str =
    "usage: cargo xtask bench [--quick] [--rounds N] [--sockstrace PATH] [--peers] [--soak [N]] [--hooks]

  --quick            a smoke run: a tenth of the work, 3 rounds unless --rounds says otherwise
  --rounds N         interleaved rounds per workload and tool (default 5); the table shows medians
  --sockstrace PATH  measure this binary instead of building target/release/sockstrace
                     (to compare two builds of the supervisor)
  --peers            also measure sandlock and Syd (seccomp user-notification sandboxes) with the
                     same policies, beside strace; built once from crates.io into target/peers
  --soak [N]         instead of the table: N connects (default 1000000) through the proxy under
                     `sockstrace run`, none may fail; reports whether the supervisor's RSS stays flat
  --hooks            instead of the table: audit's eBPF run time per connect cycle on the 1-thread
                     storm (kernel.bpf_stats_enabled), once per round: the per-program cost alone";

struct Options {
    quick: bool,
    rounds: usize,
    sockstrace: Option<PathBuf>,
    /// `--peers`: sandlock and Syd columns.
    peers: bool,
    /// `--soak`: the number of connects.
    soak: Option<u64>,
    /// `--hooks`: audit's eBPF run time alone.
    hooks: bool,
}

/// The options, or `None` when help was asked for.
fn parse(args: &[String]) -> Result<Option<Options>> {
    let mut quick = false;
    let mut rounds = None;
    let mut sockstrace = None;
    let mut soak = None;
    let mut peers = false;
    let mut hooks = false;
    let mut args = args.iter().peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--peers" => peers = true,
            "--hooks" => hooks = true,
            "--rounds" => {
                let value = args.next().context("--rounds needs a number")?;
                let n: usize =
                    value.parse().ok().filter(|n| *n > 0).with_context(|| {
                        format!("--rounds: `{value}` is not a positive number\n\n{USAGE}")
                    })?;
                rounds = Some(n);
            }
            "--sockstrace" => {
                let path = args.next().context("--sockstrace needs a path")?;
                sockstrace = Some(PathBuf::from(path));
            }
            "--soak" => {
                let count = args.next_if(|next| !next.starts_with("--"));
                let n =
                    match count {
                        Some(value) => value.parse().ok().filter(|n| *n > 0).with_context(|| {
                            format!("--soak: `{value}` is not a positive number\n\n{USAGE}")
                        })?,
                        None => soak::DEFAULT_CONNECTS,
                    };
                soak = Some(n);
            }
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown bench option `{other}`\n\n{USAGE}"),
        }
    }
    let rounds = rounds.unwrap_or(if quick { 3 } else { 5 });
    Ok(Some(Options { quick, rounds, sockstrace, peers, soak, hooks }))
}

/// Everything the workloads talk to, kept alive for the whole run.
struct Fixtures {
    _storm: Sink,
    _bulk: Sink,
    _udp: UdpSocket,
    http: HttpServer,
    _socks: Microsocks,
    endpoints: Endpoints,
    /// The cgroup `sockstrace audit` watches, or why there is none (the audit column is then
    /// not measured).
    cgroup: Result<BenchCgroup, String>,
}

fn start_fixtures(client: &Path) -> Result<Fixtures> {
    let storm = Sink::start(client, "close", 4)?;
    let bulk = Sink::start(client, "drain", 1)?;
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a UDP socket on 127.0.0.1")?;
    let http = HttpServer::start(Ipv4Addr::new(127, 0, 0, 2), "sockstrace bench page\n")?;
    let socks = Microsocks::start()?;
    let endpoints = Endpoints {
        client: client.to_path_buf(),
        storm_port: storm.port(),
        bulk_port: bulk.port(),
        udp_port: udp.local_addr()?.port(),
        socks_port: socks.addr().port(),
        http_port: http.addr().port(),
    };
    eprintln!(
        "bench: storm listener 127.0.0.1:{}, bulk sink 127.0.0.1:{}, udp 127.0.0.1:{}, microsocks {}, web {}",
        endpoints.storm_port,
        endpoints.bulk_port,
        endpoints.udp_port,
        socks.addr(),
        http.addr()
    );
    let cgroup = BenchCgroup::create().map_err(|e| format!("{e:#}"));
    match &cgroup {
        Ok(cgroup) => eprintln!("bench: audit watches cgroup {}", cgroup.path().display()),
        Err(why) => eprintln!("bench: warning: the audit column is not measured: {why}"),
    }
    Ok(Fixtures { _storm: storm, _bulk: bulk, _udp: udp, http, _socks: socks, endpoints, cgroup })
}

pub fn run(args: &[String]) -> Result<()> {
    let Some(options) = parse(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    setup::run()?;
    let sockstrace = match options.sockstrace {
        Some(path) if path.is_file() => path,
        Some(path) => bail!("--sockstrace: {} is not a file", path.display()),
        None => fixture::build_sockstrace()?,
    };
    let client = fixture::build_client()?;
    if let Some(connects) = options.soak {
        return run_soak(&sockstrace, &client, connects);
    }
    let peers = if options.peers { peers::prepare() } else { Vec::new() };
    let fixtures = start_fixtures(&client)?;
    let sizes = if options.quick { Sizes::QUICK } else { Sizes::FULL };
    let workloads = fixtures.endpoints.workloads(sizes);
    if options.hooks {
        return run_hooks(&sockstrace, &fixtures, &workloads, options.rounds);
    }
    check_peers(&peers, &sockstrace, &fixtures, &workloads)?;
    let mut results = Results::new(&workloads, sizes.rss_connects);
    results.audit_unavailable = fixtures.cgroup.as_ref().err().cloned();
    results.peers = &peers;
    let load = load_average();
    warn_if_busy(load);
    for round in 0..options.rounds {
        eprintln!("bench: round {}/{}", round + 1, options.rounds);
        run_round(round, &sockstrace, &fixtures, &peers, &mut results);
    }
    eprintln!("bench: bare user-notification round trips");
    results.notify_floor = Some(notify_floor(&client, sizes.notify_calls, options.rounds));
    eprintln!("bench: a trapped connect answered by a bare supervisor");
    let endpoints = &fixtures.endpoints;
    results.connect_floors = Some(storm_floors(
        sizes.connects,
        options.rounds,
        || endpoints.native_connect_storm(sizes.connects),
        |mode| endpoints.notify_connect(sizes.connects, mode),
    ));
    eprintln!("bench: the bare supervisor's floors on the UDP storm");
    results.datagram_floors = Some(storm_floors(
        sizes.datagrams,
        options.rounds,
        || endpoints.native_udp_storm(sizes.datagrams),
        |mode| endpoints.notify_udp(sizes.datagrams, mode),
    ));
    eprintln!("bench: supervisor peak RSS during a 16-thread storm");
    let storm = fixtures.endpoints.rss_storm(sizes);
    results.peak_rss =
        Some(peak_rss(&sockstrace, &fixtures.endpoints.client, &storm).map_err(|e| format!("{e:#}")));
    eprintln!("bench: leak handling with --stack on and off");
    let leaks = if options.quick { 1000 } else { 5000 };
    let port = fixtures.endpoints.udp_port;
    let stack =
        option_cost::stack(&sockstrace, &client, port, leaks, options.rounds).map_err(|e| format!("{e:#}"));
    eprintln!("bench: allowed datagrams with --report on and off");
    let reported = option_cost::report(&sockstrace, &client, port, sizes.datagrams, options.rounds)
        .map_err(|e| format!("{e:#}"));
    if let Ok(cgroup) = &fixtures.cgroup {
        eprintln!("bench: audit leak flood, {} UDP leaks at {FLOOD_RATE}/s", sizes.flood);
        let port = fixtures.endpoints.udp_port;
        let flood = audit::leak_flood(&sockstrace, cgroup, &client, port, sizes.flood, FLOOD_RATE);
        results.flood = Some(flood.map_err(|e| format!("{e:#}")));
        eprintln!("bench: audit's eBPF run time on a 1-thread storm (kernel.bpf_stats_enabled)");
        let storm = workloads.iter().find(|w| w.key == "connect_storm_1t").context("no 1-thread storm")?;
        results.hooks = Some(hook_cost(&sockstrace, cgroup, &client, storm).map_err(|e| format!("{e:#}")));
    }

    eprintln!("bench: UDP through the SOCKS5 relay (danted)");
    let udp = udp_socks::measure(&sockstrace).map_err(|e| format!("{e:#}"));

    println!();
    print!("{}", results.table(options.rounds));
    println!(
        "{}",
        stack
            .as_ref()
            .map_or_else(|e| format!("leak with --stack: failed: {e}"), option_cost::OptionCost::line)
    );
    println!(
        "{}",
        reported.as_ref().map_or_else(
            |e| format!("allowed datagram with --report: failed: {e}"),
            option_cost::OptionCost::line
        )
    );
    match &udp {
        Ok(row) => println!("{}", row.line()),
        Err(why) => println!("udp via SOCKS5 relay: not measured ({why})"),
    }
    let path = fixture::bench_dir()?.join("bench.json");
    let mut json = results.json(options.rounds, options.quick, &sockstrace.display().to_string());
    json["leak_stack"] = stack.as_ref().map_or_else(|e| e.as_str().into(), option_cost::OptionCost::json);
    json["report_cost"] = reported.as_ref().map_or_else(|e| e.as_str().into(), option_cost::OptionCost::json);
    json["load_average_before"] = load.into();
    json["udp_socks"] = udp.as_ref().map(udp_socks::UdpSocks::json).unwrap_or_else(|why| why.clone().into());
    std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("json: {}", path.display());

    let failures = results.failures();
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("bench: FAILED: {failure}");
        }
        bail!("{} run(s) failed", failures.len());
    }
    Ok(())
}

/// `--hooks`: audit's eBPF run time on the 1-thread storm, once per round.
fn run_hooks(sockstrace: &Path, fixtures: &Fixtures, workloads: &[Workload], rounds: usize) -> Result<()> {
    let cgroup = match &fixtures.cgroup {
        Ok(cgroup) => cgroup,
        Err(why) => bail!("audit cannot be measured: {why}"),
    };
    let storm = workloads.iter().find(|w| w.key == "connect_storm_1t").context("no 1-thread storm")?;
    warn_if_busy(load_average());
    for round in 0..rounds {
        eprintln!("bench: round {}/{rounds}", round + 1);
        println!("{}", hook_cost(sockstrace, cgroup, &fixtures.endpoints.client, storm)?.summary());
    }
    Ok(())
}

/// `--soak`: the soak alone, against the storm listener; its JSON goes to target/bench/soak.json.
fn run_soak(sockstrace: &Path, client: &Path, connects: u64) -> Result<()> {
    let sink = Sink::start(client, "close", 4)?;
    eprintln!("bench: soak, {connects} connects to 127.0.0.1:{} under sockstrace run", sink.port());
    let soak = soak::run(sockstrace, client, sink.port(), connects)?;
    println!("{}", soak.line());
    let path = fixture::bench_dir()?.join("soak.json");
    std::fs::write(&path, serde_json::to_string_pretty(&soak.json())? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("json: {}", path.display());
    if !soak.flat() {
        bail!("the supervisor's memory grew during the soak");
    }
    Ok(())
}

/// The 1-minute load average.
fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Says so when the machine is already busy, since the numbers will then be noisy.
fn warn_if_busy(load: Option<f64>) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(load) = load.filter(|load| *load > 0.5 * cpus as f64) {
        eprintln!(
            "bench: warning: load average {load:.2} on {cpus} CPUs before starting: expect noisy numbers"
        );
    }
}

/// Before any timing, that each built peer runs every workload it measures to success (with the
/// same checks as a measured run) and refuses what its policy does not allow. Fails loudly
/// otherwise: the column would time an error path, or an open sandbox.
fn check_peers(peers: &[Peer], sockstrace: &Path, fixtures: &Fixtures, workloads: &[Workload]) -> Result<()> {
    let refusals = peers::refusals(&fixtures.endpoints);
    for peer in peers.iter().filter(|peer| peer.bin().is_some()) {
        let name = peer.spec.binary;
        eprintln!(
            "bench: checking that {name} runs every workload and refuses what its policy does not allow"
        );
        for workload in workloads.iter().filter(|w| w.measured_by(peer.spec.tool)) {
            run_one(peer.spec.tool, sockstrace, workload, fixtures, peers).with_context(|| {
                format!(
                    "{name} does not run `{}` under its policy: its column would time a failure",
                    workload.label
                )
            })?;
        }
        peers::check_refusals(peer, &refusals)?;
    }
    Ok(())
}

/// One run of every workload under every measured tool, the tools' order rotated by `round`.
fn run_round(round: usize, sockstrace: &Path, fixtures: &Fixtures, peers: &[Peer], results: &mut Results) {
    let mut tools: Vec<Tool> = Tool::ALL
        .into_iter()
        .filter(|&tool| tool != Tool::Audit || fixtures.cgroup.is_ok())
        .chain(peers.iter().filter(|peer| peer.bin().is_some()).map(|peer| peer.spec.tool))
        .collect();
    let len = tools.len();
    tools.rotate_left(round % len);
    for (i, workload) in results.workloads.iter().enumerate() {
        for &tool in tools.iter().filter(|&&tool| workload.measured_by(tool)) {
            let outcome = run_one(tool, sockstrace, workload, fixtures, peers);
            if let Err(failure) = &outcome {
                eprintln!("bench: {} under {} failed: {failure}", workload.label, tool.heading());
            }
            results.record(i, tool, outcome.map_err(|e| format!("{e:#}")));
        }
    }
}

/// Runs `workload` under `tool` once and checks it did its work. Under `audit`, a `sockstrace
/// audit` with the workload's policy watches the bench's cgroup from before the program starts
/// (in that cgroup) until after it ended.
fn run_one(
    tool: Tool,
    sockstrace: &Path,
    workload: &Workload,
    fixtures: &Fixtures,
    peers: &[Peer],
) -> Result<Sample> {
    let http = &fixtures.http;
    let mut command = match peers.iter().find(|peer| peer.spec.tool == tool) {
        Some(peer) => {
            let bin = peer.binary.as_deref().map_err(|why| anyhow::anyhow!("{why}"))?;
            peers::command(tool, bin, workload.allowed, &workload.program)
        }
        None => workload::command(tool, sockstrace, &fixtures.endpoints.client, workload),
    };
    let audit = match (tool, &fixtures.cgroup) {
        (Tool::Audit, Ok(cgroup)) => {
            Some((Audit::start(sockstrace, cgroup, &workload.audit_policy())?, cgroup))
        }
        (Tool::Audit, Err(why)) => bail!("no cgroup to audit: {why}"),
        _ => None,
    };
    let before = http.connections();
    let finished = match &audit {
        Some((_, cgroup)) => measure::run_in_cgroup(&command, cgroup.dir())?,
        None => measure::run(&mut command)?,
    };
    if tool == Tool::Run {
        let stderr = String::from_utf8_lossy(&finished.output.stderr);
        if let Some(leak) = stderr.lines().find(|line| line.contains("LEAK")) {
            bail!("sockstrace reported a leak for a workload its policy allows: {leak}");
        }
    }
    if let Some((audit, _)) = audit {
        let outcome = audit.stop()?;
        if outcome.leaks > 0 || outcome.events > 0 {
            bail!(
                "sockstrace audit reported {} leak(s) for a workload its policy allows: {}",
                outcome.leaks.max(outcome.events),
                outcome.first_event.unwrap_or_default()
            );
        }
    }
    if let Some(expected) = workload.http_requests {
        let seen = http.connections() - before;
        if seen != expected {
            bail!("the web server saw {seen} connections, not {expected}");
        }
    }
    let measured = match workload.timing {
        Timing::Client => measure::client_elapsed(&finished.output.stdout)?,
        Timing::Wall => finished.wall,
    };
    Ok(Sample { measured, wall: finished.wall })
}

/// The median of `rounds` runs of `bench_client notify-floor`, or why it failed.
fn notify_floor(client: &Path, calls: u64, rounds: usize) -> Result<NotifyFloor, String> {
    let mut runs = Vec::new();
    for _ in 0..rounds {
        let mut command = Command::new(client);
        command.arg("notify-floor").arg(calls.to_string());
        let finished = measure::run(&mut command).map_err(|e| format!("{e:#}"))?;
        runs.push(measure::notify_floor(&finished.output.stdout).map_err(|e| format!("{e:#}"))?);
    }
    let median = report::median(&runs.iter().map(|r| r.us_per_call).collect::<Vec<_>>()).unwrap_or(f64::NAN);
    Ok(NotifyFloor { us_per_call: median, sync_wake_up: runs.iter().all(|r| r.sync_wake_up) })
}

/// Medians of `rounds` rounds of a native 1-thread storm of `calls` calls and of the bare
/// supervisor (`trapped(mode)`) answering CONTINUE and performing the call, in turn; or why one
/// failed.
fn storm_floors(
    calls: u64,
    rounds: usize,
    native: impl Fn() -> Vec<std::ffi::OsString>,
    trapped: impl Fn(&str) -> Vec<std::ffi::OsString>,
) -> Result<StormFloors, String> {
    let us_per_call = |program: Vec<std::ffi::OsString>| -> Result<f64, String> {
        let mut command = Command::new(&program[0]);
        command.args(&program[1..]);
        let finished = measure::run(&mut command).map_err(|e| format!("{e:#}"))?;
        let elapsed = measure::client_elapsed(&finished.output.stdout).map_err(|e| format!("{e:#}"))?;
        Ok(elapsed.as_secs_f64() * 1e6 / calls as f64)
    };
    let (mut bare, mut cont, mut perform) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        bare.push(us_per_call(native())?);
        cont.push(us_per_call(trapped("continue"))?);
        perform.push(us_per_call(trapped("perform"))?);
    }
    let median = |runs: &[f64]| report::median(runs).unwrap_or(f64::NAN);
    Ok(StormFloors { native_us: median(&bare), continue_us: median(&cont), perform_us: median(&perform) })
}

/// Audit's eBPF run time while `storm` runs in the audited cgroup.
fn hook_cost(sockstrace: &Path, cgroup: &BenchCgroup, client: &Path, storm: &Workload) -> Result<HookCost> {
    let _stats = hooks::StatsOn::enable()?;
    let audit = Audit::start(sockstrace, cgroup, &storm.policy)?;
    let command = workload::command(Tool::Audit, sockstrace, client, storm);
    measure::run_in_cgroup(&command, cgroup.dir())?;
    let by_type = hooks::read(audit.pid())?;
    audit.stop()?;
    Ok(HookCost { cycles: storm.calls.unwrap_or(1), by_type })
}

/// The supervisor's peak RSS in KiB while it serves `storm`.
fn peak_rss(sockstrace: &Path, client: &Path, storm: &Workload) -> Result<u64> {
    let mut command = workload::command(Tool::Run, sockstrace, client, storm);
    measure::peak_rss_kib(&mut command)
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options() {
        let o = parse(&args(&[])).unwrap().unwrap();
        assert_eq!((o.quick, o.rounds), (false, 5));
        let o = parse(&args(&["--quick"])).unwrap().unwrap();
        assert_eq!((o.quick, o.rounds), (true, 3));
        let o = parse(&args(&["--quick", "--rounds", "7"])).unwrap().unwrap();
        assert_eq!((o.quick, o.rounds, o.peers), (true, 7, false));
        assert!(parse(&args(&["--quick", "--peers"])).unwrap().unwrap().peers);
        assert!(parse(&args(&["--help"])).unwrap().is_none());
        let o = parse(&args(&["--sockstrace", "/x/sockstrace"])).unwrap().unwrap();
        assert_eq!(o.sockstrace.as_deref(), Some(std::path::Path::new("/x/sockstrace")));
        assert!(parse(&args(&["--rounds", "0"])).is_err());
        assert!(parse(&args(&["--rounds"])).is_err());
        assert!(parse(&args(&["--fast"])).is_err());
        assert_eq!(parse(&args(&["--soak"])).unwrap().unwrap().soak, Some(1_000_000));
        assert_eq!(parse(&args(&["--soak", "5000", "--quick"])).unwrap().unwrap().soak, Some(5000));
        assert!(parse(&args(&["--soak", "0"])).is_err());
        assert!(parse(&args(&["--hooks", "--rounds", "3"])).unwrap().unwrap().hooks);
        assert!(!parse(&args(&[])).unwrap().unwrap().hooks);
    }
}
