//! Red team against the report file's end check and its supervisor's guard (e855658, 1ea0ae6):
//! the check follows the report's path as given to the inode sockstrace created, a restore
//! renames a fresh file into the directory opened at the start and fails the run (125) when the
//! path then names another file; both files are written at sockstrace's own offsets (the copy's
//! lag held in memory up to 16 MiB); the guard filter refuses `prlimit64` on another process,
//! and SIGXFSZ no longer kills the supervisor.
//!
//! Attacker: `tests/clients/r36_report.c`, a program of sockstrace's own user (nobody here)
//! that leaks once (a UDP datagram the supervisor refuses) and then works on the report, its
//! directory, the cgroup it shares with its supervisor, or its supervisor's limits and
//! scheduling. Ground truth: the sink, the program's own output, and the report as a *fresh
//! reader process* finds it at its path after the run (`cat PATH`: a reader with no fds of its
//! own beyond stdio, as a user's shell or a CI step is).
//!
//! Found (each test asserts the right behaviour; all closed since: the fd path, relative path,
//! magic link and planted directory link by `report_writer::resolve`, the report on stdout by
//! `Kept::adopt`, the shared cgroup by `supervisor::cgroup_files`):
//!
//! - `a_report_given_as_an_fd_path_is_checked_where_the_user_reads_it`: `--report /dev/fd/5`
//!   (or `/proc/self/fd/5`) with the shell's `5>r.jsonl`. The end check follows `/dev/fd/5` in
//!   sockstrace's own process, which still names the file it opened: a forgery the program
//!   renames over `r.jsonl` is never seen. Exit 0, no word, `r.jsonl` says `"leaks":0`.
//!   Reproduce (one user): `sh -c 'exec sockstrace run --report /dev/fd/5 -- sh -c "LEAK; echo
//!   FORGED > f; mv f r.jsonl" 5>r.jsonl'`.
//!   `a_report_on_stdout_redirected_to_a_file_is_kept_or_said`: the same with `--report -` or
//!   `/dev/stdout` and `> r.jsonl`: a report on stdout is never kept, whatever stdout is.
//! - `a_relative_report_path_is_checked_from_the_directory_the_user_named`: `cd W &&
//!   sockstrace run --report r.jsonl`; the program moves `W` aside (`W.old`) and writes a forgery
//!   at `W/r.jsonl`. The check resolves `r.jsonl` against sockstrace's working directory, an
//!   inode (now `W.old`), where the report is intact: exit 0, no word; `W/r.jsonl` (what the next
//!   CI step, a new shell, a user who `cd`s there, reads) is the forgery.
//! - `a_link_to_sockstraces_own_fd_does_not_pass_for_the_report`: the program replaces the
//!   report by a symbolic link to `/proc/self/fd/3` (3: sockstrace's descriptor of the live
//!   report, the same number every run). Followed by sockstrace, the link names its own file:
//!   intact, exit 0, no word. Followed by any reader, it names the reader's fd 3 (nothing, for a
//!   shell's `cat`/`jq`/`grep`: "No such file or directory"; a file of the reader's own
//!   otherwise). The end check resolves per process magic links (`/proc/self`,
//!   `/proc/thread-self`, `/dev/fd`) as no other reader does.
//! - `the_program_cannot_kill_its_supervisor_through_the_cgroup_they_share`: where the user owns
//!   the cgroup the run is in (every systemd desktop: terminals' shells live in
//!   `user@UID.service/app.slice/*.scope`, made by the user's manager, all their files the
//!   user's; rootless containers), the program writes its supervisor's pid into a cgroup of its
//!   own beside it and writes `1` to that cgroup's `cgroup.kill` (or its own cgroup's, killing
//!   both). The supervisor dies by SIGKILL: no end check, no summary, no stderr line; the
//!   program forged the report before (or after: it outlives its supervisor, its trapped calls
//!   failing with ENOSYS). Neither Landlock (no file-system rights handled) nor the guard filter
//!   covers cgroupfs writes.
//! - `a_directory_link_planted_by_an_earlier_run_does_not_make_root_truncate_a_file`: root runs
//!   the program as nobody (`--user nobody`, as `sudo` does) with the report in nobody's
//!   directory. `refuse_foreign_link` looks at the last component only: a program of an earlier
//!   run that replaced the report's *directory* by a link to a root-only directory makes the next
//!   run (root) create, truncate and write the report's name there (a root-only file of that
//!   name lost), and restore into it.
//!
//! Held (normal tests): `prlimit64` on the supervisor refused in every spelling tried (native,
//! the pid's upper 32 bits set, i386 `int 0x80` from a 64-bit program, x32); a supervisor the
//! program set to `SCHED_IDLE` and nice 19 (no privilege needed, no scope covers it) still
//! reports the leak (slower, nothing fails open); a file system that the program fills with an
//! unnamed file (freed when it ends) while it leaks is mended at the end (the copy's held tail
//! written, the report restored, said, `report_altered`); a file system filled by a file that
//! stays, the summary's write lost at the end: said and exit 125; the copy's lag pushed past its
//! 16 MiB bound (25 MiB of allowed events, each carrying a 64 KiB argv, while the file system is
//! full): said and exit 125 (`a_copy_lag_past_its_bound_fails_the_run_saying_so`).
//!
//! Not a finding: the end check and the rename race only a process that acts during them, and
//! the run ends only when every task under the filter is gone (the listener hangs up after the
//! last one is reaped): a descendant cannot outlive the check. A process of the same user
//! *outside* the run (a `systemd --user` transient unit the program asks for over D-Bus, `at`,
//! a tmux server) can rewrite the report after sockstrace exited; no end check closes that.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sockstrace_tests::report_run::{Ran, Reader};
use sockstrace_tests::unpriv::{Copies, NOBODY};
use sockstrace_tests::util::wait_until;
use sockstrace_tests::{client, skip, UdpSink};

/// A forged report: a summary without leaks.
const FORGED: &str = r#"{"schema":1,"summary":{"leaks":0,"blocked":0,"events":0}}"#;

/// A scratch tree: `base` (root's, 755) holding `dir` (nobody's), where the report goes.
struct Scratch {
    _base: tempfile::TempDir,
    dir: PathBuf,
    copies: Copies,
    program: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let base = tempfile::Builder::new().prefix("sockstrace-r36").tempdir().expect("tempdir");
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = base.path().join("reports");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let mut copies = Copies::new();
        let program = copies.add(&client("r36_report"), "r36_report");
        Scratch { _base: base, dir, copies, program }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `setpriv` to nobody, then `argv`.
    fn as_nobody(&self, argv: &[String]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into()])
            .args(argv)
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .env("XDG_CONFIG_HOME", self.dir.join("no-config"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// `sockstrace run --report REPORT -- r36_report STEPS...` as nobody.
    fn command(&self, report: &str, steps: &[String]) -> Command {
        let mut argv = vec![
            self.copies.sockstrace.display().to_string(),
            "run".into(),
            "--report".into(),
            report.into(),
            "--".into(),
            self.program.display().to_string(),
        ];
        argv.extend(steps.iter().cloned());
        self.as_nobody(&argv)
    }

    /// The same through `sh -c SCRIPT` (sockstrace is `$0`, the program and its steps `$@`).
    fn shell(&self, script: &str, steps: &[String]) -> Command {
        let mut argv = vec![
            "sh".into(),
            "-c".into(),
            script.into(),
            self.copies.sockstrace.display().to_string(),
            self.program.display().to_string(),
        ];
        argv.extend(steps.iter().cloned());
        self.as_nobody(&argv)
    }
}

/// Runs `cmd` (sockstrace) to its end; the report read as a fresh reader finds it.
fn run(mut cmd: Command, report: &str) -> Ran {
    Ran::collect(cmd.output().expect("run sockstrace"), report, Reader::Fresh)
}

/// The bar (`Ran::leak_kept_or_said`), once the program says its leak was refused.
fn assert_kept_or_said(ran: &Ran, attack: &str) {
    ran.assert_leak_kept_or_said(attack, ran.stdout.contains("leak: refused"));
}

fn leak_step(sink: &UdpSink) -> String {
    format!("leak:{}:{}", sink.host(), sink.port())
}

macro_rules! need_root {
    () => {
        if !sockstrace_tests::is_root() {
            skip!("switching to nobody needs root");
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Found
// ---------------------------------------------------------------------------------------------

/// Found: `--report /dev/fd/5 5>r.jsonl` (and `/proc/self/fd/5`): the end check follows the fd
/// path in sockstrace's own process, where it still names the file opened at the start; the
/// program renames a forgery over `r.jsonl` (its own directory) and nothing is said: exit 0,
/// the file the user reads says `"leaks":0`.
#[test]
fn a_report_given_as_an_fd_path_is_checked_where_the_user_reads_it() {
    need_root!();
    for spelling in ["/dev/fd/5", "/proc/self/fd/5"] {
        let sink = UdpSink::bind("127.0.0.1");
        let s = Scratch::new();
        let report = s.path("r.jsonl");
        let forged = s.path("forged.jsonl");
        let script = format!("exec \"$0\" run --report {spelling} -- \"$@\" 5>'{report}'");
        let ran = run(
            s.shell(
                &script,
                &[leak_step(&sink), format!("write:{forged}:{FORGED}"), format!("mv:{forged}:{report}")],
            ),
            &report,
        );
        sink.assert_nothing_arrived("the leak");
        assert!(ran.stdout.contains("mv: ok"), "{spelling}: the program did not forge\n{}", ran.describe());
        assert_kept_or_said(&ran, &format!("--report {spelling}, a forgery renamed over the file"));
    }
}

/// Found (the same, wider): `--report /dev/stdout > r.jsonl` (or `-`, `/dev/fd/1`): a report
/// on stdout is never kept, whatever stdout is; when it is a regular file, the program (whose
/// user owns it) renames a forgery over it and nothing is said, exit 0.
#[test]
fn a_report_on_stdout_redirected_to_a_file_is_kept_or_said() {
    need_root!();
    for spelling in ["-", "/dev/stdout"] {
        let sink = UdpSink::bind("127.0.0.1");
        let s = Scratch::new();
        let report = s.path("r.jsonl");
        let forged = s.path("forged.jsonl");
        let script = format!("exec \"$0\" run --report {spelling} -- \"$@\" > '{report}'");
        let mut ran = run(
            s.shell(
                &script,
                &[leak_step(&sink), format!("write:{forged}:{FORGED}"), format!("mv:{forged}:{report}")],
            ),
            &report,
        );
        sink.assert_nothing_arrived("the leak");
        assert!(ran.stderr.contains("LEAK BLOCKED"), "{spelling}: no leak tried\n{}", ran.describe());
        // The program's own lines went to the file it replaced.
        ran.stdout.push_str("leak: refused\n");
        assert_kept_or_said(&ran, &format!("--report {spelling} > FILE, a forgery renamed over the file"));
    }
}

/// Found: a relative report path (`cd W && sockstrace run --report r.jsonl`) is checked from
/// sockstrace's working directory, an inode: the program moves `W` aside and writes a forgery
/// at `W/r.jsonl`; the report in `W.old` is intact, nothing is said, exit 0, and `W/r.jsonl`,
/// what a new shell in `W` or a CI step reads, says `"leaks":0`.
#[test]
fn a_relative_report_path_is_checked_from_the_directory_the_user_named() {
    need_root!();
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let work = s.dir.join("work");
    std::fs::create_dir(&work).unwrap();
    std::os::unix::fs::chown(&work, Some(65534), Some(65534)).unwrap();
    let report = work.join("r.jsonl").display().to_string();
    let script = format!("cd '{}' && exec \"$0\" run --report r.jsonl -- \"$@\"", work.display());
    let ran = run(
        s.shell(
            &script,
            &[
                leak_step(&sink),
                format!("mv:{}:{}", work.display(), s.path("work.old")),
                format!("mkdir:{}", work.display()),
                format!("write:{report}:{FORGED}"),
            ],
        ),
        &report,
    );
    sink.assert_nothing_arrived("the leak");
    assert!(ran.stdout.contains("write: ok"), "the program did not forge\n{}", ran.describe());
    assert_kept_or_said(&ran, "working directory moved aside, forgery at its old name");
}

/// The pid of sockstrace (`setpriv` execs it) and the number of its fd that names `report`.
fn report_fd_of(pid: u32, report: &str) -> Option<i32> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    fds.flatten().find_map(|fd| {
        let target = std::fs::read_link(fd.path()).ok()?;
        (target == Path::new(report)).then(|| fd.file_name().to_string_lossy().parse().ok())?
    })
}

/// Found: the program replaces the report by a symbolic link to `/proc/self/fd/N`, N being
/// sockstrace's own descriptor of the live report (3, every run; here read from /proc by the
/// test and handed to the program through a file). sockstrace follows the link to its own file:
/// intact, exit 0, no word. Every other reader follows it to its own fd N: a shell's `cat`
/// finds nothing there.
#[test]
fn a_link_to_sockstraces_own_fd_does_not_pass_for_the_report() {
    need_root!();
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let report = s.path("r.jsonl");
    let number = s.path("fdno");
    let child = s
        .command(&report, &[leak_step(&sink), format!("fdlink:{number}:{report}")])
        .spawn()
        .expect("run sockstrace");
    let pid = child.id();
    let found = wait_until(Duration::from_secs(20), || report_fd_of(pid, &report).is_some());
    let fd = report_fd_of(pid, &report);
    std::fs::write(&number, format!("{}\n", fd.unwrap_or(3))).unwrap();
    let ran = Ran::collect(child.wait_with_output().expect("wait"), &report, Reader::Fresh);
    sink.assert_nothing_arrived("the leak");
    assert!(found, "sockstrace's fd of the report was not found\n{}", ran.describe());
    assert!(ran.stdout.contains("fdlink: ok"), "the program did not link\n{}", ran.describe());
    eprintln!("sockstrace's fd of the report: {fd:?}");
    assert_kept_or_said(&ran, "a link to /proc/self/fd/N at the report path");
}

/// Where cgroup v2 is mounted, when it is, with `cgroup.kill` (Linux 5.14+).
fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let at = mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    })?;
    Some(at)
}

/// A cgroup subtree delegated to nobody as systemd's `Delegate=yes` does it (the directory and
/// `cgroup.procs`, `cgroup.threads`, `cgroup.subtree_control` chowned), and a scope nobody made
/// in it (all of its files nobody's, as the user manager's `app-*.scope` are). Removed on drop.
struct Delegated {
    base: PathBuf,
    scope: PathBuf,
}

impl Delegated {
    fn new(mount: &Path) -> Delegated {
        let base = mount.join(format!("sockstrace-r36-{}", std::process::id()));
        std::fs::create_dir(&base).expect("mkdir the delegated cgroup");
        for f in ["", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control"] {
            std::os::unix::fs::chown(base.join(f), Some(65534), Some(65534)).unwrap();
        }
        let scope = base.join("app.scope");
        let made = Command::new("setpriv")
            .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into()])
            .arg("mkdir")
            .arg(&scope)
            .status()
            .expect("mkdir");
        assert!(made.success(), "nobody's scope");
        Delegated { base, scope }
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        let Ok(dirs) = std::fs::read_dir(&self.base) else { return };
        let subs: Vec<PathBuf> = dirs.flatten().map(|d| d.path()).filter(|p| p.is_dir()).collect();
        for sub in subs {
            let _ = std::fs::write(sub.join("cgroup.kill"), "1");
            let _ = wait_until(Duration::from_secs(5), || std::fs::remove_dir(&sub).is_ok());
        }
        let _ = std::fs::remove_dir(&self.base);
    }
}

/// Found: the run is in a cgroup its user owns (a systemd desktop's terminal scope, a rootless
/// container). The program forges the report, makes a cgroup of its own beside its scope, moves
/// its supervisor there (cgroup v2 asks only for write access to the two `cgroup.procs` files
/// and their common ancestor's, all the user's) and writes `1` to its `cgroup.kill`. The
/// supervisor dies by SIGKILL: no end check, no summary, no stderr line about the report; the
/// forgery stands, and the program lives on (its next trapped call fails with ENOSYS: fails
/// closed).
#[test]
fn the_program_cannot_kill_its_supervisor_through_the_cgroup_they_share() {
    need_root!();
    let Some(mount) = cgroup2_mount() else {
        skip!("no cgroup v2 with cgroup.kill here");
    };
    let cg = Delegated::new(&mount);
    if !cg.scope.join("cgroup.kill").exists() {
        skip!("no cgroup.kill here (Linux < 5.14)");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let report = s.path("r.jsonl");
    let forged = s.path("forged.jsonl");
    let side = cg.base.join("side");
    let mut cmd = s.command(
        &report,
        &[
            leak_step(&sink),
            format!("write:{forged}:{FORGED}"),
            format!("mv:{forged}:{report}"),
            format!("mkdir:{}", side.display()),
            format!("supervisor:{}", side.join("cgroup.procs").display()),
            format!("poke:{}:1", side.join("cgroup.kill").display()),
            "sleep:300".into(),
            leak_step(&sink),
        ],
    );
    // The run starts in nobody's scope (as root, before setpriv: the test's own cgroup is the
    // common ancestor, which nobody may not write).
    let procs = CString::new(cg.scope.join("cgroup.procs").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: between fork and exec only open/write/close on a prepared C string.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, c"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        });
    }
    let ran = run(cmd, &report);
    sink.assert_nothing_arrived("the leaks");
    let d = ran.describe();
    assert!(ran.stdout.contains("mv: ok"), "the program did not forge\n{d}");
    assert_eq!(ran.signal, None, "the program killed its supervisor\n{d}");
    assert_kept_or_said(&ran, "supervisor moved to the program's cgroup and killed there");
}

/// Found: root (`--user nobody`) with the report in nobody's directory. An earlier run's
/// program replaced the report's directory by a link (nobody's) to a directory only root may
/// write, holding a file of the report's name. The next run opens the path as root: the link is
/// followed (`refuse_foreign_link` looks at the last component only), the root-only file
/// truncated and overwritten with the report.
#[test]
fn a_directory_link_planted_by_an_earlier_run_does_not_make_root_truncate_a_file() {
    need_root!();
    let s = Scratch::new();
    let victim = tempfile::Builder::new().prefix("sockstrace-r36-victim").tempdir().unwrap();
    std::fs::set_permissions(victim.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let precious = victim.path().join("r.jsonl");
    std::fs::write(&precious, "precious\n").unwrap();
    // What the earlier run's program (nobody) left: `out` a link to the victim directory.
    let out = s.dir.join("out");
    let planted = Command::new("setpriv")
        .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into()])
        .args(["ln", "-s"])
        .arg(victim.path())
        .arg(&out)
        .status()
        .expect("ln");
    assert!(planted.success(), "the planted link");
    let report = out.join("r.jsonl");
    let ran = Command::new(&s.copies.sockstrace)
        .args(["run", "--kernel", "off", "--user", "nobody", "--report"])
        .arg(&report)
        .args(["--", "/bin/true"])
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .stdin(Stdio::null())
        .output()
        .expect("run sockstrace");
    let d = format!("exit {:?}\n--- stderr ---\n{}", ran.status.code(), String::from_utf8_lossy(&ran.stderr));
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap_or_default(),
        "precious\n",
        "root truncated and wrote a root-only file through nobody's directory link\n{d}"
    );
}

// ---------------------------------------------------------------------------------------------
// Held
// ---------------------------------------------------------------------------------------------

/// Held: the program cannot set its supervisor's file size limit in any spelling tried: the
/// native call, the pid with its upper 32 bits set (the kernel reads an int), the i386
/// `prlimit64` (340) by `int 0x80` from a 64-bit program, and the x32 number. All refused with
/// EPERM; the leak is reported and the run ends normally.
#[test]
fn the_supervisors_limits_cannot_be_set_in_any_spelling() {
    need_root!();
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let report = s.path("r.jsonl");
    let ways = ["native", "hipid", "int80", "x32"];
    let mut steps: Vec<String> = ways.iter().map(|w| format!("prlimit:{w}")).collect();
    steps.push(leak_step(&sink));
    let ran = run(s.command(&report, &steps), &report);
    sink.assert_nothing_arrived("the leak");
    let d = ran.describe();
    for way in ways {
        let line = format!("prlimit-{way}: ");
        let got = ran.stdout.lines().find(|l| l.starts_with(&line)).unwrap_or("(no line)");
        // EPERM from the guard; ENOSYS where the kernel lacks the ABI would do as well.
        assert!(
            got.ends_with(&format!("errno={}", libc::EPERM))
                || got.ends_with(&format!("errno={}", libc::ENOSYS)),
            "{way}: {got}\n{d}"
        );
    }
    assert_eq!((ran.code, ran.signal), (Some(0), None), "{d}");
    assert_eq!(ran.leak_lines(), 1, "{d}");
}

/// Held: the program sets its supervisor (every thread: /proc/PID/task is listable) to
/// `SCHED_IDLE` and nice 19, which a process of the same user may do to another (no scope
/// covers it): the supervisor is slower, nothing fails open, the leaks are refused and in the
/// report.
#[test]
fn a_supervisor_set_to_idle_scheduling_still_reports_the_leak() {
    need_root!();
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let report = s.path("r.jsonl");
    let ran = run(
        s.command(&report, &["sched:idle".into(), "nice:19".into(), leak_step(&sink), leak_step(&sink)]),
        &report,
    );
    sink.assert_nothing_arrived("the leaks");
    let d = ran.describe();
    assert!(ran.stdout.contains("sched: ok"), "the supervisor's threads were not set idle\n{d}");
    assert_eq!(ran.code, Some(0), "{d}");
    assert_eq!(ran.leak_lines(), 2, "{d}");
}

/// Unmounts a tmpfs the test mounted, also when it fails.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A small tmpfs of nobody's at `dir/small`.
fn small_fs(s: &Scratch, size: &str) -> Mounted {
    let mnt = s.dir.join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755,uid=65534,gid=65534"), "sockstrace-r36"])
        .arg(&mnt)
        .status()
        .expect("mount");
    assert!(mounted.success(), "mount a tmpfs");
    Mounted(mnt)
}

/// Held: the program fills the report's file system with an unnamed file it keeps open (freed
/// when it ends), then leaks: both the live file's and the copy's writes of the leak's event
/// fail. At the end the space is back: the copy's held tail is written, the report restored
/// from it (said, `report_altered`), the leak's line there, every line whole.
#[test]
fn a_file_system_full_while_the_program_runs_is_mended_at_the_end() {
    need_root!();
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let m = small_fs(&s, "256k");
    let report = m.0.join("r.jsonl").display().to_string();
    let ran = run(s.command(&report, &[format!("fill:{}", m.0.display()), leak_step(&sink)]), &report);
    sink.assert_nothing_arrived("the leak");
    let d = ran.describe();
    eprintln!("{d}");
    assert!(ran.stdout.contains("fill: ok"), "{d}");
    let text = ran.report.clone().unwrap_or_default();
    assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{d}");
    assert_kept_or_said(&ran, "file system full while the program ran");
    assert_eq!(ran.leak_lines(), 1, "{d}");
}

/// Held: the program leaks K times (K from 1 to 10, so that in some runs the summary needs a
/// new page of the file), then its last process fills the file system with a file that stays,
/// just before the end: the summary's write fails in both the live file and the copy (same
/// file system). Each run keeps every leak and its summary, or says so and exits 125; at least
/// one run met the full file system.
#[test]
fn a_file_system_filled_just_before_the_end_is_said() {
    need_root!();
    let mut met = 0;
    for k in 1..=10 {
        let sink = UdpSink::bind("127.0.0.1");
        let s = Scratch::new();
        let m = small_fs(&s, "256k");
        let report = m.0.join("r.jsonl").display().to_string();
        let keep = m.0.join("fill").display().to_string();
        let script = format!(
            "exec \"$0\" run --report '{report}' -- sh -c '\"$0\" \"$@\"; cat /dev/zero > {keep} 2>/dev/null; true' \"$@\""
        );
        let ran = run(s.shell(&script, &vec![leak_step(&sink); k]), &report);
        sink.assert_nothing_arrived("the leaks");
        let d = ran.describe();
        let has_summary = ran.lines().iter().any(|v| v.get("summary").is_some());
        let said = ran.warned() && ran.code == Some(125);
        assert!(has_summary || said, "{k}: the summary was lost without a word\n{d}");
        assert!(ran.leak_lines() == k || said, "{k}: {d}");
        if ran.stderr.contains("No space left") {
            met += 1;
            eprintln!("{k} leak(s): the full file system was met\n{d}");
        }
    }
    assert!(met > 0, "no run met the full file system: the test did not test");
}

/// Held: the copy's lag made to pass its 16 MiB bound. The program's events carry its argv (a
/// 64 KiB argument here): it fills the report's file system with an unnamed file (freed when it
/// ends), sends 400 allowed datagrams (25 MiB of events, none of which the copy or the live file
/// can take), then leaks. The copy gives up what it lacks; at the end (space back) it cannot be
/// vouched for: said, exit 125. (The error names the last ENOSPC, not the bound.)
#[test]
fn a_copy_lag_past_its_bound_fails_the_run_saying_so() {
    need_root!();
    let allowed = UdpSink::bind("127.0.0.1");
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let m = small_fs(&s, "1m");
    let report = m.0.join("r.jsonl").display().to_string();
    let steps = [
        format!("pad:{}", "x".repeat(64 * 1024)),
        format!("fill:{}", m.0.display()),
        format!("send:{}:{}:400", allowed.host(), allowed.port()),
        leak_step(&sink),
    ];
    let mut argv = vec![
        s.copies.sockstrace.display().to_string(),
        "run".into(),
        "--allow".into(),
        format!("{}:{}", allowed.host(), allowed.port()),
        "--report".into(),
        report.clone(),
        "--".into(),
        s.program.display().to_string(),
    ];
    argv.extend(steps);
    let ran = run(s.as_nobody(&argv), &report);
    sink.assert_nothing_arrived("the leak");
    let d = ran.describe();
    assert!(ran.stdout.contains("fill: ok") && ran.stdout.contains("send: 400 of 400 sent"), "{d}");
    assert_kept_or_said(&ran, "the copy's lag past 16 MiB");
    assert!(ran.leak_lines() == 1 || ran.code == Some(125), "{d}");
}
