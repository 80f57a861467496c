//! Reads a `--report` file (JSON Lines) tolerantly: every line is either an
//! event, the summary, blank, or skipped with its line number and why. Nothing
//! in the file can make this panic; only an I/O error fails the whole read.
//! The lines are the schema's ([`sockstrace::schema`]), as the run wrote them.

use std::io::{self, BufRead};
use std::ops::Deref;

use serde::Deserialize;
use serde_json::{Map, Value};
use sockstrace::schema::{Action, Event, RunSummary, Timestamp, SCHEMA};

/// One event line: the event, and the whole object for showing every field
/// (including ones this version does not know).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// 1-based line number in the file.
    pub line: usize,
    pub event: Event,
    /// The timestamp as nanoseconds since the Unix epoch (UTC).
    pub time_ns: i128,
    /// Every field of the line (sorted by name).
    pub fields: Map<String, Value>,
}

impl Deref for Record {
    type Target = Event;
    fn deref(&self) -> &Event {
        &self.event
    }
}

impl Record {
    /// The action as written (a later version's, this one does not know, too).
    pub fn action_name(&self) -> &str {
        match self.action {
            Action::Unknown => self.fields.get("action").and_then(Value::as_str).unwrap_or("unknown"),
            known => known.as_str(),
        }
    }

    /// The pid, or the thread's id when the event has no pid.
    pub fn pid_or_tid(&self) -> Option<u32> {
        self.pid.or((self.tid != 0).then_some(self.tid))
    }

    /// `comm[pid]`, with `?` for what the event does not say.
    pub fn program(&self) -> String {
        let comm = self.comm.as_deref().unwrap_or("?");
        match self.pid_or_tid() {
            Some(pid) => format!("{comm}[{pid}]"),
            None => format!("{comm}[?]"),
        }
    }

    /// The destination, or the local address for calls that have none (bind, listen).
    pub fn target(&self) -> String {
        match (&self.dst, &self.local) {
            (Some(dst), _) => dst.clone(),
            (None, Some(local)) => format!("{local} (local)"),
            (None, None) => "-".to_owned(),
        }
    }
}

/// The final `{"schema":1,"summary":{...}}` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub line: usize,
    pub run: RunSummary,
}

impl Deref for Summary {
    type Target = RunSummary;
    fn deref(&self) -> &RunSummary {
        &self.run
    }
}

/// A line that is neither an event nor the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub why: String,
}

/// Everything read from one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub events: Vec<Record>,
    /// The last summary line, if any.
    pub summary: Option<Summary>,
    /// How many summary lines there were (more than one: files were concatenated).
    pub summaries: usize,
    pub skipped: Vec<Skipped>,
    /// Lines in the file, blank ones included.
    pub lines: usize,
}

impl Report {
    /// Whether nothing in the file was recognized.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.summary.is_none()
    }
}

/// Reads a whole report. Lines need not be UTF-8: a bad one is skipped like any other.
pub fn parse(mut reader: impl BufRead) -> io::Result<Report> {
    let mut report = Report::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        report.lines += 1;
        take_line(&mut report, &buf);
    }
    Ok(report)
}

/// Reads a report held in memory.
#[cfg(test)]
pub fn parse_str(text: &str) -> Report {
    parse(text.as_bytes()).expect("reading from memory cannot fail")
}

fn take_line(report: &mut Report, bytes: &[u8]) {
    let line = report.lines;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    match classify(line, bytes) {
        Ok(Line::Event(record)) => report.events.push(*record),
        Ok(Line::Summary(summary)) => {
            report.summaries += 1;
            report.summary = Some(*summary);
        }
        Err(why) => report.skipped.push(Skipped { line, why }),
    }
}

enum Line {
    Event(Box<Record>),
    Summary(Box<Summary>),
}

fn classify(line: usize, bytes: &[u8]) -> Result<Line, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let what = if std::str::from_utf8(bytes).is_err() { "not UTF-8 text" } else { "not JSON" };
        // The error counts lines within this one line; only the column means something.
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or_default();
        if e.is_eof() {
            format!("{what} (cut short: {message})")
        } else {
            format!("{what} ({message} at column {})", e.column())
        }
    })?;
    let Value::Object(fields) = value else { return Err("not a JSON object".to_owned()) };
    match fields.get("schema") {
        None => return Err("no `schema` field".to_owned()),
        Some(v) if v.as_u64() == Some(u64::from(SCHEMA)) => {}
        Some(v) => return Err(format!("schema {v} is not supported (this version reads schema {SCHEMA})")),
    }
    if let Some(summary) = fields.get("summary") {
        if !summary.is_object() {
            return Err("`summary` is not an object".to_owned());
        }
        let run = RunSummary::deserialize(summary).map_err(|e| format!("`summary`: {e}"))?;
        return Ok(Line::Summary(Box::new(Summary { line, run })));
    }
    let event = Event::from_object(&fields)?;
    let time_ns = event.ts.unix_nanos();
    Ok(Line::Event(Box::new(Record { line, event, time_ns, fields })))
}

/// A JSON value as words: strings bare, everything else as JSON.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `2026-01-02T03:04:05.123Z`: a time in UTC, to the millisecond.
pub fn format_utc_millis(time_ns: i128) -> String {
    Timestamp::from_unix_nanos(time_ns).map_or_else(|| "?".to_owned(), Timestamp::utc_millis)
}

/// `03:04:05.123`: the UTC time of day, to the millisecond.
pub fn format_time_of_day(time_ns: i128) -> String {
    Timestamp::from_unix_nanos(time_ns).map_or_else(|| "?".to_owned(), Timestamp::time_of_day_millis)
}

/// A duration in nanoseconds, in the unit that suits it: `850 ns`, `12.3 ms`, `4.20 s`, `3 min 5 s`.
pub fn format_duration(ns: i128) -> String {
    let ns = ns.max(0);
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} ms", ns as f64 / 1e6),
        1_000_000_000..=119_999_999_999 => format!("{:.2} s", ns as f64 / 1e9),
        _ => {
            let s = ns / 1_000_000_000;
            if s < 7200 {
                format!("{} min {} s", s / 60, s % 60)
            } else {
                format!("{} h {} min", s / 3600, s / 60 % 60)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"schema":1,"seq":3,"ts":"2026-11-29T01:25:38.228556662Z","source":"seccomp","syscall":"connect","pid":12280,"tid":12281,"comm":"curl","exe":"/usr/bin/curl","argv":["curl","-sS","http://127.0.0.2:18080/"],"fd":5,"cookie":48042,"family":"inet","type":"stream","protocol":"tcp","dst":"127.0.0.2:18080","verdict":"leak","reason":"direct-tcp","action":"blocked","errno":1,"kernel":{"cgroup_id":4186,"tcp_states":["SYN_SENT"]}}"#;
    const SUMMARY: &str = r#"{"schema":1,"summary":{"allowed":0,"blocked":1,"events":1,"exit_status":7,"leaks":1,"layers":{"kernel":"off","seccomp":"on"}}}"#;

    #[test]
    fn reads_an_event_and_the_summary() {
        let report = parse_str(&format!("{EVENT}\n{SUMMARY}\n"));
        assert_eq!(report.lines, 2);
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        let [e] = report.events.as_slice() else { panic!("one event expected") };
        assert_eq!(e.line, 1);
        assert_eq!(e.seq, 3);
        assert_eq!(e.syscall, "connect");
        assert_eq!(e.pid, Some(12280));
        assert_eq!(e.program(), "curl[12280]");
        assert_eq!(e.target(), "127.0.0.2:18080");
        assert_eq!(e.argv.as_deref().map(<[String]>::len), Some(3));
        assert!(e.is_leak());
        assert_eq!(e.action_name(), "blocked");
        assert_eq!(e.fields["kernel"]["cgroup_id"], 4186);
        let s = report.summary.expect("summary");
        assert_eq!(s.line, 2);
        assert_eq!(s.leaks, Some(1));
        assert_eq!(s.exit_status, Some(7));
        let layers: Vec<_> = s.layers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(layers, vec![("kernel", "off"), ("seccomp", "on")]);
    }

    #[test]
    fn skips_garbage_with_line_numbers_and_never_panics() {
        let text = [
            EVENT,
            "",
            "not json at all",
            r#"{"schema":1,"seq":4"#,
            "[1,2,3]",
            r#"{"seq":1}"#,
            r#"{"schema":2,"ts":"x"}"#,
            r#"{"schema":1,"ts":"2026-11-29T01:25:38Z","syscall":"connect","verdict":"leak","reason":"r"}"#,
            r#"{"schema":1,"ts":"yesterday","syscall":"connect","verdict":"leak","reason":"r","action":"logged"}"#,
            r#"{"schema":1,"ts":"2026-11-29T01:25:38Z","syscall":"connect","verdict":"leak","reason":"r","action":"logged","pid":-1}"#,
            r#"{"schema":1,"ts":"2026-11-29T01:25:38Z","syscall":"connect","verdict":"leak","reason":"r","action":"logged","argv":[1]}"#,
            r#"{"schema":1,"summary":3}"#,
            "   ",
            SUMMARY,
        ]
        .join("\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\n\xff\xfe{}\n{\"schema\":1,\"summary\":{\"events\":9");
        let report = parse(bytes.as_slice()).unwrap();
        assert_eq!(report.lines, 16);
        assert_eq!(report.events.len(), 1);
        assert_eq!(report.summary.as_ref().map(|s| s.line), Some(14));
        let lines: Vec<usize> = report.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 16]);
        let why = |line: usize| report.skipped.iter().find(|s| s.line == line).unwrap().why.clone();
        assert_eq!(why(3), "not JSON (expected ident at column 2)");
        assert_eq!(why(4), "not JSON (cut short: EOF while parsing an object)");
        assert!(why(5).contains("not a JSON object"), "{}", why(5));
        assert!(why(6).contains("schema"), "{}", why(6));
        assert!(why(7).contains("schema 2"), "{}", why(7));
        assert!(why(8).contains("`action`"), "{}", why(8));
        assert!(why(9).contains("RFC 3339"), "{}", why(9));
        assert!(why(10).contains("`pid`"), "{}", why(10));
        assert!(why(11).contains("`argv`"), "{}", why(11));
        assert!(why(12).contains("`summary`"), "{}", why(12));
        assert!(why(15).starts_with("not UTF-8"), "{}", why(15));
    }

    #[test]
    fn an_empty_file_is_empty() {
        let report = parse_str("");
        assert!(report.is_empty());
        assert_eq!(report.lines, 0);
        assert!(parse_str("\n\n").is_empty());
    }

    #[test]
    fn keeps_the_last_of_several_summaries() {
        let report = parse_str(&format!("{SUMMARY}\n{EVENT}\n{SUMMARY}"));
        assert_eq!(report.summaries, 2);
        assert_eq!(report.summary.unwrap().line, 3);
    }

    #[test]
    fn target_and_program_fall_back() {
        let line = r#"{"schema":1,"ts":"2026-11-29T01:25:38Z","syscall":"bind","tid":9,"local":"0.0.0.0:80","verdict":"leak","reason":"inbound-bind","action":"blocked"}"#;
        let e = &parse_str(line).events[0];
        assert_eq!(e.target(), "0.0.0.0:80 (local)");
        assert_eq!(e.program(), "?[9]");
    }

    #[test]
    fn shows_times_in_utc_to_the_millisecond() {
        let e = &parse_str(EVENT).events[0];
        assert_eq!(format_utc_millis(e.time_ns), "2026-11-29T01:25:38.228Z");
        assert_eq!(format_time_of_day(e.time_ns), "01:25:38.228");
        let offset = r#"{"schema":1,"ts":"2026-11-29T02:25:38.5+01:00","syscall":"c","verdict":"leak","reason":"r","action":"logged"}"#;
        assert_eq!(parse_str(offset).events[0].time_ns, e.time_ns - 228_556_662 + 500_000_000);
    }

    #[test]
    fn formats_durations() {
        assert_eq!(format_duration(850), "850 ns");
        assert_eq!(format_duration(12_345_678), "12.3 ms");
        assert_eq!(format_duration(4_200_000_000), "4.20 s");
        assert_eq!(format_duration(185_000_000_000), "3 min 5 s");
        assert_eq!(format_duration(-5), "0 ns");
    }
}
