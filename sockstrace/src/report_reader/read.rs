//! Reads a `--report` file (JSON Lines) tolerantly: every line is either an
//! event, the summary, blank, or skipped with its line number and why. Nothing
//! in the file can make this panic; only an I/O error fails the whole read.

use std::io::{self, BufRead};

use serde_json::{Map, Value};

/// The schema this reader understands.
pub const SCHEMA: u64 = 1;

/// One event line, with the fields the report uses, and the whole object for
/// showing every field (including ones this version does not know).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// 1-based line number in the file.
    pub line: usize,
    pub seq: Option<u64>,
    /// The timestamp as written.
    pub ts: String,
    /// The timestamp as nanoseconds since the Unix epoch (UTC).
    pub time_ns: i128,
    pub source: Option<String>,
    pub syscall: String,
    pub pid: Option<u64>,
    pub tid: Option<u64>,
    pub comm: Option<String>,
    pub exe: Option<String>,
    pub argv: Option<Vec<String>>,
    pub protocol: Option<String>,
    pub dst: Option<String>,
    pub local: Option<String>,
    pub verdict: String,
    pub reason: String,
    pub action: String,
    /// Every field of the line (sorted by name).
    pub fields: Map<String, Value>,
}

impl Record {
    pub fn is_leak(&self) -> bool {
        self.verdict == "leak"
    }

    /// `comm[pid]`, with `?` for what the event does not say.
    pub fn program(&self) -> String {
        let comm = self.comm.as_deref().unwrap_or("?");
        match self.pid.or(self.tid) {
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
pub struct RunSummary {
    pub line: usize,
    pub fields: Map<String, Value>,
}

impl RunSummary {
    pub fn count(&self, name: &str) -> Option<u64> {
        self.fields.get(name).and_then(Value::as_u64)
    }

    /// The interception layers, in words, as (name, state).
    pub fn layers(&self) -> Vec<(String, String)> {
        let Some(Value::Object(layers)) = self.fields.get("layers") else { return Vec::new() };
        layers.iter().map(|(name, state)| (name.clone(), value_text(state))).collect()
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
    pub summary: Option<RunSummary>,
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
            report.summary = Some(summary);
        }
        Err(why) => report.skipped.push(Skipped { line, why }),
    }
}

enum Line {
    Event(Box<Record>),
    Summary(RunSummary),
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
        Some(v) if v.as_u64() == Some(SCHEMA) => {}
        Some(v) => return Err(format!("schema {v} is not supported (this version reads schema {SCHEMA})")),
    }
    let mut fields = fields;
    if let Some(summary) = fields.remove("summary") {
        let Value::Object(summary) = summary else { return Err("`summary` is not an object".to_owned()) };
        return Ok(Line::Summary(RunSummary { line, fields: summary }));
    }
    record(line, fields).map(|r| Line::Event(Box::new(r)))
}

fn record(line: usize, fields: Map<String, Value>) -> Result<Record, String> {
    let ts = required_str(&fields, "ts")?;
    let time_ns = parse_rfc3339(&ts).ok_or_else(|| format!("`ts` is not an RFC 3339 time: {ts:?}"))?;
    Ok(Record {
        line,
        seq: optional_u64(&fields, "seq")?,
        time_ns,
        source: optional_str(&fields, "source")?,
        syscall: required_str(&fields, "syscall")?,
        pid: optional_u64(&fields, "pid")?,
        tid: optional_u64(&fields, "tid")?,
        comm: optional_str(&fields, "comm")?,
        exe: optional_str(&fields, "exe")?,
        argv: optional_strings(&fields, "argv")?,
        protocol: optional_str(&fields, "protocol")?,
        dst: optional_str(&fields, "dst")?,
        local: optional_str(&fields, "local")?,
        verdict: required_str(&fields, "verdict")?,
        reason: required_str(&fields, "reason")?,
        action: required_str(&fields, "action")?,
        ts,
        fields,
    })
}

fn required_str(fields: &Map<String, Value>, name: &str) -> Result<String, String> {
    optional_str(fields, name)?.ok_or_else(|| format!("no `{name}` field"))
}

/// A field that may be absent (or null), but is a string when present.
fn optional_str(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{name}` is not a string")),
    }
}

fn optional_u64(fields: &Map<String, Value>, name: &str) -> Result<Option<u64>, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| format!("`{name}` is not a non-negative integer")),
    }
}

fn optional_strings(fields: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, String> {
    let bad = || format!("`{name}` is not a list of strings");
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

/// A JSON value as words: strings bare, everything else as JSON.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` to nanoseconds since the
/// Unix epoch. Fractions beyond nanoseconds are truncated.
pub fn parse_rfc3339(text: &str) -> Option<i128> {
    let b = text.as_bytes();
    if b.len() < 20 || !b.is_ascii() {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        digits.iter().try_fold(0i64, |acc, d| acc.checked_mul(10)?.checked_add(i64::from(d - b'0')))
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // 60 is a leap second; it sorts after :59 as it should.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..9 {
            nanos *= 10;
        }
    }
    let offset_seconds = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let magnitude = oh * 3600 + om * 60;
            if *sign == b'+' {
                magnitude
            } else {
                -magnitude
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(i128::from(seconds) * 1_000_000_000 + i128::from(nanos))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2026-01-02T03:04:05.123Z`: a time in UTC, to the millisecond.
pub fn format_utc_millis(time_ns: i128) -> String {
    let (days, rest) = split_days(time_ns);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{}Z", time_of_day(rest))
}

/// `03:04:05.123`: the UTC time of day, to the millisecond.
pub fn format_time_of_day(time_ns: i128) -> String {
    time_of_day(split_days(time_ns).1)
}

fn split_days(time_ns: i128) -> (i64, i128) {
    const DAY: i128 = 86_400 * 1_000_000_000;
    let days = i64::try_from(time_ns.div_euclid(DAY)).unwrap_or(0);
    (days, time_ns.rem_euclid(DAY))
}

fn time_of_day(ns_of_day: i128) -> String {
    let millis = ns_of_day / 1_000_000;
    let (h, m, s, ms) = (millis / 3_600_000, millis / 60_000 % 60, millis / 1000 % 60, millis % 1000);
    format!("{h:02}:{m:02}:{s:02}.{ms:03}")
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
        assert_eq!(e.seq, Some(3));
        assert_eq!(e.syscall, "connect");
        assert_eq!(e.pid, Some(12280));
        assert_eq!(e.program(), "curl[12280]");
        assert_eq!(e.target(), "127.0.0.2:18080");
        assert_eq!(e.argv.as_deref().map(<[String]>::len), Some(3));
        assert!(e.is_leak());
        assert_eq!(e.action, "blocked");
        assert_eq!(e.fields["kernel"]["cgroup_id"], 4186);
        let s = report.summary.expect("summary");
        assert_eq!(s.line, 2);
        assert_eq!(s.count("leaks"), Some(1));
        assert_eq!(s.fields["exit_status"], 7);
        assert_eq!(s.layers(), vec![("kernel".into(), "off".into()), ("seccomp".into(), "on".into())]);
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
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999999999Z"), Some(-1));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.1234567891Z"), Some(123_456_789));
        // What `time` writes: nanoseconds with trailing zeros dropped.
        let a = parse_rfc3339("2026-11-29T01:25:38.25071734Z").unwrap();
        let b = parse_rfc3339("2026-11-29T01:25:38.250717340Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(format_utc_millis(a), "2026-11-29T01:25:38.250Z");
        assert_eq!(format_time_of_day(a), "01:25:38.250");
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z").map(|t| t / 1_000_000_000), Some(1_709_164_800));
        for bad in [
            "",
            "2026-11-29",
            "2026-11-29T01:25:38",
            "2026-11-29T01:25:38.Z",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T01:25:38+1:00",
            "2026-11-29T01:25:38Zjunk",
            "2026-11-29T01:25:3éZ",
            "+026-11-29T01:25:38Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000, -1, 0, 1, 59, 365, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
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
