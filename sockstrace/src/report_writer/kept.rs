//! The report file, kept: a program run as the same user as sockstrace can open `--report FILE`
//! (its path is in our command line) and rewrite it. Everything written to the file is also
//! written to a private copy, an unnamed file (`O_TMPFILE`, or one unlinked at once) that the
//! program cannot reach: it has no name, and our fds are closed to it (the supervisor is
//! non-dumpable). At the end of the run the file at the path must hold exactly what we wrote
//! (the same inode, the same bytes); otherwise it is restored from the copy, renamed into place
//! atomically, and the summary says so.
//!
//! The file at the path is written live, as before (`tail -f` works).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd as _, FromRawFd as _};
use std::os::unix::fs::{FileExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// The live report file and its private copy.
pub struct Kept {
    path: PathBuf,
    /// The directory the path was in when the run began, opened then: the restore writes
    /// there even if the program moved or replaced the directory (by a link) since.
    dir: File,
    live: File,
    copy: File,
    /// Bytes written to both.
    written: u64,
}

/// What the end-of-run check found.
#[derive(Debug)]
pub enum Check {
    /// The file at the path is what we wrote.
    Intact,
    /// It was not (`why`), and it is again: restored from our copy.
    Restored { why: String },
    /// It was not (`why`), and restoring it failed.
    NotRestored { why: String, err: io::Error },
}

/// The report file as opened.
pub enum Opened {
    /// A regular file, kept.
    Kept(Kept),
    /// Anything else (`/dev/null`, a FIFO), or a file no private copy could be made for (said
    /// on stderr): written as it is.
    Plain(File),
}

impl Kept {
    /// Creates (truncates) the report at `path`, and its private copy when it is a regular file.
    pub fn create(path: &Path) -> io::Result<Opened> {
        refuse_foreign_link(path)?;
        // Read back at the end (see `check`). A file we may only write (an earlier run's program
        // made it so) is kept too: it is read back then through a new descriptor, if its mode
        // allows by then, and otherwise replaced by our copy, which cannot be checked less.
        let live = match File::options().read(true).write(true).create(true).truncate(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                let live = File::options().write(true).create(true).truncate(true).open(path)?;
                super::human::write_line(
                    "sockstrace: warning: the report file can be written but not read back: it is kept all the \
                     same, and replaced at the end by our copy if it still cannot be read back then",
                );
                live
            }
            Err(e) => return Err(e),
        };
        if !live.metadata()?.is_file() {
            return Ok(Opened::Plain(live));
        }
        // The file itself, not a symbolic link to it, is checked and restored.
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let dir_path = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let dir = File::options().read(true).custom_flags(libc::O_DIRECTORY).open(dir_path);
        match (dir, private_file(dir_path).or_else(|_| private_file(&std::env::temp_dir()))) {
            (Ok(dir), Ok(copy)) => Ok(Opened::Kept(Kept { path, dir, live, copy, written: 0 })),
            (Err(e), _) | (_, Err(e)) => {
                super::human::write_line(&format!(
                    "sockstrace: warning: no private copy of the report file ({e}): a change the program makes to it will not be undone"
                ));
                Ok(Opened::Plain(live))
            }
        }
    }

    /// Whether the file at the path holds exactly what we wrote; why not otherwise.
    fn altered(&self) -> Option<String> {
        let (Ok(ours), at_path) = (self.live.metadata(), std::fs::symlink_metadata(&self.path)) else {
            return Some("its file can no longer be read".into());
        };
        let Ok(at_path) = at_path else {
            return Some("it was removed".into());
        };
        if (at_path.dev(), at_path.ino()) != (ours.dev(), ours.ino()) {
            return Some("the path names another file".into());
        }
        if ours.len() != self.written {
            return Some(format!("it has {} bytes, {} were written", ours.len(), self.written));
        }
        let compared = self.readable_live().and_then(|live| same_bytes(&live, &self.copy, self.written));
        match compared {
            Ok(true) => None,
            Ok(false) => Some("its contents were changed".into()),
            Err(e) => Some(format!("it cannot be read back ({e})")),
        }
    }

    /// The live file, open for reading: a new descriptor of the same file (by `/proc/self/fd`,
    /// whatever its path names now), which its mode allows or not as it is now.
    fn readable_live(&self) -> io::Result<File> {
        File::open(format!("/proc/self/fd/{}", self.live.as_raw_fd()))
    }

    /// Checks the file at the path and restores it from the copy when it was altered.
    pub fn check(&mut self) -> Check {
        let _ = self.live.flush();
        let Some(why) = self.altered() else {
            return Check::Intact;
        };
        match self.restore() {
            Ok(()) => Check::Restored { why },
            Err(err) => Check::NotRestored { why, err },
        }
    }

    /// Writes the copy to a new file next to the path and renames it over the path; later
    /// writes go to the new file.
    fn restore(&mut self) -> io::Result<()> {
        use nix::fcntl::{openat, renameat, OFlag};
        use nix::sys::stat::Mode;
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // A fresh name, created here and nowhere else (no link followed, nothing reused): a
        // name the program planted something at is skipped.
        let (temp, mut fresh) = (0..16)
            .find_map(|attempt| {
                let temp = format!(".{name}.sockstrace-restore-{}-{}-{attempt}", std::process::id(), nanos());
                let flags =
                    OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let fd =
                    openat(Some(self.dir.as_raw_fd()), temp.as_str(), flags, Mode::from_bits_truncate(0o666))
                        .ok()?;
                // SAFETY: openat returned a new fd that we own.
                Some((temp, unsafe { File::from_raw_fd(fd) }))
            })
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::AlreadyExists, "no fresh name for the restored file")
            })?;
        let dir = Some(self.dir.as_raw_fd());
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = 0u64;
        while at < self.written {
            let n = self.copy.read_at(&mut buf, at)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the private copy is short"));
            }
            fresh.write_all(buf.get(..n).unwrap_or_default())?;
            at += n as u64;
        }
        if let Err(e) = renameat(dir, temp.as_str(), dir, name.as_str()) {
            let _ = nix::unistd::unlinkat(dir, temp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
            return Err(e.into());
        }
        self.live = fresh;
        Ok(())
    }
}

impl Write for Kept {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The copy first: what it holds is what the file must hold.
        self.copy.write_all(buf)?;
        // A failing live write (a full disk) is caught by the end-of-run check.
        let _ = self.live.write_all(buf);
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.live.flush()
    }
}

/// Refuses a report path that is a symbolic link owned by neither us nor root: a user who can
/// write the directory (the program of an earlier run as that user, say) could point it at any
/// file, which we would truncate and write, as root under `sudo` (the kernel's
/// `protected_symlinks` rule, applied to every directory).
fn refuse_foreign_link(path: &Path) -> io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let ours = nix::unistd::geteuid().as_raw();
    if meta.file_type().is_symlink() && meta.uid() != ours && meta.uid() != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "it is a symbolic link owned by uid {}, neither ours nor root's: refused, as whoever owns it can point it anywhere",
                meta.uid()
            ),
        ));
    }
    Ok(())
}

/// An unnamed file in `dir`: `O_TMPFILE`, or a file unlinked as soon as it is made.
fn private_file(dir: &Path) -> io::Result<File> {
    let tmpfile = File::options().read(true).write(true).mode(0o600).custom_flags(libc::O_TMPFILE).open(dir);
    if let Ok(file) = tmpfile {
        return Ok(file);
    }
    let name = dir.join(format!(".sockstrace-copy-{}-{}", std::process::id(), nanos()));
    let file = File::options().read(true).write(true).create_new(true).mode(0o600).open(&name)?;
    std::fs::remove_file(&name)?;
    Ok(file)
}

fn nanos() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
}

/// Whether the first `len` bytes of `a` and `b` are equal (and `a` has no more).
fn same_bytes(a: &File, b: &File, len: u64) -> io::Result<bool> {
    let (mut x, mut y) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut at = 0u64;
    while at < len {
        let n = a.read_at(&mut x, at)?;
        if n == 0 {
            return Ok(false);
        }
        let mut got = 0;
        while got < n {
            let m = b.read_at(y.get_mut(got..n).unwrap_or_default(), at + got as u64)?;
            if m == 0 {
                return Ok(false);
            }
            got += m;
        }
        if x.get(..n) != y.get(..n) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(a.read_at(&mut x[..1], at)? == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(dir: &Path) -> (Kept, PathBuf) {
        let path = dir.join("report.jsonl");
        let Ok(Opened::Kept(mut k)) = Kept::create(&path) else { panic!("not kept") };
        k.write_all(b"{\"a\":1}\n{\"verdict\":\"leak\"}\n").unwrap();
        (k, path)
    }

    #[test]
    fn a_device_is_written_as_it_is() {
        assert!(matches!(Kept::create(Path::new("/dev/null")), Ok(Opened::Plain(_))));
    }

    #[test]
    fn a_report_through_a_symbolic_link_is_kept_as_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink("real.jsonl", &link).unwrap();
        let Ok(Opened::Kept(mut k)) = Kept::create(&link) else { panic!("not kept") };
        k.write_all(b"x\n").unwrap();
        assert!(matches!(k.check(), Check::Intact));
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    }

    #[test]
    fn an_untouched_report_is_intact() {
        let dir = tempfile::tempdir().unwrap();
        let (mut k, _) = kept(dir.path());
        assert!(matches!(k.check(), Check::Intact));
    }

    #[test]
    fn a_rewritten_report_is_restored_and_written_on() {
        let dir = tempfile::tempdir().unwrap();
        let (mut k, path) = kept(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("leak", "    ")).unwrap();
        assert!(matches!(k.check(), Check::Restored { .. }));
        k.write_all(b"end\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"verdict\":\"leak\"}\nend\n");
        assert!(matches!(k.check(), Check::Intact));
    }

    /// Runs `f` on a thread of its own that has no capability (root's override of file modes
    /// included): the kernel checks a file's mode against the calling thread's credentials.
    fn without_capabilities<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut header = Header { version: 0x2008_0522, pid: 0 };
                    let data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
                    // SAFETY: capset reads a version-3 header and two data records, both live
                    // locals; pid 0 is this thread alone.
                    let done = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
                    assert_eq!(done, 0, "capset: {}", io::Error::last_os_error());
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    #[test]
    fn a_report_that_can_only_be_written_is_kept_and_checked_once_it_can_be_read() {
        without_capabilities(a_report_that_can_only_be_written_is_kept);
    }

    fn a_report_that_can_only_be_written_is_kept() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.jsonl");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o200)).unwrap();
        let Ok(Opened::Kept(mut k)) = Kept::create(&path) else { panic!("not kept") };
        k.write_all(b"{\"verdict\":\"leak\"}\n").unwrap();
        // Still write-only at the end: it cannot be checked, so it is replaced by our copy.
        assert!(matches!(k.check(), Check::Restored { why } if why.contains("cannot be read back")));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"verdict\":\"leak\"}\n");
        assert!(matches!(k.check(), Check::Intact));
    }

    #[test]
    fn a_report_replaced_by_rename_or_removed_is_restored() {
        let dir = tempfile::tempdir().unwrap();
        let (mut k, path) = kept(dir.path());
        std::fs::write(dir.path().join("other"), "{\"a\":1}\n{\"verdict\":\"leak\"}\n").unwrap();
        std::fs::rename(dir.path().join("other"), &path).unwrap();
        assert!(matches!(k.check(), Check::Restored { why } if why.contains("another file")));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(k.check(), Check::Restored { .. }));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"verdict\":\"leak\"}\n");
        // Truncated, then grown back with zeros by a later write of ours.
        File::options().write(true).open(&path).unwrap().set_len(3).unwrap();
        assert!(matches!(k.check(), Check::Restored { .. }));
        assert!(matches!(k.check(), Check::Intact));
    }
}
