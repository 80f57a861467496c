//! The report's path as the user reads it. sockstrace opens `--report PATH` in its own process,
//! but the report is read by others (a shell, a CI step, `jq`): the end-of-run check must look
//! where they look. So the path is made absolute at the start (a relative one against the
//! working directory's name, not its inode, which the program may move aside), a descriptor
//! path (`/dev/fd/N`, `/proc/self/fd/N`) becomes the name of the file it names, and at the end
//! the path is followed without the per-process "magic" links of `/proc` (`/proc/self/fd/N`
//! names each reader's own descriptor). Every symbolic link on the way, not only the last, must
//! be ours or root's: one of another user could point root's writes anywhere.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};

/// At most this many links are followed on one path (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// The absolute name under which readers find the report given as `path`: `fd_path` is the
/// file behind a descriptor path (read from `/proc/self/fd/N`), `cwd` the working directory.
pub fn reader_path(path: &Path, fd_path: Option<PathBuf>, cwd: &Path) -> PathBuf {
    match fd_path {
        Some(named) => named,
        None if path.is_absolute() => path.to_path_buf(),
        None => cwd.join(path),
    }
}

/// The name of the regular file our descriptor `fd` is open on, when it has one.
pub fn file_of_fd(fd: i32) -> Option<PathBuf> {
    let named = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    let meta = std::fs::metadata(&named).ok()?;
    let ours = nix::sys::stat::fstat(fd).ok()?;
    (named.is_absolute() && meta.is_file() && (meta.dev(), meta.ino()) == (ours.st_dev, ours.st_ino))
        .then_some(named)
}

/// The report opened by [`open_report`].
#[derive(Debug)]
pub struct OpenedReport {
    pub file: File,
    /// The directory it is in (an `O_PATH` descriptor): where a restore writes.
    pub dir: File,
    /// Its path, links resolved.
    pub real: PathBuf,
}

/// How often a name swapped for a link between our look at it and its open is looked at again.
const SWAPPED_RETRIES: usize = 8;

/// Opens the report at `path` (absolute) with `flags` (`O_CREAT` and the access mode
/// included), resolving it once, one component at a time on directory descriptors, so that
/// what is checked is what is opened: each symbolic link is opened itself (`O_PATH |
/// O_NOFOLLOW`), must be owned by `ours` or root (whoever owns it can point it anywhere, and
/// we would create and truncate the report there, as root under `sudo`), and is read from
/// that descriptor; the last name is opened with `O_NOFOLLOW` relative to its directory (a
/// link swapped in meanwhile fails with `ELOOP`, and the walk is done again).
pub fn open_report(path: &Path, ours: u32, flags: i32) -> io::Result<OpenedReport> {
    let mut last = io::Error::from_raw_os_error(libc::ELOOP);
    for _ in 0..SWAPPED_RETRIES {
        match walk(path, ours, flags) {
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => last = e,
            done => return done,
        }
    }
    Err(last)
}

fn walk(path: &Path, ours: u32, flags: i32) -> io::Result<OpenedReport> {
    let mut todo: VecDeque<OsString> = components(path);
    let mut dir = open_at(None, Path::new("/"), libc::O_PATH | libc::O_DIRECTORY)?;
    let mut real = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            dir = open_at(Some(&dir), Path::new(".."), libc::O_PATH | libc::O_DIRECTORY)?;
            real.pop();
            continue;
        }
        let name = Path::new(&part);
        let end = todo.is_empty();
        let node = match open_at(Some(&dir), name, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(node) => node,
            Err(e) if end && e.kind() == io::ErrorKind::NotFound => {
                let file = open_at(Some(&dir), name, flags | libc::O_NOFOLLOW)?;
                return Ok(OpenedReport { file, dir, real: real.join(&part) });
            }
            Err(e) => return Err(e),
        };
        let meta = node.metadata()?;
        if meta.file_type().is_symlink() {
            if meta.uid() != ours && meta.uid() != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{} is a symbolic link owned by uid {}, neither ours nor root's: refused, as whoever owns it can point it anywhere",
                        real.join(&part).display(),
                        meta.uid()
                    ),
                ));
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::other("too many symbolic links on the report's path"));
            }
            let target = read_link_of(&node)?;
            if target.is_absolute() {
                dir = open_at(None, Path::new("/"), libc::O_PATH | libc::O_DIRECTORY)?;
                real = PathBuf::from("/");
            }
            for part in components(&target).into_iter().rev() {
                todo.push_front(part);
            }
        } else if end {
            let file = open_at(Some(&dir), name, flags | libc::O_NOFOLLOW)?;
            return Ok(OpenedReport { file, dir, real: real.join(&part) });
        } else if meta.is_dir() {
            dir = node;
            real.push(&part);
        } else {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
    }
    Err(io::Error::from_raw_os_error(libc::EISDIR))
}

/// `openat(dir or the root, name, flags | O_CLOEXEC, 0666)`.
fn open_at(dir: Option<&File>, name: &Path, flags: i32) -> io::Result<File> {
    let name = std::ffi::CString::new(name.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: openat reads a NUL-terminated name; `at` is a live descriptor or AT_FDCWD.
    let fd = unsafe { libc::openat(at, name.as_ptr(), flags | libc::O_CLOEXEC, 0o666 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new fd that we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The target of the link `link` (opened itself, `O_PATH | O_NOFOLLOW`).
fn read_link_of(link: &File) -> io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: readlinkat with an empty name reads the link the descriptor is open on into
    // `buf`, at most its length.
    let n = unsafe { libc::readlinkat(link.as_raw_fd(), c"".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// The normal components of `path`, `..` kept (resolved against what the links led to), `.`
/// and the root dropped.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Device and inode of what a reader finds at `path`: links followed, but no per-process magic
/// link (`openat2` with `RESOLVE_NO_MAGICLINKS`; such a link fails with `ELOOP`). Where the
/// kernel has no `openat2` (before 5.6), any link through `/proc` is refused instead.
pub fn reader_finds(path: &Path) -> io::Result<(u64, u64)> {
    match open_no_magic(path) {
        Ok(file) => {
            let meta = file.metadata()?;
            Ok((meta.dev(), meta.ino()))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            let real = std::fs::canonicalize(path)?;
            if real.starts_with("/proc") {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let meta = std::fs::metadata(&real)?;
            Ok((meta.dev(), meta.ino()))
        }
        Err(e) => Err(e),
    }
}

fn open_no_magic(path: &Path) -> io::Result<File> {
    let name = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: open_how is plain data; zeroed is a valid value before the fields are set.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 reads the NUL-terminated name and `how` (its size given), both live.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            name.as_ptr(),
            &raw const how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new fd that we own.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_path_is_named_from_the_working_directory() {
        let cwd = Path::new("/work/dir");
        assert_eq!(reader_path(Path::new("r.jsonl"), None, cwd), Path::new("/work/dir/r.jsonl"));
        assert_eq!(reader_path(Path::new("/a/r.jsonl"), None, cwd), Path::new("/a/r.jsonl"));
        let named = Some(PathBuf::from("/b/r.jsonl"));
        assert_eq!(reader_path(Path::new("/dev/fd/5"), named, cwd), Path::new("/b/r.jsonl"));
    }

    #[test]
    fn a_descriptor_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let file = File::create(&path).unwrap();
        assert_eq!(file_of_fd(file.as_raw_fd()), Some(path.canonicalize().unwrap()));
        let (pipe, _w) = std::io::pipe().unwrap();
        assert_eq!(file_of_fd(pipe.as_raw_fd()), None);
    }

    const CREATE: i32 = libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC;

    #[test]
    fn our_links_are_followed_and_the_file_made_where_they_lead() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        std::os::unix::fs::symlink("real", base.join("link")).unwrap();
        std::os::unix::fs::symlink("r.jsonl", base.join("real/named.jsonl")).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let opened = open_report(&base.join("link/../link/named.jsonl"), me, CREATE).unwrap();
        assert_eq!(opened.real, base.join("real/r.jsonl"));
        assert!(base.join("real/r.jsonl").is_file());
        let missing = open_report(&base.join("missing/r.jsonl"), me, CREATE).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_link_of_another_user_on_any_component_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        let link = base.join("link");
        std::os::unix::fs::symlink("real", &link).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        // As root, the link is given to nobody; otherwise the check asks for another uid.
        let ours = if me == 0 {
            std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
            0
        } else {
            me + 1
        };
        let err = open_report(&link.join("r.jsonl"), ours, CREATE).expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert!(!base.join("real/r.jsonl").exists(), "nothing made through the link");
    }

    #[test]
    fn a_loop_of_links_ends() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::os::unix::fs::symlink("b", base.join("a")).unwrap();
        std::os::unix::fs::symlink("a", base.join("b")).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let err = open_report(&base.join("a/r.jsonl"), me, CREATE).expect_err("refused");
        assert!(err.to_string().contains("links"), "{err}");
    }

    #[test]
    fn a_magic_link_is_not_followed_for_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let file = File::create(&path).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(format!("/proc/self/fd/{}", file.as_raw_fd()), &link).unwrap();
        let err = reader_finds(&link).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
        let meta = file.metadata().unwrap();
        assert_eq!(reader_finds(&path).unwrap(), (meta.dev(), meta.ino()));
    }
}
