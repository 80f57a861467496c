//! Red team r38 against the report path's resolution (`report_writer::resolve`, `kept`), the
//! named-pipe refusal (`report_writer::fifo`), the cgroup-file guard (`supervisor::cgroup_files`,
//! `fence`) and the guard filter's `prlimit64` rule.
//!
//! Attackers: `tests/clients/r38_swap.c` (a process of the program's user beside the run that
//! swaps two names with `renameat2(RENAME_EXCHANGE)` as fast as it can), `r38_tty.c` (job control
//! against the supervisor), and `r36_report.c` (leak, forge, cgroup steps). Ground truth: the
//! sink, the victim file's contents, the program's output, the report as a fresh reader finds it.
//!
//! Found (each test asserts the right behaviour and failed before its fix; all closed since:
//! the path resolved once on descriptors, the pipe judged on the object opened, the cgroup
//! fence on v1 too, SIGTTOU/SIGTTIN blocked in sockstrace):
//!
//! - `a_link_swapped_in_after_the_walk_does_not_make_root_truncate_a_file` (critical): the
//!   link walk (`refuse_foreign_links`, `lstat` per component) and the open (`open(path,
//!   O_CREAT|O_TRUNC)`, links followed by the kernel) are two resolutions. A nobody process
//!   swapping the report's name between a regular file and a nobody link to a root-only file
//!   makes root (`--user nobody`, `sudo`) truncate that file and write the report into it; it
//!   took 1-3 runs here. Reproduce: as nobody in a nobody directory `echo x > r.jsonl; ln -s
//!   /etc/shadow l; r38_swap l r.jsonl 60 &`; as root `sockstrace run --user nobody --report
//!   $DIR/r.jsonl -- true` a few times.
//! - `a_named_pipe_swapped_in_at_the_open_does_not_lose_the_leak_silently`: `Reporter::open`
//!   opens (and truncates) the report *before* `report_fifo_refusal` looks at it, and the two look
//!   at the path separately: a pipe swapped in at the open is written plainly (no private copy,
//!   no end check), the check then sees a regular file; the leak goes into a pipe nobody reads and
//!   the forgery the swapper leaves at the name stands: exit 0, no word.
//! - `the_program_cannot_oom_kill_its_supervisor_through_a_v1_memory_cgroup_its_user_owns`: the
//!   guard engages only when the user owns a cgroup on the *v2* way; a v1 cgroup of the user's
//!   (libcgroup `cgcreate -a/-t`, LXC on v1/hybrid hosts) is not looked at, so the program moves
//!   its supervisor into a memory cgroup of its own, sets `memory.limit_in_bytes` to 64 KiB and
//!   the OOM killer kills the supervisor: SIGKILL, forged report stands.
//! - `the_program_cannot_freeze_its_supervisor_through_a_v1_freezer_cgroup_its_user_owns`: the
//!   same with `freezer.state` = `FROZEN`: the supervisor stopped.
//! - `the_program_cannot_stop_its_supervisor_through_the_terminal`: the program ignores
//!   SIGTTOU, `setpgid(0,0)`, sets `TOSTOP` and `tcsetpgrp`s its own group to the foreground; the
//!   supervisor's main thread writing its summary to the terminal is stopped by SIGTTOU (sent by
//!   the terminal driver: no signal scope applies). The shell says `Stopped`; no summary, no end
//!   check until `fg`.
//!
//! Held: `stop_signals_to_the_shared_process_group_do_not_stop_the_supervisor` (SIGTSTP and
//! SIGSTOP to the shared process group: the Landlock signal scope keeps them from the supervisor;
//! the leak line itself is written by a worker thread that blocks signals, so TOSTOP does not
//! stop the supervisor mid-run, only at its summary).
//!
//! Not tried (time): `..` after links and `//`/trailing slashes in the walk, paths through
//! `/proc/PID/{root,cwd}`, a deleted file or socket behind `/dev/fd/N`, group-writable or ACL'd
//! v2 cgroups (the guard checks the owner uid only: `owns_one_on_the_way`), false breakage of
//! writes under the guard (`$HOME`, `/tmp`, `/dev/null`, `/dev/tty`, entries created in `/` after
//! start), other knobs on the supervisor (`pidfd_send_signal`, `sched_setattr`, `ioprio_set`,
//! `process_madvise`, userfaultfd).

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sockstrace_tests::report_run::{Ran, Reader};
use sockstrace_tests::unpriv::{Copies, NOBODY};
use sockstrace_tests::{client, skip, UdpSink};

/// A forged report: a summary without leaks.
const FORGED: &str = r#"{"schema":1,"summary":{"leaks":0,"blocked":0,"events":0}}"#;

macro_rules! need_root {
    () => {
        if !sockstrace_tests::is_root() {
            skip!("switching to nobody needs root");
        }
    };
}

/// `setpriv` to nobody (no groups), then `argv`.
fn nobody(argv: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into()])
        .args(argv)
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn nobody_ok(argv: &[&str]) {
    let out = nobody(argv).output().expect("setpriv");
    assert!(out.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A scratch tree: `base` (root's, 755) holding `dir` (nobody's, 755), and copies of
/// sockstrace and the attack programs that nobody may run.
struct Scratch {
    _base: tempfile::TempDir,
    dir: PathBuf,
    copies: Copies,
    actor: PathBuf,
    swap: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let base = tempfile::Builder::new().prefix("sockstrace-r38").tempdir().expect("tempdir");
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = base.path().join("home");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let mut copies = Copies::new();
        let actor = copies.add(&client("r36_report"), "r36_report");
        let swap = copies.add(&client("r38_swap"), "r38_swap");
        Scratch { _base: base, dir, copies, actor, swap }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn sockstrace(&self) -> String {
        self.copies.sockstrace.display().to_string()
    }

    /// The swapper, as nobody, exchanging `a` and `b` for `seconds`.
    fn swapper(&self, a: &str, b: &str, seconds: u32) -> Swapper {
        let mut cmd = nobody(&[&self.swap.display().to_string(), a, b, &seconds.to_string()]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        Swapper(cmd.spawn().expect("swapper"))
    }
}

/// The swapping process; killed (by its pid) and reaped on drop.
struct Swapper(Child);

impl Swapper {
    fn wait(mut self) {
        let _ = self.0.wait();
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn leak_step(sink: &UdpSink) -> String {
    format!("leak:{}:{}", sink.host(), sink.port())
}

// ---------------------------------------------------------------------------------------------
// Found
// ---------------------------------------------------------------------------------------------

/// Found: root (`--user nobody`, as under `sudo`), the report in nobody's directory, and a
/// process of nobody's running beside the run (left by an earlier run, or any of the user's
/// session) that swaps the report's name between a regular file and a link (nobody's) to a
/// root-only file. `refuse_foreign_links` looks at the path (`lstat`: a regular file), then
/// `open(path, O_CREAT|O_TRUNC)` follows whatever is there a few microseconds later: the link.
/// Root truncates the root-only file and writes the report into it (exit 0, no word); any file
/// (`/etc/shadow`) can be the victim, whatever its name. The same race works on any directory
/// component of the path, and on `canonicalize` before the restore's directory is opened.
#[test]
fn a_link_swapped_in_after_the_walk_does_not_make_root_truncate_a_file() {
    need_root!();
    let s = Scratch::new();
    let victim = tempfile::Builder::new().prefix("sockstrace-r38-victim").tempdir().unwrap();
    std::fs::set_permissions(victim.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let precious = victim.path().join("shadow");
    std::fs::write(&precious, "precious\n").unwrap();
    std::fs::set_permissions(&precious, std::fs::Permissions::from_mode(0o600)).unwrap();
    let report = s.path("r.jsonl");
    let link = s.path("link");
    nobody_ok(&["sh", "-c", &format!("echo old > {report} && ln -s {} {link}", precious.display())]);
    let swapper = s.swapper(&link, &report, 60);
    std::thread::sleep(Duration::from_millis(200));
    let mut tries = Vec::new();
    for _ in 0..40 {
        let out = Command::new(s.sockstrace())
            .args(["run", "--kernel", "off", "--user", "nobody", "--report", &report, "--", "/bin/true"])
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .stdin(Stdio::null())
            .output()
            .expect("run sockstrace");
        tries.push(out.status.code());
        if std::fs::read_to_string(&precious).unwrap_or_default() != "precious\n" {
            break;
        }
    }
    drop(swapper);
    let now = std::fs::read_to_string(&precious).unwrap_or_default();
    assert_eq!(
        now, "precious\n",
        "root truncated and wrote a root-only file (0600 in a 0700 directory) through a link nobody \
         swapped in after the walk; runs' exits: {tries:?}"
    );
}

/// Found: a report whose name a process of the user swaps between a regular file and a named
/// pipe while sockstrace starts (a pipe the program can read is refused, when the check sees it). `Reporter::open` opens the path first (a pipe opened
/// `O_RDWR` does not block; not a regular file, so written plainly, without a private copy or an
/// end check), and `report_fifo_refusal` looks at it afterwards (a regular file then): the
/// leak's event goes into a pipe nobody reads, and at the end the name holds the regular file
/// the swapper left there (a forgery): exit 0, nothing said.
#[test]
fn a_named_pipe_swapped_in_at_the_open_does_not_lose_the_leak_silently() {
    need_root!();
    let s = Scratch::new();
    let sink = UdpSink::bind("127.0.0.1");
    let report = s.path("r.jsonl");
    let pipe = s.path("pipe");
    nobody_ok(&["sh", "-c", &format!("printf '%s\\n' '{FORGED}' > {report} && mkfifo -m 600 {pipe}")]);
    let mut failures = Vec::new();
    for _ in 0..30 {
        // The swapper ends (the names back where they began) before the program leaks.
        let swapper = s.swapper(&pipe, &report, 1);
        let leak = leak_step(&sink);
        let (sockstrace, actor) = (s.sockstrace(), s.actor.display().to_string());
        let out = nobody(&[
            &sockstrace,
            "run",
            "--kernel",
            "off",
            "--report",
            &report,
            "--",
            &actor,
            "sleep:1500",
            &leak,
        ])
        .output()
        .expect("run sockstrace");
        swapper.wait();
        let ran = Ran::collect(out, &report, Reader::Fresh);
        if ran.stdout.contains("leak: refused") && !ran.leak_kept_or_said() {
            failures.push(ran.describe());
            break;
        }
        if std::fs::metadata(&report).is_ok_and(|m| m.file_type().is_fifo()) {
            // An odd count cannot happen (the swapper ends even); put things back all the same.
            let _ = std::fs::rename(&report, &pipe);
        }
        nobody_ok(&[
            "sh",
            "-c",
            &format!("printf '%s\\n' '{FORGED}' > {report}.new && mv {report}.new {report}"),
        ]);
    }
    sink.assert_nothing_arrived("the leaks");
    assert!(
        failures.is_empty(),
        "the report at its path lacks the leak, nothing said:\n{}",
        failures.join("\n\n")
    );
}

/// A cgroup v1 directory (of the controller mounted at `/sys/fs/cgroup/CONTROLLER`) given to
/// nobody as `cgcreate -a nobody -t nobody` (libcgroup) or an unprivileged LXC container on a
/// v1 host does: the directory, `tasks` and `cgroup.procs` nobody's. Removed on drop (the
/// test's own children are gone by then).
struct V1Delegated {
    base: PathBuf,
}

impl V1Delegated {
    fn new(controller: &str) -> Option<V1Delegated> {
        let mount = Path::new("/sys/fs/cgroup").join(controller);
        let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
        let point = mount.to_str()?;
        let mounted = mounts.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(2) == Some(&"cgroup") && f.get(1) == Some(&point)
        });
        if !mounted {
            return None;
        }
        let base = mount.join(format!("sockstrace-r38-{}", std::process::id()));
        std::fs::create_dir(&base).ok()?;
        for f in ["", "tasks", "cgroup.procs"] {
            std::os::unix::fs::chown(base.join(f), Some(65534), Some(65534)).unwrap();
        }
        Some(V1Delegated { base })
    }

    /// `cmd` starts in this cgroup (as root, before it switches to nobody).
    fn start_in(&self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt as _;
        let procs =
            std::ffi::CString::new(self.base.join("cgroup.procs").as_os_str().as_encoded_bytes()).unwrap();
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
    }
}

impl Drop for V1Delegated {
    fn drop(&mut self) {
        let Ok(dirs) = std::fs::read_dir(&self.base) else { return };
        for sub in dirs.flatten().map(|d| d.path()).filter(|p| p.is_dir()) {
            let _ = std::fs::write(sub.join("freezer.state"), "THAWED");
            let _ = std::fs::remove_dir(&sub);
        }
        let _ = std::fs::remove_dir(&self.base);
    }
}

/// Found: the run is in a cgroup v1 `memory` cgroup its user owns (libcgroup's `cgcreate -a
/// USER -t USER`, LXC on a v1 or hybrid host; no cgroup v2 directory of the user's on the way).
/// `cgroup_files::plan` asks only whether the user owns a cgroup on the *v2* way, so the
/// Landlock domain does not handle `WRITE_FILE`: the program forges the report, makes a memory
/// cgroup of its own beside it, moves its supervisor there (v1 asks for the same euid and write
/// access to the destination's `cgroup.procs`, both the user's) and sets its
/// `memory.limit_in_bytes` to 64 KiB. The supervisor's next allocation (judging the program's
/// leak) meets the kernel's OOM killer: SIGKILL, no end check, no summary, the forgery stands.
#[test]
fn the_program_cannot_oom_kill_its_supervisor_through_a_v1_memory_cgroup_its_user_owns() {
    need_root!();
    let Some(cg) = V1Delegated::new("memory") else {
        skip!("no cgroup v1 memory controller mounted at /sys/fs/cgroup/memory");
    };
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let report = s.path("r.jsonl");
    let forged = s.path("forged.jsonl");
    let kid = cg.base.join("kid");
    let kid = kid.display();
    let steps = [
        format!("write:{forged}:{FORGED}"),
        format!("mv:{forged}:{report}"),
        format!("mkdir:{kid}"),
        format!("supervisor:{kid}/cgroup.procs"),
        format!("poke:{kid}/memory.limit_in_bytes:65536"),
        "sleep:300".into(),
        leak_step(&sink),
        "sleep:1000".into(),
    ];
    let (sockstrace, actor) = (s.sockstrace(), s.actor.display().to_string());
    let mut argv = vec![sockstrace.as_str(), "run", "--kernel", "off", "--report", &report, "--", &actor];
    argv.extend(steps.iter().map(String::as_str));
    let mut cmd = nobody(&argv);
    cg.start_in(&mut cmd);
    let ran = Ran::collect(cmd.output().expect("run sockstrace"), &report, Reader::Fresh);
    sink.assert_nothing_arrived("the leak");
    let d = ran.describe();
    assert!(ran.stdout.contains("mv: ok"), "the program did not forge\n{d}");
    assert_eq!(ran.signal, None, "the program had its supervisor killed\n{d}");
    assert!(ran.leak_kept_or_said(), "the report at its path lacks the leak, nothing said\n{d}");
}

/// Found: the same with the v1 `freezer` controller: the program moves its supervisor into a
/// freezer cgroup of its own and writes `FROZEN` to its `freezer.state`. The supervisor stops
/// (every thread frozen); the program goes on (its trapped calls wait for a supervisor that
/// never answers). The program must not be able to stop its supervisor.
#[test]
fn the_program_cannot_freeze_its_supervisor_through_a_v1_freezer_cgroup_its_user_owns() {
    need_root!();
    let Some(cg) = V1Delegated::new("freezer") else {
        skip!("no cgroup v1 freezer controller mounted at /sys/fs/cgroup/freezer");
    };
    let s = Scratch::new();
    let report = s.path("r.jsonl");
    let kid = cg.base.join("kid");
    let state = kid.join("freezer.state");
    let steps = [
        format!("mkdir:{}", kid.display()),
        format!("supervisor:{}/cgroup.procs", kid.display()),
        format!("poke:{}:FROZEN", state.display()),
        "sleep:1500".into(),
    ];
    let (sockstrace, actor) = (s.sockstrace(), s.actor.display().to_string());
    let mut argv = vec![sockstrace.as_str(), "run", "--kernel", "off", "--report", &report, "--", &actor];
    argv.extend(steps.iter().map(String::as_str));
    let mut cmd = nobody(&argv);
    cg.start_in(&mut cmd);
    let child = cmd.spawn().expect("run sockstrace");
    // What the program did, seen from outside while it sleeps: the supervisor frozen or not.
    std::thread::sleep(Duration::from_millis(800));
    let frozen = std::fs::read_to_string(&state).unwrap_or_default();
    let _ = std::fs::write(&state, "THAWED");
    let out = child.wait_with_output().expect("wait sockstrace");
    let ran = Ran::collect(out, &report, Reader::Fresh);
    assert_ne!(frozen.trim(), "FROZEN", "the program froze its supervisor\n{}", ran.describe());
}

/// `sockstrace run --kernel off -- r38_tty MODE HOST PORT` as nobody, started as a job of a
/// job-control shell (`bash -m`) on a terminal of its own (`script`): its own process group,
/// the terminal's foreground, its parent the shell (so the group is not orphaned, as under any
/// interactive shell). What the terminal showed, the shell's `Stopped` line and `EXIT=` included.
fn on_a_terminal(s: &Scratch, mode: &str, sink: &UdpSink) -> String {
    let tty = s.copies_tty();
    let job = format!(
        "{} run --kernel off -- {} {mode} {} {}; echo EXIT=$?",
        s.sockstrace(),
        tty.display(),
        sink.host(),
        sink.port()
    );
    let shell = format!("bash --norc -m -c '{job}'");
    let out = nobody(&["timeout", "60", "script", "-qec", &shell, "/dev/null"]).output().expect("script");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Scratch {
    fn copies_tty(&self) -> PathBuf {
        let at = self.dir.join("r38_tty");
        std::fs::copy(client("r38_tty"), &at).expect("copy r38_tty");
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o755)).unwrap();
        at
    }
}

/// Found: the program ignores SIGTTOU, moves to a process group of its own (`setpgid`), sets
/// `TOSTOP` on its terminal and makes its group the terminal's foreground (`tcsetpgrp`: it was
/// in the foreground group, its supervisor's, so the terminal lets it). Then it leaks and exits.
/// The supervisor, now in a background group, writes its summary to the terminal (stderr) and
/// the terminal driver stops it with SIGTTOU: no Landlock signal scope covers a signal the
/// kernel sends for a terminal. The shell says `Stopped` and goes on (`EXIT=150`): no summary,
/// no end check of the report; the supervisor sits stopped until someone types `fg`. (The
/// leak's own line went out: the worker thread that wrote it blocks signals, and a writer that
/// blocks SIGTTOU is let write; the main thread's summary is not.) Reproduce in any interactive
/// shell: `sockstrace run -- r38_tty tostop 127.0.0.1 9`.
#[test]
fn the_program_cannot_stop_its_supervisor_through_the_terminal() {
    need_root!();
    let s = Scratch::new();
    let sink = UdpSink::bind("127.0.0.1");
    let shown = on_a_terminal(&s, "tostop", &sink);
    sink.assert_nothing_arrived("the leak");
    assert!(
        shown.contains("tcsetpgrp: ok") && shown.contains("leak: refused"),
        "the attack did not run\n{shown}"
    );
    assert!(!shown.contains("Stopped"), "the supervisor was stopped through its terminal\n{shown}");
    assert!(shown.contains("summary:") && shown.contains("EXIT=0"), "no summary, or a failing exit\n{shown}");
}

/// Held: SIGTSTP (ignored by the program itself) and SIGSTOP sent to the program's own process
/// group, which its supervisor shares: the Landlock signal scope keeps both from the supervisor
/// (the program's own helper stops; the supervisor goes on, reports the leak and sums up).
#[test]
fn stop_signals_to_the_shared_process_group_do_not_stop_the_supervisor() {
    need_root!();
    let s = Scratch::new();
    let sink = UdpSink::bind("127.0.0.1");
    let shown = on_a_terminal(&s, "tstp", &sink);
    sink.assert_nothing_arrived("the leak");
    assert!(shown.contains("tstp: ok") && shown.contains("leak: refused"), "the attack did not run\n{shown}");
    assert!(!shown.contains("Stopped"), "the supervisor was stopped\n{shown}");
    assert!(shown.contains("summary:") && shown.contains("EXIT=0"), "no summary, or a failing exit\n{shown}");
}
