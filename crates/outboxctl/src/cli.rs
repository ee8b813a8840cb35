//! Command-line arguments. Every resource name comes from a flag, an
//! environment variable, or the deployment prefix.

use std::time::Duration;

use auth_events_aws::env::parse_duration;
use auth_events_core::dead_letter::DeadLetterKind;
use auth_events_core::redact::PiiKey;
use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "outboxctl",
    version,
    about = "Operate the auth-events outbox and DLQ",
    after_help = "Set PII_HASH_KEY to the token exchange's key to print e-mail hashes that match its logs; otherwise addresses print as [redacted]."
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

/// The deployment's key for e-mail hashes, from `PII_HASH_KEY` (the
/// token exchange's own), so that printed hashes match its logs; without
/// it addresses print as `[redacted]`. An environment variable only: a
/// flag would show the key in the process list.
pub fn pii_key() -> anyhow::Result<Option<PiiKey>> {
    std::env::var("PII_HASH_KEY")
        .ok()
        .filter(|key| !key.is_empty())
        .map(|key| PiiKey::parse(&key).map_err(|e| anyhow::anyhow!("PII_HASH_KEY: {e}")))
        .transpose()
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update the tables (additive and idempotent).
    Migrate,
    /// Inspect the dead-letter queue without consuming it.
    Dlq(DlqArgs),
    /// Put dead-lettered events back on the bus; a message is deleted only
    /// once all its events are published.
    Redrive(RedriveArgs),
    /// Inspect and publish the outbox's pending (unpublished) items.
    Outbox(OutboxArgs),
}

/// Where the DLQ, the outbox table and the bus are; each defaults to its
/// name under `--prefix`.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Resources (named after --prefix unless given)")]
pub struct ResourceArgs {
    /// URL of the dead-letter queue [default: GetQueueUrl of <prefix>auth-events-dlq].
    #[arg(long, global = true, env = "DLQ_URL", value_name = "URL")]
    pub dlq_url: Option<String>,
    /// Name of the outbox table [default: <prefix>outbox].
    #[arg(long, global = true, env = "OUTBOX_TABLE", value_name = "TABLE")]
    pub outbox_table: Option<String>,
    /// Name of the event bus [default: <prefix>auth-events].
    #[arg(long, global = true, env = "EVENT_BUS_NAME", value_name = "BUS")]
    pub bus: Option<String>,
}

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(flatten)]
    pub resources: ResourceArgs,
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Message count, oldest age, counts by kind and by error code.
    Stats,
    /// Peek at the messages; every one is visible again right afterwards.
    List(ListArgs),
    /// One message decoded, with the current state of its outbox items.
    Show(ShowArgs),
    /// Delete one message for good (one that can never be published).
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The SQS MessageId, as `dlq list` shows it.
    pub id: String,
    /// Confirm: the message is gone afterwards; `dlq show ID` first.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Show at most N messages (oldest first).
    #[arg(long, default_value = "50", value_name = "N", value_parser = parse_count)]
    pub limit: usize,
    /// Only messages of this kind.
    #[arg(long)]
    pub kind: Option<Kind>,
    /// Only messages with this error code (as `dlq stats` shows it).
    #[arg(long = "error", value_name = "CODE")]
    pub error_code: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The SQS MessageId, as `dlq list` shows it.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RedriveArgs {
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Change nothing: say what would be published, deleted and kept.
    #[arg(long)]
    pub dry_run: bool,
    /// Redrive at most N messages (the oldest).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub max: Option<usize>,
    /// Handle at most this many messages per second (fractions allowed).
    #[arg(long, value_name = "PER_SEC", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Only messages that reached the DLQ within this long (30s, 15m, 2h, 3d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Only messages of this kind.
    #[arg(long)]
    pub kind: Option<Kind>,
    /// Do not ask before redriving more than 10 messages.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct OutboxArgs {
    #[command(flatten)]
    pub resources: ResourceArgs,
    #[command(subcommand)]
    pub command: OutboxCommand,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Unpublished items, oldest first.
    Pending(PendingArgs),
    /// Publish pending items now, through the relay Lambda's sweep.
    Sweep(SweepArgs),
}

#[derive(Debug, Args)]
pub struct PendingArgs {
    /// Only items created longer ago than this (30s, 15m, 2h, 3d).
    #[arg(long, default_value = "0s", value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Duration,
    /// Show at most N items.
    #[arg(long, default_value = "100", value_name = "N", value_parser = parse_count)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Only items created longer ago than this; younger ones are normally
    /// still on their way through the stream (the Lambda's default is 5m).
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Duration,
    /// Publish at most N items in this run.
    #[arg(long, default_value = "500", value_name = "N", value_parser = parse_count)]
    pub max: usize,
}

/// A dead-letter kind as a command-line value; the names are the core's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind(pub DeadLetterKind);

impl ValueEnum for Kind {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            Kind(DeadLetterKind::Relay),
            Kind(DeadLetterKind::StreamBatch),
            Kind(DeadLetterKind::BusEvent),
            Kind(DeadLetterKind::LambdaAsync),
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self.0 {
            DeadLetterKind::Relay => "the relay's own dead letter (full event)",
            DeadLetterKind::StreamBatch => "the stream mapping's on-failure record",
            DeadLetterKind::BusEvent => "EventBridge's target DLQ message",
            DeadLetterKind::LambdaAsync => "the profile function's on-failure record",
        };
        Some(PossibleValue::new(self.0.as_str()).help(help))
    }
}

/// Messages per second: from one per 1000 s upwards.
pub fn parse_rate(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.001 => Ok(rate),
        _ => Err(
            "use a number of messages per second of at least 0.001 (e.g. --rate 5 or --rate 0.5)"
                .to_owned(),
        ),
    }
}

/// A count of at least one.
pub fn parse_count(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err("use a whole number of at least 1".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_positive() {
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "0.0001", "-1", "inf", "NaN", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_start_at_one() {
        assert_eq!(parse_count("1"), Ok(1));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-3").is_err());
    }

    #[test]
    fn every_kind_is_a_value() {
        for kind in DeadLetterKind::ALL {
            assert_eq!(Kind::from_str(kind.as_str(), false), Ok(Kind(kind)));
        }
    }

    #[test]
    fn the_arguments_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
