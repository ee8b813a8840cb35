//! The SQS adapter of [`DeadLetterSink`].

use auth_events_core::dead_letter::{ATTR_ERROR_CODE, ATTR_KIND, RelayDeadLetter};
use auth_events_core::ports::{DeadLetterSink, PortError};
use aws_sdk_sqs::types::MessageAttributeValue;

use crate::errors::classify;

#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
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
        let body = serde_json::to_string(letter)
            .map_err(|e| PortError::permanent("SendMessage", "Serialise", e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes(ATTR_KIND, string_attribute(letter.kind.as_str())?)
            .message_attributes(ATTR_ERROR_CODE, string_attribute(&letter.error_code)?)
            .send()
            .await
            .map_err(|e| classify("SendMessage", e))?;
        Ok(())
    }
}
