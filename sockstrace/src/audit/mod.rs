//! `sockstrace audit`: watch a cgroup (a service, a container) or the whole machine with the
//! kernel layer alone, and report every process that reaches the network around the proxy;
//! with `--enforce`, refuse it in the kernel.
//!
//! | module | concern |
//! | --- | --- |
//! | `args` | the command line (`AuditArgs`) and the policy it makes |
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

use crate::run::EXIT_OWN_FAILURE;

/// Runs `sockstrace audit`; returns the exit status (0 after a clean stop, 125 when
/// sockstrace itself failed: not root, no such cgroup, attaching or detaching failed).
pub fn main(args: AuditArgs) -> i32 {
    match watch::run(&args) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("sockstrace: error: {err:#}");
            EXIT_OWN_FAILURE
        }
    }
}
