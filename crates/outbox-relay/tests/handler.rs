//! The relay's guarantees, proven through the Lambda handler with in-memory
//! and fault-injecting ports.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_events_core::contract::{EventId, Timestamp};
use auth_events_core::dead_letter::{FailureStage, RelayDeadLetter, codes};
use auth_events_core::entry::BusEntry;
use auth_events_core::outbox::OutboxRecord;
use auth_events_core::ports::{DeadLetterSink, EntryResult, OutboxStore, PortError, Publisher};
use auth_events_core::relay::{Relay, RelayConfig};
use auth_events_core::retry::FullJitter;
use auth_events_core::testing::{
    EntryFault, FaultyPublisher, MemoryDeadLetters, MemoryOutbox, MemoryPublisher,
};
use aws_lambda_events::event::dynamodb;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use outbox_relay::{Handler, HandlerConfig, HandlerError, Invocation, Response, SweepSummary};
use serde_json::{Value, json};
use tokio::time::Instant;

use support::{TRACE_HEADER, sequence_number};

const STREAM_FIXTURE: &[u8] = include_bytes!("fixtures/stream_insert_modify_remove.json");
const POISON_FIXTURE: &[u8] = include_bytes!("fixtures/stream_poison.json");
const SCHEDULE_FIXTURE: &str = include_str!("fixtures/scheduled_event.json");

// ---------------------------------------------------------------------------
// Test rig

/// One entry as it was offered to the bus, and what the bus answered.
#[derive(Debug, Clone)]
struct Sent {
    event_id: Option<EventId>,
    size: usize,
    result: Option<EntryResult>,
}

/// Wraps a publisher and keeps every call: entry count, sizes and results.
#[derive(Debug)]
struct Recording<P> {
    inner: P,
    calls: Mutex<Vec<Vec<Sent>>>,
}

impl<P> Recording<P> {
    fn new(inner: P) -> Self {
        Self {
            inner,
            calls: Mutex::new(Vec::new()),
        }
    }

    fn calls(&self) -> Vec<Vec<Sent>> {
        self.calls.lock().expect("not poisoned").clone()
    }
}

impl<P: Publisher> Publisher for Recording<P> {
    async fn put_events(&self, entries: &[&BusEntry]) -> Result<Vec<EntryResult>, PortError> {
        let outcome = self.inner.put_events(entries).await;
        let sent = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| Sent {
                event_id: entry.event_id,
                size: entry.size(),
                result: outcome.as_ref().ok().and_then(|r| r.get(i).cloned()),
            })
            .collect();
        self.calls.lock().expect("not poisoned").push(sent);
        outcome
    }
}

/// The DLQ, shared so the test can read it while the relay owns the sink.
#[derive(Debug, Clone, Default)]
struct SharedDlq(Arc<MemoryDeadLetters>);

impl DeadLetterSink for SharedDlq {
    async fn send(&self, letter: &RelayDeadLetter) -> Result<(), PortError> {
        self.0.send(letter).await
    }
}

type Bus = Recording<FaultyPublisher<MemoryPublisher>>;

struct Rig {
    handler: Handler<Bus, MemoryOutbox, SharedDlq>,
    dlq: Arc<MemoryDeadLetters>,
}

/// Millisecond backoff: the retry paths run for real, just quickly.
fn fast_relay() -> RelayConfig {
    RelayConfig {
        backoff: FullJitter::new(Duration::from_millis(1), Duration::from_millis(5)),
        ..RelayConfig::default()
    }
}

fn rig() -> Rig {
    rig_with(fast_relay())
}

fn rig_with(relay: RelayConfig) -> Rig {
    let dlq = SharedDlq::default();
    let shared = Arc::clone(&dlq.0);
    let relay = Relay::new(
        Recording::new(FaultyPublisher::new(MemoryPublisher::default())),
        MemoryOutbox::default(),
        dlq,
        relay,
    );
    let config = HandlerConfig {
        safety_margin: Duration::ZERO,
        // The harness does not capture direct stdout writes.
        emit_metrics: false,
        ..HandlerConfig::default()
    };
    Rig {
        handler: Handler::new(relay, config),
        dlq: shared,
    }
}

/// A Lambda context whose deadline is `budget` away.
fn context(budget: Duration) -> Context {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch");
    let mut context = Context::default();
    "8f5f8f3e-0000-4000-8000-000000000000".clone_into(&mut context.request_id);
    context.deadline = u64::try_from((now + budget).as_millis()).expect("fits");
    context
}

const AMPLE: Duration = Duration::from_secs(30);
/// Long enough for many millisecond retries, short enough to keep the
/// suite fast when a fault never clears.
const SHORT: Duration = Duration::from_millis(60);

impl Rig {
    async fn store(&self, records: &[OutboxRecord]) {
        for record in records {
            self.handler
                .relay()
                .store()
                .insert(record)
                .await
                .expect("in-memory insert");
        }
    }

    async fn invoke(&self, payload: Value, budget: Duration) -> Result<Response, HandlerError> {
        self.handler
            .handle_json(LambdaEvent::new(payload, context(budget)))
            .await
    }

    async fn stream(&self, payload: Value, budget: Duration) -> DynamoDbEventResponse {
        match self.invoke(payload, budget).await.expect("handled") {
            Response::Stream(response) => response,
            Response::Sweep(summary) => panic!("a stream batch answered as a sweep: {summary:?}"),
        }
    }

    async fn sweep(&self) -> SweepSummary {
        let schedule = serde_json::from_str(SCHEDULE_FIXTURE).expect("fixture is JSON");
        match self.invoke(schedule, AMPLE).await.expect("handled") {
            Response::Sweep(summary) => summary,
            Response::Stream(response) => panic!("a schedule answered as a stream: {response:?}"),
        }
    }

    fn faults(&self) -> &FaultyPublisher<MemoryPublisher> {
        &self.handler.relay().publisher().inner
    }

    /// Event ids that reached the bus, in order.
    fn on_bus(&self) -> Vec<EventId> {
        self.faults()
            .inner()
            .published()
            .iter()
            .map(|entry| entry.event_id.expect("outbox entries carry their id"))
            .collect()
    }

    fn calls(&self) -> Vec<Vec<Sent>> {
        self.handler.relay().publisher().calls()
    }

    fn letters(&self) -> Vec<RelayDeadLetter> {
        self.dlq.letters()
    }

    fn item(&self, event_id: EventId) -> OutboxRecord {
        self.handler
            .relay()
            .store()
            .record(event_id)
            .expect("item in the outbox")
    }
}

fn failures(response: &DynamoDbEventResponse) -> Vec<Option<String>> {
    response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.clone())
        .collect()
}

fn records(count: usize) -> Vec<OutboxRecord> {
    let now = Timestamp::now();
    (0..count).map(|n| support::signed_in(n, now)).collect()
}

fn ids(records: &[OutboxRecord]) -> Vec<EventId> {
    records.iter().map(|r| r.event_id).collect()
}

fn stream_batch(payload: Value) -> dynamodb::Event {
    match Invocation::parse(payload).expect("a stream batch") {
        Invocation::Stream(batch) => batch,
        other => panic!("not a stream batch: {other:?}"),
    }
}

fn assert_each_once(on_bus: &[EventId], expected: &[EventId]) {
    let distinct: HashSet<_> = on_bus.iter().collect();
    assert_eq!(
        distinct.len(),
        on_bus.len(),
        "an event reached the bus twice"
    );
    let expected: HashSet<_> = expected.iter().collect();
    assert_eq!(distinct, expected);
}

// ---------------------------------------------------------------------------
// Stream: what is published, what is ignored

#[tokio::test]
async fn modify_and_remove_records_are_ignored_and_counted() {
    let rig = rig();
    let batch = stream_batch(serde_json::from_slice(STREAM_FIXTURE).expect("JSON"));
    let inserted = OutboxRecord::decode_valid(batch.records[0].change.new_image.clone())
        .expect("the fixture's INSERT is an outbox record");
    rig.store(std::slice::from_ref(&inserted)).await;

    let outcome = rig
        .handler
        .process_stream(batch, Instant::now() + AMPLE)
        .await;

    assert_eq!(outcome.inserts, 1);
    assert_eq!(outcome.ignored, 2, "the MODIFY and the TTL REMOVE");
    assert_eq!(outcome.relay.published, 1);
    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(rig.on_bus(), [inserted.event_id]);
    assert!(rig.letters().is_empty());
}

#[tokio::test]
async fn published_events_carry_the_exact_detail_and_trace_header_and_leave_the_pending_index() {
    let rig = rig();
    let records = records(3);
    rig.store(&records).await;

    let response = rig.stream(support::inserts(&records), AMPLE).await;

    assert!(response.batch_item_failures.is_empty());
    let published = rig.faults().inner().published();
    assert_eq!(published.len(), 3);
    for (entry, record) in published.iter().zip(&records) {
        assert_eq!(entry.event_id, Some(record.event_id));
        assert_eq!(
            entry.detail, record.detail,
            "the detail is published verbatim"
        );
        assert_eq!(entry.source, "interview-companion.auth");
        assert_eq!(entry.detail_type, "user.signed_in");
        assert_eq!(entry.trace_header.as_deref(), Some(TRACE_HEADER));
        let item = rig.item(record.event_id);
        assert!(item.published_at.is_some());
        assert!(item.bus_event_id.is_some());
        assert!(!item.is_pending(), "still in the pending index");
    }
}

// ---------------------------------------------------------------------------
// Poison records

#[tokio::test]
async fn a_poison_record_in_a_batch_of_100_goes_to_the_dlq_without_blocking_the_other_99() {
    let rig = rig();
    let records = records(100);
    rig.store(&records).await;
    let poison_image = support::undecodable_image(&records[50]);
    let batch = support::batch(
        records
            .iter()
            .enumerate()
            .map(|(n, record)| {
                if n == 50 {
                    support::insert_image(n, &record.event_id.to_string(), poison_image.clone())
                } else {
                    support::insert(n, record)
                }
            })
            .collect(),
    );

    let response = rig.stream(batch, AMPLE).await;

    assert!(
        response.batch_item_failures.is_empty(),
        "the poison record must not hold the shard: {response:?}"
    );
    let mut expected = ids(&records);
    expected.remove(50);
    assert_each_once(&rig.on_bus(), &expected);

    let letters = rig.letters();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.stage, FailureStage::Decode);
    assert_eq!(letter.error_code, codes::UNDECODABLE);
    assert!(letter.message.contains("detail"), "{}", letter.message);
    assert_eq!(
        letter.raw_image,
        Some(serde_json::to_value(&poison_image).expect("JSON")),
        "the DLQ keeps the image exactly as the stream delivered it"
    );
    assert_eq!(letter.sequence_number, Some(sequence_number(50)));
    assert_eq!(letter.attempts, 0, "poison is never retried");
}

#[tokio::test]
async fn undecodable_and_contract_invalid_images_are_dead_lettered_with_their_stage() {
    let rig = rig();
    let batch = stream_batch(serde_json::from_slice(POISON_FIXTURE).expect("JSON"));
    let valid = OutboxRecord::decode_valid(batch.records[0].change.new_image.clone())
        .expect("the first record is valid");
    rig.store(std::slice::from_ref(&valid)).await;

    let outcome = rig
        .handler
        .process_stream(batch, Instant::now() + AMPLE)
        .await;

    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(outcome.poison, 2);
    assert_eq!(rig.on_bus(), [valid.event_id]);
    let letters = rig.letters();
    let stages: Vec<_> = letters
        .iter()
        .map(|l| (l.stage, l.error_code.as_str(), l.sequence_number.clone()))
        .collect();
    assert_eq!(
        stages,
        [
            (
                FailureStage::Decode,
                codes::UNDECODABLE,
                Some(sequence_number(1))
            ),
            (
                FailureStage::Contract,
                codes::CONTRACT_INVALID,
                Some(sequence_number(2))
            ),
        ]
    );
    assert!(letters.iter().all(|l| l.raw_image.is_some()));
}

#[tokio::test]
async fn a_poison_record_is_reported_as_failed_not_lost_when_the_dlq_is_unavailable() {
    let rig = rig();
    let records = records(3);
    rig.store(&records).await;
    rig.dlq.unavailable.set(true);
    let batch = support::batch(vec![
        support::insert(0, &records[0]),
        support::insert_image(
            1,
            &records[1].event_id.to_string(),
            support::undecodable_image(&records[1]),
        ),
        support::insert(2, &records[2]),
    ]);

    let response = rig.stream(batch, AMPLE).await;

    assert_eq!(failures(&response), [Some(sequence_number(1))]);
    assert!(rig.letters().is_empty());
    assert_each_once(&rig.on_bus(), &[records[0].event_id, records[2].event_id]);
}

#[tokio::test]
async fn only_the_lowest_failing_sequence_number_is_reported() {
    let rig = rig();
    let records = records(4);
    rig.store(&records).await;
    // Poison at 1 and 3 fails first (the DLQ is down); the bus being down
    // fails 0 and 2 later. Only the lowest position may be reported, not
    // the first failure found.
    rig.dlq.unavailable.set(true);
    rig.faults().unavailable.set(true);
    let poison = |n: usize| {
        support::insert_image(
            n,
            &records[n].event_id.to_string(),
            support::contract_invalid_image(&records[n]),
        )
    };
    let batch = support::batch(vec![
        support::insert(0, &records[0]),
        poison(1),
        support::insert(2, &records[2]),
        poison(3),
    ]);

    let response = rig.stream(batch, SHORT).await;

    // Lambda resumes the shard at this record; anything later is retried
    // with it, so a second identifier would add nothing.
    assert_eq!(failures(&response), [Some(sequence_number(0))]);
}

// ---------------------------------------------------------------------------
// Retries and failures

#[tokio::test]
async fn throttled_entries_are_retried_alone_until_each_event_is_published_exactly_once() {
    let rig = rig();
    let records = records(100);
    rig.store(&records).await;
    rig.faults().fail_entries(Some(EntryFault {
        code: "ThrottlingException".to_owned(),
        ratio: 0.3,
    }));

    let outcome = rig
        .handler
        .process_stream(
            stream_batch(support::inserts(&records)),
            Instant::now() + AMPLE,
        )
        .await;

    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(outcome.relay.published, 100);
    assert!(rig.letters().is_empty());
    assert_each_once(&rig.on_bus(), &ids(&records));
    let forwarded = rig.faults().forwarded();
    assert_eq!(forwarded.len(), 100, "a succeeded entry was sent again");

    // Per event, every send but the last was throttled, and the last one
    // published it: nothing was resent after it had succeeded.
    let mut history: BTreeMap<EventId, Vec<Option<EntryResult>>> = BTreeMap::new();
    for sent in rig.calls().into_iter().flatten() {
        history
            .entry(sent.event_id.expect("id"))
            .or_default()
            .push(sent.result);
    }
    assert_eq!(history.len(), 100);
    let mut resends = 0;
    for (event_id, results) in &history {
        let (last, earlier) = results.split_last().expect("sent at least once");
        assert!(
            matches!(last, Some(EntryResult::Published { .. })),
            "{event_id}: {results:?}"
        );
        assert!(
            earlier.iter().all(|r| matches!(
                r,
                Some(EntryResult::Failed { code, .. }) if code == "ThrottlingException"
            )),
            "{event_id} was resent although it had not failed: {results:?}"
        );
        resends += earlier.len();
    }
    assert!(resends > 0, "the fault injected no throttling");
    assert_eq!(outcome.relay.resent_entries, resends);
    assert!(records.iter().all(|r| !rig.item(r.event_id).is_pending()));
}

#[tokio::test]
async fn bus_unavailable_for_the_whole_invocation_fails_at_the_first_sequence_number_and_dead_letters_nothing()
 {
    let rig = rig();
    let records = records(5);
    rig.store(&records).await;
    rig.faults().unavailable.set(true);

    let response = rig.stream(support::inserts(&records), SHORT).await;

    assert_eq!(failures(&response), [Some(sequence_number(0))]);
    assert!(rig.letters().is_empty());
    assert!(rig.on_bus().is_empty());
    for record in &records {
        let item = rig.item(record.event_id);
        assert_eq!(item.attempts, 1, "one failed invocation counted");
        assert!(item.is_pending(), "still pending, so the sweep can find it");
    }
}

#[tokio::test]
async fn an_event_failing_on_max_attempts_invocations_goes_to_the_dlq_as_retries_exhausted() {
    let rig = rig();
    let max_attempts = rig.handler.relay().config().max_attempts;
    let records = records(1);
    let event_id = records[0].event_id;
    rig.store(&records).await;
    rig.faults().unavailable.set(true);
    let batch = support::inserts(&records);

    for attempt in 1..max_attempts {
        let response = rig.stream(batch.clone(), SHORT).await;
        assert_eq!(
            failures(&response),
            [Some(sequence_number(0))],
            "invocation {attempt}"
        );
        assert!(rig.letters().is_empty(), "dead-lettered after {attempt}");
        assert_eq!(rig.item(event_id).attempts, attempt);
    }
    let response = rig.stream(batch, SHORT).await;

    assert!(
        response.batch_item_failures.is_empty(),
        "the shard moves on once the event is in the DLQ"
    );
    let letters = rig.letters();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.error_code, codes::RETRIES_EXHAUSTED);
    assert_eq!(letter.stage, FailureStage::Publish);
    assert_eq!(letter.attempts, max_attempts);
    assert_eq!(letter.event_id, Some(event_id));
    assert_eq!(
        letter.entry.as_ref().map(|e| e.detail.as_str()),
        Some(records[0].detail.as_str()),
        "the DLQ holds the full event, ready to redrive"
    );
    assert!(letter.first_failure_at <= letter.last_failure_at);
    let item = rig.item(event_id);
    assert!(item.dead_lettered_at.is_some());
    assert!(!item.is_pending());
}

#[tokio::test]
async fn permanent_entry_errors_go_to_the_dlq_with_their_error_code_and_are_not_retried() {
    let rig = rig();
    let records = records(3);
    rig.store(&records).await;
    rig.faults().fail_entries(Some(EntryFault {
        code: "InvalidArgument".to_owned(),
        ratio: 1.0,
    }));

    let response = rig.stream(support::inserts(&records), AMPLE).await;

    assert!(response.batch_item_failures.is_empty());
    let letters = rig.letters();
    assert_eq!(letters.len(), 3);
    for letter in &letters {
        assert_eq!(letter.error_code, "InvalidArgument");
        assert_eq!(letter.stage, FailureStage::Publish);
        assert!(letter.entry.is_some());
    }
    let sends: usize = rig.calls().iter().map(Vec::len).sum();
    assert_eq!(sends, 3, "a permanent error was retried");
    assert!(records.iter().all(|r| !rig.item(r.event_id).is_pending()));
}

#[tokio::test]
async fn an_entry_over_the_request_limit_goes_to_the_dlq_as_too_large() {
    let rig = rig_with(RelayConfig {
        max_request_bytes: 1000,
        ..fast_relay()
    });
    let now = Timestamp::now();
    let records = vec![
        support::signed_in(0, now),
        support::signed_in_padded(1, now, 1500),
        support::signed_in(2, now),
    ];
    assert!(records[1].bus_entry().size() > 1000);
    rig.store(&records).await;

    let response = rig.stream(support::inserts(&records), AMPLE).await;

    assert!(response.batch_item_failures.is_empty());
    let letters = rig.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].error_code, codes::TOO_LARGE);
    assert_eq!(letters[0].stage, FailureStage::Pack);
    assert_eq!(letters[0].event_id, Some(records[1].event_id));
    assert!(
        letters[0].entry.is_none(),
        "an entry over the limit would make the DLQ message too large as well"
    );
    assert_each_once(&rig.on_bus(), &[records[0].event_id, records[2].event_id]);
    assert!(
        rig.calls()
            .iter()
            .flatten()
            .all(|s| s.event_id != Some(records[1].event_id)),
        "an oversized entry was offered to the bus"
    );
}

#[tokio::test]
async fn requests_never_exceed_ten_entries_or_the_byte_limit() {
    let limit = 4000;
    let rig = rig_with(RelayConfig {
        max_request_bytes: limit,
        ..fast_relay()
    });
    let now = Timestamp::now();
    // Mixed sizes, so that both limits bind at different points.
    let records: Vec<_> = (0..57)
        .map(|n| {
            if n % 4 == 0 {
                support::signed_in_padded(n, now, 200 + 20 * n)
            } else {
                support::signed_in(n, now)
            }
        })
        .collect();
    rig.store(&records).await;

    let response = rig.stream(support::inserts(&records), AMPLE).await;

    assert!(response.batch_item_failures.is_empty());
    assert!(rig.letters().is_empty());
    assert_each_once(&rig.on_bus(), &ids(&records));
    let calls = rig.calls();
    for call in &calls {
        let bytes: usize = call.iter().map(|s| s.size).sum();
        assert!(call.len() <= 10, "{} entries in one request", call.len());
        assert!(bytes <= limit, "{bytes} bytes in one request");
    }
    assert!(
        calls.iter().any(|c| c.len() < 10) && calls.iter().any(|c| c.len() == 10),
        "both limits should have shaped the requests: {:?}",
        calls.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_default_limits_pack_ten_entries_per_request_in_stream_order() {
    let rig = rig();
    let records = records(57);
    rig.store(&records).await;

    let response = rig.stream(support::inserts(&records), AMPLE).await;

    assert!(response.batch_item_failures.is_empty());
    let sizes: Vec<_> = rig.calls().iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 10, 10, 10, 7]);
    assert_eq!(rig.on_bus(), ids(&records), "stream order is kept");
}

// ---------------------------------------------------------------------------
// Sweep

#[tokio::test]
async fn the_sweep_publishes_old_pending_items_and_skips_published_and_recent_ones() {
    let rig = rig();
    let ten_minutes_ago =
        Timestamp::from_datetime(chrono::Utc::now() - chrono::Duration::minutes(10));
    let missed = support::signed_in(0, ten_minutes_ago);
    let mut published = support::signed_in(1, ten_minutes_ago);
    published.published_at = Some(Timestamp::now());
    published.bus_event_id = Some("already-on-the-bus".to_owned());
    published.pending_shard = None;
    let recent = support::signed_in(2, Timestamp::now());
    rig.store(&[missed.clone(), published.clone(), recent.clone()])
        .await;

    let summary = rig.sweep().await;

    assert_eq!(summary.found, 1);
    assert_eq!(summary.published, 1);
    assert_eq!(summary.still_failing, 0);
    assert!(
        (599..700).contains(&summary.oldest_pending_age_seconds),
        "{summary:?}"
    );
    assert_eq!(rig.on_bus(), [missed.event_id]);
    assert!(!rig.item(missed.event_id).is_pending());
    assert!(rig.item(recent.event_id).is_pending(), "left to the stream");

    let again = rig.sweep().await;
    assert_eq!(again.found, 0, "a published item is never swept again");
    assert_eq!(again.oldest_pending_age_seconds, 0);
    assert_eq!(rig.on_bus(), [missed.event_id]);
}

#[tokio::test]
async fn a_sweep_while_the_bus_is_down_leaves_items_pending_and_reports_them_still_failing() {
    let rig = rig();
    let old = Timestamp::from_datetime(chrono::Utc::now() - chrono::Duration::minutes(20));
    let missed = support::signed_in(0, old);
    rig.store(std::slice::from_ref(&missed)).await;
    rig.faults().unavailable.set(true);

    let schedule = serde_json::from_str(SCHEDULE_FIXTURE).expect("JSON");
    let Response::Sweep(summary) = rig.invoke(schedule, SHORT).await.expect("handled") else {
        panic!("not a sweep");
    };

    assert_eq!(summary.found, 1);
    assert_eq!(summary.still_failing, 1);
    assert!(summary.oldest_pending_age_seconds >= 1199, "{summary:?}");
    assert!(rig.item(missed.event_id).is_pending());
    assert!(rig.letters().is_empty());
}

// ---------------------------------------------------------------------------
// The Lambda surface

#[tokio::test]
async fn an_eventbridge_event_other_than_the_schedule_is_refused() {
    let rig = rig();
    let mut event: Value = serde_json::from_str(SCHEDULE_FIXTURE).expect("JSON");
    event["source"] = json!("interview-companion.auth");
    event["detail-type"] = json!("user.signed_in");

    let error = rig.invoke(event, AMPLE).await.expect_err("refused");

    assert!(matches!(
        error,
        HandlerError::UnexpectedEventBridgeEvent { .. }
    ));
    let diagnostic = Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "UnknownEvent");
    assert!(rig.calls().is_empty());
}

#[tokio::test]
async fn an_unknown_or_malformed_payload_fails_with_a_stable_error_type() {
    let rig = rig();
    let unknown = rig
        .invoke(json!({"hello": "world"}), AMPLE)
        .await
        .expect_err("refused");
    assert_eq!(Diagnostic::from(unknown).error_type, "UnknownEvent");

    let malformed = rig
        .invoke(json!({"Records": "not a list"}), AMPLE)
        .await
        .expect_err("refused");
    let diagnostic = Diagnostic::from(malformed);
    assert_eq!(diagnostic.error_type, "MalformedEvent");
    assert!(
        diagnostic.error_message.contains("invalid type"),
        "the cause is kept: {}",
        diagnostic.error_message
    );
}

#[test]
fn the_payload_is_classified_in_the_same_pass_that_decodes_it() {
    let stream = Invocation::from_slice(STREAM_FIXTURE).expect("a stream batch");
    assert!(matches!(&stream, Invocation::Stream(batch) if batch.records.len() == 3));
    assert_eq!(
        Invocation::from_slice(SCHEDULE_FIXTURE.as_bytes()).expect("a schedule"),
        Invocation::Sweep
    );
    assert_eq!(
        Invocation::from_slice(
            br#"{"detail-type":"user.signed_in","source":"interview-companion.auth","detail":{}}"#
        )
        .expect("an EventBridge event"),
        Invocation::OtherEventBridge {
            event_source: Some("interview-companion.auth".to_owned()),
            detail_type: "user.signed_in".to_owned(),
        }
    );
    assert_eq!(
        Invocation::from_slice(br#"{"hello":"world"}"#).expect("an object"),
        Invocation::Unknown
    );
    assert!(Invocation::from_slice(b"[1, 2]").is_err());
}

#[tokio::test]
async fn responses_serialise_as_lambda_reads_them() {
    let rig = rig();
    let records = records(2);
    rig.store(&records).await;
    rig.faults().unavailable.set(true);

    let response = rig
        .invoke(support::inserts(&records), SHORT)
        .await
        .expect("handled");

    assert_eq!(
        serde_json::to_value(&response).expect("JSON"),
        json!({"batchItemFailures": [{"itemIdentifier": sequence_number(0)}]})
    );
    let sweep = serde_json::to_value(Response::Sweep(SweepSummary::default())).expect("JSON");
    assert_eq!(
        sweep,
        json!({"found": 0, "published": 0, "deadLettered": 0, "stillFailing": 0, "oldestPendingAgeSeconds": 0})
    );
}

#[test]
fn the_budget_is_the_deadline_less_the_safety_margin_or_a_default_without_one() {
    let config = HandlerConfig {
        safety_margin: Duration::from_secs(2),
        ..HandlerConfig::default()
    };
    let handler = Handler::new(
        Relay::new(
            MemoryPublisher::default(),
            MemoryOutbox::default(),
            MemoryDeadLetters::default(),
            RelayConfig::default(),
        ),
        config,
    );
    let now = Instant::now();

    let budget = handler.deadline(&context(Duration::from_secs(10)), now) - now;
    assert!(
        budget <= Duration::from_secs(8) && budget > Duration::from_secs(7),
        "{budget:?}"
    );
    let past = handler.deadline(&context(Duration::ZERO), now);
    assert_eq!(past, now, "no time left means no time, not a panic");
    let unknown = handler.deadline(&Context::default(), now) - now;
    assert_eq!(unknown, outbox_relay::handler::BUDGET_WITHOUT_DEADLINE);
}

// ---------------------------------------------------------------------------
// Fixtures

#[test]
fn the_fixtures_hold_real_outbox_images() {
    let batch = stream_batch(serde_json::from_slice(STREAM_FIXTURE).expect("JSON"));
    let names: Vec<_> = batch
        .records
        .iter()
        .map(|r| r.event_name.as_str())
        .collect();
    assert_eq!(names, ["INSERT", "MODIFY", "REMOVE"]);
    OutboxRecord::decode_valid(batch.records[0].change.new_image.clone()).expect("INSERT");
    let modified =
        OutboxRecord::decode_valid(batch.records[1].change.new_image.clone()).expect("MODIFY");
    assert!(modified.published_at.is_some());
    assert!(batch.records[2].change.new_image.is_empty());

    let poison = stream_batch(serde_json::from_slice(POISON_FIXTURE).expect("JSON"));
    OutboxRecord::decode_valid(poison.records[0].change.new_image.clone()).expect("valid");
    for record in &poison.records[1..] {
        assert!(OutboxRecord::decode_valid(record.change.new_image.clone()).is_err());
    }
}

/// The checked-in fixtures are what the builders produce today, so a change
/// to the outbox record cannot leave them stale. Rewrite them with
/// `UPDATE_FIXTURES=1 cargo test -p outbox-relay --test handler fixtures`.
#[test]
fn the_fixtures_match_their_builders() {
    let id = |tail: &str| -> EventId {
        format!("019ad3a0-5c1e-7b2a-9f00-0000000000{tail}")
            .parse()
            .expect("a UUID")
    };
    let at = |text: &str| Timestamp::parse(text).expect("a timestamp");
    let signed_in = support::signed_in_with_id(id("0a"), 1, at("2026-11-29T11:46:06.200Z"));
    let expired = support::signed_in_with_id(id("0b"), 2, at("2026-11-14T09:12:44.031Z"));
    let stream = support::batch(vec![
        support::insert(0, &signed_in),
        support::modify(1, &signed_in),
        support::ttl_remove(2, &expired),
    ]);

    let valid = support::signed_in_with_id(id("0c"), 3, at("2026-11-29T11:47:00.000Z"));
    let undecodable = support::signed_in_with_id(id("0d"), 4, at("2026-11-29T11:47:00.100Z"));
    let invalid = support::signed_in_with_id(id("0e"), 5, at("2026-11-29T11:47:00.200Z"));
    let poison = support::batch(vec![
        support::insert(0, &valid),
        support::insert_image(
            1,
            &undecodable.event_id.to_string(),
            support::undecodable_image(&undecodable),
        ),
        support::insert_image(
            2,
            &invalid.event_id.to_string(),
            support::contract_invalid_image(&invalid),
        ),
    ]);

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (name, mut value) in [
        ("stream_insert_modify_remove.json", stream),
        ("stream_poison.json", poison),
    ] {
        tidy(&mut value);
        let generated = serde_json::to_string_pretty(&value).expect("JSON") + "\n";
        let path = dir.join(name);
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            std::fs::write(&path, &generated).expect("written");
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            checked_in,
            generated,
            "{} is stale; rewrite it with UPDATE_FIXTURES=1",
            path.display()
        );
    }
}

/// Drops what Lambda leaves out rather than sending empty: unset optional
/// fields, and images a NEW_IMAGE stream does not carry.
fn tidy(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, v| {
                !(v.is_null()
                    || (matches!(key.as_str(), "OldImage" | "NewImage")
                        && v.as_object().is_some_and(serde_json::Map::is_empty)))
            });
            map.values_mut().for_each(tidy);
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}
