//! Leaks that only the kernel saw (io_uring connects, a raced unix connect,
//! sockets from outside): the eBPF hooks' events become report events with
//! `source: "kernel"`. Calls the supervisor performed itself are skipped
//! here: their seccomp event already carries the kernel's facts.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use super::tracee::process_info;
use crate::kernel::KernelEvent;
use crate::policy::{Decision, Reason};
use crate::report::{Action, Event, ProcessInfo, Reporter};

/// Reports kernel events until the channel closes (after the witness stops).
pub async fn report(mut events: UnboundedReceiver<KernelEvent>, reporter: Arc<Reporter>) {
    let own_pid = std::process::id();
    while let Some(ev) = events.recv().await {
        if ev.pid == own_pid {
            continue;
        }
        reporter.emit(to_event(&ev));
    }
}

fn to_event(ev: &KernelEvent) -> Event {
    let decision = Decision::leak(ev.policy_reason().unwrap_or(Reason::DirectOther));
    let action = if ev.denied { Action::Blocked } else { Action::Logged };
    // The process may be gone already; pid and comm come from the kernel anyway.
    let mut info = process_info(ev.tid);
    if info.pid != Some(ev.pid) {
        info = ProcessInfo::default();
    }
    let mut event = Event::new(ev.syscall(), ev.tid, decision, action).with_process(info);
    event.source = "kernel";
    event.pid = Some(ev.pid);
    event.comm = Some(ev.comm.clone());
    event.cookie = Some(ev.cookie);
    event.family = Some(ev.socket.family_name());
    event.sock_type = Some(ev.socket.type_name());
    event.protocol = Some(ev.socket.protocol_name());
    event.dst = ev.dst.map(|a| a.to_string());
    event.local = ev.local.map(|a| a.to_string());
    if ev.denied {
        event.errno = Some(libc::EPERM);
    }
    event.kernel = Some(json!({
        "hook": ev.hook,
        "cgroup_id": ev.cgroup_id,
        "netns_cookie": ev.netns_cookie,
        "uid": ev.uid,
        "gid": ev.gid,
    }));
    event
}
