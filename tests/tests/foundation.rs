//! The foundation against moto: migrations, and the outbox codec through the
//! real SDK and the real stream.

use auth_events_aws::migrate::{Change, Migrator};
use auth_events_core::contract::{Email, Timestamp, UserAction, UserEvent, UserId};
use auth_events_core::outbox::{DEFAULT_TTL, OutboxRecord, PENDING_INDEX};
use auth_events_core::ports::{Inserted, OutboxStore};
use auth_events_tests::spawn_stack;
use aws_sdk_dynamodb::types::{KeyType, StreamViewType, TimeToLiveStatus};

fn record(user: &str) -> OutboxRecord {
    let event = UserEvent::new(
        UserAction::SignedIn,
        UserId::parse(user).expect("valid"),
        Email::parse(format!("{user}@example.com")).expect("valid"),
        Timestamp::now(),
    );
    OutboxRecord::new(
        &event,
        Timestamp::now(),
        DEFAULT_TTL,
        Some("Root=1-abc".to_owned()),
    )
}

#[tokio::test]
async fn migrate_creates_the_three_tables_with_stream_ttl_and_pending_index() {
    let stack = spawn_stack().await;
    let created: Vec<_> = stack
        .migrate_changes
        .iter()
        .filter(|c| matches!(c, Change::CreatedTable(_)))
        .collect();
    assert_eq!(created.len(), 3, "{:?}", stack.migrate_changes);

    let outbox = stack
        .dynamodb
        .describe_table()
        .table_name(stack.names.outbox_table())
        .send()
        .await
        .expect("outbox exists")
        .table
        .expect("description");
    let hash = outbox
        .key_schema()
        .iter()
        .find(|k| k.key_type() == &KeyType::Hash)
        .expect("hash key");
    assert_eq!(hash.attribute_name(), "eventId");
    let stream = outbox.stream_specification().expect("stream configured");
    assert!(stream.stream_enabled());
    assert_eq!(stream.stream_view_type(), Some(&StreamViewType::NewImage));
    let index = outbox
        .global_secondary_indexes()
        .iter()
        .find(|i| i.index_name() == Some(PENDING_INDEX))
        .expect("pending index");
    let index_keys: Vec<_> = index
        .key_schema()
        .iter()
        .map(aws_sdk_dynamodb::types::KeySchemaElement::attribute_name)
        .collect();
    assert_eq!(index_keys, ["pendingShard", "createdAt"]);

    for (table, key) in [
        (stack.names.users_table(), "userId"),
        (stack.names.processed_table(), "eventId"),
    ] {
        let description = stack
            .dynamodb
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .expect("exists");
        let schema = description.table().expect("description").key_schema();
        assert_eq!(schema[0].attribute_name(), key, "{table}");
    }

    for table in [stack.names.outbox_table(), stack.names.processed_table()] {
        let ttl = stack
            .dynamodb
            .describe_time_to_live()
            .table_name(&table)
            .send()
            .await
            .expect("ttl described");
        let ttl = ttl.time_to_live_description().expect("ttl description");
        assert_eq!(
            ttl.time_to_live_status(),
            Some(&TimeToLiveStatus::Enabled),
            "{table}"
        );
        assert_eq!(ttl.attribute_name(), Some("expiresAt"), "{table}");
    }
}

#[tokio::test]
async fn a_second_migrate_changes_nothing() {
    let stack = spawn_stack().await;
    let migrator = Migrator::new(&stack.sdk, stack.names.clone());
    assert_eq!(
        migrator.apply_tables().await.expect("tables"),
        Vec::<Change>::new()
    );
    assert_eq!(
        migrator.apply_messaging().await.expect("messaging"),
        Vec::<Change>::new()
    );
}

#[tokio::test]
async fn an_outbox_record_reads_back_identically_through_the_sdk_and_the_stream() {
    let stack = spawn_stack().await;
    let outbox = stack.outbox();
    let written = record("codec-user");
    assert_eq!(
        outbox.insert(&written).await.expect("inserted"),
        Inserted::New
    );
    assert_eq!(
        outbox.insert(&written).await.expect("idempotent"),
        Inserted::AlreadyThere
    );

    let read = outbox
        .get(written.event_id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(read, written);

    let streams = aws_sdk_dynamodbstreams::Client::new(&stack.sdk);
    let stream_arn = stack.outbox_stream_arn().await;
    let shard = streams
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await
        .expect("stream described")
        .stream_description
        .and_then(|d| d.shards.and_then(|s| s.into_iter().next()))
        .expect("a shard");
    let iterator = streams
        .get_shard_iterator()
        .stream_arn(&stream_arn)
        .shard_id(shard.shard_id().expect("shard id"))
        .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator
        .expect("iterator value");
    let records = streams
        .get_records()
        .shard_iterator(iterator)
        .send()
        .await
        .expect("records");
    let insert = records
        .records()
        .iter()
        .find(|r| {
            r.event_name()
                .map(aws_sdk_dynamodbstreams::types::OperationType::as_str)
                == Some("INSERT")
        })
        .expect("an INSERT record");
    let image = insert
        .dynamodb()
        .and_then(|d| d.new_image())
        .expect("new image")
        .clone();
    let from_stream = OutboxRecord::decode_valid(serde_dynamo::Item::from(image)).expect("decodes");
    assert_eq!(from_stream, written);
}
