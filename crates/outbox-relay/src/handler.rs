//! The function's entry point: a DynamoDB stream batch of the outbox table,
//! or the sweep schedule, both published through the core relay engine.

use std::fmt;
use std::time::{Duration, SystemTime};

use auth_events_aws::errors::cause_chain;
use auth_events_core::contract::Timestamp;
use auth_events_core::dead_letter::{FailureStage, codes};
use auth_events_core::outbox::{ATTR_EVENT_ID, DecodeError, OutboxRecord};
use auth_events_core::ports::{DeadLetterSink, OutboxStore, PortError, Publisher};
use auth_events_core::relay::{Candidate, Poison, Relay, RelayReport};
use aws_lambda_events::event::dynamodb;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, error, info, info_span, warn};

use crate::config::HandlerConfig;
use crate::metrics::{self, RelayMetrics};

/// The EventBridge scheduler's fixed `source` and `detail-type`.
pub const SCHEDULE_SOURCE: &str = "aws.events";
pub const SCHEDULE_DETAIL_TYPE: &str = "Scheduled Event";

/// The time budget when the invocation carries no deadline: a hand-built
/// [`Context`], as local drivers and tests use, has a deadline of 0, which
/// would otherwise leave no time at all.
pub const BUDGET_WITHOUT_DEADLINE: Duration = Duration::from_secs(30);

/// The stream's `eventName` of a new item; MODIFY (our own "published"
/// updates) and REMOVE (TTL deletes) carry nothing to publish.
const INSERT: &str = "INSERT";

/// What the function answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Response {
    Stream(DynamoDbEventResponse),
    Sweep(SweepSummary),
}

/// A sweep's answer: enough to read the outcome in the console or a log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepSummary {
    pub found: usize,
    pub published: usize,
    pub dead_lettered: usize,
    pub still_failing: usize,
    /// Age of the oldest pending item the sweep found, before publishing it.
    pub oldest_pending_age_seconds: u64,
}

/// What one stream batch came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamOutcome {
    pub response: DynamoDbEventResponse,
    pub relay: RelayReport,
    pub inserts: usize,
    /// MODIFY, REMOVE and any other non-INSERT record.
    pub ignored: usize,
    /// Undecodable or contract-invalid INSERTs.
    pub poison: usize,
}

/// Why an invocation failed as a whole. Each variant has a stable
/// `errorType`, which shows in CloudWatch and in on-failure records.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(
        "the payload is neither a DynamoDB stream batch (`Records`) nor a scheduled event (`detail-type`)"
    )]
    UnknownEvent,
    #[error(
        "only the sweep schedule may invoke this function through EventBridge, not source {event_source:?} with detail-type {detail_type:?}"
    )]
    UnexpectedEventBridgeEvent {
        event_source: Option<String>,
        detail_type: String,
    },
    #[error("malformed event payload")]
    Malformed(#[source] serde_json::Error),
    #[error("the sweep could not list pending outbox items")]
    Sweep(#[source] PortError),
}

impl HandlerError {
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::UnknownEvent | HandlerError::UnexpectedEventBridgeEvent { .. } => {
                "UnknownEvent"
            }
            HandlerError::Malformed(_) => "MalformedEvent",
            HandlerError::Sweep(_) => "SweepFailed",
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: cause_chain(&error),
        }
    }
}

/// What invoked the function, told apart in the same single pass over the
/// payload that decodes it: a stream batch of 100 is ~70 KB of JSON, and
/// going through `serde_json::Value` first would cost as much again.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    Stream(dynamodb::Event),
    Sweep,
    /// An EventBridge event other than the sweep schedule.
    OtherEventBridge {
        event_source: Option<String>,
        detail_type: String,
    },
    /// Neither `Records` nor `detail-type`.
    Unknown,
}

impl Invocation {
    /// For callers that hold the payload as a JSON value (local drivers).
    pub fn parse(payload: Value) -> Result<Self, HandlerError> {
        serde_json::from_value(payload).map_err(HandlerError::Malformed)
    }

    /// For callers that hold the payload's bytes.
    pub fn from_slice(payload: &[u8]) -> Result<Self, HandlerError> {
        serde_json::from_slice(payload).map_err(HandlerError::Malformed)
    }
}

impl<'de> Deserialize<'de> for Invocation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(InvocationVisitor)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum TopLevelField {
    Records,
    #[serde(rename = "detail-type")]
    DetailType,
    #[serde(rename = "source")]
    Source,
    #[serde(other)]
    Other,
}

struct InvocationVisitor;

impl<'de> Visitor<'de> for InvocationVisitor {
    type Value = Invocation;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a DynamoDB stream batch or an EventBridge scheduled event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Invocation, A::Error> {
        let mut records = None;
        let mut detail_type: Option<String> = None;
        let mut event_source: Option<String> = None;
        while let Some(field) = map.next_key()? {
            match field {
                TopLevelField::Records => records = Some(map.next_value()?),
                TopLevelField::DetailType => detail_type = Some(map.next_value()?),
                TopLevelField::Source => event_source = map.next_value()?,
                TopLevelField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(records) = records {
            let mut batch = dynamodb::Event::default();
            batch.records = records;
            return Ok(Invocation::Stream(batch));
        }
        Ok(match detail_type {
            Some(detail_type)
                if detail_type == SCHEDULE_DETAIL_TYPE
                    && event_source.as_deref() == Some(SCHEDULE_SOURCE) =>
            {
                Invocation::Sweep
            }
            Some(detail_type) => Invocation::OtherEventBridge {
                event_source,
                detail_type,
            },
            None => Invocation::Unknown,
        })
    }
}

/// The relay engine plus what the handler needs around it; built once per
/// process and shared by every invocation.
#[derive(Debug)]
pub struct Handler<P, S, D> {
    relay: Relay<P, S, D>,
    config: HandlerConfig,
}

impl<P: Publisher, S: OutboxStore, D: DeadLetterSink> Handler<P, S, D> {
    pub fn new(relay: Relay<P, S, D>, config: HandlerConfig) -> Self {
        Self { relay, config }
    }

    pub fn relay(&self) -> &Relay<P, S, D> {
        &self.relay
    }

    /// The Lambda entry point; the runtime decodes the payload straight into
    /// an [`Invocation`].
    pub async fn handle(&self, event: LambdaEvent<Invocation>) -> Result<Response, HandlerError> {
        let (invocation, context) = event.into_parts();
        let started = Instant::now();
        let deadline = self.deadline(&context, started);
        match invocation {
            Invocation::Stream(batch) => {
                let outcome = self.process_stream(batch, deadline).await;
                let line = metrics::stream_line(
                    &self.config.function_name,
                    Timestamp::now().millis(),
                    &stream_metrics(&outcome, started.elapsed()),
                );
                self.emit(&line);
                Ok(Response::Stream(outcome.response))
            }
            Invocation::Sweep => {
                let (summary, relay) = self.sweep(deadline).await?;
                let line = metrics::sweep_line(
                    &self.config.function_name,
                    Timestamp::now().millis(),
                    &relay_metrics(&relay, 0, started.elapsed()),
                    Duration::from_secs(summary.oldest_pending_age_seconds),
                );
                self.emit(&line);
                Ok(Response::Sweep(summary))
            }
            Invocation::OtherEventBridge {
                event_source,
                detail_type,
            } => Err(HandlerError::UnexpectedEventBridgeEvent {
                event_source,
                detail_type,
            }),
            Invocation::Unknown => Err(HandlerError::UnknownEvent),
        }
    }

    fn emit(&self, line: &metrics::Emf) {
        if self.config.emit_metrics {
            metrics::emit(line);
        }
    }

    /// The same, for callers that hold the payload as JSON (local drivers).
    pub async fn handle_json(&self, event: LambdaEvent<Value>) -> Result<Response, HandlerError> {
        let (payload, context) = event.into_parts();
        let invocation = Invocation::parse(payload)?;
        self.handle(LambdaEvent::new(invocation, context)).await
    }

    /// When publishing must stop: the invocation's deadline less the safety
    /// margin.
    pub fn deadline(&self, context: &Context, now: Instant) -> Instant {
        if context.deadline == 0 {
            return now + BUDGET_WITHOUT_DEADLINE;
        }
        let remaining = context
            .deadline()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        now + remaining.saturating_sub(self.config.safety_margin)
    }

    /// Publishes a stream batch's INSERTs; answers with the lowest sequence
    /// number still failing, where Lambda will resume the shard.
    pub async fn process_stream(&self, batch: dynamodb::Event, deadline: Instant) -> StreamOutcome {
        let size = batch.records.len();
        let mut sequence_numbers = Vec::with_capacity(size);
        let mut candidates = Vec::with_capacity(size);
        let mut poison = Vec::new();
        let mut ignored = 0;
        for (position, record) in batch.records.into_iter().enumerate() {
            let sequence_number = record.change.sequence_number;
            let span = info_span!(
                "record",
                event_id = key_event_id(&record.change.keys).unwrap_or_default(),
                sequence_number = sequence_number.as_deref().unwrap_or_default(),
            );
            let _entered = span.enter();
            sequence_numbers.push(sequence_number.clone());
            if record.event_name != INSERT {
                debug!(event_name = %record.event_name, "not an insert; ignored");
                ignored += 1;
                continue;
            }
            match classify(position, sequence_number, &record.change.new_image) {
                Ok(candidate) => candidates.push(candidate),
                Err(bad) => {
                    // Decoder messages can quote attribute values, and the
                    // image holds an email: the reason goes to the DLQ only.
                    warn!(stage = ?bad.stage, error_code = bad.error_code, "poison record; dead-lettering it");
                    poison.push(*bad);
                }
            }
        }

        let inserts = candidates.len() + poison.len();
        let poison_count = poison.len();
        let mut report = RelayReport::default();
        self.relay.dead_letter_poison(poison, &mut report).await;
        self.relay.publish(candidates, deadline, &mut report).await;

        let mut response = DynamoDbEventResponse::default();
        if let Some(position) = report.lowest_failed_position() {
            let sequence_number = sequence_numbers.get(position).cloned().flatten();
            if sequence_number.is_none() {
                // Lambda reads a failure without an identifier as the whole
                // batch failing, which still loses nothing.
                error!(
                    position,
                    "the failing record has no sequence number; the whole batch will be retried"
                );
            }
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = sequence_number;
            response.batch_item_failures.push(failure);
        }

        info!(
            records = size,
            inserts,
            ignored,
            poison = poison_count,
            published = report.published,
            resent = report.resent_entries,
            dead_lettered = report.dead_lettered,
            still_failing = report.failed_positions.len(),
            retry_from = response
                .batch_item_failures
                .first()
                .and_then(|f| f.item_identifier.as_deref())
                .unwrap_or_default(),
            "stream batch relayed"
        );
        StreamOutcome {
            response,
            relay: report,
            inserts,
            ignored,
            poison: poison_count,
        }
    }

    /// Publishes pending items the stream has not delivered in time.
    pub async fn sweep(
        &self,
        deadline: Instant,
    ) -> Result<(SweepSummary, RelayReport), HandlerError> {
        let report = self
            .relay
            .sweep(
                self.config.sweep_older_than,
                self.config.sweep_max_items,
                deadline,
            )
            .await
            .map_err(HandlerError::Sweep)?;
        let oldest_pending_age_seconds = report
            .oldest_pending
            .and_then(|oldest| {
                (Timestamp::now().as_datetime() - oldest.as_datetime())
                    .to_std()
                    .ok()
            })
            .map_or(0, |age| age.as_secs());
        let summary = SweepSummary {
            found: report.found,
            published: report.relay.published,
            dead_lettered: report.relay.dead_lettered,
            still_failing: report.relay.failed_positions.len(),
            oldest_pending_age_seconds,
        };
        info!(
            found = summary.found,
            published = summary.published,
            resent = report.relay.resent_entries,
            dead_lettered = summary.dead_lettered,
            still_failing = summary.still_failing,
            oldest_pending_age_seconds,
            "sweep done"
        );
        Ok((summary, report.relay))
    }
}

/// An INSERT's image as a publishable candidate, or as poison with the
/// reason it can never be published.
fn classify(
    position: usize,
    sequence_number: Option<String>,
    image: &serde_dynamo::Item,
) -> Result<Candidate, Box<Poison>> {
    // Decoding consumes its item; the original stays for the DLQ in case
    // decoding fails.
    match OutboxRecord::decode_valid(image.clone()) {
        Ok(record) => Ok(Candidate {
            position,
            sequence_number,
            record,
        }),
        Err(error) => {
            let (stage, error_code) = match error {
                DecodeError::Shape(_) => (FailureStage::Decode, codes::UNDECODABLE),
                DecodeError::Contract(_) => (FailureStage::Contract, codes::CONTRACT_INVALID),
            };
            Err(Box::new(Poison {
                position,
                sequence_number,
                event_id: key_event_id(image).and_then(|id| id.parse().ok()),
                raw_image: serde_json::to_value(image).unwrap_or(Value::Null),
                stage,
                error_code,
                message: error.to_string(),
            }))
        }
    }
}

/// The item key, for logs: readable even when the rest of the image is not.
fn key_event_id(keys: &serde_dynamo::Item) -> Option<&str> {
    match keys.get(ATTR_EVENT_ID) {
        Some(serde_dynamo::AttributeValue::S(id)) => Some(id),
        _ => None,
    }
}

fn relay_metrics(report: &RelayReport, ignored: usize, duration: Duration) -> RelayMetrics {
    RelayMetrics {
        published: report.published,
        resent: report.resent_entries,
        dead_lettered: report.dead_lettered,
        ignored,
        still_failing: report.failed_positions.len(),
        batch_duration: duration,
        publish_lag: report.max_publish_lag,
    }
}

/// The metrics of one stream batch.
pub fn stream_metrics(outcome: &StreamOutcome, duration: Duration) -> RelayMetrics {
    relay_metrics(&outcome.relay, outcome.ignored, duration)
}
