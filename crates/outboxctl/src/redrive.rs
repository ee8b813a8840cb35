//! `outboxctl redrive`: put dead-lettered events back on the bus.
//!
//! Two phases. The plan peeks at the DLQ (consuming nothing), selects
//! messages by `--kind`, `--since` and `--max`, and is all `--dry-run`
//! does. The run receives messages again and handles each planned one with
//! the receipt handle of *that* receive: publish every event of the
//! message, then delete it. Anything not fully published is kept, and every
//! message received but not deleted is made visible again at the end.
//!
//! Two redrives at once cannot lose a message: only the one holding a
//! message (its receive made it invisible to the other) publishes and
//! deletes it. If a visibility timeout lapses mid-publish the other may
//! publish the same event again, which consumers deduplicate on `eventId`.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use auth_events_aws::{DynamoOutbox, EventBridgePublisher, SqsDeadLetters};
use auth_events_core::contract::{EventId, Timestamp};
use auth_events_core::dead_letter::{DeadLetter, StreamBatchInfo};
use auth_events_core::entry::BusEntry;
use auth_events_core::ports::{OutboxStore, Publisher};
use auth_events_core::relay::{Relay, RelayConfig, RelayReport, put_one, validate_records};
use backon::BackoffBuilder;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio::time::Instant;

use crate::cli::{Global, RedriveArgs};
use crate::outbox::{WINDOW_LIMIT, pending_in_window, stream_window};
use crate::output::print_json;
use crate::queue::{Dlq, DlqMessage};
use crate::resources::Resources;

/// Above this many messages a redrive needs `--yes` or a confirmation.
pub const CONFIRM_ABOVE: usize = 10;

/// How long one message's publishing may keep retrying.
const PUBLISH_BUDGET: Duration = Duration::from_secs(30);

/// SQS's longest visibility timeout.
const MAX_VISIBILITY: Duration = Duration::from_hours(12);

/// The visibility timeout of the run's receives: a received batch of 10 is
/// handled one message after another, each within [`PUBLISH_BUDGET`], plus
/// a minute's margin and the time the batch may wait under `--rate`. A
/// message must not reappear mid-run, or a concurrent redrive would publish
/// it again.
fn run_visibility(rate: Option<f64>) -> Duration {
    let queued = rate.map_or(Duration::ZERO, |rate| {
        Duration::try_from_secs_f64(10.0 / rate).unwrap_or(MAX_VISIBILITY)
    });
    (PUBLISH_BUDGET * 10 + Duration::from_mins(1) + queued).min(MAX_VISIBILITY)
}

/// What to do with one message, decided from its body alone.
#[derive(Debug, Clone)]
enum Plan {
    /// Publish the event; for a relay dead letter, then mark its outbox
    /// item published.
    Publish {
        entry: BusEntry,
        mark_outbox: Option<EventId>,
    },
    /// A stream batch: publish the outbox's pending items created in this
    /// window, through the relay engine.
    Window {
        info: StreamBatchInfo,
        window: (Timestamp, Timestamp),
    },
    /// Readable, but nothing here can be published.
    Keep(String),
    Unreadable(String),
}

fn plan(message: &DlqMessage) -> Plan {
    let envelope = match &message.letter {
        Err(unreadable) => return Plan::Unreadable(unreadable.0.clone()),
        Ok(DeadLetter::Relay(letter)) => {
            return match &letter.entry {
                Some(entry) => Plan::Publish {
                    entry: entry.clone(),
                    mark_outbox: letter.event_id.or(entry.event_id),
                },
                None => Plan::Keep(format!(
                    "the relay could not read the outbox item ({}); nothing to publish until the item is fixed, see `outboxctl dlq show {}`",
                    letter.message, message.id
                )),
            };
        }
        Ok(DeadLetter::StreamBatch { info, .. }) => {
            return Plan::Window {
                info: info.clone(),
                window: stream_window(info),
            };
        }
        Ok(
            DeadLetter::BusEvent(envelope)
            | DeadLetter::LambdaAsync {
                event: envelope, ..
            },
        ) => envelope,
    };
    match envelope.to_entry() {
        Ok(entry) => Plan::Publish {
            entry,
            mark_outbox: None,
        },
        Err(error) => Plan::Keep(format!("not an auth-events event: {error}")),
    }
}

/// How one message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Outcome {
    Published,
    Kept,
    Unreadable,
    WouldPublish,
    WouldKeep,
}

impl Outcome {
    fn verb(self) -> &'static str {
        match self {
            Outcome::Published => "published",
            Outcome::Kept => "kept",
            Outcome::Unreadable => "unreadable",
            Outcome::WouldPublish => "would publish",
            Outcome::WouldKeep => "would keep",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageResult {
    message_id: String,
    kind: &'static str,
    outcome: Outcome,
    /// The events published (or that would be).
    event_ids: Vec<String>,
    detail: String,
}

impl MessageResult {
    fn line(&self) -> String {
        format!(
            "{:<13} {}  {:<12} {}",
            self.outcome.verb(),
            self.message_id,
            self.kind,
            self.detail
        )
    }
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    /// Messages whose events were all published, and which were deleted.
    published: usize,
    /// Events those messages carried.
    events: usize,
    /// Messages left in the DLQ: not (fully) publishable, or not deleted.
    kept: usize,
    /// Messages not selected by --kind, --since or --max.
    skipped: usize,
    /// Messages no shape matches; left in the DLQ.
    unreadable: usize,
    /// Planned messages no receive returned: deleted or held by another
    /// consumer meanwhile.
    not_received: usize,
}

impl Summary {
    fn count(&mut self, result: &MessageResult) {
        match result.outcome {
            Outcome::Published | Outcome::WouldPublish => {
                self.published += 1;
                self.events += result.event_ids.len();
            }
            Outcome::Kept | Outcome::WouldKeep => self.kept += 1,
            Outcome::Unreadable => self.unreadable += 1,
        }
    }

    fn all_handled(&self) -> bool {
        self.kept == 0 && self.unreadable == 0 && self.not_received == 0
    }

    fn line(&self, dry_run: bool) -> String {
        let mut line = if dry_run {
            format!(
                "dry run, nothing changed: would publish {} ({} events), keep {}, skip {}; {} unreadable",
                self.published, self.events, self.kept, self.skipped, self.unreadable
            )
        } else {
            format!(
                "redrive: {} published ({} events), {} kept, {} skipped, {} unreadable",
                self.published, self.events, self.kept, self.skipped, self.unreadable
            )
        };
        if self.not_received > 0 {
            let _ = write!(
                line,
                ", {} not received (taken by another consumer meanwhile; run again to check)",
                self.not_received
            );
        }
        line
    }
}

/// Per-message lines: above a progress bar on a terminal, plain lines
/// otherwise, nothing but the final document with `--json`.
struct Reporter {
    bar: Option<ProgressBar>,
    json: bool,
}

impl Reporter {
    fn new(total: usize, json: bool, show_bar: bool) -> Self {
        let bar = (show_bar && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX));
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} messages {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self { bar, json }
    }

    fn report(&self, result: &MessageResult) {
        if !self.json {
            match &self.bar {
                Some(bar) => bar.println(result.line()),
                None => println!("{}", result.line()),
            }
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

type Engine = Relay<EventBridgePublisher, DynamoOutbox, SqsDeadLetters>;

pub async fn run(global: &Global, args: &RedriveArgs) -> Result<ExitCode> {
    let resources = Resources::new(global, &args.resources).await?;
    let dlq = resources.dlq().await?;
    let store = resources.outbox().await?;
    let publisher = resources.publisher().await?;
    let bus = publisher.bus_name().to_owned();
    let relay = Relay::new(
        publisher,
        store,
        resources.dead_letters(&dlq),
        RelayConfig::default(),
    );

    let peek = dlq
        .peek(|_| false)
        .await
        .context("reading the DLQ to plan the redrive")?;
    let total = peek.messages.len();
    let planned = select(peek.messages, args, Timestamp::now());
    let mut summary = Summary {
        skipped: total - planned.len(),
        ..Summary::default()
    };
    if planned.is_empty() {
        if global.json {
            print_json(&document(args.dry_run, &dlq, &bus, &[], &summary))?;
        } else {
            println!(
                "nothing to redrive in DLQ {} ({} messages, {} not selected)",
                dlq.url(),
                total,
                summary.skipped
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !args.dry_run
        && planned.len() > CONFIRM_ABOVE
        && !args.yes
        && !confirm(planned.len(), dlq.url(), &bus)?
    {
        eprintln!("aborted: nothing changed");
        return Ok(ExitCode::from(1));
    }
    if !global.json {
        let truncated = if peek.truncated {
            " (the DLQ holds more than one peek reads: run again afterwards)"
        } else {
            ""
        };
        println!(
            "{} {} of {} messages from DLQ {} onto bus {bus}{truncated}",
            if args.dry_run {
                "would redrive"
            } else {
                "redriving"
            },
            planned.len(),
            total,
            dlq.url(),
        );
    }

    let results = if args.dry_run {
        dry_run(&relay, &planned, global.json).await?
    } else {
        let planned_ids: HashSet<String> = planned.iter().map(|m| m.id.clone()).collect();
        let (results, not_received) = execute(&relay, &dlq, planned_ids, args, global.json).await?;
        summary.not_received = not_received;
        results
    };
    for result in &results {
        summary.count(result);
    }
    if global.json {
        print_json(&document(args.dry_run, &dlq, &bus, &results, &summary))?;
    } else {
        println!("{}", summary.line(args.dry_run));
    }
    Ok(if summary.all_handled() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn document(
    dry_run: bool,
    dlq: &Dlq,
    bus: &str,
    results: &[MessageResult],
    summary: &Summary,
) -> serde_json::Value {
    serde_json::json!({
        "dryRun": dry_run,
        "queue": dlq.url(),
        "bus": bus,
        "messages": results,
        "summary": summary,
    })
}

/// The messages to redrive, oldest first: the selected kind, arrived
/// within `--since`, at most `--max`.
fn select(messages: Vec<DlqMessage>, args: &RedriveArgs, now: Timestamp) -> Vec<DlqMessage> {
    let mut selected: Vec<DlqMessage> = messages
        .into_iter()
        .filter(|m| {
            args.kind
                .is_none_or(|kind| matches!(&m.letter, Ok(letter) if letter.kind() == kind.0))
        })
        .filter(|m| {
            args.since.is_none_or(|since| {
                // A message without an arrival time is never excluded.
                m.age(now).is_none_or(|age| age <= since)
            })
        })
        .collect();
    selected.sort_by(|a, b| a.sent_at.cmp(&b.sent_at).then(a.id.cmp(&b.id)));
    if let Some(max) = args.max {
        selected.truncate(max);
    }
    selected
}

fn confirm(count: usize, queue: &str, bus: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to redrive {count} messages (more than {CONFIRM_ABOVE}) without confirmation, and stdin is not a terminal: pass --yes, or narrow with --max, --kind or --since"
        );
    }
    eprint!("Redrive {count} messages from {queue} onto bus {bus}? [y/N] ");
    std::io::stderr().flush().context("writing the prompt")?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the confirmation")?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

async fn dry_run(relay: &Engine, planned: &[DlqMessage], json: bool) -> Result<Vec<MessageResult>> {
    let reporter = Reporter::new(planned.len(), json, false);
    let mut results = Vec::new();
    for message in planned {
        let result = match plan(message) {
            Plan::Publish { entry, mark_outbox } => {
                let ids: Vec<String> = entry.event_id.iter().map(ToString::to_string).collect();
                let event = ids.first().map_or("without eventId", String::as_str);
                let detail = if mark_outbox.is_some() {
                    format!(
                        "event {event}, then mark its outbox item published, then delete the message"
                    )
                } else {
                    format!("event {event} back on the bus, then delete the message")
                };
                result_of(message, Outcome::WouldPublish, ids, detail)
            }
            Plan::Window { window, .. } => {
                let items = pending_in_window(relay.store(), window).await?;
                let ids: Vec<String> = items
                    .records
                    .iter()
                    .map(|r| r.event_id.to_string())
                    .collect();
                if !items.complete {
                    result_of(
                        message,
                        Outcome::WouldKeep,
                        Vec::new(),
                        format!(
                            "more than {WINDOW_LIMIT} pending items: run `outboxctl outbox sweep` first"
                        ),
                    )
                } else if ids.is_empty() {
                    result_of(
                        message,
                        Outcome::WouldPublish,
                        ids,
                        format!(
                            "nothing pending created {} .. {} (already published): delete the message",
                            window.0, window.1
                        ),
                    )
                } else {
                    let detail = format!(
                        "{} pending outbox items created {} .. {}: {}, then delete the message",
                        ids.len(),
                        window.0,
                        window.1,
                        ids.join(" ")
                    );
                    result_of(message, Outcome::WouldPublish, ids, detail)
                }
            }
            Plan::Keep(reason) => result_of(message, Outcome::WouldKeep, Vec::new(), reason),
            Plan::Unreadable(reason) => result_of(
                message,
                Outcome::Unreadable,
                Vec::new(),
                format!("would keep: {reason}"),
            ),
        };
        reporter.report(&result);
        results.push(result);
    }
    reporter.finish();
    Ok(results)
}

fn result_of(
    message: &DlqMessage,
    outcome: Outcome,
    event_ids: Vec<String>,
    detail: String,
) -> MessageResult {
    MessageResult {
        message_id: message.id.clone(),
        kind: message.kind_label(),
        outcome,
        event_ids,
        detail,
    }
}

/// Receives until every planned message is handled or the queue returns
/// nothing; returns the results and how many planned messages no receive
/// returned.
async fn execute(
    relay: &Engine,
    dlq: &Dlq,
    mut planned: HashSet<String>,
    args: &RedriveArgs,
    json: bool,
) -> Result<(Vec<MessageResult>, usize)> {
    let reporter = Reporter::new(planned.len(), json, true);
    let visibility = run_visibility(args.rate);
    let started = Instant::now();
    let mut results = Vec::new();
    // Received and not deleted, by id (the latest receive's handle wins):
    // made visible again at the end, so nothing waits out a timeout.
    let mut held: BTreeMap<String, DlqMessage> = BTreeMap::new();
    let mut deleted = HashSet::new();
    let outcome: Result<()> = async {
        while !planned.is_empty() {
            let batch = dlq.receive(planned.len(), visibility).await?;
            if batch.is_empty() {
                break;
            }
            for message in batch {
                if !planned.remove(&message.id) {
                    if !deleted.contains(&message.id) {
                        held.insert(message.id.clone(), message);
                    }
                    continue;
                }
                if let Some(rate) = args.rate {
                    let slot = f64::from(u32::try_from(results.len()).unwrap_or(u32::MAX)) / rate;
                    let wait = Duration::try_from_secs_f64(slot).unwrap_or(MAX_VISIBILITY);
                    tokio::time::sleep_until(started + wait).await;
                }
                let result = handle(relay, dlq, &message).await;
                if result.outcome == Outcome::Published {
                    deleted.insert(message.id.clone());
                } else {
                    held.insert(message.id.clone(), message);
                }
                reporter.report(&result);
                results.push(result);
            }
        }
        Ok(())
    }
    .await;
    reporter.finish();
    let released = dlq.release(held.values()).await;
    outcome?;
    released.context("the redrive finished, but releasing the kept messages failed")?;
    Ok((results, planned.len()))
}

/// Publishes every event of one message, then deletes it with this
/// receive's handle; anything less keeps it.
async fn handle(relay: &Engine, dlq: &Dlq, message: &DlqMessage) -> MessageResult {
    let (event_ids, note) = match plan(message) {
        Plan::Unreadable(reason) => {
            let detail = format!("kept: {reason}");
            return result_of(message, Outcome::Unreadable, Vec::new(), detail);
        }
        Plan::Keep(reason) => return result_of(message, Outcome::Kept, Vec::new(), reason),
        Plan::Publish { entry, mark_outbox } => {
            match publish_one(relay.publisher(), &entry).await {
                Err(reason) => return result_of(message, Outcome::Kept, Vec::new(), reason),
                Ok(bus_event_id) => {
                    let note = match mark_outbox {
                        Some(event_id) => {
                            mark_published(relay.store(), event_id, &bus_event_id).await
                        }
                        None => String::new(),
                    };
                    let ids = entry
                        .event_id
                        .map(|id| id.to_string())
                        .into_iter()
                        .collect();
                    (ids, note)
                }
            }
        }
        Plan::Window { info, window } => match publish_window(relay, &info, window).await {
            Ok(done) => done,
            Err(reason) => return result_of(message, Outcome::Kept, Vec::new(), reason),
        },
    };
    let events = if event_ids.is_empty() {
        "no event".to_owned()
    } else {
        format!("event {}", event_ids.join(" "))
    };
    match dlq.delete(message).await {
        Ok(()) => result_of(
            message,
            Outcome::Published,
            event_ids,
            format!("{events}{note}; message deleted"),
        ),
        Err(error) => result_of(
            message,
            Outcome::Kept,
            event_ids,
            format!(
                "{events} published, but the message stays: {error:#} (a later redrive publishes it again; consumers dedupe)"
            ),
        ),
    }
}

/// Publishes one entry, retrying throttling and internal failures with
/// full jitter inside [`PUBLISH_BUDGET`]; the error is the reason to keep.
async fn publish_one(publisher: &impl Publisher, entry: &BusEntry) -> Result<String, String> {
    let deadline = Instant::now() + PUBLISH_BUDGET;
    let mut delays = RelayConfig::default().backoff.build();
    loop {
        let last = match put_one(publisher, entry).await {
            Ok(bus_event_id) => return Ok(bus_event_id),
            Err(error) if error.is_retryable() => error.to_string(),
            Err(error) => return Err(format!("EventBridge refused the event: {error}")),
        };
        match delays.next() {
            Some(delay) if Instant::now() + delay < deadline => tokio::time::sleep(delay).await,
            _ => return Err(format!("still failing after retries: {last}")),
        }
    }
}

async fn mark_published(store: &impl OutboxStore, event_id: EventId, bus_event_id: &str) -> String {
    match store
        .mark_published(event_id, bus_event_id, Timestamp::now())
        .await
    {
        Ok(()) => ", outbox item marked published".to_owned(),
        // Published is what matters: a stale pending marker only means the
        // sweep may publish it again, which consumers deduplicate.
        Err(error) => format!(", outbox item not marked published ({error})"),
    }
}

/// A stream batch's window, published through the relay engine: the same
/// packing, retries, marking and dead-lettering as the Lambda.
async fn publish_window(
    relay: &Engine,
    info: &StreamBatchInfo,
    window: (Timestamp, Timestamp),
) -> Result<(Vec<String>, String), String> {
    let items = pending_in_window(relay.store(), window)
        .await
        .map_err(|error| format!("{error:#}"))?;
    if !items.complete {
        return Err(format!(
            "more than {WINDOW_LIMIT} pending items: run `outboxctl outbox sweep` first"
        ));
    }
    let range = format!("created {} .. {}", window.0, window.1);
    let (candidates, poison) = validate_records(items.records);
    if !poison.is_empty() {
        let ids: Vec<String> = poison
            .iter()
            .filter_map(|p| {
                p.raw_image
                    .get("eventId")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .collect();
        return Err(format!(
            "{} pending items {range} break the event contract ({}): fix them first, see `outboxctl outbox pending`",
            poison.len(),
            ids.join(" ")
        ));
    }
    if candidates.is_empty() {
        return Ok((
            Vec::new(),
            format!(
                " (nothing pending {range} of shard {}: already published)",
                info.shard_id
            ),
        ));
    }
    let ids: Vec<String> = candidates
        .iter()
        .map(|c| c.record.event_id.to_string())
        .collect();
    let found = candidates.len();
    let mut report = RelayReport::default();
    relay
        .publish(candidates, Instant::now() + PUBLISH_BUDGET, &mut report)
        .await;
    if report.failed_positions.is_empty() && report.dead_lettered == 0 {
        Ok((
            ids,
            format!(" ({found} pending items {range}, marked published)"),
        ))
    } else {
        Err(format!(
            "{} of {found} pending items {range} published; {} still failing, {} dead-lettered as relay dead letters",
            report.published,
            report.failed_positions.len(),
            report.dead_lettered
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use auth_events_core::dead_letter::DeadLetter;

    use super::*;

    const DETAIL: &str = r#"{"eventId":"019ad3a0-0000-7000-8000-000000000001","schemaVersion":1,"userId":"u1","email":"a@b.co","timestamp":"2026-11-29T11:46:06.123Z"}"#;

    fn message(body: &str) -> DlqMessage {
        DlqMessage {
            id: "m-1".to_owned(),
            receipt_handle: "h-1".to_owned(),
            body: body.to_owned(),
            sent_at: None,
            receive_count: 1,
            attributes: BTreeMap::new(),
            letter: DeadLetter::parse(body),
        }
    }

    #[test]
    fn a_bus_event_of_ours_is_put_back_and_a_foreign_one_is_kept() {
        let ours = format!(
            r#"{{"id":"e","detail-type":"user.signed_in","source":"interview-companion.auth","detail":{DETAIL}}}"#
        );
        let Plan::Publish { entry, mark_outbox } = plan(&message(&ours)) else {
            panic!("should publish");
        };
        assert_eq!(entry.detail_type, "user.signed_in");
        assert!(mark_outbox.is_none(), "only relay letters touch the outbox");

        let foreign = format!(
            r#"{{"id":"e","detail-type":"user.signed_in","source":"someone.else","detail":{DETAIL}}}"#
        );
        assert!(matches!(plan(&message(&foreign)), Plan::Keep(_)));
    }

    #[test]
    fn a_relay_letter_without_an_entry_is_kept_and_an_unparsable_body_is_unreadable() {
        let undecodable = r#"{"kind":"relay","rawImage":{"eventId":{"S":"x"}},"stage":"decode","errorCode":"undecodable","message":"missing field `detail`","attempts":0,"firstFailureAt":"2026-11-29T11:46:06.123Z","lastFailureAt":"2026-11-29T11:46:06.123Z"}"#;
        assert!(matches!(plan(&message(undecodable)), Plan::Keep(_)));
        assert!(matches!(plan(&message("{oops")), Plan::Unreadable(_)));
    }

    #[test]
    fn a_stream_batch_is_resolved_through_a_widened_window() {
        let body = r#"{"requestContext":{"condition":"RetryAttemptsExhausted"},"DDBStreamBatchInfo":{"shardId":"s","startSequenceNumber":"1","approximateArrivalOfFirstRecord":"2026-11-29T11:46:06Z","approximateArrivalOfLastRecord":"2026-11-29T11:46:07Z"}}"#;
        let Plan::Window { window, .. } = plan(&message(body)) else {
            panic!("should resolve a window");
        };
        assert_eq!(window.0.to_string(), "2026-11-29T11:45:36.000Z");
        assert_eq!(window.1.to_string(), "2026-11-29T11:46:37.000Z");
    }

    #[test]
    fn only_a_run_that_handled_everything_it_planned_succeeds() {
        let done = Summary {
            published: 3,
            skipped: 2,
            ..Summary::default()
        };
        assert!(done.all_handled(), "skipped messages were not planned");
        for unfinished in [
            Summary {
                kept: 1,
                ..done.clone()
            },
            Summary {
                unreadable: 1,
                ..done.clone()
            },
            Summary {
                not_received: 1,
                ..done.clone()
            },
        ] {
            assert!(!unfinished.all_handled(), "{unfinished:?}");
        }
    }

    #[test]
    fn the_visibility_covers_a_batch_waiting_for_its_turn_and_stays_within_the_sqs_limit() {
        assert_eq!(run_visibility(None), Duration::from_mins(6));
        assert_eq!(run_visibility(Some(1.0)), Duration::from_secs(370));
        assert_eq!(run_visibility(Some(0.001)), Duration::from_secs(10_360));
        assert_eq!(run_visibility(Some(1e-9)), MAX_VISIBILITY);
    }
}
