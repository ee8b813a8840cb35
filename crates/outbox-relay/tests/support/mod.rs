//! Builders of outbox records and of the stream events Lambda delivers for
//! them, shared by the handler tests and the benchmark.

#![allow(dead_code)]

use auth_events_core::contract::{
    DisplayName, Email, EventId, PhotoUrl, Provider, Timestamp, UserAction, UserEvent, UserId,
};
use auth_events_core::outbox::{ATTR_EVENT_ID, DEFAULT_TTL, OutboxRecord};
use aws_lambda_events::event::dynamodb::{
    Event, EventRecord, StreamRecord, StreamViewType, UserIdentity,
};
use serde_dynamo::{AttributeValue, Item};
use serde_json::Value;

pub const TRACE_HEADER: &str =
    "Root=1-6929dd1e-5759e988bd862e3fe1be46a9;Parent=53995c3f42cd8ad8;Sampled=1";
pub const STREAM_ARN: &str =
    "arn:aws:dynamodb:eu-west-1:123456789012:table/dev-outbox/stream/2026-11-29T00:00:00.000";

/// A `user.signed_in` outbox record as the token exchange writes it.
pub fn signed_in(n: usize, created_at: Timestamp) -> OutboxRecord {
    signed_in_with_id(EventId::new(), n, created_at)
}

pub fn signed_in_with_id(event_id: EventId, n: usize, created_at: Timestamp) -> OutboxRecord {
    let mut event = UserEvent::new(
        UserAction::SignedIn,
        UserId::parse(format!("firebase-uid-{n:04}")).expect("valid uid"),
        Email::parse(format!("user{n}@example.com")).expect("valid email"),
        created_at,
    );
    event.detail.event_id = Some(event_id);
    event.detail.display_name = Some(DisplayName::parse(format!("User {n}")).expect("valid"));
    event.detail.photo_url =
        Some(PhotoUrl::parse(format!("https://lh3.googleusercontent.com/a/u{n}")).expect("valid"));
    event.detail.provider = Some(Provider::parse("google.com").expect("valid"));
    OutboxRecord::new(
        &event,
        created_at,
        DEFAULT_TTL,
        Some(TRACE_HEADER.to_owned()),
    )
}

/// A record whose entry alone is about `bytes` long.
pub fn signed_in_padded(n: usize, created_at: Timestamp, bytes: usize) -> OutboxRecord {
    let mut event = UserEvent::new(
        UserAction::SignedIn,
        UserId::parse(format!("firebase-uid-{n:04}")).expect("valid uid"),
        Email::parse(format!("user{n}@example.com")).expect("valid email"),
        created_at,
    );
    let path = "p".repeat(bytes.min(2000));
    event.detail.photo_url =
        Some(PhotoUrl::parse(format!("https://example.com/{path}")).expect("valid"));
    OutboxRecord::new(&event, created_at, DEFAULT_TTL, None)
}

pub fn sequence_number(n: usize) -> String {
    format!("{}", 442_158_450_000_000_001_745_043u128 + n as u128)
}

fn keys(event_id: &str) -> Item {
    let mut keys = Item::default();
    keys.insert(
        ATTR_EVENT_ID.to_owned(),
        AttributeValue::S(event_id.to_owned()),
    );
    keys
}

fn stream_record(n: usize, event_name: &str, event_id: &str, new_image: Item) -> EventRecord {
    let mut change = StreamRecord::default();
    // Fixed, so the fixtures built from these records are reproducible.
    change.approximate_creation_date_time =
        chrono::DateTime::from_timestamp(1_795_866_366, 0).unwrap_or_default();
    change.keys = keys(event_id);
    change.size_bytes = i64::try_from(
        serde_json::to_string(&new_image)
            .expect("an item serialises")
            .len(),
    )
    .unwrap_or(i64::MAX);
    change.new_image = new_image;
    change.sequence_number = Some(sequence_number(n));
    change.stream_view_type = Some(StreamViewType::NewImage);

    let mut record = EventRecord::default();
    "eu-west-1".clone_into(&mut record.aws_region);
    record.change = change;
    record.event_id = format!("7de3041dd034e6b6{n:016x}");
    event_name.clone_into(&mut record.event_name);
    record.event_source = Some("aws:dynamodb".to_owned());
    record.event_version = Some("1.1".to_owned());
    record.event_source_arn = Some(STREAM_ARN.to_owned());
    record
}

/// The INSERT the stream delivers for `record`, at batch position `n`.
pub fn insert(n: usize, record: &OutboxRecord) -> EventRecord {
    insert_image(n, &record.event_id.to_string(), record.to_item())
}

/// An INSERT of an arbitrary image, e.g. one that is not an outbox record.
pub fn insert_image(n: usize, event_id: &str, image: Item) -> EventRecord {
    stream_record(n, "INSERT", event_id, image)
}

/// The MODIFY the relay's own "published" update produces.
pub fn modify(n: usize, record: &OutboxRecord) -> EventRecord {
    let mut published = record.clone();
    published.published_at = Some(record.created_at);
    published.bus_event_id = Some("a3d3c9e0-0000-4000-8000-000000000000".to_owned());
    published.pending_shard = None;
    stream_record(
        n,
        "MODIFY",
        &record.event_id.to_string(),
        published.to_item(),
    )
}

/// The REMOVE of a TTL delete: no image with a NEW_IMAGE stream, and the
/// DynamoDB service as the actor.
pub fn ttl_remove(n: usize, record: &OutboxRecord) -> EventRecord {
    let mut remove = stream_record(n, "REMOVE", &record.event_id.to_string(), Item::default());
    let mut identity = UserIdentity::default();
    "Service".clone_into(&mut identity.type_);
    "dynamodb.amazonaws.com".clone_into(&mut identity.principal_id);
    remove.user_identity = Some(identity);
    remove
}

/// The JSON payload Lambda hands the function for these records.
pub fn batch(records: Vec<EventRecord>) -> Value {
    let mut event = Event::default();
    event.records = records;
    serde_json::to_value(&event).expect("a stream event serialises")
}

/// A batch of INSERTs of `records`, in order.
pub fn inserts(records: &[OutboxRecord]) -> Value {
    batch(
        records
            .iter()
            .enumerate()
            .map(|(n, record)| insert(n, record))
            .collect(),
    )
}

/// Without `detail`: not an outbox record at all.
pub fn undecodable_image(record: &OutboxRecord) -> Item {
    let mut image = record.to_item();
    image.remove("detail");
    image
}

/// An outbox record whose detail breaks the contract (a malformed email).
pub fn contract_invalid_image(record: &OutboxRecord) -> Item {
    let mut broken = record.clone();
    let mut detail: Value = serde_json::from_str(&broken.detail).expect("detail is JSON");
    detail["email"] = Value::String("not-an-email".to_owned());
    broken.detail = detail.to_string();
    broken.to_item()
}
