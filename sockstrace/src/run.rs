//! `sockstrace run`: from parsed arguments to the program's exit status.

use crate::cli::{default_proxies, DnsArg, DnsUpstreamArg, KernelLayer, OnLeak, RunArgs};
use crate::dns::Upstream;
use crate::exit::Exit;
use crate::policy::Policy;
use crate::report_writer::{ReportTarget, Reporter};
use crate::socks::Credentials;
use crate::supervisor::{self, DnsMode, LeakAction, RunConfig, SocksAuth};

/// Runs `sockstrace run`; returns the program's status, or what
/// [`crate::exit`] says for a leak under `--fail-on-leak` and for failures.
pub fn main(mut args: RunArgs, matches: &clap::ArgMatches) -> Exit {
    // First, before any thread: the program cannot stop us through the terminal.
    supervisor::sys::hold_terminal_stops();
    let config = crate::config::locate(args.config.as_deref());
    if let Some(path) = &config {
        if let Err(e) =
            crate::config::load(path).and_then(|file| crate::config::apply(&mut args, matches, file))
        {
            crate::report_writer::human::write_line(&format!("sockstrace: error: configuration: {e:#}"));
            return Exit::Usage;
        }
        if !args.quiet {
            crate::report_writer::human::write_line(&crate::config::used_line(path));
        }
    } else if args.proxy_user.is_some() != args.proxy_pass.is_some() {
        crate::report_writer::human::write_line(
            "sockstrace: error: --proxy-user and --proxy-pass go together",
        );
        return Exit::Usage;
    }
    if args.one_circuit && args.proxy_user.is_some() {
        crate::report_writer::human::write_line(
            "sockstrace: error: --one-circuit picks random credentials; it cannot go with --proxy-user",
        );
        return Exit::Usage;
    }
    let on_leak = match args.on_leak {
        OnLeak::Block => LeakAction::Block,
        OnLeak::Log => LeakAction::Log,
        OnLeak::Kill => LeakAction::Kill,
        OnLeak::Socksify => LeakAction::Socksify,
    };
    let socks_auth = match (args.proxy_user, args.proxy_pass) {
        (Some(user), Some(pass)) => {
            SocksAuth::Fixed(Credentials { user: user.into_bytes(), pass: pass.into_bytes() })
        }
        _ if args.one_circuit => SocksAuth::Fixed(SocksAuth::random_credentials()),
        _ => SocksAuth::PerConnection,
    };
    let policy = Policy {
        // Only HTTP proxies given: Tor's defaults are not implied.
        proxies: match (args.policy.proxies.is_empty(), args.http_proxies.is_empty()) {
            (true, true) => default_proxies(),
            _ => args.policy.proxies.iter().chain(&args.http_proxies).copied().collect(),
        },
        http_proxies: args.http_proxies,
        allow: std::mem::take(&mut args.policy.allow),
        allow_loopback: args.policy.allow_loopback,
        incoming: args.policy.incoming(),
        incoming_from: args.allow_incoming_from,
    };
    let fail_on_leak = args.fail_on_leak;
    let kernel = match args.kernel {
        KernelLayer::Auto => supervisor::KernelMode::Auto,
        KernelLayer::Off => supervisor::KernelMode::Off,
        KernelLayer::Required => supervisor::KernelMode::Required,
    };
    let dns = match args.dns {
        DnsArg::Block => DnsMode::Block,
        DnsArg::Log => DnsMode::Log,
        DnsArg::Proxy => {
            let Some(&proxy) = policy.proxies.first() else {
                crate::report_writer::human::write_line("sockstrace: error: --dns proxy needs a --proxy");
                return Exit::Usage;
            };
            DnsMode::Proxy(match args.dns_upstream {
                DnsUpstreamArg::Fake => Upstream::FakeIp,
                DnsUpstreamArg::Tor => Upstream::TorResolve { proxy },
                DnsUpstreamArg::Resolver(resolver) => Upstream::TcpViaSocks { proxy, resolver },
            })
        }
    };
    // Asking for a SOCKS rule turns the inspector on.
    let inspect =
        (args.inspect_socks || args.require_socks_auth || args.isolation_regex.is_some()).then(|| {
            crate::inspect::Rules {
                require_auth: args.require_socks_auth,
                isolation: args.isolation_regex.clone(),
            }
        });
    let user = match program_user(args.user.as_deref(), args.quiet) {
        Ok(user) => user,
        Err(e) => {
            crate::report_writer::human::write_line(&format!("sockstrace: error: {e}"));
            return Exit::Usage;
        }
    };
    // After the program's user is known: a report it could read from a named pipe is refused.
    let target = ReportTarget::from_arg(args.report.as_deref());
    let reporter = match Reporter::open(
        &target,
        args.quiet,
        Some(&supervisor::identity::Credentials::of_program(user.as_ref())),
    ) {
        Ok(r) => r,
        Err(e) => {
            crate::report_writer::human::write_line(&format!("sockstrace: error: {e:#}"));
            return match e.downcast_ref::<crate::report_writer::fifo::Refused>() {
                Some(_) => Exit::Usage,
                None => Exit::OwnFailure,
            };
        }
    };
    reporter.set_config(config.as_deref());
    let syscalls = match crate::syscalls::Setting::resolve(&args.syscalls, args.learn_syscalls.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sockstrace: error: --syscalls: {e:#}");
            return Exit::Usage;
        }
    };
    let config = RunConfig {
        policy,
        on_leak,
        socks_auth,
        dns,
        inspect,
        kernel,
        allow_io_uring: args.allow_io_uring,
        user,
        isolate_network: args.isolate_network,
        bridge_abstract: args.bridge_abstract,
        syscalls,
        leak_debug: crate::stack::LeakDebug::new(args.stack, args.core_on_leak, args.core_limit),
        udp_proxy: args.udp_proxy,
        command: args.command,
    };
    match supervisor::run(config, reporter) {
        Ok(outcome) if fail_on_leak && outcome.leaks > 0 => {
            crate::report_writer::human::write_line(&format!(
                "sockstrace: {} leak(s) seen: exiting with {} (--fail-on-leak); the program's status was {}",
                outcome.leaks,
                Exit::Leaked.code(),
                outcome.status
            ));
            Exit::Leaked
        }
        Ok(outcome) => Exit::Program(outcome.status),
        Err(e) => {
            crate::report_writer::human::write_line(&format!("sockstrace: error: {e:#}"));
            e.exit_status()
        }
    }
}

/// Who the program runs as: `--user`, or under sudo the invoking user (said
/// in one line), resolved before anything starts.
fn program_user(
    explicit: Option<&str>,
    quiet: bool,
) -> Result<Option<supervisor::identity::Switch>, supervisor::identity::IdentityError> {
    use supervisor::identity::{self, Choice};
    let euid = nix::unistd::geteuid().as_raw();
    let var = |k: &str| std::env::var(k).ok();
    match identity::choose(explicit, euid, var("SUDO_UID").as_deref(), var("SUDO_GID").as_deref()) {
        Choice::Keep => Ok(None),
        Choice::Switch { user, from_sudo } => {
            let switch = identity::resolve(&user, from_sudo, euid)?;
            if let (Some(s), Some(_), false) = (&switch, from_sudo, quiet) {
                eprintln!("{}", identity::sudo_notice(&s.identity));
            }
            Ok(switch)
        }
    }
}
