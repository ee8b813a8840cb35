//! `local-stack dev`: keeps the local stack up until Ctrl-C; `local-stack
//! dev token` mints a development ID token that only the local stack accepts.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result};
use auth_events_aws::migrate::Names;
use local_stack::dev_signer::{DevIdentity, claims};
use local_stack::stack::{DEV_PROJECT, DevOptions, DevStack, load_or_create_signer};
use local_stack::strict::StrictLimits;

use crate::cli::{DevArgs, DevCommand, Global, TokenArgs};

pub async fn run(global: &Global, args: &DevArgs) -> Result<ExitCode> {
    if let Some(DevCommand::Token(token)) = &args.command {
        return print_token(token);
    }
    let names = Names::for_prefix(&global.prefix)?;
    let options = DevOptions {
        endpoint_url: global.endpoint_url.clone(),
        port: args.port,
        moto_port: args.moto_port,
        strict: args.strict.then(|| {
            let defaults = StrictLimits::default();
            StrictLimits {
                put_events_max_request_bytes: args
                    .strict_max_request_bytes
                    .unwrap_or(defaults.put_events_max_request_bytes),
                ..defaults
            }
        }),
        sweep_interval: args.sweep_interval,
        ..DevOptions::default()
    };
    let stack = DevStack::start(names, options).await?;
    let environment = stack.environment();
    if let Some(path) = &args.env_file {
        let mut dotenv = String::new();
        for (name, value) in &environment {
            let _ = writeln!(dotenv, "{name}={value}");
        }
        std::fs::write(path, dotenv).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("auth-events local stack is up (Ctrl-C stops it, moto included)\n");
    println!("  token exchange  POST {}", stack.exchange_url());
    println!("  AWS endpoint    {}", stack.endpoint);
    if args.strict {
        println!("                  (strict: refuses what AWS refuses and moto accepts)");
    }
    println!();
    println!("Sign in:");
    println!(
        "  curl -s -X POST {} -H \"Authorization: Bearer $(local-stack dev token --uid alice --email alice@example.com)\"\n",
        stack.exchange_url()
    );
    println!(
        "Environment{}:",
        args.env_file
            .as_ref()
            .map_or(String::new(), |p| format!(" (also in {})", p.display()))
    );
    for (name, value) in &environment {
        println!("  export {name}={value}");
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    println!("\nstopping...");
    stack.stop().await?;
    Ok(ExitCode::SUCCESS)
}

fn print_token(args: &TokenArgs) -> Result<ExitCode> {
    let signer = load_or_create_signer()?;
    let mut identity = DevIdentity::new(&args.uid);
    identity.email.clone_from(&args.email);
    identity.name.clone_from(&args.name);
    println!("{}", signer.sign(&claims(DEV_PROJECT, &identity))?);
    Ok(ExitCode::SUCCESS)
}
