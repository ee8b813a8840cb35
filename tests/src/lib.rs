//! The integration-test harness: one moto server per test process, and a
//! fresh, uniquely named set of tables, bus and queues per test.
//!
//! Set `MOTO_ENDPOINT` to use a running server instead of starting one.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use auth_events_aws::migrate::{Change, Migrator, Names};
use auth_events_aws::{DynamoOutbox, DynamoProfileStore, EventBridgePublisher, SqsDeadLetters};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use local_stack::strict::{StrictLimits, StrictProxy};

pub const REGION: &str = "us-east-1";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port on 127.0.0.1")
}

/// Polls until something accepts TCP connections on `port`.
fn wait_listening(port: u16, deadline: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Starts `program ARGS… PORT-args` from the project virtualenv on a free
/// port. A small shell watchdog stops it when this test process exits, even
/// on panic.
fn start_moto(program: &str, args: impl Fn(u16) -> Vec<String>) -> String {
    let moto = workspace_root().join(".venv/bin").join(program);
    assert!(
        moto.exists(),
        "moto is not installed at {}: run `make venv` (or `make test`, which does it) first",
        moto.display()
    );
    let port = free_port();
    let quoted: Vec<String> = args(port).iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "\"$0\" {} >/dev/null 2>&1 & m=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $m",
        quoted.join(" "),
        parent = std::process::id()
    );
    // The watchdog shell outlives this process by design: it is what stops
    // moto once the tests are done, so nobody waits on it here.
    #[expect(
        clippy::zombie_processes,
        reason = "the watchdog is reaped by init after this process exits"
    )]
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&moto)
        .stdin(Stdio::null())
        // Not the test's own output: a runner that waits for a test's
        // pipes to close (nextest) would otherwise wait on the watchdog.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "could not start {}: {e}; run `make venv` first",
                moto.display()
            )
        });
    assert!(
        wait_listening(port, Duration::from_mins(1)),
        "moto did not start listening on 127.0.0.1:{port} within 60 s; try `{}` by hand",
        moto.display()
    );
    format!("http://127.0.0.1:{port}")
}

/// The endpoint of this process's moto server, started on first use.
pub fn moto_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
            start_moto("moto_server", |port| {
                vec![
                    "-H".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port.to_string(),
                ]
            })
        })
    })
}

/// A moto server that handles one request at a time (`tests/moto_serial.py`),
/// for tests of concurrent transactions: DynamoDB isolates them, moto's
/// threaded server does not.
pub fn serial_moto_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let script = workspace_root().join("tests/moto_serial.py");
        start_moto("python", move |port| {
            vec![
                script.display().to_string(),
                "127.0.0.1".into(),
                port.to_string(),
            ]
        })
    })
}

/// SDK configuration for moto: fixed region, dummy credentials.
pub async fn sdk_config() -> SdkConfig {
    sdk_config_for(moto_endpoint()).await
}

async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await
}

/// A prefix no other test of any process uses.
pub fn unique_prefix() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}-{}-{}-",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        uuid::Uuid::now_v7()
            .simple()
            .to_string()
            .get(26..)
            .unwrap_or_default()
    )
}

/// One test's resources on the shared moto server.
#[derive(Debug, Clone)]
pub struct Stack {
    pub sdk: SdkConfig,
    pub names: Names,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub dlq_url: String,
    pub target_queue_url: String,
    pub migrate_changes: Vec<Change>,
    /// The strict layer this stack's clients go through, if any; it stops
    /// with the last clone of the stack.
    _strict: Option<Arc<StrictProxy>>,
}

/// Creates and migrates a fresh stack.
pub async fn spawn_stack() -> Stack {
    spawn_stack_on(moto_endpoint(), None).await
}

/// A fresh stack whose every call goes through the strict AWS layer in
/// front of the shared moto server: what AWS refuses and moto accepts is
/// refused, as AWS would, with `limits`.
pub async fn spawn_strict_stack(limits: StrictLimits) -> Stack {
    let proxy = StrictProxy::start(moto_endpoint(), limits)
        .await
        .expect("the strict layer starts on 127.0.0.1");
    let endpoint = proxy.endpoint.clone();
    spawn_stack_on(&endpoint, Some(Arc::new(proxy))).await
}

/// A fresh stack on the one-request-at-a-time moto server.
pub async fn spawn_serial_stack() -> Stack {
    spawn_stack_on(serial_moto_endpoint(), None).await
}

async fn spawn_stack_on(endpoint: &str, strict: Option<Arc<StrictProxy>>) -> Stack {
    let sdk = sdk_config_for(endpoint).await;
    let names = Names::for_prefix(&unique_prefix()).expect("a valid prefix");
    let migrator = Migrator::new(&sdk, names.clone());
    let mut migrate_changes = migrator.apply_tables().await.expect("tables migrated");
    migrate_changes.extend(migrator.apply_messaging().await.expect("messaging created"));
    let dlq_url = migrator
        .queue_url(&names.dlq)
        .await
        .expect("reachable")
        .expect("DLQ exists");
    let target_queue_url = migrator
        .queue_url(&names.target_queue)
        .await
        .expect("reachable")
        .expect("target queue exists");
    Stack {
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        events: aws_sdk_eventbridge::Client::new(&sdk),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        sdk,
        names,
        dlq_url,
        target_queue_url,
        migrate_changes,
        _strict: strict,
    }
}

impl Stack {
    pub fn outbox(&self) -> DynamoOutbox {
        DynamoOutbox::new(self.dynamodb.clone(), self.names.outbox_table())
    }

    pub fn publisher(&self) -> EventBridgePublisher {
        EventBridgePublisher::new(self.events.clone(), &self.names.bus)
    }

    pub fn dead_letters(&self) -> SqsDeadLetters {
        SqsDeadLetters::new(self.sqs.clone(), &self.dlq_url)
    }

    pub fn profile_store(&self) -> DynamoProfileStore {
        DynamoProfileStore::new(
            self.dynamodb.clone(),
            self.names.users_table(),
            self.names.processed_table(),
            auth_events_core::profile::DEFAULT_PROCESSED_TTL,
        )
    }

    /// Receives and deletes messages from `queue_url` until `expected` have
    /// arrived or `deadline` passes; returns their bodies.
    pub async fn drain(&self, queue_url: &str, expected: usize, deadline: Duration) -> Vec<String> {
        let start = Instant::now();
        let mut bodies = Vec::new();
        while bodies.len() < expected && start.elapsed() < deadline {
            let output = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive from the queue");
            let mut receipts = Vec::new();
            for (index, message) in output.messages().iter().enumerate() {
                bodies.extend(message.body().map(str::to_owned));
                if let Some(handle) = message.receipt_handle() {
                    receipts.push(
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(index.to_string())
                            .receipt_handle(handle)
                            .build()
                            .expect("id and receipt handle are set"),
                    );
                }
            }
            // One request per received batch: on moto every request is
            // slow, and a drain of 1,000 messages spent most of its minute
            // on one DeleteMessage each.
            if !receipts.is_empty() {
                let deleted = self
                    .sqs
                    .delete_message_batch()
                    .queue_url(queue_url)
                    .set_entries(Some(receipts))
                    .send()
                    .await
                    .expect("delete the received messages");
                assert!(
                    deleted.failed().is_empty(),
                    "deleting received messages failed: {:?}",
                    deleted.failed()
                );
            }
        }
        bodies
    }

    pub async fn outbox_stream_arn(&self) -> String {
        auth_events_aws::streams::latest_stream_arn(&self.dynamodb, &self.names.outbox_table())
            .await
            .expect("the outbox table has a stream")
    }

    /// Every item of `table`, by scanning.
    pub async fn scan(
        &self,
        table: &str,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        self.dynamodb
            .scan()
            .table_name(table)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .expect("scan the table")
    }
}
