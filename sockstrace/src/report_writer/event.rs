//! An event on its way to the report: the schema's event, made from a decision, and what
//! only the writer needs until it is written (the stack as copied while the call was held).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde::Serialize;
use sockstrace::schema::{self, Action, Timestamp};

use crate::policy::{Decision, Verdict};

/// Who made the call, read from /proc while the caller waits in the syscall.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub exe: Option<String>,
    pub argv: Option<Vec<String>>,
}

/// Serializes as the schema's event; its fields are the schema's ([`Deref`]).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Event {
    line: schema::Event,
    /// The stack as copied while the call was held, until it is symbolized.
    #[serde(skip)]
    pub captured: Option<Arc<crate::stack::capture::Captured>>,
}

impl Event {
    /// A new event for a decision, now; the reporter fills in `seq`.
    pub fn new(syscall: &'static str, tid: u32, decision: Decision, action: Action) -> Self {
        let line = schema::Event {
            schema: schema::SCHEMA,
            seq: 0,
            ts: Timestamp::now(),
            source: "seccomp".into(),
            syscall: syscall.into(),
            pid: None,
            ppid: None,
            tid,
            comm: None,
            exe: None,
            argv: None,
            cgroup: None,
            missing: Vec::new(),
            fd: None,
            cookie: None,
            family: None,
            sock_type: None,
            protocol: None,
            dst: None,
            local: None,
            option: None,
            verdict: match decision.verdict {
                Verdict::Allowed => "allowed",
                Verdict::Leak => "leak",
            }
            .into(),
            reason: decision.reason.as_str().into(),
            action,
            errno: None,
            kernel: None,
            stack: None,
            stack_error: None,
            core: None,
            core_error: None,
        };
        Event { line, captured: None }
    }

    pub fn with_process(mut self, info: ProcessInfo) -> Self {
        self.pid = info.pid;
        self.comm = info.comm;
        self.exe = info.exe;
        self.argv = info.argv;
        self
    }

    /// The line as the report has it.
    #[cfg(test)]
    pub fn line(&self) -> &schema::Event {
        &self.line
    }
}

impl Deref for Event {
    type Target = schema::Event;
    fn deref(&self) -> &schema::Event {
        &self.line
    }
}

impl DerefMut for Event {
    fn deref_mut(&mut self) -> &mut schema::Event {
        &mut self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Reason;

    #[test]
    fn serializes_the_contract_fields() {
        let mut e = Event::new("connect", 7, Decision::leak(Reason::DirectTcp), Action::Blocked);
        e.dst = Some("1.2.3.4:443".into());
        e.errno = Some(1);
        e.sock_type = Some("stream".into());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["source"], "seccomp");
        assert_eq!(v["verdict"], "leak");
        assert_eq!(v["reason"], "direct-tcp");
        assert_eq!(v["action"], "blocked");
        assert_eq!(v["type"], "stream");
        assert_eq!(v["errno"], 1);
        assert!(v.get("kernel").is_none());
        assert!(v.get("cgroup").is_none() && v.get("missing").is_none());
        assert!(v.get("stack").is_none() && v.get("stack_error").is_none() && v.get("core").is_none());
        assert!(v.get("captured").is_none());
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
    }
}
