//! `sockstrace audit` options: what the command line (`cli::AuditArgs`) makes.

pub use crate::cli::AuditArgs;
use crate::kernel::exempt::ExemptArgs;
use crate::policy::Policy;

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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;

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
