//! `cargo xtask fuzz`: a leak fuzzer whose oracle is the packets themselves.
//!
//! Generated programs of socket operations (tests/clients/fuzzclient.c executes them with raw
//! syscalls; a quarter of the runs use its i386 build) run under `sockstrace run` inside a
//! network namespace made for the run. Sniffers on its loopback and on the far end of a veth
//! pair, and sinks on non-allowed addresses, see every packet; any that goes to a destination
//! the policy does not allow is a leak, and a leak the report does not list (same destination,
//! same kind of traffic, same pid) as let through is a finding. Several sequences share one
//! sockstrace run; a finding is attributed to its sequence by re-running them singly, then
//! shrunk (delta debugging) to a standalone C reproducer under target/fuzz/. docs/FUZZING.md
//! says more.
//!
//! `--self-check`: (a) against `--on-leak log` the fuzzer must find several kinds of leaks;
//! (b) against the planted bug (`SOCKSTRACE_TEST_DISABLE=plant-bug`, `--kernel off`) it must
//! find UDP to port 9 and shrink it to at most 4 ops; (c) a program doing only allowed things
//! must produce no finding (no false positives). `--ci`: the self-check, then 30 s campaigns
//! with seed 1 and a random seed, each as root and as `nobody`.

mod coverage;
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

const USAGE: &str = "usage: cargo xtask fuzz [--seconds N] [--seed S] [--as-user U | --only-user U]
                         [--self-check | --ci] [--kernel auto|off|required]
                         [--on-leak block|log|kill] [--known-open CLASS,...] [--allowed-only]
                         [--batch N] [--sockstrace PATH]
  --as-user U    alternate: every other batch of sequences runs as U (sockstrace unprivileged,
                 kernel layer off), the others as root; both are reported
  --only-user U  every sequence as U
  --batch N      sequences per sockstrace run (default 16; 1 = one run per sequence)
  --ci           self-check, then 30 s with seed 1 and 30 s with a random seed, each as root
                 and as nobody; exits non-zero on any finding
  --known-open   leave these classes out of the grammar (only what the coordinator names)
The last line is `fuzz: N sequences, M calls (C calls/s), F findings`; any finding exits 1.
classes for --known-open: ";

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Sequences per sockstrace run by default.
const BATCH: usize = 16;

struct Args {
    seconds: u64,
    seed: u64,
    as_user: Option<String>,
    only_user: bool,
    self_check: bool,
    ci: bool,
    kernel: String,
    on_leak: String,
    known_open: BTreeSet<String>,
    allowed_only: bool,
    batch: usize,
    sockstrace: Option<PathBuf>,
}

fn random_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Rng::new(t.as_nanos() as u64 ^ u64::from(std::process::id())).next() % 1_000_000_000
}

fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args {
        seconds: 30,
        seed: random_seed(),
        as_user: None,
        only_user: false,
        self_check: false,
        ci: false,
        kernel: "auto".into(),
        on_leak: "block".into(),
        known_open: BTreeSet::new(),
        allowed_only: false,
        batch: BATCH,
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
            "--only-user" => {
                a.as_user = Some(value()?);
                a.only_user = true;
            }
            "--self-check" => a.self_check = true,
            "--ci" => a.ci = true,
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
            "--batch" => a.batch = value()?.parse::<usize>().context("--batch")?.clamp(1, 32),
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
    seed: u64,
    seq: u64,
    /// The sequence's ops (or, when no single sequence reproduced it, the whole batch's).
    ops: Vec<Op>,
    /// Not attributed to one sequence: `ops` is the batch.
    whole_batch: bool,
    mode: Mode,
    shrunk: Option<Vec<Op>>,
    reproducer: Option<PathBuf>,
}

/// Per user: what ran and what was found.
#[derive(Default, Clone, Copy)]
struct Side {
    sequences: u64,
    calls: u64,
    i386_sequences: u64,
    findings: u64,
}

/// One fuzzing campaign's totals.
#[derive(Default)]
struct Campaign {
    sequences: u64,
    calls: u64,
    coverage: BTreeSet<Cov>,
    kinds: BTreeSet<String>,
    findings: Vec<Finding>,
    by_user: BTreeMap<String, Side>,
    /// Runs that did not finish in time (programs saved under target/fuzz/hang-*.txt).
    hangs: Vec<PathBuf>,
}

/// The whole command's totals (the last line).
#[derive(Default)]
struct Totals {
    sequences: u64,
    calls: u64,
    fuzz_time: Duration,
    findings: u64,
}

struct Ctx {
    env: Env,
    runner: Runner,
    table: OptionTable,
    out: PathBuf,
    batch: usize,
    i386_ok: bool,
    totals: Totals,
}

/// What one campaign runs.
struct Plan {
    cfg: Config,
    /// The mode of root runs.
    base: Mode,
    user: Option<String>,
    only_user: bool,
    seed: u64,
    first_seq: u64,
    deadline: Instant,
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
    for u in args.as_user.iter().chain(args.ci.then_some(&"nobody".to_string())) {
        runner::user_ids(u).with_context(|| format!("--as-user {u}"))?;
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
    let i386 = runner::build_client(&src, &out, true);
    match &i386 {
        Ok(_) => println!("fuzz: i386 client built: a quarter of the batches run it"),
        Err(e) => println!(
            "fuzz: i386 client unavailable ({}): x86_64 only (its abi 1/2 ops still reach the i386 ABI)",
            e.to_string().lines().last().unwrap_or("gcc -m32 failed")
        ),
    }
    let policy = Policy {
        proxies: vec![
            ("127.0.0.1".parse()?, grammar::addrs::PROXY_PORT),
            ("::1".parse()?, grammar::addrs::PROXY_PORT),
        ],
    };
    let env = Env::create(&policy)?;
    let runner = Runner::new(&sockstrace, &client, i386.as_ref().ok().map(PathBuf::as_path))?;
    let mut ctx = Ctx {
        env,
        runner,
        table: OptionTable::from_headers(),
        out: out.clone(),
        batch: args.batch,
        i386_ok: i386.is_ok(),
        totals: Totals::default(),
    };
    println!(
        "fuzz: {} socket options from the kernel headers, namespace {}, veth ifindex {}, {} sequences per run",
        ctx.table.options.len(),
        ctx.env.ns,
        ctx.env.veth_ifindex,
        ctx.batch
    );
    let started = Instant::now();
    let result = if args.ci {
        ci(&mut ctx, &args)
    } else if args.self_check {
        self_check(&mut ctx, &args, args.seconds)
    } else {
        fuzz_main(&mut ctx, &args, args.seed, args.as_user.clone(), args.only_user, args.seconds)
    };
    if interrupted() {
        bail!("interrupted");
    }
    let (mut summary, failed) = result?;
    let t = &ctx.totals;
    let rate = t.calls as f64 / t.fuzz_time.as_secs_f64().max(0.001);
    summary["elapsed_s"] = json!(started.elapsed().as_secs_f64());
    summary["sockstrace_runs"] = json!(ctx.runner.runs);
    summary["sequences"] = json!(t.sequences);
    summary["calls"] = json!(t.calls);
    summary["calls_per_s"] = json!(rate);
    summary["findings_total"] = json!(t.findings);
    summary["batch"] = json!(ctx.batch);
    summary["i386_client"] = json!(ctx.i386_ok);
    let path = out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)?;
    println!(
        "fuzz: {} sockstrace runs in {:.0}s (incl. attribution and shrinking); summary: {}",
        ctx.runner.runs,
        started.elapsed().as_secs_f64(),
        path.display()
    );
    println!(
        "fuzz: {} sequences, {} calls ({rate:.0} calls/s), {} findings",
        t.sequences, t.calls, t.findings
    );
    let mut problems: Vec<String> = failed.into_iter().collect();
    if t.findings > 0 {
        problems.push(format!("{} finding(s): leaks sockstrace did not account for (see above)", t.findings));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

fn config(ctx: &Ctx, allowed_only: bool, skip: BTreeSet<String>) -> Config {
    Config { allowed_only, skip, veth_ifindex: ctx.env.veth_ifindex, veth_name: env::VETH_NEAR.to_string() }
}

/// The mode of root runs.
fn mode(on_leak: &str, kernel: &str, plant_bug: bool) -> Mode {
    Mode {
        on_leak: on_leak.into(),
        kernel: kernel.into(),
        plant_bug,
        as_user: None,
        allow_io_uring: kernel != "off",
        i386: false,
    }
}

/// Whether batch `b` of a campaign seeded with `seed` runs the i386 client (a quarter do).
fn batch_is_i386(seed: u64, b: u64) -> bool {
    Rng::new(Rng::sequence_seed(seed ^ 0x386, b)).below(4) == 0
}

/// Whether batch `b` runs as the campaign's user: every other one, or all with `only`.
fn batch_as_user(user: Option<&str>, only: bool, b: u64) -> Option<String> {
    user.filter(|_| only || b % 2 == 1).map(str::to_string)
}

/// The mode batch `b` runs in: the user's runs are unprivileged, the kernel layer off.
fn batch_mode(ctx: &Ctx, plan: &Plan, b: u64) -> Mode {
    let user = batch_as_user(plan.user.as_deref(), plan.only_user, b);
    let unprivileged = user.is_some();
    Mode {
        kernel: if unprivileged { "off".into() } else { plan.base.kernel.clone() },
        allow_io_uring: plan.base.allow_io_uring && !unprivileged,
        as_user: user,
        i386: ctx.i386_ok && batch_is_i386(plan.seed, b),
        ..plan.base.clone()
    }
}

fn sequence(ctx: &Ctx, cfg: &Config, seed: u64, seq: u64, i386: bool) -> Vec<Op> {
    let seed = Rng::sequence_seed(seed, seq);
    let chunks = 3 + Rng::new(seed ^ 1).below(8) as usize;
    Gen::new(seed, seq, cfg, &ctx.table).i386(i386).sequence(chunks)
}

/// One program of several sequences, a `reset` between them.
fn join_program(seqs: &[(u64, Vec<Op>)]) -> Vec<Op> {
    let mut program = Vec::new();
    for (i, (_, ops)) in seqs.iter().enumerate() {
        if i > 0 {
            program.push(Op {
                line: "reset".into(),
                gloss: "end of a sequence: join threads, close every slot, abi 0".into(),
                cov: vec![],
            });
        }
        program.extend(ops.iter().cloned());
    }
    program
}

/// Runs batches of sequences until the plan's deadline or until `done` says the campaign has
/// what it wants.
fn campaign(ctx: &mut Ctx, plan: &Plan, done: &dyn Fn(&Campaign) -> bool) -> Result<Campaign> {
    let mut c = Campaign::default();
    let mut b = 0u64;
    let started = Instant::now();
    while Instant::now() < plan.deadline && !interrupted() && !done(&c) {
        let m = batch_mode(ctx, plan, b);
        let first = plan.first_seq + b * ctx.batch as u64;
        let seqs: Vec<(u64, Vec<Op>)> = (first..first + ctx.batch as u64)
            .map(|s| (s, sequence(ctx, &plan.cfg, plan.seed, s, m.i386)))
            .collect();
        for op in seqs.iter().flat_map(|(_, ops)| ops) {
            c.coverage.extend(op.cov.iter().cloned());
        }
        let program = join_program(&seqs);
        let outcome = ctx.runner.run(&ctx.env, &m, &program, &interrupted)?;
        if !outcome.report_ok && !outcome.timed_out && !c.by_user.contains_key(&m.user_label()) {
            bail!(
                "sockstrace wrote no report on the first run as {}; its stderr:\n{}",
                m.user_label(),
                outcome.stderr.trim()
            );
        }
        if outcome.timed_out {
            let path = ctx.out.join(format!(
                "hang-{}-{first}-{}{}.txt",
                plan.seed,
                m.user_label(),
                if m.i386 { "-i386" } else { "" }
            ));
            let text: String = program.iter().map(|o| format!("{}\n", o.line)).collect();
            std::fs::write(&path, text)?;
            println!(
                "fuzz: HANG: the run of sequences {first}..{} as {} did not finish in {:.1}s (killed; its leaks are not judged); program: {}",
                first + seqs.len() as u64 - 1,
                m.user_label(),
                runner::run_timeout(program.len()).as_secs_f64(),
                path.display()
            );
            c.hangs.push(path);
        }
        let calls = seqs.iter().map(|(_, o)| o.len() as u64).sum::<u64>();
        c.sequences += seqs.len() as u64;
        c.calls += calls;
        let side = c.by_user.entry(m.user_label()).or_default();
        side.sequences += seqs.len() as u64;
        side.calls += calls;
        if m.i386 {
            side.i386_sequences += seqs.len() as u64;
        }
        for (leak, reported) in outcome.leaks {
            // A straggler of an earlier run (its payload names a sequence not in this one).
            if leak.marker.is_some_and(|(s, _)| !seqs.iter().any(|(q, _)| *q == s)) {
                continue;
            }
            c.kinds.insert(leak.kind.clone());
            if !reported.is_finding() || c.findings.iter().any(|f| f.leak.key() == leak.key()) {
                continue;
            }
            let (seq, ops, whole_batch) = attribute(ctx, &m, &seqs, &program, &leak)?;
            println!(
                "fuzz: FINDING in sequence {seq}{} as {}{}: {} seen on {} ({})",
                if whole_batch { " (its batch: no single sequence reproduced it)" } else { "" },
                m.user_label(),
                if m.i386 { ", i386 client" } else { "" },
                leak.key(),
                leak.seen_on,
                reported.describe()
            );
            c.by_user.entry(m.user_label()).or_default().findings += 1;
            c.findings.push(Finding {
                leak,
                reported,
                seed: plan.seed,
                seq,
                ops,
                whole_batch,
                mode: m.clone(),
                shrunk: None,
                reproducer: None,
            });
        }
        b += 1;
    }
    ctx.totals.sequences += c.sequences;
    ctx.totals.calls += c.calls;
    ctx.totals.fuzz_time += started.elapsed();
    ctx.totals.findings += c.findings.len() as u64;
    Ok(c)
}

/// The sequence of a batch that produces `leak` on its own: the one its payload marker
/// names first, then the others in order. None: the whole batch.
fn attribute(
    ctx: &mut Ctx,
    mode: &Mode,
    seqs: &[(u64, Vec<Op>)],
    program: &[Op],
    leak: &Leak,
) -> Result<(u64, Vec<Op>, bool)> {
    if seqs.len() == 1 {
        return Ok((seqs[0].0, seqs[0].1.clone(), false));
    }
    let named = leak.marker.map(|(s, _)| s);
    let mut order: Vec<&(u64, Vec<Op>)> = seqs.iter().filter(|(s, _)| Some(*s) == named).collect();
    order.extend(seqs.iter().filter(|(s, _)| Some(*s) != named));
    for (s, ops) in order {
        if reproduces(ctx, mode, ops, &leak.key(), 2, None)? {
            return Ok((*s, ops.clone(), false));
        }
    }
    Ok((seqs[0].0, program.to_vec(), true))
}

/// Whether `ops` still produce the finding `key` (a few tries: races are flaky).
fn reproduces(
    ctx: &mut Ctx,
    mode: &Mode,
    ops: &[Op],
    key: &str,
    tries: usize,
    deadline: Option<Instant>,
) -> Result<bool> {
    for _ in 0..tries {
        if interrupted() || deadline.is_some_and(|d| Instant::now() > d) {
            return Ok(false);
        }
        let outcome = ctx.runner.run(&ctx.env, mode, ops, &interrupted)?;
        if outcome.leaks.iter().any(|(l, r)| l.key() == key && r.is_finding()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Shrinks a finding (within `time`) and writes its reproducer.
fn shrink_finding(ctx: &mut Ctx, f: &mut Finding, time: Duration) -> Result<()> {
    let key = f.leak.key();
    let mode = f.mode.clone();
    let deadline = Some(Instant::now() + time);
    let mut ops = f.ops.clone();
    // The payload marker names the op that sent it: nothing after it is needed.
    if let Some((seq, op)) = f.leak.marker {
        if seq == f.seq && !f.whole_batch && op + 1 < ops.len() {
            let cut = ops[..=op].to_vec();
            if reproduces(ctx, &mode, &cut, &key, 3, deadline)? {
                ops = cut;
            }
        }
    }
    let mut error = None;
    let shrunk = shrink::shrink(&ops, 80, |cand| match reproduces(ctx, &mode, cand, &key, 3, deadline) {
        Ok(b) => b,
        Err(e) => {
            error.get_or_insert(e);
            false
        }
    });
    if let Some(e) = error {
        return Err(e);
    }
    let name =
        format!("repro-{}-{}-{}{}.c", f.seed, f.seq, f.leak.kind, if mode.i386 { "-i386" } else { "" });
    let path = ctx.out.join(name);
    let header = vec![
        format!("finding: {} seen on {} ({})", key, f.leak.seen_on, f.reported.describe()),
        format!(
            "seed {} sequence {}{} (cargo xtask fuzz --seed {})",
            f.seed,
            f.seq,
            if f.whole_batch { " and the rest of its batch" } else { "" },
            f.seed
        ),
        format!("shrunk from {} to {} ops", f.ops.len(), shrunk.len()),
        format!(
            "sockstrace: --on-leak {} --kernel {}{}, as {}, {} client",
            mode.on_leak,
            mode.kernel,
            if mode.plant_bug { " (plant-bug)" } else { "" },
            mode.user_label(),
            if mode.i386 { "i386" } else { "x86_64" }
        ),
        "needs the fuzzer's namespace: 10.77.0.1/24 + fd77::1/64 on a veth (ifindex as in the ops) to a peer"
            .into(),
        "with 10.77.0.2, fd77::2 (default routes through it); the proxy on 127.0.0.1:19050 and [::1]:19050."
            .into(),
    ];
    let text = repro::c_source(&shrunk, &header, &ctx.runner.hint(&ctx.env, &mode), mode.i386);
    std::fs::write(&path, text)?;
    // The reproducer must compile on its own.
    runner::build_client(&path, &ctx.out.join("repro-bin"), mode.i386).context("compiling the reproducer")?;
    f.shrunk = Some(shrunk);
    f.reproducer = Some(path);
    Ok(())
}

fn print_finding(f: &Finding) {
    println!("\n=== FINDING: {} seen on {} ===", f.leak.key(), f.leak.seen_on);
    println!("  report: {}", f.reported.describe());
    println!(
        "  seed {} sequence {} ({} ops{}), as {}, {} client, --kernel {}",
        f.seed,
        f.seq,
        f.ops.len(),
        if f.whole_batch { ", the whole batch" } else { "" },
        f.mode.user_label(),
        if f.mode.i386 { "i386" } else { "x86_64" },
        f.mode.kernel
    );
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
        "pid": f.leak.pid,
        "seen_on": f.leak.seen_on,
        "report": f.reported.describe(),
        "seed": f.seed,
        "sequence": f.seq,
        "whole_batch": f.whole_batch,
        "user": f.mode.user_label(),
        "i386": f.mode.i386,
        "kernel": f.mode.kernel,
        "ops": f.ops.len(),
        "shrunk": f.shrunk.as_ref().map(|s| s.iter().map(|o| o.line.clone()).collect::<Vec<_>>()),
        "reproducer": f.reproducer.as_ref().map(|p| p.display().to_string()),
    })
}

fn print_campaign(c: &Campaign, table: &OptionTable) {
    println!("fuzz: {} sequences, {} calls; coverage:", c.sequences, c.calls);
    for line in coverage::summarize(&c.coverage, table).lines() {
        println!("fuzz:   {line}");
    }
    for (user, s) in &c.by_user {
        println!(
            "fuzz:   as {user}: {} sequences ({} on the i386 client), {} calls, {} findings",
            s.sequences, s.i386_sequences, s.calls, s.findings
        );
    }
    if !c.hangs.is_empty() {
        println!(
            "fuzz: {} run(s) hung (not findings: sockstrace or the program did not finish)",
            c.hangs.len()
        );
    }
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
        "calls": c.calls,
        "kinds_seen": c.kinds,
        "by_user": c.by_user.iter().map(|(u, s)| (u.clone(), json!({
            "sequences": s.sequences, "i386_sequences": s.i386_sequences, "calls": s.calls, "findings": s.findings,
        }))).collect::<serde_json::Map<_, _>>(),
        "findings": c.findings.iter().map(finding_json).collect::<Vec<_>>(),
        "hangs": c.hangs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "coverage": coverage::summarize(&c.coverage, table).json(),
    })
}

/// Shrinks (at most `max` findings, `each` per finding) and prints the findings.
fn report_findings(ctx: &mut Ctx, c: &mut Campaign, max: usize, each: Duration) -> Result<()> {
    for f in c.findings.iter_mut().take(max) {
        if interrupted() {
            break;
        }
        println!("fuzz: shrinking {} (sequence {}, {} ops)...", f.leak.key(), f.seq, f.ops.len());
        shrink_finding(ctx, f, each)?;
    }
    for f in &c.findings {
        print_finding(f);
    }
    Ok(())
}

fn fuzz_main(
    ctx: &mut Ctx,
    args: &Args,
    seed: u64,
    user: Option<String>,
    only_user: bool,
    seconds: u64,
) -> Result<(serde_json::Value, Option<String>)> {
    let who = match (&user, only_user) {
        (Some(u), true) => format!("as {u}"),
        (Some(u), false) => format!("as root and {u}, alternately"),
        (None, _) => "as root".into(),
    };
    println!("fuzz: seed {seed}, {seconds}s {who}");
    let plan = Plan {
        cfg: config(ctx, args.allowed_only, args.known_open.clone()),
        base: mode(&args.on_leak, &args.kernel, false),
        user,
        only_user,
        seed,
        first_seq: 0,
        deadline: Instant::now() + Duration::from_secs(seconds),
    };
    let mut c = campaign(ctx, &plan, &|_| false)?;
    print_campaign(&c, &ctx.table);
    let (max, each) = if args.ci { (3, Duration::from_secs(10)) } else { (6, Duration::from_secs(60)) };
    report_findings(ctx, &mut c, max, each)?;
    let mut summary = campaign_json(&c, &ctx.table);
    summary["mode"] = json!({"seed": seed, "on_leak": plan.base.on_leak, "kernel": plan.base.kernel,
        "user": plan.user, "only_user": only_user, "known_open": args.known_open,
        "allowed_only": args.allowed_only});
    Ok((summary, None))
}

fn ci(ctx: &mut Ctx, args: &Args) -> Result<(serde_json::Value, Option<String>)> {
    println!(
        "fuzz: --ci: self-check, then 30 s each: seed 1 as root, as nobody; a random seed as root, as nobody"
    );
    let (check, failed) = self_check(ctx, args, 30)?;
    let random = random_seed();
    println!("fuzz: --ci: random seed {random}");
    let mut runs = Vec::new();
    for seed in [1, random] {
        for user in [None, Some("nobody".to_string())] {
            if interrupted() {
                break;
            }
            let label = format!("seed {seed} as {}", user.as_deref().unwrap_or("root"));
            let (s, _) = fuzz_main(ctx, args, seed, user, true, 30)?;
            runs.push(json!({"run": label, "result": s}));
        }
    }
    Ok((json!({"ci": {"self_check": check, "random_seed": random, "campaigns": runs}}), failed))
}

fn self_check(ctx: &mut Ctx, args: &Args, seconds: u64) -> Result<(serde_json::Value, Option<String>)> {
    let third = Duration::from_secs((seconds / 3).max(5));
    let mut failures = Vec::new();
    let seed = args.seed;
    println!("fuzz: self-check, seed {seed}");
    let plan = |cfg: Config, base: Mode, first_seq: u64, time: Duration| Plan {
        cfg,
        base,
        user: None,
        only_user: false,
        seed,
        first_seq,
        deadline: Instant::now() + time,
    };

    // (c) No false positives: only allowed things, seccomp layer only. First, while the
    // namespace is quiet: (a) lets leaks through, and a connection it let go keeps sending.
    println!("fuzz: self-check (c): a program doing only allowed things, --kernel off: no finding");
    let cfg = config(ctx, true, BTreeSet::new());
    let c =
        campaign(ctx, &plan(cfg, mode("block", "off", false), 20_000, Duration::from_secs(3)), &|_| false)?;
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

    // (a) Everything goes through: several kinds of leaks must show up, quickly.
    println!("fuzz: self-check (a): --on-leak log, the fuzzer must see several kinds of leaks");
    let cfg = config(ctx, false, BTreeSet::new());
    let goal = |c: &Campaign| {
        let protos: BTreeSet<&str> = c.kinds.iter().map(|k| k.trim_end_matches(['4', '6'])).collect();
        protos.contains("tcp") && protos.contains("udp") && c.kinds.len() >= 3
    };
    let t = Instant::now();
    let mut a = campaign(ctx, &plan(cfg, mode("log", &args.kernel, false), 0, third), &goal)?;
    print_campaign(&a, &ctx.table);
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
    report_findings(ctx, &mut a, 2, Duration::from_secs(10))?;
    // Under --on-leak log the leaks are let through: a TCP connection to a silent address
    // keeps retransmitting its SYN into later runs, whose reports cannot list it. A finding no
    // single sequence reproduces is shown above but not counted here; in the campaigns
    // (block mode) every finding counts.
    let stray = a.findings.iter().filter(|f| f.whole_batch).count() as u64;
    if stray > 0 {
        println!(
            "fuzz: self-check (a): {stray} finding(s) that no single sequence reproduces not counted \
             (log mode: connections let through keep retransmitting into later runs)"
        );
        ctx.totals.findings = ctx.totals.findings.saturating_sub(stray);
    }

    // (b) The planted bug: UDP to port 9 passes as allowed (seccomp layer only).
    println!("fuzz: self-check (b): planted bug (UDP to port 9 passes), --kernel off");
    let all: BTreeSet<String> = grammar::class_names().iter().map(|s| s.to_string()).collect();
    let cfg = config(ctx, false, all);
    let is_planted = |f: &Finding| f.leak.proto() == "udp" && f.leak.port == Some(9);
    let p = plan(cfg, mode("block", "off", true), 10_000, third);
    let mut b = campaign(ctx, &p, &|c| c.findings.iter().any(is_planted))?;
    print_campaign(&b, &ctx.table);
    let mut b_ok = false;
    // A batch often holds several sends to port 9; some through fd games that cannot shrink
    // far. The shortest sequences first, until one shrinks to at most 4 ops.
    let mut planted: Vec<&mut Finding> = b.findings.iter_mut().filter(|f| is_planted(f)).collect();
    planted.sort_by_key(|f| f.ops.len());
    let mut sizes = Vec::new();
    for f in planted.into_iter().take(3) {
        shrink_finding(ctx, f, Duration::from_secs(20))?;
        print_finding(f);
        let n = f.shrunk.as_ref().map_or(usize::MAX, Vec::len);
        sizes.push(n);
        if n <= 4 {
            b_ok = true;
            break;
        }
    }
    if sizes.is_empty() {
        failures.push("(b) the planted bug (UDP to port 9) was not found".into());
    } else if !b_ok {
        failures.push(format!("(b) the planted bug's reproducers have {sizes:?} ops (want at most 4)"));
    }
    // The planted bug is what this check wants: not a finding.
    ctx.totals.findings -= b.findings.iter().filter(|f| is_planted(f)).count() as u64;
    // As in (a): what no single sequence reproduces may be (a)'s traffic still going.
    let stray = b.findings.iter().filter(|f| !is_planted(f) && f.whole_batch).count() as u64;
    ctx.totals.findings = ctx.totals.findings.saturating_sub(stray);
    for f in b.findings.iter().filter(|f| !is_planted(f)) {
        print_finding(f);
        println!(
            "fuzz: self-check (b): also found (not the planted bug, seccomp layer alone): {}",
            f.leak.key()
        );
    }
    println!("fuzz: self-check (b): {}", if b_ok { "PASS" } else { "FAIL" });

    let summary = json!({
        "self_check": {
            "seed": seed,
            "a_log_mode": {"pass": a_ok, "campaign": campaign_json(&a, &ctx.table)},
            "b_planted_bug": {"pass": b_ok, "campaign": campaign_json(&b, &ctx.table)},
            "c_allowed_only": {"pass": c_ok, "campaign": campaign_json(&c, &ctx.table)},
        }
    });
    let failed = (!failures.is_empty()).then(|| format!("self-check failed: {}", failures.join("; ")));
    if failed.is_none() {
        println!("fuzz: self-check: PASS");
    }
    Ok((summary, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarter_of_batches_run_i386() {
        for seed in [1u64, 5, 99] {
            let n = (0..400).filter(|b| batch_is_i386(seed, *b)).count();
            assert!((70..=130).contains(&n), "seed {seed}: {n} of 400");
        }
    }

    #[test]
    fn as_user_alternates_and_only_user_does_not() {
        let users: Vec<_> = (0..4).map(|b| batch_as_user(Some("nobody"), false, b)).collect();
        assert_eq!(users, vec![None, Some("nobody".into()), None, Some("nobody".into())]);
        assert!((0..4).all(|b| batch_as_user(Some("nobody"), true, b).as_deref() == Some("nobody")));
        assert!((0..4).all(|b| batch_as_user(None, false, b).is_none()));
    }

    #[test]
    fn batches_are_joined_with_resets() {
        let op = |l: &str| Op { line: l.into(), gloss: String::new(), cov: vec![] };
        let p = join_program(&[(0, vec![op("a"), op("b")]), (1, vec![op("c")]), (2, vec![op("d")])]);
        let lines: Vec<&str> = p.iter().map(|o| o.line.as_str()).collect();
        assert_eq!(lines, vec!["a", "b", "reset", "c", "reset", "d"]);
    }

    #[test]
    fn ci_and_user_flags_parse() {
        let a = parse(&["--ci".into(), "--known-open".into(), "rthdr,packet".into()]).unwrap();
        assert!(a.ci && a.known_open.len() == 2);
        let a = parse(&["--only-user".into(), "nobody".into()]).unwrap();
        assert!(a.only_user && a.as_user.as_deref() == Some("nobody"));
        let a = parse(&["--as-user".into(), "nobody".into(), "--batch".into(), "1".into()]).unwrap();
        assert!(!a.only_user && a.batch == 1);
        assert!(parse(&["--known-open".into(), "nonsense".into()]).is_err());
    }
}
