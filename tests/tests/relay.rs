//! Guarantees 1 and 3 against moto: outbox inserts read from the real
//! stream, published through the real EventBridge rule to its SQS target.

use std::collections::HashSet;
use std::time::Duration;

use auth_events_aws::streams::lambda_record;
use auth_events_core::contract::{
    Email, EventId, PhotoUrl, Timestamp, UserAction, UserEvent, UserId,
};
use auth_events_core::dead_letter::RelayDeadLetter;
use auth_events_core::outbox::{DEFAULT_TTL, OutboxRecord};
use auth_events_core::ports::OutboxStore;
use auth_events_core::relay::{Candidate, Relay, RelayConfig, RelayReport};
use auth_events_core::retry::FullJitter;
use auth_events_core::testing::{EntryFault, FaultyPublisher};
use auth_events_tests::REGION;
use auth_events_tests::{Stack, spawn_stack, spawn_strict_stack};
use aws_lambda_events::event::dynamodb;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use local_stack::strict::StrictLimits;

fn record(i: usize) -> OutboxRecord {
    let event = UserEvent::new(
        UserAction::SignedIn,
        UserId::parse(format!("user-{i}")).expect("valid"),
        Email::parse(format!("user{i}@example.com")).expect("valid"),
        Timestamp::now(),
    );
    OutboxRecord::new(&event, Timestamp::now(), DEFAULT_TTL, None)
}

/// Every record of the outbox stream, as Lambda would hand them over.
async fn stream_batch(stack: &Stack) -> dynamodb::Event {
    let streams = aws_sdk_dynamodbstreams::Client::new(&stack.sdk);
    let arn = stack.outbox_stream_arn().await;
    let shards = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .expect("stream described")
        .stream_description
        .and_then(|d| d.shards)
        .unwrap_or_default();
    let mut batch = dynamodb::Event::default();
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
            batch.records.extend(
                page.records()
                    .iter()
                    .map(|r| lambda_record(r, &arn, REGION)),
            );
            iterator = page.next_shard_iterator;
        }
    }
    batch
}

/// The stream's INSERTs decoded as the relay decodes them.
async fn stream_inserts(stack: &Stack, expected: usize) -> Vec<Candidate> {
    let candidates: Vec<Candidate> = stream_batch(stack)
        .await
        .records
        .into_iter()
        .filter(|r| r.event_name == "INSERT")
        .enumerate()
        .map(|(position, r)| Candidate {
            position,
            sequence_number: r.change.sequence_number.clone(),
            record: OutboxRecord::decode_valid(r.change.new_image).expect("valid"),
        })
        .collect();
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
    // The rule's target is drained while the relay publishes: every send
    // to and receive from a moto queue walks all its waiting messages, so a
    // queue first filled to 1,000 took a minute and a half to fill and drain.
    let relay = relay(&stack);
    let ((), bodies) = tokio::join!(
        relay.publish(candidates, deadline(), &mut report),
        stack.drain(&stack.target_queue_url, 1000, Duration::from_mins(2)),
    );
    assert_eq!(report.published, 1000);
    assert!(report.failed_positions.is_empty());

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

/// Behind the strict layer with a request limit below the relay's (a region
/// still on the old limit), one entry over it makes AWS refuse every request
/// that carries it: the relay narrows the refusal down to that entry.
#[tokio::test]
async fn a_request_aws_refuses_whole_for_one_entry_publishes_the_others_and_dead_letters_only_it() {
    let limit = 2_000;
    let stack = spawn_strict_stack(StrictLimits {
        put_events_max_request_bytes: limit,
        ..StrictLimits::default()
    })
    .await;
    let outbox = stack.outbox();
    let mut records: Vec<_> = (0..10).map(record).collect();
    let mut event = records[6].event().expect("valid");
    event.detail.photo_url =
        Some(PhotoUrl::parse(format!("https://example.com/{}", "p".repeat(2_000))).expect("valid"));
    records[6] = OutboxRecord::new(&event, Timestamp::now(), DEFAULT_TTL, None);
    let refused = records[6].event_id;
    assert!(records[6].bus_entry().size() > limit);
    let total: usize = records.iter().map(|r| r.bus_entry().size()).sum();
    assert!(
        total < RelayConfig::default().max_request_bytes,
        "the relay packs all ten into one request"
    );
    for r in &records {
        outbox.insert(r).await.expect("inserted");
    }

    let candidates = stream_inserts(&stack, 10).await;
    let mut report = RelayReport::default();
    relay(&stack)
        .publish(candidates, deadline(), &mut report)
        .await;

    assert_eq!(report.published, 9, "{report:?}");
    assert_eq!(report.dead_lettered, 1, "{report:?}");
    assert!(report.failed_positions.is_empty(), "{report:?}");
    let bodies = stack
        .drain(&stack.target_queue_url, 9, Duration::from_secs(10))
        .await;
    let mut published = event_ids(&bodies);
    published.sort();
    let mut others: Vec<String> = records
        .iter()
        .map(|r| r.event_id.to_string())
        .filter(|id| *id != refused.to_string())
        .collect();
    others.sort();
    assert_eq!(published, others, "each other event once");
    let late = stack
        .drain(&stack.target_queue_url, 1, Duration::from_secs(1))
        .await;
    assert!(late.is_empty(), "nothing else reached the bus: {late:?}");

    let letters: Vec<RelayDeadLetter> = stack
        .drain(&stack.dlq_url, 1, Duration::from_secs(10))
        .await
        .iter()
        .map(|body| serde_json::from_str(body).expect("a relay dead letter"))
        .collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].event_id, Some(refused));
    assert_eq!(letters[0].error_code, "ValidationException");
    assert!(
        letters[0].message.contains("over the limit"),
        "AWS's message is kept: {}",
        letters[0].message
    );
    let stored = outbox.get(refused).await.expect("read").expect("present");
    assert!(
        !stored.is_pending(),
        "dead-lettered, so the sweep leaves it"
    );
}

/// A late stream retry must not count a failure on, or dead-letter, an
/// event the sweep already published: both writes are conditional on the
/// item still being pending, and a missing item stays an error.
#[tokio::test]
async fn failures_and_dead_letters_are_recorded_only_on_items_still_pending() {
    let stack = spawn_stack().await;
    let outbox = stack.outbox();
    let now = Timestamp::now();
    let published = record(0);
    let pending = record(1);
    for r in [&published, &pending] {
        outbox.insert(r).await.expect("inserted");
    }
    outbox
        .mark_published(published.event_id, "bus-1", now)
        .await
        .expect("marked");

    let late = outbox
        .record_failure(published.event_id, "ThrottlingException", now)
        .await
        .expect("answered");
    assert_eq!(late, None, "nothing counted on a published item");
    let marked = outbox
        .mark_dead_lettered(published.event_id, "retries_exhausted", now)
        .await
        .expect("answered");
    assert!(!marked, "a published item is not marked dead-lettered");
    let stored = outbox
        .get(published.event_id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(
        (stored.attempts, stored.dead_lettered_at, stored.last_error),
        (0, None, None)
    );
    assert!(stored.published_at.is_some());

    let counted = outbox
        .record_failure(pending.event_id, "ThrottlingException", now)
        .await
        .expect("answered")
        .expect("counted on a pending item");
    assert_eq!(counted.attempts, 1);
    assert!(
        outbox
            .mark_dead_lettered(pending.event_id, "retries_exhausted", now)
            .await
            .expect("answered")
    );
    assert!(
        outbox
            .record_failure(EventId::new(), "ThrottlingException", now)
            .await
            .is_err(),
        "a missing item is an error, not 'already handled'"
    );
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

type FaultyBus = std::sync::Arc<FaultyPublisher<auth_events_aws::EventBridgePublisher>>;
type FaultyRelay = outbox_relay::handler::Handler<
    FaultyBus,
    auth_events_aws::DynamoOutbox,
    auth_events_aws::SqsDeadLetters,
>;

/// The relay Lambda's handler on moto, its bus behind a fault injector.
fn faulty_relay(stack: &Stack, max_attempts: u32) -> (FaultyRelay, FaultyBus) {
    let bus = std::sync::Arc::new(FaultyPublisher::new(stack.publisher()));
    let config = RelayConfig {
        max_attempts,
        backoff: FullJitter::new(Duration::from_millis(1), Duration::from_millis(5)),
        ..RelayConfig::default()
    };
    let handler = outbox_relay::handler::Handler::new(
        Relay::new(
            std::sync::Arc::clone(&bus),
            stack.outbox(),
            stack.dead_letters(),
            config,
        ),
        outbox_relay::config::HandlerConfig {
            emit_metrics: false,
            ..outbox_relay::config::HandlerConfig::default()
        },
    );
    (handler, bus)
}

async fn insert(stack: &Stack, range: std::ops::Range<usize>) {
    let outbox = stack.outbox();
    for i in range {
        outbox.insert(&record(i)).await.expect("inserted");
    }
}

#[tokio::test]
async fn thirty_percent_throttled_entries_are_all_published_and_only_the_failed_ones_resent() {
    let stack = spawn_stack().await;
    insert(&stack, 0..200).await;
    let (relay, bus) = faulty_relay(&stack, 5);
    bus.fail_entries(Some(EntryFault {
        code: "ThrottlingException".to_owned(),
        ratio: 0.3,
    }));
    let outcome = relay
        .process_stream(stream_batch(&stack).await, deadline())
        .await;
    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(outcome.relay.published, 200);
    assert!(
        outcome.relay.resent_entries > 0,
        "some entries were throttled and resent"
    );

    let forwarded = bus.forwarded();
    let unique: HashSet<_> = forwarded.iter().collect();
    assert_eq!(
        forwarded.len(),
        unique.len(),
        "no entry that reached the bus was sent again"
    );
    let ids = event_ids(
        &stack
            .drain(&stack.target_queue_url, 200, Duration::from_mins(1))
            .await,
    );
    assert_eq!(ids.len(), 200);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        200,
        "each event once on the bus"
    );
}

#[tokio::test]
async fn a_poison_record_in_a_batch_of_100_goes_to_the_dlq_without_blocking_the_batch() {
    let stack = spawn_stack().await;
    insert(&stack, 0..49).await;
    stack
        .dynamodb
        .put_item()
        .table_name(stack.names.outbox_table())
        .item(
            "eventId",
            aws_sdk_dynamodb::types::AttributeValue::S("not-a-uuid".to_owned()),
        )
        .item(
            "detail",
            aws_sdk_dynamodb::types::AttributeValue::S("{broken".to_owned()),
        )
        .send()
        .await
        .expect("poison inserted");
    insert(&stack, 49..99).await;
    let (relay, _bus) = faulty_relay(&stack, 5);
    let batch = stream_batch(&stack).await;
    assert_eq!(batch.records.len(), 100);
    let outcome = relay.process_stream(batch, deadline()).await;
    assert!(
        outcome.response.batch_item_failures.is_empty(),
        "the poison record is not retried"
    );
    assert_eq!(outcome.relay.published, 99);
    assert_eq!(
        stack
            .drain(&stack.target_queue_url, 99, Duration::from_mins(1))
            .await
            .len(),
        99
    );

    let letters = stack
        .drain(&stack.dlq_url, 1, Duration::from_secs(10))
        .await;
    assert_eq!(letters.len(), 1);
    let letter: serde_json::Value = serde_json::from_str(&letters[0]).expect("JSON");
    assert_eq!(letter["errorCode"], "undecodable");
    assert_eq!(
        letter["rawImage"]["detail"]["S"], "{broken",
        "the payload travels with the reason"
    );
}

#[tokio::test]
async fn with_the_bus_down_the_first_record_fails_and_after_n_invocations_the_events_are_dead_lettered()
 {
    let stack = spawn_stack().await;
    insert(&stack, 0..3).await;
    let (relay, bus) = faulty_relay(&stack, 3);
    bus.unavailable.set(true);
    let batch = stream_batch(&stack).await;
    let first = batch.records[0].change.sequence_number.clone();
    for invocation in 1..=2 {
        let short = tokio::time::Instant::now() + Duration::from_millis(200);
        let outcome = relay.process_stream(batch.clone(), short).await;
        let failed: Vec<_> = outcome
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(
            failed,
            vec![first.clone()],
            "invocation {invocation}: checkpoint at the first record"
        );
        assert!(
            stack
                .drain(&stack.dlq_url, 1, Duration::from_secs(1))
                .await
                .is_empty(),
            "nothing dead-lettered yet"
        );
    }
    let last = tokio::time::Instant::now() + Duration::from_millis(200);
    let outcome = relay.process_stream(batch, last).await;
    assert!(
        outcome.response.batch_item_failures.is_empty(),
        "given up after 3 invocations"
    );
    let letters = stack
        .drain(&stack.dlq_url, 3, Duration::from_secs(10))
        .await;
    assert_eq!(letters.len(), 3);
    for letter in letters {
        let letter: serde_json::Value = serde_json::from_str(&letter).expect("JSON");
        assert_eq!(letter["errorCode"], "retries_exhausted");
        assert_eq!(letter["attempts"], 3);
        assert!(
            letter["entry"]["detail"].is_string(),
            "the full event travels in the dead letter"
        );
    }
}
