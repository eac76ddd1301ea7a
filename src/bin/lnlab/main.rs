//! `lnlab`: train, measure, plot and report on the lab's transformer from the command
//! line, reproducibly from a seed.

mod args;
mod commands;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let result = match cli.command {
        args::Command::Train(a) => commands::train(a),
        args::Command::Plot(a) => commands::plot(a),
        args::Command::Report(a) => commands::report(a),
        args::Command::Csv(a) => commands::csv(a),
        args::Command::Eval(a) => commands::eval(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
