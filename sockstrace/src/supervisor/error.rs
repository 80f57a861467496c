//! How `sockstrace run` fails, typed: each failure knows its exit status, so
//! nothing has to guess it back from an `anyhow` chain.

use super::spawn::SpawnError;
use crate::exit::Exit;

/// Why [`super::run`] did not get to the program's own status.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A refused combination of options, found once the run was being set up
    /// (exit status 2).
    #[error("{0}")]
    Usage(String),
    /// The program could not be started (126, 127, or 125 for a setup step).
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// sockstrace itself failed, with the context of what it was doing (125).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl RunError {
    /// The exit status sockstrace ends with.
    pub fn exit_status(&self) -> Exit {
        match self {
            RunError::Usage(_) => Exit::Usage,
            RunError::Spawn(e) => e.exit_status(),
            RunError::Failed(_) => Exit::OwnFailure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_of_each_run_error() {
        let io = |errno| std::io::Error::from_raw_os_error(errno);
        let cases = [
            (RunError::Usage("--allow-io-uring needs the kernel layer".into()), Exit::Usage),
            (RunError::Failed(anyhow::anyhow!("starting the async runtime")), Exit::OwnFailure),
            (SpawnError::NotFound("nope".into()).into(), Exit::NotFound),
            (SpawnError::NotExecutable("x".into()).into(), Exit::NotExecutable),
            (SpawnError::Exec { program: "x".into(), err: io(libc::ENOENT) }.into(), Exit::NotFound),
            (SpawnError::Exec { program: "x".into(), err: io(libc::EACCES) }.into(), Exit::NotExecutable),
            (SpawnError::Seccomp(io(libc::EINVAL)).into(), Exit::OwnFailure),
            (SpawnError::Setup { what: "pipe", err: io(libc::EMFILE) }.into(), Exit::OwnFailure),
        ];
        for (error, exit) in cases {
            assert_eq!(error.exit_status(), exit, "{error}");
        }
    }

    #[test]
    fn exit_status_of_a_failure_with_context_shows_the_whole_chain() {
        use anyhow::Context;
        let failed: anyhow::Result<()> = Err(anyhow::anyhow!("no such cgroup")).context("starting");
        let error = RunError::from(failed.unwrap_err());
        assert_eq!(format!("{error:#}"), "starting: no such cgroup");
        assert_eq!(error.exit_status(), Exit::OwnFailure);
    }
}
