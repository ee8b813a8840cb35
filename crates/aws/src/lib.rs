//! AWS SDK adapters of the core ports, table migrations, and the start-up
//! plumbing every binary shares (configuration from the environment, JSON
//! logs).

pub mod dlq;
pub mod env;
pub mod errors;
pub mod migrate;
pub mod outbox;
pub mod profile;
pub mod publisher;
pub mod streams;
pub mod telemetry;

pub use dlq::SqsDeadLetters;
pub use outbox::DynamoOutbox;
pub use profile::DynamoProfileStore;
pub use publisher::EventBridgePublisher;

/// The SDK configuration from the standard chain: environment, profile,
/// container or instance role. `AWS_ENDPOINT_URL` (or an explicit
/// `endpoint_url`) points every client at a local endpoint such as moto.
pub async fn sdk_config(endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// `sdk` for clients whose caller bounds every call by its own deadline and
/// retries with backon: the relay engine, and the token exchange's budgeted
/// outbox write and bus fallback. SDK retries and stalled-stream protection
/// underneath would do both again on their own schedule, resending whole
/// requests and spending the budget unseen.
pub fn without_sdk_retries(sdk: &aws_config::SdkConfig) -> aws_config::SdkConfig {
    sdk.to_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .stalled_stream_protection(
            aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled(),
        )
        .build()
}
