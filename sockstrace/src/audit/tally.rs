//! The audit summary by process and destination: who reached the network around the proxy,
//! where, and what was done about it.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::report_writer::{Action, Event};

/// Processes kept in the table; leaks of further ones are only counted.
const MAX_PROCESSES: usize = 1000;
/// Destinations kept per process; further ones are only counted.
const MAX_DESTINATIONS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ProcessKey {
    pid: u32,
    comm: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct DestinationKey {
    syscall: String,
    protocol: String,
    /// Destination of a connect or send; local address of a bind or listen.
    addr: String,
    reason: String,
    action: &'static str,
}

#[derive(Debug, Default)]
struct ProcessRow {
    uid: Option<u32>,
    exe: Option<String>,
    cgroup: Option<String>,
    leaks: u64,
    destinations: BTreeMap<DestinationKey, u64>,
    /// Leaks to destinations beyond [`MAX_DESTINATIONS`].
    other_destinations: u64,
}

/// Leaks by process, then by destination.
#[derive(Debug, Default)]
pub struct Tally {
    rows: BTreeMap<ProcessKey, ProcessRow>,
    /// Leaks of processes beyond [`MAX_PROCESSES`].
    other_processes: u64,
    /// Events reported without some process field (see `Event::missing`).
    pub attribution_missing: u64,
}

/// The report's name of an action.
pub fn action_name(action: Action) -> &'static str {
    action.as_str()
}

impl Tally {
    /// Counts one reported event (leaks only; `uid` as the kernel saw it).
    pub fn record(&mut self, event: &Event, uid: u32) {
        if !event.missing.is_empty() {
            self.attribution_missing += 1;
        }
        if !event.is_leak() {
            return;
        }
        let key = ProcessKey { pid: event.pid.unwrap_or(0), comm: event.comm.clone().unwrap_or_default() };
        if !self.rows.contains_key(&key) && self.rows.len() >= MAX_PROCESSES {
            self.other_processes += 1;
            return;
        }
        let row = self.rows.entry(key).or_default();
        row.uid.get_or_insert(uid);
        if row.exe.is_none() {
            row.exe.clone_from(&event.exe);
        }
        if row.cgroup.is_none() {
            row.cgroup.clone_from(&event.cgroup);
        }
        row.leaks += 1;
        let dest = DestinationKey {
            syscall: event.syscall.to_string(),
            protocol: event.protocol.clone().unwrap_or_default(),
            addr: event.dst.clone().or_else(|| event.local.clone()).unwrap_or_default(),
            reason: event.reason.to_string(),
            action: action_name(event.action),
        };
        if !row.destinations.contains_key(&dest) && row.destinations.len() >= MAX_DESTINATIONS {
            row.other_destinations += 1;
            return;
        }
        *row.destinations.entry(dest).or_default() += 1;
    }

    /// The table as JSON: `by_process` (most leaks first) and the overflow counts.
    pub fn to_json(&self) -> Value {
        let rows: Vec<Value> = self
            .sorted()
            .into_iter()
            .map(|(key, row)| {
                let destinations: Vec<Value> = row
                    .destinations
                    .iter()
                    .map(|(d, count)| {
                        json!({"syscall": d.syscall, "protocol": d.protocol, "dst": d.addr,
                               "reason": d.reason, "action": d.action, "count": count})
                    })
                    .collect();
                json!({
                    "pid": key.pid,
                    "comm": key.comm,
                    "exe": row.exe,
                    "uid": row.uid,
                    "cgroup": row.cgroup,
                    "leaks": row.leaks,
                    "destinations": destinations,
                    "other_destinations": row.other_destinations,
                })
            })
            .collect();
        json!({
            "processes": rows,
            "other_processes_leaks": self.other_processes,
        })
    }

    /// Lines for stderr.
    pub fn human_lines(&self) -> Vec<String> {
        if self.rows.is_empty() {
            return Vec::new();
        }
        let mut lines = vec!["sockstrace: leaks by process:".to_owned()];
        for (key, row) in self.sorted() {
            let mut head = format!("sockstrace:   pid {} {}", key.pid, key.comm);
            if let Some(exe) = &row.exe {
                head.push_str(&format!(" ({exe})"));
            }
            if let Some(uid) = row.uid {
                head.push_str(&format!(" uid {uid}"));
            }
            if let Some(cgroup) = &row.cgroup {
                head.push_str(&format!(" cgroup {cgroup}"));
            }
            head.push_str(&format!(": {} leak(s)", row.leaks));
            lines.push(head);
            for (d, count) in &row.destinations {
                lines.push(format!(
                    "sockstrace:     {count:>5} x {} {} {} ({}) {}",
                    d.syscall, d.protocol, d.addr, d.reason, d.action
                ));
            }
            if row.other_destinations > 0 {
                lines.push(format!("sockstrace:     {:>5} x to other destinations", row.other_destinations));
            }
        }
        if self.other_processes > 0 {
            lines.push(format!("sockstrace:   {} leak(s) by further processes", self.other_processes));
        }
        lines
    }

    /// Rows with the most leaks first, then by pid.
    fn sorted(&self) -> Vec<(&ProcessKey, &ProcessRow)> {
        let mut rows: Vec<_> = self.rows.iter().collect();
        rows.sort_by(|a, b| b.1.leaks.cmp(&a.1.leaks).then_with(|| a.0.cmp(b.0)));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Decision, Reason};

    fn leak(pid: u32, comm: &str, dst: &str, action: Action) -> Event {
        let mut e = Event::new("connect", pid, Decision::leak(Reason::DirectTcp), action);
        e.pid = Some(pid);
        e.comm = Some(comm.into());
        e.protocol = Some("tcp".into());
        e.dst = Some(dst.into());
        e
    }

    #[test]
    fn groups_by_process_then_destination() {
        let mut tally = Tally::default();
        let mut first = leak(10, "curl", "1.2.3.4:443", Action::Blocked);
        first.exe = Some("/usr/bin/curl".into());
        tally.record(&first, 1000);
        let mut gone = leak(10, "curl", "1.2.3.4:443", Action::Blocked);
        gone.missing = vec!["exe".into(), "argv".into(), "cgroup".into()];
        tally.record(&gone, 1000);
        tally.record(&leak(10, "curl", "5.6.7.8:80", Action::Blocked), 1000);
        tally.record(&leak(20, "nc", "[::1]:9", Action::Logged), 0);
        let allowed = Event::new("connect", 30, Decision::allowed(Reason::Proxy), Action::Allowed);
        tally.record(&allowed, 0);
        let json = tally.to_json();
        let rows = json["processes"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0]["pid"].as_u64(), rows[0]["leaks"].as_u64()), (Some(10), Some(3)));
        assert_eq!(rows[0]["exe"], "/usr/bin/curl");
        assert_eq!(rows[0]["uid"], 1000);
        assert_eq!(rows[0]["destinations"][0]["count"], 2);
        assert_eq!(rows[0]["destinations"][0]["action"], "blocked");
        assert_eq!(rows[1]["comm"], "nc");
        assert_eq!(tally.attribution_missing, 1);
        let lines = tally.human_lines();
        assert!(lines[1].contains("pid 10 curl (/usr/bin/curl) uid 1000: 3 leak(s)"), "{lines:?}");
        assert!(lines[2].contains("2 x connect tcp 1.2.3.4:443 (direct-tcp) blocked"), "{lines:?}");
    }

    #[test]
    fn caps_processes_and_destinations() {
        let mut tally = Tally::default();
        for port in 0..=MAX_DESTINATIONS {
            tally.record(&leak(1, "a", &format!("10.0.0.1:{port}"), Action::Logged), 0);
        }
        for pid in 2..=(MAX_PROCESSES as u32 + 1) {
            tally.record(&leak(pid, "b", "10.0.0.1:1", Action::Logged), 0);
        }
        let json = tally.to_json();
        assert_eq!(json["processes"].as_array().unwrap().len(), MAX_PROCESSES);
        assert_eq!(json["other_processes_leaks"], 1);
        assert_eq!(json["processes"][0]["other_destinations"], 1);
    }
}
