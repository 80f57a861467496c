//! The event of the `--report` contract (schema 1).

use serde::Serialize;

use crate::policy::{Decision, Verdict};

pub const SCHEMA: u32 = 1;

/// What sockstrace did about a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allowed,
    Logged,
    Blocked,
    Killed,
    /// Sent through the proxy instead (`--on-leak socksify`).
    Socksified,
}

impl Action {
    /// Whether the program's own call goes ahead as it asked.
    pub fn lets_through(self) -> bool {
        matches!(self, Action::Allowed | Action::Logged)
    }
}

/// Who made the call, read from /proc while the caller waits in the syscall.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub exe: Option<String>,
    pub argv: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub schema: u32,
    pub seq: u64,
    pub ts: String,
    pub source: &'static str,
    pub syscall: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The parent's pid, for audit events (from /proc, or the kernel's process record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    pub tid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// The process's cgroup v2 path (`/proc/PID/cgroup`), for audit events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Process fields that could not be read (`exe`, `argv`, `cgroup`): the process was gone,
    /// had exec'd another program, or did not answer in time. Audit events only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub sock_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// The socket option or control message refused (`IPV6_RTHDR`), for
    /// reason `routing-option`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    pub verdict: &'static str,
    pub reason: &'static str,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<serde_json::Value>,
    /// `--stack`: the calling thread's stack, innermost frame first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<Vec<crate::stack::Frame>>,
    /// `--stack`: why there is no stack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_error: Option<String>,
    /// `--core-on-leak`: the core file of the leaking process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub core: Option<String>,
    /// `--core-on-leak`: why there is no core file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub core_error: Option<String>,
    /// The stack as copied while the call was held, until it is symbolized.
    #[serde(skip)]
    pub captured: Option<std::sync::Arc<crate::stack::capture::Captured>>,
}

impl Event {
    /// A new event for a decision; the reporter fills in `seq`.
    pub fn new(syscall: &'static str, tid: u32, decision: Decision, action: Action) -> Self {
        Event {
            schema: SCHEMA,
            seq: 0,
            ts: now_rfc3339(),
            source: "seccomp",
            syscall,
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
            },
            reason: decision.reason.as_str(),
            action,
            errno: None,
            kernel: None,
            stack: None,
            stack_error: None,
            core: None,
            core_error: None,
            captured: None,
        }
    }

    pub fn with_process(mut self, info: ProcessInfo) -> Self {
        self.pid = info.pid;
        self.comm = info.comm;
        self.exe = info.exe;
        self.argv = info.argv;
        self
    }

    pub fn is_leak(&self) -> bool {
        self.verdict == "leak"
    }
}

fn now_rfc3339() -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
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
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
    }
}
