//! Test-only switches, honoured only in debug builds (the ones the test suite
//! and the leak fuzzer drive); a release build ignores them.
//!
//! `SOCKSTRACE_TEST_DISABLE` is a comma-separated list of syscall-layer fences
//! to switch off, so that a test can prove that the layer behind them still
//! holds (the kernel layer's egress gate, network isolation):
//! - `options`: setsockopt options that move the first hop are not refused;
//! - `cmsg`: control messages that do the same are not refused;
//! - `family-check`: an address of another family than its socket is not refused;
//! - `landlock`: the program is not put in a Landlock domain;
//! - `egress`: the kernel layer's egress gate (cgroup_skb/egress) is not attached, so a test
//!   can show what reaches the network without it;
//! - `kernel-options`: the kernel layer's setsockopt hook (cgroup/setsockopt) is not attached,
//!   so a test can set the options it refuses and show that the egress gate drops the packets;
//! - `plant-bug`: a deliberate hole in the decision (UDP to port 9 is allowed),
//!   for the fuzzer's self-check that it finds a planted bug;
//! - `udp-leak-through`: under `--on-leak socksify`, a leaked UDP `sendto`/`sendmsg` to a shim
//!   address (`127.83.84.1`, `::1`) is continued to the kernel instead of going through the
//!   proxy, as a datagram the syscall layer never judged would be, so a test can show that the
//!   kernel layer lets the program's sockets reach only their own shims;
//! - `proc-attribution`: audit does not read /proc for an event's process, as if every
//!   process were gone already, so a test can show the kernel's process records alone;
//! - `fast-path`: allowed connects and datagrams are always performed by the supervisor, even
//!   where the kernel layer judges every destination itself (see `Witness::judges_every_inet_destination`);
//! - `late-layer`: the kernel layer is attached before the program starts, never while it
//!   runs (see `supervisor::late_layer`);
//! - `late-layer-stall`: the rest of the kernel layer waits for the program's end, so a test
//!   can see a run whose program ends before the layer is complete;
//! - `late-layer-fail`: the rest of the kernel layer fails to load while the program runs;
//! - `allowed-events`: allowed calls are counted but not written to the JSON report, as
//!   without `--report`, where the fast path may run; so a test can read the fast path's
//!   refusals from a report.

use std::sync::OnceLock;

/// The environment variable that lists disabled fences.
pub const DISABLE_VAR: &str = "SOCKSTRACE_TEST_DISABLE";

fn disabled_list() -> &'static [String] {
    static LIST: OnceLock<Vec<String>> = OnceLock::new();
    LIST.get_or_init(|| {
        if !cfg!(debug_assertions) {
            return Vec::new();
        }
        std::env::var(DISABLE_VAR)
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    })
}

/// Whether the fence `name` is switched off for a test (debug builds only).
pub fn disabled(name: &str) -> bool {
    disabled_list().iter().any(|d| d == name)
}

/// For a unit test that cannot run here (not root, no eBPF object built in): prints
/// `skipped: WHY`; under CI (`CI=true`) as root, where everything is present, fails the test
/// instead, so that a skip never counts as a pass there.
#[cfg(test)]
pub fn skipped(why: &str) {
    let root = nix::unistd::geteuid().is_root();
    if root && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("skipped under CI as root, where nothing may skip: {why}");
    }
    eprintln!("skipped: {why}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn nothing_is_disabled_without_the_variable() {
        // The test process does not set it.
        if std::env::var_os(super::DISABLE_VAR).is_none() {
            assert!(!super::disabled("options"));
        }
    }
}
