//! The handler's CPU per event without network: decode the EventBridge
//! envelope, validate the contract, reduce to a `ProfileUpdate` and run the
//! conditional-write loop against the in-memory store.

use std::hint::black_box;
use std::time::Duration;

use auth_events_core::contract::Timestamp;
use auth_events_core::ports::{PortError, ProfileStore, WriteOutcome};
use auth_events_core::profile::{ProfileUpdate, WriteCase};
use auth_events_core::retry::FullJitter;
use auth_events_core::testing::MemoryProfileStore;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use user_profile::{Envelope, Handler};

/// A store whose every write lands at once: what is left is the handler's
/// own work, without the in-memory tables' bookkeeping.
struct NoopStore;

impl ProfileStore for NoopStore {
    async fn write(
        &self,
        update: &ProfileUpdate,
        case: WriteCase,
    ) -> Result<WriteOutcome, PortError> {
        black_box((update, case));
        Ok(WriteOutcome::Applied)
    }
}

/// A realistic `user.signed_in` envelope; each `n` is a distinct, later event
/// of the same user, so every one takes the common `Newest` write.
fn envelope_bytes(n: u64) -> Vec<u8> {
    let millis = 1_790_000_000_000 + i64::try_from(n).unwrap_or(i64::MAX / 2);
    let timestamp = Timestamp::from_millis(millis).expect("in range");
    format!(
        r#"{{"version":"0","id":"5d2c4f0e-1a2b-4c3d-8e9f-{n:012x}","detail-type":"user.signed_in","source":"interview-companion.auth","account":"123456789012","time":"2026-11-29T11:46:06Z","region":"eu-west-1","resources":[],"detail":{{"eventId":"019ad3a0-5c1b-7e2a-9f00-{n:012x}","schemaVersion":1,"userId":"firebase-uid-ann","email":"ann@example.com","timestamp":"{timestamp}","displayName":"Ann Example","photoURL":"https://lh3.googleusercontent.com/a/ann","provider":"google.com"}}}}"#
    )
    .into_bytes()
}

fn handler_per_event(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let backoff =
        FullJitter::new(Duration::from_millis(20), Duration::from_secs(1)).with_max_times(6);
    let mut group = c.benchmark_group("handler_per_event");

    let handler = Handler::new(NoopStore, backoff);
    let bytes = envelope_bytes(1);
    group.bench_function("decode_validate_write", |b| {
        b.iter(|| {
            let envelope: Envelope = serde_json::from_slice(black_box(&bytes)).expect("decodes");
            runtime
                .block_on(handler.process(&envelope))
                .expect("applied")
        });
    });

    let handler = Handler::new(MemoryProfileStore::default(), backoff);
    let mut next = 0u64;
    group.bench_function("new_event_memory_store", |b| {
        b.iter_batched(
            || {
                next += 1;
                envelope_bytes(next)
            },
            |bytes| {
                let envelope: Envelope = serde_json::from_slice(&bytes).expect("decodes");
                runtime
                    .block_on(handler.process(black_box(&envelope)))
                    .expect("applied")
            },
            BatchSize::SmallInput,
        );
    });

    let handler = Handler::new(MemoryProfileStore::default(), backoff);
    let redelivery = envelope_bytes(0);
    let first: Envelope = serde_json::from_slice(&redelivery).expect("decodes");
    runtime.block_on(handler.process(&first)).expect("applied");
    group.bench_function("duplicate_memory_store", |b| {
        b.iter(|| {
            let envelope: Envelope =
                serde_json::from_slice(black_box(&redelivery)).expect("decodes");
            runtime
                .block_on(handler.process(&envelope))
                .expect("applied")
        });
    });

    group.finish();
}

criterion_group!(benches, handler_per_event);
criterion_main!(benches);
