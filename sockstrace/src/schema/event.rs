//! One event line of the `--report` contract (schema 1).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Timestamp;

/// The schema version written in every line.
pub const SCHEMA: u32 = 1;

/// A name the writer takes from its own constants (`"connect"`, `"direct-tcp"`) without
/// copying, and a reader owns.
pub type Name = Cow<'static, str>;

/// What sockstrace did about a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allowed,
    Logged,
    Blocked,
    Killed,
    /// Sent through the proxy instead (`--on-leak socksify`).
    Socksified,
    /// Read only: an action a later version writes and this one does not know.
    #[serde(other)]
    Unknown,
}

impl Action {
    /// Whether the program's own call goes ahead as it asked.
    pub fn lets_through(self) -> bool {
        matches!(self, Action::Allowed | Action::Logged)
    }

    /// The report's name of the action.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allowed => "allowed",
            Action::Logged => "logged",
            Action::Blocked => "blocked",
            Action::Killed => "killed",
            Action::Socksified => "socksified",
            Action::Unknown => "unknown",
        }
    }
}

/// One frame of a leak's stack (`run --stack`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The address in the process (`0x...`): the instruction pointer for the
    /// innermost frame, a return address for the others.
    pub pc: String,
    /// The file mapped there (`[vdso]`, ... for memory of no file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// The address in the module's own address space (what `addr2line -e MODULE` takes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

/// One decision, as a line of the report. Fields are written in this order; the empty ones
/// are left out. Reading ignores fields it does not know and defaults the ones older
/// versions did not write (`seq`, `source`, `tid`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub schema: u32,
    /// 1, 2, ... in file order (0: not written).
    #[serde(default)]
    pub seq: u64,
    pub ts: Timestamp,
    /// `seccomp` or `kernel` (empty: not written).
    #[serde(default)]
    pub source: Name,
    pub syscall: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The parent's pid, for audit events (from /proc, or the kernel's process record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    /// The calling thread (0: not written).
    #[serde(default)]
    pub tid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// The process's cgroup v2 path (`/proc/PID/cgroup`), for audit events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Process fields that could not be read (`exe`, `argv`, `cgroup`): the process was gone,
    /// had exec'd another program, or did not answer in time. Audit events only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub sock_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// The socket option or control message refused (`IPV6_RTHDR`), for
    /// reason `routing-option`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    /// `allowed` or `leak`.
    pub verdict: Name,
    pub reason: Name,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// What the eBPF side contributed (`cgroup_id`, `netns_cookie`, `uid`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Value>,
    /// `--stack`: the calling thread's stack, innermost frame first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<Vec<Frame>>,
    /// `--stack`: why there is no stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_error: Option<String>,
    /// `--core-on-leak`: the core file of the leaking process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<String>,
    /// `--core-on-leak`: why there is no core file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_error: Option<String>,
}

/// The fields every event has, with values that read: a base to try one field on.
const PROBE: &str =
    r#"{"schema":1,"ts":"1970-01-01T00:00:00Z","syscall":"-","verdict":"-","reason":"-","action":"allowed"}"#;

impl Event {
    pub fn is_leak(&self) -> bool {
        self.verdict == "leak"
    }

    /// Reads an event from a line's object, or says why it is none, naming the field at
    /// fault (`` `pid`: invalid value: integer `-1`, expected u32 ``, ``missing field `ts` ``).
    pub fn from_object(fields: &Map<String, Value>) -> Result<Event, String> {
        let err = match Event::deserialize(&Value::Object(fields.clone())) {
            Ok(event) => return Ok(event),
            Err(err) => err,
        };
        // serde does not say which field failed: try each on a base that reads.
        let Ok(Value::Object(probe)) = serde_json::from_str::<Value>(PROBE) else {
            return Err(err.to_string());
        };
        for (name, value) in fields {
            let mut one = probe.clone();
            one.insert(name.clone(), value.clone());
            if let Err(e) = Event::deserialize(&Value::Object(one)) {
                return Err(format!("`{name}`: {e}"));
            }
        }
        Err(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn reads_what_older_versions_wrote_and_ignores_what_later_ones_add() {
        let e = Event::from_object(&object(
            r#"{"schema":1,"ts":"2026-01-01T00:00:00Z","syscall":"connect","verdict":"leak","reason":"direct-tcp","action":"blocked","future":{"x":1}}"#,
        ))
        .unwrap();
        assert_eq!((e.seq, e.source.as_ref(), e.tid, e.pid), (0, "", 0, None));
        assert!(e.is_leak() && e.missing.is_empty() && e.kernel.is_none());
        assert_eq!(e.action, Action::Blocked);
    }

    #[test]
    fn an_action_of_a_later_version_reads_as_unknown() {
        let e = Event::from_object(&object(
            r#"{"schema":1,"ts":"2026-01-01T00:00:00Z","syscall":"connect","verdict":"leak","reason":"r","action":"quarantined"}"#,
        ))
        .unwrap();
        assert_eq!(e.action, Action::Unknown);
    }

    #[test]
    fn says_which_field_is_wrong() {
        let why = |text: &str| Event::from_object(&object(text)).unwrap_err();
        let base =
            r#""schema":1,"ts":"2026-01-01T00:00:00Z","syscall":"connect","verdict":"leak","reason":"r""#;
        assert_eq!(why(&format!("{{{base}}}")), "missing field `action`");
        let pid = why(&format!(r#"{{{base},"action":"logged","pid":-1}}"#));
        assert!(pid.starts_with("`pid`: "), "{pid}");
        let argv = why(&format!(r#"{{{base},"action":"logged","argv":[1]}}"#));
        assert!(argv.starts_with("`argv`: "), "{argv}");
        let ts = why(
            r#"{"schema":1,"ts":"yesterday","syscall":"c","verdict":"leak","reason":"r","action":"logged"}"#,
        );
        assert!(ts.starts_with("`ts`: ") && ts.contains("RFC 3339"), "{ts}");
    }
}
