//! Reading the DLQ: receive, classify, release and delete messages.
//!
//! Peeking is a receive that hides each message for a short visibility
//! timeout, repeated until the queue returns nothing, followed by a
//! `ChangeMessageVisibility` to 0 for everything received, so every message
//! is visible again at once and nothing is consumed.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use auth_events_aws::errors::classify;
use auth_events_core::contract::{EventId, Timestamp};
use auth_events_core::dead_letter::{ATTR_ERROR_CODE, DeadLetter, Unreadable};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};

/// How long a peek hides what it has received; if the process dies before
/// releasing, the messages come back by themselves after this.
pub const PEEK_VISIBILITY: Duration = Duration::from_mins(1);

/// The most messages one peek reads; stats say so when the queue holds more.
pub const PEEK_CAP: usize = 10_000;

/// The message attribute EventBridge sets on a target-DLQ message.
pub const EVENTBRIDGE_ERROR_CODE: &str = "ERROR_CODE";

/// SQS allows at most 10 entries per batch call and per receive.
const SQS_BATCH: usize = 10;

/// One received DLQ message, classified.
#[derive(Debug, Clone)]
pub struct DlqMessage {
    pub id: String,
    pub receipt_handle: String,
    pub body: String,
    pub sent_at: Option<Timestamp>,
    pub receive_count: u32,
    /// The message's string attributes (`kind`, `errorCode`, `ERROR_CODE`, …).
    pub attributes: BTreeMap<String, String>,
    pub letter: Result<DeadLetter, Unreadable>,
}

impl DlqMessage {
    fn from_sdk(message: aws_sdk_sqs::types::Message) -> Option<Self> {
        let system = message.attributes();
        let system_value = |name: MessageSystemAttributeName| {
            system.and_then(|attributes| attributes.get(&name)).cloned()
        };
        let sent_at = system_value(MessageSystemAttributeName::SentTimestamp)
            .and_then(|millis| millis.parse().ok())
            .and_then(Timestamp::from_millis);
        let receive_count = system_value(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|count| count.parse().ok())
            .unwrap_or(0);
        let attributes = message
            .message_attributes()
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| Some((name.clone(), value.string_value()?.to_owned())))
            .collect();
        let body = message.body.unwrap_or_default();
        let letter = DeadLetter::parse(&body);
        Some(Self {
            id: message.message_id?,
            receipt_handle: message.receipt_handle?,
            body,
            sent_at,
            receive_count,
            attributes,
            letter,
        })
    }

    /// The kind's name, or `unreadable`.
    pub fn kind_label(&self) -> &'static str {
        match &self.letter {
            Ok(letter) => letter.kind().as_str(),
            Err(_) => "unreadable",
        }
    }

    /// The error code to group by: the relay's `errorCode` attribute, else
    /// what the body says (EventBridge's `ERROR_CODE` attribute for a
    /// target-DLQ message).
    pub fn error_code(&self) -> String {
        if let Some(code) = self.attributes.get(ATTR_ERROR_CODE) {
            return code.clone();
        }
        match &self.letter {
            Ok(letter) => letter.error_code(
                self.attributes
                    .get(EVENTBRIDGE_ERROR_CODE)
                    .map(String::as_str),
            ),
            Err(_) => "unreadable".to_owned(),
        }
    }

    /// The events the message names directly (none for a stream batch,
    /// which names only sequence numbers).
    pub fn event_ids(&self) -> Vec<EventId> {
        match &self.letter {
            Ok(DeadLetter::Relay(letter)) => letter
                .event_id
                .or_else(|| letter.entry.as_ref().and_then(|entry| entry.event_id))
                .into_iter()
                .collect(),
            Ok(
                DeadLetter::BusEvent(envelope)
                | DeadLetter::LambdaAsync {
                    event: envelope, ..
                },
            ) => envelope
                .detail
                .get("eventId")
                .and_then(serde_json::Value::as_str)
                .and_then(|id| id.parse().ok())
                .into_iter()
                .collect(),
            Ok(DeadLetter::StreamBatch { .. }) | Err(_) => Vec::new(),
        }
    }

    pub fn age(&self, now: Timestamp) -> Option<Duration> {
        self.sent_at
            .and_then(|sent| (now.as_datetime() - sent.as_datetime()).to_std().ok())
    }
}

/// The queue's own counters, which include messages in flight elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueCounts {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

/// What a peek saw.
#[derive(Debug, Default)]
pub struct Peek {
    pub messages: Vec<DlqMessage>,
    /// The peek stopped at [`PEEK_CAP`] with messages still coming.
    pub truncated: bool,
}

#[derive(Debug, Clone)]
pub struct Dlq {
    client: aws_sdk_sqs::Client,
    url: String,
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

impl Dlq {
    pub fn new(client: aws_sdk_sqs::Client, url: String) -> Self {
        Self { client, url }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Receives up to `max` messages (at most 10), hiding them for
    /// `visibility`; waits up to a second when the queue looks empty.
    pub async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<DlqMessage>> {
        let max = i32::try_from(max.clamp(1, SQS_BATCH)).unwrap_or(1);
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max)
            .visibility_timeout(seconds(visibility))
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| classify("ReceiveMessage", e))
            .with_context(|| format!("receiving from DLQ {}", self.url))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(DlqMessage::from_sdk)
            .collect())
    }

    /// Makes the messages visible again now, through the receipt handles of
    /// the receives that returned them.
    pub async fn release<'a>(
        &self,
        messages: impl IntoIterator<Item = &'a DlqMessage>,
    ) -> Result<()> {
        let handles: Vec<&str> = messages
            .into_iter()
            .map(|m| m.receipt_handle.as_str())
            .collect();
        let mut failed = Vec::new();
        for chunk in handles.chunks(SQS_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(index, handle)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(*handle)
                        .visibility_timeout(0)
                        .build()
                        .context("building a ChangeMessageVisibility entry")
                })
                .collect::<Result<Vec<_>>>()?;
            let output = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("ChangeMessageVisibilityBatch", e))
                .with_context(|| format!("making messages of DLQ {} visible again", self.url))?;
            failed.extend(
                output
                    .failed()
                    .iter()
                    .map(|f| format!("{}: {}", f.code(), f.message().unwrap_or_default())),
            );
        }
        if !failed.is_empty() {
            bail!(
                "{} messages of DLQ {} stay hidden until their visibility timeout ends: {}",
                failed.len(),
                self.url,
                failed.join("; ")
            );
        }
        Ok(())
    }

    /// Deletes the message through the receipt handle of the receive that
    /// returned it.
    pub async fn delete(&self, message: &DlqMessage) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&message.receipt_handle)
            .send()
            .await
            .map_err(|e| classify("DeleteMessage", e))
            .with_context(|| format!("deleting message {} from DLQ {}", message.id, self.url))?;
        Ok(())
    }

    /// Reads messages without consuming them, until the queue returns
    /// nothing, `stop` says so, or [`PEEK_CAP`] is reached; then makes
    /// every received message visible again at once.
    pub async fn peek(&self, mut stop: impl FnMut(&DlqMessage) -> bool) -> Result<Peek> {
        let mut peek = Peek::default();
        let mut seen = HashSet::new();
        // Standard queues may hand out a message twice; every copy's
        // handle is released, only the first is kept.
        let mut duplicates = Vec::new();
        let outcome: Result<()> = async {
            loop {
                let batch = self.receive(SQS_BATCH, PEEK_VISIBILITY).await?;
                if batch.is_empty() {
                    return Ok(());
                }
                // The whole batch is kept (and so released), even past the
                // message `stop` was waiting for.
                let mut done = false;
                for message in batch {
                    if !seen.insert(message.id.clone()) {
                        duplicates.push(message);
                        continue;
                    }
                    done |= stop(&message);
                    peek.messages.push(message);
                }
                if done {
                    return Ok(());
                }
                if peek.messages.len() >= PEEK_CAP {
                    peek.truncated = true;
                    return Ok(());
                }
            }
        }
        .await;
        let released = self.release(peek.messages.iter().chain(&duplicates)).await;
        outcome?;
        released?;
        peek.messages
            .sort_by(|a, b| a.sent_at.cmp(&b.sent_at).then(a.id.cmp(&b.id)));
        Ok(peek)
    }

    pub async fn counts(&self) -> Result<QueueCounts> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| classify("GetQueueAttributes", e))
            .with_context(|| format!("reading the counters of DLQ {}", self.url))?;
        let value = |name: QueueAttributeName| {
            output
                .attributes()
                .and_then(|attributes| attributes.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(QueueCounts {
            visible: value(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: value(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: value(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        })
    }
}
