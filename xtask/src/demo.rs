//! `cargo xtask demo`: the first thing to run. Sets the machine up, builds sockstrace, starts a
//! web page on 127.0.0.2 and microsocks on 127.0.0.1, then shows three runs of curl under
//! `sockstrace run`: through the proxy (fine), around it (blocked), around it with `--on-leak log`
//! (allowed, reported as JSON). It checks what it claims and fails if a claim does not hold.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    process::Command,
};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::{
    bench::fixture::{build_sockstrace, HttpServer, Microsocks},
    cmd, setup,
};

/// The page the demo server answers with.
const PAGE: &str = "hello from the sockstrace demo web server on 127.0.0.2\n";

/// Proxy settings curl would otherwise honour; the demo's curl must go where its arguments say.
const PROXY_ENV: &[&str] = &["http_proxy", "https_proxy", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"];

/// `demo [--sockstrace PATH]`: with a path, shows that binary (an installed package's) instead
/// of building one.
pub fn run(args: &[String]) -> Result<()> {
    let given = match args {
        [] => None,
        [flag, path] if flag == "--sockstrace" => Some(std::path::PathBuf::from(path)),
        _ => bail!("usage: cargo xtask demo [--sockstrace PATH]"),
    };
    setup::run()?;
    let sockstrace = match given {
        Some(path) => path,
        None => build_sockstrace()?,
    };
    run_with(&sockstrace)
}

/// The three runs, with `sockstrace` as the binary shown.
pub fn run_with(sockstrace: &Path) -> Result<()> {
    let server = HttpServer::start(Ipv4Addr::new(127, 0, 0, 2), PAGE)?;
    let proxy = Microsocks::start()?;
    let demo = Demo { sockstrace, proxy: proxy.addr(), server: &server };
    println!();
    println!("demo: a web server (a thread of this task) listens on {}", server.addr());
    println!("      (by hand: python3 -m http.server {} --bind 127.0.0.2)", server.addr().port());
    println!("demo: a SOCKS5 proxy listens on {}: $ {}", proxy.addr(), proxy.command());
    demo.through_proxy()?;
    demo.direct_blocked()?;
    demo.direct_logged()?;
    println!();
    println!("demo: all claims verified. Next: `sockstrace run --help`, docs/ARCHITECTURE.md.");
    Ok(())
}

struct Demo<'a> {
    sockstrace: &'a Path,
    proxy: SocketAddr,
    server: &'a HttpServer,
}

/// What one shown command did.
struct Shown {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Demo<'_> {
    fn url(&self) -> String {
        format!("http://{}/", self.server.addr())
    }

    /// `sockstrace run --proxy P [extra]... -- curl -sS [curl_args]... URL`
    fn command(&self, extra: &[&str], curl_args: &[&str]) -> Command {
        let mut command = Command::new(self.sockstrace);
        command.args(["run", "--proxy", &self.proxy.to_string()]).args(extra);
        command.args(["--", "curl", "-sS"]).args(curl_args).arg(self.url());
        for var in PROXY_ENV {
            command.env_remove(var);
        }
        command
    }

    /// (a) curl asks the proxy for the page: allowed, no leak.
    fn through_proxy(&self) -> Result<()> {
        let socks = format!("{}", self.proxy);
        let mut command = self.command(&[], &["--socks5-hostname", &socks]);
        let before = self.server.connections();
        let shown = show(
            "(a) curl fetches the page through the SOCKS proxy: sockstrace allows it, no leak.",
            &mut command,
        )?;
        check(shown.code == Some(0), "sockstrace exited 0 (curl's own status)")?;
        check(shown.stdout == PAGE, "curl printed the page")?;
        check(shown.stderr.contains("summary: 0 leak(s)"), "sockstrace reported 0 leaks")?;
        check(self.server.connections() == before + 1, "the web server saw one connection (from microsocks)")
    }

    /// (b) curl connects directly: blocked with EPERM, curl fails, the server sees nothing.
    fn direct_blocked(&self) -> Result<()> {
        let mut command = self.command(&[], &[]);
        let before = self.server.connections();
        let shown = show(
            "(b) curl connects to the web server directly, around the proxy: sockstrace blocks the \
             connect (EPERM) and reports the leak; curl fails.",
            &mut command,
        )?;
        check(shown.code.is_some_and(|code| code != 0), "curl failed (non-zero exit status)")?;
        check(shown.stdout.is_empty(), "curl printed no page")?;
        let leak = format!("LEAK BLOCKED: connect tcp {}", self.server.addr());
        check(shown.stderr.contains(&leak), &format!("sockstrace printed `{leak}`"))?;
        check(self.server.connections() == before, "the web server saw no connection")
    }

    /// (c) the same with `--on-leak log --report -`: allowed, and one JSON line says it leaked.
    fn direct_logged(&self) -> Result<()> {
        let mut command = self.command(&["--on-leak", "log", "--report", "-"], &[]);
        let before = self.server.connections();
        let shown = show(
            "(c) the same direct connection with `--on-leak log --report -`: sockstrace lets it \
             through and writes one JSON line per decision (the leak, plus any unix-socket \
             connects curl makes), then a summary line, to stdout.",
            &mut command,
        )?;
        check(shown.code == Some(0), "sockstrace exited 0 (curl's own status)")?;
        check(shown.stdout.contains(PAGE), "curl printed the page")?;
        let events = json_lines(&shown.stdout);
        let dst = self.server.addr().to_string();
        let leak = events.iter().find(|e| {
            e["verdict"] == "leak" && e["action"] == "logged" && e["syscall"] == "connect" && e["dst"] == dst
        });
        check(leak.is_some(), &format!("the report has a `leak`/`logged` connect event for {dst}"))?;
        let leaks = events.last().and_then(|e| e["summary"]["leaks"].as_u64());
        check(leaks.is_some_and(|n| n >= 1), "the last JSON line is a summary counting the leak")?;
        check(self.server.connections() == before + 1, "the web server saw the direct connection")
    }
}

/// Prints the explanation and the command, runs it, prints its output and exit status.
fn show(explanation: &str, command: &mut Command) -> Result<Shown> {
    println!();
    println!("== {explanation}");
    let shown = cmd::display(command);
    println!("$ {shown}");
    let output = command.output().with_context(|| format!("failed to start `{shown}`"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    print!("{stdout}");
    if !stdout.is_empty() && !stdout.ends_with('\n') {
        println!();
    }
    print!("{stderr}");
    println!(
        "(exit status: {})",
        output.status.code().map_or("killed by a signal".into(), |c| c.to_string())
    );
    Ok(Shown { code: output.status.code(), stdout, stderr })
}

/// The lines of `text` that parse as JSON objects (curl's page is mixed in on stdout).
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(Value::is_object)
        .collect()
}

/// Prints `ok: claim`, or fails the demo with it.
fn check(holds: bool, claim: &str) -> Result<()> {
    if !holds {
        bail!("demo claim does not hold: {claim}");
    }
    println!("   ok: {claim}");
    Ok(())
}
