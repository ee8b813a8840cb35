//! The SQS adapter of [`DeadLetterSink`].

use auth_events_core::dead_letter::{ATTR_ERROR_CODE, ATTR_KIND, RelayDeadLetter};
use auth_events_core::limits;
use auth_events_core::ports::{DeadLetterSink, PortError};
use aws_sdk_sqs::types::MessageAttributeValue;

use crate::errors::classify;

#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    max_message_bytes: usize,
}

impl SqsDeadLetters {
    /// Letters for the queue at `queue_url`, of at most the DLQ's size.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            max_message_bytes: limits::DLQ_MAX_MESSAGE_BYTES,
        }
    }

    /// For a queue whose `MaximumMessageSize` is `max_message_bytes`.
    #[must_use]
    pub fn with_max_message_bytes(mut self, max_message_bytes: usize) -> Self {
        self.max_message_bytes = max_message_bytes;
        self
    }
}

/// `value` with every character SQS refuses replaced, for an attribute:
/// unlike the body, an attribute value has no escape to keep it intact.
fn sqs_safe_attribute(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if limits::sqs_allows_char(c) {
                c
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect()
}

/// A string message attribute; SQS lets consumers filter on these without
/// parsing the body.
pub fn string_attribute(value: &str) -> Result<MessageAttributeValue, PortError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PortError::permanent("SendMessage", "InvalidAttribute", e.to_string()))
}

impl DeadLetterSink for SqsDeadLetters {
    async fn send(&self, letter: &RelayDeadLetter) -> Result<(), PortError> {
        let kind = letter.kind.as_str();
        let error_code = sqs_safe_attribute(&letter.error_code);
        // SQS counts each attribute's name, type and value in the size.
        let attributes = [(ATTR_KIND, kind), (ATTR_ERROR_CODE, error_code.as_str())]
            .iter()
            .map(|(name, value)| name.len() + "String".len() + value.len())
            .sum::<usize>();
        let body = letter
            .to_sqs_body(self.max_message_bytes.saturating_sub(attributes))
            .map_err(|e| PortError::permanent("SendMessage", "Serialise", e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes(ATTR_KIND, string_attribute(kind)?)
            .message_attributes(ATTR_ERROR_CODE, string_attribute(&error_code)?)
            .send()
            .await
            .map_err(|e| classify("SendMessage", e))?;
        Ok(())
    }
}
