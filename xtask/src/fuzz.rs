//! `cargo xtask fuzz`: a leak fuzzer whose oracle is the packets themselves.
//!
//! Generated programs of socket operations (tests/clients/fuzzclient.c executes them with raw
//! syscalls) run under `sockstrace run` inside a network namespace made for the run. Sniffers
//! on its loopback and on the far end of a veth pair, and sinks on non-allowed addresses, see
//! every packet; any that goes to a destination the policy does not allow is a leak, and a
//! leak the report does not list as let through is a finding. Findings are shrunk (delta
//! debugging) to a standalone C reproducer under target/fuzz/.
//!
//! `--self-check`: (a) against `--on-leak log` the fuzzer must find several kinds of leaks;
//! (b) against the planted bug (`SOCKSTRACE_TEST_DISABLE=plant-bug`, `--kernel off`) it must
//! find UDP to port 9 and shrink it to a short reproducer; (c) a program doing only allowed
//! things must produce no finding (no false positives).

mod env;
mod grammar;
mod oracle;
mod repro;
mod runner;
mod shrink;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde_json::json;

use crate::cmd;
use env::Env;
use grammar::{Config, Cov, Gen, Op, OptionTable, Rng};
use oracle::{Leak, Policy, Reported};
use runner::{Mode, Runner};

const USAGE: &str = "usage: cargo xtask fuzz [--seconds N] [--seed S] [--as-user U] [--self-check]
                         [--kernel auto|off|required] [--on-leak block|log|kill]
                         [--known-open CLASS,...] [--allowed-only] [--sockstrace PATH]
classes for --known-open: ";

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

struct Args {
    seconds: u64,
    seed: u64,
    as_user: Option<String>,
    self_check: bool,
    kernel: String,
    on_leak: String,
    known_open: BTreeSet<String>,
    allowed_only: bool,
    sockstrace: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args {
        seconds: 30,
        seed: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs(),
        as_user: None,
        self_check: false,
        kernel: "auto".into(),
        on_leak: "block".into(),
        known_open: BTreeSet::new(),
        allowed_only: false,
        sockstrace: None,
    };
    let usage = || format!("{USAGE}{}", grammar::class_names().join(","));
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().with_context(|| format!("{arg} needs a value\n{}", usage()));
        match arg.as_str() {
            "--seconds" => a.seconds = value()?.parse().context("--seconds")?,
            "--seed" => a.seed = value()?.parse().context("--seed")?,
            "--as-user" => a.as_user = Some(value()?),
            "--self-check" => a.self_check = true,
            "--kernel" => a.kernel = value()?,
            "--on-leak" => a.on_leak = value()?,
            "--known-open" => {
                for c in value()?.split(',').filter(|c| !c.is_empty()) {
                    if !grammar::class_names().contains(&c) {
                        bail!("unknown class {c}\n{}", usage());
                    }
                    a.known_open.insert(c.to_string());
                }
            }
            "--allowed-only" => a.allowed_only = true,
            "--sockstrace" => a.sockstrace = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{}", usage()),
        }
    }
    Ok(a)
}

/// A leak the report does not account for, with the sequence that produced it.
struct Finding {
    leak: Leak,
    reported: Reported,
    seq: u64,
    ops: Vec<Op>,
    shrunk: Option<Vec<Op>>,
    reproducer: Option<PathBuf>,
}

/// One fuzzing campaign's totals.
#[derive(Default)]
struct Campaign {
    sequences: u64,
    coverage: BTreeSet<Cov>,
    kinds: BTreeSet<String>,
    findings: Vec<Finding>,
}

struct Ctx {
    env: Env,
    runner: Runner,
    table: OptionTable,
    seed: u64,
    out: PathBuf,
}

pub fn run(args: &[String]) -> Result<()> {
    let args = parse(args)?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("cargo xtask fuzz needs root (network namespaces, packet sniffers)");
    }
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let root = cmd::workspace_root();
    let out = root.join("target/fuzz");
    std::fs::create_dir_all(&out)?;
    let sockstrace = match &args.sockstrace {
        Some(p) => p.clone(),
        None => {
            cmd::run(cmd::cargo().args(["build", "-q", "-p", "sockstrace"]))?;
            root.join("target/debug/sockstrace")
        }
    };
    let src = root.join("tests/clients/fuzzclient.c");
    let client = runner::build_client(&src, &out, false)?;
    let i386 = match runner::build_client(&src, &out, true) {
        Ok(_) => "built (not used by this run: the x86_64 client reaches the i386 ABI through int 0x80)"
            .to_string(),
        Err(e) => format!("unavailable ({})", e.to_string().lines().last().unwrap_or("gcc -m32 failed")),
    };
    println!("fuzz: i386 client: {i386}");
    let policy = Policy {
        proxies: vec![
            ("127.0.0.1".parse()?, grammar::addrs::PROXY_PORT),
            ("::1".parse()?, grammar::addrs::PROXY_PORT),
        ],
    };
    let env = Env::create(&policy)?;
    let runner = Runner::new(&sockstrace, &client)?;
    let mut ctx = Ctx { env, runner, table: OptionTable::from_headers(), seed: args.seed, out: out.clone() };
    println!(
        "fuzz: seed {} ({} socket options from the kernel headers), namespace {}, veth ifindex {}",
        args.seed,
        ctx.table.options.len(),
        ctx.env.ns,
        ctx.env.veth_ifindex
    );
    let started = Instant::now();
    let result = if args.self_check { self_check(&mut ctx, &args) } else { fuzz_main(&mut ctx, &args) };
    if interrupted() {
        bail!("interrupted");
    }
    let (summary, failed) = result?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut summary = summary;
    summary["seed"] = json!(args.seed);
    summary["elapsed_s"] = json!(elapsed);
    summary["runs"] = json!(ctx.runner.runs);
    summary["calls"] = json!(ctx.runner.ops_run);
    summary["calls_per_s"] = json!(ctx.runner.ops_run as f64 / ctx.runner.busy.as_secs_f64().max(0.001));
    summary["i386_client"] = json!(i386);
    let path = out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)?;
    println!(
        "fuzz: {} runs, {} calls, {:.0} calls/s (of time under sockstrace); summary: {}",
        ctx.runner.runs,
        ctx.runner.ops_run,
        ctx.runner.ops_run as f64 / ctx.runner.busy.as_secs_f64().max(0.001),
        path.display()
    );
    if let Some(msg) = failed {
        bail!("{msg}");
    }
    Ok(())
}

fn config(ctx: &Ctx, allowed_only: bool, skip: BTreeSet<String>) -> Config {
    Config { allowed_only, skip, veth_ifindex: ctx.env.veth_ifindex, veth_name: env::VETH_NEAR.to_string() }
}

fn mode(args: &Args, on_leak: &str, kernel: &str, plant_bug: bool) -> Mode {
    Mode {
        on_leak: on_leak.into(),
        kernel: kernel.into(),
        plant_bug,
        as_user: args.as_user.clone(),
        allow_io_uring: kernel != "off" && args.as_user.is_none(),
    }
}

/// Runs sequences until `deadline` or until `done` says the campaign has what it wants.
fn campaign(
    ctx: &mut Ctx,
    cfg: &Config,
    mode: &Mode,
    deadline: Instant,
    first_seq: u64,
    done: &dyn Fn(&Campaign) -> bool,
) -> Result<Campaign> {
    let mut c = Campaign::default();
    let mut seq = first_seq;
    while Instant::now() < deadline && !interrupted() && !done(&c) {
        let ops = sequence(ctx, cfg, seq);
        for op in &ops {
            c.coverage.extend(op.cov.iter().cloned());
        }
        let outcome = ctx.runner.run(&ctx.env, mode, &ops, &interrupted)?;
        if !outcome.report_ok && c.sequences == 0 {
            bail!("sockstrace wrote no report on the first run; its stderr:\n{}", outcome.stderr.trim());
        }
        c.sequences += 1;
        for (leak, reported) in outcome.leaks {
            c.kinds.insert(leak.kind.clone());
            if reported.is_finding() && !c.findings.iter().any(|f| f.leak.key() == leak.key()) {
                println!(
                    "fuzz: FINDING in sequence {seq}: {} seen on {} ({})",
                    leak.key(),
                    leak.seen_on,
                    reported.describe()
                );
                c.findings.push(Finding {
                    leak,
                    reported,
                    seq,
                    ops: ops.clone(),
                    shrunk: None,
                    reproducer: None,
                });
            }
        }
        seq += 1;
    }
    Ok(c)
}

fn sequence(ctx: &Ctx, cfg: &Config, seq: u64) -> Vec<Op> {
    let seed = Rng::sequence_seed(ctx.seed, seq);
    let chunks = 3 + Rng::new(seed ^ 1).below(8) as usize;
    Gen::new(seed, seq, cfg, &ctx.table).sequence(chunks)
}

/// Whether `ops` still produce the finding `key` (a few tries: races are flaky).
fn reproduces(ctx: &mut Ctx, mode: &Mode, ops: &[Op], key: &str, tries: usize) -> Result<bool> {
    for _ in 0..tries {
        if interrupted() {
            return Ok(false);
        }
        let outcome = ctx.runner.run(&ctx.env, mode, ops, &interrupted)?;
        if outcome.leaks.iter().any(|(l, r)| l.key() == key && r.is_finding()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Shrinks a finding and writes its reproducer.
fn shrink_finding(ctx: &mut Ctx, mode: &Mode, f: &mut Finding) -> Result<()> {
    let key = f.leak.key();
    let mut ops = f.ops.clone();
    // The payload marker names the op that sent it: nothing after it is needed.
    if let Some((seq, op)) = f.leak.marker {
        if seq == f.seq && op + 1 < ops.len() {
            let cut = ops[..=op].to_vec();
            if reproduces(ctx, mode, &cut, &key, 3)? {
                ops = cut;
            }
        }
    }
    let mut error = None;
    let shrunk = shrink::shrink(&ops, 80, |cand| match reproduces(ctx, mode, cand, &key, 3) {
        Ok(b) => b,
        Err(e) => {
            error.get_or_insert(e);
            false
        }
    });
    if let Some(e) = error {
        return Err(e);
    }
    let name = format!("repro-{}-{}-{}.c", ctx.seed, f.seq, f.leak.kind);
    let path = ctx.out.join(name);
    let header = vec![
        format!("finding: {} seen on {} ({})", key, f.leak.seen_on, f.reported.describe()),
        format!("seed {} sequence {} (cargo xtask fuzz --seed {})", ctx.seed, f.seq, ctx.seed),
        format!("shrunk from {} to {} ops", f.ops.len(), shrunk.len()),
        format!(
            "sockstrace: --on-leak {} --kernel {}{}",
            mode.on_leak,
            mode.kernel,
            if mode.plant_bug { " (plant-bug)" } else { "" }
        ),
        "needs the fuzzer's namespace: 10.77.0.1/24 + fd77::1/64 on a veth (ifindex as in the ops) to a peer"
            .into(),
        "with 10.77.0.2, fd77::2 (default routes through it); the proxy on 127.0.0.1:19050 and [::1]:19050."
            .into(),
    ];
    std::fs::write(&path, repro::c_source(&shrunk, &header, &ctx.runner.hint(&ctx.env, mode)))?;
    // The reproducer must compile on its own.
    runner::build_client(&path, &ctx.out.join("repro-bin"), false).context("compiling the reproducer")?;
    f.shrunk = Some(shrunk);
    f.reproducer = Some(path);
    Ok(())
}

fn print_finding(f: &Finding) {
    println!("\n=== FINDING: {} seen on {} ===", f.leak.key(), f.leak.seen_on);
    println!("  report: {}", f.reported.describe());
    println!("  sequence {} ({} ops)", f.seq, f.ops.len());
    if let Some(s) = &f.shrunk {
        println!("  shrunk to {} ops:", s.len());
        for op in s {
            println!("    {:<60} // {}", op.line, op.gloss);
        }
    }
    if let Some(p) = &f.reproducer {
        println!("  reproducer: {}", p.display());
    }
}

fn finding_json(f: &Finding) -> serde_json::Value {
    json!({
        "key": f.leak.key(),
        "kind": f.leak.kind,
        "dst": f.leak.dst_text(),
        "seen_on": f.leak.seen_on,
        "report": f.reported.describe(),
        "sequence": f.seq,
        "ops": f.ops.len(),
        "shrunk": f.shrunk.as_ref().map(|s| s.iter().map(|o| o.line.clone()).collect::<Vec<_>>()),
        "reproducer": f.reproducer.as_ref().map(|p| p.display().to_string()),
    })
}

fn coverage_json(c: &BTreeSet<Cov>, table: &OptionTable) -> serde_json::Value {
    let mut sockets = Vec::new();
    let mut opts = Vec::new();
    let mut cmsgs = Vec::new();
    let mut sys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for cov in c {
        match cov {
            Cov::Socket(f, t, p) => {
                sockets.push(format!("{}/{}/{p}", grammar::fam_name(*f), grammar::type_name(*t)))
            }
            Cov::Sockopt(l, o) => {
                opts.push(table.name(*l, *o).map(str::to_string).unwrap_or(format!("{l}/{o}")))
            }
            Cov::Cmsg(l, t) => cmsgs.push(format!("{l}/{t}")),
            Cov::Syscall(s, abi) => sys.entry(abi.to_string()).or_default().push(s.to_string()),
        }
    }
    json!({
        "socket_triples": sockets.len(), "sockopt_pairs": opts.len(), "cmsg_kinds": cmsgs.len(),
        "sockets": sockets, "sockopts": opts, "cmsgs": cmsgs, "syscalls_by_abi": sys,
    })
}

fn print_coverage(c: &Campaign, table: &OptionTable) {
    let j = coverage_json(&c.coverage, table);
    let sys: usize = j["syscalls_by_abi"]
        .as_object()
        .map(|o| o.values().map(|v| v.as_array().map_or(0, Vec::len)).sum())
        .unwrap_or(0);
    println!(
        "fuzz: {} sequences; coverage: {} family/type/protocol triples, {} setsockopt (level, optname) pairs, {} cmsg kinds, {} (syscall, ABI) pairs",
        c.sequences, j["socket_triples"], j["sockopt_pairs"], j["cmsg_kinds"], sys
    );
    if !c.kinds.is_empty() {
        println!(
            "fuzz: leak kinds the oracle saw: {}",
            c.kinds.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
}

fn campaign_json(c: &Campaign, table: &OptionTable) -> serde_json::Value {
    json!({
        "sequences": c.sequences,
        "kinds_seen": c.kinds,
        "findings": c.findings.iter().map(finding_json).collect::<Vec<_>>(),
        "coverage": coverage_json(&c.coverage, table),
    })
}

fn fuzz_main(ctx: &mut Ctx, args: &Args) -> Result<(serde_json::Value, Option<String>)> {
    let cfg = config(ctx, args.allowed_only, args.known_open.clone());
    let mode = mode(args, &args.on_leak, &args.kernel, false);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut c = campaign(ctx, &cfg, &mode, deadline, 0, &|_| false)?;
    print_coverage(&c, &ctx.table);
    for f in c.findings.iter_mut().take(6) {
        if interrupted() {
            break;
        }
        println!("fuzz: shrinking {} (sequence {}, {} ops)...", f.leak.key(), f.seq, f.ops.len());
        shrink_finding(ctx, &mode, f)?;
    }
    for f in &c.findings {
        print_finding(f);
    }
    let mut summary = campaign_json(&c, &ctx.table);
    summary["mode"] = json!({"on_leak": mode.on_leak, "kernel": mode.kernel, "as_user": mode.as_user,
        "known_open": args.known_open, "allowed_only": args.allowed_only});
    let failed = (!c.findings.is_empty()).then(|| {
        format!(
            "{} finding(s): leaks sockstrace did not account for (see above; seed {})",
            c.findings.len(),
            args.seed
        )
    });
    c.findings.clear();
    Ok((summary, failed))
}

fn self_check(ctx: &mut Ctx, args: &Args) -> Result<(serde_json::Value, Option<String>)> {
    let third = Duration::from_secs((args.seconds / 3).max(5));
    let mut failures = Vec::new();

    // (a) Everything goes through: several kinds of leaks must show up, quickly.
    println!("fuzz: self-check (a): --on-leak log, the fuzzer must see several kinds of leaks");
    let cfg = config(ctx, false, BTreeSet::new());
    let m = mode(args, "log", &args.kernel, false);
    let goal = |c: &Campaign| {
        let protos: BTreeSet<&str> = c.kinds.iter().map(|k| k.trim_end_matches(['4', '6'])).collect();
        protos.contains("tcp") && protos.contains("udp") && c.kinds.len() >= 3
    };
    let t = Instant::now();
    let a = campaign(ctx, &cfg, &m, Instant::now() + third, 0, &goal)?;
    print_coverage(&a, &ctx.table);
    let a_ok = goal(&a);
    println!(
        "fuzz: self-check (a): {} after {:.1}s",
        if a_ok { "PASS" } else { "FAIL" },
        t.elapsed().as_secs_f64()
    );
    if !a_ok {
        failures.push(format!(
            "(a) leak kinds seen under --on-leak log: {:?} (want tcp, udp and 3 kinds)",
            a.kinds
        ));
    }

    // (b) The planted bug: UDP to port 9 passes as allowed (seccomp layer only).
    println!("fuzz: self-check (b): planted bug (UDP to port 9 passes), --kernel off");
    let all: BTreeSet<String> = grammar::class_names().iter().map(|s| s.to_string()).collect();
    let cfg = config(ctx, false, all);
    let m = mode(args, "block", "off", true);
    let is_planted = |f: &Finding| f.leak.proto() == "udp" && f.leak.port == Some(9);
    let mut b =
        campaign(ctx, &cfg, &m, Instant::now() + third, 10_000, &|c| c.findings.iter().any(is_planted))?;
    print_coverage(&b, &ctx.table);
    let mut b_ok = false;
    if let Some(f) = b.findings.iter_mut().find(|f| is_planted(f)) {
        shrink_finding(ctx, &m, f)?;
        print_finding(f);
        let n = f.shrunk.as_ref().map_or(usize::MAX, Vec::len);
        b_ok = n <= 4;
        if !b_ok {
            failures.push(format!("(b) the planted bug's reproducer has {n} ops (want at most 4)"));
        }
    } else {
        failures.push("(b) the planted bug (UDP to port 9) was not found".into());
    }
    for f in b.findings.iter().filter(|f| !is_planted(f)) {
        println!(
            "fuzz: self-check (b): also seen (not the planted bug): {} ({})",
            f.leak.key(),
            f.reported.describe()
        );
    }
    println!("fuzz: self-check (b): {}", if b_ok { "PASS" } else { "FAIL" });

    // (c) No false positives: only allowed things, seccomp layer only.
    println!("fuzz: self-check (c): a program doing only allowed things, --kernel off: no finding");
    let cfg = config(ctx, true, BTreeSet::new());
    let m = mode(args, "block", "off", false);
    let c = campaign(ctx, &cfg, &m, Instant::now() + Duration::from_secs(3), 20_000, &|_| false)?;
    let c_ok = c.kinds.is_empty() && c.findings.is_empty() && c.sequences > 0;
    println!(
        "fuzz: self-check (c): {} ({} sequences, leaks seen: {:?})",
        if c_ok { "PASS" } else { "FAIL" },
        c.sequences,
        c.kinds
    );
    if !c_ok {
        failures.push(format!("(c) false positives: {:?}", c.kinds));
    }

    let summary = json!({
        "self_check": {
            "a_log_mode": {"pass": a_ok, "campaign": campaign_json(&a, &ctx.table)},
            "b_planted_bug": {"pass": b_ok, "campaign": campaign_json(&b, &ctx.table)},
            "c_allowed_only": {"pass": c_ok, "campaign": campaign_json(&c, &ctx.table)},
        }
    });
    let failed = (!failures.is_empty()).then(|| format!("self-check failed: {}", failures.join("; ")));
    Ok((summary, failed))
}
