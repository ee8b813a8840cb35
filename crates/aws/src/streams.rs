//! DynamoDB Streams records as Lambda hands them to a function, for the
//! local stand-in of the event source mapping and for tests that read the
//! real stream.

use aws_lambda_events::event::dynamodb::{EventRecord, StreamRecord};
use aws_sdk_dynamodbstreams::types::Record;
use chrono::{DateTime, Utc};

pub fn to_chrono(at: &aws_sdk_dynamodbstreams::primitives::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(at.secs(), at.subsec_nanos()).unwrap_or_default()
}

/// The `aws_lambda_events` record for a record read through the Streams API.
pub fn lambda_record(record: &Record, stream_arn: &str, region: &str) -> EventRecord {
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
    event.event_source_arn = Some(stream_arn.to_owned());
    region.clone_into(&mut event.aws_region);
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

/// The ARN of `table`'s current stream.
pub async fn latest_stream_arn(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<String, auth_events_core::ports::PortError> {
    dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| crate::errors::classify("DescribeTable", e))?
        .table
        .and_then(|t| t.latest_stream_arn)
        .ok_or_else(|| {
            auth_events_core::ports::PortError::permanent(
                "DescribeTable",
                "NoStream",
                format!("{table} has no stream"),
            )
        })
}
