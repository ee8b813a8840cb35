//! Per-event relay overhead at batch size 100, without the network.
//!
//! - `handler_100`: decoding and contract checks, packing, the SDK's
//!   PutEvents serialisation and SigV4 signing, and reading the answers,
//!   from the batch the runtime hands the handler.
//! - `payload_to_answer_100`: the same plus the runtime's parse of the
//!   payload's JSON into `aws_lambda_events` types.
//! - `parse_payload_100`, `decode_valid_100`, `pack_serialise_sign_100`:
//!   the stages one by one.
//! - `mark_published_100`: the conditional UpdateItem that marks each
//!   published item, which the stages above keep in memory.
//!
//! The clients are the real SDK clients behind the real adapters; only their
//! HTTP client is replaced by one that answers in memory.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use auth_events_aws::{DynamoOutbox, EventBridgePublisher};
use auth_events_core::contract::Timestamp;
use auth_events_core::outbox::OutboxRecord;
use auth_events_core::ports::OutboxStore;
use auth_events_core::relay::{Candidate, Relay, RelayConfig, RelayReport};
use auth_events_core::testing::{MemoryDeadLetters, MemoryOutbox};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_lambda_events::event::dynamodb;
use aws_sdk_eventbridge::config::http::{HttpRequest, HttpResponse};
use aws_sdk_eventbridge::config::{Credentials, HttpClient, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use outbox_relay::{Handler, HandlerConfig, Invocation, StreamOutcome};
use tokio::time::Instant;

const BATCH: usize = 100;

/// The function's own allocator (`src/main.rs`), so the figure is the one
/// the deployed binary would show.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Answers what the relay sends, as AWS would, after checking each request
/// was signed: PutEvents with one event id per entry, UpdateItem (a mark)
/// with an empty result.
#[derive(Debug, Clone)]
struct OfflineAws {
    /// PutEvents response bodies for 0..=10 entries, built once and shared
    /// by every connector the clients ask for.
    put_events_bodies: Arc<[String]>,
}

impl OfflineAws {
    fn new() -> Self {
        let put_events_bodies = (0..=10)
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
        Self { put_events_bodies }
    }

    fn answer(&self, request: &HttpRequest) -> String {
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        match target {
            "AWSEvents.PutEvents" => {
                let entries = entry_count(request.body().bytes().unwrap_or_default());
                self.put_events_bodies[entries].clone()
            }
            "DynamoDB_20120810.UpdateItem" => "{}".to_owned(),
            other => panic!("the relay sent an unexpected request: {other:?}"),
        }
    }
}

/// Entries in a PutEvents body: each has exactly one `"DetailType":` key,
/// and the same text inside a `Detail` string would have escaped quotes.
/// The search is memchr's, so that this stand-in for the network costs
/// little beside the relay it measures.
fn entry_count(body: &[u8]) -> usize {
    memchr::memmem::find_iter(body, br#""DetailType":"#).count()
}

impl HttpConnector for OfflineAws {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let signed = request
            .headers()
            .get("authorization")
            .is_some_and(|value| value.starts_with("AWS4-HMAC-SHA256 "));
        assert!(signed, "the request reached the wire unsigned");
        let body = self.answer(&request);
        let status = StatusCode::try_from(200_u16).expect("a valid status");
        HttpConnectorFuture::ready(Ok(HttpResponse::new(status, SdkBody::from(body))))
    }
}

impl HttpClient for OfflineAws {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// The SDK configuration the function would load, with the network
/// replaced by [`OfflineAws`].
fn offline_sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "bench",
        )))
        .http_client(OfflineAws::new())
        .build()
}

type BenchHandler = Handler<EventBridgePublisher, MemoryOutbox, MemoryDeadLetters>;

/// What every benchmark shares: the runtime, a batch of 100 sign-ins as
/// records and as the stream payload Lambda would send, and the SDK.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    records: Vec<OutboxRecord>,
    payload: Vec<u8>,
    sdk: SdkConfig,
    /// Marks go to memory here; `mark_published_100` prices them on
    /// DynamoDB.
    handler: BenchHandler,
}

impl Fixture {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let records: Vec<_> = (0..BATCH)
            .map(|n| support::signed_in(n, Timestamp::now()))
            .collect();
        let payload = serde_json::to_vec(&support::inserts(&records)).expect("JSON");
        let sdk = offline_sdk_config();
        let handler = Handler::new(
            Relay::new(
                // As `src/main.rs` builds it.
                EventBridgePublisher::new(
                    aws_sdk_eventbridge::Client::new(&auth_events_aws::without_sdk_retries(&sdk)),
                    "dev-auth",
                ),
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
        let fixture = Self {
            runtime,
            records,
            payload,
            sdk,
            handler,
        };
        let outcome = fixture.process(fixture.batch());
        assert_eq!(outcome.relay.published, BATCH, "{outcome:?}");
        assert!(outcome.response.batch_item_failures.is_empty());
        fixture
    }

    /// As the runtime does: the payload's bytes straight into `Invocation`.
    fn batch(&self) -> dynamodb::Event {
        match Invocation::from_slice(black_box(&self.payload)).expect("a stream batch") {
            Invocation::Stream(batch) => batch,
            other => unreachable!("the payload is a stream batch: {other:?}"),
        }
    }

    fn process(&self, batch: dynamodb::Event) -> StreamOutcome {
        self.runtime
            .block_on(self.handler.process_stream(batch, deadline()))
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn whole_batch(c: &mut Criterion, fixture: &Fixture) {
    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(BATCH as u64));
    // The handler's own work on the batch the runtime hands it.
    let parsed = fixture.batch();
    group.bench_function("handler_100", |b| {
        b.iter_batched(
            || parsed.clone(),
            |batch| fixture.process(batch),
            BatchSize::SmallInput,
        );
    });
    // The same from the payload's bytes: the invocation's CPU in all.
    group.bench_function("payload_to_answer_100", |b| {
        b.iter(|| fixture.process(fixture.batch()));
    });
    group.finish();
}

fn stages(c: &mut Criterion, fixture: &Fixture) {
    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("parse_payload_100", |b| {
        b.iter(|| fixture.batch());
    });

    let images: Vec<_> = fixture
        .batch()
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

    let candidates: Vec<Candidate> = fixture
        .records
        .iter()
        .enumerate()
        .map(|(position, record)| Candidate {
            position,
            sequence_number: None,
            record: record.clone(),
        })
        .collect();
    group.bench_function("pack_serialise_sign_100", |b| {
        b.iter_batched(
            || candidates.clone(),
            |candidates| {
                let mut report = RelayReport::default();
                let relay = fixture.handler.relay();
                fixture
                    .runtime
                    .block_on(relay.publish(candidates, deadline(), &mut report));
                report
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// Each published item is marked with one conditional UpdateItem.
fn marks(c: &mut Criterion, fixture: &Fixture) {
    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(BATCH as u64));
    let outbox = DynamoOutbox::new(aws_sdk_dynamodb::Client::new(&fixture.sdk), "dev-outbox");
    let bus_event_id = "6f8f2a52-0000-4000-8000-000000000000";
    let published_at = Timestamp::now();
    group.bench_function("mark_published_100", |b| {
        b.iter(|| {
            fixture.runtime.block_on(async {
                for record in &fixture.records {
                    outbox
                        .mark_published(record.event_id, bus_event_id, published_at)
                        .await
                        .expect("answered offline");
                }
            });
        });
    });
    group.finish();
}

fn relay(c: &mut Criterion) {
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
    tracing::subscriber::set_global_default(subscriber).expect("no subscriber set before");

    let fixture = Fixture::new();
    whole_batch(c, &fixture);
    stages(c, &fixture);
    marks(c, &fixture);
}

criterion_group!(benches, relay);
criterion_main!(benches);
