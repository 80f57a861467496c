//! The exact bytes of `--report` for a few representative events and the summary: the
//! JSON contract, pinned. A change here changes what every reader of a report sees.

use super::*;
use crate::policy::{Decision, Reason};

const TS: &str = "2026-11-29T01:25:38.228556662Z";

/// A seccomp leak, refused: every process field the supervisor reads.
fn leak() -> Event {
    let info = ProcessInfo {
        pid: Some(12280),
        comm: Some("curl".into()),
        exe: Some("/usr/bin/curl".into()),
        argv: Some(vec!["curl".into(), "-sS".into(), "http://127.0.0.2:18080/".into()]),
    };
    let mut e =
        Event::new("connect", 12281, Decision::leak(Reason::DirectTcp), Action::Blocked).with_process(info);
    e.ts = ts(TS);
    e.fd = Some(5);
    e.cookie = Some(48042);
    e.family = Some("inet".into());
    e.sock_type = Some("stream".into());
    e.protocol = Some("tcp".into());
    e.dst = Some("127.0.0.2:18080".into());
    e.errno = Some(1);
    e.stack = Some(vec![crate::stack::Frame {
        pc: "0x7f00deadbeef".into(),
        module: Some("/usr/lib/x86_64-linux-gnu/libc.so.6".into()),
        offset: Some("0x11beef".into()),
        function: Some("connect".into()),
        file: None,
        line: None,
    }]);
    e.core_error = Some("core dumps are off".into());
    e
}

/// An allowed connect to the proxy: the fewest fields.
fn allowed() -> Event {
    let mut e = Event::new("connect", 12281, Decision::allowed(Reason::Proxy), Action::Allowed);
    e.ts = ts("2026-11-29T01:25:38Z");
    e.pid = Some(12280);
    e.dst = Some("[::1]:9050".into());
    e
}

/// A leak the kernel layer saw (as `KernelEvent::to_report_event` makes it), with the audit
/// fields: parent, cgroup, and what could not be read.
fn kernel() -> Event {
    let mut e = Event::new("sendmsg", 300, Decision::leak(Reason::DirectUdp), Action::Logged);
    e.ts = ts("2026-11-29T01:25:39.5Z");
    e.source = "kernel".into();
    e.pid = Some(299);
    e.ppid = Some(1);
    e.comm = Some("dig".into());
    e.cgroup = Some("/system.slice/x.service".into());
    e.missing = vec!["exe".into(), "argv".into()];
    e.cookie = Some(7);
    e.family = Some("inet6".into());
    e.sock_type = Some("dgram".into());
    e.protocol = Some("udp".into());
    e.dst = Some("[2001:db8::1]:53".into());
    e.local = Some("[::]:40000".into());
    e.kernel = Some(serde_json::json!({
        "hook": "sendmsg6", "cgroup_id": 4186, "netns_cookie": 1, "uid": 0, "gid": 0,
    }));
    e
}

fn written(events: Vec<Event>, layers: Layers, extra: serde_json::Map<String, serde_json::Value>) -> String {
    // One file per call: the tests run in parallel, in one process.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("sockstrace-golden-{}-{n}.jsonl", std::process::id()));
    let reporter = Reporter::open(&ReportTarget::File(path.clone()), true, None).unwrap();
    for e in events {
        reporter.emit(e);
    }
    reporter.count_allowed(2);
    reporter.count_invalid();
    reporter.set_config(Some(Path::new("/etc/sockstrace/sockstrace.toml")));
    reporter.finish_with(layers, 7, extra);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    text
}

const LEAK: &str = r#"{"schema":1,"seq":1,"ts":"2026-11-29T01:25:38.228556662Z","source":"seccomp","syscall":"connect","pid":12280,"tid":12281,"comm":"curl","exe":"/usr/bin/curl","argv":["curl","-sS","http://127.0.0.2:18080/"],"fd":5,"cookie":48042,"family":"inet","type":"stream","protocol":"tcp","dst":"127.0.0.2:18080","verdict":"leak","reason":"direct-tcp","action":"blocked","errno":1,"stack":[{"pc":"0x7f00deadbeef","module":"/usr/lib/x86_64-linux-gnu/libc.so.6","offset":"0x11beef","function":"connect"}],"core_error":"core dumps are off"}"#;
const ALLOWED: &str = r#"{"schema":1,"seq":2,"ts":"2026-11-29T01:25:38Z","source":"seccomp","syscall":"connect","pid":12280,"tid":12281,"dst":"[::1]:9050","verdict":"allowed","reason":"proxy","action":"allowed"}"#;
const KERNEL: &str = r#"{"schema":1,"seq":3,"ts":"2026-11-29T01:25:39.5Z","source":"kernel","syscall":"sendmsg","pid":299,"ppid":1,"tid":300,"comm":"dig","cgroup":"/system.slice/x.service","missing":["exe","argv"],"cookie":7,"family":"inet6","type":"dgram","protocol":"udp","dst":"[2001:db8::1]:53","local":"[::]:40000","verdict":"leak","reason":"direct-udp","action":"logged","kernel":{"cgroup_id":4186,"gid":0,"hook":"sendmsg6","netns_cookie":1,"uid":0}}"#;
const SUMMARY_RUN: &str = r#"{"schema":1,"summary":{"allowed":3,"blocked":1,"config":"/etc/sockstrace/sockstrace.toml","dns":null,"events":5,"exit_status":7,"invalid":1,"kernel_lost_events":null,"killed":0,"layers":{"fence":"on (landlock)","kernel":"on (enforcing, cgroup /sys/fs/cgroup/x id 9)","program":"uid 65534 (nobody), no capabilities","seccomp":"on","syscalls":"all"},"leak_table":[{"comm":"curl","count":1,"dst":"127.0.0.2:18080","protocol":"tcp","reason":"direct-tcp","syscall":"connect"},{"comm":"dig","count":1,"dst":"[2001:db8::1]:53","protocol":"udp","reason":"direct-udp","syscall":"sendmsg"}],"leaks":2,"logged":1,"socksified":0,"syscalls_denied":{},"udp_connects_refused":0,"udp_proxy":{"state":"on"}}}"#;
const SUMMARY_AUDIT: &str = r#"{"schema":1,"summary":{"allowed":2,"audit":{"enforce":false},"blocked":0,"by_process":[],"config":"/etc/sockstrace/sockstrace.toml","dns":null,"events":3,"exempt":{},"exit_status":7,"invalid":1,"kernel_lost_events":0,"killed":0,"layers":{"kernel":"on","seccomp":"off"},"leak_table":[],"leaks":0,"logged":0,"socksified":0,"syscalls_denied":{"ptrace":1},"udp_connects_refused":0,"udp_proxy":null}}"#;

#[test]
fn a_run_report_is_written_byte_for_byte_as_the_contract_says() {
    let layers = Layers {
        seccomp: "on".into(),
        kernel: "on (enforcing, cgroup /sys/fs/cgroup/x id 9)".into(),
        fence: "on (landlock)".into(),
        program: "uid 65534 (nobody), no capabilities".into(),
        syscalls: "all".into(),
        kernel_dropped: None,
        dns: None,
        udp_proxy: Some(serde_json::json!({"state": "on"})),
    };
    let text = written(vec![leak(), allowed(), kernel()], layers, serde_json::Map::new());
    let expected = format!("{LEAK}\n{ALLOWED}\n{KERNEL}\n{SUMMARY_RUN}\n");
    assert_eq!(text, expected, "\n got: {text}\nwant: {expected}");
}

#[test]
fn an_audit_summary_keeps_its_extra_keys_in_order() {
    let layers =
        Layers { seccomp: "off".into(), kernel: "on".into(), kernel_dropped: Some(0), ..Layers::default() };
    let mut denied = Event::new("ptrace", 1, Decision::allowed(Reason::SyscallDenied), Action::Blocked);
    denied.ts = ts(TS);
    let mut extra = serde_json::Map::new();
    extra.insert("audit".into(), serde_json::json!({"enforce": false}));
    extra.insert("by_process".into(), serde_json::json!([]));
    extra.insert("exempt".into(), serde_json::json!({}));
    let text = written(vec![denied], layers, extra);
    let summary = text.lines().last().unwrap();
    assert_eq!(summary, SUMMARY_AUDIT, "\n got: {summary}\nwant: {SUMMARY_AUDIT}");
}

fn ts(text: &str) -> sockstrace::schema::Timestamp {
    sockstrace::schema::Timestamp::parse(text).unwrap()
}

#[test]
fn what_is_written_reads_back_as_the_same_events_and_summary() {
    let events = vec![leak(), allowed(), kernel()];
    let mut expected: Vec<sockstrace::schema::Event> = events.iter().map(|e| e.line().clone()).collect();
    for (i, e) in expected.iter_mut().enumerate() {
        e.seq = i as u64 + 1;
    }
    let text = written(
        events,
        Layers { seccomp: "on".into(), kernel: "off".into(), ..Layers::default() },
        Default::default(),
    );
    let report = crate::report_reader::read::parse_str(&text);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let read: Vec<_> = report.events.iter().map(|r| r.event.clone()).collect();
    assert_eq!(read, expected);
    let summary = report.summary.expect("a summary line");
    assert_eq!(
        (summary.events, summary.leaks, summary.allowed, summary.exit_status),
        (Some(5), Some(2), Some(3), Some(7))
    );
    assert_eq!(summary.leak_table.len(), 2);
    assert!(summary.extra.is_empty(), "{:?}", summary.extra);
}

#[test]
fn the_pinned_lines_read_and_write_back_unchanged() {
    use sockstrace::schema::{Event, SummaryLine};
    for line in [LEAK, ALLOWED, KERNEL] {
        let event: Event = serde_json::from_str(line).unwrap();
        assert_eq!(serde_json::to_string(&event).unwrap(), line);
    }
    for line in [SUMMARY_RUN, SUMMARY_AUDIT] {
        let summary: SummaryLine = serde_json::from_str(line).unwrap();
        assert_eq!(summary.to_json().to_string(), line);
    }
}
