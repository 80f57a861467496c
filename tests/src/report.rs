//! Report events and assertions on them. Reports are read with the types sockstrace
//! writes them with ([`sockstrace::schema`]): a line that is not an event of the schema
//! fails the test that reads it.

use std::ops::Deref;

use serde_json::Value;
use sockstrace::schema::{self, Action, SummaryLine};

use crate::run::Outcome;

/// One event line of the report: the schema's event ([`Event::line`]), and the line's
/// JSON for any field by name ([`Event::s`], [`Event::i`], indexing through [`Deref`]).
#[derive(Clone, Debug)]
pub struct Event {
    pub line: schema::Event,
    json: Value,
}

impl Deref for Event {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.json
    }
}

impl Event {
    /// Reads a report line as an event of the schema, or says why it is none.
    pub fn read(json: Value) -> Result<Event, String> {
        let Value::Object(fields) = &json else { return Err("not a JSON object".to_owned()) };
        let line = schema::Event::from_object(fields)?;
        Ok(Event { line, json })
    }

    /// The line as JSON.
    pub fn json(&self) -> &Value {
        &self.json
    }
    /// A string field, or "" when absent or not a string.
    pub fn s(&self, key: &str) -> &str {
        self.json.get(key).and_then(Value::as_str).unwrap_or("")
    }
    /// An integer field.
    pub fn i(&self, key: &str) -> Option<i64> {
        self.json.get(key).and_then(Value::as_i64)
    }
    pub fn is_leak(&self) -> bool {
        self.line.is_leak()
    }
    pub fn is_allowed(&self) -> bool {
        self.line.verdict == "allowed"
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.json)
    }
}

impl Outcome {
    /// Reads a report's text into [`Outcome::lines`], [`Outcome::events`] and the summary:
    /// every line must be JSON, the last one may be the summary line, all others must be
    /// events of the schema.
    pub fn read_report(&mut self, text: &str) {
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("report line {} is not JSON ({e}): {line}\n{}", i + 1, self.describe())
            });
            self.lines.push(value);
        }
        if let Some(last) = self.lines.last().filter(|l| l.get("summary").is_some()) {
            let line = serde_json::from_value::<SummaryLine>(last.clone()).unwrap_or_else(|e| {
                panic!("the summary line does not read as the schema's ({e}): {last}\n{}", self.describe())
            });
            self.run_summary = Some(line.summary);
            self.summary = Some(last.clone());
        }
        let n = self.lines.len() - usize::from(self.summary.is_some());
        let mut events = Vec::with_capacity(n);
        for value in &self.lines[..n] {
            let event = Event::read(value.clone()).unwrap_or_else(|why| {
                panic!("a report line is not an event of the schema ({why}): {value}\n{}", self.describe())
            });
            events.push(event);
        }
        self.events = events;
    }
}

/// What a leak event is expected to say.
#[derive(Clone, Debug, Default)]
pub struct LeakSpec<'a> {
    /// Acceptable syscalls (one of).
    pub syscalls: &'a [&'a str],
    /// Destination as the report writes it ("127.0.0.2:80", "[::1]:80").
    pub dst: &'a str,
    /// Acceptable reasons (one of).
    pub reasons: &'a [&'a str],
    /// "blocked", "logged" or "killed".
    pub action: &'a str,
    /// "tcp" or "udp".
    pub protocol: &'a str,
    /// "inet" or "inet6".
    pub family: &'a str,
    /// The thread group id that made the call, when the client printed it.
    pub pid: Option<i64>,
    /// The thread id that made the call, when the client printed it.
    pub tid: Option<i64>,
    /// Expected comm ("netprobe", "curl", ...).
    pub comm: &'a str,
}

impl<'a> LeakSpec<'a> {
    /// netprobe's TCP connect to `dst` over IPv4, blocked (reason
    /// direct-tcp); pid and tid unchecked until [`LeakSpec::by`].
    pub fn tcp(dst: &'a str) -> Self {
        LeakSpec {
            syscalls: &["connect"],
            dst,
            reasons: &["direct-tcp"],
            action: "blocked",
            protocol: "tcp",
            family: "inet",
            comm: "netprobe",
            ..Default::default()
        }
    }

    /// netprobe's UDP send (one of `syscalls`) to `dst` over IPv4, blocked
    /// (reason direct-udp); pid and tid unchecked until [`LeakSpec::by`].
    pub fn udp(syscalls: &'a [&'a str], dst: &'a str) -> Self {
        LeakSpec { syscalls, reasons: &["direct-udp"], protocol: "udp", ..Self::tcp(dst) }
    }

    /// The same, made by this (pid, tid), e.g. [`Outcome::actor`].
    pub fn by(self, (pid, tid): (i64, i64)) -> Self {
        LeakSpec { pid: Some(pid), tid: Some(tid), ..self }
    }
}

impl Outcome {
    /// The usual refused leak: the client saw EPERM on `op` and exited 1
    /// ([`Outcome::assert_client_eperm`]), the report is well formed, and it
    /// has the leak `spec` ([`Outcome::assert_leak`]) made by the thread on
    /// the client's "actor:" line. Returns the event.
    pub fn assert_refused_leak(&self, op: &str, spec: LeakSpec) -> &Event {
        self.assert_client_eperm(op);
        self.assert_report_well_formed();
        self.assert_leak(&spec.by(self.actor()))
    }

    /// The summary object (the `summary` key of the last line); fails when
    /// the report has none.
    pub fn summary_obj(&self) -> &Value {
        let s = self
            .summary
            .as_ref()
            .unwrap_or_else(|| panic!("report has no summary line\n{}", self.describe()));
        &s["summary"]
    }

    /// The summary line, as the schema reads it; fails when the report has none.
    pub fn run_summary(&self) -> &schema::RunSummary {
        self.run_summary.as_ref().unwrap_or_else(|| panic!("report has no summary line\n{}", self.describe()))
    }

    /// A count from the summary (e.g. "leaks", "events").
    pub fn summary_count(&self, key: &str) -> i64 {
        self.summary_obj()
            .get(key)
            .and_then(Value::as_i64)
            .unwrap_or_else(|| panic!("summary has no integer {key:?}\n{}", self.describe()))
    }

    /// The events for which `pred` holds.
    pub fn events_where(&self, pred: impl Fn(&Event) -> bool) -> Vec<&Event> {
        self.events.iter().filter(|e| pred(e)).collect()
    }

    /// The one event for which `pred` holds (`what` describes it in the
    /// failure message); fails when there is none or more than one.
    pub fn the_event(&self, what: &str, pred: impl Fn(&Event) -> bool) -> &Event {
        let found = self.events_where(pred);
        assert_eq!(
            found.len(),
            1,
            "expected exactly one event: {what}; found {}\n{}",
            found.len(),
            self.describe()
        );
        found[0]
    }

    /// The summary's `layers.kernel` text ("on (enforcing, cgroup PATH id N)",
    /// "off (not root)", ...).
    pub fn kernel_layer(&self) -> String {
        self.run_summary()
            .layers
            .get("kernel")
            .unwrap_or_else(|| panic!("summary has no layers.kernel\n{}", self.describe()))
            .clone()
    }

    /// The run's cgroup path and id, parsed from `layers.kernel`
    /// ("... cgroup PATH id N)"), when the kernel layer was on.
    pub fn kernel_cgroup(&self) -> Option<(std::path::PathBuf, u64)> {
        let layer = self.kernel_layer();
        let rest = layer.split_once("cgroup ")?.1;
        let (path, rest) = rest.split_once(" id ")?;
        let id = rest.trim_end_matches(')').trim().parse().ok()?;
        Some((std::path::PathBuf::from(path), id))
    }

    pub fn leaks(&self) -> Vec<&Event> {
        self.events.iter().filter(|e| e.is_leak()).collect()
    }

    /// The leaks reported with `reason`.
    pub fn leaks_for(&self, reason: &str) -> Vec<&Event> {
        self.events.iter().filter(|e| e.is_leak() && e.s("reason") == reason).collect()
    }

    /// Whether the summary's layers line says the program ran in a network namespace of its own
    /// (`--isolate-network`).
    pub fn was_isolated(&self) -> bool {
        self.stderr.lines().any(|l| l.contains("layers:") && l.contains("network namespace of its own"))
    }

    /// Fails unless [`Outcome::was_isolated`].
    pub fn assert_isolated(&self) {
        assert!(
            self.was_isolated(),
            "the layers line does not say the program was isolated\n{}",
            self.describe()
        );
    }

    /// Checks the report's overall shape: every event has the common fields,
    /// `seq` increases, the summary is last and has no `seq`, and its counts
    /// agree with the events.
    pub fn assert_report_well_formed(&self) {
        let d = || self.describe();
        let summary = self.summary.as_ref().unwrap_or_else(|| panic!("report has no summary line\n{}", d()));
        assert!(summary.get("seq").is_none(), "summary has a seq\n{}", d());
        assert!(!self.run_summary().layers.is_empty(), "summary has no layers\n{}", d());
        for (i, line) in self.lines.iter().enumerate() {
            if i + 1 < self.lines.len() {
                assert!(line.get("summary").is_none(), "a summary line that is not the last\n{}", d());
            }
        }
        let mut last_seq = 0;
        for e in &self.events {
            let ev = &e.line;
            assert_eq!(ev.schema, schema::SCHEMA, "schema in {e}\n{}", d());
            assert!(e.get("seq").is_some() && ev.seq > last_seq, "seq not increasing at {e}\n{}", d());
            last_seq = ev.seq;
            assert!(e.s("ts").contains('T'), "ts not RFC 3339 in {e}\n{}", d());
            assert!(["seccomp", "kernel"].contains(&ev.source.as_ref()), "bad source in {e}\n{}", d());
            assert!(!ev.syscall.is_empty(), "no syscall in {e}\n{}", d());
            assert!(ev.pid.unwrap_or(0) > 0, "no pid in {e}\n{}", d());
            assert!(["allowed", "leak"].contains(&ev.verdict.as_ref()), "bad verdict in {e}\n{}", d());
            assert!(!ev.reason.is_empty(), "no reason in {e}\n{}", d());
            assert_ne!(ev.action, Action::Unknown, "bad action in {e}\n{}", d());
            if ev.action == Action::Blocked {
                assert!(ev.errno.is_some(), "blocked without errno: {e}\n{}", d());
            }
        }
        let leaks = self.leaks().len() as u64;
        let run = self.run_summary();
        assert_eq!(run.leaks, Some(leaks), "summary leaks != leak events\n{}", d());
        assert!(run.events.unwrap_or(0) >= self.events.len() as u64, "summary events < event lines\n{}", d());
    }

    /// Asserts that the report has no leak event and the summary counts none.
    pub fn assert_no_leaks(&self) {
        let leaks = self.leaks();
        assert!(
            leaks.is_empty(),
            "false leak(s) reported: {:?}\n{}",
            leaks.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            self.describe()
        );
        assert_eq!(self.summary_count("leaks"), 0, "summary counts leaks\n{}", self.describe());
        assert!(!self.stderr.contains("LEAK"), "stderr reports a LEAK\n{}", self.describe());
    }

    /// Finds the seccomp leak event matching `spec` (syscall and dst), checks
    /// all its fields, the stderr line for it and the summary, and returns it.
    pub fn assert_leak(&self, spec: &LeakSpec) -> &Event {
        let d = || self.describe();
        let ev = self
            .events
            .iter()
            .find(|e| {
                e.is_leak()
                    && e.s("source") == "seccomp"
                    && spec.syscalls.contains(&e.s("syscall"))
                    && e.s("dst") == spec.dst
            })
            .unwrap_or_else(|| {
                panic!(
                    "no seccomp leak event with syscall in {:?} and dst {}\n{}",
                    spec.syscalls,
                    spec.dst,
                    d()
                )
            });
        assert!(
            spec.reasons.contains(&ev.s("reason")),
            "reason {:?} not in {:?}: {ev}\n{}",
            ev.s("reason"),
            spec.reasons,
            d()
        );
        assert_eq!(ev.s("action"), spec.action, "action in {ev}\n{}", d());
        match spec.action {
            "blocked" => assert_eq!(ev.i("errno"), Some(1), "errno in {ev}\n{}", d()),
            _ => assert!(
                ev.get("errno").is_none_or(Value::is_null),
                "errno present though not blocked: {ev}\n{}",
                d()
            ),
        }
        if !spec.protocol.is_empty() {
            assert_eq!(ev.s("protocol"), spec.protocol, "protocol in {ev}\n{}", d());
            let ty = if spec.protocol == "tcp" { "stream" } else { "dgram" };
            assert_eq!(ev.s("type"), ty, "type in {ev}\n{}", d());
        }
        if !spec.family.is_empty() {
            assert_eq!(ev.s("family"), spec.family, "family in {ev}\n{}", d());
        }
        assert_eq!(ev.i("schema"), Some(1), "schema in {ev}\n{}", d());
        let pid = ev.i("pid").unwrap_or(0);
        let tid = ev.i("tid").unwrap_or(0);
        assert!(pid > 0 && tid > 0, "pid/tid in {ev}\n{}", d());
        if let Some(p) = spec.pid {
            assert_eq!(pid, p, "pid in {ev}\n{}", d());
        }
        if let Some(t) = spec.tid {
            assert_eq!(tid, t, "tid in {ev}\n{}", d());
        }
        if !spec.comm.is_empty() {
            assert_eq!(ev.s("comm"), spec.comm, "comm in {ev}\n{}", d());
        }
        assert!(ev.i("fd").is_some_and(|fd| fd >= 0), "fd in {ev}\n{}", d());
        assert!(ev.get("cookie").and_then(Value::as_u64).is_some(), "cookie in {ev}\n{}", d());
        assert!(!ev.s("exe").is_empty(), "exe in {ev}\n{}", d());
        assert!(self.summary_count("leaks") >= 1, "summary counts no leak\n{}", d());
        self.assert_leak_line(ev);
        ev
    }

    /// Asserts a human stderr line for this leak: "LEAK" plus the syscall,
    /// destination, protocol, pid and program name.
    pub fn assert_leak_line(&self, ev: &Event) {
        let pid = ev.i("pid").unwrap_or(0).to_string();
        let found = self.stderr.lines().any(|l| {
            let lower = l.to_lowercase();
            l.contains("LEAK")
                && l.contains(ev.s("syscall"))
                && l.contains(ev.s("dst"))
                && lower.contains(&ev.s("protocol").to_lowercase())
                && l.contains(&pid)
                && l.contains(ev.s("comm"))
        });
        assert!(
            found,
            "no stderr line with LEAK, {}, {}, {}, pid {} and {} for {ev}\n{}",
            ev.s("syscall"),
            ev.s("dst"),
            ev.s("protocol"),
            pid,
            ev.s("comm"),
            self.describe()
        );
    }

    /// Whether the summary says the kernel (eBPF) layer was active: accepts
    /// `layers` as {"kernel": bool|"on"|"off"|{...active/enabled/loaded...}}
    /// or as an array of active layer names. `None` when the shape is unknown.
    pub fn kernel_layer_active(&self) -> Option<bool> {
        let layers = self.summary_obj().get("layers")?;
        fn truthy(v: &Value) -> Option<bool> {
            match v {
                Value::Bool(b) => Some(*b),
                Value::Null => Some(false),
                Value::String(s) => match s.to_ascii_lowercase().as_str() {
                    "on" | "active" | "enabled" | "loaded" | "yes" | "true" => Some(true),
                    s if s.starts_with("off")
                        || s.starts_with("inactive")
                        || s.starts_with("disabled")
                        || s.starts_with("unavailable")
                        || s.starts_with("no")
                        || s == "false" =>
                    {
                        Some(false)
                    }
                    _ => None,
                },
                Value::Object(o) => ["active", "enabled", "loaded", "on", "state", "status"]
                    .iter()
                    .find_map(|k| o.get(*k).and_then(truthy)),
                _ => None,
            }
        }
        match layers {
            Value::Object(o) => {
                ["kernel", "ebpf", "bpf"].iter().find_map(|k| o.get(*k)).map_or(Some(false), truthy)
            }
            Value::Array(a) => Some(a.iter().any(|v| {
                v.as_str().is_some_and(|s| ["kernel", "ebpf", "bpf"].contains(&s))
                    || v.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|s| ["kernel", "ebpf", "bpf"].contains(&s))
                        && v.get("active").and_then(Value::as_bool).unwrap_or(true)
            })),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_event_of_the_schema_and_refuses_other_lines() {
        let line = r#"{"schema":1,"seq":1,"ts":"2026-01-01T00:00:00Z","source":"seccomp","syscall":"connect","pid":7,"tid":7,"dst":"127.0.0.2:80","verdict":"leak","reason":"direct-tcp","action":"blocked","errno":1,"kernel":{"uid":0}}"#;
        let e = Event::read(serde_json::from_str(line).unwrap()).unwrap();
        assert!(e.is_leak() && !e.is_allowed());
        assert_eq!(
            (e.line.action, e.line.pid, e.s("dst"), e.i("errno")),
            (Action::Blocked, Some(7), "127.0.0.2:80", Some(1))
        );
        assert_eq!(e["kernel"]["uid"], 0);
        let why = Event::read(serde_json::json!({"schema": 1, "summary": {}})).unwrap_err();
        assert!(why.contains("missing field"), "{why}");
        let why = Event::read(serde_json::json!([1])).unwrap_err();
        assert_eq!(why, "not a JSON object");
    }
}
