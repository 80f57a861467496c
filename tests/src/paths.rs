//! Locating the binary under test and building the C test client.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else `cargo metadata`.
pub fn target_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
            let dir = PathBuf::from(dir);
            return if dir.is_absolute() { dir } else { workspace_root().join(dir) };
        }
        let out = Command::new(cargo())
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(workspace_root())
            .output()
            .expect("run cargo metadata");
        assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
        let meta: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
        PathBuf::from(meta["target_directory"].as_str().expect("cargo metadata has target_directory"))
    })
}

/// The sockstrace binary: `SOCKSTRACE_BIN` when set (by `cargo xtask test`),
/// otherwise built once per test process with `cargo build -p sockstrace`.
pub fn sockstrace_bin() -> &'static Path {
    // The result (not a panic) is kept, so that a failed build is reported
    // once and not retried by every test.
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let bin = BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SOCKSTRACE_BIN") {
            let bin = PathBuf::from(bin);
            if !bin.is_file() {
                return Err(format!("SOCKSTRACE_BIN={} is not a file", bin.display()));
            }
            return Ok(bin);
        }
        let out = Command::new(cargo())
            .args(["build", "-p", "sockstrace"])
            .current_dir(workspace_root())
            .output()
            .map_err(|e| format!("cannot run cargo build -p sockstrace: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cargo build -p sockstrace failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let bin = target_dir().join("debug").join("sockstrace");
        if !bin.is_file() {
            return Err(format!("{} missing after the build", bin.display()));
        }
        Ok(bin)
    });
    match bin {
        Ok(bin) => bin,
        Err(e) => panic!("{e}"),
    }
}

/// The directory the test helpers are compiled into.
pub fn helpers_dir() -> PathBuf {
    let dir = target_dir().join("sockstrace-tests");
    std::fs::create_dir_all(&dir).expect("create target/sockstrace-tests");
    dir
}

fn client_source(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients").join(file)
}

/// Compiles netprobe.c with gcc into `out` (via a temporary name and an atomic
/// rename, so that concurrent test processes never see a half-written file).
fn compile(out: &Path, extra: &[&str]) -> Result<(), String> {
    compile_client("netprobe.c", out, extra, &[])
}

/// Compiles `tests/clients/FILE` with gcc into `out`; `libs` go after the
/// source (e.g. "-luring").
pub fn compile_client(file: &str, out: &Path, extra: &[&str], libs: &[&str]) -> Result<(), String> {
    // Unique per call, not only per process: two tests of one process that
    // build the same client at once must not rename each other's file away.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = out.with_extension(format!("tmp{}-{call}", std::process::id()));
    let output = Command::new("gcc")
        .args(["-O1", "-g", "-pthread", "-Wall", "-Wextra", "-Werror"])
        .args(extra)
        .arg("-o")
        .arg(&tmp)
        .arg(client_source(file))
        .args(libs)
        .output()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("gcc {:?} failed: {}", extra, String::from_utf8_lossy(&output.stderr)));
    }
    std::fs::rename(&tmp, out).map_err(|e| format!("rename {}: {e}", tmp.display()))?;
    Ok(())
}

/// The dynamically linked netprobe client (built once per test process).
pub fn netprobe() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = helpers_dir().join("netprobe");
        if let Err(e) = compile(&out, &[]) {
            panic!("building the netprobe test client: {e}");
        }
        out
    })
}

/// The statically linked netprobe client, or `None` (with a visible message)
/// when static glibc linking does not work here.
pub fn netprobe_static() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        // The file is named plain "netprobe" (in its own directory) so that its
        // comm and exe name match the dynamic client's.
        let dir = helpers_dir().join("static");
        std::fs::create_dir_all(&dir).expect("create target/sockstrace-tests/static");
        let out = dir.join("netprobe");
        match compile(&out, &["-static"]) {
            Ok(()) => Some(out),
            Err(e) => {
                crate::util::skip_note("static netprobe", &format!("static linking failed: {e}"));
                None
            }
        }
    })
    .as_deref()
}

/// Builds `FILE` once per test process into `target/sockstrace-tests/SUBDIR/NAME`,
/// or says why it cannot be built.
fn build_once(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    file: &str,
    subdir: &str,
    name: &str,
    extra: &[&str],
    libs: &[&str],
) -> Result<&'static Path, String> {
    cell.get_or_init(|| {
        let dir = helpers_dir().join(subdir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let out = dir.join(name);
        compile_client(file, &out, extra, libs)?;
        Ok(out)
    })
    .as_deref()
    .map_err(Clone::clone)
}

/// netprobe for the i386 ABI (`gcc -m32`), dynamically linked; named
/// "netprobe" so its comm matches. `Err` (the reason) when -m32 cannot link.
pub fn netprobe32() -> Result<&'static Path, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    build_once(&BIN, "netprobe.c", "m32", "netprobe", &["-m32"], &[])
}

/// netprobe for the i386 ABI, statically linked (`gcc -m32 -static`).
pub fn netprobe32_static() -> Result<&'static Path, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    build_once(&BIN, "netprobe.c", "m32-static", "netprobe", &["-m32", "-static"], &[])
}

/// The io_uring client (liburing), or why it cannot be built.
pub fn uringprobe() -> Result<&'static Path, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    build_once(&BIN, "uringprobe.c", "uring", "uringprobe", &[], &["-luring"])
}

/// The io_uring client, once a run without sockstrace showed that io_uring
/// works here; `Err` says why a test must skip.
pub fn uringprobe_working() -> Result<&'static Path, String> {
    let client = uringprobe().map_err(|e| format!("uringprobe cannot be built (liburing-dev?): {e}"))?;
    let base = crate::run::direct_client(client, &["setup"]);
    if base.code != 0 {
        return Err(format!("io_uring does not work here without sockstrace: {}", base.stdout.trim()));
    }
    Ok(client)
}

/// Any C client in `tests/clients/NAME.c`, compiled once per test process
/// into `target/sockstrace-tests/clients/NAME` (`m32`: for the i386 ABI, into
/// `clients-m32/NAME`; `static_link`: with `-static`). The attack programs of
/// the red-team tests use this. `Err` says why it cannot be built.
pub fn client_build(name: &str, m32: bool, static_link: bool) -> Result<PathBuf, String> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Built = HashMap<(String, bool, bool), Result<PathBuf, String>>;
    static BUILT: OnceLock<Mutex<Built>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    let key = (name.to_string(), m32, static_link);
    if let Some(done) = built.get(&key) {
        return done.clone();
    }
    let subdir = match (m32, static_link) {
        (false, false) => "clients",
        (false, true) => "clients-static",
        (true, false) => "clients-m32",
        (true, true) => "clients-m32-static",
    };
    let mut extra = Vec::new();
    if m32 {
        extra.push("-m32");
    }
    if static_link {
        extra.push("-static");
    }
    let result = (|| {
        let dir = helpers_dir().join(subdir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let out = dir.join(name);
        compile_client(&format!("{name}.c"), &out, &extra, &[])?;
        Ok(out)
    })();
    built.insert(key, result.clone());
    result
}

/// `tests/clients/NAME.c` built with extra gcc flags (after the usual ones, so
/// `-O2` wins over `-O1`) into `target/sockstrace-tests/clients-TAG/NAME`, on
/// once per test process. `Err` says why it cannot be built.
pub fn client_with_flags(name: &str, tag: &str, flags: &[&str]) -> Result<PathBuf, String> {
    client_built_once(name, &format!("clients-{tag}"), flags, &[])
}

/// `tests/clients/NAME.c` linked with liburing into
/// `target/sockstrace-tests/clients-uring/NAME` (`flags` given: into
/// `clients-uring-TAG/NAME`), once per test process. `Err` says why it cannot
/// be built (liburing-dev missing, most likely).
pub fn client_uring(name: &str, tag: Option<&str>, flags: &[&str]) -> Result<PathBuf, String> {
    let subdir = match tag {
        Some(tag) => format!("clients-uring-{tag}"),
        None => "clients-uring".to_string(),
    };
    client_built_once(name, &subdir, flags, &["-luring"])
}

/// Builds `tests/clients/NAME.c` into `target/sockstrace-tests/SUBDIR/NAME`
/// once per test process and output directory, whichever test asks first.
fn client_built_once(name: &str, subdir: &str, flags: &[&str], libs: &[&str]) -> Result<PathBuf, String> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Built = HashMap<(String, String), Result<PathBuf, String>>;
    static BUILT: OnceLock<Mutex<Built>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
    let result = built.entry((name.to_string(), subdir.to_string())).or_insert_with(|| {
        let dir = helpers_dir().join(subdir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let out = dir.join(name);
        compile_client(&format!("{name}.c"), &out, flags, libs)?;
        Ok(out)
    });
    result.clone()
}

/// The native, dynamically linked build of `tests/clients/NAME.c`; panics
/// when gcc fails (the clients are part of the test suite).
pub fn client(name: &str) -> PathBuf {
    client_build(name, false, false).unwrap_or_else(|e| panic!("building test client {name}: {e}"))
}
