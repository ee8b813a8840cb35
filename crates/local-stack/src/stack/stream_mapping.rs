//! The local stand-in for Lambda's DynamoDB stream event source mapping:
//! polls the outbox stream and invokes the relay handler with real
//! `aws_lambda_events` batches, honouring batch size, batching window,
//! `batchItemFailures` checkpoints, bisect on error, the retry limit and the
//! on-failure record (the JSON AWS sends) to the DLQ.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use auth_events_aws::streams::{lambda_record, to_chrono};
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

/// The mapping's settings, named as in the Lambda API.
#[derive(Debug, Clone)]
pub struct MappingSettings {
    pub batch_size: usize,
    pub maximum_batching_window: Duration,
    pub maximum_retry_attempts: u32,
    pub bisect_batch_on_function_error: bool,
    pub poll_interval: Duration,
}

impl Default for MappingSettings {
    fn default() -> Self {
        Self {
            batch_size: 100,
            maximum_batching_window: Duration::from_millis(200),
            maximum_retry_attempts: 3,
            bisect_batch_on_function_error: true,
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// Where the mapping reads and where its on-failure records go.
#[derive(Debug, Clone)]
pub struct MappingTarget {
    pub stream_arn: String,
    pub on_failure_queue_url: String,
    pub function_arn: String,
    pub region: String,
}

#[derive(Debug)]
pub struct StreamMapping<F> {
    streams: aws_sdk_dynamodbstreams::Client,
    sqs: aws_sdk_sqs::Client,
    target: MappingTarget,
    settings: MappingSettings,
    function: F,
}

/// A record as delivered, with what the on-failure record needs.
#[derive(Debug, Clone)]
struct Delivered {
    shard_id: String,
    arrival: DateTime<Utc>,
    record: EventRecord,
}

impl<F, Fut> StreamMapping<F>
where
    F: Fn(Event) -> Fut,
    Fut: Future<Output = Result<DynamoDbEventResponse>>,
{
    pub fn new(
        sdk: &aws_config::SdkConfig,
        target: MappingTarget,
        settings: MappingSettings,
        function: F,
    ) -> Self {
        Self {
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            target,
            settings,
            function,
        }
    }

    /// Polls every shard from its start until `stop` turns true.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let mut iterators = self.open_shards().await?;
        let mut buffer: Vec<Delivered> = Vec::new();
        let mut window_start: Option<tokio::time::Instant> = None;
        while !*stop.borrow() {
            let mut fetched = false;
            for (shard_id, iterator) in &mut iterators {
                let Some(current) = iterator.take() else {
                    continue;
                };
                let page = self
                    .streams
                    .get_records()
                    .shard_iterator(current)
                    .limit(i32::try_from(self.settings.batch_size).unwrap_or(100))
                    .send()
                    .await
                    .with_context(|| {
                        format!("reading shard {shard_id} of {}", self.target.stream_arn)
                    })?;
                *iterator = page.next_shard_iterator().map(str::to_owned);
                for record in page.records() {
                    fetched = true;
                    let arrival = record
                        .dynamodb()
                        .and_then(|d| d.approximate_creation_date_time())
                        .map_or_else(Utc::now, to_chrono);
                    buffer.push(Delivered {
                        shard_id: shard_id.clone(),
                        arrival,
                        record: lambda_record(record, &self.target.stream_arn, &self.target.region),
                    });
                }
            }
            if !buffer.is_empty() {
                let opened = *window_start.get_or_insert_with(tokio::time::Instant::now);
                let window_over = opened.elapsed() >= self.settings.maximum_batching_window;
                if buffer.len() >= self.settings.batch_size || window_over || !fetched {
                    while !buffer.is_empty() {
                        let take = buffer.len().min(self.settings.batch_size);
                        let batch: Vec<Delivered> = buffer.drain(..take).collect();
                        self.deliver(batch).await?;
                    }
                    window_start = None;
                }
            }
            if !fetched {
                tokio::select! {
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(self.settings.poll_interval) => {}
                }
            }
        }
        Ok(())
    }

    async fn open_shards(&self) -> Result<Vec<(String, Option<String>)>> {
        let description = self
            .streams
            .describe_stream()
            .stream_arn(&self.target.stream_arn)
            .send()
            .await
            .with_context(|| format!("describing stream {}", self.target.stream_arn))?;
        let mut iterators = Vec::new();
        for shard in description
            .stream_description()
            .map(aws_sdk_dynamodbstreams::types::StreamDescription::shards)
            .unwrap_or_default()
        {
            let shard_id = shard.shard_id().unwrap_or_default().to_owned();
            let iterator = self
                .streams
                .get_shard_iterator()
                .stream_arn(&self.target.stream_arn)
                .shard_id(&shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .with_context(|| format!("opening shard {shard_id}"))?
                .shard_iterator;
            iterators.push((shard_id, iterator));
        }
        Ok(iterators)
    }

    /// Invokes the function until the batch is checkpointed or given up.
    async fn deliver(&self, batch: Vec<Delivered>) -> Result<()> {
        let mut pending: VecDeque<(Vec<Delivered>, u32)> = VecDeque::from([(batch, 0)]);
        while let Some((batch, retries)) = pending.pop_front() {
            if batch.is_empty() {
                continue;
            }
            let mut event = Event::default();
            event.records = batch.iter().map(|d| d.record.clone()).collect();
            let failed_from = match (self.function)(event).await {
                Ok(response) => {
                    let Some(first) = response.batch_item_failures.first() else {
                        continue;
                    };
                    let failed = first.item_identifier.as_deref();
                    // An identifier that matches nothing fails the whole
                    // batch, as Lambda does.
                    let from = batch
                        .iter()
                        .position(|d| d.record.change.sequence_number.as_deref() == failed)
                        .unwrap_or(0);
                    info!(
                        from,
                        size = batch.len(),
                        "batch item failure: retrying from the reported record"
                    );
                    from
                }
                Err(error) if self.settings.bisect_batch_on_function_error && batch.len() > 1 => {
                    warn!(error = %error, size = batch.len(), "function error: bisecting the batch");
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    pending.push_front((second, retries + 1));
                    pending.push_front((first, retries + 1));
                    continue;
                }
                Err(error) => {
                    warn!(error = %error, size = batch.len(), "function error");
                    0
                }
            };
            let remainder = batch[failed_from..].to_vec();
            if retries >= self.settings.maximum_retry_attempts {
                self.send_on_failure(&remainder, retries + 1).await?;
            } else {
                pending.push_front((remainder, retries + 1));
            }
        }
        Ok(())
    }

    /// The record Lambda sends to the on-failure destination: positions
    /// only, no payload.
    async fn send_on_failure(&self, records: &[Delivered], invocations: u32) -> Result<()> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(());
        };
        let body = json!({
            "requestContext": {
                "requestId": uuid_like(),
                "functionArn": self.target.function_arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invocations,
            },
            "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
            "version": "1.0",
            "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "DDBStreamBatchInfo": {
                "shardId": first.shard_id,
                "startSequenceNumber": first.record.change.sequence_number,
                "endSequenceNumber": last.record.change.sequence_number,
                "approximateArrivalOfFirstRecord": first.arrival.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "approximateArrivalOfLastRecord": last.arrival.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "batchSize": records.len(),
                "streamArn": self.target.stream_arn,
            }
        });
        warn!(
            records = records.len(),
            "retry attempts exhausted: on-failure record to the DLQ"
        );
        self.sqs
            .send_message()
            .queue_url(&self.target.on_failure_queue_url)
            .message_body(body.to_string())
            .send()
            .await
            .with_context(|| {
                format!(
                    "sending the on-failure record to {}",
                    self.target.on_failure_queue_url
                )
            })?;
        Ok(())
    }
}

/// A request id in the shape Lambda uses; unique enough for local records.
pub fn uuid_like() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use auth_events_core::contract::{Email, Timestamp, UserAction, UserEvent, UserId};
    use auth_events_core::dead_letter::DeadLetter;
    use auth_events_core::outbox::{DEFAULT_TTL, OutboxRecord};
    use auth_events_core::ports::OutboxStore;
    use aws_lambda_events::event::streams::DynamoDbBatchItemFailure;

    use super::*;

    async fn stack_with_inserts(count: usize) -> (auth_events_tests::Stack, MappingTarget) {
        let stack = auth_events_tests::spawn_stack().await;
        for i in 0..count {
            let event = UserEvent::new(
                UserAction::SignedIn,
                UserId::parse(format!("u{i}")).expect("valid"),
                Email::parse(format!("u{i}@example.com")).expect("valid"),
                Timestamp::now(),
            );
            let record = OutboxRecord::new(&event, Timestamp::now(), DEFAULT_TTL, None);
            stack.outbox().insert(&record).await.expect("inserted");
        }
        let stream_arn = stack.outbox_stream_arn().await;
        let target = MappingTarget {
            stream_arn,
            on_failure_queue_url: stack.dlq_url.clone(),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:relay".to_owned(),
            region: "us-east-1".to_owned(),
        };
        (stack, target)
    }

    fn settings() -> MappingSettings {
        MappingSettings {
            batch_size: 4,
            maximum_batching_window: Duration::from_millis(50),
            maximum_retry_attempts: 2,
            bisect_batch_on_function_error: true,
            poll_interval: Duration::from_millis(20),
        }
    }

    /// Runs the mapping until `done` holds on what the function saw.
    async fn run_until<F, Fut>(
        stack: &auth_events_tests::Stack,
        target: MappingTarget,
        function: F,
        done: impl Fn() -> bool,
    ) where
        F: Fn(Event) -> Fut,
        Fut: Future<Output = Result<DynamoDbEventResponse>>,
    {
        let mapping = StreamMapping::new(&stack.sdk, target, settings(), function);
        let (stop, stopped) = watch::channel(false);
        let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
        let run = mapping.run(stopped);
        tokio::pin!(run);
        loop {
            tokio::select! {
                result = &mut run => { result.expect("the mapping ran"); break; }
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    if done() { let _ = stop.send(true); }
                    assert!(tokio::time::Instant::now() < deadline, "the mapping never got there");
                }
            }
        }
    }

    #[tokio::test]
    async fn batches_respect_the_batch_size_and_keep_stream_order() {
        let (stack, target) = stack_with_inserts(10).await;
        let seen = Mutex::new(Vec::new());
        run_until(
            &stack,
            target,
            |batch: Event| {
                let ids: Vec<String> = batch.records.iter().map(|r| r.event_id.clone()).collect();
                seen.lock().expect("lock").push(ids);
                async { Ok(DynamoDbEventResponse::default()) }
            },
            || {
                seen.lock()
                    .expect("lock")
                    .iter()
                    .map(Vec::len)
                    .sum::<usize>()
                    >= 10
            },
        )
        .await;
        let batches = seen.lock().expect("lock").clone();
        assert!(batches.iter().all(|b| b.len() <= 4), "{batches:?}");
        assert_eq!(batches.concat().len(), 10, "each record delivered once");
    }

    #[tokio::test]
    async fn a_reported_item_failure_is_retried_from_that_record_only() {
        let (stack, target) = stack_with_inserts(3).await;
        let seen: Mutex<Vec<Vec<Option<String>>>> = Mutex::new(Vec::new());
        run_until(
            &stack,
            target,
            |batch: Event| {
                let sequence: Vec<_> = batch
                    .records
                    .iter()
                    .map(|r| r.change.sequence_number.clone())
                    .collect();
                let first_time = seen.lock().expect("lock").is_empty();
                seen.lock().expect("lock").push(sequence.clone());
                let mut response = DynamoDbEventResponse::default();
                if first_time {
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier.clone_from(&sequence[1]);
                    response.batch_item_failures.push(failure);
                }
                async move { Ok(response) }
            },
            || seen.lock().expect("lock").len() >= 2,
        )
        .await;
        let calls = seen.lock().expect("lock").clone();
        assert_eq!(calls[0].len(), 3);
        assert_eq!(
            calls[1],
            calls[0][1..].to_vec(),
            "resumed at the failed record"
        );
    }

    #[tokio::test]
    async fn a_failing_function_is_bisected_then_given_up_with_an_on_failure_record() {
        let (stack, target) = stack_with_inserts(2).await;
        let sizes = Mutex::new(Vec::new());
        let dlq_url = stack.dlq_url.clone();
        run_until(
            &stack,
            target,
            |batch: Event| {
                sizes.lock().expect("lock").push(batch.records.len());
                async { Err(anyhow::anyhow!("the function crashed")) }
            },
            // The pair fails once and is bisected (that counts as a retry);
            // each half then fails on its second and last retry.
            || sizes.lock().expect("lock").len() >= 5,
        )
        .await;
        assert_eq!(sizes.lock().expect("lock")[0], 2);
        assert!(
            sizes.lock().expect("lock")[1..].iter().all(|&n| n == 1),
            "bisected to single records"
        );
        let bodies = stack.drain(&dlq_url, 2, Duration::from_secs(10)).await;
        assert_eq!(
            bodies.len(),
            2,
            "one on-failure record per single-record batch"
        );
        for body in bodies {
            let letter = DeadLetter::parse(&body).expect("the shape AWS sends");
            assert!(
                matches!(letter, DeadLetter::StreamBatch { .. }),
                "{letter:?}"
            );
        }
        assert_eq!(
            sizes.lock().expect("lock").len(),
            5,
            "no delivery after giving up"
        );
    }
}
