//! The handler called directly, as Lambda calls it, against in-memory and
//! fault-injecting stores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use auth_events_core::contract::Timestamp;
use auth_events_core::ports::{PortError, ProfileStore, WriteOutcome};
use auth_events_core::profile::{ProfileUpdate, UserItem, WriteCase};
use auth_events_core::retry::FullJitter;
use auth_events_core::testing::MemoryProfileStore;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use proptest::prelude::*;
use serde_json::json;
use user_profile::{Envelope, Handler, HandlerError, Outcome, Processed};

const SIGNED_IN: &[u8] = include_bytes!("fixtures/signed_in.json");
const SEED_TEST_EVENT: &[u8] = include_bytes!("fixtures/seed_test_event.json");
const INVALID: [(&str, &[u8]); 5] = [
    (
        "missing userId",
        include_bytes!("fixtures/invalid_missing_user_id.json"),
    ),
    (
        "bad timestamp",
        include_bytes!("fixtures/invalid_bad_timestamp.json"),
    ),
    (
        "oversized displayName",
        include_bytes!("fixtures/invalid_oversized_display_name.json"),
    ),
    (
        "http photoURL",
        include_bytes!("fixtures/invalid_http_photo_url.json"),
    ),
    (
        "unexpected source",
        include_bytes!("fixtures/invalid_unexpected_source.json"),
    ),
];

/// Wraps a store: fails the first `failures` writes with `error`, counts
/// every call, forwards the rest.
struct FaultyStore<S> {
    inner: S,
    failures_left: AtomicUsize,
    error: fn() -> PortError,
    calls: AtomicUsize,
}

impl<S> FaultyStore<S> {
    fn new(inner: S, failures: usize, error: fn() -> PortError) -> Self {
        Self {
            inner,
            failures_left: AtomicUsize::new(failures),
            error,
            calls: AtomicUsize::new(0),
        }
    }

    fn counting(inner: S) -> Self {
        Self::new(inner, 0, conflict)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl<S: ProfileStore> ProfileStore for FaultyStore<S> {
    async fn write(
        &self,
        update: &ProfileUpdate,
        case: WriteCase,
    ) -> Result<WriteOutcome, PortError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err((self.error)());
        }
        self.inner.write(update, case).await
    }
}

fn conflict() -> PortError {
    PortError::transient(
        "TransactWriteItems",
        "TransactionConflict",
        "injected: concurrent transaction",
    )
}

fn access_denied() -> PortError {
    PortError::permanent(
        "TransactWriteItems",
        "AccessDeniedException",
        "injected: not authorized",
    )
}

fn fast_retries(times: usize) -> FullJitter {
    FullJitter::new(Duration::from_millis(1), Duration::from_millis(2)).with_max_times(times)
}

fn handler<S: ProfileStore>(store: S) -> Handler<S> {
    Handler::new(store, fast_retries(3))
}

fn envelope(bytes: &[u8]) -> Envelope {
    serde_json::from_slice(bytes).expect("fixture is an EventBridge event")
}

fn redelivered(mut envelope: Envelope, envelope_id: &str) -> Envelope {
    envelope.id = Some(envelope_id.to_owned());
    envelope
}

async fn invoke<S: ProfileStore>(
    handler: &Handler<S>,
    envelope: Envelope,
) -> Result<Processed, HandlerError> {
    handler
        .handle(LambdaEvent::new(envelope, Context::default()))
        .await
}

#[tokio::test]
async fn the_first_event_creates_the_user_and_reports_first_sign_in() {
    let handler = handler(MemoryProfileStore::default());

    let processed = invoke(&handler, envelope(SIGNED_IN))
        .await
        .expect("applied");

    assert_eq!(
        serde_json::to_value(&processed).expect("serialises"),
        json!({
            "userId": "firebase-uid-ann",
            "dedupeId": "019ad3a0-5c1b-7e2a-9f00-000000000001",
            "eventId": "019ad3a0-5c1b-7e2a-9f00-000000000001",
            "outcome": "first_sign_in",
            "first_sign_in": true,
        })
    );
    let user = handler.store().user("firebase-uid-ann").expect("created");
    assert_eq!(
        user,
        UserItem {
            updated_at: user.updated_at.clone(),
            user_id: "firebase-uid-ann".to_owned(),
            email: "ann@example.com".to_owned(),
            display_name: Some("Ann Example".to_owned()),
            photo_url: Some("https://lh3.googleusercontent.com/a/ann".to_owned()),
            provider: Some("google.com".to_owned()),
            created_at: "2026-11-29T11:46:06.123Z".to_owned(),
            last_login_date: "2026-11-29T11:46:06.123Z".to_owned(),
            sign_in_count: 1,
            last_event_id: "019ad3a0-5c1b-7e2a-9f00-000000000001".to_owned(),
            last_event_key: "2026-11-29T11:46:06.123Z#019ad3a0-5c1b-7e2a-9f00-000000000001"
                .to_owned(),
        }
    );
}

#[tokio::test]
async fn a_redelivery_under_a_new_envelope_id_is_a_duplicate_and_changes_nothing() {
    let handler = handler(MemoryProfileStore::default());
    invoke(&handler, envelope(SIGNED_IN))
        .await
        .expect("applied");
    let before = handler.store().user("firebase-uid-ann");

    let again = redelivered(envelope(SIGNED_IN), "relay-retry-envelope");
    let processed = invoke(&handler, again).await.expect("a duplicate succeeds");

    assert_eq!(processed.outcome, Outcome::Duplicate);
    assert!(!processed.first_sign_in);
    assert_eq!(processed.dedupe_id, "019ad3a0-5c1b-7e2a-9f00-000000000001");
    assert_eq!(handler.store().user("firebase-uid-ann"), before);
}

#[tokio::test]
async fn the_seeds_hand_written_event_without_event_id_dedupes_on_the_envelope_id() {
    let handler = handler(MemoryProfileStore::default());

    let first = invoke(&handler, envelope(SEED_TEST_EVENT))
        .await
        .expect("applied");
    assert_eq!(first.outcome, Outcome::FirstSignIn);
    assert_eq!(first.dedupe_id, "8f1e2d3c-4b5a-4978-8a1b-000000000002");
    assert_eq!(first.event_id, None);
    assert!(
        serde_json::to_value(&first)
            .expect("serialises")
            .get("eventId")
            .is_none()
    );

    let retried = invoke(&handler, envelope(SEED_TEST_EVENT))
        .await
        .expect("applied");
    assert_eq!(retried.outcome, Outcome::Duplicate);

    let user = handler.store().user("test-user-123").expect("created");
    assert_eq!(user.sign_in_count, 1);
    assert_eq!(user.created_at, "2024-01-15T10:30:00.000Z");
    assert_eq!(user.display_name.as_deref(), Some("Test User"));
    assert_eq!(user.photo_url, None);
}

#[tokio::test]
async fn without_event_id_a_new_envelope_id_is_a_new_event() {
    // The price of deduplicating hand-written events on the envelope: the
    // same detail sent twice by hand counts twice, as the seed's did.
    let handler = handler(MemoryProfileStore::default());
    invoke(&handler, envelope(SEED_TEST_EVENT))
        .await
        .expect("applied");

    let resent = redelivered(envelope(SEED_TEST_EVENT), "another-put-events");
    let processed = invoke(&handler, resent).await.expect("applied");

    assert_eq!(processed.outcome, Outcome::Updated);
    let user = handler.store().user("test-user-123").expect("created");
    assert_eq!(user.sign_in_count, 2);
}

#[tokio::test]
async fn an_event_with_no_id_to_dedupe_on_is_a_permanent_error_and_writes_nothing() {
    let handler = handler(FaultyStore::counting(MemoryProfileStore::default()));
    let mut anonymous = envelope(SEED_TEST_EVENT);
    anonymous.id = None;

    let error = invoke(&handler, anonymous).await.expect_err("refused");

    assert!(matches!(error, HandlerError::NoDedupeId));
    assert_eq!(error.error_type(), "Permanent.NoDedupeId");
    assert_eq!(handler.store().calls(), 0);
}

#[tokio::test]
async fn invalid_details_are_permanent_errors_and_write_nothing() {
    for (why, fixture) in INVALID {
        let handler = handler(FaultyStore::counting(MemoryProfileStore::default()));

        let error = invoke(&handler, envelope(fixture)).await.expect_err(why);

        assert!(
            matches!(error, HandlerError::InvalidEvent(_)),
            "{why}: {error:?}"
        );
        assert!(!error.is_retryable(), "{why}");
        let diagnostic = Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, "Permanent.InvalidEvent", "{why}");
        assert_eq!(handler.store().calls(), 0, "{why}: the store was called");
        assert_eq!(handler.store().inner.user("firebase-uid-ann"), None);
    }
}

#[tokio::test]
async fn the_error_message_names_the_broken_field_without_echoing_personal_data() {
    let handler = handler(MemoryProfileStore::default());
    let error = invoke(
        &handler,
        envelope(include_bytes!("fixtures/invalid_http_photo_url.json")),
    )
    .await
    .expect_err("refused");

    let message = Diagnostic::from(error).error_message;
    assert!(message.contains("photoURL"), "{message}");
    assert!(!message.contains("ann@example.com"), "{message}");
}

#[tokio::test]
async fn a_store_failing_transiently_a_few_times_succeeds_through_retries() {
    let store = FaultyStore::new(MemoryProfileStore::default(), 3, conflict);
    let handler = Handler::new(store, fast_retries(5));

    let processed = invoke(&handler, envelope(SIGNED_IN))
        .await
        .expect("retried to success");

    assert_eq!(processed.outcome, Outcome::FirstSignIn);
    // Three failed attempts, then Newest (condition fails) and FirstSignIn.
    assert_eq!(handler.store().calls(), 5);
    let user = handler.store().inner.user("firebase-uid-ann");
    assert_eq!(user.map(|u| u.sign_in_count), Some(1));
}

#[tokio::test]
async fn a_store_that_keeps_failing_transiently_fails_the_invocation_as_retryable() {
    let store = FaultyStore::new(MemoryProfileStore::default(), usize::MAX, conflict);
    let handler = Handler::new(store, fast_retries(4));

    let error = invoke(&handler, envelope(SIGNED_IN))
        .await
        .expect_err("retries run out");

    assert!(
        matches!(error, HandlerError::WriteRetryable(_)),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(handler.store().calls(), 1 + 4);
    let diagnostic = Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "Retryable.ProfileWrite");
    assert!(
        diagnostic.error_message.contains("TransactionConflict"),
        "the cause is kept: {}",
        diagnostic.error_message
    );
    assert_eq!(handler.store().inner.user("firebase-uid-ann"), None);
}

#[tokio::test]
async fn a_store_refusal_is_permanent_and_not_retried() {
    let store = FaultyStore::new(MemoryProfileStore::default(), usize::MAX, access_denied);
    let handler = Handler::new(store, fast_retries(4));

    let error = invoke(&handler, envelope(SIGNED_IN))
        .await
        .expect_err("refused");

    assert!(
        matches!(error, HandlerError::WritePermanent(_)),
        "{error:?}"
    );
    assert_eq!(error.error_type(), "Permanent.ProfileWrite");
    assert_eq!(handler.store().calls(), 1);
}

/// One `user.signed_in` envelope as the bus delivers it.
fn bus_event(envelope_id: &str, user: &str, millis: i64, event_id: u128) -> Envelope {
    let timestamp = Timestamp::from_millis(1_790_000_000_000 + millis).expect("in range");
    let body = json!({
        "version": "0",
        "id": envelope_id,
        "detail-type": "user.signed_in",
        "source": "interview-companion.auth",
        "detail": {
            "eventId": format!("019ad3a0-0000-7000-8000-{event_id:012x}"),
            "schemaVersion": 1,
            "userId": user,
            "email": format!("{user}.{event_id}@example.com"),
            "displayName": format!("{user} #{event_id}"),
            "timestamp": timestamp.to_string(),
        },
    });
    serde_json::from_value(body).expect("an EventBridge event")
}

fn without_clock(item: UserItem) -> UserItem {
    UserItem {
        updated_at: String::new(),
        ..item
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_delivery_order_with_redeliveries_gives_the_timestamp_order_users_items(
        // Few distinct milliseconds, so timestamp ties (broken by eventId) occur.
        events in prop::collection::vec((0usize..3, 0i64..8), 1..20),
        redeliveries in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        shuffle_seed in any::<u64>(),
    ) {
        let users = ["ann", "bob", "cy"];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");

        let mut in_order: Vec<(i64, u128, usize)> = events
            .iter()
            .zip(1u128..)
            .map(|(&(user, millis), id)| (millis, id, user))
            .collect();
        in_order.sort_unstable();
        let reference = handler(MemoryProfileStore::default());
        for (n, &(millis, id, user)) in in_order.iter().enumerate() {
            let event = bus_event(&format!("ref-{n}"), users[user], millis, id);
            runtime.block_on(invoke(&reference, event)).expect("applied");
        }

        let mut deliveries = in_order.clone();
        deliveries.extend(redeliveries.iter().map(|pick| *pick.get(&in_order)));
        fastrand::Rng::with_seed(shuffle_seed).shuffle(&mut deliveries);
        let shuffled = handler(MemoryProfileStore::default());
        let mut first_sign_ins = 0;
        for (n, &(millis, id, user)) in deliveries.iter().enumerate() {
            let event = bus_event(&format!("envelope-{n}"), users[user], millis, id);
            let processed = runtime.block_on(invoke(&shuffled, event)).expect("applied");
            first_sign_ins += usize::from(processed.first_sign_in);
        }

        let distinct_users = users
            .iter()
            .filter(|u| reference.store().user(u).is_some())
            .count();
        prop_assert_eq!(first_sign_ins, distinct_users);
        for user in users {
            prop_assert_eq!(
                shuffled.store().user(user).map(without_clock),
                reference.store().user(user).map(without_clock)
            );
        }
    }
}
