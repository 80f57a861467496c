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

use super::resolve;

/// The live report file and its private copy.
pub struct Kept {
    /// The path as readers name it (absolute; a descriptor path replaced by its file's name;
    /// see `resolve`), links and all: checked at the end, followed as a reader follows it (it
    /// must name our file, whatever its links name by then).
    given: PathBuf,
    /// The file itself (its links resolved at the start): where a restore puts our copy.
    path: PathBuf,
    /// The directory the file was in when the run began, opened then: the restore writes
    /// there even if the program moved or replaced the directory (by a link) since.
    dir: File,
    live: File,
    copy: File,
    /// Where our first byte is in the live file: 0 for a file we created; where our stdout
    /// stood when it is the report (`adopt`), what the shell wrote before staying as it is.
    base: u64,
    /// Our stdout or stderr when the live file is one of them (`adopt`): written by `stream`
    /// at the offset the shell's description shares, and pointed at the restored file.
    redirect: Vec<i32>,
    /// Bytes written, at their offsets: all of them to the live file (or `live_failed`).
    written: u64,
    /// The first write of the live file that failed (a full file system, a file size limit):
    /// the file lacks what it should hold, and is restored from the copy at the end.
    live_failed: Option<io::Error>,
    /// Bytes the copy holds (`..written`); the rest, `copy_tail`, is written to it as soon as
    /// it can be (a file system no longer full, a limit raised), at the latest at the end.
    copy_done: u64,
    copy_tail: Vec<u8>,
    /// Why the copy lags: the last write of it that failed.
    copy_failed: Option<io::Error>,
}

/// At most this much of what the copy lacks is held in memory; beyond, it is given up (the
/// report can then be neither checked nor restored, and the run says so).
const COPY_TAIL_LIMIT: usize = 16 << 20;

/// What the end-of-run check found.
#[derive(Debug)]
pub enum Check {
    /// The file at the path is what we wrote.
    Intact,
    /// It was not (`why`), and it is again: restored from our copy.
    Restored { why: String },
    /// It was not (`why`); our copy was put back where the file was, but the path as given
    /// names another file still (the program moved its directory, or re-pointed a link on
    /// it): the report is at `at`.
    Elsewhere { why: String, at: PathBuf },
    /// It was not (`why`), and restoring it failed; the restored file, when it could be
    /// written in full, is at `kept_at`.
    NotRestored { why: String, err: io::Error, kept_at: Option<PathBuf> },
    /// The private copy could not be written in full: the file can be neither checked nor
    /// restored.
    Unkept { err: String },
}

impl Check {
    /// Whether the report at its path is not what we wrote (a reader there misses events or
    /// reads a forgery), or cannot be vouched for: the run fails.
    pub fn failed(&self) -> bool {
        matches!(self, Check::Elsewhere { .. } | Check::NotRestored { .. } | Check::Unkept { .. })
    }
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
    /// A kept file written from `base` on (see the fields), nothing written yet.
    fn new(
        given: PathBuf,
        path: PathBuf,
        dir: File,
        live: File,
        copy: File,
        base: u64,
        redirect: Vec<i32>,
    ) -> Kept {
        Kept {
            given,
            path,
            dir,
            live,
            copy,
            base,
            redirect,
            written: 0,
            live_failed: None,
            copy_done: 0,
            copy_tail: Vec::new(),
            copy_failed: None,
        }
    }

    /// Creates (truncates) the report at `path`, and its private copy when it is a regular file.
    pub fn create(path: &Path) -> io::Result<Opened> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let own = super::own_fd(path);
        let fd_path = own.and_then(resolve::file_of_fd);
        if own.is_some() && fd_path.is_none() {
            // One of our own descriptors that is no regular file (`>(jq ...)`'s pipe): the
            // program does not inherit it; written as it is.
            return Ok(Opened::Plain(File::options().read(true).write(true).open(path)?));
        }
        let given = resolve::reader_path(path, fd_path, &cwd);
        let ours = nix::unistd::geteuid().as_raw();
        // Read back at the end (see `check`). A file we may only write (an earlier run's program
        // made it so) is kept too: it is read back then through a new descriptor, if its mode
        // allows by then, and otherwise replaced by our copy, which cannot be checked less.
        // Truncated only once it is known to be the file at this name alone (see below).
        let create = libc::O_CREAT;
        let opened = match resolve::open_report(&given, ours, libc::O_RDWR | create) {
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                let opened = resolve::open_report(&given, ours, libc::O_WRONLY | create)?;
                super::human::write_line(
                    "sockstrace: warning: the report file can be written but not read back: it is kept all the \
                     same, and replaced at the end by our copy if it still cannot be read back then",
                );
                opened
            }
            opened => opened?,
        };
        let live = opened.file;
        let meta = live.metadata()?;
        if !meta.is_file() {
            return Ok(Opened::Plain(live));
        }
        // A file with other names (a hard link planted at the report's name, where
        // `protected_hardlinks` is off) is someone else's file too: we would truncate and write
        // it, as root under `sudo`.
        if meta.nlink() > 1 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} has {} names (hard links): refused, as it may be another file of someone else's",
                    opened.real.display(),
                    meta.nlink()
                ),
            ));
        }
        live.set_len(0)?;
        // The file itself, not a symbolic link to it, is restored: in the directory the walk
        // opened.
        let path = opened.real;
        let dir_path = path.parent().unwrap_or(Path::new("/"));
        match private_copy(dir_path) {
            Ok(copy) => Ok(Opened::Kept(Kept::new(given, path, opened.dir, live, copy, 0, Vec::new()))),
            Err(e) => {
                super::human::write_line(&format!(
                    "sockstrace: warning: no private copy of the report file ({e}): a change the program makes to it will not be undone"
                ));
                Ok(Opened::Plain(live))
            }
        }
    }

    /// Keeps our stdout or stderr (`fd`) when the report goes there and it is a regular file
    /// with a name (`--report - > r.jsonl`): the stream writes it, sharing its offset with the
    /// shell; we keep a private copy of what goes there from now on (`record`), check it at the
    /// end like a report we created, and restore it with what the shell wrote before. `None`
    /// for a terminal, a pipe, a file without a name.
    pub fn adopt(fd: i32) -> Option<Kept> {
        let given = resolve::file_of_fd(fd)?;
        let live = File::open(format!("/proc/self/fd/{fd}")).or_else(|_| dup_of(fd)).ok()?;
        // SAFETY: lseek on an fd number; a closed or unseekable one fails.
        let at = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
        // SAFETY: fcntl(F_GETFL) on an fd number.
        let appending = unsafe { libc::fcntl(fd, libc::F_GETFL) } & libc::O_APPEND != 0;
        let base = match appending {
            true => live.metadata().ok()?.len(),
            false => u64::try_from(at).ok()?,
        };
        let dir_path = given.parent().unwrap_or(Path::new("/"));
        let dir = File::options().read(true).custom_flags(libc::O_DIRECTORY).open(dir_path).ok()?;
        let copy = private_copy(dir_path).ok()?;
        let redirect = [1, 2].into_iter().filter(|&other| super::stream::same_object(fd, other)).collect();
        Some(Kept::new(given.clone(), given, dir, live, copy, base, redirect))
    }

    /// Notes bytes the stream wrote to the live file (`adopt`), or failed to (`written`).
    pub fn record(&mut self, buf: &[u8], written: &io::Result<()>) {
        self.keep_copy(buf);
        if let Err(e) = written {
            self.live_failed.get_or_insert(io::Error::new(e.kind(), e.to_string()));
        }
    }

    /// Whether the file at the path, as a reader of the path as given finds it (its links
    /// followed now), holds exactly what we wrote; why not otherwise.
    fn altered(&self) -> Option<String> {
        if let Some(e) = &self.live_failed {
            return Some(format!("writing it failed: {e}"));
        }
        let Ok(ours) = self.live.metadata() else {
            return Some("its file can no longer be read".into());
        };
        let at_path = match resolve::reader_finds(&self.given) {
            Ok(at_path) => at_path,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Some("it was removed".into()),
            Err(e) => return Some(format!("its path cannot be followed as a reader follows it ({e})")),
        };
        if at_path != (ours.dev(), ours.ino()) {
            return Some("the path names another file".into());
        }
        if ours.len() != self.base + self.written {
            return Some(format!("it has {} bytes, {} were written", ours.len(), self.base + self.written));
        }
        let compared =
            self.readable_live().and_then(|live| same_bytes(&live, self.base, &self.copy, self.written));
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
        self.catch_up_copy();
        if self.copy_done < self.written {
            let err = self.copy_failed.as_ref().map_or_else(|| "it is short".into(), |e| e.to_string());
            return Check::Unkept { err };
        }
        let Some(why) = self.altered() else {
            return Check::Intact;
        };
        let restored = match self.restore() {
            Ok(restored) => restored,
            Err((err, kept_at)) => return Check::NotRestored { why, err, kept_at },
        };
        for &fd in &self.redirect {
            // SAFETY: dup2 onto our own stdout/stderr number; `restored` stays open.
            unsafe { libc::dup2(restored.as_raw_fd(), fd) };
        }
        self.live = restored;
        self.live_failed = None;
        // Restored where the file was; a reader of the path as given must find it there.
        match self.altered() {
            None => Check::Restored { why },
            Some(_) => Check::Elsewhere { why, at: self.restored_path() },
        }
    }

    /// Where the file is now: the directory opened at the start, wherever it is now (by
    /// `/proc/self/fd`), and the file's name.
    fn restored_path(&self) -> PathBuf {
        let dir = std::fs::read_link(format!("/proc/self/fd/{}", self.dir.as_raw_fd()));
        let dir = dir.unwrap_or_else(|_| self.path.parent().unwrap_or(Path::new(".")).to_path_buf());
        dir.join(self.path.file_name().unwrap_or_default())
    }

    /// Writes the copy to a new file next to the path and renames it over the path; returns
    /// the new file, which later writes go to. On failure, where the new file was left when it
    /// was written in full (the rename failed: a directory at the path, say).
    fn restore(&mut self) -> Result<File, (io::Error, Option<PathBuf>)> {
        use nix::fcntl::renameat;
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (temp, mut fresh) = self.fresh_file(&name).map_err(|e| (e, None))?;
        let dir = Some(self.dir.as_raw_fd());
        let unlink = || {
            let _ = nix::unistd::unlinkat(dir, temp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        };
        let prefix = match self.base {
            0 => Ok(()),
            base => self.readable_live().and_then(|live| copy_range(&live, &mut fresh, base)),
        };
        if let Err(e) = prefix.and_then(|()| copy_range(&self.copy, &mut fresh, self.written)) {
            unlink();
            return Err((e, None));
        }
        if let Err(e) = renameat(dir, temp.as_str(), dir, name.as_str()) {
            let at = self.restored_path().with_file_name(&temp);
            return Err((e.into(), Some(at)));
        }
        Ok(fresh)
    }

    /// A new file in the directory opened at the start, under a fresh name, created there and
    /// nowhere else (no link followed, nothing reused): a name the program planted something
    /// at is skipped.
    fn fresh_file(&self, name: &str) -> io::Result<(String, File)> {
        use nix::fcntl::{openat, OFlag};
        use nix::sys::stat::Mode;
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut last = io::Error::new(io::ErrorKind::AlreadyExists, "no fresh name for the restored file");
        for attempt in 0..16 {
            let temp = format!(".{name}.sockstrace-restore-{}-{}-{attempt}", std::process::id(), nanos());
            match openat(Some(self.dir.as_raw_fd()), temp.as_str(), flags, Mode::from_bits_truncate(0o666)) {
                // SAFETY: openat returned a new fd that we own.
                Ok(fd) => return Ok((temp, unsafe { File::from_raw_fd(fd) })),
                Err(nix::errno::Errno::EEXIST) => last = nix::errno::Errno::EEXIST.into(),
                Err(e) => return Err(io::Error::from(e)),
            }
        }
        Err(last)
    }
}

impl Kept {
    /// Writes what the copy lacks, as far as it goes; keeps the rest (up to
    /// [`COPY_TAIL_LIMIT`]) for the next try.
    fn catch_up_copy(&mut self) {
        while !self.copy_tail.is_empty() {
            match self.copy.write_at(&self.copy_tail, self.copy_done) {
                Ok(0) => {
                    self.copy_failed = Some(io::ErrorKind::WriteZero.into());
                    break;
                }
                Ok(n) => {
                    self.copy_tail.drain(..n);
                    self.copy_done += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.copy_failed = Some(e);
                    break;
                }
            }
        }
        if self.copy_done == self.written {
            self.copy_failed = None;
        }
    }
}

impl Kept {
    /// Counts `buf` as written and puts it in the copy (or in its held tail).
    fn keep_copy(&mut self, buf: &[u8]) {
        let at = self.written;
        self.written += buf.len() as u64;
        let holding = self.copy_done + self.copy_tail.len() as u64 == at;
        if holding && self.copy_tail.len() + buf.len() <= COPY_TAIL_LIMIT {
            self.copy_tail.extend_from_slice(buf);
            self.catch_up_copy();
        } else {
            // Given up: the copy stays short, said at the end (`Check::Unkept`).
            self.copy_tail = Vec::new();
        }
    }
}

impl Write for Kept {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The copy first: what it holds is what the file must hold. A write of it cut short (a
        // full file system, a file size limit) is finished later; one of the live file is
        // undone at the end by the restore. Both at our own offsets, so that a write cut
        // short leaves no fragment for a later one to be glued to.
        let at = self.written;
        self.keep_copy(buf);
        if let Err(e) = self.live.write_all_at(buf, at) {
            self.live_failed.get_or_insert(e);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.live.flush()
    }
}

/// Copies the first `len` bytes of `from` to the start of `to`.
fn copy_range(from: &File, to: &mut File, len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    while at < len {
        let want = usize::try_from(len - at).unwrap_or(usize::MAX).min(buf.len());
        let n = from.read_at(buf.get_mut(..want).unwrap_or_default(), at)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the private copy is short"));
        }
        to.write_all(buf.get(..n).unwrap_or_default())?;
        at += n as u64;
    }
    Ok(())
}

/// The report's private copy: an unnamed file beside it in `dir`, else in the temporary
/// directory.
fn private_copy(dir: &Path) -> io::Result<File> {
    private_file(dir).or_else(|_| private_file(&std::env::temp_dir()))
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

/// Whether `len` bytes of `a` from `base` and the first `len` of `b` are equal (and `a` has no
/// more).
fn same_bytes(a: &File, base: u64, b: &File, len: u64) -> io::Result<bool> {
    let (mut x, mut y) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut at = 0u64;
    while at < len {
        let n = a.read_at(&mut x, base + at)?;
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
    Ok(a.read_at(&mut x[..1], base + at)? == 0)
}

/// A new descriptor of our `fd` (for a file we may not open again by its name).
fn dup_of(fd: i32) -> io::Result<File> {
    // SAFETY: F_DUPFD_CLOEXEC on an fd number; a closed one fails with EBADF.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl just gave us this fd.
    Ok(unsafe { File::from_raw_fd(new) })
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
    fn a_report_whose_directory_was_moved_aside_is_restored_there_and_said_elsewhere() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("out");
        std::fs::create_dir(&dir).unwrap();
        let (mut k, path) = kept(&dir);
        std::fs::rename(&dir, base.path().join("out.old")).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&path, "{}\n").unwrap();
        let Check::Elsewhere { why, at } = k.check() else { panic!("not said elsewhere") };
        assert!(why.contains("another file"), "{why}");
        assert_eq!(at, base.path().join("out.old/report.jsonl").canonicalize().unwrap());
        assert_eq!(std::fs::read_to_string(&at).unwrap(), "{\"a\":1}\n{\"verdict\":\"leak\"}\n");
        assert!(k.check().failed(), "the path still names the forgery");
    }

    #[test]
    fn a_report_link_re_pointed_at_another_file_is_not_intact() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink("real.jsonl", &link).unwrap();
        let Ok(Opened::Kept(mut k)) = Kept::create(&link) else { panic!("not kept") };
        k.write_all(b"{\"verdict\":\"leak\"}\n").unwrap();
        std::fs::write(dir.path().join("forged.jsonl"), "{}\n").unwrap();
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("forged.jsonl", &link).unwrap();
        let check = k.check();
        assert!(matches!(&check, Check::Elsewhere { at, .. } if at.ends_with("real.jsonl")), "{check:?}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("real.jsonl")).unwrap(),
            "{\"verdict\":\"leak\"}\n"
        );
    }

    #[test]
    fn a_directory_at_the_report_path_fails_and_says_where_the_copy_is() {
        let dir = tempfile::tempdir().unwrap();
        let (mut k, path) = kept(dir.path());
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let check = k.check();
        let Check::NotRestored { kept_at: Some(at), .. } = &check else { panic!("{check:?}") };
        assert!(check.failed());
        assert_eq!(std::fs::read_to_string(at).unwrap(), "{\"a\":1}\n{\"verdict\":\"leak\"}\n");
    }

    #[test]
    fn a_restore_into_an_unwritable_directory_fails_with_its_cause() {
        without_capabilities(|| {
            use std::os::unix::fs::PermissionsExt as _;
            let dir = tempfile::tempdir().unwrap();
            let (mut k, path) = kept(dir.path());
            std::fs::remove_file(&path).unwrap();
            std::fs::write(&path, "{}\n").unwrap();
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
            let check = k.check();
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let Check::NotRestored { err, kept_at: None, .. } = &check else { panic!("{check:?}") };
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        });
    }

    #[test]
    fn a_live_write_cut_short_is_restored_without_a_fragment() {
        let dir = tempfile::tempdir().unwrap();
        let (mut k, path) = kept(dir.path());
        // What a write cut short leaves: part of a line, and the failure.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"ha").unwrap();
        k.live_failed = Some(io::Error::from_raw_os_error(libc::EFBIG));
        k.written += 5;
        // ... and one of the copy, finished with the next write.
        k.copy_tail.extend_from_slice(b"{\"b\"}");
        k.copy_failed = Some(io::Error::from_raw_os_error(libc::EFBIG));
        k.write_all(b"\n").unwrap();
        assert!(k.copy_failed.is_none());
        let check = k.check();
        assert!(matches!(&check, Check::Restored { why } if why.contains("writing it failed")), "{check:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"verdict\":\"leak\"}\n{\"b\"}\n");
    }

    #[test]
    fn a_private_copy_written_short_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let (mut k, _) = kept(dir.path());
        // What a write of the copy cut short leaves, past what can be held.
        k.copy_done -= 3;
        k.copy_tail.clear();
        k.copy_failed = Some(io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(k.check(), Check::Unkept { err } if err.contains("space")));
    }

    #[test]
    fn a_stdout_file_is_kept_from_where_it_stood_and_restored_with_what_came_before() {
        use std::os::fd::AsRawFd as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut out = File::create(&path).unwrap();
        out.write_all(b"the shell's line\n").unwrap();
        let mut k = Kept::adopt(out.as_raw_fd()).expect("adopted");
        assert_eq!(k.base, 17);
        for line in [&b"{\"verdict\":\"leak\"}\n"[..], b"program output\n"] {
            let written = out.write_all(line);
            k.record(line, &written);
        }
        assert!(matches!(k.check(), Check::Intact));
        std::fs::write(dir.path().join("forged"), "{}\n").unwrap();
        std::fs::rename(dir.path().join("forged"), &path).unwrap();
        assert!(matches!(k.check(), Check::Restored { .. }));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "the shell's line\n{\"verdict\":\"leak\"}\nprogram output\n"
        );
        let (pipe, _w) = std::io::pipe().unwrap();
        assert!(Kept::adopt(pipe.as_raw_fd()).is_none(), "a pipe is not kept");
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
