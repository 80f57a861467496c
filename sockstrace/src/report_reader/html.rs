//! The report as one self-contained HTML page: inline CSS, no script, no
//! external resource (a Content-Security-Policy says so to the browser too).
//! Every string from the file comes from traced programs, so each one goes
//! through [`text`] (control characters made visible, then HTML-escaped).

use std::fmt::Write;

use serde_json::Value;

use super::read::{format_duration, format_time_of_day, format_utc_millis, value_text, Record, Report};
use super::table::{command_line, visible, Tables};

/// Timeline rows drawn at most; past this, allowed events are left out first.
const MAX_TIMELINE: usize = 5000;

/// Room left and right of a timeline track, so the marks at its ends stay inside (px; in [`STYLE`] too).
const TRACK_PAD: u32 = 6;

/// The order fields are listed in a timeline row's tooltip; others follow by name.
const FIELD_ORDER: &[&str] = &[
    "seq", "ts", "source", "syscall", "pid", "tid", "comm", "exe", "argv", "fd", "cookie", "family", "type",
    "protocol", "dst", "local", "verdict", "reason", "action", "errno", "kernel", "schema",
];

/// Escapes text for HTML element content and quoted attribute values alike.
pub fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text from the file, ready for the page.
fn text(raw: &str) -> String {
    escape(&visible(raw))
}

/// What a page needs besides the parsed file.
pub struct PageInfo<'a> {
    /// The report file, as named on the command line.
    pub name: &'a str,
    pub leaks_only: bool,
    /// Warnings about the file (no summary, counts that disagree, ...).
    pub notes: &'a [String],
}

/// The whole page.
pub fn page(info: &PageInfo, report: &Report, tables: &Tables) -> String {
    let mut out = String::with_capacity(16 * 1024 + report.events.len() * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>sockstrace report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        text(info.name)
    );
    header(&mut out, info, report, tables);
    if !info.leaks_only {
        out.push_str(
            "<input type=\"checkbox\" id=\"hide-allowed\"><label for=\"hide-allowed\" class=\"toggle\">\
             Hide allowed events</label>\n",
        );
    }
    timeline(&mut out, report, tables, info.leaks_only);
    destinations(&mut out, tables, info.leaks_only);
    processes(&mut out, tables, info.leaks_only);
    stacks(&mut out, report);
    skipped(&mut out, report);
    let _ = writeln!(
        out,
        "<footer>Written by sockstrace {} from {}.</footer>\n</body>\n</html>",
        env!("CARGO_PKG_VERSION"),
        text(info.name)
    );
    out
}

fn header(out: &mut String, info: &PageInfo, report: &Report, tables: &Tables) {
    let t = &tables.totals;
    let _ =
        writeln!(out, "<header>\n<h1>sockstrace report <span class=\"file\">{}</span></h1>", text(info.name));
    if t.leaks > 0 {
        let _ = writeln!(
            out,
            "<p class=\"banner bad\">{} leak{} to {} destination{}: {} blocked, {} logged, {} socksified, {} killed</p>",
            t.leaks,
            plural(t.leaks),
            t.leak_destinations,
            plural(t.leak_destinations as u64),
            t.blocked,
            t.logged,
            t.socksified,
            t.killed
        );
    } else {
        let _ =
            writeln!(out, "<p class=\"banner good\">No leaks in {} event{}</p>", t.events, plural(t.events));
    }
    out.push_str("<div class=\"tiles\">\n");
    let span = match (t.first_ns, t.last_ns) {
        (Some(a), Some(b)) => format_duration(b - a),
        _ => "-".to_owned(),
    };
    for (value, label, class) in [
        (t.events.to_string(), "events", ""),
        (t.allowed.to_string(), "allowed", "allowed"),
        (t.leaks.to_string(), "leaks", if t.leaks > 0 { "leak" } else { "" }),
        (t.blocked.to_string(), "blocked", "blocked"),
        (t.logged.to_string(), "logged", "logged"),
        (t.socksified.to_string(), "socksified", "socksified"),
        (t.killed.to_string(), "killed", "killed"),
        (t.processes.to_string(), "processes", ""),
        (t.destinations.to_string(), "destinations", ""),
        (span, "time span", ""),
    ] {
        let _ =
            writeln!(out, "<div class=\"tile {class}\"><b>{}</b><span>{label}</span></div>", escape(&value));
    }
    out.push_str("</div>\n<dl class=\"facts\">\n");
    if let (Some(first), Some(last)) = (t.first_ns, t.last_ns) {
        let _ = writeln!(
            out,
            "<dt>time</dt><dd>{} to {} (UTC)</dd>",
            format_utc_millis(first),
            format_utc_millis(last)
        );
    }
    match &report.summary {
        Some(summary) => {
            for (name, state) in &summary.layers {
                let _ = writeln!(out, "<dt>{} layer</dt><dd>{}</dd>", text(name), text(state));
            }
            if let Some(lost) = summary.kernel_lost_events {
                let _ = writeln!(out, "<dt>kernel events lost</dt><dd>{lost}</dd>");
            }
            let exit = summary.exit_status.map_or_else(|| "-".to_owned(), |status| status.to_string());
            let _ = writeln!(out, "<dt>exit status</dt><dd>{}</dd>", text(&exit));
        }
        None => out.push_str("<dt>layers</dt><dd>unknown: the file has no summary line</dd>\n"),
    }
    let _ = writeln!(
        out,
        "<dt>file</dt><dd>{} line{}, {} event{}, {} skipped</dd>",
        report.lines,
        plural(report.lines as u64),
        report.events.len(),
        plural(report.events.len() as u64),
        report.skipped.len()
    );
    out.push_str("</dl>\n");
    if !info.notes.is_empty() {
        out.push_str("<ul class=\"notes\">\n");
        for note in info.notes {
            let _ = writeln!(out, "<li>{}</li>", text(note));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</header>\n");
}

fn timeline(out: &mut String, report: &Report, tables: &Tables, leaks_only: bool) {
    let mut events: Vec<&Record> = report.events.iter().filter(|e| !leaks_only || e.is_leak()).collect();
    events.sort_by_key(|e| (e.time_ns, e.seq, e.line));
    let shown = events.len();
    if events.len() > MAX_TIMELINE {
        let leaks = events.iter().filter(|e| e.is_leak()).count();
        let mut room_for_leaks = MAX_TIMELINE;
        let mut room_for_allowed = MAX_TIMELINE.saturating_sub(leaks);
        events.retain(|e| {
            let room = if e.is_leak() { &mut room_for_leaks } else { &mut room_for_allowed };
            let keep = *room > 0;
            *room = room.saturating_sub(1);
            keep
        });
    }
    let (start, end) = (tables.totals.first_ns.unwrap_or(0), tables.totals.last_ns.unwrap_or(0));
    let span = end - start;
    out.push_str("<section id=\"timeline\">\n<h2>Timeline</h2>\n");
    out.push_str(
        "<p class=\"legend\"><span><i class=\"mark allowed\"></i>allowed</span>\
         <span><i class=\"mark leak blocked\"></i>leak, blocked</span>\
         <span><i class=\"mark leak logged\"></i>leak, logged (let through)</span>\
         <span><i class=\"mark leak socksified\"></i>leak, socksified</span>\
         <span><i class=\"mark leak killed\"></i>leak, killed</span>\
         <span class=\"hint\">Hover a row for all its fields.</span></p>\n",
    );
    if events.len() < shown {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} of {} events drawn: leaks first, then allowed events, each in time order.</p>",
            events.len(),
            shown
        );
    }
    if events.is_empty() {
        out.push_str("<p class=\"empty\">No events to show.</p>\n</section>\n");
        return;
    }
    out.push_str("<div class=\"tl\">\n<div class=\"row axis\"><span>time</span><span>program</span><span>call</span><span class=\"track\">");
    for tick in 0..=4u8 {
        let _ = write!(
            out,
            "<em style=\"left:{}\">+{}</em>",
            at(f64::from(tick) / 4.0),
            escape(&format_duration(span * i128::from(tick) / 4))
        );
    }
    out.push_str("</span><span>action</span></div>\n");
    for e in events {
        let pos = if span > 0 { (e.time_ns - start) as f64 / span as f64 } else { 0.0 };
        let class = row_class(&e.verdict, e.action_name());
        let _ = writeln!(
            out,
            "<div class=\"row {class}\" title=\"{}\"><span>{}</span><span>{}</span><span>{} {} {}</span>\
             <span class=\"track\"><i class=\"mark {class}\" style=\"left:{}\"></i></span><span class=\"act\">{}</span></div>",
            escape(&tooltip(e)),
            format_time_of_day(e.time_ns),
            text(&e.program()),
            text(&e.syscall),
            // "default" (protocol 0) says nothing here; the tooltip keeps it.
            text(e.protocol.as_deref().filter(|p| *p != "default").unwrap_or("")),
            text(&e.target()),
            at(pos),
            text(e.action_name()),
        );
    }
    out.push_str("</div>\n</section>\n");
}

/// The CSS `left` of a point at `fraction` (0 to 1) of a track, inside its padding.
fn at(fraction: f64) -> String {
    format!("calc({TRACK_PAD}px + (100% - {}px) * {:.5})", 2 * TRACK_PAD, fraction.clamp(0.0, 1.0))
}

/// Every field of an event, one per line, as `name: value` (`kernel.x: value` for the
/// kernel's facts); values are made [`visible`], so a newline in one cannot fake a field.
fn tooltip(e: &Record) -> String {
    let mut names: Vec<&String> = e.fields.keys().collect();
    let rank = |n: &str| FIELD_ORDER.iter().position(|f| *f == n).unwrap_or(FIELD_ORDER.len());
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    let mut lines = vec![format!("line: {}", e.line)];
    for name in names {
        match &e.fields[name] {
            Value::Object(inner) => {
                for (key, value) in inner {
                    lines.push(visible(&format!("{name}.{key}: {}", value_text(value))));
                }
            }
            value => lines.push(visible(&format!("{name}: {}", value_text(value)))),
        }
    }
    lines.join("\n")
}

/// CSS classes for a verdict and an action; only known words, so no escaping is needed.
fn row_class(verdict: &str, action: &str) -> String {
    let verdict = if verdict == "leak" { "leak" } else { "allowed" };
    let action = match action {
        "blocked" | "logged" | "socksified" | "killed" => action,
        "allowed" => "",
        _ => "other",
    };
    format!("{verdict} {action}").trim_end().to_owned()
}

fn destinations(out: &mut String, tables: &Tables, leaks_only: bool) {
    let title = if leaks_only { "Leaks by destination" } else { "By destination" };
    let _ = writeln!(out, "<section id=\"destinations\">\n<h2>{title}</h2>");
    if tables.by_destination.is_empty() {
        out.push_str("<p class=\"empty\">No events to show.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<table>\n<thead><tr><th>destination</th><th>protocol</th><th>reason</th><th>verdict</th>\
         <th>action</th><th class=\"n\">count</th><th>first</th><th>last</th><th>programs</th></tr></thead>\n<tbody>\n",
    );
    for r in &tables.by_destination {
        let programs: Vec<String> = r.programs.iter().map(|p| text(p)).collect();
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td class=\"w\">{}</td><td>{}</td><td>{}</td><td>{}</td><td><span class=\"badge\">{}</span></td>\
             <td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"w\">{}</td></tr>",
            row_class(&r.verdict, &r.action),
            text(&r.dst),
            text(&r.protocol),
            text(&r.reason),
            text(&r.verdict),
            text(&r.action),
            r.count,
            format_time_of_day(r.first_ns),
            format_time_of_day(r.last_ns),
            programs.join(", ")
        );
    }
    let count: u64 = tables.by_destination.iter().map(|r| r.count).sum();
    let _ = writeln!(
        out,
        "</tbody>\n<tfoot><tr><td colspan=\"5\">total: {} row{}</td><td class=\"n\">{count}</td><td colspan=\"3\"></td></tr></tfoot>\n</table>\n</section>",
        tables.by_destination.len(),
        plural(tables.by_destination.len() as u64)
    );
}

/// Leaks by the program's own innermost frame (`run --stack`), each with its callers.
fn stacks(out: &mut String, report: &Report) {
    let (rows, without) = super::stacks::build(&report.events);
    if rows.is_empty() && without == 0 {
        return;
    }
    out.push_str(
        "<section id=\"stacks\">\n<h2>Leaks by code location</h2>\n<table>\n<thead><tr><th class=\"n\">leaks</th>\
         <th>from</th><th>callers</th><th>destinations</th><th>programs</th></tr></thead>\n<tbody>\n",
    );
    for r in &rows {
        let callers: Vec<String> =
            r.frames.iter().skip(1).map(|f| format!("<div>{}</div>", text(f))).collect();
        let cores: Vec<String> =
            r.cores.iter().map(|c| format!("<div>core <code>{}</code></div>", text(c))).collect();
        let _ = writeln!(
            out,
            "<tr class=\"leak\"><td class=\"n\">{}</td><td class=\"w\"><code>{}</code><div>at {}</div>{}</td>\
             <td class=\"w\">{}</td><td class=\"w\">{}</td><td class=\"w\">{}</td></tr>",
            r.leaks,
            text(&r.site),
            text(r.frames.first().unwrap_or(&r.site)),
            cores.join(""),
            callers.join(""),
            text(&super::stacks::list(&r.destinations)),
            text(&super::stacks::list(&r.programs))
        );
    }
    out.push_str("</tbody>\n</table>\n");
    if without > 0 {
        let _ = writeln!(
            out,
            "<p>{without} leak{} without a stack (see their stack_error).</p>",
            plural(without)
        );
    }
    out.push_str("</section>\n");
}

fn processes(out: &mut String, tables: &Tables, leaks_only: bool) {
    let title = if leaks_only { "Leaks by process" } else { "By process" };
    let _ = writeln!(out, "<section id=\"processes\">\n<h2>{title}</h2>");
    if tables.by_process.is_empty() {
        out.push_str("<p class=\"empty\">No events to show.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<table>\n<thead><tr><th>program</th><th class=\"n\">events</th><th class=\"n\">allowed</th>\
         <th class=\"n\">leaks</th><th class=\"n\">blocked</th><th class=\"n\">logged</th><th class=\"n\">socksified</th>\
         <th class=\"n\">killed</th><th class=\"n\">destinations</th><th>first</th><th>last</th><th>command</th></tr></thead>\n<tbody>\n",
    );
    for r in &tables.by_process {
        let class = if r.leaks > 0 { "leak" } else { "allowed" };
        let exe = r.exe.as_deref().map(|x| format!(" title=\"{}\"", text(x))).unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr class=\"{class}\"><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"w\"><code{exe}>{}</code></td></tr>",
            text(&r.program),
            r.events,
            r.allowed,
            r.leaks,
            r.blocked,
            r.logged,
            r.socksified,
            r.killed,
            r.destinations,
            format_time_of_day(r.first_ns),
            format_time_of_day(r.last_ns),
            text(&command_line(r)),
        );
    }
    let sums = tables.process_sums();
    let _ = writeln!(
        out,
        "</tbody>\n<tfoot><tr><td>total: {} process{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td colspan=\"4\"></td></tr></tfoot>\n</table>\n</section>",
        tables.by_process.len(),
        if tables.by_process.len() == 1 { "" } else { "es" },
        sums.events,
        sums.allowed,
        sums.leaks,
        sums.blocked,
        sums.logged,
        sums.socksified,
        sums.killed,
    );
}

fn skipped(out: &mut String, report: &Report) {
    if report.skipped.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<section id=\"skipped\">\n<details><summary>{} skipped line{}</summary>\n<ul>",
        report.skipped.len(),
        plural(report.skipped.len() as u64)
    );
    for s in &report.skipped {
        let _ = writeln!(out, "<li>line {}: {}</li>", s.line, text(&s.why));
    }
    out.push_str("</ul>\n</details>\n</section>\n");
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

const STYLE: &str = r#"
:root { --red: #c62828; --red-bg: #fdecea; --green: #2e7d32; --grey: #607d8b; --purple: #6a1b9a; --ink: #1f2933; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); margin: 0 auto; padding: 16px 24px; max-width: 1600px; }
h1 { font-size: 20px; margin: 0 0 8px; }
h1 .file { font-family: ui-monospace, monospace; font-weight: normal; color: var(--grey); font-size: 15px; margin-left: 8px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.banner { padding: 8px 12px; border-radius: 4px; font-weight: 600; margin: 8px 0; }
.banner.bad { background: var(--red-bg); color: var(--red); border-left: 4px solid var(--red); }
.banner.good { background: #e8f5e9; color: var(--green); border-left: 4px solid var(--green); }
.tiles { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0; }
.tile { border: 1px solid #d9e2ec; border-radius: 4px; padding: 6px 12px; min-width: 90px; }
.tile b { display: block; font-size: 18px; }
.tile span { color: var(--grey); font-size: 12px; }
.tile.leak b { color: var(--red); }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
.facts dt { color: var(--grey); }
.facts dd { margin: 0; font-family: ui-monospace, monospace; font-size: 13px; }
.notes { background: #fff8e1; border-left: 4px solid #f9a825; padding: 6px 12px 6px 28px; }
.toggle { display: inline-block; margin-top: 8px; cursor: pointer; user-select: none; }
#hide-allowed { margin-top: 16px; }
#hide-allowed:checked ~ section .row.allowed, #hide-allowed:checked ~ section tr.allowed { display: none; }
.legend span { margin-right: 16px; white-space: nowrap; }
.legend .mark { position: static; display: inline-block; margin: 0 4px -1px 0; transform: none; }
.legend .mark.socksified { transform: rotate(45deg); }
.legend .hint { color: var(--grey); }
.tl { border: 1px solid #d9e2ec; border-radius: 4px; font-size: 12px; }
.tl .row { display: grid; grid-template-columns: 90px 150px minmax(180px, 280px) 1fr 80px; gap: 8px; padding: 1px 8px; align-items: center; border-top: 1px solid #f0f4f8; }
.tl .row > span { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.tl .row:hover { background: #e3f2fd; }
.tl .row.leak { background: var(--red-bg); color: var(--red); }
.tl .row.leak:hover { background: #f9d6d2; }
.tl .axis { background: #f5f7fa; color: var(--grey); font-weight: 600; border-top: none; padding-top: 4px; padding-bottom: 4px; }
.tl .axis .track em { position: absolute; top: 0; font-style: normal; font-weight: normal; transform: translateX(-50%); white-space: nowrap; }
.tl .axis .track em:first-child { transform: none; }
.tl .axis .track em:last-child { transform: translateX(-100%); }
.track { position: relative; height: 16px; padding: 0 6px; background: repeating-linear-gradient(to right, #e4e9ef 0 1px, transparent 1px 25%) content-box; background-origin: content-box; background-clip: padding-box; }
.tl .row > span.track { overflow: visible; }
.mark { position: absolute; top: 3px; width: 10px; height: 10px; transform: translateX(-5px); }
.mark.allowed { background: var(--green); border-radius: 50%; opacity: .55; }
.mark.leak.blocked { background: var(--red); }
.mark.leak.logged { border: 2px solid var(--red); border-radius: 50%; background: #fff; }
.mark.leak.socksified { background: var(--purple); transform: translateX(-5px) rotate(45deg); }
.mark.leak.killed { background: #000; border: 2px solid var(--red); }
.mark.leak.other { background: #ff9800; }
.act { font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #e4e9ef; vertical-align: top; }
th { background: #f5f7fa; color: var(--grey); font-weight: 600; }
td { white-space: nowrap; }
td.w { white-space: normal; word-break: break-word; min-width: 12em; }
section { overflow-x: auto; }
.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.leak td { background: var(--red-bg); color: var(--red); }
tfoot td { font-weight: 600; background: #f5f7fa; }
.badge { padding: 0 6px; border-radius: 8px; background: #e4e9ef; color: var(--ink); }
tr.blocked .badge { background: var(--red); color: #fff; }
tr.logged .badge { background: #fff; color: var(--red); border: 1px solid var(--red); }
tr.socksified .badge { background: var(--purple); color: #fff; }
tr.killed .badge { background: #000; color: #fff; }
code { font-size: 12px; }
.empty, .note { color: var(--grey); }
details { margin-top: 16px; }
footer { margin-top: 24px; color: var(--grey); font-size: 12px; }
"#;

#[cfg(test)]
mod tests {
    use super::super::read::parse_str;
    use super::super::table::build;
    use super::*;

    const HOSTILE: &str = r#"{"schema":1,"seq":1,"ts":"2026-01-01T00:00:00Z","syscall":"connect","pid":7,"comm":"<script>alert(1)</script>","exe":"/tmp/a&b\"c'd","argv":["sh","-c","echo '<b>' && x \"y\""],"protocol":"tcp","dst":"<img src=x onerror=alert(1)>","verdict":"leak","reason":"direct-tcp","action":"logged","kernel":{"comm":"</div><i>","tcp_states":["SYN_SENT"]}}"#;
    const ALLOWED: &str = r#"{"schema":1,"seq":2,"ts":"2026-01-01T00:00:02Z","syscall":"connect","pid":8,"comm":"curl","protocol":"tcp","dst":"127.0.0.2:80","verdict":"allowed","reason":"allow-rule","action":"allowed"}"#;
    const SUMMARY: &str = r#"{"schema":1,"summary":{"events":2,"leaks":1,"exit_status":0,"layers":{"seccomp":"on <&>","kernel":"off"}}}"#;

    fn render(text: &str, leaks_only: bool) -> String {
        let report = parse_str(text);
        let tables = build(&report.events, leaks_only);
        let notes = vec!["a note with <tags> & \"quotes\"".to_owned()];
        page(&PageInfo { name: "/tmp/<evil>.jsonl", leaks_only, notes: &notes }, &report, &tables)
    }

    #[test]
    fn escapes_the_five_characters() {
        assert_eq!(escape(r#"<a href="x">&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn nothing_from_the_file_gets_through_unescaped() {
        let html = render(&format!("{HOSTILE}\n{ALLOWED}\n{SUMMARY}\nnot <json>\n"), false);
        for raw in
            ["<script>", "<img", "</div><i>", "a&b", "'<b>'", "<evil>", "<tags>", "on <&>", "not <json>"]
        {
            assert!(!html.contains(raw), "{raw} is in the page unescaped");
        }
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;[7]"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains("/tmp/a&amp;b&quot;c&#39;d"));
        assert!(html.contains("kernel.comm: &lt;/div&gt;&lt;i&gt;"));
        // Every tag in the page is one of ours.
        let tags: std::collections::BTreeSet<&str> = html
            .split('<')
            .skip(1)
            .map(|t| t.split(|c: char| c.is_whitespace() || c == '>').next().unwrap_or(""))
            .collect();
        let ours = [
            "!DOCTYPE", "html", "/html", "head", "/head", "meta", "title", "/title", "style", "/style",
            "body", "/body", "header", "/header", "h1", "/h1", "h2", "/h2", "span", "/span", "p", "/p",
            "div", "/div", "b", "/b", "dl", "/dl", "dt", "/dt", "dd", "/dd", "ul", "/ul", "li", "/li",
            "input", "label", "/label", "section", "/section", "i", "/i", "em", "/em", "table", "/table",
            "thead", "/thead", "tbody", "/tbody", "tfoot", "/tfoot", "tr", "/tr", "th", "/th", "td", "/td",
            "code", "/code", "details", "/details", "summary", "/summary", "footer", "/footer",
        ];
        for tag in tags {
            assert!(ours.contains(&tag), "unexpected tag <{tag}");
        }
    }

    #[test]
    fn is_self_contained() {
        let html = render(&format!("{HOSTILE}\n{ALLOWED}\n{SUMMARY}"), false);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("default-src 'none'"));
        for external in ["<script", "<link", "src=\"", "href=", "url(", "@import"] {
            assert!(!html.contains(external), "{external}");
        }
    }

    #[test]
    fn shows_totals_layers_and_the_timeline() {
        let html = render(&format!("{HOSTILE}\n{ALLOWED}\n{SUMMARY}"), false);
        assert!(html.contains("1 leak to 1 destination: 0 blocked, 1 logged, 0 socksified, 0 killed"));
        assert!(html.contains("<dt>seccomp layer</dt><dd>on &lt;&amp;&gt;</dd>"));
        assert!(html.contains("<dt>exit status</dt><dd>0</dd>"));
        assert!(html.contains("a note with &lt;tags&gt; &amp; &quot;quotes&quot;"));
        // One timeline row per event, in time order, placed by time.
        let leak = html.find("<div class=\"row leak logged\"").expect("leak row");
        let allowed = html.find("<div class=\"row allowed\"").expect("allowed row");
        assert!(leak < allowed);
        assert!(
            html.contains("class=\"mark leak logged\" style=\"left:calc(6px + (100% - 12px) * 0.00000)\"")
        );
        assert!(html.contains("class=\"mark allowed\" style=\"left:calc(6px + (100% - 12px) * 1.00000)\""));
        assert!(html.contains("+2.00 s"));
        // The tooltip has every field, one per line.
        assert!(
            html.contains("title=\"line: 1\nseq: 1\nts: 2026-01-01T00:00:00Z\nsyscall: connect\npid: 7\n")
        );
    }

    #[test]
    fn leaks_only_leaves_allowed_out() {
        let html = render(&format!("{HOSTILE}\n{ALLOWED}\n{SUMMARY}"), true);
        assert!(!html.contains("<div class=\"row allowed\""));
        assert!(!html.contains("127.0.0.2:80"));
        assert!(html.contains("Leaks by destination"));
        assert!(html.contains("Leaks by process"));
        assert!(!html.contains("hide-allowed\">"), "no toggle when there is nothing to hide");
    }

    #[test]
    fn an_empty_report_still_renders() {
        let html = render(SUMMARY, false);
        assert!(html.contains("No leaks in 0 events"));
        assert!(html.contains("No events to show."));
        assert!(html.ends_with("</html>\n"));
    }

    #[test]
    fn control_characters_are_made_visible() {
        let line = r#"{"schema":1,"ts":"2026-01-01T00:00:00Z","syscall":"connect","pid":1,"comm":"a\u0000b\u202e","dst":"x","verdict":"leak","reason":"r","action":"blocked"}"#;
        let html = render(line, false);
        assert!(html.contains(r"a\u{0}b\u{202e}[1]"));
        assert!(!html.contains('\u{0}') && !html.contains('\u{202e}'));
    }

    #[test]
    fn a_newline_in_a_value_cannot_fake_a_field() {
        let line = r#"{"schema":1,"ts":"2026-01-01T00:00:00Z","syscall":"connect","pid":1,"comm":"a\nverdict: allowed","dst":"x","verdict":"leak","reason":"r","action":"blocked"}"#;
        let html = render(line, false);
        assert!(html.contains(r"comm: a\nverdict: allowed"), "{html}");
        assert!(!html.contains("\nverdict: allowed"));
    }

    #[test]
    fn the_timeline_is_capped_leaks_first() {
        let mut lines: Vec<String> = (0..MAX_TIMELINE + 10).map(|_| ALLOWED.to_owned()).collect();
        lines.push(HOSTILE.to_owned());
        let html = render(&lines.join("\n"), false);
        assert_eq!(html.matches("<div class=\"row ").count(), MAX_TIMELINE + 1, "and the axis");
        assert_eq!(html.matches("<div class=\"row leak").count(), 1);
        assert!(html.contains(&format!("{MAX_TIMELINE} of {} events drawn", MAX_TIMELINE + 11)));
        let leaks: Vec<String> = (0..MAX_TIMELINE + 1).map(|_| HOSTILE.to_owned()).collect();
        let html = render(&leaks.join("\n"), false);
        assert_eq!(html.matches("<div class=\"row leak").count(), MAX_TIMELINE);
    }

    #[test]
    fn classes_come_from_known_words_only() {
        assert_eq!(row_class("leak", "blocked"), "leak blocked");
        assert_eq!(row_class("allowed", "allowed"), "allowed");
        assert_eq!(row_class("leak", "\"><script>"), "leak other");
        assert_eq!(row_class("weird", "logged"), "allowed logged");
    }
}
