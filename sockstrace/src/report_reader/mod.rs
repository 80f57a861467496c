//! `sockstrace report FILE`: reads a `--report` file and shows what happened,
//! as tables on stdout and, with `--html`, as one self-contained HTML page.
//!
//! Exit status: 0 when the file was read (leaks or not), 2 when it cannot be
//! read, holds nothing sockstrace wrote, or the page cannot be written.

mod html;
pub(crate) mod read;
mod stacks;
mod table;

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use read::{format_duration, format_utc_millis, Report};
use table::Tables;

/// Skipped lines listed on stderr before `... and N more`.
const MAX_SKIPPED_SHOWN: usize = 20;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The JSON Lines file written by `sockstrace run --report` ('-' for stdin)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Also write the report as a self-contained HTML page to OUT
    #[arg(long, value_name = "OUT")]
    pub html: Option<PathBuf>,

    /// Show leaks only (the totals still count every event)
    #[arg(long)]
    pub leaks_only: bool,
}

pub fn main(args: ReportArgs) -> i32 {
    run(&args, &mut io::stdout().lock())
}

/// [`main`], with the tables written to `stdout`.
fn run(args: &ReportArgs, stdout: &mut dyn Write) -> i32 {
    let name = args.file.display().to_string();
    let report = match read(&args.file) {
        Ok(report) => report,
        Err(e) => {
            crate::report_writer::human::write_line(&format!(
                "sockstrace: error: cannot read the report {name}: {e}"
            ));
            return 2;
        }
    };
    for line in skipped_lines(&name, &report) {
        eprintln!("{line}");
    }
    if report.is_empty() {
        if report.skipped.is_empty() {
            crate::report_writer::human::write_line(&format!(
                "sockstrace: error: {name} holds no events and no summary: is it a sockstrace report?"
            ));
        } else {
            crate::report_writer::human::write_line(&format!(
                "sockstrace: error: {name} is not a sockstrace report: none of its {} line(s) is an event or a summary",
                report.lines
            ));
        }
        return 2;
    }

    let tables = table::build(&report.events, args.leaks_only);
    let notes = notes(&report, &tables);
    if let Some(out) = &args.html {
        let info = html::PageInfo { name: &name, leaks_only: args.leaks_only, notes: &notes };
        let page = html::page(&info, &report, &tables);
        if let Err(e) = std::fs::write(out, page) {
            crate::report_writer::human::write_line(&format!(
                "sockstrace: error: cannot write the HTML page to {}: {e}",
                out.display()
            ));
            return 2;
        }
        crate::report_writer::human::write_line(&format!("sockstrace: wrote {}", out.display()));
    }
    let text = text_report(&name, &report, &tables, args.leaks_only, &notes);
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        // `sockstrace report f | head` is fine.
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            crate::report_writer::human::write_line(&format!(
                "sockstrace: error: cannot write to stdout: {e}"
            ));
            2
        }
        _ => 0,
    }
}

fn read(path: &Path) -> io::Result<Report> {
    if path == Path::new("-") {
        return read::parse(io::stdin().lock());
    }
    read::parse(BufReader::new(File::open(path)?))
}

/// `sockstrace: FILE:LINE: skipped: why`, for the first few.
fn skipped_lines(name: &str, report: &Report) -> Vec<String> {
    let mut lines: Vec<String> = report
        .skipped
        .iter()
        .take(MAX_SKIPPED_SHOWN)
        .map(|s| format!("sockstrace: {name}:{}: skipped: {}", s.line, table::visible(&s.why)))
        .collect();
    if report.skipped.len() > MAX_SKIPPED_SHOWN {
        lines.push(format!(
            "sockstrace: {name}: ... and {} more skipped line(s)",
            report.skipped.len() - MAX_SKIPPED_SHOWN
        ));
    }
    lines
}

/// What the reader should know about the file itself.
fn notes(report: &Report, tables: &Tables) -> Vec<String> {
    let mut notes = Vec::new();
    let t = &tables.totals;
    match &report.summary {
        None => notes.push("The file has no summary line: the run may have been cut short.".to_owned()),
        // Several runs in one file: one summary cannot match all their events.
        Some(_) if report.summaries > 1 => {}
        Some(summary) => {
            if let Some(events) = summary.events.filter(|n| *n != t.events) {
                notes.push(format!("The summary counts {events} event(s), the file holds {}.", t.events));
            }
            if let Some(leaks) = summary.leaks.filter(|n| *n != t.leaks) {
                notes.push(format!("The summary counts {leaks} leak(s), the file holds {}.", t.leaks));
            }
            if let Some(lost) = summary.kernel_lost_events.filter(|n| *n > 0) {
                notes.push(format!("The kernel layer lost {lost} event(s): its ring buffer was full."));
            }
        }
    }
    if report.summaries > 1 {
        notes.push(format!(
            "The file has {} summary lines (several runs in one file?); the last one is shown.",
            report.summaries
        ));
    }
    if !report.skipped.is_empty() {
        notes.push(format!("{} line(s) skipped: they are not events of this schema.", report.skipped.len()));
    }
    if t.other_action > 0 {
        notes.push(format!("{} event(s) have an action this version does not know.", t.other_action));
    }
    notes
}

/// Everything printed on stdout.
fn text_report(name: &str, report: &Report, tables: &Tables, leaks_only: bool, notes: &[String]) -> String {
    let t = &tables.totals;
    let mut out = format!("sockstrace report: {}\n", table::visible(name));
    let verdict = if t.leaks == 0 { "no leaks".to_owned() } else { format!("{} LEAK(S)", t.leaks) };
    out.push_str(&format!(
        "result:  {verdict} in {} event(s): {} allowed; {} blocked, {} logged, {} socksified, {} killed\n",
        t.events, t.allowed, t.blocked, t.logged, t.socksified, t.killed
    ));
    out.push_str(&format!(
        "         {} process(es), {} destination(s) ({} with leaks)\n",
        t.processes, t.destinations, t.leak_destinations
    ));
    if let (Some(first), Some(last)) = (t.first_ns, t.last_ns) {
        out.push_str(&format!(
            "time:    {} to {} ({})\n",
            format_utc_millis(first),
            format_utc_millis(last),
            format_duration(last - first)
        ));
    }
    if let Some(summary) = &report.summary {
        for (layer, state) in &summary.layers {
            out.push_str(&format!("{:<9}{}\n", format!("{layer}:"), table::visible(state)));
        }
        if let Some(status) = summary.exit_status {
            out.push_str(&format!("exit:    {status}\n"));
        }
    }
    for note in notes {
        out.push_str(&format!("note:    {}\n", table::visible(note)));
    }
    if leaks_only && t.shown == 0 {
        out.push_str("\nNo leaks.\n");
        return out;
    }
    if t.shown == 0 {
        out.push_str("\nNo events.\n");
        return out;
    }
    let which = if leaks_only { "Leaks" } else { "Events" };
    out.push_str(&format!("\n{which} by destination\n"));
    out.push_str(&table::render_destinations(tables));
    out.push_str(&format!("\n{which} by process\n"));
    out.push_str(&table::render_processes(tables));
    let (stacks, without) = stacks::build(&report.events);
    if !stacks.is_empty() || without > 0 {
        out.push_str("\nLeaks by code location\n");
        out.push_str(&stacks::render(&stacks, without));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::read::parse_str;
    use super::*;

    const LEAK: &str = r#"{"schema":1,"seq":1,"ts":"2026-01-01T00:00:00Z","syscall":"connect","pid":7,"comm":"curl","protocol":"tcp","dst":"127.0.0.3:80","verdict":"leak","reason":"direct-tcp","action":"blocked","errno":1}"#;
    const ALLOWED: &str = r#"{"schema":1,"seq":2,"ts":"2026-01-01T00:00:00.5Z","syscall":"connect","pid":7,"comm":"curl","protocol":"tcp","dst":"127.0.0.2:80","verdict":"allowed","reason":"allow-rule","action":"allowed"}"#;
    const SUMMARY: &str = r#"{"schema":1,"summary":{"events":2,"leaks":1,"exit_status":7,"kernel_lost_events":0,"layers":{"kernel":"on","seccomp":"on"}}}"#;

    fn run_on(file: &Path, html: Option<PathBuf>, leaks_only: bool) -> (i32, String) {
        let mut out = Vec::new();
        let code = run(&ReportArgs { file: file.to_path_buf(), html, leaks_only }, &mut out);
        (code, String::from_utf8(out).unwrap())
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("sockstrace-report-reader-{}-{name}", std::process::id()))
    }

    #[test]
    fn parses_its_command_line() {
        use clap::{CommandFactory, Parser};
        #[derive(Parser, Debug)]
        struct Cli {
            #[command(flatten)]
            report: ReportArgs,
        }
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["report", "r.jsonl", "--html", "o.html", "--leaks-only"]).unwrap();
        assert_eq!(cli.report.file, Path::new("r.jsonl"));
        assert_eq!(cli.report.html.as_deref(), Some(Path::new("o.html")));
        assert!(cli.report.leaks_only);
        assert!(Cli::try_parse_from(["report"]).is_err(), "FILE is required");
    }

    #[test]
    fn text_has_totals_layers_and_both_tables() {
        let report = parse_str(&format!("{LEAK}\n{ALLOWED}\n{SUMMARY}\n"));
        let tables = table::build(&report.events, false);
        let notes = notes(&report, &tables);
        assert!(notes.is_empty(), "{notes:?}");
        let text = text_report("r.jsonl", &report, &tables, false, &notes);
        assert!(text.contains("result:  1 LEAK(S) in 2 event(s): 1 allowed; 1 blocked, 0 logged"), "{text}");
        assert!(
            text.contains("time:    2026-01-01T00:00:00.000Z to 2026-01-01T00:00:00.500Z (500.0 ms)"),
            "{text}"
        );
        assert!(text.contains("kernel:  on\nseccomp: on\nexit:    7\n"), "{text}");
        assert!(text.contains("Events by destination\nDST"), "{text}");
        assert!(text.contains("Events by process\nPROGRAM"), "{text}");
        assert!(text.contains("127.0.0.3:80  tcp    direct-tcp  leak     blocked"), "{text}");
    }

    #[test]
    fn leaks_only_text() {
        let report = parse_str(&format!("{ALLOWED}\n{SUMMARY}\n"));
        let tables = table::build(&report.events, true);
        let text = text_report("r", &report, &tables, true, &[]);
        assert!(text.ends_with("\nNo leaks.\n"), "{text}");
        assert!(text.contains("result:  no leaks in 1 event(s)"), "{text}");
    }

    #[test]
    fn notes_what_is_odd_about_the_file() {
        let report = parse_str(&format!("{LEAK}\ngarbage\n"));
        let n = notes(&report, &table::build(&report.events, false));
        assert!(n[0].contains("no summary line"), "{n:?}");
        assert!(n[1].contains("1 line(s) skipped"), "{n:?}");
        let report = parse_str(&format!("{SUMMARY}\n{LEAK}\n{SUMMARY}\n"));
        let n = notes(&report, &table::build(&report.events, false));
        assert_eq!(
            n,
            vec!["The file has 2 summary lines (several runs in one file?); the last one is shown."]
        );
        let report = parse_str(&format!("{LEAK}\n{SUMMARY}\n"));
        let n = notes(&report, &table::build(&report.events, false));
        assert_eq!(n, vec!["The summary counts 2 event(s), the file holds 1."]);
    }

    #[test]
    fn lists_skipped_lines_with_their_numbers() {
        let text: String = (0..25).map(|i| format!("junk {i}\n")).collect();
        let report = parse_str(&format!("{LEAK}\n{text}"));
        let lines = skipped_lines("f", &report);
        assert_eq!(lines.len(), MAX_SKIPPED_SHOWN + 1);
        assert!(lines[0].starts_with("sockstrace: f:2: skipped: not JSON"), "{}", lines[0]);
        assert_eq!(lines[MAX_SKIPPED_SHOWN], "sockstrace: f: ... and 5 more skipped line(s)");
    }

    #[test]
    fn exit_status_2_for_what_cannot_be_read() {
        assert_eq!(
            run_on(Path::new("/nonexistent/sockstrace/report.jsonl"), None, false),
            (2, String::new())
        );
        assert_eq!(run_on(&std::env::temp_dir(), None, false).0, 2, "a directory");
        let garbage = temp("garbage.jsonl");
        std::fs::write(&garbage, "hello\nworld\n").unwrap();
        assert_eq!(run_on(&garbage, None, false), (2, String::new()));
        std::fs::write(&garbage, "").unwrap();
        assert_eq!(run_on(&garbage, None, false).0, 2, "an empty file");
        std::fs::remove_file(&garbage).unwrap();
    }

    #[test]
    fn exit_status_0_with_leaks_and_writes_the_page() {
        let file = temp("leaks.jsonl");
        let page = temp("leaks.html");
        std::fs::write(&file, format!("{LEAK}\n{ALLOWED}\nnot json\n{SUMMARY}\n")).unwrap();
        let (code, text) = run_on(&file, Some(page.clone()), false);
        assert_eq!(code, 0);
        assert!(text.contains("1 LEAK(S)"), "{text}");
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(html.contains("127.0.0.3:80"));
        assert_eq!(run_on(&file, Some(temp("no/such/dir/x.html")), true).0, 2, "unwritable page");
        std::fs::remove_file(&file).unwrap();
        std::fs::remove_file(&page).unwrap();
    }
}
