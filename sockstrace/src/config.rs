//! The configuration file (TOML; `--config FILE` or `SOCKSTRACE_CONFIG`) and
//! its place in the precedence: command-line flags, then `SOCKSTRACE_*`
//! environment variables, then the file, then the defaults.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, ValueEnum};
use serde::Deserialize;

use crate::cli::{DnsArg, IncomingArg, KernelLayer, OnLeak, RunArgs};

/// Every `run` option, by its long name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub proxy: Option<Vec<String>>,
    pub http_proxy: Option<Vec<String>>,
    pub allow: Option<Vec<String>>,
    pub allow_loopback: Option<bool>,
    pub incoming: Option<String>,
    pub allow_incoming_from: Option<Vec<String>>,
    pub on_leak: Option<String>,
    pub proxy_user: Option<String>,
    pub proxy_pass: Option<String>,
    pub one_circuit: Option<bool>,
    pub report: Option<PathBuf>,
    pub allow_io_uring: Option<bool>,
    pub kernel: Option<String>,
    pub inspect_socks: Option<bool>,
    pub require_socks_auth: Option<bool>,
    pub isolation_regex: Option<String>,
    pub dns: Option<String>,
    pub dns_upstream: Option<String>,
    pub quiet: Option<bool>,
    pub fail_on_leak: Option<bool>,
    /// `audit --exempt-cgroup` (audit only).
    pub exempt_cgroup: Option<Vec<PathBuf>>,
    /// `audit --exempt-user` (audit only).
    pub exempt_user: Option<Vec<String>>,
    /// `audit --exempt-exe` (audit only).
    pub exempt_exe: Option<Vec<PathBuf>>,
}

/// Fills `audit`'s exemptions from the file where the command line gave none of that kind
/// (the lists add up: a flag replaces the file's list of its kind only).
// Called once `audit` loads the configuration file (it does not yet).
#[allow(dead_code)]
pub fn apply_audit_exemptions(args: &mut crate::audit::AuditArgs, file: &FileConfig) {
    if let (Some(v), true) = (&file.exempt_cgroup, args.exempt_cgroups.is_empty()) {
        args.exempt_cgroups.clone_from(v);
    }
    if let (Some(v), true) = (&file.exempt_user, args.exempt_users.is_empty()) {
        args.exempt_users.clone_from(v);
    }
    if let (Some(v), true) = (&file.exempt_exe, args.exempt_exes.is_empty()) {
        args.exempt_exes.clone_from(v);
    }
}

pub fn load(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| format!("in {}", path.display()))
}

pub fn parse(text: &str) -> Result<FileConfig> {
    toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
}

/// Whether the user set this option on the command line or in the environment.
fn set_by_user(matches: &ArgMatches, id: &str) -> bool {
    matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
}

fn each<T>(values: &[String], parse: impl Fn(&str) -> Result<T, String>, key: &str) -> Result<Vec<T>> {
    values.iter().map(|v| parse(v).map_err(|e| anyhow::anyhow!("{key}: {e}"))).collect()
}

fn enum_value<T: ValueEnum>(value: &str, key: &str) -> Result<T> {
    T::from_str(value, true).map_err(|e| anyhow::anyhow!("{key}: {e}"))
}

/// Fills every option the user did not set from the file.
pub fn apply(args: &mut RunArgs, matches: &ArgMatches, file: FileConfig) -> Result<()> {
    let user = |id: &str| set_by_user(matches, id);
    if let (Some(v), false) = (file.proxy, user("proxies")) {
        args.policy.proxies = each(&v, crate::cli::parse_proxy_arg, "proxy")?;
    }
    if let (Some(v), false) = (file.http_proxy, user("http_proxies")) {
        args.http_proxies = each(&v, crate::cli::parse_proxy_arg, "http-proxy")?;
    }
    if let (Some(v), false) = (file.allow, user("allow")) {
        args.policy.allow = each(&v, crate::cli::parse_allow_arg, "allow")?;
    }
    if let (Some(v), false) = (file.allow_incoming_from, user("allow_incoming_from")) {
        args.allow_incoming_from = each(&v, crate::cli::parse_network_arg, "allow-incoming-from")?;
    }
    if let (Some(v), false) = (file.incoming, user("incoming")) {
        args.policy.incoming = enum_value::<IncomingArg>(&v, "incoming")?;
    }
    if let (Some(v), false) = (file.dns, user("dns")) {
        args.dns = enum_value::<DnsArg>(&v, "dns")?;
    }
    if let (Some(v), false) = (file.dns_upstream, user("dns_upstream")) {
        args.dns_upstream =
            crate::cli::parse_dns_upstream_arg(&v).map_err(|e| anyhow::anyhow!("dns-upstream: {e}"))?;
    }
    if let (Some(v), false) = (file.isolation_regex, user("isolation_regex")) {
        args.isolation_regex =
            Some(crate::cli::parse_regex_arg(&v).map_err(|e| anyhow::anyhow!("isolation-regex: {e}"))?);
    }
    if let (Some(v), false) = (file.kernel, user("kernel")) {
        args.kernel = enum_value::<KernelLayer>(&v, "kernel")?;
    }
    if let (Some(v), false) = (file.on_leak, user("on_leak")) {
        args.on_leak = enum_value::<OnLeak>(&v, "on-leak")?;
    }
    if let (Some(v), false) = (file.proxy_user, user("proxy_user")) {
        args.proxy_user = Some(v);
    }
    if let (Some(v), false) = (file.proxy_pass, user("proxy_pass")) {
        args.proxy_pass = Some(v);
    }
    if let (Some(v), false) = (file.report, user("report")) {
        args.report = Some(v);
    }
    let flags: [(&str, Option<bool>, &mut bool); 7] = [
        ("inspect_socks", file.inspect_socks, &mut args.inspect_socks),
        ("require_socks_auth", file.require_socks_auth, &mut args.require_socks_auth),
        ("allow_loopback", file.allow_loopback, &mut args.policy.allow_loopback),
        ("one_circuit", file.one_circuit, &mut args.one_circuit),
        ("allow_io_uring", file.allow_io_uring, &mut args.allow_io_uring),
        ("quiet", file.quiet, &mut args.quiet),
        ("fail_on_leak", file.fail_on_leak, &mut args.fail_on_leak),
    ];
    for (id, value, slot) in flags {
        if let (Some(v), false) = (value, user(id)) {
            *slot = v;
        }
    }
    if args.proxy_user.is_some() != args.proxy_pass.is_some() {
        anyhow::bail!("proxy-user and proxy-pass go together");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::cli::{Cli, Command};

    fn run_args(argv: &[&str], file: &str) -> Result<RunArgs> {
        let matches = Cli::command().try_get_matches_from(argv).unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        let Command::Run(mut args) = cli.command else { panic!("not run") };
        apply(&mut args, matches.subcommand_matches("run").unwrap(), parse(file)?)?;
        Ok(args)
    }

    const FILE: &str = r#"
proxy = ["127.0.0.1:1080"]
allow = ["10.0.0.0/8:443"]
allow-loopback = true
on-leak = "log"
quiet = true
"#;

    #[test]
    fn the_file_fills_what_the_flags_leave_unset() {
        let args = run_args(&["sockstrace", "run", "--", "true"], FILE).unwrap();
        assert_eq!(args.policy.proxies, vec!["127.0.0.1:1080".parse::<std::net::SocketAddr>().unwrap()]);
        assert_eq!(args.policy.allow.len(), 1);
        assert!(args.policy.allow_loopback && args.quiet);
        assert_eq!(args.on_leak, OnLeak::Log);
    }

    #[test]
    fn flags_win_over_the_file() {
        let argv = ["sockstrace", "run", "--proxy", "127.0.0.1:9999", "--on-leak", "kill", "--", "true"];
        let args = run_args(&argv, FILE).unwrap();
        assert_eq!(args.policy.proxies, vec!["127.0.0.1:9999".parse::<std::net::SocketAddr>().unwrap()]);
        assert_eq!(args.on_leak, OnLeak::Kill);
        assert_eq!(args.policy.allow.len(), 1, "options the flags leave unset still come from the file");
    }

    #[test]
    fn the_documented_example_is_valid() {
        let example = include_str!("../../docs/sockstrace.example.toml");
        let args = run_args(&["sockstrace", "run", "--", "true"], example).unwrap();
        assert_eq!(args.policy.proxies.len(), 2);
        assert_eq!(args.policy.allow.len(), 2);
        assert_eq!(args.allow_incoming_from.len(), 1);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let unknown = run_args(&["sockstrace", "run", "--", "true"], "prxy = []").unwrap_err();
        assert!(format!("{unknown:#}").contains("prxy"), "{unknown:#}");
        let bad_value = run_args(&["sockstrace", "run", "--", "true"], "proxy = [\"nope\"]").unwrap_err();
        assert!(format!("{bad_value:#}").contains("nope"), "{bad_value:#}");
        let bad_enum = run_args(&["sockstrace", "run", "--", "true"], "on-leak = \"maybe\"").unwrap_err();
        assert!(format!("{bad_enum:#}").contains("on-leak"), "{bad_enum:#}");
    }
}

#[cfg(test)]
mod audit_keys {
    #[test]
    fn exemptions_are_keys_of_the_file() {
        let file = super::parse(
            "exempt-cgroup = [\"system.slice/tor.service\"]\nexempt-user = [\"debian-tor\"]\nexempt-exe = [\"/usr/bin/tor\"]\n",
        )
        .unwrap();
        use clap::Parser as _;
        let cli = crate::cli::Cli::try_parse_from(["sockstrace", "audit", "--exempt-user", "110"]).unwrap();
        let crate::cli::Command::Audit(mut args) = cli.command else { panic!("not audit") };
        super::apply_audit_exemptions(&mut args, &file);
        assert_eq!(args.exempt_cgroups, vec![std::path::PathBuf::from("system.slice/tor.service")]);
        assert_eq!(args.exempt_users, vec!["110".to_string()], "the flag wins");
        assert_eq!(args.exempt_exes, vec![std::path::PathBuf::from("/usr/bin/tor")]);
    }
}
