//! The whole pipeline on one machine: the same handlers and SDK calls as on
//! AWS, against moto, with local drivers standing in for the two AWS pieces
//! that cannot run here (the stream event source mapping and EventBridge's
//! Lambda target).

pub mod http;
pub mod rule_target;
pub mod stream_mapping;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use auth_events_aws::migrate::{Change, Migrator, Names};
use auth_events_aws::{DynamoOutbox, DynamoProfileStore, EventBridgePublisher, SqsDeadLetters};
use auth_events_core::relay::{Relay, RelayConfig};
use auth_events_core::testing::FaultyPublisher;
use auth_exchange::certs::{CachePolicy, HttpKeySource};
use auth_exchange::{Exchange, StsIssuer};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_runtime::{Context as LambdaContext, LambdaEvent};
use outbox_relay::handler::Invocation;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

use self::http::{CERTIFICATES_PATH, EXCHANGE_PATH, HttpFunction};
use self::rule_target::{RuleTarget, TargetQueues, TargetSettings};
use self::stream_mapping::{MappingSettings, MappingTarget, StreamMapping};
use crate::dev_signer::DevSigner;
use crate::moto::LocalMoto;
use crate::strict::{StrictLimits, StrictProxy};

/// The Firebase project the local stack's verifier expects.
pub const DEV_PROJECT: &str = "auth-events-local";
/// Where the development signing key is kept between runs, so a token
/// minted by `local-stack dev token` verifies in a running `local-stack dev`.
pub const DEV_KEY_PATH: &str = ".local/dev-firebase-key.pem";
const DEV_KID: &str = "auth-events-local-1";
const APP_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/interview-companion-desktop";
const ACCOUNT: &str = "123456789012";

/// The relay's bus, shared so the demo can make it fail.
pub type Bus = Arc<FaultyPublisher<EventBridgePublisher>>;
type RelayFunction = outbox_relay::handler::Handler<Bus, DynamoOutbox, SqsDeadLetters>;
type ExchangeFunction = Exchange<HttpKeySource, StsIssuer, DynamoOutbox, EventBridgePublisher>;

impl HttpFunction for ExchangeFunction {
    async fn invoke(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let trace_id = invocation_trace_id();
        // Boxed, as the Lambda's main boxes it: the request's future is large.
        Box::pin(self.handle(request, Some(&trace_id))).await
    }
}

/// A fresh X-Ray trace id, as Lambda gives every invocation:
/// `Root=1-<epoch seconds, 8 hex>-<24 hex>`.
fn invocation_trace_id() -> String {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "Root=1-{:08x}-{}",
        chrono::Utc::now().timestamp(),
        unique.get(8..).unwrap_or_default()
    )
}

/// Where the local stack's key for e-mail hashes in logs is kept, so that
/// `outboxctl` run against the stack prints the same hashes.
pub const PII_KEY_PATH: &str = ".local/pii-hash-key";

/// The local stack's `PII_HASH_KEY`, created on first use from the system's
/// random source and kept in [`PII_KEY_PATH`].
pub fn load_or_create_pii_key() -> Result<String> {
    let path = Path::new(PII_KEY_PATH);
    if let Ok(key) = std::fs::read_to_string(path) {
        return Ok(key.trim().to_owned());
    }
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?,
        &mut bytes,
    )
    .context("reading /dev/urandom")?;
    let key = hex::encode(bytes);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, &key).with_context(|| format!("writing {PII_KEY_PATH}"))?;
    Ok(key)
}

/// The development signer, created on first use and kept in [`DEV_KEY_PATH`].
pub fn load_or_create_signer() -> Result<DevSigner> {
    let path = Path::new(DEV_KEY_PATH);
    if let Ok(pem) = std::fs::read_to_string(path) {
        return DevSigner::from_private_key_pem(DEV_KID, &pem).with_context(|| {
            format!("reading the development key {DEV_KEY_PATH}; delete it to make a new one")
        });
    }
    let signer = DevSigner::generate(DEV_KID)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, &signer.private_key_pem)
        .with_context(|| format!("writing {DEV_KEY_PATH}"))?;
    Ok(signer)
}

#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Use this endpoint instead of starting moto.
    pub endpoint_url: Option<String>,
    pub port: u16,
    pub moto_port: u16,
    /// Put the strict AWS layer ([`crate::strict`]) in front of the endpoint.
    pub strict: Option<StrictLimits>,
    pub sweep_interval: Duration,
    pub relay: RelayConfig,
    pub mapping: MappingSettings,
    pub target: TargetSettings,
}

impl Default for DevOptions {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            port: 9000,
            moto_port: 0,
            strict: None,
            sweep_interval: Duration::from_secs(30),
            relay: RelayConfig::default(),
            mapping: MappingSettings::default(),
            target: TargetSettings::default(),
        }
    }
}

/// A running local stack; [`DevStack::stop`] ends every task and moto.
#[derive(Debug)]
pub struct DevStack {
    pub endpoint: String,
    pub sdk: aws_config::SdkConfig,
    pub names: Names,
    pub http_address: SocketAddr,
    pub dlq_url: String,
    pub target_queue_url: String,
    pub bus: Bus,
    /// The exchange's `PII_HASH_KEY` ([`PII_KEY_PATH`]).
    pub pii_hash_key: String,
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<Result<()>>)>,
    strict: Option<StrictProxy>,
    moto: Option<LocalMoto>,
}

fn function_arn(names: &Names, function: &str) -> String {
    format!(
        "arn:aws:lambda:us-east-1:{ACCOUNT}:function:{}{function}",
        names.prefix
    )
}

/// What every component of the stack is wired to.
struct Wiring {
    sdk: aws_config::SdkConfig,
    names: Names,
    dynamodb: aws_sdk_dynamodb::Client,
    dlq_url: String,
    target_queue_url: String,
    stream_arn: String,
}

/// Creates what the local stack needs and is missing: the tables of
/// `migrations/`, and the bus, rule, rule target queue and DLQ that
/// Terraform owns on AWS. Returns what changed.
pub async fn migrate(sdk: &aws_config::SdkConfig, names: &Names) -> Result<Vec<Change>> {
    let migrator = Migrator::new(sdk, names.clone());
    let endpoint = sdk.endpoint_url().unwrap_or("the default AWS endpoint");
    let hint = || {
        format!(
            "migrating the local stack with prefix {:?} at {endpoint} (is it up? `make venv && .venv/bin/moto_server -p 5000` starts one; else check --endpoint-url)",
            names.prefix
        )
    };
    let mut changes = migrator.apply_tables().await.with_context(hint)?;
    changes.extend(migrator.apply_messaging().await.with_context(hint)?);
    Ok(changes)
}

async fn existing_queue(migrator: &Migrator, name: &str) -> Result<String> {
    migrator
        .queue_url(name)
        .await?
        .with_context(|| format!("queue {name} does not exist after migrate"))
}

impl Wiring {
    /// Migrates, then finds the queue URLs and the stream ARN.
    async fn discover(sdk: aws_config::SdkConfig, names: Names) -> Result<Self> {
        migrate(&sdk, &names).await?;
        let migrator = Migrator::new(&sdk, names.clone());
        let dlq_url = existing_queue(&migrator, &names.dlq).await?;
        let target_queue_url = existing_queue(&migrator, &names.target_queue).await?;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let stream_arn =
            auth_events_aws::streams::latest_stream_arn(&dynamodb, &names.outbox_table())
                .await
                .context("finding the outbox stream")?;
        Ok(Self {
            sdk,
            names,
            dynamodb,
            dlq_url,
            target_queue_url,
            stream_arn,
        })
    }
}

impl DevStack {
    pub async fn start(names: Names, options: DevOptions) -> Result<Self> {
        let (moto, sdk) = if let Some(url) = &options.endpoint_url {
            (None, LocalMoto::sdk_config_for(url).await)
        } else {
            let moto = LocalMoto::start(options.moto_port).await?;
            let sdk = moto.sdk_config().await;
            (Some(moto), sdk)
        };
        let (strict, sdk) = match options.strict {
            Some(limits) => {
                let upstream = sdk.endpoint_url().unwrap_or_default();
                let proxy = StrictProxy::start(upstream, limits).await?;
                let sdk = LocalMoto::sdk_config_for(&proxy.endpoint).await;
                (Some(proxy), sdk)
            }
            None => (None, sdk),
        };
        let endpoint = sdk.endpoint_url().unwrap_or_default().to_owned();
        let wiring = Wiring::discover(sdk, names).await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
            .await
            .with_context(|| {
                format!(
                    "binding 127.0.0.1:{} (use --port to pick another)",
                    options.port
                )
            })?;
        let http_address = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        // Built as the relay Lambda builds it.
        let bus: Bus = Arc::new(FaultyPublisher::new(EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::new(&auth_events_aws::without_sdk_retries(&wiring.sdk)),
            &wiring.names.bus,
        )));
        let relay = Arc::new(relay_function(&wiring, Arc::clone(&bus), &options));
        let pii_hash_key = load_or_create_pii_key()?;
        let tasks = vec![
            (
                "http",
                spawn_http(
                    &wiring,
                    listener,
                    http_address,
                    &pii_hash_key,
                    stopped.clone(),
                )?,
            ),
            (
                "stream mapping",
                spawn_mapping(&wiring, &relay, &options, &stopped),
            ),
            (
                "sweep",
                spawn_sweep(&relay, options.sweep_interval, stopped.clone()),
            ),
            (
                "rule target",
                spawn_profile_target(&wiring, &options, stopped),
            ),
        ];
        let Wiring {
            sdk,
            names,
            dlq_url,
            target_queue_url,
            ..
        } = wiring;
        Ok(Self {
            endpoint,
            sdk,
            names,
            http_address,
            dlq_url,
            target_queue_url,
            bus,
            pii_hash_key,
            stop,
            tasks,
            strict,
            moto,
        })
    }

    pub fn exchange_url(&self) -> String {
        format!("http://{}{EXCHANGE_PATH}", self.http_address)
    }

    /// What a shell needs to talk to this stack.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
            // The AWS CLI (v1, as pinned in .venv) reads only this one.
            ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "local".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
            ("AUTH_EVENTS_PREFIX", self.names.prefix.clone()),
            ("OUTBOX_TABLE", self.names.outbox_table()),
            ("USERS_TABLE", self.names.users_table()),
            ("PROCESSED_EVENTS_TABLE", self.names.processed_table()),
            ("EVENT_BUS_NAME", self.names.bus.clone()),
            ("DLQ_URL", self.dlq_url.clone()),
            ("PROFILE_TARGET_QUEUE_URL", self.target_queue_url.clone()),
            ("EXCHANGE_URL", self.exchange_url()),
            // outboxctl reads it to print the hashes the exchange logs.
            ("PII_HASH_KEY", self.pii_hash_key.clone()),
        ]
    }

    /// Stops every driver, then the strict layer and moto (when this stack
    /// started them).
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(true);
        for (name, task) in self.tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    warn!(task = name, error = %format!("{error:#}"), "task ended with an error");
                }
                Err(error) => warn!(task = name, error = %error, "task panicked"),
            }
        }
        drop(self.strict);
        drop(self.moto);
        Ok(())
    }
}

fn exchange_function(
    wiring: &Wiring,
    http_address: SocketAddr,
    pii_hash_key: &str,
) -> Result<ExchangeFunction> {
    let (sdk, names) = (&wiring.sdk, &wiring.names);
    let vars = [
        ("FIREBASE_PROJECT_ID", DEV_PROJECT.to_owned()),
        ("APP_ROLE_ARN", APP_ROLE_ARN.to_owned()),
        ("OUTBOX_TABLE", names.outbox_table()),
        ("EVENT_BUS_NAME", names.bus.clone()),
        (
            "FIREBASE_CERTS_URL",
            format!("http://{http_address}{CERTIFICATES_PATH}"),
        ),
        ("ALLOW_DEV_CERTS_URL", "true".to_owned()),
        ("PII_HASH_KEY", pii_hash_key.to_owned()),
    ];
    let config = auth_exchange::Config::from_vars(&vars)?;
    let keys = HttpKeySource::new(config.firebase_certs_url.clone(), CachePolicy::default())?;
    let issuer = StsIssuer::new(
        aws_sdk_sts::Client::new(sdk),
        &config.app_role_arn,
        config.session_duration,
    );
    // Built as the Lambda builds them.
    let budgeted = auth_events_aws::without_sdk_retries(sdk);
    Ok(Exchange::from_config(
        &config,
        keys,
        issuer,
        DynamoOutbox::new(
            aws_sdk_dynamodb::Client::new(&budgeted),
            names.outbox_table(),
        ),
        EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&budgeted), &names.bus),
    ))
}

fn spawn_http(
    wiring: &Wiring,
    listener: tokio::net::TcpListener,
    http_address: SocketAddr,
    pii_hash_key: &str,
    mut stopped: watch::Receiver<bool>,
) -> Result<JoinHandle<Result<()>>> {
    let signer = load_or_create_signer()?;
    let exchange = Arc::new(exchange_function(wiring, http_address, pii_hash_key)?);
    let router = http::router(exchange, signer.certificate_router(CERTIFICATES_PATH));
    Ok(tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
            .context("serving HTTP")
    }))
}

fn relay_function(wiring: &Wiring, bus: Bus, options: &DevOptions) -> RelayFunction {
    outbox_relay::handler::Handler::new(
        Relay::new(
            bus,
            DynamoOutbox::new(wiring.dynamodb.clone(), wiring.names.outbox_table()),
            SqsDeadLetters::new(aws_sdk_sqs::Client::new(&wiring.sdk), &wiring.dlq_url),
            options.relay.clone(),
        ),
        // EMF lines are for CloudWatch; on a terminal they drown the output
        // a developer is reading.
        outbox_relay::config::HandlerConfig {
            emit_metrics: false,
            ..outbox_relay::config::HandlerConfig::default()
        },
    )
}

fn spawn_profile_target(
    wiring: &Wiring,
    options: &DevOptions,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<Result<()>> {
    let profile = Arc::new(user_profile::Handler::new(
        DynamoProfileStore::new(
            wiring.dynamodb.clone(),
            wiring.names.users_table(),
            wiring.names.processed_table(),
            auth_events_core::profile::DEFAULT_PROCESSED_TTL,
        ),
        auth_events_core::retry::FullJitter::new(Duration::from_millis(20), Duration::from_secs(1))
            .with_max_times(6),
    ));
    let target = RuleTarget::new(
        &wiring.sdk,
        TargetQueues {
            target_queue_url: wiring.target_queue_url.clone(),
            on_failure_queue_url: wiring.dlq_url.clone(),
            function_arn: function_arn(&wiring.names, "user-profile"),
        },
        options.target.clone(),
        move |event| {
            let profile = Arc::clone(&profile);
            async move {
                let processed = profile
                    .handle(LambdaEvent::new(event, LambdaContext::default()))
                    .await?;
                Ok(serde_json::to_value(processed)?)
            }
        },
    );
    tokio::spawn(async move { target.run(stopped).await })
}

fn spawn_mapping(
    wiring: &Wiring,
    relay: &Arc<RelayFunction>,
    options: &DevOptions,
    stopped: &watch::Receiver<bool>,
) -> JoinHandle<Result<()>> {
    let relay = Arc::clone(relay);
    let mapping = StreamMapping::new(
        &wiring.sdk,
        MappingTarget {
            stream_arn: wiring.stream_arn.clone(),
            on_failure_queue_url: wiring.dlq_url.clone(),
            function_arn: function_arn(&wiring.names, "outbox-relay"),
            region: "us-east-1".to_owned(),
        },
        options.mapping.clone(),
        move |batch| {
            let relay = Arc::clone(&relay);
            async move {
                let event = LambdaEvent::new(Invocation::Stream(batch), LambdaContext::default());
                match relay.handle(event).await? {
                    outbox_relay::handler::Response::Stream(response) => Ok(response),
                    outbox_relay::handler::Response::Sweep(_) => {
                        anyhow::bail!("a stream batch was answered as a sweep")
                    }
                }
            }
        },
    );
    let stopped = stopped.clone();
    tokio::spawn(async move { mapping.run(stopped).await })
}

fn spawn_sweep(
    relay: &Arc<RelayFunction>,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<Result<()>> {
    let relay = Arc::clone(relay);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => return Ok(()),
                () = tokio::time::sleep(interval) => {}
            }
            let event = LambdaEvent::new(Invocation::Sweep, LambdaContext::default());
            if let Err(error) = relay.handle(event).await {
                warn!(error = %error, "sweep failed; the next one retries");
            }
        }
    })
}
