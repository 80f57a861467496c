//! Red-team attacks on the newer features (`--stack`, `--isolate-network`,
//! `--syscalls`): programs written to make a leak go unreported or to get
//! around the proxy. Each test asserts the safe behaviour; ground truth
//! from sinks.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sockstrace_tests::{client, is_root, skip, Trace, UdpSink};

/// The `.gnu_debuglink` section naming `target` (no CRC check is made by
/// readers that only look the file up).
fn debuglink_section(target: &str, out: &Path) {
    let mut data = target.as_bytes().to_vec();
    data.push(0);
    while !data.len().is_multiple_of(4) {
        data.push(0);
    }
    data.extend_from_slice(&0u32.to_le_bytes());
    std::fs::write(out, data).unwrap();
}

/// A copy of `binary` without DWARF whose `.gnu_debuglink` names `target`.
fn with_debuglink(binary: &Path, target: &str, dir: &Path) -> std::path::PathBuf {
    let section = dir.join("debuglink.bin");
    debuglink_section(target, &section);
    let out = dir.join("attack2_debuglink");
    let status = Command::new("objcopy")
        .arg("--strip-debug")
        .arg("--remove-section=.gnu_debuglink")
        .arg(format!("--add-section=.gnu_debuglink={}", section.display()))
        .arg(binary)
        .arg(&out)
        .status()
        .expect("objcopy");
    assert!(status.success(), "objcopy failed");
    out
}

/// `--stack` looks for a module's separate debug file at the path its
/// `.gnu_debuglink` names, which the program chooses. Named a file that
/// never ends (`/sys/kernel/tracing/trace_pipe`, a regular file that blocks
/// while the trace buffer is empty), the supervisor's symbolization blocked
/// in it before the leak event was written: a logged leak reached the sink
/// while the report said "0 leak(s)" and `--fail-on-leak` exited 0. The leak
/// must be reported, and the run must fail.
#[test]
fn a_debuglink_to_an_endless_file_does_not_hide_the_leak() {
    let pipe = "/sys/kernel/tracing/trace_pipe";
    if !is_root() {
        skip!("the endless file used here ({pipe}) is readable by root only");
    }
    if !Path::new(pipe).exists() {
        skip!("{pipe} does not exist (no tracefs)");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let trace = Trace::new();
    let evil = with_debuglink(&client("attack2_debuglink"), pipe, trace.dir());
    let out = trace
        .on_leak("log")
        .opts(["--fail-on-leak", "--stack"])
        .timeout(Duration::from_secs(60))
        .program([evil.to_str().unwrap(), &sink.port()])
        .run();
    assert!(sink.wait_datagrams(1, Duration::from_secs(5)), "the leak did not happen\n{}", out.describe());
    assert_eq!(out.leaks().len(), 1, "a leak that reached the sink is not in the report\n{}", out.describe());
    assert_eq!(out.code(), 3, "--fail-on-leak passed a run that leaked\n{}", out.describe());
}

/// `--core-on-leak DIR` names each core file `DIR/sockstrace-leak-PID-N.PID`,
/// which the program knows, and gcore writes it with the supervisor's
/// credentials. A program running as nobody (`--user nobody`) that can write
/// DIR plants a symlink there: gdb follows it (it unlinks a link only when
/// its target is a non-empty file), so root creates a file the program names
/// in a directory only root may write (or fills an empty root-owned file).
/// The core must never be written through the program's link.
#[test]
fn a_core_file_is_not_written_through_a_link_the_program_planted() {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        skip!("the core is written with root's credentials only when sockstrace runs as root");
    }
    let Some(_) = which("gcore") else { skip!("gcore not found (install gdb)") };
    let mut copies = sockstrace_tests::unpriv::Copies::new();
    let probe = copies.add(&client("attack2_coresym"), "attack2_coresym");
    let sink = UdpSink::bind("127.0.0.1");
    let trace = Trace::new().world_writable_dir();
    let cores = trace.dir().join("cores");
    let root_only = trace.dir().join("root-only");
    std::fs::create_dir(&cores).unwrap();
    std::fs::set_permissions(&cores, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o700)).unwrap();
    let created = root_only.join("created");
    let out = trace
        .opts(["--user", "nobody", "--core-on-leak"])
        .opts([&cores])
        .timeout(Duration::from_secs(60))
        .program([probe.as_os_str(), cores.as_os_str(), created.as_os_str(), sink.port().as_ref()])
        .run();
    assert!(out.stdout.contains("planted"), "the program could not plant its link\n{}", out.describe());
    assert_eq!(out.leaks().len(), 1, "{}", out.describe());
    // gcore finishes after the run's reply; give it the time it takes.
    for _ in 0..100 {
        if created.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !created.exists(),
        "the core was written through the program's link: a file in a root-only directory\n{}",
        out.describe()
    );
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// Runs sockstrace with a new pseudo-terminal as its controlling terminal
/// and stdin (as a shell in a terminal would), and returns what the
/// terminal's input queue holds after the run, and sockstrace's stdout.
fn run_on_a_terminal(args: &[&std::ffi::OsStr]) -> (String, String) {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two fds; the other arguments may be NULL.
    let r = unsafe {
        libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null())
    };
    assert_eq!(r, 0, "openpty");
    // SAFETY: both fds were just made and are ours.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut cmd = Command::new(sockstrace_tests::sockstrace_bin());
    cmd.arg("run").args(args).stdin(std::fs::File::from(slave.try_clone().unwrap()));
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::inherit());
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run sockstrace");
    // What the next reader of the terminal (the shell) would read.
    // SAFETY: fcntl on our own fd.
    unsafe { libc::fcntl(slave.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut queued = vec![0u8; 4096];
    let n = std::fs::File::from(slave).read(&mut queued).unwrap_or(0);
    drop(master);
    (String::from_utf8_lossy(&queued[..n]).into_owned(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A program run from an interactive shell shares its terminal; with
/// `TIOCSTI` it types a command into the terminal's input queue, which the
/// shell reads and runs after sockstrace exits: outside the run, with the
/// network (the sandbox escape bubblewrap fixed with a new session). The
/// program must not be able to type into the terminal of whoever started it.
#[test]
fn the_program_cannot_type_a_command_into_the_users_terminal() {
    cannot_type_into_the_terminal("all");
}

/// The same under the allowlist, which allows `ioctl` whole: the refusal is a filter of its
/// own (in one filter, libseccomp would drop it for the unconditional ALLOW).
#[test]
fn the_program_cannot_type_into_the_terminal_under_strict() {
    cannot_type_into_the_terminal("strict");
}

fn cannot_type_into_the_terminal(syscalls: &str) {
    if !is_root() {
        skip!("runs the program as nobody through --user, which needs root");
    }
    // Where the kernel refuses TIOCSTI itself (dev.tty.legacy_tiocsti = 0) this holds anyway.
    let mut copies = sockstrace_tests::unpriv::Copies::new();
    let probe = copies.add(&client("attack2_tiocsti"), "attack2_tiocsti");
    let opts = ["--user", "nobody", "--isolate-network", "--syscalls", syscalls, "--"];
    let args: Vec<&std::ffi::OsStr> = opts.iter().map(|a| a.as_ref()).chain([probe.as_os_str()]).collect();
    let (queued, stdout) = run_on_a_terminal(&args);
    assert!(stdout.contains("typed"), "the program did not run: {stdout:?}");
    assert!(
        !queued.contains("TYPED-BY-THE-PROGRAM"),
        "the program typed {queued:?} into the user's terminal (program said {stdout:?})"
    );
}

/// A socket of a family no hook judges (vsock reaches a VM's host from any network namespace;
/// RxRPC and TIPC carry their own packets over UDP) is refused when it is made, natively too:
/// otherwise a thread could swap it in under a unix call we let the kernel run.
#[test]
fn sockets_of_families_nobody_judges_are_refused_when_made() {
    let code = r#"
import socket
for name in ('AF_VSOCK', 'AF_TIPC', 'AF_RDS', 'AF_CAN'):
    fam = getattr(socket, name, None)
    if fam is None:
        continue
    kind = socket.SOCK_STREAM if name == 'AF_VSOCK' else socket.SOCK_DGRAM
    try:
        socket.socket(fam, kind)
        print(name, 'made')
    except OSError as e:
        print(name, 'errno', e.errno)
"#;
    let out = Trace::new().opts(["--kernel", "off"]).program(["python3", "-c", code]).run();
    assert!(out.stdout.contains("AF_VSOCK errno 1"), "a vsock socket was made\n{}", out.describe());
    assert!(!out.stdout.contains(" made"), "a socket of such a family was made\n{}", out.describe());
    let refused = out.leaks_for("unsupported-family");
    assert!(
        refused.iter().any(|e| e.s("syscall") == "socket" && e.s("family") == "vsock"),
        "no unsupported-family event for the vsock socket\n{}",
        out.describe()
    );
}

/// The same family with high bits in the 64-bit register (the kernel reads an `int`): the
/// filter compares the low 32 bits. Without sockstrace the kernel makes the socket.
#[test]
fn a_family_with_high_bits_is_refused_too() {
    let baseline = sockstrace_tests::direct_client(&client("attack2_hibits"), &[]);
    if !baseline.stdout.contains("socket: ok") {
        skip!("AF_VSOCK sockets cannot be made here: {}", baseline.stdout.trim());
    }
    let out = Trace::new().opts(["--kernel", "off"]).program([client("attack2_hibits")]).run();
    assert!(
        out.stdout.contains("socket: errno=1"),
        "the high-bits vsock socket was made\n{}",
        out.describe()
    );
    let refused = out.leaks_for("unsupported-family");
    assert!(refused.iter().any(|e| e.s("syscall") == "socket"), "not reported\n{}", out.describe());
}

fn socketcall_client() -> Result<std::path::PathBuf, String> {
    sockstrace_tests::paths::client_build("attack3_socketcall", true, false)
}

/// Runs `f` with a way to start a trace and the client to run: sockstrace as root, as root
/// with `--user nobody`, and sockstrace itself as nobody.
fn as_each_user(client: &Path, mut f: impl FnMut(&str, &dyn Fn() -> Trace, &Path)) {
    f("root", &Trace::new, client);
    if !is_root() {
        sockstrace_tests::util::skip_note("the nobody runs", "switching to nobody needs root");
        return;
    }
    let mut copies = sockstrace_tests::unpriv::Copies::new();
    let copy = copies.add(client, "attack3_socketcall");
    f("--user nobody", &|| Trace::new().opts(["--user", "nobody"]), &copy);
    f("nobody", &|| copies.as_nobody(), &copy);
}

/// i386 `socketcall(SYS_SOCKET)` carries its arguments in memory, which the kernel reads again
/// when it runs the call: a thread that flips the family word between `AF_INET` and `AF_VSOCK`
/// got vsock sockets past our decision (19 in 3,000 here), ready to be swapped in under a
/// continued unix call (vsock reaches the VM's host from any namespace). The socket must be the
/// one judged, made by the program's socket maker: as root with the kernel layer and without,
/// with `--user`, and with sockstrace itself unprivileged.
#[test]
fn a_socketcall_family_flipped_after_the_decision_never_makes_a_vsock_socket() {
    let c = match socketcall_client() {
        Ok(c) => c,
        Err(e) => skip!("gcc -m32 cannot build the socketcall client: {e}"),
    };
    let baseline = sockstrace_tests::direct_client(&c, &["vsock"]);
    if !baseline.stdout.contains("vsock: fd=") {
        skip!("AF_VSOCK sockets cannot be made here: {}", baseline.stdout.trim());
    }
    as_each_user(&c, |who, trace, c| {
        for kernel in ["auto", "off"] {
            if kernel == "auto" && who == "nobody" {
                continue;
            }
            let out = trace()
                .opts(["--kernel", kernel])
                .program([c.as_os_str(), "flip".as_ref(), "3000".as_ref()])
                .run();
            out.assert_code(0);
            assert!(
                out.stdout.contains("vsock=0 "),
                "{who}, kernel {kernel}: a vsock socket was made\n{}",
                out.describe()
            );
            assert!(
                !out.stdout.contains(" inet=0 "),
                "{who}, kernel {kernel}: no socket was made\n{}",
                out.describe()
            );
            let refused = out.leaks_for("unsupported-family");
            assert!(
                refused.iter().all(|e| e.s("syscall") == "socket" && e.s("action") == "blocked"),
                "{who}, kernel {kernel}\n{}",
                out.describe()
            );
        }
        // Asked for plainly, it is refused and reported.
        let out = trace().program([c.as_os_str(), "vsock".as_ref()]).run();
        assert!(out.stdout.contains("vsock: errno=1\n"), "{who}\n{}", out.describe());
        assert_eq!(out.leaks_for("unsupported-family").len(), 1, "{who}\n{}", out.describe());
    });
}

/// A socket made through `socketcall` for the program is the one it asked for: family, type,
/// protocol, `SOCK_NONBLOCK`, `SOCK_CLOEXEC`, the fd number the kernel would give, the kernel's
/// own errno for a bad protocol; and it works (an allowed datagram arrives).
#[test]
fn a_socket_made_through_socketcall_is_the_one_the_kernel_would_make() {
    let c = match socketcall_client() {
        Ok(c) => c,
        Err(e) => skip!("gcc -m32 cannot build the socketcall client: {e}"),
    };
    let direct = sockstrace_tests::direct_client(&c, &["make"]);
    assert!(direct.stdout.contains("udp: fd=3 "), "{}", direct.stdout);
    as_each_user(&c, |who, trace, c| {
        let out = trace().program([c.as_os_str(), "make".as_ref()]).run();
        out.assert_code(0);
        assert_eq!(out.stdout, direct.stdout, "{who}: not the sockets the kernel makes\n{}", out.describe());
        assert_eq!(out.leaks().len(), 0, "{who}\n{}", out.describe());
        let sink = UdpSink::bind("127.0.0.1");
        let out = trace()
            .allow(&format!("127.0.0.1:{}", sink.port()))
            .program([c.as_os_str(), "send".as_ref(), sink.port().as_ref()])
            .run();
        assert!(out.stdout.contains("send: ok"), "{who}\n{}", out.describe());
        assert!(sink.wait_datagrams(1, Duration::from_secs(5)), "{who}: nothing arrived\n{}", out.describe());
    });
}

/// `socketpair()` makes sockets without `socket()`: of a family other than unix (TIPC, where
/// the kernel has it, reaches other nodes over a configured bearer, and no hook judges it) it
/// is refused with `EAFNOSUPPORT` (the kernel itself answers `EOPNOTSUPP` for inet, which
/// shows the rule is there on a kernel without TIPC). Unix pairs are made as before, on both
/// ABIs (i386 through `socketcall` too).
#[test]
fn a_socketpair_of_another_family_than_unix_is_refused() {
    let code = r#"
import errno, socket
for fam in (socket.AF_INET, 30, socket.AF_UNIX):
    try:
        socket.socketpair(fam, socket.SOCK_STREAM)
        print(fam, "made")
    except OSError as e:
        print(fam, errno.errorcode[e.errno])
"#;
    let direct = sockstrace_tests::direct(["python3", "-c", code]);
    assert!(
        direct.stdout.contains("2 EOPNOTSUPP") || direct.stdout.contains("2 ENOTSUP"),
        "{}",
        direct.stdout
    );
    let out = Trace::new().opts(["--kernel", "off"]).program(["python3", "-c", code]).run();
    out.assert_code(0);
    assert!(out.stdout.contains("2 EAFNOSUPPORT\n"), "an inet pair was not refused\n{}", out.describe());
    assert!(out.stdout.contains("30 EAFNOSUPPORT\n"), "{}", out.describe());
    assert!(out.stdout.contains("1 made\n"), "a unix pair was refused\n{}", out.describe());
    let c = match socketcall_client() {
        Ok(c) => c,
        Err(e) => skip!("gcc -m32 cannot build the socketcall client: {e}"),
    };
    let out = Trace::new().opts(["--kernel", "off"]).program([c.as_os_str(), "pair".as_ref()]).run();
    assert!(
        out.stdout.contains("direct 1: made\nsocketcall 1: made\n"),
        "i386 unix pairs\n{}",
        out.describe()
    );
}
