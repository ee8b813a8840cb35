//! The local stand-in for Lambda's DynamoDB stream event source mapping:
//! polls the outbox stream and invokes the relay handler with real
//! `aws_lambda_events` batches, honouring batch size, batching window,
//! `batchItemFailures` checkpoints, bisect on error, the retry limit and the
//! on-failure record (the JSON AWS sends) to the DLQ.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_lambda_events::event::dynamodb::{Event, EventRecord, StreamRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
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

fn to_chrono(at: &aws_sdk_dynamodbstreams::primitives::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(at.secs(), at.subsec_nanos()).unwrap_or_default()
}

/// The record as Lambda hands it to the function.
fn lambda_record(record: &Record, target: &MappingTarget) -> EventRecord {
    let mut event = EventRecord::default();
    record
        .event_id()
        .unwrap_or_default()
        .clone_into(&mut event.event_id);
    event.event_name = record
        .event_name()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    event.event_source = Some("aws:dynamodb".to_owned());
    event.event_version = record.event_version().map(str::to_owned);
    event.event_source_arn = Some(target.stream_arn.clone());
    event.aws_region.clone_from(&target.region);
    let mut change = StreamRecord::default();
    if let Some(data) = record.dynamodb() {
        change.keys = data.keys.clone().unwrap_or_default().into();
        change.new_image = data.new_image.clone().unwrap_or_default().into();
        change.old_image = data.old_image.clone().unwrap_or_default().into();
        change.sequence_number.clone_from(&data.sequence_number);
        change.size_bytes = data.size_bytes.unwrap_or_default();
        if let Some(at) = data.approximate_creation_date_time() {
            change.approximate_creation_date_time = to_chrono(at);
        }
    }
    event.change = change;
    event
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
                        record: lambda_record(record, &self.target),
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
