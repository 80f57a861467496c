//! The program's output through sockstrace's relay, and the report file kept by sockstrace.
//!
//! Where a stream sockstrace writes to is not a terminal, the program writes to a pipe that
//! sockstrace copies to the real stream, whole lines at a time, under the lock its own lines
//! take. The program is `tests/clients/out_prog.c`.

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use sockstrace_tests::{client, Trace, UdpSink};

/// sockstrace's stdout is a pipe (ours): the program's lines, written by stdio in 4 KiB blocks
/// that end mid-line, all arrive in order and whole, and each event is a line of its own
/// between them. The program's last line is split by a leak (a half line flushed, then the
/// leak): its bytes all arrive, in order, and the event is a line of its own.
#[test]
fn a_program_writing_to_a_pipe_gets_all_its_output_in_order_with_our_lines_between_whole_lines() {
    let forbidden = UdpSink::bind("127.0.0.1");
    let n = 400;
    let mut child = Command::new(sockstrace_tests::paths::sockstrace_bin())
        .args(["run", "--report", "-", "--"])
        .arg(client("out_prog"))
        .args(["lines", &forbidden.host(), &forbidden.port(), &n.to_string()])
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sockstrace");
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let stderr = err_reader.join().unwrap();
    let status = child.wait().unwrap();
    forbidden.assert_nothing_arrived("the leaks");
    let d = format!("exit {status}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert_eq!(status.code(), Some(0), "{d}");

    let mut program = Vec::new();
    let mut leaks = 0;
    let mut summary = false;
    for line in stdout.lines() {
        if line.starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{d}"));
            leaks += usize::from(v.get("verdict").and_then(|v| v.as_str()) == Some("leak"));
            summary |= v.get("summary").is_some();
        } else {
            assert!(!line.contains('{'), "an event glued to the program's output: {line:?}\n{d}");
            program.push(line);
        }
    }
    assert_eq!(leaks, n / 50 + 1, "{d}");
    assert!(summary, "no summary line\n{d}");
    let dots = ".".repeat(60);
    let expected: Vec<String> = (0..n).map(|i| format!("line {i} {dots}")).collect();
    assert!(program.len() > n, "program lines missing\n{d}");
    assert_eq!(program[..n], expected[..], "the program's lines, whole and in order\n{d}");
    // "part " then "rest": one line, or two if the half line was flushed before the leak's event.
    assert_eq!(program[n..].concat(), "part rest", "{d}");
}

/// A prompt without a newline still shows while the program waits for an answer (the relay
/// writes a held partial line after a short idle time).
#[test]
fn a_prompt_without_a_newline_still_shows() {
    let trace = Trace::new().report_stdout();
    let flag = trace.dir().join("answer");
    let running =
        trace.program([client("out_prog").to_str().unwrap(), "prompt", flag.to_str().unwrap()]).spawn();
    let shown = running.wait_stdout("prompt> ", Duration::from_secs(8));
    let d = running.describe();
    std::fs::write(&flag, "").unwrap();
    let out = running.wait();
    assert!(shown, "the prompt did not show while the program waited\n{d}");
    out.assert_code(0);
    assert!(out.stdout.contains("prompt> answered\n"), "{}", out.describe());
}

/// A process outside the run that holds the program's stdout open (here the test, through
/// /proc/PID/fd/1) does not keep sockstrace from ending: the relay copies what is readable at
/// the end and closes its pipe; a later write gets EPIPE.
#[test]
fn a_holder_of_the_programs_stdout_does_not_keep_sockstrace_from_ending() {
    if !sockstrace_tests::is_root() {
        sockstrace_tests::skip!("opening another process's fd needs root here");
    }
    let trace = Trace::new().report_stdout().timeout(Duration::from_secs(20));
    let flag = trace.dir().join("go");
    let running =
        trace.program([client("out_prog").to_str().unwrap(), "hold", flag.to_str().unwrap()]).spawn();
    assert!(running.wait_stdout("pid=", Duration::from_secs(8)), "{}", running.describe());
    let stdout = running.stdout();
    let pid: i32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid\n{stdout}"));
    let mut held = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/fd/1"))
        .unwrap_or_else(|e| panic!("open the program's stdout: {e}\n{}", running.describe()));
    std::fs::write(&flag, "").unwrap();
    let out = running.wait();
    out.assert_code(0);
    assert!(out.stdout.contains("bye\n"), "the program's last line\n{}", out.describe());
    assert!(out.summary.is_some(), "no summary line\n{}", out.describe());
    let later = held.write_all(b"after the run\n");
    assert_eq!(
        later.as_ref().map_err(std::io::Error::kind),
        Err(std::io::ErrorKind::BrokenPipe),
        "a write after the run\n{}",
        out.describe()
    );
}

/// The program replaces the report file by rename(2) with a forged one (no leak in it): at the
/// end of the run sockstrace finds another file at the path and restores its own copy, and says
/// so on stderr and in the summary.
#[test]
fn a_report_file_replaced_by_rename_is_restored() {
    let forbidden = UdpSink::bind("127.0.0.1");
    let trace = Trace::new();
    let dir = trace.dir().to_path_buf();
    let out = trace
        .program([client("out_prog").to_str().unwrap(), "rename", &forbidden.host(), &forbidden.port()])
        .run();
    let d = out.describe();
    out.assert_code(0);
    assert!(out.stdout.contains("rename: done"), "the program did not replace the file\n{d}");
    forbidden.assert_nothing_arrived("the leak");
    assert_eq!(out.leaks().len(), 1, "the leak's event is gone from the report\n{d}");
    assert_eq!(out.summary_count("leaks"), 1, "{d}");
    assert_eq!(out.summary_obj().get("report_altered"), Some(&serde_json::Value::Bool(true)), "{d}");
    assert_eq!(out.summary_obj().get("report_restored"), Some(&serde_json::Value::Bool(true)), "{d}");
    assert!(out.stderr.contains("the report file was altered during the run"), "{d}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("sockstrace-restore") || n.ends_with(".forged"))
        .collect();
    assert!(left.is_empty(), "files left next to the report: {left:?}\n{d}");
}
