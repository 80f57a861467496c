//! A report on a named pipe (`mkfifo r; consumer < r & sockstrace run --report r`): what is
//! written there goes to whichever reader reads first. A program that can open the pipe for
//! reading (its path is in our command line) takes its leak's event out before the user's
//! reader does, and no private copy can put it back. Such a pipe is refused before the
//! program starts; a descriptor the program does not inherit (`--report >(consumer)`) or a
//! pipe the program's user cannot read is the way.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::Path;

/// Who the program runs as, for the pipe's mode bits.
#[derive(Debug, Clone)]
pub struct Reader {
    pub uid: u32,
    pub groups: Vec<u32>,
}

/// A report refused before the program starts (a usage error: exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The pipe's owner, group and mode.
#[derive(Clone, Copy)]
pub struct PipeMode {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// Whether `reader` may open a pipe of `pipe`'s owner and mode for reading (root may, whatever
/// the mode: a program run as root keeps its capabilities).
pub fn readable_by(pipe: PipeMode, reader: &Reader) -> bool {
    if reader.uid == 0 {
        return true;
    }
    let bit = if reader.uid == pipe.uid {
        0o400
    } else if reader.groups.contains(&pipe.gid) {
        0o040
    } else {
        0o004
    };
    pipe.mode & bit != 0
}

/// Why the report at `path`, opened as `meta` says (the object itself: no name swapped in
/// since can change it), must be refused for a program run as `reader`: a named pipe it can
/// read. `None` for anything else.
pub fn refusal(meta: &std::fs::Metadata, path: &Path, reader: &Reader) -> Option<Refused> {
    if !meta.file_type().is_fifo() {
        return None;
    }
    let pipe = PipeMode { uid: meta.uid(), gid: meta.gid(), mode: meta.mode() };
    readable_by(pipe, reader).then(|| {
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
    fn the_mode_bit_of_the_programs_class_decides() {
        let pipe = |mode| PipeMode { uid: 1000, gid: 100, mode };
        let owner = Reader { uid: 1000, groups: vec![100] };
        let member = Reader { uid: 1001, groups: vec![5, 100] };
        let other = Reader { uid: 65534, groups: vec![65534] };
        assert!(readable_by(pipe(0o600), &owner));
        assert!(!readable_by(pipe(0o200), &owner));
        assert!(!readable_by(pipe(0o600), &member));
        assert!(readable_by(pipe(0o640), &member));
        assert!(!readable_by(pipe(0o640), &other));
        assert!(readable_by(pipe(0o604), &other));
        // The owner's bits decide for the owner, even when others may read.
        assert!(!readable_by(pipe(0o044), &owner));
        assert!(readable_by(pipe(0o000), &Reader { uid: 0, groups: vec![] }));
    }

    #[test]
    fn only_a_pipe_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let me = Reader { uid: nix::unistd::geteuid().as_raw(), groups: vec![] };
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
