use anyhow::Context as _;
use auth_events_aws::DynamoProfileStore;
use auth_events_aws::env::ProcessEnv;
use lambda_runtime::service_fn;
use user_profile::{Config, Handler};

// One event at a time per execution environment: a single-threaded
// runtime starts faster and holds less memory than a worker pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    auth_events_aws::telemetry::init();
    let config = Config::from_vars(&ProcessEnv).context("reading configuration")?;
    let sdk = auth_events_aws::sdk_config(None).await;
    let store = DynamoProfileStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config.users_table.clone(),
        config.processed_table.clone(),
        config.processed_ttl,
    );
    let handler = Handler::new(store, config.backoff());
    let handler = &handler;
    // Boxed: the SDK's transaction future nested in the runtime's service
    // stack is deeper than rustc's default layout recursion limit.
    lambda_runtime::run(service_fn(move |event| Box::pin(handler.handle(event))))
        .await
        .map_err(anyhow::Error::from_boxed)
        .context("running the Lambda runtime")
}
