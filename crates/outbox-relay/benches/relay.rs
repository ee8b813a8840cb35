//! Per-event relay overhead at batch size 100, without the network: the
//! stream payload's JSON, decoding and contract checks, packing, the SDK's
//! PutEvents serialisation and SigV4 signing, and reading the response.
//!
//! The EventBridge client is the real SDK client behind the real adapter;
//! only its HTTP client is replaced by one that answers in memory.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use auth_events_aws::EventBridgePublisher;
use auth_events_core::contract::Timestamp;
use auth_events_core::outbox::OutboxRecord;
use auth_events_core::ports::OutboxStore;
use auth_events_core::relay::{Candidate, Relay, RelayConfig, RelayReport};
use auth_events_core::testing::{MemoryDeadLetters, MemoryOutbox};
use aws_sdk_eventbridge::config::http::{HttpRequest, HttpResponse};
use aws_sdk_eventbridge::config::{BehaviorVersion, Credentials, HttpClient, Region};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use outbox_relay::{Handler, HandlerConfig, Invocation};
use tokio::time::Instant;

const BATCH: usize = 100;

/// The function's own allocator (`src/main.rs`), so the figure is the one
/// the deployed binary would show.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Answers every PutEvents with one event id per entry, after checking the
/// request was signed, as EventBridge would.
#[derive(Debug, Clone)]
struct OfflineEventBridge {
    /// Response bodies for 0..=10 entries, built once and shared by every
    /// connector the client asks for.
    bodies: Arc<[String]>,
}

impl OfflineEventBridge {
    fn new() -> Self {
        let bodies = (0..=10)
            .map(|n| {
                let entries: Vec<String> = (0..n)
                    .map(|i| format!(r#"{{"EventId":"6f8f2a52-0000-4000-8000-{i:012}"}}"#))
                    .collect();
                format!(
                    r#"{{"FailedEntryCount":0,"Entries":[{}]}}"#,
                    entries.join(",")
                )
            })
            .collect();
        Self { bodies }
    }
}

/// Entries in a PutEvents body: each has exactly one `"DetailType":` key,
/// and the same text inside a `Detail` string would have escaped quotes.
/// The search is memchr's, so that this stand-in for the network costs
/// little beside the relay it measures.
fn entry_count(body: &[u8]) -> usize {
    memchr::memmem::find_iter(body, br#""DetailType":"#).count()
}

impl HttpConnector for OfflineEventBridge {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let signed = request
            .headers()
            .get("authorization")
            .is_some_and(|value| value.starts_with("AWS4-HMAC-SHA256 "));
        assert!(signed, "the request reached the wire unsigned");
        let entries = entry_count(request.body().bytes().unwrap_or_default());
        let body = self.bodies.get(entries).cloned().unwrap_or_default();
        let status = StatusCode::try_from(200_u16).expect("a valid status");
        HttpConnectorFuture::ready(Ok(HttpResponse::new(status, SdkBody::from(body))))
    }
}

impl HttpClient for OfflineEventBridge {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

fn eventbridge_client() -> aws_sdk_eventbridge::Client {
    let config = aws_sdk_eventbridge::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "bench",
        ))
        .http_client(OfflineEventBridge::new());
    // As `src/main.rs` builds it.
    EventBridgePublisher::client_without_sdk_retries(config)
}

type BenchHandler = Handler<EventBridgePublisher, MemoryOutbox, MemoryDeadLetters>;

fn relay_overhead(c: &mut Criterion) {
    // Production logs JSON with the current span; spans and events cost the
    // same here, only the bytes go nowhere.
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_writer(std::io::sink)
        .finish();
    let _guard = tracing::subscriber::set_global_default(subscriber);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let records: Vec<_> = (0..BATCH)
        .map(|n| support::signed_in(n, Timestamp::now()))
        .collect();
    let payload = serde_json::to_vec(&support::inserts(&records)).expect("JSON");

    let handler: BenchHandler = Handler::new(
        Relay::new(
            EventBridgePublisher::new(eventbridge_client(), "dev-auth"),
            MemoryOutbox::default(),
            MemoryDeadLetters::default(),
            RelayConfig::default(),
        ),
        HandlerConfig::default(),
    );
    runtime.block_on(async {
        for record in &records {
            handler
                .relay()
                .store()
                .insert(record)
                .await
                .expect("in memory");
        }
    });

    // As the runtime does: the payload's bytes straight into `Invocation`.
    let stream = |bytes: &[u8]| match Invocation::from_slice(bytes).expect("a stream batch") {
        Invocation::Stream(batch) => batch,
        other => unreachable!("the payload is a stream batch: {other:?}"),
    };

    // Sanity: one run publishes all 100 without failures.
    let outcome = runtime.block_on(
        handler.process_stream(stream(&payload), Instant::now() + Duration::from_secs(30)),
    );
    assert_eq!(outcome.relay.published, BATCH, "{outcome:?}");
    assert!(outcome.response.batch_item_failures.is_empty());

    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(BATCH as u64));

    group.bench_function("stream_batch_100", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let batch = stream(black_box(&payload));
                let deadline = Instant::now() + Duration::from_secs(30);
                black_box(handler.process_stream(batch, deadline).await)
            })
        });
    });

    group.bench_function("parse_payload_100", |b| {
        b.iter(|| black_box(stream(black_box(&payload))));
    });

    let images: Vec<_> = stream(&payload)
        .records
        .into_iter()
        .map(|record| record.change.new_image)
        .collect();
    group.bench_function("decode_valid_100", |b| {
        b.iter_batched(
            || images.clone(),
            |images| {
                for image in images {
                    black_box(OutboxRecord::decode_valid(image).expect("valid"));
                }
            },
            BatchSize::SmallInput,
        );
    });

    let candidates: Vec<Candidate> = records
        .iter()
        .enumerate()
        .map(|(position, record)| Candidate {
            position,
            sequence_number: None,
            record: record.clone(),
        })
        .collect();
    group.bench_function("pack_serialise_sign_100", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut report = RelayReport::default();
                let deadline = Instant::now() + Duration::from_secs(30);
                handler
                    .relay()
                    .publish(black_box(candidates.clone()), deadline, &mut report)
                    .await;
                black_box(report)
            })
        });
    });
    group.finish();
}

criterion_group!(benches, relay_overhead);
criterion_main!(benches);
