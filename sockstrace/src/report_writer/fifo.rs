//! A report on a named pipe (`mkfifo r; consumer < r & sockstrace run --report r`): what is
//! written there goes to whichever reader reads first. A program that can open the pipe for
//! reading (its path is in our command line) takes its leak's event out before the user's
//! reader does, and no private copy can put it back. Such a pipe is refused before the
//! program starts; a descriptor the program does not inherit (`--report >(consumer)`) or a
//! pipe the program's user cannot read is the way.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::Path;

use crate::supervisor::identity::{Credentials, READ};

/// A report refused before the program starts (a usage error: exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Why the report at `path`, opened as `meta` says (the object itself: no name swapped in
/// since can change it), must be refused for a program run as `reader`: a named pipe it can
/// read. `None` for anything else.
pub fn refusal(meta: &std::fs::Metadata, path: &Path, reader: &Credentials) -> Option<Refused> {
    if !meta.file_type().is_fifo() {
        return None;
    }
    reader.may(READ, meta.uid(), meta.gid(), meta.mode()).then(|| {
        Refused(format!(
            "--report {}: a named pipe that the program (uid {}) can open for reading too: it could take its \
             events out before your reader does. Give the reader as a descriptor the program does not inherit \
             (--report >(consumer)), or a pipe the program's user cannot read (--user, mode 600)",
            path.display(),
            reader.uid
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_pipe_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let me = Credentials { uid: nix::unistd::geteuid().as_raw(), groups: vec![] };
        let file = dir.path().join("r.jsonl");
        std::fs::write(&file, "").unwrap();
        let meta = |p: &Path| std::fs::metadata(p).unwrap();
        assert!(refusal(&meta(&file), &file, &me).is_none());
        assert!(refusal(&meta(Path::new("/dev/null")), Path::new("/dev/null"), &me).is_none());
        let fifo = dir.path().join("r.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(refusal(&meta(&fifo), &fifo, &me).is_some_and(|why| why.0.contains("named pipe")));
    }
}
