//! What a run attacked over its report file left behind (the red teams on the kept report): its
//! exit, streams, and the report as it is found at its path afterwards, with the bar each
//! attack must meet.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Output, Stdio};

use crate::unpriv::NOBODY;

/// How the report at its path is read after the run.
#[derive(Debug, Clone, Copy)]
pub enum Reader {
    /// By the test (root), when the path names a regular file.
    Test,
    /// By a new process of nobody's (`cat`): no fds but stdio, its own `/proc/self`, the path
    /// resolved from `/`, as a user's shell or a CI step reads it.
    Fresh,
}

/// What one run left behind.
pub struct Ran {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The report at its path, as `Reader` found it.
    pub report: Option<String>,
}

impl Ran {
    pub fn collect(out: Output, report: &str, reader: Reader) -> Ran {
        Ran {
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
            report: read(report, reader),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "exit {:?} signal {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- report at its path ---\n{}",
            self.code,
            self.signal,
            self.stdout,
            self.stderr,
            self.report.as_deref().unwrap_or("(cannot be read there)")
        )
    }

    /// The report's lines that parse as JSON.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let text = self.report.as_deref().unwrap_or("");
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Event lines of the report at its path that say `"verdict":"leak"`.
    pub fn leak_lines(&self) -> usize {
        self.lines().iter().filter(|v| v.get("verdict").and_then(|v| v.as_str()) == Some("leak")).count()
    }

    /// `report_altered` in a summary of the report at its path.
    pub fn says_altered(&self) -> bool {
        self.lines().iter().any(|v| {
            v.get("summary").and_then(|s| s.get("report_altered")).and_then(|a| a.as_bool()) == Some(true)
        })
    }

    /// A warning or error of sockstrace's about the report file on stderr.
    pub fn warned(&self) -> bool {
        self.stderr.lines().any(|l| {
            (l.starts_with("sockstrace: warning:") || l.starts_with("sockstrace: error:"))
                && l.contains("report")
        })
    }

    /// The bar: the leak's event in the report at its path; or a warning or error about the
    /// report together with a failing exit or `report_altered` in the summary at the path.
    pub fn leak_kept_or_said(&self) -> bool {
        let said = self.warned() && (self.code.is_some_and(|c| c != 0) || self.says_altered());
        self.leak_lines() >= 1 || said
    }

    /// [`Ran::leak_kept_or_said`], asserted, once `tried` shows the leak was tried.
    pub fn assert_leak_kept_or_said(&self, attack: &str, tried: bool) {
        assert!(tried, "{attack}: the leak was not tried (or not refused)\n{}", self.describe());
        assert!(
            self.leak_kept_or_said(),
            "{attack}: the report at its path lacks the leak (leak lines {}, warned {}, exit {:?}, \
             report_altered {})\n{}",
            self.leak_lines(),
            self.warned(),
            self.code,
            self.says_altered(),
            self.describe()
        );
    }
}

fn read(path: &str, reader: Reader) -> Option<String> {
    match reader {
        Reader::Test => match std::fs::metadata(path) {
            Ok(m) if m.is_file() => std::fs::read_to_string(path).ok(),
            _ => None,
        },
        Reader::Fresh => {
            let out = Command::new("setpriv")
                .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into()])
                .args(["cat", "--", path])
                .current_dir("/")
                .stdin(Stdio::null())
                .output()
                .ok()?;
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        }
    }
}
