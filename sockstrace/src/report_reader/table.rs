//! Events aggregated into rows by destination and by process, with totals,
//! and their rendering as aligned plain-text columns. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use sockstrace::schema::Action;

use super::read::{format_time_of_day, Record};

/// One row per (destination, protocol, reason, verdict, action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestRow {
    pub dst: String,
    pub protocol: String,
    pub reason: String,
    pub verdict: String,
    pub action: String,
    pub count: u64,
    pub first_ns: i128,
    pub last_ns: i128,
    /// `comm[pid]` of each process, in the order first seen.
    pub programs: Vec<String>,
}

/// One row per process (pid and comm: an exec that changes comm starts a new row).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcRow {
    pub program: String,
    pub exe: Option<String>,
    pub argv: Option<Vec<String>>,
    pub events: u64,
    pub allowed: u64,
    pub leaks: u64,
    pub blocked: u64,
    pub logged: u64,
    pub socksified: u64,
    pub killed: u64,
    /// Distinct destinations it reached or tried.
    pub destinations: usize,
    pub first_ns: i128,
    pub last_ns: i128,
}

/// Counts over every event of the file (also with `--leaks-only`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Totals {
    pub events: u64,
    pub allowed: u64,
    pub leaks: u64,
    pub blocked: u64,
    pub logged: u64,
    pub socksified: u64,
    pub killed: u64,
    /// Events whose action this version does not know.
    pub other_action: u64,
    pub destinations: usize,
    pub leak_destinations: usize,
    pub processes: usize,
    pub leaking_processes: usize,
    pub first_ns: Option<i128>,
    pub last_ns: Option<i128>,
    /// Events in the rows (all of them, or the leaks only).
    pub shown: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tables {
    /// Leaks first, then by first time seen.
    pub by_destination: Vec<DestRow>,
    /// By first time seen.
    pub by_process: Vec<ProcRow>,
    pub totals: Totals,
}

/// The process rows added up: the tables' total line, in text and HTML alike.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcSums {
    pub events: u64,
    pub allowed: u64,
    pub leaks: u64,
    pub blocked: u64,
    pub logged: u64,
    pub socksified: u64,
    pub killed: u64,
    pub first_ns: Option<i128>,
    pub last_ns: Option<i128>,
}

impl Tables {
    pub fn process_sums(&self) -> ProcSums {
        let rows = &self.by_process;
        let sum = |f: fn(&ProcRow) -> u64| rows.iter().map(f).sum::<u64>();
        ProcSums {
            events: sum(|r| r.events),
            allowed: sum(|r| r.allowed),
            leaks: sum(|r| r.leaks),
            blocked: sum(|r| r.blocked),
            logged: sum(|r| r.logged),
            socksified: sum(|r| r.socksified),
            killed: sum(|r| r.killed),
            first_ns: rows.iter().map(|r| r.first_ns).min(),
            last_ns: rows.iter().map(|r| r.last_ns).max(),
        }
    }
}

/// Aggregates events; with `leaks_only` the rows hold leaks only, the totals still count everything.
pub fn build(events: &[Record], leaks_only: bool) -> Tables {
    let mut totals = Totals::default();
    let mut destinations = BTreeSet::new();
    let mut leak_destinations = BTreeSet::new();
    let mut processes = BTreeSet::new();
    let mut leaking_processes = BTreeSet::new();
    let mut by_dst: BTreeMap<[String; 5], DestRow> = BTreeMap::new();
    let mut by_proc: BTreeMap<(Option<u32>, String), (ProcRow, BTreeSet<String>)> = BTreeMap::new();

    for e in events {
        let target = e.target();
        let program = e.program();
        totals.events += 1;
        totals.first_ns = Some(totals.first_ns.map_or(e.time_ns, |t| t.min(e.time_ns)));
        totals.last_ns = Some(totals.last_ns.map_or(e.time_ns, |t| t.max(e.time_ns)));
        if e.is_leak() {
            totals.leaks += 1;
            leak_destinations.insert(target.clone());
            leaking_processes.insert(program.clone());
        } else {
            totals.allowed += 1;
        }
        match e.action {
            Action::Blocked => totals.blocked += 1,
            Action::Logged => totals.logged += 1,
            Action::Socksified => totals.socksified += 1,
            Action::Killed => totals.killed += 1,
            Action::Allowed => {}
            Action::Unknown => totals.other_action += 1,
        }
        destinations.insert(target.clone());
        processes.insert(program.clone());
        if leaks_only && !e.is_leak() {
            continue;
        }
        totals.shown += 1;

        let key = [
            target.clone(),
            e.protocol.clone().unwrap_or_else(|| "-".to_owned()),
            e.reason.to_string(),
            e.verdict.to_string(),
            e.action_name().to_owned(),
        ];
        let row = by_dst.entry(key).or_insert_with_key(|k| DestRow {
            dst: k[0].clone(),
            protocol: k[1].clone(),
            reason: k[2].clone(),
            verdict: k[3].clone(),
            action: k[4].clone(),
            count: 0,
            first_ns: e.time_ns,
            last_ns: e.time_ns,
            programs: Vec::new(),
        });
        row.count += 1;
        row.first_ns = row.first_ns.min(e.time_ns);
        row.last_ns = row.last_ns.max(e.time_ns);
        if !row.programs.contains(&program) {
            row.programs.push(program.clone());
        }

        let key = (e.pid_or_tid(), e.comm.clone().unwrap_or_default());
        let (row, targets) = by_proc.entry(key).or_insert_with(|| {
            let row = ProcRow {
                program: program.clone(),
                exe: e.exe.clone(),
                argv: e.argv.clone(),
                first_ns: e.time_ns,
                last_ns: e.time_ns,
                ..ProcRow::default()
            };
            (row, BTreeSet::new())
        });
        row.exe = row.exe.take().or_else(|| e.exe.clone());
        row.argv = row.argv.take().or_else(|| e.argv.clone());
        row.events += 1;
        if e.is_leak() {
            row.leaks += 1;
        } else {
            row.allowed += 1;
        }
        match e.action {
            Action::Blocked => row.blocked += 1,
            Action::Logged => row.logged += 1,
            Action::Socksified => row.socksified += 1,
            Action::Killed => row.killed += 1,
            Action::Allowed | Action::Unknown => {}
        }
        row.first_ns = row.first_ns.min(e.time_ns);
        row.last_ns = row.last_ns.max(e.time_ns);
        targets.insert(target);
    }

    totals.destinations = destinations.len();
    totals.leak_destinations = leak_destinations.len();
    totals.processes = processes.len();
    totals.leaking_processes = leaking_processes.len();

    let mut by_destination: Vec<DestRow> = by_dst.into_values().collect();
    by_destination
        .sort_by(|a, b| (b.verdict == "leak").cmp(&(a.verdict == "leak")).then(a.first_ns.cmp(&b.first_ns)));
    let mut by_process: Vec<ProcRow> = by_proc
        .into_values()
        .map(|(mut row, targets)| {
            row.destinations = targets.len();
            row
        })
        .collect();
    by_process.sort_by_key(|row| row.first_ns);
    Tables { by_destination, by_process, totals }
}

/// Widest a text cell gets before it is cut with `…`.
const MAX_CELL: usize = 60;

/// The destination table as aligned text, with a total line.
pub fn render_destinations(tables: &Tables) -> String {
    let rows = tables.by_destination.iter().map(|r| {
        vec![
            r.dst.clone(),
            r.protocol.clone(),
            r.reason.clone(),
            r.verdict.clone(),
            r.action.clone(),
            r.count.to_string(),
            format_time_of_day(r.first_ns),
            format_time_of_day(r.last_ns),
            programs_cell(&r.programs),
        ]
    });
    let mut rows: Vec<Vec<String>> = rows.collect();
    let programs: BTreeSet<&String> = tables.by_destination.iter().flat_map(|r| &r.programs).collect();
    let first = tables.by_destination.iter().map(|r| r.first_ns).min();
    let last = tables.by_destination.iter().map(|r| r.last_ns).max();
    rows.push(vec![
        "total".to_owned(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        tables.by_destination.iter().map(|r| r.count).sum::<u64>().to_string(),
        first.map(format_time_of_day).unwrap_or_default(),
        last.map(format_time_of_day).unwrap_or_default(),
        format!("{} destination(s), {} process(es)", distinct_destinations(tables), programs.len()),
    ]);
    columns(
        &["DST", "PROTO", "REASON", "VERDICT", "ACTION", "COUNT", "FIRST", "LAST", "PROGRAMS"],
        &[false, false, false, false, false, true, false, false, false],
        &rows,
        true,
    )
}

/// The process table as aligned text, with a total line.
pub fn render_processes(tables: &Tables) -> String {
    let mut rows: Vec<Vec<String>> = tables
        .by_process
        .iter()
        .map(|r| {
            vec![
                r.program.clone(),
                r.events.to_string(),
                r.allowed.to_string(),
                r.leaks.to_string(),
                r.blocked.to_string(),
                r.logged.to_string(),
                r.socksified.to_string(),
                r.killed.to_string(),
                r.destinations.to_string(),
                format_time_of_day(r.first_ns),
                format_time_of_day(r.last_ns),
                command_line(r),
            ]
        })
        .collect();
    let sums = tables.process_sums();
    rows.push(vec![
        "total".to_owned(),
        sums.events.to_string(),
        sums.allowed.to_string(),
        sums.leaks.to_string(),
        sums.blocked.to_string(),
        sums.logged.to_string(),
        sums.socksified.to_string(),
        sums.killed.to_string(),
        distinct_destinations(tables).to_string(),
        sums.first_ns.map(format_time_of_day).unwrap_or_default(),
        sums.last_ns.map(format_time_of_day).unwrap_or_default(),
        format!("{} process(es)", tables.by_process.len()),
    ]);
    columns(
        &[
            "PROGRAM",
            "EVENTS",
            "ALLOWED",
            "LEAKS",
            "BLOCKED",
            "LOGGED",
            "SOCKSIFIED",
            "KILLED",
            "DSTS",
            "FIRST",
            "LAST",
            "COMMAND",
        ],
        &[false, true, true, true, true, true, true, true, true, false, false, false],
        &rows,
        true,
    )
}

fn distinct_destinations(tables: &Tables) -> usize {
    tables.by_destination.iter().map(|r| &r.dst).collect::<BTreeSet<_>>().len()
}

/// The command line of a process: argv, else exe, else nothing.
pub fn command_line(row: &ProcRow) -> String {
    match (&row.argv, &row.exe) {
        (Some(argv), _) if !argv.is_empty() => argv.join(" "),
        (_, Some(exe)) => exe.clone(),
        _ => String::new(),
    }
}

/// As many programs as fit in a cell, then `+N more`.
fn programs_cell(programs: &[String]) -> String {
    let mut cell = String::new();
    for (i, program) in programs.iter().enumerate() {
        let rest = programs.len() - i;
        let more = if rest > 1 { format!(", +{} more", rest - 1) } else { String::new() };
        let sep = if cell.is_empty() { "" } else { ", " };
        let program = visible(program);
        if i > 0 && cell.chars().count() + sep.len() + program.chars().count() + more.len() > MAX_CELL {
            cell.push_str(&format!(" +{rest} more"));
            break;
        }
        cell.push_str(sep);
        cell.push_str(&program);
    }
    cell
}

/// Aligned columns separated by two spaces; cells are made [`visible`] and cut
/// at [`MAX_CELL`] characters. With `footer`, the last row is set off by a rule.
pub fn columns(headers: &[&str], right: &[bool], rows: &[Vec<String>], footer: bool) -> String {
    let cells: Vec<Vec<String>> =
        rows.iter().map(|row| row.iter().map(|c| truncate(&visible(c), MAX_CELL)).collect()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String]| -> String {
        let mut out = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            let pad = width.saturating_sub(cell.chars().count());
            let last = i + 1 == row.len();
            if i > 0 {
                out.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                if !last {
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let mut out = line(&header);
    for (i, row) in cells.iter().enumerate() {
        if footer && i + 1 == cells.len() {
            let total: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
        out.push_str(&line(row));
    }
    out
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Text from a traced program made safe to show: control characters (a
/// terminal's escape sequences, newlines that would break a row) and the
/// invisible characters that reorder or hide text are written as escapes.
pub fn visible(text: &str) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    };
    if !text.chars().any(hidden) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::read::parse_str;
    use super::*;

    fn line(seq: u32, pid: u32, comm: &str, dst: &str, verdict: &str, action: &str) -> String {
        let reason = if verdict == "leak" { "direct-tcp" } else { "allow-rule" };
        format!(
            r#"{{"schema":1,"seq":{seq},"ts":"2026-01-01T00:00:{seq:02}Z","source":"seccomp","syscall":"connect","pid":{pid},"tid":{pid},"comm":"{comm}","protocol":"tcp","dst":"{dst}","verdict":"{verdict}","reason":"{reason}","action":"{action}"}}"#
        )
    }

    fn sample() -> Vec<Record> {
        let lines = [
            line(1, 10, "curl", "127.0.0.2:80", "allowed", "allowed"),
            line(2, 10, "curl", "127.0.0.3:80", "leak", "blocked"),
            line(3, 11, "wget", "127.0.0.3:80", "leak", "blocked"),
            line(4, 10, "curl", "127.0.0.3:80", "leak", "blocked"),
            line(5, 12, "nc", "127.0.0.4:9", "leak", "logged"),
            line(6, 10, "curl", "127.0.0.2:80", "allowed", "allowed"),
            line(7, 13, "x", "127.0.0.5:1", "leak", "socksified"),
            line(8, 13, "x", "127.0.0.5:1", "leak", "killed"),
        ];
        parse_str(&lines.join("\n")).events
    }

    #[test]
    fn aggregates_by_destination() {
        let t = build(&sample(), false);
        let rows: Vec<(&str, &str, u64)> =
            t.by_destination.iter().map(|r| (r.dst.as_str(), r.action.as_str(), r.count)).collect();
        assert_eq!(
            rows,
            vec![
                ("127.0.0.3:80", "blocked", 3),
                ("127.0.0.4:9", "logged", 1),
                ("127.0.0.5:1", "socksified", 1),
                ("127.0.0.5:1", "killed", 1),
                ("127.0.0.2:80", "allowed", 2),
            ],
            "leaks first, then by first seen"
        );
        let blocked = &t.by_destination[0];
        assert_eq!(blocked.programs, vec!["curl[10]", "wget[11]"]);
        assert_eq!(blocked.first_ns, 2_000_000_000 + 1_767_225_600_000_000_000);
        assert_eq!(blocked.last_ns - blocked.first_ns, 2_000_000_000);
        assert_eq!((blocked.protocol.as_str(), blocked.reason.as_str()), ("tcp", "direct-tcp"));
    }

    #[test]
    fn aggregates_by_process() {
        let t = build(&sample(), false);
        let curl = &t.by_process[0];
        assert_eq!(curl.program, "curl[10]");
        assert_eq!((curl.events, curl.allowed, curl.leaks, curl.blocked), (4, 2, 2, 2));
        assert_eq!(curl.destinations, 2);
        let names: Vec<&str> = t.by_process.iter().map(|r| r.program.as_str()).collect();
        assert_eq!(names, vec!["curl[10]", "wget[11]", "nc[12]", "x[13]"]);
        let x = &t.by_process[3];
        assert_eq!((x.socksified, x.killed, x.leaks), (1, 1, 2));
    }

    #[test]
    fn counts_totals() {
        let t = build(&sample(), false).totals;
        assert_eq!((t.events, t.allowed, t.leaks), (8, 2, 6));
        assert_eq!((t.blocked, t.logged, t.socksified, t.killed, t.other_action), (3, 1, 1, 1, 0));
        assert_eq!((t.destinations, t.leak_destinations), (4, 3));
        assert_eq!((t.processes, t.leaking_processes), (4, 4));
        assert_eq!(t.last_ns.unwrap() - t.first_ns.unwrap(), 7_000_000_000);
        assert_eq!(t.shown, 8);
    }

    #[test]
    fn leaks_only_filters_rows_not_totals() {
        let t = build(&sample(), true);
        assert!(t.by_destination.iter().all(|r| r.verdict == "leak"));
        assert_eq!(t.by_destination.iter().map(|r| r.count).sum::<u64>(), 6);
        assert_eq!(t.by_process[0].events, 2);
        assert_eq!((t.totals.events, t.totals.shown), (8, 6));
    }

    #[test]
    fn no_events_no_rows() {
        let t = build(&[], false);
        assert!(t.by_destination.is_empty() && t.by_process.is_empty());
        assert_eq!(t.totals, Totals::default());
        assert!(render_destinations(&t).starts_with("DST"));
    }

    #[test]
    fn renders_aligned_columns() {
        let t = build(&sample(), false);
        let text = render_destinations(&t);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("DST           PROTO  REASON"), "{text}");
        let count_end = lines[0].find("COUNT").unwrap() + "COUNT".len();
        for l in &lines[1..] {
            if !l.starts_with('-') {
                assert!(
                    l[..count_end].ends_with(|c: char| c.is_ascii_digit()),
                    "count right-aligned: {text}"
                );
            }
        }
        assert!(lines[1].starts_with("127.0.0.3:80  tcp    direct-tcp  leak     blocked"), "{text}");
        assert!(lines[1].ends_with("curl[10], wget[11]"), "{text}");
        assert!(lines.last().unwrap().starts_with("total  "), "{text}");
        assert!(lines.last().unwrap().ends_with("4 destination(s), 4 process(es)"), "{text}");
        assert!(lines.last().unwrap().contains(" 8  "), "{text}");
        let procs = render_processes(&t);
        assert!(procs.lines().nth(1).unwrap().starts_with("curl[10]"), "{procs}");
        assert!(procs.lines().last().unwrap().starts_with("total  "), "{procs}");
        assert!(procs.lines().last().unwrap().ends_with("4 process(es)"), "{procs}");
    }

    #[test]
    fn hostile_text_stays_on_its_row() {
        let line = r#"{"schema":1,"ts":"2026-01-01T00:00:00Z","syscall":"connect","pid":1,"comm":"ev\nil\u001b[31m\u202e","argv":["a\tb"],"dst":"1.2.3.4:1","verdict":"leak","reason":"r","action":"logged"}"#;
        let t = build(&parse_str(line).events, false);
        let text = render_processes(&t);
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.contains(r"ev\nil\u{1b}[31m\u{202e}[1]"), "{text}");
        assert!(text.contains(r"a\tb"), "{text}");
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn cuts_long_cells() {
        let long = "x".repeat(200);
        let text = columns(&["A", "B"], &[false, false], &[vec![long, "b".into()]], false);
        let row = text.lines().nth(1).unwrap();
        assert_eq!(row.chars().count(), MAX_CELL + 3);
        assert!(row.contains("x…  b"));
        let few: Vec<String> = (0..6).map(|i| format!("p[{i}]")).collect();
        assert_eq!(programs_cell(&few), "p[0], p[1], p[2], p[3], p[4], p[5]");
        let many: Vec<String> = (0..30).map(|i| format!("program[{}]", 1000 + i)).collect();
        let cell = programs_cell(&many);
        assert!(cell.chars().count() <= MAX_CELL, "{cell}");
        assert_eq!(cell, "program[1000], program[1001], program[1002] +27 more");
    }
}
