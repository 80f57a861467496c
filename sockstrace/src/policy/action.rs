//! What happens to a decided call: the user's `--on-leak` and `--dns log`
//! turn a [`Decision`] into the report's [`Action`]. Pure; the supervisor's
//! gate (`supervisor::handlers::gate`) is its one caller.

use super::{Decision, Reason};
use crate::report_writer::Action;

/// What the user asked to happen to a leak (`--on-leak`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakAction {
    Block,
    Log,
    Kill,
    /// TCP connects go through the proxy; other leaks are blocked.
    Socksify,
}

/// The settings that map a decision to an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeakRules {
    pub on_leak: LeakAction,
    /// `--dns log`: DNS leaks (`dns-udp`, `dns-tcp`) are logged whatever `--on-leak` says.
    pub dns_log: bool,
}

/// How a call's action is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ruling {
    /// As the user's settings map the decision ([`LeakRules::action`]).
    OnLeak,
    /// As `OnLeak`, but the call never goes ahead: one we could not check.
    /// Killed stays killed; anything else is blocked.
    FailClosed,
    /// This action, whatever the settings say: a refusal that is no leak, a
    /// denied system call, a connect taken through the proxy.
    Forced(Action),
}

impl LeakRules {
    /// The action the settings ask for a decision, before the hardening
    /// that [`LeakRules::action`] adds.
    pub fn chosen(self, decision: Decision) -> Action {
        if !decision.is_leak() {
            return Action::Allowed;
        }
        if self.dns_log && matches!(decision.reason, Reason::DnsUdp | Reason::DnsTcp) {
            return Action::Logged;
        }
        match self.on_leak {
            LeakAction::Block | LeakAction::Socksify => Action::Blocked,
            LeakAction::Log => Action::Logged,
            LeakAction::Kill => Action::Killed,
        }
    }

    /// The action taken for a call. `to_fake_address`: its destination is one
    /// of the `--dns proxy` resolver's fake addresses.
    ///
    /// Logging never lets through a call to a fake address (it leads nowhere
    /// but through the proxy) nor an address of another family than its
    /// socket (the kernel would refuse it; it can only be a bug, or an fd
    /// number swapped under a call we would let through).
    pub fn action(self, ruling: Ruling, decision: Decision, to_fake_address: bool) -> Action {
        let chosen = match ruling {
            Ruling::Forced(action) => return action,
            Ruling::OnLeak | Ruling::FailClosed => self.chosen(decision),
        };
        let hardened =
            chosen == Action::Logged && (to_fake_address || decision.reason == Reason::FamilyMismatch);
        match (chosen, ruling) {
            (Action::Logged, _) if hardened => Action::Blocked,
            (Action::Killed, _) => Action::Killed,
            (_, Ruling::FailClosed) => Action::Blocked,
            (action, _) => action,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: [LeakAction; 4] =
        [LeakAction::Block, LeakAction::Log, LeakAction::Kill, LeakAction::Socksify];

    /// Reasons with a rule of their own, and one without.
    const REASONS: [Reason; 4] = [Reason::DnsUdp, Reason::DnsTcp, Reason::FamilyMismatch, Reason::DirectTcp];

    fn decisions() -> impl Iterator<Item = Decision> {
        REASONS.into_iter().flat_map(|r| [Decision::allowed(r), Decision::leak(r)])
    }

    /// The expected action, spelled out case by case.
    fn expected(mode: LeakAction, dns_log: bool, decision: Decision, fake: bool, ruling: Ruling) -> Action {
        if let Ruling::Forced(action) = ruling {
            return action;
        }
        if !decision.is_leak() {
            // Only a leak is refused; a call that could not be checked is a leak by construction.
            return if ruling == Ruling::FailClosed { Action::Blocked } else { Action::Allowed };
        }
        let dns = matches!(decision.reason, Reason::DnsUdp | Reason::DnsTcp);
        let logged = (dns_log && dns) || mode == LeakAction::Log;
        if logged {
            let never_logged = fake || decision.reason == Reason::FamilyMismatch;
            return if never_logged || ruling == Ruling::FailClosed {
                Action::Blocked
            } else {
                Action::Logged
            };
        }
        match mode {
            LeakAction::Kill => Action::Killed,
            _ => Action::Blocked,
        }
    }

    #[test]
    fn every_mode_and_verdict() {
        let rulings = [Ruling::OnLeak, Ruling::FailClosed];
        for mode in MODES {
            for dns_log in [false, true] {
                let rules = LeakRules { on_leak: mode, dns_log };
                for decision in decisions() {
                    for fake in [false, true] {
                        for ruling in rulings {
                            assert_eq!(
                                rules.action(ruling, decision, fake),
                                expected(mode, dns_log, decision, fake, ruling),
                                "{mode:?} dns_log={dns_log} {decision:?} fake={fake} {ruling:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_modes_in_plain_words() {
        let leak = Decision::leak(Reason::DirectTcp);
        let rules = |on_leak| LeakRules { on_leak, dns_log: false };
        assert_eq!(rules(LeakAction::Block).action(Ruling::OnLeak, leak, false), Action::Blocked);
        assert_eq!(rules(LeakAction::Log).action(Ruling::OnLeak, leak, false), Action::Logged);
        assert_eq!(rules(LeakAction::Kill).action(Ruling::OnLeak, leak, false), Action::Killed);
        // A leak socksify cannot take through the proxy is blocked.
        assert_eq!(rules(LeakAction::Socksify).action(Ruling::OnLeak, leak, false), Action::Blocked);
        // An allowed call passes in every mode.
        for mode in MODES {
            let allowed = Decision::allowed(Reason::Proxy);
            assert_eq!(rules(mode).action(Ruling::OnLeak, allowed, false), Action::Allowed);
        }
    }

    #[test]
    fn dns_log_logs_dns_only() {
        let rules = LeakRules { on_leak: LeakAction::Kill, dns_log: true };
        assert_eq!(rules.action(Ruling::OnLeak, Decision::leak(Reason::DnsUdp), false), Action::Logged);
        assert_eq!(rules.action(Ruling::OnLeak, Decision::leak(Reason::DnsTcp), false), Action::Logged);
        assert_eq!(rules.action(Ruling::OnLeak, Decision::leak(Reason::DirectUdp), false), Action::Killed);
        // What `chosen` says is what the settings ask, before hardening.
        assert_eq!(rules.chosen(Decision::leak(Reason::DnsUdp)), Action::Logged);
        // Logging a DNS query to a fake address is still refused.
        assert_eq!(rules.action(Ruling::OnLeak, Decision::leak(Reason::DnsUdp), true), Action::Blocked);
    }

    #[test]
    fn log_never_lets_a_family_mismatch_or_fake_address_through() {
        let rules = LeakRules { on_leak: LeakAction::Log, dns_log: false };
        let mismatch = Decision::leak(Reason::FamilyMismatch);
        assert_eq!(rules.chosen(mismatch), Action::Logged);
        assert_eq!(rules.action(Ruling::OnLeak, mismatch, false), Action::Blocked);
        let direct = Decision::leak(Reason::DirectTcp);
        assert_eq!(rules.action(Ruling::OnLeak, direct, true), Action::Blocked);
        assert_eq!(rules.action(Ruling::OnLeak, direct, false), Action::Logged);
    }

    #[test]
    fn fail_closed_blocks_unless_killing() {
        let failed = Decision::leak(Reason::CheckFailed);
        for mode in MODES {
            let want = if mode == LeakAction::Kill { Action::Killed } else { Action::Blocked };
            let rules = LeakRules { on_leak: mode, dns_log: false };
            assert_eq!(rules.action(Ruling::FailClosed, failed, false), want, "{mode:?}");
        }
    }

    #[test]
    fn forced_actions_ignore_the_settings() {
        let forced = [Action::Blocked, Action::Killed, Action::Socksified];
        for (mode, action) in MODES.into_iter().zip(forced.into_iter().cycle()) {
            let rules = LeakRules { on_leak: mode, dns_log: true };
            for decision in decisions() {
                assert_eq!(rules.action(Ruling::Forced(action), decision, true), action);
            }
        }
    }
}
