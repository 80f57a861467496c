//! Runs one program under `ip netns exec NS [setpriv ...] sockstrace run ... -- fuzzclient`
//! and collects what the oracle saw, judged against the report.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use super::env::Env;
use super::grammar::{addrs, Op};
use super::oracle::{self, Leak, Reported};

/// How sockstrace runs.
#[derive(Clone, Debug)]
pub struct Mode {
    pub on_leak: String,
    pub kernel: String,
    /// `SOCKSTRACE_TEST_DISABLE=plant-bug` (debug builds: UDP to port 9 passes).
    pub plant_bug: bool,
    /// Run the program (and sockstrace) as this user.
    pub as_user: Option<String>,
    /// `--allow-io-uring` (only with the kernel layer, which still gates io_uring's connects).
    pub allow_io_uring: bool,
    /// Run the i386 client (`gcc -m32 -static`) instead of the x86_64 one.
    pub i386: bool,
}

impl Mode {
    /// Who runs: "root" or the user's name.
    pub fn user_label(&self) -> String {
        self.as_user.clone().unwrap_or_else(|| "root".into())
    }
}

/// The client's timer on blocking calls (the fuzzer's default; a reproducer uses 150 ms).
pub const TIMER_MS: u32 = 40;

pub struct Runner {
    pub sockstrace: PathBuf,
    pub client: PathBuf,
    pub client_i386: Option<PathBuf>,
    pub work: PathBuf,
    pub runs: u64,
    pub ops_run: u64,
    pub busy: Duration,
}

/// What one run showed.
pub struct Outcome {
    /// Each distinct leak the oracle saw (by key), with what the report says of it.
    pub leaks: Vec<(Leak, Reported)>,
    pub stderr: String,
    pub report_ok: bool,
    /// The run did not finish in time and was killed: its report is cut short, so its leaks
    /// are left out (`leaks` is empty).
    pub timed_out: bool,
}

impl Runner {
    /// Copies the binaries into a world-readable directory (for `--as-user`).
    pub fn new(sockstrace: &Path, client: &Path, client_i386: Option<&Path>) -> Result<Runner> {
        let work = std::env::temp_dir().join(format!("sfz-{}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o1777))?;
        let copy = |src: &Path, name: &str| -> Result<PathBuf> {
            let dst = work.join(name);
            std::fs::copy(src, &dst).with_context(|| format!("copy {}", src.display()))?;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755))?;
            Ok(dst)
        };
        Ok(Runner {
            sockstrace: copy(sockstrace, "sockstrace")?,
            client: copy(client, "fuzzclient")?,
            client_i386: client_i386.map(|c| copy(c, "fuzzclient-i386")).transpose()?,
            work,
            runs: 0,
            ops_run: 0,
            busy: Duration::ZERO,
        })
    }

    /// The command line a reproducer is run with (for its header).
    pub fn hint(&self, env: &Env, mode: &Mode) -> String {
        let mut s = String::new();
        if mode.plant_bug {
            s.push_str("SOCKSTRACE_TEST_DISABLE=plant-bug ");
        }
        s.push_str(&format!("ip netns exec {} ", env.ns));
        if let Some(u) = &mode.as_user {
            let (uid, gid) = user_ids(u).unwrap_or((65534, 65534));
            s.push_str(&format!("setpriv --reuid={uid} --regid={gid} --clear-groups "));
        }
        s.push_str(&format!(
            "sockstrace run --proxy 127.0.0.1:{p} --proxy [::1]:{p} --on-leak {} --kernel {}{} --report - -- ./repro",
            mode.on_leak,
            mode.kernel,
            if mode.allow_io_uring { " --allow-io-uring" } else { "" },
            p = addrs::PROXY_PORT
        ));
        s
    }

    pub fn run(
        &mut self,
        env: &Env,
        mode: &Mode,
        ops: &[Op],
        interrupted: &dyn Fn() -> bool,
    ) -> Result<Outcome> {
        self.runs += 1;
        let prog = self.work.join("program.txt");
        let report = self.work.join("report.jsonl");
        let text: String = ops.iter().map(|o| format!("{}\n", o.line)).collect();
        std::fs::write(&prog, text)?;
        let _ = std::fs::remove_file(&report);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &env.ns]);
        if let Some(u) = &mode.as_user {
            // By number: the user's group need not share its name (nobody's is nogroup).
            let (uid, gid) = user_ids(u)?;
            cmd.args(["setpriv", &format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups"]);
        }
        cmd.arg(&self.sockstrace).arg("run");
        for p in [format!("127.0.0.1:{}", addrs::PROXY_PORT), format!("[::1]:{}", addrs::PROXY_PORT)] {
            cmd.args(["--proxy", &p]);
        }
        cmd.args(["--on-leak", &mode.on_leak, "--kernel", &mode.kernel, "-q", "--report"]).arg(&report);
        if mode.allow_io_uring {
            cmd.arg("--allow-io-uring");
        }
        let client = match (&self.client_i386, mode.i386) {
            (Some(c), true) => c,
            (None, true) => bail!("the i386 client is not available"),
            _ => &self.client,
        };
        cmd.arg("--").arg(client).arg(&prog);
        cmd.env_remove("SOCKSTRACE_TEST_DISABLE");
        cmd.env_remove("FUZZ_VERBOSE");
        cmd.env("FUZZ_TIMER_MS", TIMER_MS.to_string());
        if mode.plant_bug {
            cmd.env("SOCKSTRACE_TEST_DISABLE", "plant-bug");
        }
        let errfile = self.work.join("stderr.txt");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errfile)?)
            .current_dir(&self.work)
            .process_group(0);
        let start = Instant::now();
        let mut child = cmd.spawn().context("starting ip netns exec sockstrace")?;
        let deadline = start + run_timeout(ops.len());
        let mut timed_out = false;
        loop {
            if child.try_wait()?.is_some() {
                break;
            }
            if Instant::now() > deadline || interrupted() {
                timed_out = true;
                // SAFETY: kill on the process group we made for this child.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // Let the sniffers drain what is still in flight: a sentinel packet behind it.
        env.flush();
        self.busy += start.elapsed();
        self.ops_run += ops.iter().filter(|o| o.line != "reset").count() as u64;
        let stderr = std::fs::read_to_string(&errfile).unwrap_or_default();
        let events: Vec<Value> = std::fs::read_to_string(&report)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let report_ok = !events.is_empty();
        let mut by_key: BTreeMap<String, (Leak, Reported)> = BTreeMap::new();
        for leak in env.take() {
            let rep = oracle::reported(&leak, &events);
            by_key.entry(leak.key()).or_insert((leak, rep));
        }
        if timed_out {
            by_key.clear();
        }
        Ok(Outcome { leaks: by_key.into_values().collect(), stderr, report_ok, timed_out })
    }
}

/// How long a run of `ops` ops may take (a normal one takes 5-10 ms per sequence of ~25 ops
/// plus sockstrace's start-up) before it counts as a hang and is killed.
pub fn run_timeout(ops: usize) -> Duration {
    Duration::from_millis(1500 + 3 * ops as u64)
}

/// The uid and primary gid of `user`.
pub fn user_ids(user: &str) -> Result<(u32, u32)> {
    let name = std::ffi::CString::new(user)?;
    // SAFETY: getpwnam with a valid NUL-terminated name; the result is read at once (this
    // process does not call getpw* from other threads).
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        bail!("no user {user}");
    }
    // SAFETY: pw is non-null and points to the static passwd entry.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// Builds the fuzz client (static x86_64) into `dir`; fails when gcc does.
pub fn build_client(src: &Path, dir: &Path, m32: bool) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let out = dir.join(if m32 { "fuzzclient-i386" } else { "fuzzclient" });
    let mut gcc = Command::new("gcc");
    gcc.args(["-O1", "-g", "-pthread", "-Wall", "-Wextra", "-Werror", "-static"]);
    if m32 {
        gcc.arg("-m32");
    }
    gcc.arg(src).arg("-o").arg(&out);
    let res = gcc.output().context("running gcc")?;
    if !res.status.success() {
        bail!("gcc {}: {}", src.display(), String::from_utf8_lossy(&res.stderr).trim());
    }
    Ok(out)
}
