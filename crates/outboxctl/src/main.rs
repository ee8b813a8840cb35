//! `outboxctl`: the SRE command line for auth-events.
//!
//! Parses arguments and calls into the modules; each module owns one
//! capability.

mod cli;
mod dlq;
mod migrate;
mod outbox;
mod output;
mod queue;
mod redrive;
mod resources;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.use_stderr() => {
            eprintln!("{}", one_line(&error.render().to_string()));
            return ExitCode::from(2);
        }
        // --help and --version
        Err(error) => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
    };
    init_logs();
    let result = match &cli.command {
        Command::Migrate => migrate::run(&cli.global).await,
        Command::Dlq(args) => dlq::run(&cli.global, args).await,
        Command::Redrive(args) => redrive::run(&cli.global, args).await,
        Command::Outbox(args) => outbox::run(&cli.global, args).await,
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

/// clap's message on one line, without the "For more information" footer:
/// the error and the fix, greppable in a script's log.
fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The shared engines log through `tracing`; with `RUST_LOG` set, their
/// lines go to stderr, and otherwise nowhere.
fn init_logs() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clap_error_becomes_one_line_without_the_help_footer() {
        let rendered = "error: invalid value 'x' for '--kind <KIND>'\n  [possible values: relay, bus-event]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "error: invalid value 'x' for '--kind <KIND>' [possible values: relay, bus-event]"
        );
    }
}
