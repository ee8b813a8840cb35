//! Command-line arguments. Every resource name comes from a flag, an
//! environment variable, or the deployment prefix.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "outboxctl",
    version,
    about = "Operate the auth-events outbox, DLQ and local stack"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// AWS endpoint to call instead of AWS itself (e.g. the local stack's moto).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// AWS region; otherwise the standard environment and profile decide.
    #[arg(long, global = true, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Named profile from the AWS config files.
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// Deployment prefix of every resource name.
    #[arg(
        long,
        global = true,
        env = "AUTH_EVENTS_PREFIX",
        default_value = "meeting-recorder-dev-"
    )]
    pub prefix: String,
    /// Machine-readable JSON instead of human tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update the tables (and, with --local-stack, the bus, rule and queues).
    Migrate(MigrateArgs),
    /// Run the whole story on a local moto server and print what happened.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Also create the event bus, rule, rule target queue and DLQ, as the
    /// local stack needs (on AWS, Terraform owns them).
    #[arg(long)]
    pub local_stack: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port for the local moto server (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub moto_port: u16,
}
