//! Under systemd, stderr is the journal's stream and `JOURNAL_STREAM` names it (device:inode):
//! each human line then starts with its sd-daemon priority, a leak `<4>` and an error `<3>`, so
//! that `journalctl -p warning` shows them. A `JOURNAL_STREAM` naming another file (inherited
//! from a parent whose stderr was the journal) changes nothing.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use sockstrace_tests::{netprobe, sockstrace_bin, TcpSink};

/// Runs sockstrace with stderr to a file, `JOURNAL_STREAM` naming that file or not; returns
/// the stderr lines.
fn stderr_lines(args: &[&str], journal: bool) -> Vec<String> {
    let dir = tempfile_dir();
    let path = dir.join("stderr");
    let file = File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    let stream = if journal {
        format!("{}:{}", meta.dev(), meta.ino())
    } else {
        format!("{}:{}", meta.dev(), meta.ino() + 1)
    };
    let status = Command::new(sockstrace_bin())
        .args(args)
        .env("JOURNAL_STREAM", stream)
        .env_remove("SOCKSTRACE_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .status()
        .expect("sockstrace runs");
    assert!(status.code().is_some(), "sockstrace was killed: {status}");
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    text.lines().map(str::to_string).collect()
}

fn tempfile_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sockstrace-journal-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn leak_run(journal: bool) -> Vec<String> {
    let sink = TcpSink::bind("127.0.0.2");
    let proxy = TcpSink::bind("127.0.0.1");
    let netprobe = netprobe().to_str().unwrap().to_string();
    let lines = stderr_lines(
        &[
            "run",
            "--kernel",
            "off",
            "--proxy",
            &proxy.addr().to_string(),
            "--",
            &netprobe,
            "tcp-connect",
            "127.0.0.2",
            &sink.port(),
        ],
        journal,
    );
    sink.assert_nothing_arrived("blocked connect");
    lines
}

#[test]
fn on_the_journal_a_leak_is_a_warning_and_an_error_an_error() {
    let lines = leak_run(true);
    let leak = lines
        .iter()
        .find(|l| l.contains("LEAK BLOCKED"))
        .unwrap_or_else(|| panic!("no leak line: {lines:#?}"));
    assert!(leak.starts_with("<4>sockstrace: LEAK BLOCKED"), "{leak:?}");
    let summary = lines.iter().find(|l| l.contains("summary:")).unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(summary.starts_with("<5>sockstrace: summary:"), "{summary:?}");
    let layers = lines.iter().find(|l| l.contains("layers:")).unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(layers.starts_with("<6>sockstrace: layers:"), "{layers:?}");

    let bad = stderr_lines(&["run", "--proxy-user", "alice", "--", "true"], true);
    let error = bad.iter().find(|l| l.contains("error:")).unwrap_or_else(|| panic!("{bad:#?}"));
    assert!(error.starts_with("<3>sockstrace: error:"), "{error:?}");
}

#[test]
fn another_stream_named_changes_nothing() {
    let lines = leak_run(false);
    assert!(lines.iter().any(|l| l.starts_with("sockstrace: LEAK BLOCKED")), "{lines:#?}");
    assert!(lines.iter().all(|l| !l.starts_with('<')), "{lines:#?}");
}
