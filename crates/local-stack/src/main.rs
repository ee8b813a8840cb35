//! `local-stack`: the auth-events pipeline on one machine.
//!
//! `demo` runs the whole story and exits, `dev` keeps the stack up until
//! Ctrl-C (`dev token` mints a development ID token for it), `migrate`
//! creates the tables and the messaging resources on a local endpoint.

mod cli;
mod demo;
mod dev;

use std::process::ExitCode;

use anyhow::Context;
use auth_events_aws::migrate::Names;
use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.use_stderr() => {
            let _ = error.print();
            return ExitCode::from(2);
        }
        Err(error) => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
    };
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let result = match &cli.command {
        Command::Demo(args) => demo::run(&cli.global, args).await,
        Command::Dev(args) => dev::run(&cli.global, args).await,
        Command::Migrate => migrate(&cli.global).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn migrate(global: &cli::Global) -> anyhow::Result<ExitCode> {
    let names = Names::for_prefix(&global.prefix)?;
    let endpoint = global
        .endpoint_url
        .as_deref()
        .context("--endpoint-url (or AWS_ENDPOINT_URL) is required: the local stack never migrates AWS itself")?;
    let sdk = local_stack::moto::LocalMoto::sdk_config_for(endpoint).await;
    let changes = local_stack::stack::migrate(&sdk, &names).await?;
    if changes.is_empty() {
        println!(
            "nothing to do: the local stack of prefix {:?} is up to date",
            names.prefix
        );
    }
    for change in &changes {
        println!("{change}");
    }
    Ok(ExitCode::SUCCESS)
}
