//! Tallies for the end-of-run summary.

use std::collections::BTreeMap;

use sockstrace::schema::{LeakRow, RunSummary, SummaryLine};

use super::{Action, Event};

/// The state of each interception layer, in words.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    pub seccomp: String,
    pub kernel: String,
    /// What keeps the program from reaching its supervisor (empty in audit).
    pub fence: String,
    /// Who the traced program runs as, and what it may do (empty in audit).
    pub program: String,
    /// The system call profile in force (`all`, `strict-1 (...)`; empty in audit).
    pub syscalls: String,
    /// Events the kernel's ring buffer had to drop (when the layer was on).
    pub kernel_dropped: Option<u64>,
    /// What the `--dns proxy` resolver answered.
    pub dns: Option<serde_json::Value>,
    /// UDP through the proxy (`--on-leak socksify`): whether it is on (or why not) and what
    /// went through the relay.
    pub udp_proxy: Option<serde_json::Value>,
}

/// One row of the leak table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LeakKey {
    pub dst: String,
    pub protocol: String,
    pub reason: String,
    pub syscall: String,
    pub program: String,
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub events: u64,
    pub allowed: u64,
    pub leaks: u64,
    pub blocked: u64,
    pub logged: u64,
    pub killed: u64,
    pub socksified: u64,
    /// Calls refused for malformed arguments, as the kernel would refuse them.
    pub invalid: u64,
    /// Datagram connects refused without a leak (reason `udp-connect-refused`):
    /// nothing was sent, and nothing could be sent on the socket.
    pub udp_connects_refused: u64,
    /// System calls outside `--syscalls`, denied: how often, by name.
    pub syscalls_denied: BTreeMap<String, u64>,
    /// The configuration file read, if any.
    pub config: Option<String>,
    pub by_destination: BTreeMap<LeakKey, u64>,
    pub layers: Layers,
    pub exit_status: Option<i32>,
    /// The report file at its path does not hold what was written (said on stderr): altered
    /// and not restored there, or not written in full. Not in the JSON; the run fails.
    pub report_failed: bool,
}

impl Summary {
    pub fn record(&mut self, e: &Event) {
        self.events += 1;
        if !e.is_leak() {
            if e.reason == crate::policy::Reason::UdpConnectRefused.as_str() {
                self.udp_connects_refused += 1;
            } else if e.reason == crate::policy::Reason::SyscallDenied.as_str() {
                *self.syscalls_denied.entry(e.syscall.to_string()).or_default() += 1;
            } else {
                self.allowed += 1;
            }
            return;
        }
        self.leaks += 1;
        match e.action {
            Action::Blocked => self.blocked += 1,
            Action::Logged => self.logged += 1,
            Action::Killed => self.killed += 1,
            Action::Socksified => self.socksified += 1,
            Action::Allowed | Action::Unknown => {}
        }
        let key = LeakKey {
            dst: e.dst.clone().or_else(|| e.local.clone()).unwrap_or_default(),
            protocol: e.protocol.clone().unwrap_or_default(),
            reason: e.reason.to_string(),
            syscall: e.syscall.to_string(),
            program: e.comm.clone().unwrap_or_else(|| "?".into()),
        };
        *self.by_destination.entry(key).or_default() += 1;
    }

    fn layers(&self) -> BTreeMap<String, String> {
        let mut layers = BTreeMap::new();
        layers.insert("seccomp".to_owned(), self.layers.seccomp.clone());
        layers.insert("kernel".to_owned(), self.layers.kernel.clone());
        for (name, state) in [
            ("fence", &self.layers.fence),
            ("program", &self.layers.program),
            ("syscalls", &self.layers.syscalls),
        ] {
            if !state.is_empty() {
                layers.insert(name.to_owned(), state.clone());
            }
        }
        layers
    }

    /// The summary line of the report.
    #[cfg(test)]
    pub fn to_json(&self) -> serde_json::Value {
        self.to_json_with(serde_json::Map::new())
    }

    /// The summary line, with `extra` keys in the summary object (`audit` adds its table by
    /// process).
    pub fn to_json_with(&self, extra: serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
        let leak_table = self
            .by_destination
            .iter()
            .map(|(k, count)| LeakRow {
                comm: k.program.clone(),
                count: *count,
                dst: k.dst.clone(),
                protocol: k.protocol.clone(),
                reason: k.reason.clone(),
                syscall: k.syscall.clone(),
            })
            .collect();
        SummaryLine::new(RunSummary {
            events: Some(self.events),
            allowed: Some(self.allowed),
            leaks: Some(self.leaks),
            blocked: Some(self.blocked),
            logged: Some(self.logged),
            killed: Some(self.killed),
            socksified: Some(self.socksified),
            invalid: Some(self.invalid),
            udp_connects_refused: Some(self.udp_connects_refused),
            syscalls_denied: self.syscalls_denied.clone(),
            config: self.config.clone(),
            exit_status: self.exit_status,
            layers: self.layers(),
            kernel_lost_events: self.layers.kernel_dropped,
            dns: self.layers.dns.clone(),
            udp_proxy: self.layers.udp_proxy.clone(),
            leak_table,
            extra,
        })
        .to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Decision, Reason};

    #[test]
    fn refused_udp_connects_are_counted_apart_from_leaks_and_allowed_calls() {
        let mut s = Summary::default();
        s.record(&Event::new("connect", 1, Decision::allowed(Reason::UdpConnectRefused), Action::Blocked));
        s.record(&Event::new("connect", 1, Decision::allowed(Reason::UdpConnectRefused), Action::Blocked));
        s.record(&Event::new("connect", 1, Decision::allowed(Reason::Proxy), Action::Allowed));
        assert_eq!((s.events, s.allowed, s.leaks, s.udp_connects_refused), (3, 1, 0, 2));
        let json = s.to_json();
        assert_eq!(json["summary"]["udp_connects_refused"], 2);
        assert_eq!(json["summary"]["config"], serde_json::Value::Null);
        let lines = super::super::human::summary_lines(&s);
        assert!(lines.iter().any(|l| l.contains("2 UDP connect(s) refused (nothing sent)")), "{lines:?}");
        s.config = Some("/etc/sockstrace/sockstrace.toml".into());
        assert_eq!(s.to_json()["summary"]["config"], "/etc/sockstrace/sockstrace.toml");
    }

    #[test]
    fn denied_system_calls_are_counted_by_name_apart_from_leaks() {
        let mut s = Summary::default();
        for name in ["ptrace", "bpf", "ptrace"] {
            s.record(&Event::new(name, 1, Decision::allowed(Reason::SyscallDenied), Action::Blocked));
        }
        assert_eq!((s.events, s.allowed, s.leaks), (3, 0, 0));
        s.layers.syscalls = "strict-1 (300 names allowed, others EPERM)".into();
        let json = s.to_json();
        assert_eq!(json["summary"]["syscalls_denied"]["ptrace"], 2);
        assert_eq!(json["summary"]["layers"]["syscalls"], s.layers.syscalls.as_str());
        let lines = super::super::human::summary_lines(&s);
        assert!(
            lines.iter().any(|l| l == "sockstrace: 3 system call(s) denied: bpf 1, ptrace 2"),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.ends_with("; syscalls strict-1 (300 names allowed, others EPERM)")));
    }

    #[test]
    fn layers_name_the_fence_when_there_is_one() {
        let mut s = Summary::default();
        s.layers.seccomp = "on".into();
        s.layers.kernel = "off".into();
        assert!(s.to_json()["summary"]["layers"].get("fence").is_none(), "audit has no fence");
        s.layers.fence = "on (supervisor non-dumpable; landlock ABI 7: ptrace fence)".into();
        assert_eq!(s.to_json()["summary"]["layers"]["fence"], s.layers.fence.as_str());
        let lines = super::super::human::summary_lines(&s);
        assert!(lines
            .iter()
            .any(|l| l.starts_with("sockstrace: layers: seccomp on; kernel off; fence on (")));
    }

    #[test]
    fn layers_name_who_the_program_runs_as() {
        let mut s = Summary::default();
        s.layers.seccomp = "on".into();
        s.layers.kernel = "on".into();
        assert!(s.to_json()["summary"]["layers"].get("program").is_none(), "audit runs no program");
        s.layers.program = "uid 1000 (alice), no capabilities".into();
        assert_eq!(s.to_json()["summary"]["layers"]["program"], "uid 1000 (alice), no capabilities");
        let lines = super::super::human::summary_lines(&s);
        assert!(
            lines.iter().any(|l| l.ends_with("; program uid 1000 (alice), no capabilities")),
            "{lines:?}"
        );
    }
}
