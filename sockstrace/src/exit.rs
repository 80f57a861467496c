//! Every exit status of the `sockstrace` binary, in one place.
//!
//! | status | commands | meaning |
//! | --- | --- | --- |
//! | 0 | all | done; for `run`, also the program's own 0 |
//! | 1 | `doctor` | the supervisor cannot work on this machine |
//! | 2 | all | a refused command line, configuration file or (`report`) input file; clap's own parse errors exit 2 too |
//! | 3 | `run --fail-on-leak` | a leak was seen (whatever the program's status) |
//! | 125 | `run`, `audit`, `man` | sockstrace itself failed (as `env(1)` and `timeout(1)` use 125) |
//! | 126 | `run` | the program was found but cannot be executed |
//! | 127 | `run` | the program was not found |
//! | other | `run` | the program's own status, 128+N when signal N ended it |
//!
//! This module is a leaf: commands import it, never each other, for a status.

/// How the `sockstrace` process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what it was asked.
    Success,
    /// 1: `doctor` found that the supervisor cannot work here (no seccomp user
    /// notification or no `pidfd_getfd`).
    Unsupported,
    /// 2: a refused option or combination of options, a bad configuration file,
    /// or a report file `sockstrace report` cannot read.
    Usage,
    /// 3: `run --fail-on-leak` saw at least one leak.
    Leaked,
    /// 125: sockstrace itself failed (not the program): setup, the kernel layer
    /// when required, writing the report, attaching in `audit`.
    OwnFailure,
    /// 126: the program exists but cannot be executed (as shells say).
    NotExecutable,
    /// 127: no such program (as shells say).
    NotFound,
    /// `run`: the program's own exit status, passed on (128+N when signal N
    /// ended it).
    Program(i32),
}

impl Exit {
    /// The numeric status given to `exit(2)`.
    pub const fn code(self) -> i32 {
        match self {
            Exit::Success => 0,
            Exit::Unsupported => 1,
            Exit::Usage => 2,
            Exit::Leaked => 3,
            Exit::OwnFailure => 125,
            Exit::NotExecutable => 126,
            Exit::NotFound => 127,
            Exit::Program(status) => status,
        }
    }

    /// Ends the process with this status (no destructors run: the async
    /// runtime's threads may still be parked in the kernel).
    pub fn exit(self) -> ! {
        std::process::exit(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let table = [
            (Exit::Success, 0),
            (Exit::Unsupported, 1),
            (Exit::Usage, 2),
            (Exit::Leaked, 3),
            (Exit::OwnFailure, 125),
            (Exit::NotExecutable, 126),
            (Exit::NotFound, 127),
            (Exit::Program(7), 7),
            (Exit::Program(128 + 15), 143),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }

    #[test]
    fn exit_codes_of_sockstrace_itself_are_distinct() {
        let own = [
            Exit::Success,
            Exit::Unsupported,
            Exit::Usage,
            Exit::Leaked,
            Exit::OwnFailure,
            Exit::NotExecutable,
            Exit::NotFound,
        ];
        for (i, a) in own.iter().enumerate() {
            for b in &own[i + 1..] {
                assert_ne!(a.code(), b.code(), "{a:?} and {b:?}");
            }
        }
    }
}
