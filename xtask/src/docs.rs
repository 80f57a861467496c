//! `cargo xtask docs`: the manual page and shell completions, generated from
//! the command line's own (clap) definitions by the built binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::cmd;

/// Each shell and the file name its completion directory expects.
pub const SHELLS: [(&str, &str); 3] =
    [("bash", "sockstrace"), ("zsh", "_sockstrace"), ("fish", "sockstrace.fish")];

pub fn run() -> Result<()> {
    let bin = crate::bench::fixture::build_sockstrace()?;
    let out = crate::test::target_dir()?.join("dist");
    let man = generate(&bin, &out)?;
    println!("read it with: man {}", man.display());
    Ok(())
}

/// Writes `OUT/sockstrace.1` and `OUT/completions/<file>` for each of [`SHELLS`], as `bin`
/// prints them; returns the man page's path.
pub fn generate(bin: &Path, out: &Path) -> Result<PathBuf> {
    let completions = out.join("completions");
    fs::create_dir_all(&completions).with_context(|| format!("creating {}", completions.display()))?;
    let man = cmd::stdout(Command::new(bin).arg("man"))?;
    let man_path = out.join("sockstrace.1");
    fs::write(&man_path, man).with_context(|| format!("writing {}", man_path.display()))?;
    println!("wrote {}", man_path.display());
    for (shell, file) in SHELLS {
        let script = cmd::stdout(Command::new(bin).args(["completions", shell]))?;
        let path = completions.join(file);
        fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(man_path)
}
