//! `outboxctl dlq stats | list | show`: read the DLQ without consuming it.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use auth_events_core::contract::Timestamp;
use auth_events_core::dead_letter::{DeadLetter, DeadLetterKind};
use auth_events_core::ports::OutboxStore;
use auth_events_core::redact::{PiiKey, redact_json};
use serde::Serialize;
use serde_json::Value;

use crate::cli::{DeleteArgs, DlqArgs, DlqCommand, Global, ListArgs, ShowArgs};
use crate::outbox::{OutboxView, WINDOW_LIMIT, outbox_table, pending_in_window, stream_window};
use crate::output::{age, print_json, redact_text, table, truncate};
use crate::queue::{DlqMessage, PEEK_CAP};
use crate::resources::Resources;

/// One message as `list` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub message_id: String,
    pub kind: &'static str,
    pub error_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<u64>,
    pub receive_count: u32,
    pub event_ids: Vec<String>,
    pub summary: String,
}

impl MessageView {
    pub fn of(message: &DlqMessage, now: Timestamp) -> Self {
        Self {
            message_id: message.id.clone(),
            kind: message.kind_label(),
            error_code: message.error_code(),
            sent_at: message.sent_at,
            age_seconds: message.age(now).map(|d| d.as_secs()),
            receive_count: message.receive_count,
            event_ids: message
                .event_ids()
                .iter()
                .map(ToString::to_string)
                .collect(),
            summary: summary(message),
        }
    }
}

/// The user an envelope's event is about; user ids are opaque, unlike
/// e-mail addresses.
fn user_of(detail: &Value) -> &str {
    detail.get("userId").and_then(Value::as_str).unwrap_or("?")
}

/// One line on what the message is about.
pub fn summary(message: &DlqMessage) -> String {
    match &message.letter {
        Ok(DeadLetter::Relay(letter)) => {
            format!("{}: {}", stage_name(letter.stage), letter.message)
        }
        Ok(DeadLetter::StreamBatch { info, .. }) => format!(
            "{} records of {} from sequence {}, arrived {}..{}",
            info.batch_size,
            info.shard_id,
            info.start_sequence_number,
            info.approximate_arrival_of_first_record,
            info.approximate_arrival_of_last_record
        ),
        Ok(DeadLetter::BusEvent(envelope)) => format!(
            "{} of user {}",
            envelope.detail_type,
            user_of(&envelope.detail)
        ),
        Ok(DeadLetter::LambdaAsync { event, error, .. }) => format!(
            "{} of user {}: consumer failed with {}",
            event.detail_type,
            user_of(&event.detail),
            error.as_deref().unwrap_or("an unknown error")
        ),
        Err(unreadable) => unreadable.0.clone(),
    }
}

pub async fn run(global: &Global, args: &DlqArgs) -> Result<ExitCode> {
    let resources = Resources::new(global, &args.resources).await?;
    match &args.command {
        DlqCommand::Stats => stats(global, &resources).await,
        DlqCommand::List(list_args) => list(global, &resources, list_args).await,
        DlqCommand::Show(show_args) => show(global, &resources, show_args).await,
        DlqCommand::Delete(delete_args) => delete(&resources, delete_args).await,
    }
}

/// Deletes one message the operator has read and judged unpublishable.
async fn delete(resources: &Resources, args: &DeleteArgs) -> Result<ExitCode> {
    let wanted = args.id.trim();
    if !args.yes {
        bail!(
            "deleting message {wanted} loses it for good: read it with `outboxctl dlq show {wanted}`, then add --yes"
        );
    }
    let dlq = resources.dlq().await?;
    let peek = dlq.peek(|m| m.id == wanted).await?;
    let Some(message) = peek.messages.iter().find(|m| m.id == wanted) else {
        bail!(
            "message {wanted} is not in DLQ {} (deleted, or in flight with another consumer): `outboxctl dlq list` shows the IDs",
            dlq.url()
        );
    };
    // The peek made it visible again with this receipt handle still the
    // latest, so the delete removes exactly this message.
    dlq.delete(message).await?;
    println!(
        "deleted message {wanted} ({}, {})",
        message.kind_label(),
        message.error_code()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatsView {
    queue: String,
    /// Messages this peek read.
    messages: usize,
    /// The queue's own (approximate) counters, read before the peek.
    approximate_visible: u64,
    in_flight_elsewhere: u64,
    delayed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest_sent_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest_age_seconds: Option<u64>,
    by_kind: BTreeMap<&'static str, usize>,
    by_error_code: BTreeMap<String, usize>,
    /// The peek stopped at its cap; the counts cover only what it read.
    truncated: bool,
}

async fn stats(global: &Global, resources: &Resources) -> Result<ExitCode> {
    let dlq = resources.dlq().await?;
    let counts = dlq.counts().await?;
    let peek = dlq.peek(|_| false).await?;
    let now = Timestamp::now();
    let mut by_kind: BTreeMap<&'static str, usize> = DeadLetterKind::ALL
        .iter()
        .map(|kind| (kind.as_str(), 0))
        .chain([("unreadable", 0)])
        .collect();
    let mut by_error_code = BTreeMap::new();
    for message in &peek.messages {
        *by_kind.entry(message.kind_label()).or_default() += 1;
        *by_error_code.entry(message.error_code()).or_default() += 1;
    }
    let oldest = peek.messages.iter().filter_map(|m| m.sent_at).min();
    let view = StatsView {
        queue: dlq.url().to_owned(),
        messages: peek.messages.len(),
        approximate_visible: counts.visible,
        in_flight_elsewhere: counts.in_flight,
        delayed: counts.delayed,
        oldest_sent_at: oldest,
        oldest_age_seconds: oldest
            .and_then(|at| (now.as_datetime() - at.as_datetime()).to_std().ok())
            .map(|d| d.as_secs()),
        by_kind,
        by_error_code,
        truncated: peek.truncated,
    };
    if global.json {
        print_json(&view)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("DLQ {}", view.queue);
    let capped = if view.truncated {
        format!(" (stopped reading at {PEEK_CAP}; the counts below cover those)")
    } else {
        String::new()
    };
    println!("messages     {}{capped}", view.messages);
    if view.in_flight_elsewhere > 0 || view.delayed > 0 {
        println!(
            "in flight    {} (being received by someone else: a redrive, or a peek)",
            view.in_flight_elsewhere + view.delayed
        );
    }
    match (view.oldest_sent_at, view.oldest_age_seconds) {
        (Some(at), Some(seconds)) => println!(
            "oldest       {} (arrived {at})",
            age(Duration::from_secs(seconds))
        ),
        _ => println!("oldest       -"),
    }
    if view.messages == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let mut kinds = table(["KIND", "MESSAGES"]);
    for (kind, count) in &view.by_kind {
        kinds.add_row([(*kind).to_owned(), count.to_string()]);
    }
    println!("{kinds}");
    let mut codes = table(["ERROR CODE", "MESSAGES"]);
    for (code, count) in &view.by_error_code {
        codes.add_row([truncate(code, 60), count.to_string()]);
    }
    println!("{codes}");
    Ok(ExitCode::SUCCESS)
}

async fn list(global: &Global, resources: &Resources, args: &ListArgs) -> Result<ExitCode> {
    let dlq = resources.dlq().await?;
    let peek = dlq.peek(|_| false).await?;
    let now = Timestamp::now();
    let matching: Vec<&DlqMessage> = peek
        .messages
        .iter()
        .filter(|m| args.kind.is_none_or(|k| m.kind_label() == k.0.as_str()))
        .filter(|m| {
            args.error_code
                .as_deref()
                .is_none_or(|code| m.error_code() == code)
        })
        .collect();
    let shown: Vec<MessageView> = matching
        .iter()
        .take(args.limit)
        .map(|m| MessageView::of(m, now))
        .collect();
    if global.json {
        print_json(&serde_json::json!({
            "queue": dlq.url(),
            "matching": matching.len(),
            "messages": shown,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if shown.is_empty() {
        println!("no matching messages in DLQ {}", dlq.url());
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = table([
        "MESSAGE ID",
        "AGE",
        "KIND",
        "ERROR CODE",
        "EVENT",
        "SUMMARY",
    ]);
    for view in &shown {
        rows.add_row([
            view.message_id.clone(),
            view.age_seconds
                .map(|s| age(Duration::from_secs(s)))
                .unwrap_or_default(),
            view.kind.to_owned(),
            truncate(&view.error_code, 30),
            view.event_ids.join(" "),
            truncate(&view.summary, 60),
        ]);
    }
    println!("{rows}");
    println!(
        "{} of {} matching messages (oldest first); `outboxctl dlq show MESSAGE_ID` for one in full",
        shown.len(),
        matching.len()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ShowView {
    message: MessageView,
    /// The body, parsed when it is JSON, with e-mail addresses hashed.
    body: Value,
    /// The message's string attributes.
    attributes: BTreeMap<String, String>,
    /// For a stream batch: the `createdAt` range its pending items are
    /// looked up in.
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<[Timestamp; 2]>,
    /// For a stream batch: false when the lookup stopped at its limit, so
    /// the window may hold more pending items than `outbox` lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    window_complete: Option<bool>,
    /// The outbox items of its events (for a stream batch: the pending
    /// items in its window).
    outbox: Vec<OutboxView>,
}

async fn show(global: &Global, resources: &Resources, args: &ShowArgs) -> Result<ExitCode> {
    let key = crate::cli::pii_key()?;
    let dlq = resources.dlq().await?;
    let store = resources.outbox().await?;
    let wanted = args.id.trim();
    let peek = dlq.peek(|m| m.id == wanted).await?;
    let Some(message) = peek.messages.iter().find(|m| m.id == wanted) else {
        bail!(
            "message {wanted} is not in DLQ {} (deleted, or in flight with another consumer): `outboxctl dlq list` shows the IDs",
            dlq.url()
        );
    };
    let now = Timestamp::now();
    let mut window = None;
    let mut window_complete = None;
    let mut outbox = Vec::new();
    if let Ok(DeadLetter::StreamBatch { info, .. }) = &message.letter {
        let range = stream_window(info);
        let items = pending_in_window(&store, range).await?;
        outbox.extend(items.records.iter().map(|r| OutboxView::of(r, now)));
        window = Some([range.0, range.1]);
        window_complete = Some(items.complete);
    }
    for event_id in message.event_ids() {
        let record = store
            .get(event_id)
            .await
            .with_context(|| format!("reading outbox item {event_id} of {}", store.table()))?;
        outbox.push(record.map_or_else(
            || OutboxView::missing(event_id),
            |r| OutboxView::of(&r, now),
        ));
    }
    let mut body =
        serde_json::from_str(&message.body).unwrap_or_else(|_| Value::String(message.body.clone()));
    redact_json(&mut body, key.as_ref());
    let view = ShowView {
        message: MessageView::of(message, now),
        body,
        attributes: message.attributes.clone(),
        window,
        window_complete,
        outbox,
    };
    if global.json {
        print_json(&view)?;
    } else {
        print_show(&view, message, key.as_ref());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_show(view: &ShowView, message: &DlqMessage, key: Option<&PiiKey>) {
    let m = &view.message;
    let mut fields: Vec<(&str, String)> = vec![("message id", m.message_id.clone())];
    if let (Some(at), Some(seconds)) = (m.sent_at, m.age_seconds) {
        fields.push((
            "arrived",
            format!("{at} ({} ago)", age(Duration::from_secs(seconds))),
        ));
    }
    fields.push((
        "received",
        format!("{} times (every peek counts)", m.receive_count),
    ));
    fields.push(("kind", m.kind.to_owned()));
    fields.push(("error code", m.error_code.clone()));
    fields.extend(detail_rows(message, key));
    for (name, value) in fields {
        println!("{name:<17}{value}");
    }
    if let Some([from, to]) = view.window {
        println!("\npending outbox items created {from} .. {to}:");
        if view.window_complete == Some(false) {
            println!(
                "(the lookup stopped at {WINDOW_LIMIT} older pending items, so this list may be short; `outboxctl outbox pending` lists pending items)"
            );
        } else if view.outbox.is_empty() {
            println!("none: already published (the sweep or a retry got them)");
            return;
        }
    } else if view.outbox.is_empty() {
        return;
    } else {
        println!("\noutbox item:");
    }
    println!("{}", outbox_table(&view.outbox));
}

/// The decoded message, field by field, with e-mail addresses hashed.
fn detail_rows(message: &DlqMessage, key: Option<&PiiKey>) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    match &message.letter {
        Ok(DeadLetter::Relay(letter)) => {
            if let Some(id) = letter.event_id {
                rows.push(("event id", id.to_string()));
            }
            rows.push(("stage", stage_name(letter.stage)));
            rows.push(("attempts", letter.attempts.to_string()));
            rows.push(("first failure", letter.first_failure_at.to_string()));
            rows.push(("last failure", letter.last_failure_at.to_string()));
            rows.push(("reason", letter.message.clone()));
            if let Some(sequence) = &letter.sequence_number {
                rows.push(("sequence number", sequence.clone()));
            }
            if let Some(entry) = &letter.entry {
                rows.push((
                    "event",
                    format!("{} from {}", entry.detail_type, entry.source),
                ));
                rows.push(("detail", redact_text(&entry.detail, key)));
            }
            if let Some(cut) = &letter.cut {
                rows.push(("cut", cut.clone()));
            }
            match &letter.raw_image {
                // A cut letter keeps the start of the image's JSON as text.
                Some(Value::String(start)) => {
                    rows.push(("raw image (start)", redact_text(start, key)));
                }
                Some(image) => {
                    let mut image = image.clone();
                    redact_json(&mut image, key);
                    rows.push(("raw image", image.to_string()));
                }
                None => {}
            }
        }
        Ok(DeadLetter::StreamBatch { info, condition }) => {
            rows.push(("condition", condition.clone().unwrap_or_default()));
            rows.push(("shard", info.shard_id.clone()));
            rows.push((
                "sequence numbers",
                format!(
                    "{} .. {}",
                    info.start_sequence_number,
                    info.end_sequence_number.as_deref().unwrap_or("?")
                ),
            ));
            rows.push(("records", info.batch_size.to_string()));
            rows.push((
                "stream arrival",
                format!(
                    "{} .. {}",
                    info.approximate_arrival_of_first_record,
                    info.approximate_arrival_of_last_record
                ),
            ));
            if let Some(arn) = &info.stream_arn {
                rows.push(("stream", arn.clone()));
            }
        }
        Ok(DeadLetter::BusEvent(envelope)) => {
            rows.push(("envelope id", envelope.id.clone().unwrap_or_default()));
            rows.push((
                "event",
                format!("{} from {}", envelope.detail_type, envelope.source),
            ));
            rows.push(("detail", redact_text(&envelope.detail.to_string(), key)));
            for (name, attribute) in [
                ("rule", "RULE_ARN"),
                ("target", "TARGET_ARN"),
                ("error message", "ERROR_MESSAGE"),
            ] {
                if let Some(value) = message.attributes.get(attribute) {
                    rows.push((name, value.clone()));
                }
            }
        }
        Ok(DeadLetter::LambdaAsync {
            event,
            condition,
            error,
        }) => {
            rows.push(("condition", condition.clone().unwrap_or_default()));
            rows.push(("function error", error.clone().unwrap_or_default()));
            rows.push(("envelope id", event.id.clone().unwrap_or_default()));
            rows.push((
                "event",
                format!("{} from {}", event.detail_type, event.source),
            ));
            rows.push(("detail", redact_text(&event.detail.to_string(), key)));
        }
        Err(unreadable) => {
            rows.push(("why unreadable", unreadable.0.clone()));
            rows.push(("body", truncate(&redact_text(&message.body, key), 400)));
        }
    }
    rows
}

fn stage_name(stage: auth_events_core::dead_letter::FailureStage) -> String {
    serde_json::to_value(stage)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
