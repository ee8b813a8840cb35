//! Cold start: logs, configuration, clients, then the runtime loop.

use anyhow::Context as _;
use auth_events_aws::env::ProcessEnv;
use auth_events_aws::{DynamoOutbox, EventBridgePublisher, SqsDeadLetters};
use auth_events_core::relay::Relay;
use lambda_runtime::service_fn;
use outbox_relay::{Config, Handler};

/// A stream batch is decoded into thousands of small strings and maps, and
/// glibc's allocator was a quarter of the relay's CPU time (`make bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One invocation at a time per Lambda instance, and its concurrency is all
// I/O: a single-threaded runtime starts faster than a thread pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    auth_events_aws::telemetry::init();
    let config = Config::from_vars(&ProcessEnv).context("outbox-relay configuration")?;

    let sdk = auth_events_aws::sdk_config(None).await;
    let relay = Relay::new(
        EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::new(&auth_events_aws::without_sdk_retries(&sdk)),
            config.event_bus_name,
        ),
        DynamoOutbox::new(aws_sdk_dynamodb::Client::new(&sdk), config.outbox_table),
        SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), config.dlq_url)
            .with_max_message_bytes(config.dlq_max_message_bytes),
        config.relay,
    );
    let handler = Handler::new(relay, config.handler);

    let handler = &handler;
    lambda_runtime::run(service_fn(move |event| handler.handle(event)))
        .await
        .map_err(|error| anyhow::anyhow!(error))
        .context("outbox-relay runtime loop")
}
