//! Command-line arguments of `local-stack`.

use std::time::Duration;

use auth_events_aws::env::parse_duration;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "local-stack",
    version,
    about = "The auth-events pipeline on one machine (moto, the real handlers, local stand-ins)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// A local AWS endpoint already running (e.g. a moto server); without
    /// it, `demo` and `dev` start their own.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Prefix of every resource name.
    #[arg(
        long,
        global = true,
        env = "AUTH_EVENTS_PREFIX",
        default_value = "meeting-recorder-dev-"
    )]
    pub prefix: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole story on a fresh local stack, print what happened, exit.
    Demo(DemoArgs),
    /// Keep the local stack up (moto, handlers, local drivers) until Ctrl-C.
    Dev(DevArgs),
    /// Create the tables, the bus, the rule and the queues on --endpoint-url.
    Migrate,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(subcommand)]
    pub command: Option<DevCommand>,
    /// Port of the local token exchange (POST /auth/exchange).
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// Port for the local moto server (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub moto_port: u16,
    /// Put a layer in front of the AWS endpoint that refuses what AWS
    /// refuses and moto accepts (PutEvents limits, trace headers, SQS
    /// bodies), so the stack fails here where it would fail on AWS.
    #[arg(long)]
    pub strict: bool,
    /// The PutEvents request limit the strict layer enforces, in bytes
    /// (AWS's formula); lower it to play a region on the old 262144.
    #[arg(long, requires = "strict", value_name = "BYTES")]
    pub strict_max_request_bytes: Option<usize>,
    /// Also write the stack's environment to this dotenv file.
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<std::path::PathBuf>,
    /// How often the sweep runs (e.g. 30s, 5m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub sweep_interval: Duration,
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Print a development Firebase ID token that only the local stack accepts.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The Firebase uid to sign in as.
    #[arg(long)]
    pub uid: String,
    #[arg(long)]
    pub email: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port for the local moto server (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub moto_port: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arguments_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
