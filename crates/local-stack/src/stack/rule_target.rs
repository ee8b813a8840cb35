//! The local stand-in for EventBridge's Lambda target with Lambda's
//! asynchronous invocation behind it: long-polls the rule's SQS target,
//! invokes the profile handler with the envelope, retries as Lambda's async
//! invocation does (two retries), then sends the on-failure record (the
//! original event as `requestPayload`) to the DLQ.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::warn;

use super::stream_mapping::uuid_like;

#[derive(Debug, Clone)]
pub struct TargetSettings {
    /// Lambda's async invocation: the first attempt plus two retries.
    pub maximum_attempts: u32,
    pub retry_delay: Duration,
}

impl Default for TargetSettings {
    fn default() -> Self {
        Self {
            maximum_attempts: 3,
            retry_delay: Duration::from_millis(200),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TargetQueues {
    pub target_queue_url: String,
    pub on_failure_queue_url: String,
    pub function_arn: String,
}

#[derive(Debug)]
pub struct RuleTarget<F> {
    sqs: aws_sdk_sqs::Client,
    queues: TargetQueues,
    settings: TargetSettings,
    function: F,
}

impl<F, Fut> RuleTarget<F>
where
    F: Fn(EventBridgeEvent<Value>) -> Fut,
    Fut: Future<Output = Result<Value>>,
{
    pub fn new(
        sdk: &aws_config::SdkConfig,
        queues: TargetQueues,
        settings: TargetSettings,
        function: F,
    ) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(sdk),
            queues,
            settings,
            function,
        }
    }

    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<()> {
        while !*stop.borrow() {
            let receive = self
                .sqs
                .receive_message()
                .queue_url(&self.queues.target_queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send();
            let output = tokio::select! {
                _ = stop.changed() => break,
                output = receive => output.with_context(|| format!("polling {}", self.queues.target_queue_url))?,
            };
            for message in output.messages() {
                self.deliver(message.body().unwrap_or_default()).await?;
                if let Some(handle) = message.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queues.target_queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .context("deleting a delivered target message")?;
                }
            }
        }
        Ok(())
    }

    async fn deliver(&self, body: &str) -> Result<()> {
        let envelope: Value =
            serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
        let mut last_error = None;
        if let Ok(event) = serde_json::from_value::<EventBridgeEvent<Value>>(envelope.clone()) {
            for attempt in 1..=self.settings.maximum_attempts {
                match (self.function)(event.clone()).await {
                    Ok(_) => return Ok(()),
                    Err(error) => {
                        warn!(attempt, error = %error, "profile function failed");
                        last_error = Some(error);
                    }
                }
                if attempt < self.settings.maximum_attempts {
                    tokio::time::sleep(self.settings.retry_delay).await;
                }
            }
        }
        let (error_type, error_message) = last_error.map_or_else(
            || {
                (
                    "InvalidEnvelope".to_owned(),
                    "not an EventBridge event".to_owned(),
                )
            },
            |e| ("Unhandled".to_owned(), format!("{e:#}")),
        );
        let record = json!({
            "version": "1.0",
            "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "requestContext": {
                "requestId": uuid_like(),
                "functionArn": format!("{}:$LATEST", self.queues.function_arn),
                "condition": "RetriesExhausted",
                "approximateInvokeCount": self.settings.maximum_attempts,
            },
            "requestPayload": envelope,
            "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
            "responsePayload": { "errorType": error_type, "errorMessage": error_message },
        });
        self.sqs
            .send_message()
            .queue_url(&self.queues.on_failure_queue_url)
            .message_body(record.to_string())
            .send()
            .await
            .with_context(|| {
                format!(
                    "sending the on-failure record to {}",
                    self.queues.on_failure_queue_url
                )
            })?;
        Ok(())
    }
}
