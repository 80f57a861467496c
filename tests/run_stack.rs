//! `run --stack` and `run --core-on-leak`: where in the program a leak came
//! from. stack_leak.c leaks from main -> leak_outer -> leak_middle ->
//! leak_inner (connect or sendto to a sink); each build of it (frame
//! pointers, -O2 without them, static, i386) must show that chain in the
//! leak's `stack`, innermost first, and on the leak line.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sockstrace_tests::paths::client_with_flags;
use sockstrace_tests::unpriv::Copies;
use sockstrace_tests::{is_root, skip, Event, Outcome, TcpSink, Trace, UdpSink};

/// The function names of an event's stack, innermost first.
fn functions(ev: &Event) -> Vec<String> {
    ev.get("stack")
        .and_then(Value::as_array)
        .map(|frames| {
            frames
                .iter()
                .map(|f| f.get("function").and_then(Value::as_str).unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The one leak event of a run.
fn the_leak(out: &Outcome) -> &Event {
    let leaks: Vec<&Event> = out.events.iter().filter(|e| e.is_leak()).collect();
    assert_eq!(leaks.len(), 1, "expected one leak\n{}", out.describe());
    leaks[0]
}

/// Asserts the chain leak_inner, leak_middle, leak_outer in this order, with
/// only system call wrappers above leak_inner, and the leak line naming it.
fn assert_chain(out: &Outcome, syscall: &str) {
    let ev = the_leak(out);
    assert_eq!(ev.s("syscall"), syscall, "{}", out.describe());
    let names = functions(ev);
    let inner = names.iter().position(|n| n == "leak_inner");
    let chain = inner.map(|i| names[i..].iter().take(3).cloned().collect::<Vec<_>>());
    assert_eq!(
        chain.as_deref(),
        Some(&["leak_inner".to_string(), "leak_middle".into(), "leak_outer".into()][..]),
        "stack {names:?}\n{}",
        out.describe()
    );
    // Above leak_inner: only the wrapper that made the call (and the vDSO's system call entry).
    assert!(inner.unwrap() <= 2, "leak_inner is not near the top: {names:?}");
    // Each frame has an address and a module.
    for f in ev["stack"].as_array().unwrap() {
        assert!(f["pc"].as_str().is_some_and(|pc| pc.starts_with("0x")), "frame without pc: {f}");
        assert!(f.get("module").is_some(), "frame without module: {f}");
    }
    assert!(ev.get("stack_error").is_none(), "{ev}");
    let line = out.stderr.lines().find(|l| l.contains("LEAK")).unwrap_or("");
    assert!(line.contains(" at leak_inner"), "leak line does not start at leak_inner: {line}");
    assert!(line.contains("leak_middle"), "leak line lacks leak_middle: {line}");
}

fn build(tag: &str, flags: &[&str]) -> Option<PathBuf> {
    match client_with_flags("stack_leak", tag, flags) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("SKIP stack_leak {tag}: {e}");
            None
        }
    }
}

fn run_tcp(prog: &Path, opts: &[&str]) -> (Outcome, TcpSink) {
    let sink = TcpSink::bind("127.0.0.1");
    let out = Trace::new().opts(opts).program([prog.to_str().unwrap(), "tcp", &sink.port()]).run();
    (out, sink)
}

#[test]
fn stack_with_frame_pointers_and_dwarf() {
    let prog = build("fp", &["-fno-omit-frame-pointer"]).expect("native build");
    let (out, sink) = run_tcp(&prog, &["--stack"]);
    out.assert_code(0);
    assert!(out.stdout.contains("result=-1 errno=1"), "{}", out.describe());
    sink.assert_nothing_arrived("blocked connect with --stack");
    assert_chain(&out, "connect");
    // -g: file and line of the leaking call.
    let ev = the_leak(&out);
    let inner = ev["stack"].as_array().unwrap().iter().find(|f| f["function"] == "leak_inner").unwrap();
    assert!(inner["file"].as_str().is_some_and(|f| f.ends_with("stack_leak.c")), "{inner}");
    assert!(inner["line"].as_u64().is_some_and(|l| l > 0), "{inner}");
    let module = inner["module"].as_str().unwrap();
    assert_eq!(Path::new(module), prog, "{inner}");
}

#[test]
fn stack_at_o2_without_frame_pointers() {
    let prog = build("o2", &["-O2", "-fomit-frame-pointer"]).expect("native -O2 build");
    let sink = UdpSink::bind("127.0.0.1");
    let out = Trace::new().opts(["--stack"]).program([prog.to_str().unwrap(), "udp", &sink.port()]).run();
    out.assert_code(0);
    sink.assert_nothing_arrived("blocked sendto with --stack");
    assert_chain(&out, "sendto");
}

#[test]
fn stack_of_a_static_program() {
    let Some(prog) = build("static", &["-static"]) else { return };
    let (out, _sink) = run_tcp(&prog, &["--stack"]);
    out.assert_code(0);
    assert_chain(&out, "connect");
    // The wrapper is in the program itself: the leak line skips it all the same.
    let ev = the_leak(&out);
    let top = &ev["stack"][0];
    assert_eq!(top["module"].as_str().map(Path::new), Some(prog.as_path()), "{ev}");
}

#[test]
fn stack_of_an_i386_program() {
    // i386: frame-pointer walking (framehop unwinds x86_64 only), so the build keeps them.
    let Some(prog) = build("m32", &["-m32", "-fno-omit-frame-pointer"]) else { return };
    let (out, sink) = run_tcp(&prog, &["--stack"]);
    out.assert_code(0);
    sink.assert_nothing_arrived("blocked i386 connect with --stack");
    assert_chain(&out, "connect");
    let ev = the_leak(&out);
    let pcs: Vec<u64> = ev["stack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| u64::from_str_radix(f["pc"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect();
    assert!(pcs.iter().all(|&pc| pc < 1 << 32), "i386 addresses: {pcs:x?}");
}

/// The interpreter `python3` on PATH, and whether it runs on a shared libpython.
fn python() -> Option<(String, bool)> {
    let out = Command::new("python3")
        .args(["-c", "import sys, sysconfig; print(sys.executable); print(sysconfig.get_config_var('Py_ENABLE_SHARED'))"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    let exe = lines.next()?.to_string();
    let shared = lines.next() == Some("1");
    Some((exe, shared))
}

#[test]
fn stack_of_a_python_program() {
    let Some((python, shared)) = python() else { skip!("no python3") };
    let sink = TcpSink::bind("127.0.0.1");
    let code = format!(
        "import socket\ns = socket.socket()\ntry:\n    s.connect(('127.0.0.1', {}))\nexcept OSError as e:\n    print('refused', e.errno)\n",
        sink.port()
    );
    let out = Trace::new().opts(["--stack"]).program([python.as_str(), "-c", &code]).run();
    out.assert_code(0);
    assert!(out.stdout.contains("refused 1"), "{}", out.describe());
    sink.assert_nothing_arrived("python connect with --stack");
    let ev = the_leak(&out);
    let frames = ev["stack"].as_array().expect("stack");
    let names = functions(ev);
    // The socket module's C code made the call; CPython's evaluator ran it.
    assert!(names.iter().any(|n| n.contains("connect")), "{names:?}");
    let eval =
        frames.iter().find(|f| f["function"].as_str().is_some_and(|n| n.starts_with("_PyEval_EvalFrame")));
    let eval = eval.unwrap_or_else(|| panic!("no CPython evaluator frame: {names:?}\n{}", out.describe()));
    let module = eval["module"].as_str().unwrap_or("");
    if shared {
        assert!(module.contains("libpython"), "evaluator frame not in libpython: {eval}");
    } else {
        eprintln!("note: {python} links libpython statically; its frames are in {module}");
        assert!(module.starts_with('/'), "{eval}");
    }
}

#[test]
fn stack_off_adds_no_fields() {
    let prog = build("fp", &["-fno-omit-frame-pointer"]).expect("native build");
    let (out, _sink) = run_tcp(&prog, &[]);
    out.assert_code(0);
    let ev = the_leak(&out);
    for key in ["stack", "stack_error", "core", "core_error"] {
        assert!(ev.get(key).is_none(), "{key} without --stack: {ev}");
    }
    let line = out.stderr.lines().find(|l| l.contains("LEAK")).unwrap_or("");
    assert!(!line.contains(" at "), "{line}");
}

#[test]
fn stack_without_root() {
    if !is_root() {
        skip!("needs root to switch to nobody");
    }
    let prog = build("fp", &["-fno-omit-frame-pointer"]).expect("native build");
    let mut copies = Copies::new();
    let prog = copies.add(&prog, "stack_leak");
    let sink = TcpSink::bind("127.0.0.1");
    let out =
        copies.as_nobody().opts(["--stack"]).program([prog.to_str().unwrap(), "tcp", &sink.port()]).run();
    out.assert_code(0);
    assert_chain(&out, "connect");
}

#[test]
fn core_on_leak_opens_in_gdb_at_the_leaking_call() {
    let prog = build("fp", &["-fno-omit-frame-pointer"]).expect("native build");
    let dir = tempfile::tempdir().expect("tempdir");
    let cores = dir.path().join("cores");
    let (out, sink) = run_tcp(&prog, &["--stack", "--core-on-leak", cores.to_str().unwrap()]);
    out.assert_code(0);
    sink.assert_nothing_arrived("blocked connect with --core-on-leak");
    let ev = the_leak(&out);
    let Some(core) = ev.get("core").and_then(Value::as_str) else {
        panic!("no core file: {}\n{}", ev.s("core_error"), out.describe());
    };
    let name = Path::new(core).file_name().unwrap().to_string_lossy().to_string();
    let pid = ev.i("pid").unwrap();
    assert_eq!(name, format!("sockstrace-leak-{pid}-1.{pid}"), "{ev}");
    assert!(Path::new(core).is_file(), "{core} missing\n{}", out.describe());
    assert!(out.stderr.contains(&format!("core {core}")), "{}", out.stderr);
    let gdb =
        Command::new("gdb").args(["-batch", "-ex", "bt"]).arg(&prog).arg(core).output().expect("run gdb");
    let bt = String::from_utf8_lossy(&gdb.stdout);
    let frames: Vec<&str> = bt.lines().filter(|l| l.starts_with('#')).collect();
    let top: Vec<&str> = frames.iter().take(3).copied().collect();
    assert!(top.iter().any(|l| l.contains("connect")), "connect not on top:\n{bt}");
    assert!(top.iter().any(|l| l.contains("leak_inner")), "leak_inner not near the top:\n{bt}");
    assert!(bt.contains("leak_outer"), "{bt}");
}

#[test]
fn core_limit_bounds_the_cores() {
    let prog = build("fp", &["-fno-omit-frame-pointer"]).expect("native build");
    let dir = tempfile::tempdir().expect("tempdir");
    let cores = dir.path().join("cores");
    let sink = TcpSink::bind("127.0.0.1");
    // Two leaking programs under one run: the second leak gets no core (limit 1).
    let script = format!("{0} tcp {1}; {0} tcp {1}", prog.display(), sink.port());
    let out =
        Trace::new().opts(["--core-on-leak", cores.to_str().unwrap()]).program(["sh", "-c", &script]).run();
    out.assert_code(0);
    let leaks: Vec<&Event> = out.events.iter().filter(|e| e.is_leak()).collect();
    assert_eq!(leaks.len(), 2, "{}", out.describe());
    assert!(leaks[0].get("core").is_some(), "{}", leaks[0]);
    assert!(leaks[1].get("core").is_none() && leaks[1].get("core_error").is_none(), "{}", leaks[1]);
    assert_eq!(std::fs::read_dir(&cores).unwrap().count(), 1);
}

/// sockstrace reaps every exited child it has (it is the program's subreaper), and gcore is
/// one. When gcore ended before its waiter asked for its status (here a wrapper leaves a
/// process holding gcore's stderr open, which the waiter reads to the end first), the reaper
/// took the status, the waiter got `ECHILD`, and the core the event named never appeared.
#[test]
fn a_core_is_put_in_place_when_gcore_ends_before_its_waiter_asks() {
    let Some(gcore) = ["/usr/bin/gcore", "/usr/local/bin/gcore"].into_iter().find(|p| Path::new(p).is_file())
    else {
        skip!("gcore not installed (gdb)");
    };
    let prog = build("fp", &["-fno-omit-frame-pointer"]).expect("native build");
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let wrapper = bin.join("gcore");
    // Written by another process (an fd of ours open for writing, inherited by another test
    // thread's child, would make its exec fail with ETXTBSY).
    let script = format!("#!/bin/sh\n{gcore} \"$@\"\nstatus=$?\nsleep 1 &\nexit $status\n");
    let written = Command::new("sh")
        .args(["-c", "printf '%s' \"$1\" > \"$2\" && chmod 755 \"$2\"", "sh", &script])
        .arg(&wrapper)
        .status()
        .expect("sh");
    assert!(written.success());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let cores = dir.path().join("cores");
    let sink = TcpSink::bind("127.0.0.1");
    let out = Trace::new()
        .env("PATH", &path)
        .opts(["--core-on-leak", cores.to_str().unwrap()])
        .program([prog.to_str().unwrap(), "tcp", &sink.port()])
        .run();
    let leak =
        out.events.iter().find(|e| e.is_leak()).unwrap_or_else(|| panic!("no leak\n{}", out.describe()));
    let core = leak.s("core");
    assert!(!core.is_empty(), "{leak}\n{}", out.describe());
    assert!(Path::new(core).is_file(), "the event names {core}, which is not there\n{}", out.describe());
}

#[test]
fn report_groups_leaks_by_code_location() {
    let prog = build("fp", &["-fno-omit-frame-pointer"]).expect("native build");
    let sink = UdpSink::bind("127.0.0.1");
    // Three leaks from one place (two processes, two calls), under one run.
    let script = format!("{0} udp {1}; {0} udp {1}; {0} tcp {1}", prog.display(), sink.port());
    let out = Trace::new().opts(["--stack"]).program(["sh", "-c", &script]).run();
    out.assert_code(0);
    let leaks = out.events.iter().filter(|e| e.is_leak()).count();
    assert_eq!(leaks, 3, "{}", out.describe());
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.jsonl");
    std::fs::write(&report, out.report_text.as_deref().unwrap()).unwrap();
    let html = dir.path().join("report.html");
    let shown = Command::new(sockstrace_tests::sockstrace_bin())
        .arg("report")
        .arg(&report)
        .arg("--html")
        .arg(&html)
        .output()
        .expect("run sockstrace report");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{text}");
    assert!(text.contains("3 leak(s) from leak_inner in stack_leak:"), "{text}");
    assert!(text.contains("    by leak_middle (stack_leak.c:"), "{text}");
    let row =
        text.lines().find(|l| l.contains("leak_inner in stack_leak") && !l.contains("from")).unwrap_or("");
    assert!(row.trim_start().starts_with('3'), "one row of 3 leaks: {row}\n{text}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<h2>Leaks by code location</h2>"), "no stack section in the page");
    assert!(page.contains("leak_middle (stack_leak.c:"), "no callers in the page");
}

#[test]
fn the_messages_of_one_sendmmsg_share_its_stack() {
    let sinks = [UdpSink::bind("127.0.0.1"), UdpSink::bind("127.0.0.2")];
    // Logged, so that every message is judged (a blocked one ends the call).
    let out = Trace::new()
        .opts(["--stack"])
        .on_leak("log")
        .netprobe(["udp-sendmmsg", "2", "127.0.0.1", &sinks[0].port(), "127.0.0.2", &sinks[1].port()])
        .run();
    out.assert_code(0);
    let leaks: Vec<&Event> = out.events.iter().filter(|e| e.is_leak()).collect();
    assert_eq!(leaks.len(), 2, "{}", out.describe());
    for sink in &sinks {
        assert!(sink.wait_datagrams(1, std::time::Duration::from_secs(5)), "logged message never arrived");
    }
    let first = functions(leaks[0]);
    assert!(first.iter().any(|f| f == "cmd_udp_sendmmsg"), "{first:?}");
    assert_eq!(leaks[0].get("stack"), leaks[1].get("stack"), "{}", out.describe());
}
