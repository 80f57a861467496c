//! sockstrace: proves that a program sends nothing around its SOCKS proxy.

// Stdout carries the program's own output and `--report -`'s JSON: only the
// commands whose output it is (`doctor`, `report`, `completions`, `man`) write
// there, on purpose. The process ends through `exit::Exit` only.
#![cfg_attr(not(test), deny(clippy::print_stdout))]
#![deny(clippy::exit)]

mod audit;
mod cli;
mod config;
mod dns;
mod doctor;
mod exit;
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

use exit::Exit;

fn main() {
    logging::init();
    let matches = cli::Cli::command().get_matches();
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let exit = match cli.command {
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
            Exit::Success
        }
        cli::Command::Man => {
            match clap_mangen::Man::new(cli::Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => Exit::Success,
                Err(e) => {
                    crate::report_writer::human::write_line(&format!("sockstrace: error: {e}"));
                    Exit::OwnFailure
                }
            }
        }
        cli::Command::Doctor { json } => doctor::main(json),
        // `report` exits 0 when it read the file, 2 when it cannot (see `report_reader`).
        cli::Command::Report(args) => match report_reader::main(args) {
            0 => Exit::Success,
            _ => Exit::Usage,
        },
    };
    // Our lines to a terminal are written by a thread of their own; a terminal whose output the
    // program switched off never takes them: sockstrace ends all the same, its status saying
    // that its output is not all there.
    let exit = match report_writer::stream::drain(std::time::Duration::from_secs(5)) {
        report_writer::stream::Drained { written: true, dropped: 0 } => exit,
        report_writer::stream::Drained { written: true, dropped } => {
            report_writer::human::write_line(&format!(
                "sockstrace: error: {dropped} of our lines to the terminal were dropped (it did not take them in \
                 time): what it shows, a report on it included, is not all; the summary counts every event"
            ));
            let _ = report_writer::stream::drain(std::time::Duration::from_secs(2));
            Exit::OwnFailure
        }
        report_writer::stream::Drained { written: false, .. } => Exit::OwnFailure,
    };
    exit.exit();
}
