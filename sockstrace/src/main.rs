//! sockstrace: proves that a program sends nothing around its SOCKS proxy.

mod audit;
mod cli;
mod config;
mod dns;
mod doctor;
mod inspect;
mod kernel;
mod logging;
mod net;
mod policy;
mod procfs;
#[cfg(test)]
mod properties;
mod report_reader;
mod report_writer;
mod run;
mod socks;
mod stack;
mod supervisor;
mod syscalls;
mod testing;

use clap::{CommandFactory, FromArgMatches};

fn main() {
    logging::init();
    let matches = cli::Cli::command().get_matches();
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let code = match cli.command {
        cli::Command::Run(args) => {
            let run_matches = matches.subcommand_matches("run").cloned().unwrap_or_default();
            run::main(args, &run_matches)
        }
        cli::Command::Audit(args) => {
            let audit_matches = matches.subcommand_matches("audit").cloned().unwrap_or_default();
            audit::main(args, &audit_matches)
        }
        cli::Command::Completions { shell } => {
            clap_complete::generate(shell, &mut cli::Cli::command(), "sockstrace", &mut std::io::stdout());
            0
        }
        cli::Command::Man => {
            match clap_mangen::Man::new(cli::Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => 0,
                Err(e) => {
                    crate::report_writer::human::write_line(&format!("sockstrace: error: {e}"));
                    run::EXIT_OWN_FAILURE
                }
            }
        }
        cli::Command::Doctor { json } => doctor::main(json),
        cli::Command::Report(args) => report_reader::main(args),
    };
    std::process::exit(code);
}
