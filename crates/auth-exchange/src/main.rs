//! Lambda entry point: tracing, configuration, clients, run. Nothing else
//! happens at init, so the function is ready to serve within milliseconds.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use auth_events_aws::env::ProcessEnv;
use auth_events_aws::{DynamoOutbox, EventBridgePublisher};
use auth_exchange::certs::{CachePolicy, HttpKeySource};
use auth_exchange::{Config, Exchange, StsIssuer};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use lambda_runtime::{LambdaEvent, service_fn};

/// A sign-in waits on STS; without a bound, a hung connection would hold the
/// user until the Lambda timeout. The SDK's own retries fit inside.
const STS_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
const STS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

// One request at a time per Lambda instance: a single-threaded runtime starts
// faster and uses less memory than a thread pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    auth_events_aws::telemetry::init();
    let config = Config::from_vars(&ProcessEnv)
        .inspect_err(|e| tracing::error!(error = %e, "configuration_invalid"))
        .context("auth-exchange configuration")?;

    let sdk = auth_events_aws::sdk_config(None).await;
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&sdk)
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(STS_OPERATION_TIMEOUT)
                    .operation_attempt_timeout(STS_ATTEMPT_TIMEOUT)
                    .build(),
            )
            .build(),
    );
    // The sign-in's outbox write and bus fallback retry within their own
    // budget (`OUTBOX_WRITE_BUDGET_MS`).
    let budgeted = auth_events_aws::without_sdk_retries(&sdk);
    let outbox = DynamoOutbox::new(
        aws_sdk_dynamodb::Client::new(&budgeted),
        config.outbox_table.clone(),
    );
    let publisher = EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(&budgeted),
        config.event_bus_name.clone(),
    );
    let keys = Arc::new(
        HttpKeySource::new(config.firebase_certs_url.clone(), CachePolicy::default())
            .context("building the certificate client")?,
    );

    // Warm the certificate cache off the request path: the runtime polls for
    // the first event meanwhile, and a request arriving first simply waits
    // for this same fetch instead of starting another.
    let warm = Arc::clone(&keys);
    tokio::spawn(async move {
        if let Err(error) = warm.prefetch().await {
            tracing::warn!(error = %error, "signing_certificates_prefetch_failed");
        }
    });

    let issuer = StsIssuer::new(sts, config.app_role_arn.clone(), config.session_duration);
    let exchange = Exchange::from_config(&config, keys, issuer, outbox, publisher);
    let exchange = &exchange;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            // Boxed: with the SDK's AssumeRole future inside, a request's
            // future is about 18 KB, too much to move around on the stack.
            let trace_id = event.context.xray_trace_id.as_deref();
            Ok::<_, lambda_runtime::Error>(Box::pin(exchange.handle(event.payload, trace_id)).await)
        },
    ))
    .await
    .map_err(|e| anyhow!(e))
    .context("running the Lambda runtime loop")
}
