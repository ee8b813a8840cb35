//! Specification: at `RUST_LOG=trace` the shipped binary logs nothing a
//! reader could sign in with or identify a person by.
//!
//! The real `auth-exchange` binary runs one sign-in against a stand-in for
//! the Lambda Runtime API and for AWS (STS answers; DynamoDB and EventBridge
//! refuse, so the sign-in also takes the `outbox_write_failed` path, the one
//! that logs the most). At trace level the runtime would log the raw
//! invocation payload and the SDK its signed requests; the log floor keeps
//! both out.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{
    ASSUMED, ASSUMED_SECRET_ACCESS_KEY, ASSUMED_SESSION_TOKEN, CertServer, EMAIL, PROJECT,
    SigningKey, bearer_request, claims,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;

const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
/// The function's own credentials: the SDK signs with them, and at trace
/// level would log the session token in the canonical request.
const FUNCTION_SECRET_KEY: &str = "FunctionSecretKeyNeverLoggedXXXXXXXXXXXX";
const FUNCTION_SESSION_TOKEN: &str = "FunctionSessionTokenNeverLogged";
const DISPLAY_NAME: &str = "Ada Lovelace";
const PHOTO_URL: &str = "https://lh3.googleusercontent.com/a/ada";

struct StandIn {
    event: String,
    served: Mutex<bool>,
    answer: Mutex<Option<(String, String)>>,
    answered: Notify,
}

/// The first poll gets the sign-in; later polls wait, as Lambda's do while
/// the sandbox is frozen.
async fn next_invocation(State(stand_in): State<Arc<StandIn>>) -> Response {
    let first = !std::mem::replace(&mut *stand_in.served.lock().expect("lock"), true);
    if !first {
        std::future::pending::<()>().await;
    }
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 30_000;
    (
        [
            ("lambda-runtime-aws-request-id", REQUEST_ID.to_owned()),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-1:123456789012:function:auth-exchange".to_owned(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".to_owned(),
            ),
            ("content-type", "application/json".to_owned()),
        ],
        stand_in.event.clone(),
    )
        .into_response()
}

async fn record_answer(
    State(stand_in): State<Arc<StandIn>>,
    axum::extract::Path((id, kind)): axum::extract::Path<(String, String)>,
    body: String,
) -> StatusCode {
    assert_eq!(id, REQUEST_ID, "the runtime answers the invocation it got");
    *stand_in.answer.lock().expect("lock") = Some((kind, body));
    stand_in.answered.notify_one();
    StatusCode::ACCEPTED
}

/// STS issues credentials; DynamoDB throttles once (a retry our crate logs
/// at debug), then it and EventBridge say the table and bus do not exist.
async fn aws(headers: HeaderMap, body: Bytes) -> Response {
    static DYNAMODB_CALLS: AtomicUsize = AtomicUsize::new(0);
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if target.starts_with("DynamoDB_") {
        if DYNAMODB_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
            return refusal(
                "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            );
        }
        return refusal(
            "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
            "Requested resource not found",
        );
    }
    if target.starts_with("AWSEvents.") {
        return refusal(
            "ResourceNotFoundException",
            "Event bus missing does not exist.",
        );
    }
    let form = String::from_utf8_lossy(&body);
    assert!(
        form.contains("Action=AssumeRole"),
        "unexpected AWS call: {target} {form}"
    );
    ([(header::CONTENT_TYPE, "text/xml")], ASSUMED).into_response()
}

fn refusal(kind: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.0")],
        serde_json::json!({ "__type": kind, "message": message }).to_string(),
    )
        .into_response()
}

async fn start(stand_in: Arc<StandIn>) -> SocketAddr {
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{id}/{kind}",
            post(record_answer),
        )
        .route("/", post(aws))
        .with_state(stand_in);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("stand-in server") });
    addr
}

/// Starts the shipped binary as Lambda would, at trace level, collecting
/// everything it writes to stdout and stderr.
fn spawn_function(
    addr: SocketAddr,
    certs_url: &str,
) -> (tokio::process::Child, Arc<Mutex<String>>) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_auth-exchange"))
        .env_clear()
        .env("RUST_LOG", "trace")
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "auth-exchange")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ENDPOINT_URL", format!("http://{addr}"))
        .env("AWS_ACCESS_KEY_ID", "ASIAFUNCTIONOWNKEY01")
        .env("AWS_SECRET_ACCESS_KEY", FUNCTION_SECRET_KEY)
        .env("AWS_SESSION_TOKEN", FUNCTION_SESSION_TOKEN)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/auth-events/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/auth-events/credentials",
        )
        .env("FIREBASE_PROJECT_ID", PROJECT)
        .env("FIREBASE_CERTS_URL", certs_url)
        .env("ALLOW_DEV_CERTS_URL", "true")
        .env("APP_ROLE_ARN", "arn:aws:iam::123456789012:role/desktop-app")
        .env("OUTBOX_TABLE", "missing")
        .env("EVENT_BUS_NAME", "missing")
        .env("PII_HASH_KEY", "trace-logging-test-key-0123456789abcdef")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the auth-exchange binary starts");

    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let logged = Arc::new(Mutex::new(String::new()));
    for stream in [
        Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
        Box::new(stderr),
    ] {
        let logged = Arc::clone(&logged);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut all = logged.lock().expect("lock");
                all.push_str(&line);
                all.push('\n');
            }
        });
    }

    (child, logged)
}

#[tokio::test]
async fn at_trace_level_no_token_email_name_or_credential_is_logged() {
    let key = SigningKey::shared();
    let certs = CertServer::start(&[key], Some(3600)).await;
    let token = key.sign(&claims());
    let event = serde_json::to_string(&bearer_request(&token)).expect("request serialises");
    let stand_in = Arc::new(StandIn {
        event,
        served: Mutex::new(false),
        answer: Mutex::new(None),
        answered: Notify::new(),
    });
    let addr = start(Arc::clone(&stand_in)).await;

    let (mut child, logged) = spawn_function(addr, &certs.url);

    tokio::time::timeout(Duration::from_mins(1), stand_in.answered.notified())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no answer within 60 s; the function logged:\n{}",
                logged.lock().expect("lock")
            )
        });
    let (kind, body) = stand_in
        .answer
        .lock()
        .expect("lock")
        .clone()
        .expect("answered");
    assert_eq!(kind, "response", "the sign-in succeeded: {body}");
    let response: Value = serde_json::from_str(&body).expect("the answer is JSON");
    assert_eq!(response["statusCode"], 200, "{response}");
    assert!(
        response["body"]
            .as_str()
            .unwrap_or_default()
            .contains(ASSUMED_SESSION_TOKEN),
        "the credentials went to the user: {response}"
    );

    // The log lines are written before the answer is sent; the reader tasks
    // may still be behind, so poll for the last line we expect.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !logged.lock().expect("lock").contains("exchange_completed") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no exchange_completed line:\n{}",
            logged.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().await.expect("stop the function");
    let logged = logged.lock().expect("lock").clone();

    assert!(
        logged.contains("outbox_write_failed"),
        "both writes failed:\n{logged}"
    );
    assert!(
        logged.contains("\"level\":\"DEBUG\"") && logged.contains("outbox_write_retrying"),
        "RUST_LOG=trace took effect for our own crates:\n{logged}"
    );
    let secrets = [
        ("the ID token", token.as_str()),
        (
            "the token's signature",
            token.rsplit('.').next().expect("three parts"),
        ),
        (
            "the token's claims",
            token.split('.').nth(1).expect("three parts"),
        ),
        ("the e-mail address", EMAIL),
        ("the display name", DISPLAY_NAME),
        ("the photo URL", PHOTO_URL),
        ("the issued secret key", ASSUMED_SECRET_ACCESS_KEY),
        ("the issued session token", ASSUMED_SESSION_TOKEN),
        ("the function's secret key", FUNCTION_SECRET_KEY),
        ("the function's session token", FUNCTION_SESSION_TOKEN),
        ("the runtime's raw payload line", "raw JSON event received"),
    ];
    for (what, secret) in secrets {
        assert!(!logged.contains(secret), "{what} was logged:\n{logged}");
    }
}
