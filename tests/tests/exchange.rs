//! The token exchange against moto (STS, DynamoDB, EventBridge) with a
//! certificate server this test starts and a key it generates.

use std::sync::OnceLock;
use std::time::Duration;

use auth_events_aws::{DynamoOutbox, EventBridgePublisher};
use auth_events_tests::{Stack, spawn_stack};
use auth_exchange::certs::{CachePolicy, HttpKeySource};
use auth_exchange::{Config, Exchange, StsIssuer};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use local_stack::dev_signer::{DevIdentity, DevSigner, claims};
use serde_json::Value;

const PROJECT: &str = "auth-events-it";

fn signer() -> &'static DevSigner {
    static SIGNER: OnceLock<DevSigner> = OnceLock::new();
    SIGNER.get_or_init(|| DevSigner::generate("it-kid").expect("RSA key"))
}

async fn certificate_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let address = listener.local_addr().expect("address");
    let router = signer().certificate_router("/certs");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}/certs")
}

type MotoExchange = Exchange<HttpKeySource, StsIssuer, DynamoOutbox, EventBridgePublisher>;

async fn exchange(
    stack: &Stack,
    outbox_table: &str,
    bus: &str,
    outbox_required: bool,
) -> MotoExchange {
    let vars = [
        ("FIREBASE_PROJECT_ID", PROJECT.to_owned()),
        (
            "APP_ROLE_ARN",
            "arn:aws:iam::123456789012:role/desktop-app".to_owned(),
        ),
        ("OUTBOX_TABLE", outbox_table.to_owned()),
        ("EVENT_BUS_NAME", bus.to_owned()),
        ("FIREBASE_CERTS_URL", certificate_server().await),
        ("ALLOW_DEV_CERTS_URL", "true".to_owned()),
        (
            "PII_HASH_KEY",
            "integration-tests-key-0123456789abcdef".to_owned(),
        ),
        ("OUTBOX_REQUIRED", outbox_required.to_string()),
    ];
    let config = Config::from_vars(&vars).expect("valid config");
    let keys = HttpKeySource::new(config.firebase_certs_url.clone(), CachePolicy::default())
        .expect("http client");
    let issuer = StsIssuer::new(
        aws_sdk_sts::Client::new(&stack.sdk),
        &config.app_role_arn,
        config.session_duration,
    );
    let outbox = DynamoOutbox::new(stack.dynamodb.clone(), outbox_table);
    let publisher = EventBridgePublisher::new(stack.events.clone(), bus);
    Exchange::from_config(&config, keys, issuer, outbox, publisher)
}

fn request(token: &str) -> ApiGatewayV2httpRequest {
    let fixture = include_str!("../../crates/auth-exchange/tests/fixtures/http-api-request.json");
    let mut request: ApiGatewayV2httpRequest =
        serde_json::from_str(fixture).expect("request fixture");
    request.headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    request
}

fn ada() -> String {
    let mut identity = DevIdentity::new("ada-uid-1");
    identity.email = Some("ada@example.com".to_owned());
    identity.name = Some("Ada Lovelace".to_owned());
    "google.com".clone_into(&mut identity.provider);
    signer().sign(&claims(PROJECT, &identity)).expect("signed")
}

fn body(response: &aws_lambda_events::apigw::ApiGatewayV2httpResponse) -> Value {
    let text = match &response.body {
        Some(aws_lambda_events::encodings::Body::Text(text)) => text.clone(),
        other => panic!("unexpected body {other:?}"),
    };
    serde_json::from_str(&text).expect("JSON body")
}

#[tokio::test]
async fn a_valid_token_gets_sts_credentials_and_exactly_one_outbox_item_matching_the_claims() {
    let stack = spawn_stack().await;
    let exchange = exchange(&stack, &stack.names.outbox_table(), &stack.names.bus, false).await;
    let response = Box::pin(exchange.handle(request(&ada()), None)).await;
    assert_eq!(response.status_code, 200);
    let credentials = &body(&response)["credentials"];
    for field in [
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    ] {
        assert!(
            credentials[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field} in {credentials}"
        );
    }
    let items = stack.scan(&stack.names.outbox_table()).await;
    assert_eq!(items.len(), 1);
    let detail: Value =
        serde_json::from_str(items[0]["detail"].as_s().expect("detail")).expect("JSON");
    assert_eq!(detail["userId"], "ada-uid-1");
    assert_eq!(detail["email"], "ada@example.com");
    assert_eq!(detail["displayName"], "Ada Lovelace");
    assert_eq!(detail["provider"], "google.com");
    assert_eq!(
        items[0]["traceHeader"].as_s().ok().map(String::as_str),
        Some("Root=1-6749a1b2-3c4d5e6f7a8b9c0d1e2f3a4b")
    );
}

/// AssumeRole refuses a session tag holding `,` and a `/` would reach
/// `${aws:PrincipalTag/userId}` paths as is: such uids get a derived tag
/// (unit-tested against AWS's character rules in `credentials.rs`) and sign
/// in, and their events still carry the real uid.
#[tokio::test]
async fn uids_with_commas_slashes_spaces_or_non_ascii_sign_in() {
    let stack = spawn_stack().await;
    let exchange = exchange(&stack, &stack.names.outbox_table(), &stack.names.bus, false).await;
    let uids = ["a,b", "alice/../bob", "with space", "ünïcødé-üser"];
    for uid in uids {
        let mut identity = DevIdentity::new(uid);
        identity.email = Some("odd@example.com".to_owned());
        let token = signer().sign(&claims(PROJECT, &identity)).expect("signed");
        let response = Box::pin(exchange.handle(request(&token), None)).await;
        assert_eq!(response.status_code, 200, "{uid:?}: {}", body(&response));
        assert!(body(&response)["credentials"]["SessionToken"].is_string());
    }
    let mut recorded: Vec<String> = stack
        .scan(&stack.names.outbox_table())
        .await
        .iter()
        .map(|item| {
            let detail: Value =
                serde_json::from_str(item["detail"].as_s().expect("detail")).expect("JSON");
            detail["userId"].as_str().expect("userId").to_owned()
        })
        .collect();
    recorded.sort();
    let mut expected: Vec<String> = uids.iter().map(|&uid| uid.to_owned()).collect();
    expected.sort();
    assert_eq!(recorded, expected);
}

#[tokio::test]
async fn a_forged_token_gets_401_and_writes_nothing() {
    let stack = spawn_stack().await;
    let exchange = exchange(&stack, &stack.names.outbox_table(), &stack.names.bus, false).await;
    let other = DevSigner::generate("it-kid").expect("another key with the same kid");
    let forged = other
        .sign(&claims(PROJECT, &DevIdentity::new("mallory")))
        .expect("signed");
    let response = Box::pin(exchange.handle(request(&forged), None)).await;
    assert_eq!(response.status_code, 401);
    assert_eq!(body(&response)["error"]["code"], "invalid_token");
    assert!(stack.scan(&stack.names.outbox_table()).await.is_empty());
}

#[tokio::test]
async fn with_dynamodb_failing_the_credentials_come_back_and_the_event_reaches_the_bus_directly() {
    let stack = spawn_stack().await;
    let missing_table = format!("{}no-such-table", stack.names.prefix);
    let exchange = exchange(&stack, &missing_table, &stack.names.bus, false).await;
    let response = Box::pin(exchange.handle(request(&ada()), None)).await;
    assert_eq!(response.status_code, 200);
    let delivered = stack
        .drain(&stack.target_queue_url, 1, Duration::from_secs(20))
        .await;
    assert_eq!(delivered.len(), 1, "the event arrived through the fallback");
    let envelope: Value = serde_json::from_str(&delivered[0]).expect("envelope");
    assert_eq!(envelope["detail"]["userId"], "ada-uid-1");
}

#[tokio::test]
async fn with_dynamodb_and_eventbridge_failing_the_credentials_still_come_back() {
    let stack = spawn_stack().await;
    let missing_table = format!("{}no-such-table", stack.names.prefix);
    let missing_bus = format!("{}no-such-bus", stack.names.prefix);
    let exchange = exchange(&stack, &missing_table, &missing_bus, false).await;
    let response = Box::pin(exchange.handle(request(&ada()), None)).await;
    // With both stores missing nothing can be written anywhere; that the
    // event then survives in one outbox_write_failed line is asserted on
    // the captured logs in crates/auth-exchange/tests/exchange.rs
    // (outbox_and_bus_failing_still_return_credentials_and_log_the_whole_event_once).
    assert_eq!(response.status_code, 200);
    assert!(body(&response)["credentials"]["SessionToken"].is_string());
}

#[tokio::test]
async fn with_outbox_required_an_event_that_cannot_be_recorded_answers_503() {
    let stack = spawn_stack().await;
    let missing_table = format!("{}no-such-table", stack.names.prefix);
    let missing_bus = format!("{}no-such-bus", stack.names.prefix);
    let exchange = exchange(&stack, &missing_table, &missing_bus, true).await;
    let response = Box::pin(exchange.handle(request(&ada()), None)).await;
    assert_eq!(response.status_code, 503);
}
