//! `--metrics ADDR`: a Prometheus text endpoint (`GET /metrics`), served with tokio's
//! `TcpListener` and a minimal HTTP/1.x response (one request per connection).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use sockstrace::schema::Name;

use super::tally::action_name;
use crate::report_writer::Event;

/// The largest request head we read.
const MAX_HEAD: usize = 8192;
/// How long one client may take to send its request and take the answer.
const CLIENT_PATIENCE: Duration = Duration::from_secs(5);

/// The counters the endpoint shows.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Reported events by (verdict, action, reason).
    events: Mutex<BTreeMap<(Name, &'static str, Name), u64>>,
    /// Events the kernel dropped (its ring buffer was full).
    lost: AtomicU64,
    /// Events reported without some process field.
    attribution_missing: AtomicU64,
    enforcing: bool,
}

impl Metrics {
    pub fn new(enforcing: bool) -> Self {
        Self { enforcing, ..Self::default() }
    }

    /// Counts one reported event.
    pub fn record(&self, event: &Event) {
        if let Ok(mut events) = self.events.lock() {
            *events
                .entry((event.verdict.clone(), action_name(event.action), event.reason.clone()))
                .or_default() += 1;
        }
        if !event.missing.is_empty() {
            self.attribution_missing.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The kernel's count of dropped events so far.
    pub fn set_lost(&self, lost: u64) {
        self.lost.fetch_max(lost, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP sockstrace_events_total Events reported, by verdict, action and reason.\n");
        out.push_str("# TYPE sockstrace_events_total counter\n");
        if let Ok(events) = self.events.lock() {
            for ((verdict, action, reason), count) in events.iter() {
                let _ = writeln!(
                    out,
                    "sockstrace_events_total{{verdict=\"{}\",action=\"{}\",reason=\"{}\"}} {count}",
                    escape(verdict),
                    escape(action),
                    escape(reason)
                );
            }
        }
        let gauges = [
            (
                "sockstrace_lost_events_total",
                "counter",
                "Events the kernel dropped because its ring buffer was full.",
                self.lost.load(Ordering::Relaxed),
            ),
            (
                "sockstrace_attribution_missing_total",
                "counter",
                "Events reported without exe, argv or cgroup (the process was gone).",
                self.attribution_missing.load(Ordering::Relaxed),
            ),
            (
                "sockstrace_enforcing",
                "gauge",
                "1 when leaks are refused in the kernel.",
                u64::from(self.enforcing),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
        }
        out
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Answers every connection to `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, metrics.clone()));
            }
            // Out of descriptors and the like: wait, then go on serving.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn answer(mut stream: TcpStream, metrics: Arc<Metrics>) {
    let Ok(head) = tokio::time::timeout(CLIENT_PATIENCE, read_head(&mut stream)).await else {
        return;
    };
    let response = respond(head.as_deref(), &metrics);
    let _ = tokio::time::timeout(CLIENT_PATIENCE, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// The request head (up to the blank line), or `None` when it is too long or the client hung
/// up first.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// The whole HTTP response to a request head (`None`: unreadable or too long).
fn respond(head: Option<&str>, metrics: &Metrics) -> String {
    let request_line = head.and_then(|h| h.lines().next()).unwrap_or("");
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        _ if head.is_none() => ("400 Bad Request", "text/plain", "bad request\n".to_owned()),
        ("GET" | "HEAD", "/metrics") => {
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.render())
        }
        ("GET" | "HEAD", "/") => {
            ("200 OK", "text/plain", "sockstrace audit: metrics at /metrics\n".to_owned())
        }
        ("GET" | "HEAD", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => ("405 Method Not Allowed", "text/plain", "only GET\n".to_owned()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Decision, Reason};
    use crate::report_writer::Action;

    fn metrics() -> Metrics {
        let m = Metrics::new(true);
        let mut e = Event::new("connect", 1, Decision::leak(Reason::DirectTcp), Action::Blocked);
        m.record(&e);
        m.record(&e);
        e.missing = vec!["exe".into()];
        e.action = Action::Logged;
        m.record(&e);
        m.set_lost(7);
        m.set_lost(3);
        m
    }

    #[test]
    fn renders_counters_by_verdict_action_and_reason() {
        let text = metrics().render();
        assert!(
            text.contains(
                "sockstrace_events_total{verdict=\"leak\",action=\"blocked\",reason=\"direct-tcp\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("action=\"logged\",reason=\"direct-tcp\"} 1\n"), "{text}");
        assert!(text.contains("\nsockstrace_lost_events_total 7\n"), "{text}");
        assert!(text.contains("\nsockstrace_attribution_missing_total 1\n"), "{text}");
        assert!(text.contains("\nsockstrace_enforcing 1\n"), "{text}");
        // Every sample line belongs to a declared metric.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{line}");
        }
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn answers_http() {
        let m = metrics();
        let ok = respond(Some("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), &m);
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        assert!(head.contains("text/plain; version=0.0.4"));
        let head_only = respond(Some("HEAD /metrics HTTP/1.0\r\n\r\n"), &m);
        assert!(head_only.ends_with("\r\n\r\n"), "{head_only}");
        assert!(respond(Some("GET /nope HTTP/1.1\r\n\r\n"), &m).starts_with("HTTP/1.1 404"));
        assert!(respond(Some("POST /metrics HTTP/1.1\r\n\r\n"), &m).starts_with("HTTP/1.1 405"));
        assert!(respond(None, &m).starts_with("HTTP/1.1 400"));
    }

    #[tokio::test]
    async fn serves_over_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, Arc::new(metrics())));
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let mut text = String::new();
        client.read_to_string(&mut text).await.unwrap();
        server.abort();
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(text.contains("sockstrace_lost_events_total 7"), "{text}");
    }
}
