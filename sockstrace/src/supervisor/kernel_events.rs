//! Leaks that only the kernel saw (io_uring connects, a raced unix connect,
//! sockets from outside): the eBPF hooks' events become report events with
//! `source: "kernel"` (`KernelEvent::to_report_event`). Calls the supervisor
//! performed itself are skipped here: their seccomp event already carries the
//! kernel's facts.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;

use crate::kernel::KernelEvent;
use crate::procfs::process_info;
use crate::report_writer::Reporter;

/// Reports kernel events until the channel closes (after the witness stops).
pub async fn report(mut events: UnboundedReceiver<KernelEvent>, reporter: Arc<Reporter>) {
    let own_pid = std::process::id();
    while let Some(ev) = events.recv().await {
        if ev.pid == own_pid {
            continue;
        }
        // The process may be gone already; pid and comm come from the kernel anyway.
        reporter.emit(ev.to_report_event(process_info(ev.tid)));
    }
}
