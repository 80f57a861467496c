//! The configuration file (TOML; `--config FILE` or `SOCKSTRACE_CONFIG`, else
//! the first of `$XDG_CONFIG_HOME/sockstrace/sockstrace.toml` (or
//! `~/.config/...`) and, for root, `/etc/sockstrace/sockstrace.toml` that
//! exists) and its place in the precedence: command-line flags, then
//! `SOCKSTRACE_*` environment variables, then the file, then the defaults.
//! `run` and `audit` read the same file; each takes the keys it has.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, ValueEnum};
use serde::Deserialize;

use crate::audit::AuditArgs;
use crate::cli::{DnsArg, IncomingArg, KernelLayer, OnLeak, PolicyArgs, RunArgs};

/// The system-wide file, read by root when the user has none.
pub const SYSTEM_FILE: &str = "/etc/sockstrace/sockstrace.toml";

/// Every `run` and `audit` option, by its long name (each command ignores the
/// other's keys).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub proxy: Option<Vec<String>>,
    pub http_proxy: Option<Vec<String>>,
    pub udp_proxy: Option<String>,
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
    #[serde(alias = "isolate_network")]
    pub isolate_network: Option<bool>,
    #[serde(alias = "bridge_abstract")]
    pub bridge_abstract: Option<Vec<String>>,
    pub kernel: Option<String>,
    pub inspect_socks: Option<bool>,
    pub require_socks_auth: Option<bool>,
    pub isolation_regex: Option<String>,
    pub dns: Option<String>,
    pub dns_upstream: Option<String>,
    pub quiet: Option<bool>,
    pub fail_on_leak: Option<bool>,
    /// `run` only: `all`, `strict` or a profile file.
    pub syscalls: Option<String>,
    /// `run` only: `--stack`, `--core-on-leak`, `--core-limit`.
    pub stack: Option<bool>,
    pub core_on_leak: Option<PathBuf>,
    pub core_limit: Option<u32>,
    /// `run` only: the user the program runs as.
    pub user: Option<String>,
    /// `audit` only.
    pub cgroup: Option<PathBuf>,
    /// `audit` only.
    pub enforce: Option<bool>,
    /// `audit` only.
    pub metrics: Option<String>,
    /// `audit --exempt-cgroup` (audit only).
    pub exempt_cgroup: Option<Vec<PathBuf>>,
    /// `audit --exempt-user` (audit only).
    pub exempt_user: Option<Vec<String>>,
    /// `audit --exempt-exe` (audit only).
    pub exempt_exe: Option<Vec<PathBuf>>,
}

/// The file to read: the one given (`--config`, `SOCKSTRACE_CONFIG`), else
/// the default that exists.
pub fn locate(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = given {
        return Some(path.to_path_buf());
    }
    let xdg = std::env::var_os("XDG_CONFIG_HOME");
    let home = std::env::var_os("HOME");
    let root = nix::unistd::geteuid().is_root();
    default_file(xdg.as_deref(), home.as_deref(), root, |p| p.is_file())
}

/// The default file: the user's (`$XDG_CONFIG_HOME`, which must be absolute
/// as the XDG spec says, else `$HOME/.config`), then for root the system's;
/// the first for which `exists` holds.
pub fn default_file(
    xdg_config_home: Option<&OsStr>,
    home: Option<&OsStr>,
    root: bool,
    exists: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let user_dir = xdg_config_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(PathBuf::from).filter(|p| p.is_absolute()).map(|h| h.join(".config")));
    let user = user_dir.map(|d| d.join("sockstrace").join("sockstrace.toml"));
    let system = root.then(|| PathBuf::from(SYSTEM_FILE));
    [user, system].into_iter().flatten().find(|p| exists(p))
}

/// The line that names the file read.
pub fn used_line(path: &Path) -> String {
    format!("sockstrace: configuration from {}", path.display())
}

/// Fills `audit`'s exemptions from the file where the command line gave none of that kind
/// (the lists add up: a flag replaces the file's list of its kind only).
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

/// Fills the policy options `run` and `audit` share that the user did not set.
fn apply_policy(policy: &mut PolicyArgs, matches: &ArgMatches, file: &mut FileConfig) -> Result<()> {
    let user = |id: &str| set_by_user(matches, id);
    if let (Some(v), false) = (file.proxy.take(), user("proxies")) {
        policy.proxies = each(&v, crate::cli::parse_proxy_arg, "proxy")?;
    }
    if let (Some(v), false) = (file.allow.take(), user("allow")) {
        policy.allow = each(&v, crate::cli::parse_allow_arg, "allow")?;
    }
    if let (Some(v), false) = (file.incoming.take(), user("incoming")) {
        policy.incoming = enum_value::<IncomingArg>(&v, "incoming")?;
    }
    if let (Some(v), false) = (file.allow_loopback, user("allow_loopback")) {
        policy.allow_loopback = v;
    }
    Ok(())
}

/// Fills every `audit` option the user did not set from the file (its own
/// keys and the shared ones; `run`'s are ignored).
pub fn apply_audit(args: &mut AuditArgs, matches: &ArgMatches, mut file: FileConfig) -> Result<()> {
    let user = |id: &str| set_by_user(matches, id);
    apply_policy(&mut args.policy, matches, &mut file)?;
    apply_audit_exemptions(args, &file);
    if let (Some(v), false) = (file.cgroup, user("cgroup")) {
        args.cgroup = Some(v);
    }
    if let (Some(v), false) = (file.metrics, user("metrics")) {
        args.metrics = Some(v.parse().map_err(|e| anyhow::anyhow!("metrics: {v:?}: {e}"))?);
    }
    if let (Some(v), false) = (file.report, user("report")) {
        args.report = Some(v);
    }
    if let (Some(v), false) = (file.enforce, user("enforce")) {
        args.enforce = v;
    }
    if let (Some(v), false) = (file.quiet, user("quiet")) {
        args.quiet = v;
    }
    Ok(())
}

/// Fills every `run` option the user did not set from the file (its own keys
/// and the shared ones; `audit`'s are ignored).
pub fn apply(args: &mut RunArgs, matches: &ArgMatches, mut file: FileConfig) -> Result<()> {
    let user = |id: &str| set_by_user(matches, id);
    apply_policy(&mut args.policy, matches, &mut file)?;
    if let (Some(v), false) = (file.http_proxy, user("http_proxies")) {
        args.http_proxies = each(&v, crate::cli::parse_proxy_arg, "http-proxy")?;
    }
    if let (Some(v), false) = (file.udp_proxy, user("udp_proxy")) {
        args.udp_proxy =
            Some(crate::cli::parse_proxy_arg(&v).map_err(|e| anyhow::anyhow!("udp-proxy: {e}"))?);
    }
    if let (Some(v), false) = (file.allow_incoming_from, user("allow_incoming_from")) {
        args.allow_incoming_from = each(&v, crate::cli::parse_network_arg, "allow-incoming-from")?;
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
    if let (Some(v), false) = (file.bridge_abstract, user("bridge_abstract")) {
        args.bridge_abstract = v;
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
    if let (Some(v), false) = (file.user, user("user")) {
        args.user = Some(v);
    }
    if let (Some(v), false) = (file.report, user("report")) {
        args.report = Some(v);
    }
    // A learning run records every call: the file's allowlist does not apply to it.
    if let (Some(v), false, false) = (file.syscalls, user("syscalls"), user("learn_syscalls")) {
        args.syscalls =
            crate::syscalls::SyscallsArg::parse(&v).map_err(|e| anyhow::anyhow!("syscalls: {e}"))?;
    }
    if let (Some(v), false) = (file.core_on_leak, user("core_on_leak")) {
        args.core_on_leak = Some(v);
    }
    if let (Some(v), false) = (file.core_limit, user("core_limit")) {
        args.core_limit = v;
    }
    let flags: [(&str, Option<bool>, &mut bool); 8] = [
        ("stack", file.stack, &mut args.stack),
        ("inspect_socks", file.inspect_socks, &mut args.inspect_socks),
        ("require_socks_auth", file.require_socks_auth, &mut args.require_socks_auth),
        ("one_circuit", file.one_circuit, &mut args.one_circuit),
        ("allow_io_uring", file.allow_io_uring, &mut args.allow_io_uring),
        ("isolate_network", file.isolate_network, &mut args.isolate_network),
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
user = "nobody"
"#;

    #[test]
    fn stack_and_core_keys() {
        let file = "stack = true\ncore-on-leak = \"/tmp/cores\"\ncore-limit = 3\n";
        let args = run_args(&["sockstrace", "run", "--", "true"], file).unwrap();
        assert!(args.stack);
        assert_eq!(args.core_on_leak.as_deref(), Some(Path::new("/tmp/cores")));
        assert_eq!(args.core_limit, 3);
        let args = run_args(&["sockstrace", "run", "--core-limit", "2", "--", "true"], file).unwrap();
        assert_eq!(args.core_limit, 2);
    }

    #[test]
    fn the_file_fills_what_the_flags_leave_unset() {
        let args = run_args(&["sockstrace", "run", "--", "true"], FILE).unwrap();
        assert_eq!(args.policy.proxies, vec!["127.0.0.1:1080".parse::<std::net::SocketAddr>().unwrap()]);
        assert_eq!(args.policy.allow.len(), 1);
        assert!(args.policy.allow_loopback && args.quiet);
        assert_eq!(args.on_leak, OnLeak::Log);
        assert_eq!(args.user.as_deref(), Some("nobody"));
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

    fn audit_args(argv: &[&str], file: &str) -> Result<AuditArgs> {
        let matches = Cli::command().try_get_matches_from(argv).unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        let Command::Audit(mut args) = cli.command else { panic!("not audit") };
        apply_audit(&mut args, matches.subcommand_matches("audit").unwrap(), parse(file)?)?;
        Ok(args)
    }

    #[test]
    fn audit_takes_the_shared_keys_and_its_own_and_ignores_runs() {
        let file = format!("{FILE}cgroup = \"system.slice\"\nenforce = true\nmetrics = \"127.0.0.1:9101\"\n");
        let args = audit_args(&["sockstrace", "audit"], &file).unwrap();
        assert_eq!(args.policy.proxies, vec!["127.0.0.1:1080".parse::<std::net::SocketAddr>().unwrap()]);
        assert!(args.policy.allow_loopback && args.quiet && args.enforce);
        assert_eq!(args.cgroup.as_deref(), Some(Path::new("system.slice")));
        assert_eq!(args.metrics, Some("127.0.0.1:9101".parse().unwrap()));
        let args = audit_args(&["sockstrace", "audit", "--proxy", "127.0.0.1:9999", "--cgroup", "x"], &file)
            .unwrap();
        assert_eq!(args.policy.proxies, vec!["127.0.0.1:9999".parse::<std::net::SocketAddr>().unwrap()]);
        assert_eq!(args.cgroup.as_deref(), Some(Path::new("x")));
        // And run ignores audit's keys.
        let run = run_args(&["sockstrace", "run", "--", "true"], &file).unwrap();
        assert_eq!(run.on_leak, OnLeak::Log);
        let bad = audit_args(&["sockstrace", "audit"], "metrics = \"nowhere\"").unwrap_err();
        assert!(format!("{bad:#}").contains("metrics"), "{bad:#}");
    }

    #[test]
    fn audit_exemptions_come_from_the_file_unless_flags_name_their_kind() {
        let file = "exempt-user = [\"debian-tor\"]\nexempt-cgroup = [\"tor.service\"]\n";
        let args = audit_args(&["sockstrace", "audit"], file).unwrap();
        assert_eq!(args.exempt_users, vec!["debian-tor".to_string()]);
        assert_eq!(args.exempt_cgroups, vec![PathBuf::from("tor.service")]);
        let args = audit_args(&["sockstrace", "audit", "--exempt-user", "110"], file).unwrap();
        assert_eq!(args.exempt_users, vec!["110".to_string()]);
        assert_eq!(args.exempt_cgroups, vec![PathBuf::from("tor.service")]);
    }

    #[test]
    fn the_default_file_is_the_users_then_for_root_the_systems() {
        let all = |_: &Path| true;
        let xdg = Some(OsStr::new("/x"));
        let home = Some(OsStr::new("/home/me"));
        assert_eq!(default_file(xdg, home, false, all), Some("/x/sockstrace/sockstrace.toml".into()));
        assert_eq!(
            default_file(None, home, false, all),
            Some("/home/me/.config/sockstrace/sockstrace.toml".into())
        );
        // A relative XDG_CONFIG_HOME is ignored (XDG base directory spec).
        let relative = Some(OsStr::new("rel"));
        assert_eq!(
            default_file(relative, home, false, all),
            Some("/home/me/.config/sockstrace/sockstrace.toml".into())
        );
        let only_system = |p: &Path| p == Path::new(SYSTEM_FILE);
        assert_eq!(default_file(xdg, home, true, only_system), Some(SYSTEM_FILE.into()));
        assert_eq!(default_file(xdg, home, false, only_system), None, "only root reads the system file");
        assert_eq!(default_file(None, None, false, all), None);
        assert_eq!(locate(Some(Path::new("given.toml"))), Some("given.toml".into()));
    }

    #[test]
    fn bridged_abstract_names_come_from_the_file_unless_given() {
        let args =
            run_args(&["sockstrace", "run", "--", "true"], "bridge-abstract = [\"@a\", \"b\"]").unwrap();
        assert_eq!(args.bridge_abstract, vec!["@a".to_string(), "b".to_string()]);
        let argv = ["sockstrace", "run", "--bridge-abstract", "c", "--", "true"];
        let args = run_args(&argv, "bridge_abstract = [\"a\"]").unwrap();
        assert_eq!(args.bridge_abstract, vec!["c".to_string()]);
    }

    #[test]
    fn syscalls_comes_from_the_file_unless_a_flag_says_otherwise() {
        use crate::syscalls::SyscallsArg;
        let args = run_args(&["sockstrace", "run", "--", "true"], "syscalls = \"strict\"").unwrap();
        assert_eq!(args.syscalls, SyscallsArg::Strict);
        let args =
            run_args(&["sockstrace", "run", "--syscalls", "all", "--", "true"], "syscalls = \"strict\"")
                .unwrap();
        assert_eq!(args.syscalls, SyscallsArg::All);
        let argv = ["sockstrace", "run", "--learn-syscalls", "/tmp/p.toml", "--", "true"];
        let args = run_args(&argv, "syscalls = \"strict\"").unwrap();
        assert_eq!(args.syscalls, SyscallsArg::All, "learning ignores the file's allowlist");
        let args = run_args(&["sockstrace", "run", "--", "true"], "syscalls = \"/etc/p.toml\"").unwrap();
        assert_eq!(args.syscalls, SyscallsArg::File("/etc/p.toml".into()));
    }

    #[test]
    fn isolate_network_comes_from_the_file_in_either_spelling() {
        for file in ["isolate-network = true", "isolate_network = true"] {
            let args = run_args(&["sockstrace", "run", "--", "true"], file).unwrap();
            assert!(args.isolate_network, "{file}");
        }
        let args = run_args(&["sockstrace", "run", "--", "true"], "isolate-network = false").unwrap();
        assert!(!args.isolate_network);
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
