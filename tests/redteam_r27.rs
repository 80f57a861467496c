//! Red team against the supervisor's receiver threads and the sweep of leftover cgroups.
//!
//! Receivers: a program that holds the threads receiving its trapped calls (allowed blocking
//! connects that stall, a copy of its memory that waits on userfaultfd, the thread quota an
//! unprivileged supervisor shares with it), so that its leak attempt waits unreceived, and
//! exits before anyone takes it: the attempt must still be refused and in the report.
//! Attackers: `tests/clients/r27_starve.c`, `r27_nproc.c`, `r27_uffd.c`. Ground truth is a
//! TCP sink (nothing may arrive) and the report.
//!
//! Sweep: the end of a run removes empty cgroups of killed runs beside its own; a live run's
//! must stay, with its hooks.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sockstrace_tests::net::full_listener;
use sockstrace_tests::unpriv::Copies;
use sockstrace_tests::{client, is_root, TcpSink, Trace};

/// More program threads than the supervisor starts receivers (1024 at most) each make an
/// allowed blocking connect to a loopback listener whose accept queue is full; every receiver
/// ends up performing one of them. Then a thread connects to a forbidden sink, and the program
/// exits two seconds later. Safe: the attempt is refused and reported (`direct-tcp`), as it is
/// with a few stalled threads, and the connects beyond the limit are refused with `EAGAIN`,
/// said on stderr. Was (before the reserve receiver): the attempt was never received; the
/// report said `0 leak(s)` and `1024 allowed`.
#[test]
fn a_leak_attempt_behind_every_receiver_stalled_is_still_reported() {
    // The watcher starts at most a receiver a millisecond: five seconds leave room on a loaded
    // machine for all of them to be held before the attempt.
    starve_and_leak(1100, 5000);
}

/// What holds: with a few stalled connects, the watcher adds receivers and the leak attempt is
/// refused and reported at once.
#[test]
fn a_leak_attempt_behind_a_few_stalled_receivers_is_reported() {
    starve_and_leak(40, 1000);
}

fn starve_and_leak(threads: usize, settle_ms: u32) {
    let mut copies = is_root().then(Copies::new);
    let prog = client("r27_starve");
    let mut runs = vec![("root", Vec::<&str>::new(), prog.clone())];
    match copies.as_mut() {
        Some(c) => runs.push(("--user nobody", vec!["--user", "nobody"], c.add(&prog, "r27_starve"))),
        None => sockstrace_tests::util::skip_note(module_path!(), "--user nobody needs root"),
    }
    for (who, opts, prog) in runs {
        let (_listener, stall, _fillers) = full_listener();
        let sink = TcpSink::bind("127.0.0.1");
        let out = Trace::new()
            .opts(["--kernel", "off"])
            .opts(opts)
            .allow(&stall.to_string())
            .timeout(Duration::from_secs(60))
            .program([
                prog.to_str().unwrap().to_string(),
                stall.ip().to_string(),
                stall.port().to_string(),
                threads.to_string(),
                sink.host(),
                sink.port(),
                settle_ms.to_string(),
                "2000".into(),
            ])
            .run();
        let d = format!("{who}, {threads} stalled threads\n{}", out.describe());
        sink.assert_nothing_arrived(&d);
        assert!(
            out.stdout.contains(&format!("stalls: {threads} threads")),
            "the threads were not all made\n{d}"
        );
        let leaks = out.leaks_for("direct-tcp");
        assert!(
            leaks.iter().any(|e| e.s("dst") == sink.dst()),
            "the attempted connect to the forbidden sink is missing from the report\n{d}"
        );
        assert!(
            out.stdout.contains("leak: answered errno=1"),
            "the leak attempt was not refused at once\n{d}"
        );
        // Every stalled connect gets a thread of its own up to the receivers' limit; beyond it
        // the supervisor refuses them with EAGAIN and says so, instead of stalling its queue.
        let refused = out.stderr.contains("were refused with EAGAIN while every receiver was held");
        assert_eq!(refused, threads > 1024, "the EAGAIN refusals of calls beyond the limit\n{d}");
        // Each judged once (those beyond the limit allowed by the policy, refused with EAGAIN).
        let allowed = out.summary_count("allowed");
        assert_eq!(allowed, threads as i64, "the stalled connects allowed\n{d}");
    }
}

/// Threads that `uid` runs now, all processes counted (what RLIMIT_NPROC compares against).
fn threads_of(uid: u32) -> usize {
    let Ok(procs) = std::fs::read_dir("/proc") else { return 0 };
    procs
        .flatten()
        .filter_map(|p| std::fs::read_to_string(p.path().join("status")).ok())
        .filter(|s| {
            s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid.to_string()))
        })
        .filter_map(|s| {
            s.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse::<usize>().ok())
        })
        .sum()
}

/// sockstrace run by an unprivileged user: its receiver threads and the program's threads
/// count against the same RLIMIT_NPROC. The program fills the user's quota with threads that
/// only sleep (no trapped call), makes one allowed blocking connect that stalls (it holds the
/// only receiver; no other can be started: `cannot start a receiver thread: Resource
/// temporarily unavailable`), then a child of its tries a connect to a forbidden sink and is
/// killed two seconds later, before the program ends. Safe: the attempt is refused and
/// reported (by the reserve receiver, started with the first). Was: it was never received,
/// and the report said `0 leak(s)`, `1 allowed`.
#[test]
fn a_leak_attempt_while_the_users_thread_quota_is_used_up_is_still_reported() {
    if !is_root() {
        sockstrace_tests::util::skip_note(module_path!(), "switching to nobody needs root");
        return;
    }
    let mut copies = Copies::new();
    let prog = copies.add(&client("r27_nproc"), "r27_nproc");
    let (_listener, stall, _fillers) = full_listener();
    let sink = TcpSink::bind("127.0.0.1");
    // Room for sockstrace's own threads and about a thousand of the program's.
    let limit = threads_of(65534) + 1000;
    let out = Trace::new()
        .bin(&copies.sockstrace)
        .world_writable_dir()
        .wrapper([
            "prlimit".to_string(),
            format!("--nproc={limit}"),
            "setpriv".into(),
            "--reuid=65534".into(),
            "--regid=65534".into(),
            "--clear-groups".into(),
        ])
        .opts(["--kernel", "off"])
        .allow(&stall.to_string())
        .timeout(Duration::from_secs(60))
        .program([
            prog.to_str().unwrap().to_string(),
            stall.ip().to_string(),
            stall.port().to_string(),
            sink.host(),
            sink.port(),
            "2000".into(),
        ])
        .run();
    let d = format!("RLIMIT_NPROC {limit}\n{}", out.describe());
    sink.assert_nothing_arrived(&d);
    assert!(out.stdout.contains("fillers: "), "the program did not run\n{d}");
    assert!(
        out.leaks_for("direct-tcp").iter().any(|e| e.s("dst") == sink.dst()),
        "the attempted connect to the forbidden sink is missing from the report\n{d}"
    );
    assert!(out.stdout.contains("leak: answered errno=1"), "the leak attempt was not refused at once\n{d}");
}

/// The end of a run removes the empty cgroups that killed runs left beside its own, named
/// `run-<pid>-<n>` after a pid that is gone here and unchanged for a minute. A live run whose
/// supervisor sits in another pid namespace has such a name (its pid means nothing here), and
/// its cgroup can be made to look old (root may set a cgroup directory's times): another run's
/// end must still leave it, and the live run's kernel layer with it, since it holds the
/// program. After the other run's end the live program's forbidden connect is still refused
/// and reported, and the hooks are still attached to its cgroup.
#[test]
fn the_sweep_of_leftovers_leaves_a_live_runs_cgroup_in_another_pid_namespace() {
    if let Err(e) = sockstrace_tests::kernel_available() {
        sockstrace_tests::util::skip_note(module_path!(), &e);
        return;
    }
    let mount = sockstrace_tests::util::cgroup2_mount().expect("cgroup2 is mounted");
    let parent = mount.join("sockstrace");
    let pid_max: u32 =
        std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().expect("pid_max");
    // A pid for the supervisor in its namespace that no process has here.
    let pid = (pid_max / 2..pid_max - 1)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid");
    let script = format!("echo {} > /proc/sys/kernel/ns_last_pid && \"$@\"", pid - 1);
    let sink = TcpSink::bind("127.0.0.1");
    let prog = client("r27_starve");
    let live = Trace::new()
        .wrapper(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", &script, "sh"])
        .timeout(Duration::from_secs(30))
        .program([
            prog.to_str().unwrap().to_string(),
            "127.0.0.1".into(),
            "9".into(),
            "0".into(),
            sink.host(),
            sink.port(),
            "4000".into(),
            "2000".into(),
        ])
        .spawn();
    assert!(
        live.wait_stdout("stalls: 0 threads", Duration::from_secs(10)),
        "the live run did not start\n{}",
        live.describe()
    );
    let name_prefix = format!("run-{pid}-");
    let dir = std::fs::read_dir(&parent)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&name_prefix)))
        .unwrap_or_else(|| {
            panic!("no cgroup {name_prefix}* under {}\n{}", parent.display(), live.describe())
        });
    // The live run's layer completes itself while its program runs: its connect hooks first.
    let attached = |dir: &Path| {
        sockstrace_tests::bpf::attached(dir)
            .unwrap_or_default()
            .iter()
            .any(|(name, _)| name.starts_with("connect"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !attached(&dir) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(attached(&dir), "the live run's connect hooks were never attached to {}", dir.display());
    let aged = Command::new("touch").args(["-d", "2 hours ago"]).arg(&dir).status().expect("run touch");
    assert!(aged.success(), "touch -d {}", dir.display());
    let other = Trace::new().program(["true"]).run();
    other.assert_code(0);
    let still_there = dir.exists();
    let hooks = sockstrace_tests::bpf::attached(&dir).unwrap_or_default();
    let out = live.wait();
    let d = format!("{}\n--- the other run ---\n{}", out.describe(), other.describe());
    assert!(still_there, "another run's end removed the live run's cgroup {}\n{d}", dir.display());
    assert!(
        hooks.iter().any(|(name, _)| name.starts_with("connect")),
        "hooks left on {}: {hooks:?}\n{d}",
        dir.display()
    );
    sink.assert_nothing_arrived(&d);
    assert!(
        out.leaks_for("direct-tcp").iter().any(|e| e.s("dst") == sink.dst()),
        "the live program's forbidden connect is missing from its report\n{d}"
    );
}

/// A receiver stalled on the program's memory: one thread's connect takes its address from a
/// page registered with userfaultfd whose fault the program does not resolve, so the
/// supervisor's copy waits; another thread then tries a forbidden connect. The watcher must
/// add a receiver (no call was answered for a tick): the attempt is refused at once and
/// reported while the first copy still waits. Root only: without privilege userfaultfd
/// handles only faults of the program's own user-mode accesses.
#[test]
fn a_leak_attempt_behind_a_receiver_stalled_on_the_programs_memory_is_reported() {
    if !is_root() {
        sockstrace_tests::util::skip_note(module_path!(), "userfaultfd on the supervisor's reads needs root");
        return;
    }
    let sink = TcpSink::bind("127.0.0.1");
    let out = Trace::new()
        .opts(["--kernel", "off"])
        .timeout(Duration::from_secs(30))
        .program([client("r27_uffd").to_str().unwrap().to_string(), sink.host(), sink.port(), "2000".into()])
        .run();
    let d = out.describe();
    sink.assert_nothing_arrived(&d);
    assert!(out.stdout.contains("uffd: ready"), "userfaultfd is not available to root\n{d}");
    assert!(
        out.stdout.contains("leak: answered errno=1"),
        "the leak attempt waited behind the stalled receiver\n{d}"
    );
    assert!(out.stdout.contains("stall: waited"), "the supervisor's copy did not wait on the page\n{d}");
    assert!(
        out.leaks_for("direct-tcp").iter().any(|e| e.s("dst") == sink.dst()),
        "the attempted connect to the forbidden sink is missing from the report\n{d}"
    );
}
