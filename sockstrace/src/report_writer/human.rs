//! The lines people read on stderr.
//!
//! Under systemd (stderr is the journal's stream, see [`super::journal`]) each line starts with
//! its sd-daemon priority (`<4>` for a leak, `<3>` for an error), so that `journalctl -p warning`
//! shows the leaks and the failures of `sockstrace audit` as a service.

use super::{journal, Event, Summary};

/// `eprintln!` for the run's own lines: through [`write_line`] (on a terminal, its writer thread),
/// so that no caller, a handler before its answer least of all, waits for a terminal the program
/// switched off (`tcflow(TCOOFF)`).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::report_writer::human::write_line(&format!($($arg)*))
    };
}
pub(crate) use say;

/// Writes one line to stderr in a single write, so it never interleaves
/// with the traced program's own output.
pub fn write_line(line: &str) {
    let prefix = if journal::stderr_is_journal() { journal::prefix(line) } else { "" };
    let mut buf = String::with_capacity(prefix.len() + line.len() + 1);
    buf.push_str(prefix);
    buf.push_str(line);
    buf.push('\n');
    // One write, under the lock the program's relayed stderr takes, after a newline when the
    // program left its last line unfinished; waiting while the stream is full (on a terminal,
    // in a thread of its own: see `stream`).
    let _ = super::stream::stderr().write_lines(buf.as_bytes());
}

/// Whether stderr gets colour: only a terminal, and only without `NO_COLOR`.
fn colour() -> bool {
    use std::io::IsTerminal;
    static COLOUR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *COLOUR.get_or_init(|| std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
}

/// A leak line, in bold red on a terminal.
pub fn highlight(line: &str) -> String {
    if colour() {
        format!("\x1b[1;31m{line}\x1b[0m")
    } else {
        line.to_owned()
    }
}

pub fn leak_line(e: &Event) -> String {
    let action =
        serde_json::to_value(e.action).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let what = e.dst.as_deref().or(e.local.as_deref()).or(e.option.as_deref()).unwrap_or("?");
    let proto = e.protocol.as_deref().unwrap_or("-");
    let pid = e.pid.unwrap_or(e.tid);
    let comm = e.comm.as_deref().unwrap_or("?");
    let mut line = format!(
        "sockstrace: LEAK {}: {} {} {} ({}) by pid {} ({})",
        action.to_uppercase(),
        e.syscall,
        proto,
        what,
        e.reason,
        pid,
        comm
    );
    line.push_str(&where_from(e));
    line
}

/// How many of the program's own frames a leak line shows.
const LINE_FRAMES: usize = 3;

/// `--stack`, `--core-on-leak`: " at f (file:line) < caller < ..." and the core file.
fn where_from(e: &Event) -> String {
    let mut text = String::new();
    if let Some(stack) = &e.stack {
        let own = crate::stack::own_frames(stack);
        let shown: Vec<String> = own.iter().take(LINE_FRAMES).map(crate::stack::describe).collect();
        text.push_str(&format!(" at {}", shown.join(" < ")));
    } else if let Some(why) = &e.stack_error {
        text.push_str(&format!(" (no stack: {why})"));
    }
    match (&e.core, &e.core_error) {
        (Some(core), _) => text.push_str(&format!("; core {core}")),
        (None, Some(why)) => text.push_str(&format!("; no core: {why}")),
        (None, None) => {}
    }
    text
}

pub fn summary_lines(s: &Summary) -> Vec<String> {
    let mut lines = vec![format!(
        "sockstrace: summary: {} leak(s) ({} blocked, {} logged, {} killed, {} socksified), {} allowed",
        s.leaks, s.blocked, s.logged, s.killed, s.socksified, s.allowed
    )];
    if s.udp_connects_refused > 0 {
        lines.push(format!(
            "sockstrace: {} UDP connect(s) refused (nothing sent): no leak; resolvers connect to sort a name's addresses",
            s.udp_connects_refused
        ));
    }
    if !s.syscalls_denied.is_empty() {
        let total: u64 = s.syscalls_denied.values().sum();
        let each: Vec<String> = s.syscalls_denied.iter().map(|(name, n)| format!("{name} {n}")).collect();
        lines.push(format!("sockstrace: {total} system call(s) denied: {}", each.join(", ")));
    }
    for (key, count) in &s.by_destination {
        lines.push(format!(
            "sockstrace:   {count:>5} x {} {} {} ({}) by {}",
            key.syscall, key.protocol, key.dst, key.reason, key.program
        ));
    }
    let mut layers = format!("sockstrace: layers: seccomp {}; kernel {}", s.layers.seccomp, s.layers.kernel);
    if !s.layers.fence.is_empty() {
        layers.push_str(&format!("; fence {}", s.layers.fence));
    }
    if !s.layers.program.is_empty() {
        layers.push_str(&format!("; program {}", s.layers.program));
    }
    if !s.layers.syscalls.is_empty() {
        layers.push_str(&format!("; syscalls {}", s.layers.syscalls));
    }
    lines.push(layers);
    if let Some(dns) = &s.layers.dns {
        let count = |key: &str| dns.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        lines.push(format!(
            "sockstrace: dns: {} queries answered by sockstrace's resolver ({} failed), none sent around the proxy",
            count("queries"),
            count("failures")
        ));
    }
    if let Some(lost) = s.layers.kernel_dropped.filter(|&n| n > 0) {
        lines.push(format!("sockstrace: the kernel dropped {lost} event(s): its ring buffer was full"));
    }
    lines
}
