//! The measurements of one `cargo xtask bench`: medians, ratios, the table and the JSON.

use std::{collections::HashMap, fmt::Write as _, time::Duration};

use serde_json::{json, Map, Value};

use super::{
    audit::Flood,
    hooks::HookCost,
    measure::{NotifyFloor, StormFloors},
    peers::{self, Peer},
    workload::{Timing, Tool, Workload, FLOOD_RATE},
};

/// The brief's target for `sockstrace audit` (on the connect storm), ratio to native.
const AUDIT_TARGET: f64 = 1.03;
/// What a trapped call may add beyond the bare user-notification round trip, in microseconds.
const ROUND_TRIP_MARGIN_US: f64 = 2.0;

/// One tool's runs of one workload.
#[derive(Default)]
pub struct Series {
    /// The measured time of each successful run (see `Timing`), in seconds.
    pub seconds: Vec<f64>,
    /// Spawn-to-exit time of each successful run, in seconds.
    pub wall_seconds: Vec<f64>,
    pub failures: Vec<String>,
}

impl Series {
    pub fn median(&self) -> Option<f64> {
        median(&self.seconds)
    }
}

/// The median (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// One measured run.
pub struct Sample {
    pub measured: Duration,
    pub wall: Duration,
}

/// Every workload's series, by tool.
pub struct Results<'w> {
    pub workloads: &'w [Workload],
    series: Vec<HashMap<Tool, Series>>,
    /// Peak RSS of the supervisor during the 16-thread storm, in KiB, or why it is missing.
    pub peak_rss: Option<Result<u64, String>>,
    pub rss_connects: u64,
    /// Why the audit column was not measured, if it was not.
    pub audit_unavailable: Option<String>,
    /// The audit leak flood, or why it failed; `None` when not run.
    pub flood: Option<Result<Flood, String>>,
    /// The bare user-notification round trip, or why it failed; `None` when not run.
    pub notify_floor: Option<Result<NotifyFloor, String>>,
    /// A trapped connect answered by a bare supervisor, or why it failed; `None` when not run.
    pub connect_floors: Option<Result<StormFloors, String>>,
    /// The same floors on the UDP storm (`bench_client notify-udp`).
    pub datagram_floors: Option<Result<StormFloors, String>>,
    /// Audit's eBPF run time on a storm, or why it failed; `None` when not run.
    pub hooks: Option<Result<HookCost, String>>,
    /// The peer columns (`--peers`), built or not; empty without `--peers`.
    pub peers: &'w [Peer],
}

/// A tool's numbers for one workload, compared with native.
struct Compared {
    median: Option<f64>,
    ratio: Option<f64>,
    added_us: Option<f64>,
    target_met: Option<bool>,
}

impl<'w> Results<'w> {
    pub fn new(workloads: &'w [Workload], rss_connects: u64) -> Self {
        let series = workloads.iter().map(|_| HashMap::new()).collect();
        Self {
            workloads,
            series,
            peak_rss: None,
            rss_connects,
            audit_unavailable: None,
            flood: None,
            notify_floor: None,
            connect_floors: None,
            datagram_floors: None,
            hooks: None,
            peers: &[],
        }
    }

    /// Every tool of this run's table: ours, then the peers asked for.
    fn tools(&self) -> impl Iterator<Item = Tool> + '_ {
        Tool::ALL.into_iter().chain(self.peers.iter().map(|peer| peer.spec.tool))
    }

    pub fn record(&mut self, workload: usize, tool: Tool, outcome: Result<Sample, String>) {
        let series = self.series[workload].entry(tool).or_default();
        match outcome {
            Ok(sample) => {
                series.seconds.push(sample.measured.as_secs_f64());
                series.wall_seconds.push(sample.wall.as_secs_f64());
            }
            Err(failure) => series.failures.push(failure),
        }
    }

    fn series(&self, workload: usize, tool: Tool) -> Option<&Series> {
        self.series[workload].get(&tool)
    }

    fn compared(&self, workload: usize, tool: Tool) -> Compared {
        let median = self.series(workload, tool).and_then(Series::median);
        let native = self.series(workload, Tool::Native).and_then(Series::median);
        let w = &self.workloads[workload];
        let ratio = median.zip(native).map(|(m, n)| m / n);
        let added_us = median.zip(native).zip(w.calls).map(|((m, n), calls)| (m - n) * 1e6 / calls as f64);
        let target_met = match (tool, w.target, ratio) {
            (Tool::Run, Some(target), Some(ratio)) => Some(ratio <= target.max_ratio),
            _ => None,
        };
        Compared { median, ratio, added_us, target_met }
    }

    /// Every failure message, labelled.
    pub fn failures(&self) -> Vec<String> {
        let mut all = Vec::new();
        for (w, by_tool) in self.workloads.iter().zip(&self.series) {
            for tool in self.tools() {
                for failure in by_tool.get(&tool).map(|s| s.failures.as_slice()).unwrap_or_default() {
                    all.push(format!("{} under {}: {failure}", w.label, tool.heading()));
                }
            }
        }
        if let Some(Err(failure)) = &self.peak_rss {
            all.push(format!("peak RSS storm: {failure}"));
        }
        if let Some(Err(failure)) = &self.flood {
            all.push(format!("audit leak flood: {failure}"));
        }
        if let Some(Err(failure)) = &self.notify_floor {
            all.push(format!("notify floor: {failure}"));
        }
        if let Some(Err(failure)) = &self.connect_floors {
            all.push(format!("connect floors: {failure}"));
        }
        if let Some(Err(failure)) = &self.datagram_floors {
            all.push(format!("datagram floors: {failure}"));
        }
        if let Some(Err(failure)) = &self.hooks {
            all.push(format!("audit hooks: {failure}"));
        }
        all
    }

    /// The human table, with its notes.
    pub fn table(&self, rounds: usize) -> String {
        let mut out = String::new();
        let peer_cells: Vec<Vec<String>> = self
            .peers
            .iter()
            .map(|peer| (0..self.workloads.len()).map(|i| self.peer_time_cell(i, peer)).collect())
            .collect();
        let peer_widths: Vec<usize> = self
            .peers
            .iter()
            .zip(&peer_cells)
            .map(|(peer, cells)| {
                cells.iter().map(String::len).chain([peer.spec.binary.len(), 10]).max().unwrap_or(10)
            })
            .collect();
        let peer_heading: String = self
            .peers
            .iter()
            .zip(&peer_widths)
            .map(|(peer, &width)| format!(" | {:>width$} {:>7} {:>9}", peer.spec.binary, "x nat", "+us/call"))
            .collect();
        let _ = writeln!(
            out,
            "{:<24} {:>10} | {:>10} {:>7} {:>9} {:>14} | {:>10} {:>7} {:>9}{peer_heading} | {:>10} {:>7} {:>7} {:>8}",
            "workload",
            "native",
            "run",
            "x nat",
            "+us/call",
            "target",
            "strace",
            "x nat",
            "+us/call",
            Tool::RunKernel.heading(),
            Tool::Audit.heading(),
            Tool::Floor.heading(),
            Tool::Isolated.heading()
        );
        let _ = writeln!(out, "{}", "-".repeat(154 + peer_widths.iter().map(|w| w + 21).sum::<usize>()));
        for (i, w) in self.workloads.iter().enumerate() {
            let peer_row: String = self
                .peers
                .iter()
                .zip(&peer_cells)
                .zip(&peer_widths)
                .map(|((peer, cells), &width)| {
                    let c = self.compared(i, peer.spec.tool);
                    format!(" | {:>width$} {:>7} {:>9}", cells[i], ratio_cell(c.ratio), us_cell(c.added_us))
                })
                .collect();
            let native = self.compared(i, Tool::Native);
            let run = self.compared(i, Tool::Run);
            let strace = self.compared(i, Tool::Strace);
            let kernel = self.compared(i, Tool::RunKernel);
            let audit = self.compared(i, Tool::Audit);
            let floor = self.compared(i, Tool::Floor);
            let isolated = self.compared(i, Tool::Isolated);
            let _ = writeln!(
                out,
                "{:<24} {:>10} | {:>10} {:>7} {:>9} {:>14} | {:>10} {:>7} {:>9}{peer_row} | {:>10} {:>7} {:>7} {:>8}",
                w.label,
                self.time_cell(i, Tool::Native, native.median),
                self.time_cell(i, Tool::Run, run.median),
                ratio_cell(run.ratio),
                us_cell(run.added_us),
                target_cell(w, run.target_met),
                self.time_cell(i, Tool::Strace, strace.median),
                ratio_cell(strace.ratio),
                us_cell(strace.added_us),
                self.ratio_or_failed(i, Tool::RunKernel, kernel.ratio),
                self.ratio_or_failed(i, Tool::Audit, audit.ratio),
                self.ratio_or_failed(i, Tool::Floor, floor.ratio),
                self.ratio_or_failed(i, Tool::Isolated, isolated.ratio)
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "times: median of {rounds} interleaved rounds; the bench client's timed loop (no process or \
             supervisor start), except `startup` and `curl` (whole command, spawn to exit)."
        );
        let _ = writeln!(
            out,
            "run = `sockstrace run --kernel off` (release, the supervisor alone); strace = `strace -f --seccomp-bpf -e trace=network -o \
             /dev/null` (ptrace reference)."
        );
        let _ = writeln!(
            out,
            "+us/call: (tool - native) / intercepted calls, storms only; with threads it is wall time per \
             call across them."
        );
        let _ = writeln!(out, "target: the brief's limit for `run`, ratio to native.");
        let _ = writeln!(
            out,
            "{}: `sockstrace run --kernel required`, the supervisor with its eBPF layer; ratio to native.",
            Tool::RunKernel.heading()
        );
        match &self.audit_unavailable {
            None => {
                let _ = writeln!(
                    out,
                    "audit: the program in a cgroup of the bench's own, watched by `sockstrace audit --cgroup \
                     CG` with the run column's policy (started before, SIGINT after each run); ratio to \
                     native. Target <= {AUDIT_TARGET:.2}x (the brief: audit on the connect storm)."
                );
            }
            Some(why) => {
                let _ = writeln!(out, "audit: not measured ({why}).");
            }
        }
        let _ = writeln!(
            out,
            "floor: the program under a one-instruction seccomp filter that allows every call \
             (`bench_client seccomp-allow`): what any seccomp filter costs on this kernel; ratio to native."
        );
        let _ = writeln!(
            out,
            "isolated: `sockstrace run --kernel off --isolate-network` (the program in a network namespace of its \
             own, the proxy forwarded); start-up, storms and bulk only; ratio to native."
        );
        for line in self.peer_lines() {
            let _ = writeln!(out, "{line}");
        }
        for line in self.gap_lines() {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "{}", self.rss_line());
        if let Some(line) = self.flood_line() {
            let _ = writeln!(out, "{line}");
        }
        if let Some(line) = self.hooks_line() {
            let _ = writeln!(out, "{line}");
        }
        out
    }

    /// A peer's time cell: the median, `FAILED`, or why it is not measured.
    fn peer_time_cell(&self, workload: usize, peer: &Peer) -> String {
        let w = &self.workloads[workload];
        match (&peer.binary, w.peer_unsupported()) {
            (Err(_), _) => "n/a: not built".into(),
            (Ok(_), Some(why)) => why.into(),
            (Ok(_), None) => {
                self.time_cell(workload, peer.spec.tool, self.compared(workload, peer.spec.tool).median)
            }
        }
    }

    /// The peers' notes: what each is (version, command line), or why its column is empty.
    fn peer_lines(&self) -> Vec<String> {
        if self.peers.is_empty() {
            return Vec::new();
        }
        let mut lines = vec![format!(
            "peers (--peers, built from crates.io into target/peers): {}; each ran every workload once and \
             refused a connect to another sink, to another address on the allowed port, under no policy, \
             and a datagram to another port (all of which succeed natively) before timing; x nat and +us/call \
             as for strace",
            self.peers
                .iter()
                .map(|peer| {
                    let reported = peer.reported_version.as_deref().unwrap_or("not built");
                    format!("{} {} (`{}`)", peer.spec.krate, peer.spec.version, reported)
                })
                .collect::<Vec<_>>()
                .join(", ")
        )];
        for peer in self.peers {
            match &peer.binary {
                Ok(_) => lines.push(peers::policy_note(peer)),
                Err(why) => lines.push(format!("{}: not measured: {why}", peer.spec.binary)),
            }
        }
        if self.workloads.iter().any(|w| w.peer_unsupported().is_some()) {
            lines.push(peers::UNSUPPORTED_NOTE.into());
        }
        lines
    }

    /// The bare round trip, then for each target `run` misses: how much of the gap any seccomp
    /// filter already costs, and for storms what the target leaves per call against that round trip.
    fn gap_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let floor_us = match &self.notify_floor {
            Some(Ok(floor)) => {
                lines.push(format!(
                    "notify floor: a bare user-notification round trip (a trapped getppid answered CONTINUE \
                     at once{}) costs {:.1} us here (`bench_client notify-floor`)",
                    if floor.sync_wake_up { ", sync wake-up" } else { ", no sync wake-up on this kernel" },
                    floor.us_per_call
                ));
                Some(floor.us_per_call)
            }
            Some(Err(_)) => {
                lines.push("notify floor: FAILED".into());
                None
            }
            None => None,
        };
        if let Some(floor_us) = floor_us {
            for (i, w) in self.workloads.iter().enumerate().filter(|(_, w)| w.calls.is_some()) {
                let over = |tool| {
                    self.compared(i, tool)
                        .added_us
                        .map_or("-".to_string(), |added| format!("{:+.1} us", added - floor_us))
                };
                lines.push(format!(
                    "over the round trip: {}: each trapped call adds the round trip and run {}, run+kernel {} \
                     (target: at most +{ROUND_TRIP_MARGIN_US:.0} us)",
                    w.label,
                    over(Tool::Run),
                    over(Tool::RunKernel)
                ));
            }
        }
        lines.extend(self.connect_floor_line());
        lines.extend(self.datagram_floor_line());
        for (i, w) in self.workloads.iter().enumerate() {
            let run = self.compared(i, Tool::Run);
            if run.target_met != Some(false) {
                continue;
            }
            if let (Some(native_us), Some(target), Some(floor_us)) =
                (self.native_us_per_call(i), w.target, floor_us)
            {
                lines.push(format!(
                    "gap: {}: the {:.2}x target leaves {:.1} us per call on a {native_us:.1} us native cycle; \
                     run adds {:.1} us, the bare round trip alone {floor_us:.1} us",
                    w.label,
                    target.max_ratio,
                    native_us * (target.max_ratio - 1.0),
                    run.added_us.unwrap_or(f64::NAN)
                ));
                continue;
            }
            let floor = self.compared(i, Tool::Floor);
            if let (Some(run_s), Some(floor_s), Some(floor_ratio)) = (run.median, floor.median, floor.ratio) {
                lines.push(format!(
                    "gap: {}: run is {:.2}x the floor, which is itself {floor_ratio:.2}x native",
                    w.label,
                    run_s / floor_s
                ));
            }
        }
        lines
    }

    /// A ratio column: the ratio, `FAILED` if a run failed, `-` if not measured.
    fn ratio_or_failed(&self, workload: usize, tool: Tool, ratio: Option<f64>) -> String {
        match self.series(workload, tool) {
            Some(series) if !series.failures.is_empty() => "FAILED".into(),
            _ => ratio_cell(ratio),
        }
    }

    fn flood_line(&self) -> Option<String> {
        let line = match self.flood.as_ref()? {
            Ok(f) => {
                let mut line = format!(
                    "audit leak flood: {} sent, {} reported, {} lost ({:.0}k leaks/s over {:.1} s, one UDP \
                     socket; target: none lost at {}k/s)",
                    f.sent,
                    f.reported,
                    f.lost,
                    f.sent as f64 / f.seconds / 1e3,
                    f.seconds,
                    FLOOD_RATE / 1000
                );
                if f.events != f.reported {
                    let _ = write!(line, "; {} event lines in the report", f.events);
                }
                if !f.kernel_lines.is_empty() {
                    let _ = write!(line, "; the kernel logged {} line(s)", f.kernel_lines.len());
                }
                line
            }
            Err(_) => "audit leak flood: FAILED".into(),
        };
        Some(line)
    }

    /// A storm's native time per intercepted call, in microseconds.
    fn native_us_per_call(&self, workload: usize) -> Option<f64> {
        let native = self.compared(workload, Tool::Native).median?;
        Some(native * 1e6 / self.workloads[workload].calls? as f64)
    }

    /// What a bare supervisor costs on the 1-thread connect storm, and how far `run` is from
    /// the one that performs the connect as `run` does.
    fn connect_floor_line(&self) -> Option<String> {
        let floors = match self.connect_floors.as_ref()? {
            Ok(floors) => floors,
            Err(_) => return Some("connect floors: FAILED".into()),
        };
        let storm = self.workloads.iter().position(|w| w.key == "connect_storm_1t");
        let run_added = storm.and_then(|i| self.compared(i, Tool::Run).added_us);
        let perform_added = floors.perform_us - floors.native_us;
        Some(format!(
            "connect floors: connect storm 1t with connect trapped and answered by a bare supervisor \
             (`bench_client notify-connect`, native {:.1} us a cycle in the same rounds): CONTINUE at once \
             {:+.1} us, performed on its copy of the socket {perform_added:+.1} us; run adds {}: {} over the \
             performing floor",
            floors.native_us,
            floors.continue_us - floors.native_us,
            run_added.map_or("-".into(), |us| format!("{us:.1} us")),
            run_added.map_or("-".into(), |us| format!("{:+.1} us", us - perform_added)),
        ))
    }

    /// What a bare supervisor costs on the UDP storm, and how far `run` is from the one that
    /// sends on its copy as `run` does, and `run+kernel` (whose fast path answers an allowed
    /// datagram CONTINUE) from the one that answers CONTINUE at once.
    fn datagram_floor_line(&self) -> Option<String> {
        let floors = match self.datagram_floors.as_ref()? {
            Ok(floors) => floors,
            Err(_) => return Some("datagram floors: FAILED".into()),
        };
        let storm = self.workloads.iter().position(|w| w.key == "udp_sendto_storm");
        let added = |tool| storm.and_then(|i| self.compared(i, tool).added_us);
        let perform_added = floors.perform_us - floors.native_us;
        let continue_added = floors.continue_us - floors.native_us;
        let against = |added: Option<f64>, floor: f64| {
            added.map_or("-".into(), |us| format!("{us:.1} us ({:+.1} us)", us - floor))
        };
        Some(format!(
            "datagram floors: udp sendto storm with sendto trapped and answered by a bare supervisor \
             (`bench_client notify-udp`, native {:.1} us a datagram in the same rounds): CONTINUE at once \
             {continue_added:+.1} us, sent on its copy of the socket {perform_added:+.1} us; run adds {} \
             against the sending floor, run+kernel (fast path: CONTINUE) {} against CONTINUE at once",
            floors.native_us,
            against(added(Tool::Run), perform_added),
            against(added(Tool::RunKernel), continue_added),
        ))
    }

    fn hooks_line(&self) -> Option<String> {
        let line = match self.hooks.as_ref()? {
            Ok(cost) => {
                let native_us = self
                    .workloads
                    .iter()
                    .position(|w| w.key == "connect_storm_1t")
                    .and_then(|i| self.native_us_per_call(i));
                let parts: Vec<String> = cost
                    .by_type
                    .iter()
                    .filter(|(_, r)| r.runs > 0)
                    .map(|(name, r)| {
                        format!(
                            "{name} {:.2} us in {:.1} runs",
                            r.nanos as f64 / 1e3 / cost.cycles as f64,
                            r.runs as f64 / cost.cycles as f64
                        )
                    })
                    .collect();
                let mut line = format!(
                    "audit hooks: {:.2} us of eBPF per connect cycle ({}; kernel.bpf_stats_enabled, a 1-thread \
                     storm of {})",
                    cost.us_per_cycle(),
                    parts.join(", "),
                    cost.cycles
                );
                if let Some(native_us) = native_us {
                    let _ = write!(
                        line,
                        ": {:.1}% of the {native_us:.1} us native cycle",
                        cost.us_per_cycle() / native_us * 100.0
                    );
                }
                line
            }
            Err(_) => "audit hooks: FAILED".into(),
        };
        Some(line)
    }

    fn time_cell(&self, workload: usize, tool: Tool, median: Option<f64>) -> String {
        let failed = self.series(workload, tool).is_some_and(|s| !s.failures.is_empty());
        match median {
            _ if failed => "FAILED".into(),
            Some(seconds) => format!("{:.1} ms", seconds * 1e3),
            None => "-".into(),
        }
    }

    fn rss_line(&self) -> String {
        let what =
            format!("supervisor peak RSS (VmHWM) during a 16-thread storm of {} connects", self.rss_connects);
        match &self.peak_rss {
            Some(Ok(kib)) => format!("{what}: {kib} KiB ({:.1} MiB)", *kib as f64 / 1024.0),
            Some(Err(_)) => format!("{what}: FAILED"),
            None => format!("{what}: not measured"),
        }
    }

    /// The JSON document written to target/bench/bench.json.
    pub fn json(&self, rounds: usize, quick: bool, sockstrace: &str) -> Value {
        let workloads: Vec<Value> = (0..self.workloads.len()).map(|i| self.workload_json(i)).collect();
        let peak = match &self.peak_rss {
            Some(Ok(kib)) => json!({ "kib": kib, "connects": self.rss_connects, "threads": 16 }),
            Some(Err(failure)) => json!({ "failed": failure }),
            None => Value::Null,
        };
        let mut doc = json!({
            "schema": 1,
            "unix_time": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "rounds": rounds,
            "quick": quick,
            "sockstrace": sockstrace,
            "workloads": workloads,
            "supervisor_peak_rss": peak,
            "audit_hooks": match &self.hooks {
                Some(Ok(cost)) => json!({
                    "connect_cycles": cost.cycles,
                    "us_per_cycle": cost.us_per_cycle(),
                    "by_program_type": cost.by_type.iter().map(|(name, r)| {
                        (name.clone(), json!({ "runs": r.runs, "run_time_ns": r.nanos }))
                    }).collect::<Map<String, Value>>(),
                }),
                Some(Err(failure)) => json!({ "failed": failure }),
                None => Value::Null,
            },
            "notify_floor": match &self.notify_floor {
                Some(Ok(f)) => json!({ "us_per_call": f.us_per_call, "sync_wake_up": f.sync_wake_up }),
                Some(Err(failure)) => json!({ "failed": failure }),
                None => Value::Null,
            },
            "connect_floors": match &self.connect_floors {
                Some(Ok(f)) => json!({
                    "native_us_per_cycle": f.native_us,
                    "continue_us_per_cycle": f.continue_us,
                    "perform_us_per_cycle": f.perform_us,
                }),
                Some(Err(failure)) => json!({ "failed": failure }),
                None => Value::Null,
            },
            "datagram_floors": match &self.datagram_floors {
                Some(Ok(f)) => json!({
                    "native_us_per_datagram": f.native_us,
                    "continue_us_per_datagram": f.continue_us,
                    "perform_us_per_datagram": f.perform_us,
                }),
                Some(Err(failure)) => json!({ "failed": failure }),
                None => Value::Null,
            },
            "audit_target_max_ratio": AUDIT_TARGET,
            "audit_leak_flood": self.flood_json(),
            "failures": self.failures(),
        });
        if !self.peers.is_empty() {
            doc["peers"] =
                self.peers.iter().map(|peer| (peer.spec.binary.to_string(), peer_json(peer))).collect();
        }
        doc
    }

    fn flood_json(&self) -> Value {
        match &self.flood {
            Some(Ok(f)) => json!({
                "sent": f.sent,
                "reported": f.reported,
                "lost": f.lost,
                "report_event_lines": f.events,
                "seconds": f.seconds,
                "target_rate_per_s": FLOOD_RATE,
                "kernel_log": f.kernel_lines,
            }),
            Some(Err(failure)) => json!({ "failed": failure }),
            None => Value::Null,
        }
    }

    fn workload_json(&self, i: usize) -> Value {
        let w = &self.workloads[i];
        let mut tools = Map::new();
        for tool in self.tools() {
            let peer = self.peers.iter().find(|peer| peer.spec.tool == tool);
            let value = match (tool, &self.audit_unavailable) {
                _ if peer.is_some_and(|peer| peer.binary.is_err()) => json!({ "not_measured": "not built" }),
                _ if peer.is_some() && w.peer_unsupported().is_some() => {
                    json!({ "not_measured": w.peer_unsupported() })
                }
                _ if !w.measured_by(tool) => json!({ "not_measured": "not a workload of this tool" }),
                (Tool::Audit, Some(why)) => json!({ "not_measured": why }),
                _ => self.tool_json(i, tool),
            };
            tools.insert(tool.key().into(), value);
        }
        json!({
            "key": w.key,
            "label": w.label,
            "timing": match w.timing { Timing::Client => "client_loop", Timing::Wall => "wall" },
            "intercepted_calls": w.calls,
            "target_max_ratio": w.target.map(|t| t.max_ratio),
            "tools": tools,
        })
    }

    fn tool_json(&self, i: usize, tool: Tool) -> Value {
        let c = self.compared(i, tool);
        let empty = Series::default();
        let series = self.series(i, tool).unwrap_or(&empty);
        json!({
            "median_s": c.median,
            "samples_s": series.seconds,
            "wall_samples_s": series.wall_seconds,
            "ratio_to_native": c.ratio,
            "added_us_per_call": c.added_us,
            "target_met": c.target_met,
            "failures": series.failures,
        })
    }
}

/// A peer's entry in the JSON: what was built, or why not.
fn peer_json(peer: &Peer) -> Value {
    json!({
        "crate": peer.spec.krate,
        "version": peer.spec.version,
        "reports": peer.reported_version,
        "binary": peer.binary.as_ref().ok().map(|bin| bin.display().to_string()),
        "not_built": peer.binary.as_ref().err(),
        "policy": peers::policy_note(peer),
    })
}

fn ratio_cell(ratio: Option<f64>) -> String {
    ratio.map_or("-".into(), |r| format!("{r:.2}x"))
}

fn us_cell(us: Option<f64>) -> String {
    us.map_or("-".into(), |us| format!("{us:.1}"))
}

fn target_cell(w: &Workload, met: Option<bool>) -> String {
    let Some(target) = w.target else { return "-".into() };
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "?",
    };
    format!("<={:.2} {verdict}", target.max_ratio)
}

#[cfg(test)]
mod tests {
    use super::super::workload::{Allowed, Target, Timing, Workload};
    use super::median;

    /// A workload of the client's own timing, with `calls`, `policy` and `target`.
    fn workload(key: &'static str, calls: Option<u64>, policy: &[&str], target: Option<f64>) -> Workload {
        Workload {
            key,
            label: key.into(),
            program: Vec::new(),
            policy: policy.iter().map(|s| s.to_string()).collect(),
            allowed: Allowed::Nothing,
            calls,
            timing: Timing::Client,
            target: target.map(|max_ratio| Target { max_ratio }),
            http_requests: None,
            isolation: false,
        }
    }

    #[test]
    fn gap_lines_weigh_a_missed_target_against_the_round_trip_and_the_floor() {
        use std::time::Duration;

        use super::super::{measure::NotifyFloor, workload::Tool};
        use super::{Results, Sample};

        let workload = |key: &'static str, calls: Option<u64>| workload(key, calls, &[], Some(1.10));
        let workloads = [workload("storm", Some(1000)), workload("plain", None), workload("fast", Some(10))];
        let mut results = Results::new(&workloads, 0);
        let sample =
            |ms: u64| Ok(Sample { measured: Duration::from_millis(ms), wall: Duration::from_millis(ms) });
        // storm: 30 ms native, 40 ms run over 1,000 calls: 30 us a cycle, 10 us added, 3 us budget.
        // plain: 100 ms native, 112 under the floor, 111 under run. fast: within its target.
        for (i, native, run, floor) in [(0, 30, 40, 31), (1, 100, 111, 112), (2, 100, 105, 100)] {
            results.record(i, Tool::Native, sample(native));
            results.record(i, Tool::Run, sample(run));
            results.record(i, Tool::Floor, sample(floor));
        }
        results.notify_floor = Some(Ok(NotifyFloor { us_per_call: 3.8, sync_wake_up: true }));
        assert_eq!(
            results.gap_lines(),
            [
                "notify floor: a bare user-notification round trip (a trapped getppid answered CONTINUE at \
                 once, sync wake-up) costs 3.8 us here (`bench_client notify-floor`)",
                "over the round trip: storm: each trapped call adds the round trip and run +6.2 us, \
                 run+kernel - (target: at most +2 us)",
                "over the round trip: fast: each trapped call adds the round trip and run +496.2 us, \
                 run+kernel - (target: at most +2 us)",
                "gap: storm: the 1.10x target leaves 3.0 us per call on a 30.0 us native cycle; run adds \
                 10.0 us, the bare round trip alone 3.8 us",
                "gap: plain: run is 0.99x the floor, which is itself 1.12x native",
            ]
        );
    }

    #[test]
    fn the_connect_floor_line_measures_run_against_the_performing_floor() {
        use std::time::Duration;

        use super::super::{measure::StormFloors, workload::Tool};
        use super::{Results, Sample};

        let workloads = [workload("connect_storm_1t", Some(1000), &[], None)];
        let mut results = Results::new(&workloads, 0);
        assert_eq!(results.connect_floor_line(), None, "not measured: no line");
        let sample = |ms| Ok(Sample { measured: Duration::from_millis(ms), wall: Duration::from_millis(ms) });
        // 30 us a cycle native, 48 under run: 18 us added; the performing floor adds 15.
        results.record(0, Tool::Native, sample(30));
        results.record(0, Tool::Run, sample(48));
        results.connect_floors =
            Some(Ok(StormFloors { native_us: 32.0, continue_us: 60.0, perform_us: 47.0 }));
        assert_eq!(
            results.connect_floor_line().unwrap(),
            "connect floors: connect storm 1t with connect trapped and answered by a bare supervisor \
             (`bench_client notify-connect`, native 32.0 us a cycle in the same rounds): CONTINUE at once \
             +28.0 us, performed on its copy of the socket +15.0 us; run adds 18.0 us: +3.0 us over the \
             performing floor"
        );
        results.connect_floors = Some(Err("no listener".into()));
        assert_eq!(results.connect_floor_line().unwrap(), "connect floors: FAILED");
        assert!(results.failures().iter().any(|f| f == "connect floors: no listener"));
    }

    #[test]
    fn the_datagram_floor_line_measures_run_and_the_fast_path_against_their_floors() {
        use std::time::Duration;

        use super::super::{measure::StormFloors, workload::Tool};
        use super::{Results, Sample};

        let workloads = [workload("udp_sendto_storm", Some(1000), &[], None)];
        let mut results = Results::new(&workloads, 0);
        assert_eq!(results.datagram_floor_line(), None, "not measured: no line");
        let sample = |ms| Ok(Sample { measured: Duration::from_millis(ms), wall: Duration::from_millis(ms) });
        // 4 us a datagram native, 19 under run (15 added), 15 under run+kernel (11 added); the
        // bare supervisor adds 8 answering CONTINUE, 12 sending on its copy.
        results.record(0, Tool::Native, sample(4));
        results.record(0, Tool::Run, sample(19));
        results.record(0, Tool::RunKernel, sample(15));
        results.datagram_floors =
            Some(Ok(StormFloors { native_us: 3.5, continue_us: 11.5, perform_us: 15.5 }));
        assert_eq!(
            results.datagram_floor_line().unwrap(),
            "datagram floors: udp sendto storm with sendto trapped and answered by a bare supervisor \
             (`bench_client notify-udp`, native 3.5 us a datagram in the same rounds): CONTINUE at once \
             +8.0 us, sent on its copy of the socket +12.0 us; run adds 15.0 us (+3.0 us) against the \
             sending floor, run+kernel (fast path: CONTINUE) 11.0 us (+3.0 us) against CONTINUE at once"
        );
        results.datagram_floors = Some(Err("no socket".into()));
        assert_eq!(results.datagram_floor_line().unwrap(), "datagram floors: FAILED");
        assert!(results.failures().iter().any(|f| f == "datagram floors: no socket"));
    }

    #[test]
    fn peer_columns_sit_beside_strace_and_say_why_a_cell_is_empty() {
        use std::{path::PathBuf, time::Duration};

        use super::super::{
            peers::{Peer, SANDLOCK, SYD},
            workload::Tool,
        };
        use super::{Results, Sample};

        let workload = |key: &'static str, policy: &[&str]| workload(key, Some(1000), policy, None);
        let workloads = [workload("storm", &[]), workload("strict", &["--syscalls=strict"])];
        let sample = |ms| Ok(Sample { measured: Duration::from_millis(ms), wall: Duration::from_millis(ms) });
        let peers = [
            Peer {
                spec: SANDLOCK,
                binary: Ok(PathBuf::from("/p/sandlock")),
                reported_version: Some("sandlock 0.9.0".into()),
            },
            Peer { spec: SYD, binary: Err("the build failed".into()), reported_version: None },
        ];
        let mut results = Results::new(&workloads, 0);
        for i in 0..2 {
            results.record(i, Tool::Native, sample(10));
        }
        let plain = results.table(1);
        let header = plain.lines().next().unwrap();
        assert!(header.ends_with("+us/call | run+kernel   audit   floor isolated"), "{header}");
        assert_eq!(plain.lines().nth(1).unwrap().len(), 154);
        assert!(!plain.contains("sandlock"));

        results.peers = &peers;
        results.record(0, Tool::Sandlock, sample(30));
        let table = results.table(1);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].contains(
                "+us/call |             sandlock   x nat  +us/call |            syd   x nat  +us/call |"
            ),
            "{}",
            lines[0]
        );
        assert!(
            lines[2]
                .contains("|              30.0 ms   3.00x      20.0 | n/a: not built       -         - |"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3]
                .contains("| n/a: own filter only       -         - | n/a: not built       -         - |"),
            "{}",
            lines[3]
        );
        assert_eq!(lines[1].len(), 154 + (20 + 21) + (14 + 21));
        assert!(table.contains("syd: not measured: the build failed"));
        assert!(table.contains("sandlock-cli 0.9.0 (`sandlock 0.9.0`), syd 3.59.0 (`not built`)"));
        assert!(table.contains("n/a: own filter only: the peer has no per-program system call allowlist"));
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
