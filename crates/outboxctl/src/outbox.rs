//! `outboxctl outbox pending | sweep`, and the outbox views and stream
//! windows the DLQ commands share.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use auth_events_core::contract::{EventId, Timestamp};
use auth_events_core::dead_letter::StreamBatchInfo;
use auth_events_core::outbox::OutboxRecord;
use auth_events_core::ports::OutboxStore;
use auth_events_core::relay::{Relay, RelayConfig};
use serde::Serialize;

use crate::cli::{Global, OutboxArgs, OutboxCommand, PendingArgs, SweepArgs};
use crate::output::{age, print_json, table, truncate};
use crate::resources::Resources;

/// How far outside a stream batch's arrival window an item's `createdAt`
/// may lie and still belong to it: the producer stamps `createdAt` just
/// before its write, the stream stamps the arrival just after.
pub const WINDOW_MARGIN: Duration = Duration::from_secs(30);

/// The most pending items one window lookup reads.
pub const WINDOW_LIMIT: usize = 10_000;

/// How long `outbox sweep` keeps retrying throttled or failing entries.
const SWEEP_BUDGET: Duration = Duration::from_mins(1);

/// An outbox item as the commands show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxView {
    pub event_id: String,
    /// `pending`, `published`, `dead-lettered` or `missing`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_lettered_at: Option<Timestamp>,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

fn since(at: Timestamp, now: Timestamp) -> Option<Duration> {
    (now.as_datetime() - at.as_datetime()).to_std().ok()
}

impl OutboxView {
    pub fn of(record: &OutboxRecord, now: Timestamp) -> Self {
        let state = if record.is_pending() {
            "pending"
        } else if record.published_at.is_some() {
            "published"
        } else if record.dead_lettered_at.is_some() {
            "dead-lettered"
        } else {
            "unknown"
        };
        Self {
            event_id: record.event_id.to_string(),
            state,
            detail_type: Some(record.detail_type.clone()),
            created_at: Some(record.created_at),
            age_seconds: since(record.created_at, now).map(|d| d.as_secs()),
            published_at: record.published_at,
            bus_event_id: record.bus_event_id.clone(),
            dead_lettered_at: record.dead_lettered_at,
            attempts: record.attempts,
            last_error: record.last_error.clone(),
        }
    }

    /// No item: expired through TTL, or never written.
    pub fn missing(event_id: EventId) -> Self {
        Self {
            event_id: event_id.to_string(),
            state: "missing",
            detail_type: None,
            created_at: None,
            age_seconds: None,
            published_at: None,
            bus_event_id: None,
            dead_lettered_at: None,
            attempts: 0,
            last_error: None,
        }
    }

    /// What happened to it, in a few words.
    pub fn state_line(&self) -> String {
        match (self.state, self.published_at, self.dead_lettered_at) {
            ("published", Some(at), _) => format!("published at {at}"),
            ("dead-lettered", _, Some(at)) => format!("dead-lettered at {at}"),
            ("missing", _, _) => "missing (TTL expired, or never written)".to_owned(),
            (state, _, _) => state.to_owned(),
        }
    }
}

pub fn outbox_table(views: &[OutboxView]) -> comfy_table::Table {
    let mut rows = table([
        "EVENT ID",
        "STATE",
        "CREATED",
        "AGE",
        "ATTEMPTS",
        "LAST ERROR",
    ]);
    for view in views {
        rows.add_row([
            view.event_id.clone(),
            view.state_line(),
            view.created_at.map(|t| t.to_string()).unwrap_or_default(),
            view.age_seconds
                .map(|s| age(Duration::from_secs(s)))
                .unwrap_or_default(),
            view.attempts.to_string(),
            truncate(view.last_error.as_deref().unwrap_or(""), 60),
        ]);
    }
    rows
}

/// The `createdAt` range a stream batch's items fall in: its records'
/// arrival times, widened by [`WINDOW_MARGIN`] on both sides.
pub fn stream_window(info: &StreamBatchInfo) -> (Timestamp, Timestamp) {
    let margin = chrono::Duration::from_std(WINDOW_MARGIN).unwrap_or_default();
    (
        Timestamp::from_datetime(info.approximate_arrival_of_first_record.as_datetime() - margin),
        Timestamp::from_datetime(info.approximate_arrival_of_last_record.as_datetime() + margin),
    )
}

/// The pending items created within `window`, oldest first; `complete`
/// is false when the lookup hit [`WINDOW_LIMIT`] and may have missed some.
#[derive(Debug)]
pub struct WindowItems {
    pub records: Vec<OutboxRecord>,
    pub complete: bool,
}

pub async fn pending_in_window(
    store: &impl OutboxStore,
    (from, to): (Timestamp, Timestamp),
) -> Result<WindowItems> {
    let records = store
        .pending(to, WINDOW_LIMIT)
        .await
        .with_context(|| format!("listing pending outbox items created before {to}"))?;
    let complete = records.len() < WINDOW_LIMIT;
    Ok(WindowItems {
        records: records
            .into_iter()
            .filter(|record| record.created_at >= from)
            .collect(),
        complete,
    })
}

pub async fn run(global: &Global, args: &OutboxArgs) -> Result<ExitCode> {
    let resources = Resources::new(global, &args.resources).await?;
    match &args.command {
        OutboxCommand::Pending(pending) => list_pending(global, &resources, pending).await,
        OutboxCommand::Sweep(sweep) => run_sweep(global, &resources, sweep).await,
    }
}

async fn list_pending(
    global: &Global,
    resources: &Resources,
    args: &PendingArgs,
) -> Result<ExitCode> {
    let store = resources.outbox().await?;
    let now = Timestamp::now();
    let older = chrono::Duration::from_std(args.older_than).unwrap_or(chrono::Duration::MAX);
    let cutoff = Timestamp::from_datetime(now.as_datetime() - older);
    let records = store
        .pending(cutoff, args.limit)
        .await
        .with_context(|| format!("listing pending items of outbox table {}", store.table()))?;
    let views: Vec<OutboxView> = records.iter().map(|r| OutboxView::of(r, now)).collect();
    if global.json {
        print_json(&serde_json::json!({
            "table": store.table(),
            "olderThanSeconds": args.older_than.as_secs(),
            "count": views.len(),
            "items": views,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let scope = if args.older_than.is_zero() {
        String::new()
    } else {
        format!(" older than {}", age(args.older_than))
    };
    if views.is_empty() {
        println!("no pending items{scope} in {}", store.table());
        return Ok(ExitCode::SUCCESS);
    }
    let capped = if views.len() == args.limit {
        format!(" (first {}; raise --limit for more)", args.limit)
    } else {
        String::new()
    };
    println!(
        "{} pending items{scope} in {}{capped}",
        views.len(),
        store.table()
    );
    println!("{}", outbox_table(&views));
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SweepView {
    table: String,
    bus: String,
    older_than_seconds: u64,
    found: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest_pending: Option<Timestamp>,
    published: usize,
    dead_lettered: usize,
    still_failing: usize,
}

async fn run_sweep(global: &Global, resources: &Resources, args: &SweepArgs) -> Result<ExitCode> {
    let store = resources.outbox().await?;
    let publisher = resources.publisher().await?;
    let dlq = resources.dlq().await?;
    let dead_letters = resources.dead_letters(&dlq);
    let table = store.table().to_owned();
    let bus = publisher.bus_name().to_owned();
    // The relay Lambda's own engine and defaults: one publishing path.
    let relay = Relay::new(publisher, store, dead_letters, RelayConfig::default());
    let deadline = tokio::time::Instant::now() + SWEEP_BUDGET;
    let report = relay
        .sweep(args.older_than, args.max, deadline)
        .await
        .with_context(|| format!("sweeping outbox table {table}"))?;
    let view = SweepView {
        table,
        bus,
        older_than_seconds: args.older_than.as_secs(),
        found: report.found,
        oldest_pending: report.oldest_pending,
        published: report.relay.published,
        dead_lettered: report.relay.dead_lettered,
        still_failing: report.relay.failed_positions.len(),
    };
    if global.json {
        print_json(&view)?;
    } else {
        let oldest = view
            .oldest_pending
            .and_then(|at| since(at, Timestamp::now()))
            .map(|d| format!(", oldest {}", age(d)))
            .unwrap_or_default();
        println!(
            "swept {} (pending items older than {}): found {}{oldest}; published {}, dead-lettered {}, still failing {}",
            view.table,
            age(args.older_than),
            view.found,
            view.published,
            view.dead_lettered,
            view.still_failing
        );
        if view.dead_lettered > 0 {
            println!("dead-lettered events wait in the DLQ: `outboxctl dlq list`");
        }
        if view.still_failing > 0 {
            println!(
                "still failing: run `outboxctl outbox sweep` again later, or see `outboxctl outbox pending`"
            );
        }
    }
    Ok(if view.still_failing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
