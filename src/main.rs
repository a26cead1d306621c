//! The `effnetv2` command-line tool.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Runs the command; an error is printed as its chain of causes (without the backtrace that
/// `anyhow` would add under RUST_BACKTRACE) and exits with status 1.
fn main() -> ExitCode {
    match cli::Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
