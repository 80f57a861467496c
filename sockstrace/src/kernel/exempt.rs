//! Exemptions (`audit --exempt-cgroup`, `--exempt-user`, `--exempt-exe`): processes whose
//! traffic around the proxy is neither reported nor refused (the proxy itself), resolved into
//! what the kernel compares: cgroup ids (and the levels they sit at), uids, and executable
//! paths as `execve` is given them.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use sockstrace_common::{exempt, EXEMPT_LEVELS, FILENAME_LEN, MAX_EXEMPTIONS};

/// The exemptions as the user wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExemptArgs {
    /// Cgroup paths, as `--cgroup` takes them.
    pub cgroups: Vec<PathBuf>,
    /// User names or numeric uids.
    pub users: Vec<String>,
    /// Absolute executable paths.
    pub exes: Vec<PathBuf>,
}

/// An exempt cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExemptCgroup {
    pub path: PathBuf,
    pub id: u64,
    /// Its depth below the cgroup2 mount (the mount itself is level 0).
    pub level: u32,
}

/// An exempt executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExemptExe {
    /// The path as given.
    pub path: PathBuf,
    /// The file names the kernel compares with the one `execve` gets: the path as given, and
    /// its canonical form if that differs (a symbolic link, `/bin` on a merged-/usr system).
    pub names: Vec<Vec<u8>>,
    /// The file's device and inode, to find processes that ran it before the audit began.
    pub dev: u64,
    pub ino: u64,
}

/// Exemptions resolved against this machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exemptions {
    pub cgroups: Vec<ExemptCgroup>,
    pub uids: Vec<u32>,
    pub exes: Vec<ExemptExe>,
}

impl Exemptions {
    /// Resolves `args`: cgroups under the cgroup2 mount `root`, users by name or number,
    /// executables (absolute, existing regular files).
    pub fn resolve(args: &ExemptArgs, root: &Path) -> Result<Self> {
        let mut resolved = Self::default();
        for arg in &args.cgroups {
            let path = super::resolve_cgroup(root, Some(arg))
                .with_context(|| format!("--exempt-cgroup {}", arg.display()))?;
            let id = std::fs::metadata(&path).with_context(|| format!("stat {}", path.display()))?.ino();
            let level = cgroup_level(root, &path)?;
            resolved.cgroups.push(ExemptCgroup { path, id, level });
        }
        for user in &args.users {
            resolved.uids.push(parse_user(user)?);
        }
        for exe in &args.exes {
            resolved.exes.push(resolve_exe(exe)?);
        }
        let names: usize = resolved.exes.iter().map(|e| e.names.len()).sum();
        let max = MAX_EXEMPTIONS as usize;
        if resolved.cgroups.len() > max || resolved.uids.len() > max || names > max {
            bail!("at most {max} exempt cgroups, users and executable paths each");
        }
        Ok(resolved)
    }

    pub fn is_empty(&self) -> bool {
        self.cgroups.is_empty() && self.uids.is_empty() && self.exes.is_empty()
    }

    /// `Config::exempt` bits.
    pub fn bits(&self) -> u8 {
        let mut bits = 0;
        if !self.cgroups.is_empty() {
            bits |= exempt::CGROUP;
        }
        if !self.uids.is_empty() {
            bits |= exempt::UID;
        }
        if !self.exes.is_empty() {
            bits |= exempt::EXE;
        }
        bits
    }

    /// `Config::exempt_levels`: the levels exempt cgroups sit at.
    pub fn levels(&self) -> u32 {
        self.cgroups.iter().filter(|c| c.level < EXEMPT_LEVELS).fold(0, |bits, c| bits | 1 << c.level)
    }

    /// One line for humans: `cgroup /a, user 110, exe /usr/bin/tor`.
    pub fn describe(&self) -> String {
        let cgroups = self.cgroups.iter().map(|c| format!("cgroup {}", c.path.display()));
        let uids = self.uids.iter().map(|u| format!("uid {u}"));
        let exes = self.exes.iter().map(|e| format!("exe {}", e.path.display()));
        cgroups.chain(uids).chain(exes).collect::<Vec<_>>().join(", ")
    }
}

/// How deep `path` is below `root` (`root` itself: 0).
fn cgroup_level(root: &Path, path: &Path) -> Result<u32> {
    let below = path.strip_prefix(root).with_context(|| {
        format!("cgroup {} is not below the cgroup2 mount {}", path.display(), root.display())
    })?;
    let level = below.components().count() as u32;
    if level >= EXEMPT_LEVELS {
        bail!("cgroup {} is deeper than {EXEMPT_LEVELS} levels", path.display());
    }
    Ok(level)
}

/// A user name, or a number.
pub fn parse_user(user: &str) -> Result<u32> {
    if let Ok(uid) = user.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(found)) => Ok(found.uid.as_raw()),
        Ok(None) => bail!("--exempt-user {user}: no such user"),
        Err(err) => bail!("--exempt-user {user}: {err}"),
    }
}

/// An absolute path to an existing regular file.
fn resolve_exe(path: &Path) -> Result<ExemptExe> {
    if !path.is_absolute() {
        bail!("--exempt-exe {}: the path must be absolute", path.display());
    }
    let meta = std::fs::metadata(path).with_context(|| format!("--exempt-exe {}", path.display()))?;
    if !meta.is_file() {
        bail!("--exempt-exe {}: not a regular file", path.display());
    }
    let mut names = vec![path.as_os_str().as_encoded_bytes().to_vec()];
    if let Ok(canonical) = std::fs::canonicalize(path) {
        let canonical = canonical.as_os_str().as_encoded_bytes().to_vec();
        if !names.contains(&canonical) {
            names.push(canonical);
        }
    }
    // The kernel keeps FILENAME_LEN - 1 bytes of a file name: a longer one, cut, must never
    // equal an exempt path, so exempt paths are shorter than that.
    if let Some(long) = names.iter().find(|n| n.len() >= FILENAME_LEN - 1) {
        bail!("--exempt-exe {}: longer than {} bytes", String::from_utf8_lossy(long), FILENAME_LEN - 2);
    }
    Ok(ExemptExe { path: path.to_path_buf(), names, dev: meta.dev(), ino: meta.ino() })
}

/// A file name as the kernel's `EXEMPT_EXES` key: NUL-padded to [`FILENAME_LEN`] bytes (the
/// caller checked the length).
pub fn filename_key(name: &[u8]) -> [u8; FILENAME_LEN] {
    let mut key = [0; FILENAME_LEN];
    let len = name.len().min(FILENAME_LEN - 1);
    key[..len].copy_from_slice(&name[..len]);
    key
}

/// The names of the [`exempt`] bits set in `why`.
pub fn why_names(why: u32) -> Vec<&'static str> {
    [(exempt::CGROUP, "cgroup"), (exempt::UID, "user"), (exempt::EXE, "exe")]
        .into_iter()
        .filter(|&(bit, _)| why & u32::from(bit) != 0)
        .map(|(_, name)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_levels() {
        let mut ex = Exemptions::default();
        assert_eq!((ex.bits(), ex.levels()), (0, 0));
        ex.cgroups.push(ExemptCgroup { path: "/a/b".into(), id: 5, level: 2 });
        ex.cgroups.push(ExemptCgroup { path: "/c".into(), id: 6, level: 1 });
        ex.uids.push(110);
        assert_eq!(ex.bits(), exempt::CGROUP | exempt::UID);
        assert_eq!(ex.levels(), 0b110);
        assert_eq!(ex.describe(), "cgroup /a/b, cgroup /c, uid 110");
    }

    #[test]
    fn users_by_name_or_number() {
        assert_eq!(parse_user("110").unwrap(), 110);
        assert_eq!(parse_user("root").unwrap(), 0);
        assert!(parse_user("no-such-user-here").is_err());
    }

    #[test]
    fn exes_are_absolute_files_with_their_canonical_name() {
        assert!(resolve_exe(Path::new("sh")).is_err());
        assert!(resolve_exe(Path::new("/")).is_err());
        assert!(resolve_exe(Path::new("/no/such/file")).is_err());
        // A cut file name (127 bytes kept) must not be able to equal an exempt path.
        let long =
            std::env::temp_dir().join("x".repeat(FILENAME_LEN - 2 - std::env::temp_dir().as_os_str().len()));
        std::fs::write(&long, b"").unwrap();
        assert_eq!(long.as_os_str().len(), FILENAME_LEN - 1);
        assert!(resolve_exe(&long).is_err());
        std::fs::remove_file(&long).unwrap();
        let sh = resolve_exe(Path::new("/bin/sh")).unwrap();
        assert_eq!(sh.names[0], b"/bin/sh");
        let canonical = std::fs::canonicalize("/bin/sh").unwrap();
        if canonical != Path::new("/bin/sh") {
            assert_eq!(sh.names[1], canonical.as_os_str().as_encoded_bytes());
        }
        let key = filename_key(b"/usr/bin/tor");
        assert_eq!(&key[..12], b"/usr/bin/tor");
        assert!(key[12..].iter().all(|&b| b == 0));
        assert_eq!(why_names(u32::from(exempt::UID | exempt::EXE)), vec!["user", "exe"]);
    }

    #[test]
    fn levels_count_below_the_mount() {
        assert_eq!(cgroup_level(Path::new("/sys/fs/cgroup"), Path::new("/sys/fs/cgroup")).unwrap(), 0);
        assert_eq!(cgroup_level(Path::new("/sys/fs/cgroup"), Path::new("/sys/fs/cgroup/a/b")).unwrap(), 2);
        assert!(cgroup_level(Path::new("/sys/fs/cgroup"), Path::new("/tmp")).is_err());
    }
}
