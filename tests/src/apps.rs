//! Real applications the tests run under sockstrace: the environment that keeps them from
//! choosing a proxy of their own, the static Go client (built once per test process), and
//! headless Chromium's flags.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::paths::{helpers_dir, workspace_root};
use crate::Trace;

/// Proxy settings programs honour on their own; a test's program must go where its arguments
/// say.
pub const PROXY_ENV: [&str; 7] =
    ["http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"];

/// `trace` without [`PROXY_ENV`].
pub fn no_proxy_env(mut trace: Trace) -> Trace {
    for k in PROXY_ENV {
        trace = trace.env_remove(k);
    }
    trace
}

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless Chromium that starts no connection of its own (updates, sync, QUIC) and needs no
/// sandbox of its own (the tests run it as root or in namespaces).
pub const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// `tests/clients/goclient/main.go` built once per test process with
/// `CGO_ENABLED=0 go build` into `target/sockstrace-tests/go/goclient`
/// (GOCACHE and GOPATH there too; no network: `GOPROXY=off`).
pub fn goclient() -> Result<&'static Path, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = helpers_dir().join("go");
            std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            let src = workspace_root().join("tests/clients/goclient/main.go");
            let tmp = dir.join(format!("goclient.{}.tmp", std::process::id()));
            let out = Command::new("go")
                .args(["build", "-trimpath", "-o"])
                .arg(&tmp)
                .arg(&src)
                .env("CGO_ENABLED", "0")
                .env("GOCACHE", dir.join("cache"))
                .env("GOPATH", dir.join("gopath"))
                .env("GO111MODULE", "off")
                .env("GOPROXY", "off")
                .env("GOFLAGS", "")
                .env("GOTOOLCHAIN", "local")
                .env("HOME", &dir)
                .output()
                .map_err(|e| format!("cannot run go (install Debian's golang-go): {e}"))?;
            if !out.status.success() {
                return Err(format!("go build failed:\n{}", String::from_utf8_lossy(&out.stderr)));
            }
            let bin = dir.join("goclient");
            std::fs::rename(&tmp, &bin).map_err(|e| format!("rename: {e}"))?;
            Ok(bin)
        })
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

/// Whether the ELF file at `path` has no program interpreter (PT_INTERP):
/// statically linked.
pub fn elf_is_static(path: &Path) -> bool {
    let b = std::fs::read(path).expect("read ELF");
    assert_eq!(&b[..5], b"\x7fELF\x02", "{} is not a 64-bit ELF", path.display());
    let u = |off: usize, n: usize| b[off..off + n].iter().rev().fold(0usize, |a, &x| (a << 8) | x as usize);
    let (phoff, phentsize, phnum) = (u(0x20, 8), u(0x36, 2), u(0x38, 2));
    (0..phnum).all(|i| u(phoff + i * phentsize, 4) != 3)
}
