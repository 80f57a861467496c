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
#[cfg(test)]
use std::os::fd::AsRawFd as _;
use std::os::fd::FromRawFd as _;
use std::os::unix::ffi::OsStrExt as _;
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

/// Refuses `path` (absolute) when a symbolic link that resolving it follows is owned by neither
/// `ours` nor root: whoever owns it can point it anywhere, and we would create and truncate the
/// report there (as root under `sudo`). Links are followed as the kernel does, one component
/// at a time; the part that does not exist yet is created by the open, through no link.
pub fn refuse_foreign_links(path: &Path, ours: u32) -> io::Result<()> {
    let mut todo: VecDeque<OsString> = components(path);
    let mut at = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            at.pop();
            continue;
        }
        let next = at.join(&part);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if !meta.file_type().is_symlink() {
            at = next;
            continue;
        }
        if meta.uid() != ours && meta.uid() != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is a symbolic link owned by uid {}, neither ours nor root's: refused, as whoever owns it can point it anywhere",
                    next.display(),
                    meta.uid()
                ),
            ));
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let target = std::fs::read_link(&next)?;
        if target.is_absolute() {
            at = PathBuf::from("/");
        }
        for part in components(&target).into_iter().rev() {
            todo.push_front(part);
        }
    }
    Ok(())
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

    #[test]
    fn our_links_are_followed_and_a_missing_rest_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        refuse_foreign_links(&dir.path().join("link/../link/r.jsonl"), me).unwrap();
        refuse_foreign_links(&dir.path().join("missing/r.jsonl"), me).unwrap();
        // A link owned by someone else (neither us nor root), on any component, is refused:
        // as root, the link is given to nobody; otherwise the check asks for another uid.
        let ours = if me == 0 {
            let link = dir.path().join("link");
            std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
            0
        } else {
            me + 1
        };
        let err = refuse_foreign_links(&dir.path().join("link/r.jsonl"), ours).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert!(err.to_string().contains("link"), "{err}");
    }

    #[test]
    fn a_loop_of_links_ends() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("b", dir.path().join("a")).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("b")).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let err = refuse_foreign_links(&dir.path().join("a/r.jsonl"), me).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
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
