//! Reading /proc: the small parsers the supervisor and audit share.

use crate::report_writer::ProcessInfo;

/// A `Key:\tvalue` field of `/proc/PID/status`.
pub fn status_field<'a>(status: &'a str, field: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(field)).map(|v| v.trim_start_matches(['\t', ' ']))
}

/// `/proc/PID/cmdline`: NUL-separated arguments; `None` when empty (a zombie, a kernel thread).
pub fn cmdline(raw: &[u8]) -> Option<Vec<String>> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return None;
    }
    Some(raw.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect())
}

/// The cgroup v2 line (`0::PATH`) of `/proc/PID/cgroup`; hybrid systems list v1 hierarchies too.
pub fn cgroup2(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_owned)
}

/// Who thread `tid` is. Best effort: missing pieces stay `None` (the process
/// may already be gone).
pub fn process_info(tid: u32) -> ProcessInfo {
    let base = format!("/proc/{tid}");
    let status = std::fs::read_to_string(format!("{base}/status")).ok();
    let field = |name: &str| status.as_deref().and_then(|s| status_field(s, name)).map(str::to_owned);
    ProcessInfo {
        pid: field("Tgid:").and_then(|v| v.parse().ok()),
        comm: field("Name:"),
        exe: std::fs::read_link(format!("{base}/exe")).ok().map(|p| p.to_string_lossy().into_owned()),
        argv: std::fs::read(format!("{base}/cmdline")).ok().and_then(|c| cmdline(&c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_cmdline_and_cgroup() {
        let status = "Name:\tcurl\nTgid:\t42\nThreads:\t3\n";
        assert_eq!(status_field(status, "Name:"), Some("curl"));
        assert_eq!(status_field(status, "Threads:"), Some("3"));
        assert_eq!(status_field(status, "Pid:"), None);
        assert_eq!(
            cmdline(b"curl\0-v\0\0x\0"),
            Some(vec!["curl".into(), "-v".into(), "".into(), "x".into()])
        );
        assert_eq!(cmdline(b""), None);
        assert_eq!(cgroup2("12:cpu:/\n0::/system.slice/a.service\n"), Some("/system.slice/a.service".into()));
    }

    #[test]
    fn reads_this_process() {
        let me = process_info(std::process::id());
        assert_eq!(me.pid, Some(std::process::id()));
        assert!(me.exe.is_some() && me.argv.is_some_and(|a| !a.is_empty()));
    }
}
