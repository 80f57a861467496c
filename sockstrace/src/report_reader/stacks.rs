//! Leaks grouped by where in the program they came from (`run --stack`):
//! one row per innermost frame of the program's own code ("17 leaks from
//! stun_send in libwebrtc.so"), with the callers of its first leak.

use std::collections::BTreeSet;

use crate::stack::{describe, own_frames, Frame};

use super::read::Record;

/// Callers shown under a row.
const CALLERS: usize = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRow {
    /// `function in module` (or `module+offset`): the grouping key.
    pub site: String,
    pub leaks: u64,
    /// The first leak's own frames, innermost first, as people read them.
    pub frames: Vec<String>,
    pub destinations: BTreeSet<String>,
    pub programs: BTreeSet<String>,
    /// Core files written for these leaks.
    pub cores: Vec<String>,
}

/// Rows of the leaks that carry a stack, most leaks first; and how many
/// leaks had none (`stack_error`) though the run took stacks.
pub fn build(events: &[Record]) -> (Vec<StackRow>, u64) {
    let mut rows: Vec<StackRow> = Vec::new();
    let mut without = 0;
    for e in events.iter().filter(|e| e.is_leak()) {
        let Some(stack) = e.stack.as_ref().filter(|s| !s.is_empty()) else {
            without += u64::from(e.stack_error.is_some());
            continue;
        };
        let own = own_frames(stack);
        let site = site(&own[0]);
        let row = match rows.iter().position(|r| r.site == site) {
            Some(i) => &mut rows[i],
            None => {
                let frames = own.iter().take(CALLERS + 1).map(describe).collect();
                rows.push(StackRow {
                    site,
                    leaks: 0,
                    frames,
                    destinations: BTreeSet::new(),
                    programs: BTreeSet::new(),
                    cores: Vec::new(),
                });
                rows.last_mut().expect("just pushed")
            }
        };
        row.leaks += 1;
        row.destinations.insert(e.target());
        row.programs.insert(e.program());
        if let Some(core) = &e.core {
            row.cores.push(core.to_string());
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.leaks));
    (rows, without)
}

/// The grouping key of a frame: its function and module, whatever the line.
fn site(f: &Frame) -> String {
    let module = f.module.as_deref().map(|m| m.rsplit('/').next().unwrap_or(m)).unwrap_or("?");
    match &f.function {
        Some(function) => format!("{function} in {module}"),
        None => format!("{module}+{}", f.offset.as_deref().unwrap_or(&f.pc)),
    }
}

/// A few items, then "and N more".
pub fn list(items: &BTreeSet<String>) -> String {
    let shown: Vec<&str> = items.iter().take(3).map(String::as_str).collect();
    match items.len() {
        n if n > 3 => format!("{} and {} more", shown.join(", "), n - 3),
        _ => shown.join(", "),
    }
}

/// The rows as text: a table, and under it each row's callers.
pub fn render(rows: &[StackRow], without: u64) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| vec![r.leaks.to_string(), r.site.clone(), list(&r.destinations), list(&r.programs)])
        .collect();
    let mut out =
        super::table::columns(&["LEAKS", "FROM", "DESTINATIONS", "PROGRAMS"], &[true], &cells, false);
    for r in rows {
        out.push_str(&format!("\n{} leak(s) from {}:\n", r.leaks, super::table::visible(&r.site)));
        for (i, frame) in r.frames.iter().enumerate() {
            let how = if i == 0 { "at" } else { "by" };
            out.push_str(&format!("    {how} {}\n", super::table::visible(frame)));
        }
        for core in &r.cores {
            out.push_str(&format!("    core {}\n", super::table::visible(core)));
        }
    }
    if without > 0 {
        out.push_str(&format!("\n{without} leak(s) without a stack (see their stack_error)\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::read::parse_str;
    use super::*;

    fn leak(seq: u32, pid: u32, dst: &str, inner: &str, line: u32) -> String {
        format!(
            r#"{{"schema":1,"seq":{seq},"ts":"2026-01-01T00:00:00Z","syscall":"sendto","pid":{pid},"comm":"app","protocol":"udp","dst":"{dst}","verdict":"leak","reason":"direct-udp","action":"blocked","stack":[{{"pc":"0x1","module":"/lib/libc.so.6","offset":"0x1","function":"__libc_sendto"}},{{"pc":"0x2","module":"/opt/libwebrtc.so","offset":"0x2","function":"{inner}","file":"stun.c","line":{line}}},{{"pc":"0x3","module":"/opt/app","offset":"0x3","function":"main"}}]}}"#
        )
    }

    #[test]
    fn groups_by_the_innermost_own_frame() {
        let text = [
            leak(1, 7, "1.2.3.4:3478", "stun_send", 10),
            leak(2, 7, "1.2.3.5:3478", "stun_send", 12),
            leak(3, 8, "1.2.3.4:3478", "stun_send", 10),
            leak(4, 8, "5.6.7.8:53", "dns_query", 3),
            r#"{"schema":1,"seq":5,"ts":"2026-01-01T00:00:00Z","syscall":"connect","pid":9,"verdict":"leak","reason":"direct-tcp","action":"blocked","stack_error":"the thread was running"}"#.to_string(),
        ]
        .join("\n");
        let report = parse_str(&text);
        let (rows, without) = build(&report.events);
        assert_eq!(without, 1);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].site, "stun_send in libwebrtc.so");
        assert_eq!(rows[0].leaks, 3);
        assert_eq!(rows[0].destinations.len(), 2);
        assert_eq!(rows[0].programs.len(), 2);
        assert_eq!(rows[0].frames, vec!["stun_send (stun.c:10)", "main in app"]);
        assert_eq!(rows[1].site, "dns_query in libwebrtc.so");
        let text = render(&rows, without);
        assert!(text.contains("3 leak(s) from stun_send in libwebrtc.so:"), "{text}");
        assert!(text.contains("    at stun_send (stun.c:10)\n    by main in app\n"), "{text}");
        assert!(text.contains("1 leak(s) without a stack"), "{text}");
    }
}
