//! Guarantee 4 against DynamoDB (moto): any permutation of a set of events,
//! with any duplicates, leaves the Users table as applying each event once
//! in timestamp order would.

use std::collections::HashMap;

use auth_events_core::profile::{Applied, WriteCase, apply};
use auth_events_core::testing::{MemoryProfileStore, sign_in as update};
use auth_events_tests::{Stack, spawn_stack};
use aws_sdk_dynamodb::types::AttributeValue;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

type Item = HashMap<String, AttributeValue>;

/// The Users items by user id, without `updatedAt` (the wall-clock time of
/// the last write, which no two runs share).
async fn users(stack: &Stack) -> HashMap<String, Item> {
    stack
        .scan(&stack.names.users_table())
        .await
        .into_iter()
        .map(|mut item| {
            item.remove("updatedAt");
            let id = item["userId"].as_s().expect("string key").clone();
            (id, item)
        })
        .collect()
}

/// The model's Users items in the table's representation, without
/// `updatedAt`.
fn model_users(model: &MemoryProfileStore, users: &[&str]) -> HashMap<String, Item> {
    users
        .iter()
        .filter_map(|user| model.user(user))
        .map(|item| {
            let mut item: Item = serde_dynamo::to_item(&item).expect("a Users item");
            item.remove("updatedAt");
            (item["userId"].as_s().expect("string key").clone(), item)
        })
        .collect()
}

#[test]
fn any_permutation_with_duplicates_gives_the_timestamp_order_users_items() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut runner = TestRunner::new(Config {
        cases: 12,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec((0usize..3, 0i64..40), 1..=20),
        prop::collection::vec(any::<prop::sample::Index>(), 0..15),
        any::<u64>(),
    );
    runner
        .run(&strategy, |(events, duplicates, seed)| {
            runtime.block_on(async {
                let names = ["ann", "bob", "cy"];
                let updates: Vec<_> = events
                    .iter()
                    .enumerate()
                    .map(|(i, (user, millis))| update(names[*user], *millis, &format!("n{i}")))
                    .collect();

                // The reference is the specification itself: the in-memory
                // model of UserItem::apply, fed each event once in order.
                let reference = MemoryProfileStore::applied_in_order(&updates).await;

                let shuffled = spawn_stack().await;
                let mut deliveries = updates.clone();
                deliveries.extend(duplicates.iter().map(|i| i.get(&updates).clone()));
                fastrand::Rng::with_seed(seed).shuffle(&mut deliveries);
                for u in &deliveries {
                    apply(&shuffled.profile_store(), u).await.expect("applied");
                }
                prop_assert_eq!(users(&shuffled).await, model_users(&reference, &names));
                Ok(())
            })
        })
        .expect("order independence holds");
}

/// On moto serving one request at a time: DynamoDB isolates transactions,
/// moto's threaded server does not (it takes no lock and restores a deep
/// copy of the table on cancellation; a lost signInCount increment was seen
/// on it). The eight clients still interleave their conditional writes.
#[tokio::test]
async fn eight_concurrent_appliers_of_overlapping_events_converge() {
    let stack = auth_events_tests::spawn_serial_stack().await;
    let names = ["ann", "bob"];
    let updates: Vec<_> = (0..24i64)
        .map(|i| {
            update(
                names[usize::try_from(i % 2).unwrap_or(0)],
                (i * 7) % 30,
                &format!("c{i}"),
            )
        })
        .collect();
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let store = stack.profile_store();
            let mine: Vec<_> = updates.iter().skip(task).step_by(3).cloned().collect();
            tokio::spawn(async move {
                let backoff = auth_events_core::retry::FullJitter::new(
                    std::time::Duration::from_millis(2),
                    std::time::Duration::from_millis(50),
                )
                .with_max_times(20);
                for u in mine {
                    auth_events_core::profile::apply_with_retries(&store, &u, backoff)
                        .await
                        .expect("applied despite contention");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task finished");
    }
    let model = MemoryProfileStore::applied_in_order(&updates).await;
    assert_eq!(users(&stack).await, model_users(&model, &names));
}

#[tokio::test]
async fn a_redelivered_event_is_a_duplicate_and_the_first_says_first_sign_in() {
    let stack = spawn_stack().await;
    let store = stack.profile_store();
    let first = update("ann", 0, "ann");
    assert_eq!(
        apply(&store, &first).await.expect("applied"),
        Applied::FirstSignIn
    );
    let before = users(&stack).await;
    assert_eq!(
        apply(&store, &first).await.expect("applied"),
        Applied::Duplicate
    );
    assert_eq!(users(&stack).await, before);
    assert_eq!(stack.scan(&stack.names.processed_table()).await.len(), 1);
}

#[tokio::test]
async fn the_users_item_keeps_the_seeds_attribute_names_and_types() {
    let stack = spawn_stack().await;
    let mut u = update("seed-user", 0, "Seed");
    u.provider = Some(auth_events_core::contract::Provider::parse("google.com").expect("valid"));
    u.photo_url = Some(
        auth_events_core::contract::PhotoUrl::parse("https://example.com/p.png").expect("valid"),
    );
    apply(&stack.profile_store(), &u).await.expect("applied");
    let item = stack
        .scan(&stack.names.users_table())
        .await
        .pop()
        .expect("one user");
    for string_attribute in [
        "userId",
        "email",
        "displayName",
        "photoURL",
        "provider",
        "createdAt",
        "lastLoginDate",
    ] {
        assert!(
            item.get(string_attribute).is_some_and(AttributeValue::is_s),
            "{string_attribute}: {item:?}"
        );
    }
    assert_eq!(item["signInCount"], AttributeValue::N("1".to_owned()));
    assert_eq!(
        item["createdAt"].as_s().ok(),
        Some(&u.timestamp.to_string())
    );
}

fn handler(stack: &Stack) -> user_profile::Handler<auth_events_aws::DynamoProfileStore> {
    user_profile::Handler::new(
        stack.profile_store(),
        auth_events_core::retry::FullJitter::new(
            std::time::Duration::from_millis(1),
            std::time::Duration::from_millis(5),
        )
        .with_max_times(3),
    )
}

fn fixture(name: &str) -> user_profile::Envelope {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/user-profile/tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture"))
        .expect("an EventBridge envelope")
}

#[tokio::test]
async fn invalid_events_are_errors_and_write_nothing_to_either_table() {
    let stack = spawn_stack().await;
    let handler = handler(&stack);
    for name in [
        "invalid_bad_timestamp.json",
        "invalid_http_photo_url.json",
        "invalid_missing_user_id.json",
        "invalid_oversized_display_name.json",
        "invalid_unexpected_source.json",
    ] {
        let error = handler.process(&fixture(name)).await.expect_err(name);
        assert!(
            error.error_type().starts_with("Permanent."),
            "{name}: {}",
            error.error_type()
        );
    }
    assert!(stack.scan(&stack.names.users_table()).await.is_empty());
    assert!(stack.scan(&stack.names.processed_table()).await.is_empty());
}

#[tokio::test]
async fn the_seeds_hand_written_event_creates_the_user_once_keyed_on_its_envelope_id() {
    let stack = spawn_stack().await;
    let handler = handler(&stack);
    let seed = fixture("seed_test_event.json");
    let first = handler.process(&seed).await.expect("applied");
    assert!(first.first_sign_in);
    let again = handler.process(&seed).await.expect("applied");
    assert_eq!(again.outcome, user_profile::Outcome::Duplicate);
    let users = users(&stack).await;
    let user = users.values().next().expect("one user");
    assert_eq!(user["signInCount"], AttributeValue::N("1".to_owned()));
    assert!(
        !user.contains_key("photoURL"),
        "absent fields are left out, not null"
    );
}

#[tokio::test]
async fn an_item_the_seed_wrote_before_this_design_takes_the_next_event_as_the_newest() {
    let stack = spawn_stack().await;
    let s = |v: &str| AttributeValue::S(v.to_owned());
    stack
        .dynamodb
        .put_item()
        .table_name(stack.names.users_table())
        .item("userId", s("seed-user"))
        .item("email", s("old@example.com"))
        .item("displayName", s("Old Name"))
        .item("createdAt", s("2024-01-15T10:30:00Z"))
        .item("lastLoginDate", s("2024-01-15T10:30:00Z"))
        .send()
        .await
        .expect("seed item written");
    let next = update("seed-user", 0, "new");
    let applied = apply(&stack.profile_store(), &next)
        .await
        .expect("applied, not wedged");
    assert_eq!(applied, Applied::Updated(WriteCase::Newest));
    let user = users(&stack)
        .await
        .remove("seed-user")
        .expect("still there");
    assert_eq!(
        user["createdAt"],
        s("2024-01-15T10:30:00Z"),
        "the seed's createdAt is kept"
    );
    assert_eq!(user["email"], s("new@example.com"));
    assert_eq!(user["signInCount"], AttributeValue::N("1".to_owned()));
}
