//! The relays' keys, made once per machine and copied into each network:
//! an authority's RSA-3072 v3 identity takes tor-gencert seconds of CPU.
//!
//! The cache (`target/sockstrace-tests/tornet-keys/`) holds, per relay,
//! `keys/` and `fingerprint` as `tor --list-fingerprint` leaves them, plus
//! the authorities' v3 keys (made without an address, so that they fit any
//! ports). It is rebuilt when older than [`MAX_AGE`] (the certificates last
//! 12 months).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// Rebuild the cache after this long.
const MAX_AGE: Duration = Duration::from_secs(180 * 24 * 3600);
/// Marks a complete cache.
const DONE: &str = "complete";

/// The identities of a relay taken from the cache.
pub struct Identity {
    /// The relay identity fingerprint.
    pub fingerprint: String,
    /// The v3 authority identity (authorities only).
    pub v3ident: Option<String>,
}

/// The cache directory for `relays` (nick, is an authority), made if needed.
pub fn cache(tor: &Path, gencert: &Path, relays: &[(&str, bool)]) -> Result<PathBuf, String> {
    let parent = crate::paths::helpers_dir();
    let dir = parent.join("tornet-keys");
    let fresh = std::fs::metadata(dir.join(DONE))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < MAX_AGE);
    if fresh && relays.iter().all(|(nick, _)| dir.join(nick).join("fingerprint").is_file()) {
        return Ok(dir);
    }
    let work =
        tempfile::Builder::new().prefix("tornet-keys-new").tempdir_in(&parent).map_err(|e| e.to_string())?;
    let empty = work.path().join("empty");
    std::fs::write(&empty, "").map_err(|e| e.to_string())?;
    std::thread::scope(|scope| {
        let jobs: Vec<_> = relays
            .iter()
            .map(|&(nick, authority)| {
                let (work, empty) = (work.path(), &empty);
                scope.spawn(move || -> Result<(), String> {
                    let node = private_dir(&work.join(nick))?;
                    private_dir(&node.join("keys"))?;
                    if authority {
                        gencert_identity(gencert, &node)?;
                    }
                    relay_fingerprint(tor, empty, &node, nick).map(|_| ())
                })
            })
            .collect();
        jobs.into_iter()
            .map(|j| j.join().unwrap_or_else(|_| Err(String::from("key generation panicked"))))
            .collect::<Result<Vec<()>, String>>()
    })?;
    std::fs::write(work.path().join(DONE), "").map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    let made = work.keep();
    if let Err(e) = std::fs::rename(&made, &dir) {
        // Another test process made it at the same time: use theirs.
        let _ = std::fs::remove_dir_all(&made);
        if !dir.join(DONE).is_file() {
            return Err(format!("install {}: {e}", dir.display()));
        }
    }
    Ok(dir)
}

/// Copies `nick`'s keys from the cache into the data directory `node`.
pub fn install(cache: &Path, nick: &str, node: &Path) -> Result<Identity, String> {
    let from = cache.join(nick);
    let keys = private_dir(&node.join("keys"))?;
    for entry in std::fs::read_dir(from.join("keys")).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        std::fs::copy(entry.path(), keys.join(entry.file_name())).map_err(|e| e.to_string())?;
    }
    let fingerprint = std::fs::read_to_string(from.join("fingerprint")).map_err(|e| e.to_string())?;
    std::fs::write(node.join("fingerprint"), &fingerprint).map_err(|e| e.to_string())?;
    let fingerprint = fingerprint
        .split_whitespace()
        .nth(1)
        .map(str::to_string)
        .ok_or("a bad fingerprint file in the cache")?;
    let v3ident = match std::fs::read_to_string(keys.join("authority_certificate")) {
        Ok(cert) => Some(
            cert.lines()
                .find_map(|l| l.strip_prefix("fingerprint "))
                .map(|f| f.trim().to_string())
                .ok_or("no fingerprint in an authority certificate")?,
        ),
        Err(_) => None,
    };
    Ok(Identity { fingerprint, v3ident })
}

pub fn private_dir(dir: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new().mode(0o700).create(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(dir.to_path_buf())
}

/// Makes an authority's v3 keys in `node/keys` with tor-gencert.
fn gencert_identity(gencert: &Path, node: &Path) -> Result<(), String> {
    let keys = node.join("keys");
    let mut child = Command::new(gencert)
        .args(["--create-identity-key", "--passphrase-fd", "0", "-m", "12"])
        .arg("-i")
        .arg(keys.join("authority_identity_key"))
        .arg("-s")
        .arg(keys.join("authority_signing_key"))
        .arg("-c")
        .arg(keys.join("authority_certificate"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("tor-gencert: {e}"))?;
    drop(child.stdin.take());
    let out = child.wait_with_output().map_err(|e| format!("tor-gencert: {e}"))?;
    if !keys.join("authority_certificate").is_file() {
        return Err(format!(
            "tor-gencert ({}) wrote no certificate\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Makes the relay identity keys in `node` (`tor --list-fingerprint`).
fn relay_fingerprint(tor: &Path, empty: &Path, node: &Path, nick: &str) -> Result<(), String> {
    let out = Command::new(tor)
        .arg("--defaults-torrc")
        .arg(empty)
        .arg("-f")
        .arg(empty)
        .args(["--list-fingerprint", "--Nickname", nick, "--ORPort", "1", "--GeoIPFile"])
        .arg(empty)
        .arg("--GeoIPv6File")
        .arg(empty)
        .arg("--DirAuthority")
        .arg(format!("x 127.0.0.1:1 {}", "f".repeat(40)))
        .arg("--DataDirectory")
        .arg(node)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("tor --list-fingerprint: {e}"))?;
    if !node.join("fingerprint").is_file() {
        return Err(format!(
            "tor --list-fingerprint ({}) wrote no fingerprint\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(())
}
