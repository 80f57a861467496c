//! The last line of a report: `{"schema":1,"summary":{...}}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::SCHEMA;

/// The summary line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryLine {
    pub schema: u32,
    pub summary: RunSummary,
}

/// What the run did, in counts. The counts are always written; a reader finds them absent
/// (`None`) only in files sockstrace did not write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Decisions (events written or not).
    #[serde(default)]
    pub events: Option<u64>,
    /// Allowed decisions, refused UDP connects and denied system calls apart.
    #[serde(default)]
    pub allowed: Option<u64>,
    #[serde(default)]
    pub leaks: Option<u64>,
    #[serde(default)]
    pub blocked: Option<u64>,
    #[serde(default)]
    pub logged: Option<u64>,
    #[serde(default)]
    pub killed: Option<u64>,
    #[serde(default)]
    pub socksified: Option<u64>,
    /// Calls refused for malformed arguments, as the kernel would refuse them.
    #[serde(default)]
    pub invalid: Option<u64>,
    /// Datagram connects refused without a leak (reason `udp-connect-refused`).
    #[serde(default)]
    pub udp_connects_refused: Option<u64>,
    /// System calls outside `--syscalls`, denied: how often, by name.
    #[serde(default)]
    pub syscalls_denied: BTreeMap<String, u64>,
    /// The configuration file read (written as null when none).
    #[serde(default)]
    pub config: Option<String>,
    /// The program's exit status (`run`; 0 for `audit`).
    #[serde(default)]
    pub exit_status: Option<i32>,
    /// The state of each interception layer, in words, by name (`seccomp`, `kernel`, and
    /// `fence`, `program`, `syscalls` in `run`).
    #[serde(default)]
    pub layers: BTreeMap<String, String>,
    /// Events the kernel's ring buffer had to drop (null when the layer was off).
    #[serde(default)]
    pub kernel_lost_events: Option<u64>,
    /// What the `--dns proxy` resolver answered.
    #[serde(default)]
    pub dns: Option<Value>,
    /// UDP through the proxy (`--on-leak socksify`).
    #[serde(default)]
    pub udp_proxy: Option<Value>,
    /// Leaks by destination, protocol, reason, call and program.
    #[serde(default)]
    pub leak_table: Vec<LeakRow>,
    /// Other keys (`audit` adds `audit`, `by_process`, `exempt`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One row of `leak_table`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakRow {
    pub comm: String,
    pub count: u64,
    pub dst: String,
    pub protocol: String,
    pub reason: String,
    pub syscall: String,
}

impl SummaryLine {
    pub fn new(summary: RunSummary) -> Self {
        SummaryLine { schema: SCHEMA, summary }
    }

    /// The line as written: a JSON object with its keys in order of name, `extra` among them.
    pub fn to_json(&self) -> Value {
        // Through `Value`, whose objects sort their keys: the order a report has always had.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}
