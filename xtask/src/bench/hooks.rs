//! What audit's eBPF programs cost per call, as the kernel counts it: with
//! `kernel.bpf_stats_enabled`, each program's fdinfo in the audit process holds `run_cnt` and
//! `run_time_ns`. Measured on one 1-thread connect storm in the audited cgroup.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context as _, Result};

/// The sysctl that makes the kernel time every eBPF program run.
const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// One kind of program's runs during the storm.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HookRuns {
    pub runs: u64,
    pub nanos: u64,
}

/// Audit's eBPF run time over one storm.
#[derive(Debug, Clone)]
pub struct HookCost {
    /// Connect cycles of the storm.
    pub cycles: u64,
    /// Runs and run time by program type.
    pub by_type: BTreeMap<String, HookRuns>,
}

impl HookCost {
    /// Microseconds of eBPF per connect cycle, all programs together.
    pub fn us_per_cycle(&self) -> f64 {
        self.by_type.values().map(|r| r.nanos).sum::<u64>() as f64 / 1e3 / self.cycles.max(1) as f64
    }

    /// One line: the total per cycle, then each program type's time per cycle, runs per cycle
    /// and time per run.
    pub fn summary(&self) -> String {
        let cycles = self.cycles.max(1) as f64;
        let parts: Vec<String> = self
            .by_type
            .iter()
            .filter(|(_, r)| r.runs > 0)
            .map(|(name, r)| {
                format!(
                    "{name} {:.2} us in {:.1} runs ({:.0} ns/run)",
                    r.nanos as f64 / 1e3 / cycles,
                    r.runs as f64 / cycles,
                    r.nanos as f64 / r.runs as f64
                )
            })
            .collect();
        format!("audit hooks: {:.2} us of eBPF per connect cycle ({})", self.us_per_cycle(), parts.join(", "))
    }
}

/// Turns eBPF run statistics on until dropped (then back to what they were).
pub struct StatsOn {
    before: String,
}

impl StatsOn {
    pub fn enable() -> Result<Self> {
        let before =
            std::fs::read_to_string(STATS_SYSCTL).with_context(|| format!("reading {STATS_SYSCTL}"))?;
        std::fs::write(STATS_SYSCTL, "1").with_context(|| format!("writing {STATS_SYSCTL}"))?;
        Ok(Self { before })
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        let _ = std::fs::write(STATS_SYSCTL, self.before.trim());
    }
}

/// The name of a `prog_type` number (UAPI `enum bpf_prog_type`) among audit's programs.
fn prog_type_name(prog_type: u32) -> String {
    match prog_type {
        5 => "tracepoint".into(),
        8 => "cgroup_skb".into(),
        9 => "cgroup_sock".into(),
        13 => "sock_ops".into(),
        18 => "cgroup_sock_addr".into(),
        25 => "cgroup_sockopt".into(),
        29 => "lsm".into(),
        other => format!("type {other}"),
    }
}

/// Sums `run_cnt` and `run_time_ns` over the eBPF program fds of process `pid`, by program type.
pub fn read(pid: u32) -> Result<BTreeMap<String, HookRuns>> {
    let dir = Path::new("/proc").join(pid.to_string()).join("fdinfo");
    let mut by_type = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        // An fd closed meanwhile is simply not counted.
        let Ok(text) = std::fs::read_to_string(entry?.path()) else { continue };
        if let Some((prog_type, runs)) = parse_fdinfo(&text) {
            let sum: &mut HookRuns = by_type.entry(prog_type_name(prog_type)).or_default();
            sum.runs += runs.runs;
            sum.nanos += runs.nanos;
        }
    }
    Ok(by_type)
}

/// An eBPF program fd's type and run statistics; `None` for any other fd.
fn parse_fdinfo(text: &str) -> Option<(u32, HookRuns)> {
    let field = |name: &str| {
        text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')?.trim().parse::<u64>().ok())
    };
    let prog_type = field("prog_type")?;
    let runs = HookRuns { runs: field("run_cnt")?, nanos: field("run_time_ns")? };
    Some((u32::try_from(prog_type).ok()?, runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_program_fdinfo() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t17\nprog_type:\t13\nprog_jited:\t1\n\
                    prog_tag:\t6043fea8eebc7411\nmemlock:\t16384\nprog_id:\t72310\n\
                    run_time_ns:\t17976361\nrun_cnt:\t140040\nrecursion_misses:\t0\nverified_insns:\t7667\n";
        assert_eq!(parse_fdinfo(text), Some((13, HookRuns { runs: 140040, nanos: 17976361 })));
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t02\nmap_type:\t27\n"), None);
        assert_eq!(prog_type_name(18), "cgroup_sock_addr");
    }
}
