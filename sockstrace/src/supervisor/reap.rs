//! Reaping children (we are their subreaper) and forwarding signals to the
//! traced program.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// How often we sweep for exited children even without SIGCHLD.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);

/// The traced program's exit status, shell-style (128+N for signal N).
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Children of ours that their own thread waits for (gcore, whose exit status says whether
/// the core is whole): the sweep leaves them to it.
static OWN_CHILDREN: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// Starts a child that the caller will wait for itself (`std::process::Child::wait`): the
/// sweep, which reaps every other child, never takes its exit status away.
pub fn spawn_own(command: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    // Held while spawning: the sweep cannot see the child exited before it is listed.
    let mut own = OWN_CHILDREN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let child = command.spawn()?;
    own.push(child.id());
    Ok(child)
}

/// Forgets a child of [`spawn_own`] once its waiter has reaped it.
pub fn forget_own(pid: u32) {
    OWN_CHILDREN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|&p| p != pid);
}

/// Reaps every exited child but our own ([`spawn_own`]); returns the main child's status
/// when it is among them. An exited child of our own stops the sweep until its waiter has
/// reaped it (at once: it is waiting), since the kernel reports exited children in order.
fn sweep(main: libc::pid_t) -> Option<i32> {
    let mut main_status = None;
    loop {
        let own = OWN_CHILDREN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(pid) = super::sys::exited_child() else {
            return main_status;
        };
        if own.contains(&(pid as u32)) {
            return main_status;
        }
        drop(own);
        match super::sys::reap_nohang(pid) {
            Some(status) if pid == main => main_status = Some(exit_code(status)),
            Some(_) => {}
            None => return main_status,
        }
    }
}

/// Reaps children until the main child has exited (then keeps reaping
/// orphans); publishes the main child's exit code.
pub async fn reaper(main: libc::pid_t, exited: watch::Sender<Option<i32>>) {
    let mut sigchld = match signal(SignalKind::child()) {
        Ok(s) => Some(s),
        Err(e) => {
            crate::report_writer::human::say!("sockstrace: no SIGCHLD stream ({e}); polling for exits");
            None
        }
    };
    loop {
        if let Some(code) = sweep(main) {
            let _ = exited.send(Some(code));
        }
        match sigchld.as_mut() {
            Some(s) => {
                let _ = tokio::time::timeout(SWEEP_INTERVAL, s.recv()).await;
            }
            None => tokio::time::sleep(SWEEP_INTERVAL).await,
        }
    }
}

/// Whether we run in the terminal's foreground process group: then the
/// terminal delivers SIGINT and SIGQUIT to the program (which shares our
/// group) itself, and passing them on would deliver them twice.
fn terminal_delivers_to_the_program() -> bool {
    super::sys::stdin_foreground_is_our_group()
}

/// Passes SIGTERM and SIGHUP on to the program, and SIGINT and SIGQUIT when
/// they cannot have come from a terminal that already gave them to it. The
/// supervisor itself never stops for them: it stops when the program does.
pub async fn forward_signals(main: libc::pid_t) {
    let from_terminal = |signal| if terminal_delivers_to_the_program() { 0 } else { signal };
    let kinds = [
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::hangup(), libc::SIGHUP),
        (SignalKind::quit(), from_terminal(libc::SIGQUIT)),
        (SignalKind::interrupt(), from_terminal(libc::SIGINT)),
    ];
    let mut streams = Vec::new();
    for (kind, number) in kinds {
        if let Ok(stream) = signal(kind) {
            streams.push((stream, number));
        }
    }
    let mut tasks = Vec::new();
    for (mut stream, number) in streams {
        tasks.push(tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if number != 0 {
                    let _ = super::sys::kill(main, number);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
