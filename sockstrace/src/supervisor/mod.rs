//! `sockstrace run`: the seccomp supervisor.
//!
//! spawn (filter installed between fork and exec) -> serve notifications
//! concurrently on tokio -> reap -> summary.

pub(crate) mod abi;
mod filter;
mod handlers;
mod notif;
mod reap;
mod spawn;
mod sys;
mod tracee;
mod tree;

use std::ffi::OsString;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::watch;

pub use handlers::LeakAction;
pub use handlers::SocksAuth;
pub use spawn::SpawnError;

use crate::policy::Policy;
use crate::report::{Layers, Reporter};
use notif::{Notifier, Pending};
use tree::Tree;

/// What `run` was asked to do.
pub struct RunConfig {
    pub policy: Policy,
    pub on_leak: LeakAction,
    pub socks_auth: SocksAuth,
    pub command: Vec<OsString>,
    pub kernel_layer: String,
}

/// Shared by every notification handler.
pub struct Ctx {
    notifier: Arc<Notifier>,
    policy: Policy,
    on_leak: LeakAction,
    socks_auth: SocksAuth,
    reporter: Reporter,
    tree: Arc<Tree>,
}

/// Runs the program under the supervisor; returns its exit status.
pub fn run(config: RunConfig, reporter: Reporter) -> Result<i32> {
    let program = config.command.first().context("no program given")?;
    let path = spawn::resolve_program(program)?;
    let filter = filter::build().context("building the seccomp filter")?;
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("becoming a child subreaper");
    }
    let root = nix::unistd::geteuid().is_root();
    let spawned = spawn::spawn(&path, &config.command, &filter, !root)?;
    let notifier = Notifier::new(spawned.listener);
    let sync_wakeup = notifier.enable_sync_wakeup();
    let seccomp_layer = format!(
        "on (user notification{}{})",
        if spawned.wait_killable { ", killable wait" } else { "" },
        if sync_wakeup { ", sync wake-up" } else { "" }
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .on_thread_start(block_signals_in_this_thread)
        .build()
        .context("starting the async runtime")?;
    let ctx = Arc::new(Ctx {
        notifier: Arc::new(notifier),
        policy: config.policy,
        on_leak: config.on_leak,
        socks_auth: config.socks_auth,
        reporter,
        tree: Arc::new(Tree::new(std::process::id() as i32)),
    });
    let status = runtime.block_on(serve(ctx.clone(), spawned.pid))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let ctx = Arc::try_unwrap(ctx).map_err(|_| anyhow::anyhow!("handlers still running at exit"))?;
    let layers = Layers { seccomp: seccomp_layer, kernel: config.kernel_layer };
    ctx.reporter.finish(layers, status);
    Ok(status)
}

/// Worker threads never take signals: a signal must not interrupt a connect
/// we perform for the tracee (the main thread takes them instead).
fn block_signals_in_this_thread() {
    // SAFETY: sigfillset/pthread_sigmask on a live local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Serves notifications until every traced process is gone, then returns the
/// main program's exit status.
async fn serve(ctx: Arc<Ctx>, main: libc::pid_t) -> Result<i32> {
    let (exit_tx, mut exit_rx) = watch::channel(None);
    tokio::spawn(reap::reaper(main, exit_tx));
    tokio::spawn(reap::forward_signals(main));
    // SAFETY: the Arc keeps the Notifier, and so its fd, open and unchanged for
    // as long as the AsyncFd holds it.
    let afd = unsafe { AsyncFd::register_with_interest(ctx.notifier.clone(), Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("registering the seccomp listener")?;
    let mut handlers = tokio::task::JoinSet::new();
    'serve: loop {
        let mut guard = afd.readable().await.context("waiting on the seccomp listener")?;
        loop {
            match ctx.notifier.pending() {
                Pending::Notification => match ctx.notifier.recv() {
                    Ok(n) => {
                        handlers.spawn(handlers::handle(ctx.clone(), n));
                    }
                    Err(libc::ENOENT) | Err(libc::EINTR) => {}
                    Err(e) => {
                        return Err(std::io::Error::from_raw_os_error(e)).context("receiving a notification");
                    }
                },
                Pending::Nothing => {
                    guard.clear_ready();
                    break;
                }
                Pending::Hangup => break 'serve,
            }
            while handlers.try_join_next().is_some() {}
        }
    }
    while handlers.join_next().await.is_some() {}
    // The filter's last user is gone, so the main child was reaped already.
    let code = exit_rx.wait_for(Option::is_some).await.map(|c| c.unwrap_or(1)).unwrap_or(1);
    Ok(code)
}
