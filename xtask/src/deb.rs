//! `cargo xtask deb [--check [--keep]]`: a Debian package of sockstrace, built with Debian's own
//! `dpkg-deb` from a staged tree (no packaging tool beyond dpkg):
//!
//! - `/usr/bin/sockstrace` (the release build, stripped);
//! - `/usr/share/man/man1/sockstrace.1.gz` and bash/zsh/fish completions (from the binary's own
//!   clap definitions, as `cargo xtask docs` writes them);
//! - `/lib/systemd/system/sockstrace-audit.service` (contrib's unit, pointing at `/usr/bin`;
//!   installed, not enabled);
//! - `/etc/sockstrace/sockstrace.example.toml` (a conffile; sockstrace reads
//!   `/etc/sockstrace/sockstrace.toml`, which the package does not install);
//! - README, threat model, architecture, audit and isolation notes under
//!   `/usr/share/doc/sockstrace/`.
//!
//! The package lands in `target/deb/`. `--check` (root) installs it with apt (which resolves its
//! dependencies), checks what it installed, runs `sockstrace doctor` and the demo against
//! `/usr/bin/sockstrace`, then removes it again unless `--keep`.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::{bench::fixture::build_sockstrace, cmd, setup, test};

const PACKAGE: &str = "sockstrace";
const INSTALLED_BIN: &str = "/usr/bin/sockstrace";

/// The shared libraries the binary may link, and the Debian package giving each (with the
/// version the symbols we use need). A library outside this list fails the build: the
/// package's dependencies would be wrong.
const LIBRARIES: &[(&str, &str)] = &[
    ("libseccomp.so.2", "libseccomp2 (>= 2.5.0)"),
    ("libgcc_s.so.1", "libgcc-s1"),
    ("libm.so.6", "libc6 (>= 2.34)"),
    ("libc.so.6", "libc6 (>= 2.34)"),
];

/// Files installed from the source tree: (source relative to the workspace, destination, mode).
const FILES: &[(&str, &str, u32)] = &[
    ("docs/sockstrace.example.toml", "etc/sockstrace/sockstrace.example.toml", 0o644),
    ("README.md", "usr/share/doc/sockstrace/README.md", 0o644),
    ("docs/THREAT-MODEL.md", "usr/share/doc/sockstrace/THREAT-MODEL.md", 0o644),
    ("docs/ARCHITECTURE.md", "usr/share/doc/sockstrace/ARCHITECTURE.md", 0o644),
    ("docs/AUDIT.md", "usr/share/doc/sockstrace/AUDIT.md", 0o644),
    ("docs/ISOLATION.md", "usr/share/doc/sockstrace/ISOLATION.md", 0o644),
];

/// Where each shell looks for completions on Debian (file names from `docs::SHELLS`).
const COMPLETION_DIRS: [(&str, &str); 3] = [
    ("bash", "usr/share/bash-completion/completions"),
    ("zsh", "usr/share/zsh/vendor-completions"),
    ("fish", "usr/share/fish/vendor_completions.d"),
];

const UNIT: &str = "lib/systemd/system/sockstrace-audit.service";

pub fn run(args: &[String]) -> Result<()> {
    let (check, keep) = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => (false, false),
        ["--check"] => (true, false),
        ["--check", "--keep"] | ["--keep", "--check"] => (true, true),
        _ => bail!("usage: cargo xtask deb [--check [--keep]]"),
    };
    setup::run()?;
    let deb = build()?;
    println!("deb: built {}", deb.display());
    if check {
        check_installed(&deb, keep)?;
    }
    Ok(())
}

/// Builds the package; returns its path.
fn build() -> Result<PathBuf> {
    let bin = build_sockstrace()?;
    let depends = depends(&bin)?;
    let version = version(&bin)?;
    let arch = cmd::stdout(Command::new("dpkg").arg("--print-architecture"))?.trim().to_string();
    let out = test::target_dir()?.join("deb");
    let root = out.join(format!("{PACKAGE}_{version}_{arch}"));
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }

    let usr_bin = root.join("usr/bin");
    fs::create_dir_all(&usr_bin)?;
    let staged_bin = usr_bin.join("sockstrace");
    fs::copy(&bin, &staged_bin).with_context(|| format!("copying {}", bin.display()))?;
    cmd::run(Command::new("strip").arg("--strip-unneeded").arg(&staged_bin))?;
    set_mode(&staged_bin, 0o755)?;

    stage_docs(&bin, &root, &out)?;
    let workspace = cmd::workspace_root();
    for (source, dest, mode) in FILES {
        install(&workspace.join(source), &root.join(dest), *mode)?;
    }
    let unit = fs::read_to_string(workspace.join("contrib/sockstrace-audit.service"))
        .context("reading contrib/sockstrace-audit.service")?;
    write(&root.join(UNIT), &unit.replace("/usr/local/bin/sockstrace", INSTALLED_BIN), 0o644)?;
    write(&root.join("usr/share/doc/sockstrace/copyright"), &copyright(), 0o644)?;

    let debian = root.join("DEBIAN");
    let size_kib = tree_size(&root)?.div_ceil(1024);
    write(&debian.join("control"), &control(&version, &arch, &depends, size_kib), 0o644)?;
    write(&debian.join("conffiles"), "/etc/sockstrace/sockstrace.example.toml\n", 0o644)?;
    write(&debian.join("md5sums"), &md5sums(&root)?, 0o644)?;

    let deb = out.join(format!("{PACKAGE}_{version}_{arch}.deb"));
    cmd::run(Command::new("dpkg-deb").args(["--root-owner-group", "--build"]).arg(&root).arg(&deb))?;
    Ok(deb)
}

/// The man page (gzipped, as Debian installs them) and the completions.
fn stage_docs(bin: &Path, root: &Path, out: &Path) -> Result<()> {
    let generated = out.join("generated");
    let man = crate::docs::generate(bin, &generated)?;
    let man_dir = root.join("usr/share/man/man1");
    fs::create_dir_all(&man_dir)?;
    let gz = cmd::stdout_bytes(Command::new("gzip").args(["-9", "-n", "-c"]).arg(&man))?;
    fs::write(man_dir.join("sockstrace.1.gz"), gz)?;
    for ((shell, file), (dir_shell, dir)) in crate::docs::SHELLS.iter().zip(COMPLETION_DIRS) {
        debug_assert_eq!(*shell, dir_shell);
        install(&generated.join("completions").join(file), &root.join(dir).join(file), 0o644)?;
    }
    Ok(())
}

/// `Depends:` from the libraries `ldd` says the binary links; fails on one not in [`LIBRARIES`].
fn depends(bin: &Path) -> Result<String> {
    let ldd = cmd::stdout(Command::new("ldd").arg(bin))?;
    let mut depends: Vec<&str> = Vec::new();
    for line in ldd.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if name.starts_with("linux-vdso") || name.contains("ld-linux") {
            continue;
        }
        let Some((_, package)) = LIBRARIES.iter().find(|(lib, _)| *lib == name) else {
            bail!(
                "{} links {name}, which the package's dependencies do not name (xtask/src/deb.rs)",
                bin.display()
            );
        };
        if !depends.contains(package) {
            depends.push(package);
        }
    }
    Ok(depends.join(", "))
}

/// The version the binary reports (`sockstrace 0.1.0`).
fn version(bin: &Path) -> Result<String> {
    let out = cmd::stdout(Command::new(bin).arg("--version"))?;
    let version = out.split_whitespace().nth(1).context("`sockstrace --version` printed no version")?;
    Ok(version.to_string())
}

fn control(version: &str, arch: &str, depends: &str, size_kib: u64) -> String {
    format!(
        "Package: {PACKAGE}\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: sockstrace developers <sockstrace@localhost>\n\
         Installed-Size: {size_kib}\n\
         Depends: {depends}\n\
         Recommends: tor | microsocks\n\
         Suggests: gdb\n\
         Section: net\n\
         Priority: optional\n\
         Description: proves that a program sends nothing around its SOCKS proxy\n \
         sockstrace runs a program (a browser, a wallet, curl) under a seccomp\n \
         supervisor and, as root, eBPF programs on its cgroup, and reports every\n \
         proxy leak: direct TCP, UDP, DNS, raw sockets, inbound listeners. Each is\n \
         blocked, logged, or sent through the proxy after all. `sockstrace audit`\n \
         watches a cgroup or the whole machine (a systemd unit is included).\n"
    )
}

fn copyright() -> String {
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
     Upstream-Name: sockstrace\n\n\
     Files: *\n\
     Copyright: the sockstrace developers\n\
     License: MIT or Apache-2.0\n \
     On Debian systems the Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.\n"
        .to_string()
}

/// `md5sum` lines of every file under `usr/` and `lib/` (conffiles are not listed, as dpkg
/// wants), paths relative to the root.
fn md5sums(root: &Path) -> Result<String> {
    let mut files = Vec::new();
    for top in ["usr", "lib"] {
        collect_files(&root.join(top), &mut files)?;
    }
    let relative: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(root).map(|p| p.display().to_string()))
        .collect::<Result<_, _>>()?;
    let mut md5 = Command::new("md5sum");
    md5.current_dir(root).args(&relative);
    cmd::stdout(&mut md5)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> =
        fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn tree_size(dir: &Path) -> Result<u64> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.iter().try_fold(0, |sum, f| Ok(sum + fs::metadata(f)?.len()))
}

fn install(source: &Path, dest: &Path, mode: u32) -> Result<()> {
    let text = fs::read(source).with_context(|| format!("reading {}", source.display()))?;
    write_bytes(dest, &text, mode)
}

fn write(dest: &Path, text: &str, mode: u32) -> Result<()> {
    write_bytes(dest, text.as_bytes(), mode)
}

fn write_bytes(dest: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    file.write_all(bytes).with_context(|| format!("writing {}", dest.display()))?;
    set_mode(dest, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Installs the package on this machine, checks it, runs doctor and the demo with the installed
/// binary, and removes it unless `keep`.
fn check_installed(deb: &Path, keep: bool) -> Result<()> {
    if !cmd::is_root() {
        bail!("`deb --check` installs the package: run it as root");
    }
    let deb = deb.canonicalize()?;
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends", "--reinstall"])
            .arg(&deb),
    )?;
    let result = (|| -> Result<()> {
        let listed = cmd::stdout(Command::new("dpkg").args(["-L", PACKAGE]))?;
        for want in [
            INSTALLED_BIN.to_string(),
            "/usr/share/man/man1/sockstrace.1.gz".into(),
            format!("/{UNIT}"),
            "/etc/sockstrace/sockstrace.example.toml".into(),
            "/usr/share/bash-completion/completions/sockstrace".into(),
            "/usr/share/doc/sockstrace/THREAT-MODEL.md".into(),
        ] {
            if !listed.lines().any(|l| l == want) {
                bail!("the installed package lacks {want}");
            }
        }
        cmd::run(Command::new("dpkg").args(["--verify", PACKAGE]))?;
        let man = cmd::stdout(Command::new("zcat").arg("/usr/share/man/man1/sockstrace.1.gz"))?;
        if !man.contains(".TH sockstrace") {
            bail!("the installed man page has no .TH sockstrace header");
        }
        let unit = fs::read_to_string(format!("/{UNIT}"))?;
        if !unit.contains(&format!("ExecStart={INSTALLED_BIN} audit")) {
            bail!("the installed unit does not start {INSTALLED_BIN}");
        }
        cmd::run(Command::new(INSTALLED_BIN).arg("--version"))?;
        cmd::run(Command::new(INSTALLED_BIN).arg("doctor"))?;
        crate::demo::run_with(Path::new(INSTALLED_BIN))
    })();
    if !keep {
        cmd::run(
            Command::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive").args(["purge", "-y", PACKAGE]),
        )?;
    }
    result.context("checking the installed package")?;
    println!(
        "deb: installed, checked (doctor, demo against {INSTALLED_BIN}){}",
        if keep { ", kept" } else { ", removed" }
    );
    Ok(())
}
