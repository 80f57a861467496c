//! `sockstrace audit` options.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli::PolicyArgs;
use crate::kernel::exempt::ExemptArgs;
use crate::policy::Policy;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Watch this cgroup and every cgroup below it: a path in the cgroup2 hierarchy, absolute
    /// or relative to its mount (e.g. system.slice/nginx.service) [default: the root cgroup,
    /// the whole machine]
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    #[command(flatten)]
    pub policy: PolicyArgs,

    /// Refuse leaks in the kernel (the process gets EPERM) and report them as blocked; without
    /// it leaks are only reported (action "logged")
    #[arg(long)]
    pub enforce: bool,

    /// Append one JSON object per leak to FILE ('-' for stdout), and a summary line at the end
    #[arg(long, value_name = "FILE", env = "SOCKSTRACE_REPORT")]
    pub report: Option<PathBuf>,

    /// Stop after SECS seconds (fractions allowed) [default: run until SIGINT or SIGTERM]
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Serve Prometheus metrics at http://ADDR/metrics
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// No human lines on stderr but errors and lost events (the JSON report is unaffected)
    #[arg(long, short)]
    pub quiet: bool,

    /// Read options from this TOML file, the one `run` reads (flags and SOCKSTRACE_* variables
    /// win over it) [default: ~/.config/sockstrace/sockstrace.toml, else for root
    /// /etc/sockstrace/sockstrace.toml, if there]
    #[arg(long, value_name = "FILE", env = "SOCKSTRACE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Exempt the processes of this cgroup and of every cgroup below it (the proxy's own:
    /// Tor connects to its relays directly): neither reported nor refused, only counted in
    /// the summary; repeatable; a path as --cgroup takes it
    #[arg(long = "exempt-cgroup", value_name = "PATH")]
    pub exempt_cgroups: Vec<PathBuf>,

    /// Exempt the processes of this user (a name or a uid); repeatable
    #[arg(long = "exempt-user", value_name = "USER|UID")]
    pub exempt_users: Vec<String>,

    /// Exempt the processes running this executable (an absolute path, compared with the
    /// file name execve is given and its canonical form; the mark is inherited at fork and
    /// dropped at the next exec); repeatable
    #[arg(long = "exempt-exe", value_name = "PATH")]
    pub exempt_exes: Vec<PathBuf>,
}

impl AuditArgs {
    /// The exemptions, as given.
    pub fn exemptions(&self) -> ExemptArgs {
        ExemptArgs {
            cgroups: self.exempt_cgroups.clone(),
            users: self.exempt_users.clone(),
            exes: self.exempt_exes.clone(),
        }
    }

    /// The policy the kernel judges with.
    pub fn policy(&self) -> Policy {
        Policy {
            proxies: self.policy.proxies_or_default(),
            allow: self.policy.allow.clone(),
            allow_loopback: self.policy.allow_loopback,
            incoming: self.policy.incoming(),
            ..Policy::default()
        }
    }
}

/// A positive, finite number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("{text:?}: the duration must be a positive number of seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{default_proxies, Cli, Command};
    use crate::policy::Incoming;

    fn parse(args: &[&str]) -> Result<AuditArgs, clap::Error> {
        let argv = ["sockstrace", "audit"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Audit(args) => Ok(args),
            other => panic!("not an audit command: {other:?}"),
        }
    }

    #[test]
    fn defaults_watch_the_whole_machine_observing_tor_ports() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.cgroup, None);
        assert!(!args.enforce);
        assert_eq!(args.duration, None);
        let policy = args.policy();
        assert_eq!(policy.proxies, default_proxies());
        assert_eq!(policy.incoming, Incoming::Block);
    }

    #[test]
    fn parses_a_full_line() {
        let args = parse(&[
            "--cgroup",
            "system.slice/nginx.service",
            "--proxy",
            "127.0.0.1:1080",
            "--allow",
            "10.0.0.0/8:443",
            "--allow-loopback",
            "--enforce",
            "--report",
            "-",
            "--duration",
            "2.5",
            "--metrics",
            "127.0.0.1:9101",
            "--incoming",
            "allow",
        ])
        .unwrap();
        assert_eq!(args.cgroup.as_deref(), Some(std::path::Path::new("system.slice/nginx.service")));
        assert!(args.enforce && args.policy.allow_loopback);
        assert_eq!(args.duration, Some(Duration::from_millis(2500)));
        assert_eq!(args.metrics, Some("127.0.0.1:9101".parse().unwrap()));
        let policy = args.policy();
        assert_eq!(policy.proxies, vec!["127.0.0.1:1080".parse::<SocketAddr>().unwrap()]);
        assert_eq!(policy.allow.len(), 1);
        assert_eq!(policy.incoming, Incoming::Allow);
    }

    #[test]
    fn exemptions_repeat() {
        let args = parse(&[
            "--exempt-cgroup",
            "system.slice/tor.service",
            "--exempt-user",
            "debian-tor",
            "--exempt-user",
            "110",
            "--exempt-exe",
            "/usr/bin/tor",
        ])
        .unwrap();
        let ex = args.exemptions();
        assert_eq!(ex.cgroups, vec![PathBuf::from("system.slice/tor.service")]);
        assert_eq!(ex.users, vec!["debian-tor".to_string(), "110".into()]);
        assert_eq!(ex.exes, vec![PathBuf::from("/usr/bin/tor")]);
        assert_eq!(parse(&[]).unwrap().exemptions(), ExemptArgs::default());
    }

    #[test]
    fn refuses_bad_durations_and_addresses() {
        for bad in ["0", "-1", "soon", "inf", "NaN"] {
            let err = parse(&["--duration", bad]).unwrap_err();
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
        assert!(parse(&["--metrics", "localhost"]).is_err());
        assert!(parse(&["--proxy", "1.2.3.4"]).is_err());
    }
}
