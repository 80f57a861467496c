//! `sockstrace audit`: watch a cgroup (a service, a container) or the whole machine with the
//! kernel layer alone, and report every process that reaches the network around the proxy;
//! with `--enforce`, refuse it in the kernel.
//!
//! | module | concern |
//! | --- | --- |
//! | `args` | the policy and exemptions the command line (`cli::AuditArgs`) makes |
//! | `attribution` | exe, argv and cgroup from /proc, cached, never blocking the events |
//! | `tally` | the summary by process and destination |
//! | `metrics` | `--metrics`: Prometheus text over a minimal HTTP server |
//! | `watch` | the loop: attach, report, stop, detach and verify, summarize |

mod args;
mod attribution;
mod metrics;
mod tally;
mod watch;

pub use args::AuditArgs;

use crate::exit::Exit;

/// Runs `sockstrace audit`; returns the exit status (0 after a clean stop, 2 for a bad
/// configuration file, 125 when sockstrace itself failed: not root, no such cgroup,
/// attaching or detaching failed).
pub fn main(mut args: AuditArgs, matches: &clap::ArgMatches) -> Exit {
    let config = crate::config::locate(args.config.as_deref());
    if let Some(path) = &config {
        if let Err(e) =
            crate::config::load(path).and_then(|file| crate::config::apply_audit(&mut args, matches, file))
        {
            crate::report_writer::human::write_line(&format!("sockstrace: error: configuration: {e:#}"));
            return Exit::Usage;
        }
        if !args.quiet {
            crate::report_writer::human::write_line(&crate::config::used_line(path));
        }
    }
    match watch::run(&args, config.as_deref()) {
        Ok(()) => Exit::Success,
        Err(err) => {
            crate::report_writer::human::write_line(&format!("sockstrace: error: {err:#}"));
            Exit::OwnFailure
        }
    }
}
