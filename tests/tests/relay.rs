//! Guarantees 1 and 3 against moto: outbox inserts read from the real
//! stream, published through the real EventBridge rule to its SQS target.

use std::collections::HashSet;
use std::time::Duration;

use auth_events_core::contract::{Email, Timestamp, UserAction, UserEvent, UserId};
use auth_events_core::outbox::{DEFAULT_TTL, OutboxRecord};
use auth_events_core::ports::OutboxStore;
use auth_events_core::relay::{Candidate, Relay, RelayConfig, RelayReport};
use auth_events_tests::{Stack, spawn_stack};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;

fn record(i: usize) -> OutboxRecord {
    let event = UserEvent::new(
        UserAction::SignedIn,
        UserId::parse(format!("user-{i}")).expect("valid"),
        Email::parse(format!("user{i}@example.com")).expect("valid"),
        Timestamp::now(),
    );
    OutboxRecord::new(&event, Timestamp::now(), DEFAULT_TTL, None)
}

/// Every INSERT on the outbox stream, decoded as the relay decodes it.
async fn stream_inserts(stack: &Stack, expected: usize) -> Vec<Candidate> {
    let streams = aws_sdk_dynamodbstreams::Client::new(&stack.sdk);
    let arn = stack
        .dynamodb
        .describe_table()
        .table_name(stack.names.outbox_table())
        .send()
        .await
        .expect("described")
        .table
        .and_then(|t| t.latest_stream_arn)
        .expect("stream");
    let shards = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .expect("stream described")
        .stream_description
        .and_then(|d| d.shards)
        .unwrap_or_default();
    let mut candidates = Vec::new();
    for shard in shards {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id().unwrap_or_default())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator;
        while let Some(current) = iterator.take() {
            let page = streams
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .expect("records");
            if page.records().is_empty() {
                break;
            }
            for r in page.records() {
                if r.event_name()
                    .map(aws_sdk_dynamodbstreams::types::OperationType::as_str)
                    != Some("INSERT")
                {
                    continue;
                }
                let change = r.dynamodb().expect("change");
                let image = change.new_image().expect("image").clone();
                candidates.push(Candidate {
                    position: candidates.len(),
                    sequence_number: change.sequence_number().map(str::to_owned),
                    record: OutboxRecord::decode_valid(serde_dynamo::Item::from(image))
                        .expect("valid"),
                });
            }
            iterator = page.next_shard_iterator;
        }
    }
    assert_eq!(candidates.len(), expected, "stream INSERT records");
    candidates
}

fn relay(
    stack: &Stack,
) -> Relay<
    auth_events_aws::EventBridgePublisher,
    auth_events_aws::DynamoOutbox,
    auth_events_aws::SqsDeadLetters,
> {
    Relay::new(
        stack.publisher(),
        stack.outbox(),
        stack.dead_letters(),
        RelayConfig::default(),
    )
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_mins(1)
}

fn event_ids(bodies: &[String]) -> Vec<String> {
    bodies
        .iter()
        .map(|body| {
            let envelope: serde_json::Value = serde_json::from_str(body).expect("envelope JSON");
            envelope["detail"]["eventId"]
                .as_str()
                .expect("eventId")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_thousand_inserts_reach_the_bus_exactly_once_and_leave_nothing_pending() {
    let stack = spawn_stack().await;
    let outbox = stack.outbox();
    let records: Vec<_> = (0..1000).map(record).collect();
    for r in &records {
        outbox.insert(r).await.expect("inserted");
    }
    let candidates = stream_inserts(&stack, 1000).await;
    let mut report = RelayReport::default();
    relay(&stack)
        .publish(candidates, deadline(), &mut report)
        .await;
    assert_eq!(report.published, 1000);
    assert!(report.failed_positions.is_empty());

    let bodies = stack
        .drain(&stack.target_queue_url, 1000, Duration::from_mins(2))
        .await;
    let ids = event_ids(&bodies);
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), 1000, "each event once on the rule's target");
    assert_eq!(unique.len(), 1000);
    let extra = stack
        .drain(&stack.target_queue_url, 1, Duration::from_secs(2))
        .await;
    assert!(extra.is_empty(), "no event published twice");

    let far_future = Timestamp::from_millis(Timestamp::now().millis() + 3_600_000).expect("valid");
    assert!(
        outbox
            .pending(far_future, 2000)
            .await
            .expect("query")
            .is_empty(),
        "pending index empty"
    );
    for r in records.iter().step_by(97) {
        let stored = outbox
            .get(r.event_id)
            .await
            .expect("read")
            .expect("present");
        assert!(stored.published_at.is_some() && stored.bus_event_id.is_some());
    }
}

#[tokio::test]
async fn the_sweep_publishes_what_the_stream_never_delivered_and_skips_published_items() {
    let stack = spawn_stack().await;
    let outbox = stack.outbox();
    let published = record(1);
    outbox.insert(&published).await.expect("inserted");
    outbox
        .mark_published(published.event_id, "earlier", Timestamp::now())
        .await
        .expect("marked");
    let stranded: Vec<_> = (2..7).map(record).collect();
    for r in &stranded {
        outbox.insert(r).await.expect("inserted");
    }

    let report = relay(&stack)
        .sweep(Duration::ZERO, 100, deadline())
        .await
        .expect("swept");
    assert_eq!(report.found, 5);
    assert_eq!(report.relay.published, 5);

    let bodies = stack
        .drain(&stack.target_queue_url, 5, Duration::from_secs(30))
        .await;
    let ids: HashSet<_> = event_ids(&bodies).into_iter().collect();
    let expected: HashSet<_> = stranded.iter().map(|r| r.event_id.to_string()).collect();
    assert_eq!(ids, expected);
    let again = relay(&stack)
        .sweep(Duration::ZERO, 100, deadline())
        .await
        .expect("swept");
    assert_eq!(again.found, 0, "nothing left pending");
}
