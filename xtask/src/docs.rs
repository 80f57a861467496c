//! `cargo xtask docs`: the manual page and shell completions, generated from
//! the command line's own (clap) definitions by the built binary.

use std::fs;
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::cmd;

const SHELLS: [(&str, &str); 3] =
    [("bash", "sockstrace"), ("zsh", "_sockstrace"), ("fish", "sockstrace.fish")];

pub fn run() -> Result<()> {
    cmd::run(cmd::cargo().args(["build", "--release", "--package", "sockstrace"]))?;
    let bin = crate::test::target_dir()?.join("release").join("sockstrace");
    let out = crate::test::target_dir()?.join("dist");
    let completions = out.join("completions");
    fs::create_dir_all(&completions).with_context(|| format!("creating {}", completions.display()))?;

    let man = cmd::stdout(Command::new(&bin).arg("man"))?;
    let man_path = out.join("sockstrace.1");
    fs::write(&man_path, man).with_context(|| format!("writing {}", man_path.display()))?;
    println!("wrote {}", man_path.display());
    for (shell, file) in SHELLS {
        let script = cmd::stdout(Command::new(&bin).args(["completions", shell]))?;
        let path = completions.join(file);
        fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!("read it with: man {}", man_path.display());
    Ok(())
}
