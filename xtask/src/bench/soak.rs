//! `cargo xtask bench --soak [N]`: N connects (one million unless told) through the proxy under
//! `sockstrace run` (as a user runs it: the kernel layer on where it can be), 4 threads, every
//! one of which must succeed and be allowed, while the supervisor's resident memory is sampled:
//! it must stay flat (bounded caches, no per-call leak).

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

/// The default number of connects.
pub const DEFAULT_CONNECTS: u64 = 1_000_000;
/// Client threads.
const THREADS: u32 = 4;
/// How often the supervisor's RSS is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// The share of the run after which the memory counts as warmed up (caches filled).
const WARM_UP: f64 = 0.1;
/// Growth after warm-up still called flat.
const FLAT_KIB: u64 = 1024;

/// What one soak measured.
pub struct Soak {
    pub connects: u64,
    pub seconds: f64,
    /// Allowed decisions the supervisor's summary counted.
    pub allowed: u64,
    /// (seconds since start, VmRSS KiB) of the supervisor.
    pub rss: Vec<(f64, u64)>,
}

impl Soak {
    /// RSS when warmed up, at the end, and at most.
    fn rss_points(&self) -> Option<(u64, u64, u64)> {
        let warm_at = self.seconds * WARM_UP;
        let warm = self.rss.iter().find(|(t, _)| *t >= warm_at).or(self.rss.first())?.1;
        let last = self.rss.last()?.1;
        let max = self.rss.iter().map(|&(_, kib)| kib).max()?;
        Some((warm, last, max))
    }

    pub fn flat(&self) -> bool {
        self.rss_points().is_some_and(|(warm, last, _)| last <= warm + FLAT_KIB)
    }

    pub fn line(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let rss = match self.rss_points() {
            Some((warm, last, max)) => format!(
                "supervisor RSS {:.1} MiB after warm-up, {:.1} MiB at the end, at most {:.1} MiB: {}",
                mib(warm),
                mib(last),
                mib(max),
                if self.flat() { "flat" } else { "GROWING" }
            ),
            None => "supervisor RSS not sampled".into(),
        };
        format!(
            "soak: {} connects through the proxy under `sockstrace run` ({THREADS} threads) in {:.1} s ({:.1} us each), \
             none failed, {} allowed; {rss}",
            self.connects,
            self.seconds,
            self.seconds * 1e6 / self.connects as f64,
            self.allowed
        )
    }

    pub fn json(&self) -> Value {
        let points = self.rss_points();
        json!({
            "connects": self.connects,
            "threads": THREADS,
            "seconds": self.seconds,
            "failed_connects": 0,
            "allowed": self.allowed,
            "rss_kib_after_warm_up": points.map(|p| p.0),
            "rss_kib_at_end": points.map(|p| p.1),
            "rss_kib_max": points.map(|p| p.2),
            "rss_flat": self.flat(),
            "rss_samples": self.rss.iter().map(|&(t, kib)| json!([t, kib])).collect::<Vec<_>>(),
        })
    }
}

/// Runs the soak against the storm listener on 127.0.0.1:`port`.
pub fn run(sockstrace: &Path, client: &Path, port: u16, connects: u64) -> Result<Soak> {
    let proxy = format!("127.0.0.1:{port}");
    let mut command = Command::new(sockstrace);
    command.args(["run", "--proxy", &proxy, "--"]).arg(client).args([
        "connect",
        "127.0.0.1",
        &port.to_string(),
        &connects.to_string(),
        &THREADS.to_string(),
    ]);
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting sockstrace run")?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut rss = Vec::new();
    // The pipes are read after exit: the client prints two lines, the supervisor its summary.
    while child.try_wait()?.is_none() {
        if let Some(kib) = fs::read_to_string(&status_path).ok().as_deref().and_then(vm_rss_kib) {
            rss.push((start.elapsed().as_secs_f64(), kib));
        }
        thread::sleep(SAMPLE_EVERY);
    }
    let seconds = start.elapsed().as_secs_f64();
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        bail!(
            "the soak failed ({}): {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    if let Some(leak) = stderr.lines().find(|l| l.contains("LEAK")) {
        bail!("sockstrace reported a leak for connects its policy allows: {leak}");
    }
    let allowed = allowed_count(&stderr).context("no summary line with the allowed count")?;
    if allowed < connects {
        bail!("{connects} connects, but the summary counts {allowed} allowed");
    }
    Ok(Soak { connects, seconds, allowed, rss })
}

/// `VmRSS:   1234 kB` from /proc/PID/status.
fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// `N allowed` from the supervisor's summary line.
fn allowed_count(stderr: &str) -> Option<u64> {
    let line = stderr.lines().find(|l| l.contains("summary:"))?;
    let before = line.strip_suffix(" allowed")?;
    before.rsplit(' ').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_and_judges_the_memory() {
        let summary =
            "sockstrace: summary: 0 leak(s) (0 blocked, 0 logged, 0 killed, 0 socksified), 1000 allowed\n";
        assert_eq!(allowed_count(summary), Some(1000));
        assert_eq!(vm_rss_kib("Name:\tx\nVmRSS:\t    5120 kB\n"), Some(5120));
        let soak = |rss: Vec<(f64, u64)>| Soak { connects: 10, seconds: 10.0, allowed: 10, rss };
        assert!(soak(vec![(0.5, 3000), (1.0, 5000), (9.0, 5500)]).flat());
        assert!(!soak(vec![(0.5, 3000), (1.0, 5000), (9.0, 9000)]).flat());
    }
}
