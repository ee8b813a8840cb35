//! `outboxctl`: the SRE and developer command line for auth-events.
//!
//! Parses arguments and calls into the modules; each module owns one
//! capability.

mod cli;
mod local;
mod migrate;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Migrate(args) => migrate::run(&cli.global, args).await,
        Command::Demo(args) => local::demo(&cli.global, args).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            // One line an operator can act on: the context chain, no backtrace.
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
