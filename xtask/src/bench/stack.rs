//! What `run --stack` adds to each leak: UDP leaks under `--on-leak log` (each one an event), with
//! and without `--stack`, interleaved; the median time per leak of each. The stack is copied
//! before the call is answered and symbolized after, so the difference is mostly the copy
//! (/proc/TID/syscall, /proc/TID/maps, 64 KiB of stack) plus what symbolizing takes from the
//! receiver threads.

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use serde_json::json;

use super::{measure, report};

pub struct StackCost {
    pub leaks: u64,
    /// Median µs per leak without and with `--stack`.
    pub off_us: f64,
    pub on_us: f64,
}

impl StackCost {
    pub fn line(&self) -> String {
        format!(
            "leak with --stack: {:.1} µs per leak vs {:.1} µs without ({:.2}x; {} logged UDP leaks, --kernel off)",
            self.on_us,
            self.off_us,
            self.on_us / self.off_us,
            self.leaks
        )
    }

    pub fn json(&self) -> serde_json::Value {
        json!({ "leaks": self.leaks, "off_us_per_leak": self.off_us, "on_us_per_leak": self.on_us })
    }
}

/// `rounds` interleaved runs of `leaks` UDP leaks to `port` on loopback, with and without `--stack`.
pub fn leak_cost(
    sockstrace: &Path,
    client: &Path,
    port: u16,
    leaks: u64,
    rounds: usize,
) -> Result<StackCost> {
    let mut off = Vec::new();
    let mut on = Vec::new();
    for round in 0..rounds {
        for stack in if round % 2 == 0 { [false, true] } else { [true, false] } {
            let mut command = Command::new(sockstrace);
            command.args(["run", "--kernel", "off", "--quiet", "--on-leak", "log", "--report", "/dev/null"]);
            if stack {
                command.arg("--stack");
            }
            command.arg("--").arg(client).args(["udp", "127.0.0.1", &port.to_string(), &leaks.to_string()]);
            let finished = measure::run(&mut command)?;
            let us = measure::client_elapsed(&finished.output.stdout)?.as_secs_f64() * 1e6 / leaks as f64;
            if stack { &mut on } else { &mut off }.push(us);
        }
    }
    Ok(StackCost {
        leaks,
        off_us: report::median(&off).unwrap_or(f64::NAN),
        on_us: report::median(&on).unwrap_or(f64::NAN),
    })
}
