//! Red team against the program's output relay and the report file's private copy, and against
//! the kernel layer completing itself while the program runs: a program that wants its leak
//! missing from what its user reads, or its supervisor writing where the program chooses.
//!
//! The attacker is `tests/clients/r2_out.c`. Ground truth is the report as a reader parses it,
//! and the files a root supervisor leaves behind.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use sockstrace_tests::{client, skip, UdpSink};

/// Runs sockstrace with stdout and stderr as pipes (read to the end), returns (exit code,
/// stdout, stderr).
fn run_piped(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(sockstrace_tests::paths::sockstrace_bin())
        .args(args)
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run sockstrace");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Lines of `text` that parse as JSON objects and say `"verdict":"leak"`.
fn leak_lines(text: &str) -> usize {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("verdict").and_then(|v| v.as_str()) == Some("leak"))
        .count()
}

/// `--report /dev/stdout` (or `/dev/fd/1`, `/proc/self/fd/1`) is the report on stdout, as
/// `--report -` is; but only `-` is taken for stdout, so when stdout is a pipe the program is
/// not given a relay pipe and shares the very pipe the events go to. Half a line of its own
/// (no newline) before a leak glues the leak's JSON to it: the line no longer parses and the
/// event is missing for whoever reads the report (the summary still counts it).
#[test]
fn a_report_on_dev_stdout_does_not_let_a_half_line_hide_a_leak() {
    let forbidden = UdpSink::bind("127.0.0.1");
    let prog = client("r2_out");
    for report in ["/dev/stdout", "/proc/self/fd/1"] {
        let (code, stdout, stderr) = run_piped(&[
            "run",
            "--kernel",
            "off",
            "--report",
            report,
            "--",
            prog.to_str().unwrap(),
            "glue",
            &forbidden.host(),
            &forbidden.port(),
        ]);
        let d =
            format!("--report {report}: exit {code:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
        forbidden.assert_nothing_arrived("the glued leak");
        assert_eq!(code, Some(0), "{d}");
        assert!(stderr.contains("LEAK BLOCKED"), "the leak was not tried\n{d}");
        assert!(stdout.contains("glue-out"), "the program's own half line\n{d}");
        assert_eq!(leak_lines(&stdout), 1, "the leak's event is not a line of its own\n{d}");
    }
}

/// What held: under `--report -` the same program's half line is relayed and the event starts
/// a line of its own (the relay holds the partial line; our line goes at a line start).
#[test]
fn a_half_line_on_report_stdout_does_not_hide_a_leak() {
    let forbidden = UdpSink::bind("127.0.0.1");
    let prog = client("r2_out");
    let (code, stdout, stderr) = run_piped(&[
        "run",
        "--kernel",
        "off",
        "--report",
        "-",
        "--",
        prog.to_str().unwrap(),
        "glue",
        &forbidden.host(),
        &forbidden.port(),
    ]);
    let d = format!("exit {code:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    forbidden.assert_nothing_arrived("the leak");
    assert_eq!(code, Some(0), "{d}");
    assert!(stdout.contains("glue-out"), "the program's own half line\n{d}");
    assert_eq!(leak_lines(&stdout), 1, "the leak's event is not a line of its own\n{d}");
}

/// Root runs the program as nobody (`--user nobody`) with `--report` in a directory tree that
/// nobody owns (its home, a scratch directory). The program removes the report (so that it
/// is restored at the end) and replaces the directory holding it by a symbolic link to a
/// directory only root may write. The restore follows the link: root creates the report's
/// name there (and would replace a file of that name), where the program could never write.
#[test]
fn the_report_restore_does_not_follow_a_directory_the_program_swapped() {
    if !sockstrace_tests::is_root() {
        skip!("switching to nobody needs root");
    }
    let base = tempfile::Builder::new().prefix("sockstrace-r2").tempdir().expect("tempdir");
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let owned = base.path().join("nobodys");
    let sub = owned.join("reports");
    let victim = base.path().join("roots-only");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();
    for dir in [&owned, &sub] {
        std::os::unix::fs::chown(dir, Some(65534), Some(65534)).unwrap();
    }
    let prog = base.path().join("r2_out");
    let copied = Command::new("cp").arg("--").arg(client("r2_out")).arg(&prog).status().expect("run cp");
    assert!(copied.success(), "cp");
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let report = sub.join("r.jsonl");
    let (code, stdout, stderr) = run_piped(&[
        "run",
        "--kernel",
        "off",
        "--user",
        "nobody",
        "--report",
        report.to_str().unwrap(),
        "--",
        prog.to_str().unwrap(),
        "swapdir",
        report.to_str().unwrap(),
        victim.to_str().unwrap(),
    ]);
    let d = format!("exit {code:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert!(stdout.contains("swapdir: done"), "the program did not swap the directory\n{d}");
    let planted = victim.join("r.jsonl");
    assert!(
        !Path::new(&planted).exists(),
        "root wrote {} through the program's link\n{d}",
        planted.display()
    );
}

/// The program runs as sockstrace's own user (no root) and can write the report file. It
/// blanks its leak's line, as `redteam_rt5::the_program_cannot_erase_its_leaks_from_the_report_file`
/// does, and first makes a directory at the one name the restore writes its new file under
/// (`.NAME.sockstrace-restore-PID` beside the report, PID its supervisor's, both known to it):
/// the restore's `create_new` fails, and the report keeps the blanked line (stderr and the
/// summary say the restore failed; the leak's event is gone from the file).
#[test]
fn a_planted_directory_does_not_stop_the_report_from_being_restored() {
    if !sockstrace_tests::is_root() {
        skip!("switching to nobody needs root");
    }
    let forbidden = UdpSink::bind("127.0.0.1");
    let mut copies = sockstrace_tests::unpriv::Copies::new();
    let planter = copies.add(&client("r2_out"), "r2_out");
    let eraser = copies.add(&client("rt5_forge"), "rt5_forge");
    let trace = copies.as_nobody();
    let report = trace.dir().join("report.jsonl");
    let out = trace
        .program([
            planter.to_str().unwrap(),
            "plant",
            report.to_str().unwrap(),
            eraser.to_str().unwrap(),
            "erase",
            &forbidden.host(),
            &forbidden.port(),
        ])
        .run();
    forbidden.assert_nothing_arrived("the erased leak");
    let d = out.describe();
    assert!(out.stdout.contains("erase: 1 line(s)"), "the program did not erase its leak\n{d}");
    assert_eq!(out.summary_count("leaks"), 1, "{d}");
    assert_eq!(out.leaks().len(), 1, "the leak's event is gone from the report\n{d}");
}

/// Runs `sockstrace run --report REPORT -- PROGRAM...` as nobody (the copies' binary).
fn run_as_nobody(
    copies: &sockstrace_tests::unpriv::Copies,
    report: &Path,
    program: &[&str],
) -> (Option<i32>, String, String) {
    let n = sockstrace_tests::unpriv::NOBODY;
    let out = Command::new("setpriv")
        .args([format!("--reuid={n}"), format!("--regid={n}"), "--clear-groups".into()])
        .arg(&copies.sockstrace)
        .args(["run", "--report"])
        .arg(report)
        .arg("--")
        .args(program)
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run sockstrace");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The report file's check compares inode and bytes, not its mode. A program run as
/// sockstrace's own user (CI running the same app again and again) leaves the report path
/// write-only for its owner (`chmod 200`, unnoticed: the bytes are ours). The next run could
/// open it write-only only (it cannot read it back), and once kept no private copy then; that
/// run's program made it readable again and blanked its leak's line, which stayed blank. Now
/// the file is kept all the same and read back at the end through a new descriptor: the leak's
/// line is restored.
#[test]
fn a_report_left_write_only_by_an_earlier_run_is_still_kept() {
    if !sockstrace_tests::is_root() {
        skip!("switching to nobody needs root");
    }
    let forbidden = UdpSink::bind("127.0.0.1");
    let mut copies = sockstrace_tests::unpriv::Copies::new();
    let eraser = copies.add(&client("rt5_forge"), "rt5_forge");
    let dir = tempfile::Builder::new().prefix("sockstrace-r2").tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let report = dir.path().join("report.jsonl");
    let r = report.to_str().unwrap();
    let (code, _, stderr) = run_as_nobody(&copies, &report, &["/bin/chmod", "200", r]);
    assert_eq!(code, Some(0), "the first run\n{stderr}");
    let script =
        format!("chmod 600 {r} && exec {} erase {} {}", eraser.display(), forbidden.host(), forbidden.port());
    let (code, stdout, stderr) = run_as_nobody(&copies, &report, &["/bin/sh", "-c", &script]);
    forbidden.assert_nothing_arrived("the erased leak");
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let d =
        format!("exit {code:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- report ---\n{text}");
    assert!(stdout.contains("erase: 1 line(s)"), "the program did not erase its leak\n{d}");
    assert!(stderr.contains("LEAK BLOCKED"), "the leak was not tried\n{d}");
    assert_eq!(leak_lines(&text), 1, "the leak's event is gone from the report, unsaid\n{d}");
}

/// `--report >(jq ...)` (process substitution) names the report `/dev/fd/63`, a pipe the
/// shell passed to sockstrace, which passes it on to the program: the program holds the
/// report's own pipe. Half a line written there before a leak glues the leak's JSON to it
/// (and it could write whole forged events, or make the pipe non-blocking). Here the pipe is
/// fd 7, named `/dev/fd/7`.
#[test]
fn the_program_does_not_inherit_the_reports_own_pipe() {
    use std::io::Read as _;
    use std::os::fd::AsRawFd as _;
    use std::os::unix::process::CommandExt as _;
    let forbidden = UdpSink::bind("127.0.0.1");
    let prog = client("r2_out");
    let (mut report_read, report_write) = std::io::pipe().unwrap();
    let raw = report_write.as_raw_fd();
    let mut cmd = Command::new(sockstrace_tests::paths::sockstrace_bin());
    cmd.args(["run", "--kernel", "off", "--report", "/dev/fd/7", "--"])
        .arg(&prog)
        .args(["gluefd", "7", &forbidden.host(), &forbidden.port()])
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and calls only dup2 or fcntl,
    // which are async-signal-safe; `raw` is open in the parent until after spawn.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself keeps close-on-exec: clear it then.
            let done = if raw == 7 { libc::fcntl(7, libc::F_SETFD, 0) } else { libc::dup2(raw, 7) };
            if done < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn sockstrace");
    drop(cmd);
    drop(report_write);
    let out = child.wait_with_output().expect("wait for sockstrace");
    let mut report = String::new();
    report_read.read_to_string(&mut report).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let d = format!("exit {}\n--- report ---\n{report}\n--- stderr ---\n{stderr}", out.status);
    forbidden.assert_nothing_arrived("the glued leak");
    assert_eq!(out.status.code(), Some(0), "{d}");
    assert!(stderr.contains("LEAK BLOCKED"), "the leak was not tried\n{d}");
    assert!(!report.contains("glue-fd"), "the program wrote into the report\n{d}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("gluefd: fd 7: Bad file descriptor"),
        "the program held the report's fd\n{d}"
    );
    assert_eq!(leak_lines(&report), 1, "the leak's event is not a line of its own\n{d}");
}

/// What held: the program floods its stderr (relayed: a pipe) with 4 MiB of binary bytes and
/// no newline at all, and leaks in the middle. The relay passes a partial line on once it
/// reaches 64 KiB, and a line of ours written after the program's bytes stopped mid-line gets
/// a newline first: the LEAK line is a line of its own, and the run ends.
#[test]
fn a_flood_of_binary_output_without_newlines_does_not_hide_the_leak_line() {
    let forbidden = UdpSink::bind("127.0.0.1");
    let prog = client("r2_out");
    let (code, _, stderr) = run_piped(&[
        "run",
        "--kernel",
        "off",
        "--",
        prog.to_str().unwrap(),
        "flood",
        &forbidden.host(),
        &forbidden.port(),
    ]);
    forbidden.assert_nothing_arrived("the leak");
    let ours: Vec<&str> = stderr.lines().filter(|l| l.starts_with("sockstrace: ")).collect();
    let d = format!("exit {code:?}, {} bytes on stderr; our lines:\n{}", stderr.len(), ours.join("\n"));
    assert_eq!(code, Some(0), "{d}");
    assert!(
        stderr.matches('x').count() >= 4 * 1024 * 1024 - 1024 * 4,
        "the program's bytes were not all relayed\n{d}"
    );
    assert!(
        ours.iter().any(|l| l.starts_with("sockstrace: LEAK BLOCKED: sendto udp")),
        "no LEAK line of its own\n{d}"
    );
    assert!(ours.iter().any(|l| l.starts_with("sockstrace: summary: 1 leak(s)")), "no summary line\n{d}");
}

/// What held: a socket made and used while the rest of the kernel layer is still loading (the
/// test switch `late-layer-stall` keeps that window open for the whole run) is refused at
/// once, and its event carries the kernel's facts of the socket, from the socket-creation
/// hook attached before the program started: the run's cgroup and the creator's uid. The
/// window leaves no socket of the program unknown to the kernel layer.
#[test]
fn a_socket_made_and_refused_while_the_layer_loads_has_its_kernel_facts() {
    if let Err(why) = sockstrace_tests::kernel_available() {
        skip!("{why}");
    }
    let forbidden = UdpSink::bind("127.0.0.1");
    let prog = client("r2_out");
    let out = sockstrace_tests::Trace::new()
        .env("SOCKSTRACE_TEST_DISABLE", "late-layer-stall")
        .program([prog.to_str().unwrap(), "glue", &forbidden.host(), &forbidden.port()])
        .run();
    forbidden.assert_nothing_arrived("the leak");
    let d = out.describe();
    out.assert_code(0);
    assert!(out.kernel_layer().contains("socket creation only"), "the window did not stay open\n{d}");
    let (_, cgroup_id) = out.kernel_cgroup().unwrap_or_else(|| panic!("no cgroup in the layers line\n{d}"));
    let leaks = out.leaks();
    assert_eq!(leaks.len(), 1, "{d}");
    let kernel = leaks[0].get("kernel").unwrap_or_else(|| panic!("the leak has no kernel facts\n{d}"));
    assert_eq!(kernel.get("cgroup_id").and_then(|v| v.as_u64()), Some(cgroup_id), "{d}");
    assert_eq!(kernel.get("uid").and_then(|v| v.as_u64()), Some(0), "{d}");
}

/// `--report /dev/stderr` with stderr a pipe: the program's stderr is relayed, but the report
/// is written through a description of its own, not through the stream's lock and its line
/// discipline. The relay passes the program's half line on after 50 ms; with `--quiet` (no
/// human LEAK line first to end it) the leak's JSON is glued to it.
#[test]
fn a_report_on_dev_stderr_does_not_let_a_half_line_hide_a_leak() {
    let forbidden = UdpSink::bind("127.0.0.1");
    let prog = client("r2_out");
    let (code, stdout, stderr) = run_piped(&[
        "run",
        "--quiet",
        "--kernel",
        "off",
        "--report",
        "/dev/stderr",
        "--",
        prog.to_str().unwrap(),
        "glue",
        &forbidden.host(),
        &forbidden.port(),
    ]);
    let d = format!("exit {code:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    forbidden.assert_nothing_arrived("the glued leak");
    assert_eq!(code, Some(0), "{d}");
    assert!(stderr.contains("glue-err"), "the program's own half line\n{d}");
    assert!(stderr.contains("\"summary\""), "the report is not on stderr\n{d}");
    assert_eq!(leak_lines(&stderr), 1, "the leak's event is not a line of its own\n{d}");
}

/// Root runs the program as nobody (`--user nobody`, as `sudo sockstrace run` runs it as the
/// invoking user) with `--report` in a directory that user owns (its working directory). The
/// program replaces the report by a symbolic link to a file only root may write, and keeps
/// the end-of-run restore from undoing it (a directory at the restore's name: said as an
/// error, nothing more). The next run opens the report path as root, following the link: the
/// root-only file is truncated and overwritten with the report.
#[test]
fn a_report_link_planted_by_an_earlier_run_does_not_make_root_overwrite_a_file() {
    if !sockstrace_tests::is_root() {
        skip!("switching to nobody needs root");
    }
    let base = tempfile::Builder::new().prefix("sockstrace-r2").tempdir().expect("tempdir");
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let owned = base.path().join("nobodys");
    let roots = base.path().join("roots-only");
    std::fs::create_dir_all(&owned).unwrap();
    std::fs::create_dir_all(&roots).unwrap();
    std::fs::set_permissions(&roots, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&owned, Some(65534), Some(65534)).unwrap();
    let victim = roots.join("precious");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let report = owned.join("r.jsonl");
    let (r, v, o) = (report.to_str().unwrap(), victim.to_str().unwrap(), owned.to_str().unwrap());
    let plant = format!("mkdir {o}/.r.jsonl.sockstrace-restore-$PPID && ln -sf {v} {r} && echo planted");
    let run = |program: &[&str]| {
        let mut args = vec!["run", "--kernel", "off", "--user", "nobody", "--report", r, "--"];
        args.extend_from_slice(program);
        run_piped(&args)
    };
    let (_, stdout, stderr) = run(&["/bin/sh", "-c", &plant]);
    assert!(stdout.contains("planted"), "the first run did not plant the link\n{stdout}\n{stderr}");
    let (code, stdout, stderr) = run(&["/bin/true"]);
    let d = format!("second run: exit {code:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    let now = std::fs::read_to_string(&victim).unwrap_or_default();
    assert_eq!(now, "precious\n", "root overwrote {} through the program's link\n{d}", victim.display());
}

/// Was found: `--report` on a named pipe (a FIFO the user reads, `mkfifo r; consumer < r &`)
/// was written as it is, with no private copy. The program, as sockstrace's own user, opened
/// the FIFO for reading (its path is in our command line) and took the leak's event out of it
/// before the user's reader did: the reader never saw it, and nothing said so. Now a named
/// pipe the program can read is refused before the program starts (exit 2, saying what to do
/// instead); a pipe it cannot read (`--user nobody`, a pipe of root's with mode 600) is written
/// as before, and the reader gets the leak's event.
#[test]
fn the_program_cannot_take_its_leak_out_of_a_report_fifo() {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let forbidden = UdpSink::bind("127.0.0.1");
    let prog = client("r2_out");
    let dir = tempfile::Builder::new().prefix("sockstrace-r2").tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let fifo = dir.path().join("report.fifo");
    let made = Command::new("mkfifo").arg("-m").arg("600").arg(&fifo).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo");
    let f = fifo.to_str().unwrap();
    let program = [prog.to_str().unwrap(), "steal", f, &forbidden.host(), &forbidden.port()];
    // The program as sockstrace's own user: refused before it starts.
    let mut args = vec!["run", "--kernel", "off", "--report", f, "--"];
    args.extend_from_slice(&program);
    let (code, stdout, stderr) = run_piped(&args);
    let d = format!("exit {code:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert_eq!(code, Some(2), "a report pipe the program can read was taken\n{d}");
    assert!(stderr.contains("named pipe") && stderr.contains(">(consumer)"), "{d}");
    assert!(!stdout.contains("steal: "), "the program ran\n{d}");
    if !sockstrace_tests::is_root() {
        skip!("the program as another user needs root");
    }
    // The program as nobody, the pipe root's (mode 600): written as before, read by the user.
    let mut copies = sockstrace_tests::unpriv::Copies::new();
    let prog = copies.add(&prog, "r2_out");
    let mut reader = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open the fifo");
    let mut args = vec!["run", "--kernel", "off", "--user", "nobody", "--report", f, "--"];
    let program = [prog.to_str().unwrap(), "steal", f, &forbidden.host(), &forbidden.port()];
    args.extend_from_slice(&program);
    let (code, stdout, stderr) = run_piped(&args);
    let mut report = Vec::new();
    let read = reader.read_to_end(&mut report);
    let report = String::from_utf8_lossy(&report);
    let d = format!("exit {code:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- report read ({read:?}) ---\n{report}");
    forbidden.assert_nothing_arrived("the leak");
    assert!(stderr.contains("LEAK BLOCKED"), "the leak was not tried\n{d}");
    assert!(stdout.contains("steal: "), "the program did not run\n{d}");
    assert_eq!(leak_lines(&report), 1, "the leak's event never reached the reader\n{d}");
}

/// What held: stdout and stderr one pipe (`2>&1 |`) under `--report -`: the program gets one
/// relay pipe for both (the order of its writes kept), and our events, LEAK line and its half
/// lines on either fd share one lock and line discipline: the leak's event is a line of its own.
#[test]
fn one_pipe_for_stdout_and_stderr_keeps_the_leaks_event_whole() {
    use std::io::Read as _;
    let forbidden = UdpSink::bind("127.0.0.1");
    let prog = client("r2_out");
    let (mut read, write) = std::io::pipe().unwrap();
    let mut child = Command::new(sockstrace_tests::paths::sockstrace_bin())
        .args(["run", "--kernel", "off", "--report", "-", "--"])
        .arg(&prog)
        .args(["glue", &forbidden.host(), &forbidden.port()])
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .stdin(Stdio::null())
        .stdout(write.try_clone().unwrap())
        .stderr(write)
        .spawn()
        .expect("spawn sockstrace");
    let mut text = String::new();
    read.read_to_string(&mut text).unwrap();
    let status = child.wait().unwrap();
    let d = format!("exit {status}\n--- stdout and stderr ---\n{text}");
    forbidden.assert_nothing_arrived("the leak");
    assert_eq!(status.code(), Some(0), "{d}");
    assert!(text.contains("glue-out") && text.contains("glue-err"), "the program's own half lines\n{d}");
    assert!(text.lines().any(|l| l.starts_with("sockstrace: LEAK BLOCKED")), "no LEAK line of its own\n{d}");
    assert_eq!(leak_lines(&text), 1, "the leak's event is not a line of its own\n{d}");
}

/// The receivers of trapped calls are bounded (1024 threads, "each blocked call holds one"),
/// and while the kernel layer completes itself every allowed call holds its receiver in the
/// wait. A program that makes 1100 allowed calls at once in that window (threads connecting a
/// unix socket: allowed by default, no network needed) left no thread to receive its next
/// call: a leak it then tried was never received, so never decided or reported, and the
/// program ended with it pending: `0 leaks`, and `--fail-on-leak` passed. The test switch
/// `late-layer-stall` holds the window open; without it the same program went unreported in
/// 2 of 5 runs here (though a long queue behind 1100 quick calls also loses it in the old
/// order, 3 of 5). A refusal must not depend on a free receiver: the calls let through are
/// answered CONTINUE, held for the layer without a thread each, and the leak is refused at
/// once.
#[test]
fn a_herd_of_calls_waiting_for_the_layer_does_not_hide_a_leak() {
    if let Err(why) = sockstrace_tests::kernel_available() {
        skip!("{why}");
    }
    let forbidden = UdpSink::bind("127.0.0.1");
    let prog = client("r2_herd");
    let out = sockstrace_tests::Trace::new()
        .opts(["--fail-on-leak"])
        .env("SOCKSTRACE_TEST_DISABLE", "late-layer-stall")
        .program([prog.to_str().unwrap(), &forbidden.host(), &forbidden.port(), "1100"])
        .run();
    forbidden.assert_nothing_arrived("the leak");
    let d = out.describe();
    assert!(out.stdout.contains("herd: 1100 threads"), "the herd did not start\n{d}");
    let tried =
        out.events_where(|e| e.is_leak() && e.s("syscall") == "sendto" && e.s("dst") == forbidden.dst());
    assert_eq!(tried.len(), 1, "the leak the program tried is not in the report\n{d}");
    // Calls answered CONTINUE are held for the layer without a thread each: none is refused
    // for want of a receiver.
    assert!(!out.stderr.contains("refused with EAGAIN"), "calls held for the layer took receivers\n{d}");
    out.assert_code(3);
}

/// The same program with 10 threads: the leak is refused at once and reported (what
/// `a_herd_of_calls_waiting_for_the_layer_does_not_hide_a_leak` expects with 1100).
#[test]
fn a_few_calls_waiting_for_the_layer_do_not_hide_a_leak() {
    if let Err(why) = sockstrace_tests::kernel_available() {
        skip!("{why}");
    }
    let forbidden = UdpSink::bind("127.0.0.1");
    let prog = client("r2_herd");
    let out = sockstrace_tests::Trace::new()
        .opts(["--fail-on-leak"])
        .env("SOCKSTRACE_TEST_DISABLE", "late-layer-stall")
        .program([prog.to_str().unwrap(), &forbidden.host(), &forbidden.port(), "10"])
        .run();
    forbidden.assert_nothing_arrived("the leak");
    let d = out.describe();
    assert!(out.stdout.contains("herd: 10 threads"), "the herd did not start\n{d}");
    let tried =
        out.events_where(|e| e.is_leak() && e.s("syscall") == "sendto" && e.s("dst") == forbidden.dst());
    assert_eq!(tried.len(), 1, "the leak the program tried is not in the report\n{d}");
    out.assert_code(3);
}
