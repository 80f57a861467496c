//! What one option of `sockstrace run` adds per call: the same program run with and without
//! it, interleaved, `rounds` times each; the median time per call of each.
//! - `--stack` on each leak: UDP leaks under `--on-leak log` (each one an event). The stack is
//!   copied before the call is answered and symbolized after, so the difference is mostly the
//!   copy (/proc/TID/syscall, /proc/TID/maps, 64 KiB of stack) plus what symbolizing takes
//!   from the receiver threads.
//! - `--report FILE` on each allowed datagram: a UDP storm to an allowed port, whose every
//!   datagram then makes an event (who the caller is, JSON, the write), against the same
//!   storm reported only in the summary.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use anyhow::Result;
use serde_json::json;

use super::{fixture, measure, report};

pub struct OptionCost {
    /// What is measured, for the line: "leak with --stack".
    what: &'static str,
    /// What one call is: "leak", "datagram".
    per: &'static str,
    /// How the runs were made, for the line.
    how: String,
    pub calls: u64,
    /// Median µs per call without and with the option.
    pub off_us: f64,
    pub on_us: f64,
}

impl OptionCost {
    pub fn line(&self) -> String {
        format!(
            "{}: {:.1} µs per {} vs {:.1} µs without ({:.2}x, +{:.1} µs; {})",
            self.what,
            self.on_us,
            self.per,
            self.off_us,
            self.on_us / self.off_us,
            self.on_us - self.off_us,
            self.how
        )
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "calls": self.calls,
            format!("off_us_per_{}", self.per): self.off_us,
            format!("on_us_per_{}", self.per): self.on_us,
        })
    }
}

/// `--stack` on `leaks` logged UDP leaks to `port` on loopback.
pub fn stack(sockstrace: &Path, client: &Path, port: u16, leaks: u64, rounds: usize) -> Result<OptionCost> {
    let base = ["run", "--kernel", "off", "--quiet", "--on-leak", "log", "--report", "/dev/null"];
    let program = udp_client(client, port, leaks);
    let (off_us, on_us) = interleaved(sockstrace, &base, &["--stack".into()], &program, leaks, rounds)?;
    let how = format!("{leaks} logged UDP leaks, --kernel off");
    Ok(OptionCost { what: "leak with --stack", per: "leak", how, calls: leaks, off_us, on_us })
}

/// `--report FILE` (a file in the bench directory, as a user would give) on `datagrams`
/// allowed UDP datagrams to `port` on loopback.
pub fn report(
    sockstrace: &Path,
    client: &Path,
    port: u16,
    datagrams: u64,
    rounds: usize,
) -> Result<OptionCost> {
    let allow = format!("127.0.0.1:{port}");
    let base = ["run", "--kernel", "off", "--quiet", "--allow", &allow];
    let file = fixture::bench_dir()?.join("report-cost.jsonl");
    let option = ["--report".into(), file.clone().into_os_string()];
    let program = udp_client(client, port, datagrams);
    let (off_us, on_us) = interleaved(sockstrace, &base, &option, &program, datagrams, rounds)?;
    let _ = std::fs::remove_file(&file);
    let how = format!("{datagrams} allowed UDP datagrams, an event each, --kernel off");
    Ok(OptionCost {
        what: "allowed datagram with --report",
        per: "datagram",
        how,
        calls: datagrams,
        off_us,
        on_us,
    })
}

fn udp_client(client: &Path, port: u16, count: u64) -> Vec<OsString> {
    let args = ["udp".to_owned(), "127.0.0.1".to_owned(), port.to_string(), count.to_string()];
    std::iter::once(client.as_os_str().to_owned()).chain(args.into_iter().map(OsString::from)).collect()
}

/// Median µs per call of `sockstrace BASE -- PROGRAM` without and with `option` (before
/// `--`), interleaved: `rounds` runs of each.
fn interleaved(
    sockstrace: &Path,
    base: &[&str],
    option: &[OsString],
    program: &[OsString],
    calls: u64,
    rounds: usize,
) -> Result<(f64, f64)> {
    let mut off = Vec::new();
    let mut on = Vec::new();
    for round in 0..rounds {
        for with in if round % 2 == 0 { [false, true] } else { [true, false] } {
            let mut command = Command::new(sockstrace);
            command.args(base);
            if with {
                command.args(option);
            }
            command.arg("--").args(program);
            let finished = measure::run(&mut command)?;
            let us = measure::client_elapsed(&finished.output.stdout)?.as_secs_f64() * 1e6 / calls as f64;
            if with { &mut on } else { &mut off }.push(us);
        }
    }
    Ok((report::median(&off).unwrap_or(f64::NAN), report::median(&on).unwrap_or(f64::NAN)))
}
