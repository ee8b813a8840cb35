//! Every message shape that can land in the DLQ, and how to tell them apart.
//!
//! - the relay's own dead letter ([`RelayDeadLetter`], `kind: "relay"`);
//! - the stream event source mapping's on-failure record (sequence numbers
//!   only, no payload);
//! - EventBridge's target DLQ message (the original event envelope);
//! - the profile function's asynchronous on-failure record (the original
//!   event as `requestPayload`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::{EventId, Timestamp, UserEvent};
use crate::entry::BusEntry;

/// SQS message attribute names the relay sets, for filtering without parsing.
pub const ATTR_KIND: &str = "kind";
pub const ATTR_ERROR_CODE: &str = "errorCode";

/// Error codes of failures found before or around publishing.
pub mod codes {
    pub const UNDECODABLE: &str = "undecodable";
    pub const CONTRACT_INVALID: &str = "contract_invalid";
    pub const TOO_LARGE: &str = "too_large";
    pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadLetterKind {
    Relay,
    StreamBatch,
    BusEvent,
    LambdaAsync,
}

impl DeadLetterKind {
    pub const ALL: [DeadLetterKind; 4] = [
        DeadLetterKind::Relay,
        DeadLetterKind::StreamBatch,
        DeadLetterKind::BusEvent,
        DeadLetterKind::LambdaAsync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::Relay => "relay",
            DeadLetterKind::StreamBatch => "stream-batch",
            DeadLetterKind::BusEvent => "bus-event",
            DeadLetterKind::LambdaAsync => "lambda-async",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }
}

/// Where in the relay the event failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureStage {
    /// The stream image is not an outbox record.
    Decode,
    /// The record breaks the event contract.
    Contract,
    /// The entry alone exceeds the request size limit.
    Pack,
    /// EventBridge refused the entry, or kept failing.
    Publish,
}

/// The relay's own dead letter: everything needed to publish the event
/// later, or to see why it never can be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayDeadLetter {
    pub kind: DeadLetterKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// The entry to publish; absent when the image could not be decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<BusEntry>,
    /// The stream image as received, when it could not be decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_image: Option<Value>,
    pub stage: FailureStage,
    pub error_code: String,
    pub message: String,
    pub attempts: u32,
    pub first_failure_at: Timestamp,
    pub last_failure_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    /// What was left out or shortened to fit the DLQ, when anything was;
    /// the outbox item, read by `eventId`, keeps the whole event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<String>,
}

/// How much of the failure message a shortened letter keeps.
const CUT_MESSAGE_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes, on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `json` with every character SQS refuses in a body written as a `\u`
/// escape. Such characters can only occur inside JSON strings, where the
/// escape reads back as the same character: nothing is lost.
pub fn sqs_safe_json(json: &str) -> String {
    let mut safe = String::with_capacity(json.len());
    for c in json.chars() {
        if crate::limits::sqs_allows_char(c) {
            safe.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(safe, "\\u{unit:04x}");
            }
        }
    }
    safe
}

impl RelayDeadLetter {
    /// The SQS message body for this letter: JSON that SQS accepts, of at
    /// most `max_bytes`. A letter over it leaves out its entry and keeps as
    /// much of its raw image as fits, as a string, and says so in `cut`.
    pub fn to_sqs_body(&self, max_bytes: usize) -> Result<String, serde_json::Error> {
        let whole = sqs_safe_json(&serde_json::to_string(self)?);
        if whole.len() <= max_bytes {
            return Ok(whole);
        }
        let raw = self
            .raw_image
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default();
        let mut shortened = self.clone();
        shortened.entry = None;
        shortened.cut = Some(format!(
            "the letter was {} bytes, over the DLQ's {max_bytes}: the entry is left out and the raw image shortened; read the outbox item by eventId for the whole event",
            whole.len()
        ));
        let mut keep_raw = raw.len();
        let mut keep_message = CUT_MESSAGE_BYTES;
        loop {
            shortened.raw_image =
                (keep_raw > 0).then(|| Value::String(prefix(&raw, keep_raw).to_owned()));
            prefix(&self.message, keep_message).clone_into(&mut shortened.message);
            let body = sqs_safe_json(&serde_json::to_string(&shortened)?);
            // Escaping can make kept text longer than its bytes: take off
            // what is over, raw image first, and measure again.
            let over = body.len().saturating_sub(max_bytes);
            if over == 0 || (keep_raw == 0 && shortened.message.is_empty()) {
                // A bare letter still over the limit is refused by SQS,
                // and the relay sends the minimal letter instead.
                return Ok(body);
            }
            if keep_raw > 0 {
                keep_raw = keep_raw.saturating_sub(over);
            } else {
                keep_message = shortened.message.len().saturating_sub(over);
            }
        }
    }

    /// The letter with nothing but its key, stage, code and reason: what
    /// is sent when SQS refuses the full one, so that no record waits for
    /// a letter that can never be sent.
    #[must_use]
    pub fn minimal(&self, refused_with: &str) -> Self {
        Self {
            entry: None,
            raw_image: None,
            message: prefix(&self.message, CUT_MESSAGE_BYTES).to_owned(),
            cut: Some(format!(
                "a minimal letter: SQS refused the full one ({refused_with}); read the outbox item by eventId for the event"
            )),
            ..self.clone()
        }
    }
}

/// The part of Lambda's stream on-failure record that redrive needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamBatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    #[serde(default)]
    pub end_sequence_number: Option<String>,
    pub approximate_arrival_of_first_record: Timestamp,
    pub approximate_arrival_of_last_record: Timestamp,
    #[serde(default)]
    pub batch_size: u32,
    #[serde(default)]
    pub stream_arn: Option<String>,
}

/// A minimal EventBridge envelope: what putting an event back needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Envelope {
    #[serde(default)]
    pub id: Option<String>,
    pub source: String,
    pub detail_type: String,
    pub detail: Value,
}

impl Envelope {
    /// The entry that puts this event back on the bus, if it is one of ours.
    ///
    /// A hand-written event without `eventId` was deduplicated on its
    /// envelope id; the redriven copy gets a new envelope id, so the old
    /// one is written into `eventId` to keep it the same event.
    pub fn to_entry(&self) -> Result<BusEntry, crate::contract::ContractError> {
        let mut event =
            UserEvent::from_parts(&self.source, &self.detail_type, &self.detail.to_string())?;
        if event.detail.event_id.is_none() {
            event.detail.event_id = self.id.as_deref().and_then(|id| id.parse::<EventId>().ok());
        }
        Ok(BusEntry {
            event_id: event.detail.event_id,
            source: self.source.clone(),
            detail_type: self.detail_type.clone(),
            detail: event.detail_json(),
            trace_header: None,
        })
    }
}

/// A DLQ message body, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum DeadLetter {
    Relay(RelayDeadLetter),
    StreamBatch {
        info: StreamBatchInfo,
        condition: Option<String>,
    },
    BusEvent(Envelope),
    LambdaAsync {
        event: Envelope,
        condition: Option<String>,
        error: Option<String>,
    },
}

/// Why a DLQ message could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable dead letter: {0}")]
pub struct Unreadable(pub String);

impl DeadLetter {
    pub fn kind(&self) -> DeadLetterKind {
        match self {
            DeadLetter::Relay(_) => DeadLetterKind::Relay,
            DeadLetter::StreamBatch { .. } => DeadLetterKind::StreamBatch,
            DeadLetter::BusEvent(_) => DeadLetterKind::BusEvent,
            DeadLetter::LambdaAsync { .. } => DeadLetterKind::LambdaAsync,
        }
    }

    /// The error code to group by: the relay's own, the mapping's or
    /// Lambda's condition, or what EventBridge said in `error_attribute`.
    pub fn error_code(&self, error_attribute: Option<&str>) -> String {
        match self {
            DeadLetter::Relay(letter) => letter.error_code.clone(),
            DeadLetter::StreamBatch { condition, .. }
            | DeadLetter::LambdaAsync { condition, .. } => {
                condition.clone().unwrap_or_else(|| "unknown".to_owned())
            }
            DeadLetter::BusEvent(_) => error_attribute.unwrap_or("unknown").to_owned(),
        }
    }

    pub fn parse(body: &str) -> Result<Self, Unreadable> {
        let value: Value =
            serde_json::from_str(body).map_err(|e| Unreadable(format!("not JSON: {e}")))?;
        let shape = |e: serde_json::Error| Unreadable(e.to_string());
        if value.get("kind").and_then(Value::as_str) == Some(DeadLetterKind::Relay.as_str()) {
            return serde_json::from_value(value)
                .map(DeadLetter::Relay)
                .map_err(shape);
        }
        let condition = value
            .pointer("/requestContext/condition")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(info) = value.get("DDBStreamBatchInfo") {
            let info = serde_json::from_value(info.clone()).map_err(shape)?;
            return Ok(DeadLetter::StreamBatch { info, condition });
        }
        if let Some(payload) = value.get("requestPayload") {
            let event = serde_json::from_value(payload.clone()).map_err(shape)?;
            let error = value
                .pointer("/responsePayload/errorType")
                .and_then(Value::as_str)
                .map(str::to_owned);
            return Ok(DeadLetter::LambdaAsync {
                event,
                condition,
                error,
            });
        }
        if value.get("detail-type").is_some() {
            return serde_json::from_value(value)
                .map(DeadLetter::BusEvent)
                .map_err(shape);
        }
        Err(Unreadable("no known dead-letter shape".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DETAIL: &str = r#"{"eventId":"019ad3a0-0000-7000-8000-000000000001","schemaVersion":1,"userId":"u1","email":"a@b.co","timestamp":"2026-11-29T11:46:06.123Z"}"#;

    fn letter_with_raw_image(raw: &str) -> RelayDeadLetter {
        let at = Timestamp::parse("2026-11-29T11:46:06.123Z").expect("valid");
        RelayDeadLetter {
            kind: DeadLetterKind::Relay,
            event_id: Some(
                "019ad3a0-0000-7000-8000-000000000001"
                    .parse()
                    .expect("an id"),
            ),
            entry: None,
            raw_image: Some(serde_json::json!({ "detail": { "S": raw } })),
            stage: FailureStage::Contract,
            error_code: codes::CONTRACT_INVALID.to_owned(),
            message: format!("bad detail {raw}"),
            attempts: 1,
            first_failure_at: at,
            last_failure_at: at,
            sequence_number: None,
            cut: None,
        }
    }

    fn read_back(body: &str) -> RelayDeadLetter {
        match DeadLetter::parse(body) {
            Ok(DeadLetter::Relay(letter)) => letter,
            other => panic!("not a relay letter: {other:?}"),
        }
    }

    #[test]
    fn characters_sqs_refuses_are_escaped_and_read_back_unchanged() {
        let letter = letter_with_raw_image("a\u{FFFF}b\u{FFFE}\u{0}\"c");
        let body = letter.to_sqs_body(1_000_000).expect("serialises");
        assert!(body.chars().all(crate::limits::sqs_allows_char), "{body}");
        assert!(body.contains(r"\uffff"), "{body}");
        assert_eq!(read_back(&body), letter);
    }

    #[test]
    fn a_letter_over_the_limit_keeps_its_key_and_a_prefix_and_says_it_was_cut() {
        let letter = letter_with_raw_image(&"x".repeat(390 * 1024));
        let max = 256 * 1024;
        let body = letter.to_sqs_body(max).expect("serialises");
        assert!(body.len() <= max, "{} bytes", body.len());
        let cut = read_back(&body);
        assert_eq!(cut.event_id, letter.event_id);
        assert_eq!(cut.error_code, letter.error_code);
        assert!(
            cut.cut
                .as_deref()
                .is_some_and(|note| note.contains("outbox item")),
            "{cut:?}"
        );
        let whole = letter
            .raw_image
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default();
        let Some(Value::String(kept)) = &cut.raw_image else {
            panic!(
                "the raw image is kept as a string prefix: {:?}",
                cut.raw_image
            )
        };
        assert!(whole.starts_with(kept.as_str()) && kept.len() > max / 2);
        assert!(cut.message.len() <= CUT_MESSAGE_BYTES);
    }

    #[test]
    fn a_minimal_letter_keeps_the_key_stage_code_and_reason_only() {
        let letter = letter_with_raw_image("x");
        let minimal = letter.minimal("InvalidMessageContents");
        assert_eq!(minimal.event_id, letter.event_id);
        assert_eq!(minimal.stage, letter.stage);
        assert_eq!(minimal.error_code, letter.error_code);
        assert_eq!(minimal.message, letter.message);
        assert_eq!((minimal.entry, minimal.raw_image), (None, None));
        assert!(
            minimal
                .cut
                .is_some_and(|note| note.contains("InvalidMessageContents"))
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever a raw image holds and whatever the limit, the body is
        /// one SQS accepts, within the limit, and a letter `outboxctl` reads.
        #[test]
        fn every_letter_body_is_one_sqs_accepts_within_the_limit(
            chars in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<char>(),
                    proptest::strategy::Just('\u{FFFF}'),
                    proptest::strategy::Just('"'),
                    proptest::strategy::Just('\u{1}'),
                ],
                0..3_000,
            ),
            max in 1_500usize..12_000,
        ) {
            let raw: String = chars.into_iter().collect();
            let body = letter_with_raw_image(&raw).to_sqs_body(max).expect("serialises");
            proptest::prop_assert!(body.len() <= max, "{} > {max}", body.len());
            proptest::prop_assert!(body.chars().all(crate::limits::sqs_allows_char));
            proptest::prop_assert!(matches!(DeadLetter::parse(&body), Ok(DeadLetter::Relay(_))));
        }
    }

    #[test]
    fn a_relay_dead_letter_round_trips() {
        let at = Timestamp::parse("2026-11-29T11:46:06.123Z").expect("valid");
        let letter = RelayDeadLetter {
            kind: DeadLetterKind::Relay,
            event_id: None,
            entry: None,
            raw_image: Some(serde_json::json!({"eventId": {"S": "x"}})),
            stage: FailureStage::Decode,
            error_code: codes::UNDECODABLE.to_owned(),
            message: "missing field `detail`".to_owned(),
            attempts: 0,
            first_failure_at: at,
            last_failure_at: at,
            sequence_number: Some("100".to_owned()),
            cut: None,
        };
        let body = serde_json::to_string(&letter).expect("serialises");
        assert_eq!(DeadLetter::parse(&body), Ok(DeadLetter::Relay(letter)));
    }

    #[test]
    fn the_stream_mappings_on_failure_record_is_recognised() {
        let body = r#"{
          "requestContext": {"requestId": "r", "functionArn": "arn:aws:lambda:eu-west-1:1:function:f",
                             "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 3},
          "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
          "version": "1.0", "timestamp": "2026-11-29T11:46:10.000Z",
          "DDBStreamBatchInfo": {"shardId": "shardId-1", "startSequenceNumber": "100", "endSequenceNumber": "200",
            "approximateArrivalOfFirstRecord": "2026-11-29T11:46:06Z", "approximateArrivalOfLastRecord": "2026-11-29T11:46:07Z",
            "batchSize": 2, "streamArn": "arn:aws:dynamodb:eu-west-1:1:table/t/stream/x"}
        }"#;
        let letter = DeadLetter::parse(body).expect("recognised");
        assert_eq!(letter.kind(), DeadLetterKind::StreamBatch);
        assert_eq!(letter.error_code(None), "RetryAttemptsExhausted");
    }

    #[test]
    fn an_eventbridge_target_dlq_message_gives_back_its_event() {
        let body = format!(
            r#"{{"version":"0","id":"env-1","detail-type":"user.signed_in","source":"interview-companion.auth","account":"1","time":"2026-11-29T11:46:06Z","region":"eu-west-1","resources":[],"detail":{DETAIL}}}"#
        );
        let DeadLetter::BusEvent(envelope) = DeadLetter::parse(&body).expect("recognised") else {
            panic!("not a bus event");
        };
        let entry = envelope.to_entry().expect("our event");
        assert_eq!(entry.detail_type, "user.signed_in");
        assert!(entry.event_id.is_some());
    }

    #[test]
    fn a_redriven_event_without_event_id_keeps_its_envelope_id_as_identity() {
        let envelope = Envelope {
            id: Some("019ad3a0-0000-7000-8000-0000000000aa".to_owned()),
            source: crate::contract::SOURCE.to_owned(),
            detail_type: "user.signed_in".to_owned(),
            detail: serde_json::json!({"userId": "u", "email": "a@b.co", "timestamp": "2024-01-15T10:30:00Z"}),
        };
        let entry = envelope.to_entry().expect("our event");
        let redriven =
            UserEvent::from_parts(&entry.source, &entry.detail_type, &entry.detail).expect("valid");
        assert_eq!(
            redriven.dedupe_id(Some("a-new-envelope-id")).as_deref(),
            Some("019ad3a0-0000-7000-8000-0000000000aa")
        );
    }

    #[test]
    fn a_lambda_async_failure_record_carries_the_original_event() {
        let body = format!(
            r#"{{"version":"1.0","timestamp":"2026-11-29T11:46:06Z","requestContext":{{"condition":"RetriesExhausted"}},
               "requestPayload":{{"id":"env-2","detail-type":"user.signed_in","source":"interview-companion.auth","detail":{DETAIL}}},
               "responsePayload":{{"errorType":"Permanent","errorMessage":"x"}}}}"#
        );
        let letter = DeadLetter::parse(&body).expect("recognised");
        assert_eq!(letter.kind(), DeadLetterKind::LambdaAsync);
        assert_eq!(letter.error_code(None), "RetriesExhausted");
    }

    #[test]
    fn anything_else_is_unreadable() {
        assert!(DeadLetter::parse("not json").is_err());
        assert!(DeadLetter::parse(r#"{"hello":"world"}"#).is_err());
        assert!(DeadLetter::parse(r#"{"kind":"relay"}"#).is_err());
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in DeadLetterKind::ALL {
            assert_eq!(DeadLetterKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(DeadLetterKind::parse("other"), None);
    }
}
