//! The eBPF programs' own diagnostics: aya-log records from their `AYA_LOGS` ring buffer,
//! forwarded to the `log` crate (see `crate::logging`) by a task of their own.
//!
//! The programs log rarely (a full event ring buffer, at this CPU's 1st, 2nd, 4th, ... lost
//! event; `bpf_loop` failing; an address family a hook does not expect), so the task sleeps
//! nearly always. It shares nothing with the event reader: a slow stderr delays log lines only.

use std::panic::{catch_unwind, AssertUnwindSafe};

use anyhow::{Context as _, Result};
use aya::Ebpf;
use aya_log::EbpfLogger;
use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::oneshot,
};

/// The logger of a loaded object, not reading yet.
pub struct KernelLogger(EbpfLogger<&'static dyn log::Log>);

impl KernelLogger {
    /// Takes the object's log ring buffer, forwarding to the global logger. `None` when there
    /// is nothing to forward: no `AYA_LOGS` map (an object that never logs), or logging off.
    pub fn init(ebpf: &mut Ebpf) -> Option<Self> {
        if log::max_level() == log::LevelFilter::Off {
            return None;
        }
        match EbpfLogger::init(ebpf) {
            Ok(logger) => Some(Self(logger)),
            Err(err) => {
                log::debug!("the eBPF programs' log is not read: {err}");
                None
            }
        }
    }

    /// Forwards records on the current tokio runtime until `stop` fires (or its sender is
    /// dropped), then forwards what is left and ends.
    pub fn spawn(self, stop: oneshot::Receiver<()>) -> Result<()> {
        let runtime = tokio::runtime::Handle::try_current()
            .context("the kernel logger must be started inside a tokio runtime")?;
        let _guard = runtime.enter();
        // SAFETY: the logger owns its ring buffer, whose map descriptor stays open, and is the
        // one `as_raw_fd` returns, for as long as the `AsyncFd` owns the logger.
        let logs = unsafe { AsyncFd::register_with_interest(self.0, Interest::READABLE) }
            .map_err(std::io::Error::from)
            .context("registering the eBPF log ring buffer with tokio")?;
        runtime.spawn(forward(logs, stop));
        Ok(())
    }
}

async fn forward(mut logs: AsyncFd<EbpfLogger<&'static dyn log::Log>>, mut stop: oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            ready = logs.readable_mut() => {
                let Ok(mut guard) = ready else {
                    break;
                };
                flush(guard.get_inner_mut());
                guard.clear_ready();
            }
        }
    }
    flush(logs.get_mut());
}

/// Forwards every queued record. aya-log panics on a record it cannot decode; the record is
/// consumed all the same (its ring buffer entry is released while unwinding), so we go on.
fn flush(logger: &mut EbpfLogger<&'static dyn log::Log>) {
    for _ in 0..MAX_BAD_RECORDS {
        if catch_unwind(AssertUnwindSafe(|| logger.flush())).is_ok() {
            return;
        }
    }
}

/// Undecodable records skipped in one flush before waiting for the next wake-up.
const MAX_BAD_RECORDS: usize = 16;
