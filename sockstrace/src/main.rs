//! sockstrace: proves that a program sends nothing around its SOCKS proxy.

mod cli;
mod doctor;
mod kernel;
mod net;
mod policy;
#[cfg(test)]
mod properties;
mod report;
mod run;
mod socks;
mod supervisor;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let code = match cli.command {
        cli::Command::Run(args) => run::main(args),
        cli::Command::Doctor => doctor::main(),
    };
    std::process::exit(code);
}
