//! Priorities for the systemd journal: when stderr is the journal's stream, a line starts with
//! `<N>` (sd-daemon(3)), N its syslog priority.
//!
//! The priority is read off the line's own tag, the one format every human line keeps:
//! `sockstrace: [kernel: ]TAG...`, where TAG is `error:` (3), `LEAK ...` or `warn:`/`warning:`
//! (4), `summary:` (5, notice), `debug:`/`trace:` (7), anything else info (6).

use std::os::fd::AsRawFd;
use std::sync::OnceLock;

/// The variable systemd sets for a service whose stdout/stderr is the journal: `DEV:INODE` of
/// that stream.
const JOURNAL_STREAM: &str = "JOURNAL_STREAM";

/// Whether stderr is the journal stream `JOURNAL_STREAM` names (systemd.exec(5): a process must
/// compare the device and inode, since the variable is inherited by children whose stderr may
/// be something else).
pub fn stderr_is_journal() -> bool {
    static IS: OnceLock<bool> = OnceLock::new();
    *IS.get_or_init(|| {
        let Some(named) = std::env::var(JOURNAL_STREAM).ok().and_then(|v| parse_stream(&v)) else {
            return false;
        };
        nix::sys::stat::fstat(std::io::stderr().as_raw_fd())
            .map(|st| (st.st_dev, st.st_ino) == named)
            .unwrap_or(false)
    })
}

/// `DEV:INODE` (decimal) as systemd writes it.
fn parse_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// The sd-daemon prefix for one human line.
pub fn prefix(line: &str) -> &'static str {
    match priority(line) {
        3 => "<3>",
        4 => "<4>",
        5 => "<5>",
        7 => "<7>",
        _ => "<6>",
    }
}

fn priority(line: &str) -> u8 {
    let rest = line.strip_prefix("sockstrace: ").unwrap_or(line);
    let rest = rest.strip_prefix("kernel: ").unwrap_or(rest);
    let tag = rest.split([':', ' ']).next().unwrap_or_default();
    match tag {
        "error" => 3,
        "LEAK" | "warn" | "warning" => 4,
        "summary" => 5,
        "debug" | "trace" => 7,
        _ => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaks_are_warnings_failures_errors() {
        assert_eq!(
            prefix("sockstrace: LEAK BLOCKED: connect tcp 1.2.3.4:80 (direct-tcp) by pid 1 (x)"),
            "<4>"
        );
        assert_eq!(prefix("sockstrace: error: configuration: bad"), "<3>");
        assert_eq!(prefix("sockstrace: kernel: warn: ring buffer full"), "<4>");
        assert_eq!(prefix("sockstrace: warning: the last events were not all reported in time"), "<4>");
        assert_eq!(prefix("sockstrace: summary: 0 leak(s)"), "<5>");
        assert_eq!(prefix("sockstrace: debug: x"), "<7>");
        assert_eq!(prefix("sockstrace: layers: seccomp on"), "<6>");
        assert_eq!(prefix("anything else"), "<6>");
    }

    #[test]
    fn the_stream_is_device_and_inode() {
        assert_eq!(parse_stream("8:1234\n"), Some((8, 1234)));
        assert_eq!(parse_stream("8"), None);
        assert_eq!(parse_stream("a:b"), None);
    }
}
