//! The handler end to end, with a generated key behind a local certificate
//! server, a counting credential issuer and the core's in-memory and
//! fault-injecting outbox and bus.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use auth_events_core::contract::Timestamp;
use auth_events_core::outbox::OutboxRecord;
use auth_events_core::redact::{PiiKey, REDACTED};
use auth_events_core::testing::{
    FaultyOutbox, FaultyPublisher, InsertFault, MemoryOutbox, MemoryPublisher,
};
use auth_exchange::certs::HttpKeySource;
use auth_exchange::handler::INVALID_TOKEN_MESSAGE;
use auth_exchange::{Config, Exchange, OUTBOX_WRITE_FAILED};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use common::{
    ACCESS_KEY_ID, CapturedLogs, CertServer, EMAIL, EXPIRATION, FakeIssuer, PROJECT,
    SECRET_ACCESS_KEY, SESSION_TOKEN, SigningKey, UID, base_request, bearer_request, body_request,
    claims, claims_with, fast_policy, hs256_with_certificate, now, tampered, unsigned_token,
};
use http::Method;
use serde_json::{Value, json};

const TRACE_HEADER: &str = "Root=1-6749a1b2-3c4d5e6f7a8b9c0d1e2f3a4b";
const PII_HASH_KEY: &str = "exchange-tests-key-0123456789abcdef";

fn email_hash(email: &str) -> String {
    PiiKey::parse(PII_HASH_KEY)
        .expect("long enough")
        .email_hash(email)
}

type Outbox = FaultyOutbox<MemoryOutbox>;
type Bus = FaultyPublisher<MemoryPublisher>;

struct Stack {
    exchange: Exchange<Arc<HttpKeySource>, FakeIssuer, Outbox, Bus>,
    logs: CapturedLogs,
    server: CertServer,
    _guard: tracing::subscriber::DefaultGuard,
}

fn config(certs_url: &str, extra: &[(&str, &str)]) -> Config {
    let defaults = [
        ("FIREBASE_PROJECT_ID", PROJECT),
        ("APP_ROLE_ARN", "arn:aws:iam::123456789012:role/app"),
        ("OUTBOX_TABLE", "test-outbox"),
        ("EVENT_BUS_NAME", "test-bus"),
        ("FIREBASE_CERTS_URL", certs_url),
        ("ALLOW_DEV_CERTS_URL", "true"),
        ("PII_HASH_KEY", PII_HASH_KEY),
        // Small, so that the fault tests run fast; the logic is the same.
        ("OUTBOX_WRITE_BUDGET_MS", "60"),
    ];
    Config::from_vars(&[defaults.as_slice(), extra].concat()).expect("test configuration")
}

async fn stack_with(extra: &[(&str, &str)]) -> Stack {
    let (logs, guard) = CapturedLogs::install();
    let server = CertServer::start(&[SigningKey::shared()], Some(3600)).await;
    let config = config(&server.url, extra);
    let exchange = Exchange::from_config(
        &config,
        server.key_source(fast_policy()),
        FakeIssuer::default(),
        FaultyOutbox::new(MemoryOutbox::default()),
        FaultyPublisher::new(MemoryPublisher::default()),
    );
    Stack {
        exchange,
        logs,
        server,
        _guard: guard,
    }
}

async fn stack() -> Stack {
    stack_with(&[]).await
}

impl Stack {
    async fn call(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        self.exchange.handle(request, None).await
    }

    fn issuer(&self) -> &FakeIssuer {
        self.exchange.issuer()
    }

    fn outbox(&self) -> &Outbox {
        self.exchange.recorder().outbox()
    }

    fn bus(&self) -> &Bus {
        self.exchange.recorder().publisher()
    }

    fn records(&self) -> Vec<OutboxRecord> {
        self.outbox().inner().records()
    }
}

fn body(response: &ApiGatewayV2httpResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).expect("JSON body"),
        other => panic!("expected a text body, got {other:?}"),
    }
}

fn header<'a>(response: &'a ApiGatewayV2httpResponse, name: &str) -> Option<&'a str> {
    response.headers.get(name).and_then(|v| v.to_str().ok())
}

fn expected_credentials() -> Value {
    json!({
        "credentials": {
            "AccessKeyId": ACCESS_KEY_ID,
            "SecretAccessKey": SECRET_ACCESS_KEY,
            "SessionToken": SESSION_TOKEN,
            "Expiration": EXPIRATION,
        }
    })
}

/// The event inside a record, as the relay will publish it.
fn detail(record_detail: &str) -> Value {
    serde_json::from_str(record_detail).expect("detail JSON")
}

fn assert_detail_matches_the_claims(detail: &Value) {
    assert_eq!(detail["userId"], UID);
    assert_eq!(detail["email"], EMAIL);
    assert_eq!(detail["displayName"], "Ada Lovelace");
    assert_eq!(
        detail["photoURL"],
        "https://lh3.googleusercontent.com/a/ada"
    );
    assert_eq!(detail["provider"], "google.com");
    assert_eq!(detail["emailVerified"], true);
    assert_eq!(detail["schemaVersion"], 2);
    let at = Timestamp::parse(detail["timestamp"].as_str().expect("timestamp")).expect("RFC 3339");
    assert!((Timestamp::now().millis() - at.millis()).abs() < 60_000);
}

// ---------------------------------------------------------------- success

#[tokio::test]
async fn a_trace_header_putevents_would_refuse_is_dropped_and_the_sign_in_succeeds() {
    let oversized = format!("{TRACE_HEADER};Data={}", "a".repeat(600));
    for sent in ["", "not-a-trace-header", oversized.as_str()] {
        let stack = stack().await;
        let mut request = bearer_request(&SigningKey::shared().sign(&claims()));
        request
            .headers
            .insert("x-amzn-trace-id", sent.parse().expect("header value"));
        let response = stack.call(request).await;

        assert_eq!(response.status_code, 200, "{sent:?}");
        let records = stack.records();
        assert_eq!(records.len(), 1, "{sent:?}");
        assert_eq!(records[0].trace_header, None, "{sent:?}");
    }
}

#[tokio::test]
async fn without_a_usable_client_header_the_event_carries_the_functions_own_trace_id() {
    let function_trace =
        "Root=1-67891233-abcdef012345678912345678;Parent=463ac35c9f6413ad;Sampled=1";
    let oversized = format!("{TRACE_HEADER};Data={}", "a".repeat(600));
    for (sent, carried) in [
        (None, function_trace),
        (Some(""), function_trace),
        (Some(oversized.as_str()), function_trace),
        (Some(TRACE_HEADER), TRACE_HEADER),
    ] {
        let stack = stack().await;
        let mut request = bearer_request(&SigningKey::shared().sign(&claims()));
        request.headers.remove("x-amzn-trace-id");
        if let Some(sent) = sent {
            request
                .headers
                .insert("x-amzn-trace-id", sent.parse().expect("header value"));
        }
        let response = stack.exchange.handle(request, Some(function_trace)).await;

        assert_eq!(response.status_code, 200, "{sent:?}");
        let records = stack.records();
        assert_eq!(
            records[0].trace_header.as_deref(),
            Some(carried),
            "{sent:?}"
        );
    }
}

#[tokio::test]
async fn valid_token_gets_200_with_credentials_and_exactly_one_outbox_record_matching_the_claims() {
    let stack = stack().await;
    let response = stack
        .call(bearer_request(&SigningKey::shared().sign(&claims())))
        .await;

    assert_eq!(response.status_code, 200);
    assert_eq!(body(&response), expected_credentials());
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    assert_eq!(stack.issuer().uids(), vec![UID.to_owned()]);

    let records = stack.records();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    let detail = detail(&record.detail);
    assert_detail_matches_the_claims(&detail);
    assert_eq!(detail["eventId"], record.event_id.to_string());
    assert_eq!(record.event_id.as_uuid().get_version_num(), 7);
    assert_eq!(record.detail_type, "user.signed_in");
    assert_eq!(record.source, "interview-companion.auth");
    assert_eq!(record.trace_header.as_deref(), Some(TRACE_HEADER));
    assert!(record.is_pending());
    assert_eq!(
        record.expires_at - record.created_at.epoch_seconds(),
        14 * 24 * 3600
    );
    OutboxRecord::decode_valid(record.to_item()).expect("the record honours the contract");
    assert!(
        stack.bus().inner().published().is_empty(),
        "publishing is the relay's job"
    );
}

#[tokio::test]
async fn the_id_token_is_accepted_in_a_json_body() {
    let stack = stack().await;
    let token = SigningKey::shared().sign(&claims());
    let response = stack
        .call(body_request(&json!({ "idToken": token }).to_string()))
        .await;
    assert_eq!(response.status_code, 200);
    assert_eq!(body(&response), expected_credentials());
    assert_eq!(stack.records().len(), 1);
}

#[tokio::test]
async fn a_base64_encoded_json_body_is_accepted() {
    let stack = stack().await;
    let token = SigningKey::shared().sign(&claims());
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(json!({ "idToken": token }).to_string());
    let mut request = body_request(&encoded);
    request.is_base64_encoded = true;
    let response = stack.call(request).await;
    assert_eq!(response.status_code, 200);
}

#[tokio::test]
async fn a_sign_in_without_an_email_gets_credentials_and_records_no_event() {
    let stack = stack().await;
    let mut claims = claims();
    claims.as_object_mut().expect("object").remove("email");
    let response = stack
        .call(bearer_request(&SigningKey::shared().sign(&claims)))
        .await;
    assert_eq!(response.status_code, 200);
    assert!(stack.records().is_empty());
    assert!(stack.bus().inner().published().is_empty());
    assert_eq!(
        stack
            .logs
            .with_message("sign_in_event_not_representable")
            .len(),
        1
    );
}

// ------------------------------------------------------------ 401s

/// Every token failure: 401, the one message, no STS call, no event; only
/// the log says which check refused it.
async fn assert_refused_as_invalid_token(request: ApiGatewayV2httpRequest, reason: &str) {
    let stack = stack().await;
    let response = stack.call(request).await;
    let summary = stack.logs.with_message("exchange_completed");
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0]["fields"]["outcome"], reason);
    assert_eq!(response.status_code, 401);
    assert_eq!(
        body(&response),
        json!({ "error": { "code": "invalid_token", "message": INVALID_TOKEN_MESSAGE } })
    );
    assert_eq!(
        header(&response, "www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    assert_eq!(stack.issuer().calls(), 0, "no STS call");
    assert!(stack.records().is_empty(), "no outbox item");
    assert!(
        stack.bus().inner().published().is_empty(),
        "nothing on the bus"
    );
}

#[tokio::test]
async fn alg_none_token_gets_401_and_no_sts_call() {
    let key = SigningKey::shared();
    assert_refused_as_invalid_token(
        bearer_request(&unsigned_token(&key.kid, &claims())),
        "algorithm_not_rs256",
    )
    .await;
}

#[tokio::test]
async fn hs256_token_keyed_with_the_public_certificate_gets_401_and_no_sts_call() {
    let key = SigningKey::shared();
    assert_refused_as_invalid_token(
        bearer_request(&hs256_with_certificate(key, &claims())),
        "algorithm_not_rs256",
    )
    .await;
}

#[tokio::test]
async fn unknown_kid_gets_401_and_no_sts_call() {
    let token = SigningKey::shared().sign_with_kid(&claims(), "unknown-kid");
    assert_refused_as_invalid_token(bearer_request(&token), "unknown_kid").await;
}

#[tokio::test]
async fn wrong_audience_gets_401_and_no_sts_call() {
    let token = SigningKey::shared().sign(&claims_with(&json!({ "aud": "other-project" })));
    assert_refused_as_invalid_token(bearer_request(&token), "wrong_audience").await;
}

#[tokio::test]
async fn wrong_issuer_gets_401_and_no_sts_call() {
    let token = SigningKey::shared().sign(&claims_with(
        &json!({ "iss": "https://securetoken.google.com/other-project" }),
    ));
    assert_refused_as_invalid_token(bearer_request(&token), "wrong_issuer").await;
}

#[tokio::test]
async fn expired_token_gets_401_and_no_sts_call() {
    let token = SigningKey::shared().sign(&claims_with(&json!({ "exp": now() - 3600 })));
    assert_refused_as_invalid_token(bearer_request(&token), "expired").await;
}

#[tokio::test]
async fn iat_in_the_future_gets_401_and_no_sts_call() {
    let token = SigningKey::shared().sign(&claims_with(&json!({ "iat": now() + 3600 })));
    assert_refused_as_invalid_token(bearer_request(&token), "issued_in_future").await;
}

#[tokio::test]
async fn auth_time_in_the_future_gets_401_and_no_sts_call() {
    let token = SigningKey::shared().sign(&claims_with(&json!({ "auth_time": now() + 3600 })));
    assert_refused_as_invalid_token(bearer_request(&token), "auth_time_in_future").await;
}

#[tokio::test]
async fn empty_sub_gets_401_and_no_sts_call() {
    let token = SigningKey::shared().sign(&claims_with(&json!({ "sub": "" })));
    assert_refused_as_invalid_token(bearer_request(&token), "invalid_subject").await;
}

#[tokio::test]
async fn sub_of_129_characters_gets_401_and_no_sts_call() {
    let token = SigningKey::shared().sign(&claims_with(&json!({ "sub": "u".repeat(129) })));
    assert_refused_as_invalid_token(bearer_request(&token), "invalid_subject").await;
}

#[tokio::test]
async fn tampered_payload_gets_401_and_no_sts_call() {
    let token = tampered(&SigningKey::shared().sign(&claims()));
    assert_refused_as_invalid_token(bearer_request(&token), "bad_signature").await;
}

#[tokio::test]
async fn malformed_jwt_gets_401_and_no_sts_call() {
    for token in ["not-a-jwt", "a.b", "a.b.c.d", "ey.ey.ey"] {
        assert_refused_as_invalid_token(bearer_request(token), "malformed").await;
    }
}

#[tokio::test]
async fn oversized_token_gets_401_and_no_sts_call() {
    let token = SigningKey::shared().sign(&claims_with(&json!({ "padding": "x".repeat(9000) })));
    assert_refused_as_invalid_token(bearer_request(&token), "token_too_large").await;
}

#[tokio::test]
async fn missing_authorization_header_gets_401_and_no_sts_call() {
    assert_refused_as_invalid_token(base_request(), "missing_token").await;
}

#[tokio::test]
async fn a_non_bearer_authorization_gets_401_and_no_sts_call() {
    let mut request = base_request();
    request.headers.insert(
        http::header::AUTHORIZATION,
        "Basic dXNlcjpwYXNz".parse().expect("header"),
    );
    assert_refused_as_invalid_token(request, "authorization_not_bearer").await;
}

#[tokio::test]
async fn every_token_failure_gets_the_same_body() {
    let stack = stack().await;
    let key = SigningKey::shared();
    let tokens = [
        unsigned_token(&key.kid, &claims()),
        key.sign(&claims_with(&json!({ "exp": now() - 3600 }))),
        key.sign(&claims_with(&json!({ "aud": "x" }))),
        key.sign_with_kid(&claims(), "nope"),
        tampered(&key.sign(&claims())),
    ];
    let mut bodies = Vec::new();
    for token in &tokens {
        let response = stack.call(bearer_request(token)).await;
        bodies.push(response.body.clone());
    }
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
}

// ------------------------------------------------------------ 403s

/// A genuine token the sign-in policy refuses: 403 with the refusal's
/// code, no STS call, no event.
async fn assert_refused_by_policy(extra: &[(&str, &str)], changes: &Value, code: &str) {
    let stack = stack_with(extra).await;
    let response = stack
        .call(bearer_request(
            &SigningKey::shared().sign(&claims_with(changes)),
        ))
        .await;
    assert_eq!(response.status_code, 403, "{:?}", body(&response));
    assert_eq!(body(&response)["error"]["code"], code);
    assert!(body(&response)["error"]["message"].is_string());
    assert_eq!(stack.issuer().calls(), 0, "no STS call");
    assert!(stack.records().is_empty(), "no outbox item");
    let summary = stack.logs.with_message("exchange_completed");
    assert_eq!(summary[0]["fields"]["outcome"], code);
}

#[tokio::test]
async fn an_anonymous_sign_in_gets_403_by_default() {
    assert_refused_by_policy(
        &[],
        &json!({ "firebase": { "sign_in_provider": "anonymous" } }),
        "provider_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn a_provider_outside_allowed_providers_gets_403() {
    assert_refused_by_policy(
        &[("ALLOWED_PROVIDERS", "password,apple.com")],
        &json!({}),
        "provider_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn an_unverified_email_gets_403_when_verified_email_is_required() {
    assert_refused_by_policy(
        &[("REQUIRE_VERIFIED_EMAIL", "true")],
        &json!({ "email_verified": false }),
        "email_not_verified",
    )
    .await;
}

#[tokio::test]
async fn a_tenant_token_gets_403_unless_its_tenant_is_allowed() {
    let tenant = json!({ "firebase": { "sign_in_provider": "password", "tenant": "acme-1a2b" } });
    assert_refused_by_policy(&[], &tenant, "tenant_not_allowed").await;
    let stack = stack_with(&[("ALLOWED_TENANTS", "acme-1a2b")]).await;
    let response = stack
        .call(bearer_request(
            &SigningKey::shared().sign(&claims_with(&tenant)),
        ))
        .await;
    assert_eq!(response.status_code, 200);
}

#[tokio::test]
async fn an_unverified_email_signs_in_by_default_and_the_event_says_unverified() {
    let stack = stack().await;
    let response = stack
        .call(bearer_request(
            &SigningKey::shared().sign(&claims_with(&json!({ "email_verified": false }))),
        ))
        .await;
    assert_eq!(response.status_code, 200);
    let records = stack.records();
    assert_eq!(detail(&records[0].detail)["emailVerified"], false);
}

// ------------------------------------------------------------ 400 / 405

#[tokio::test]
async fn a_malformed_body_gets_400_and_no_sts_call() {
    let stack = stack().await;
    for body_text in ["not json", r#"{"idToken": 5}"#, "{}", r#"["a.b.c"]"#] {
        let response = stack.call(body_request(body_text)).await;
        assert_eq!(response.status_code, 400, "{body_text}");
        assert_eq!(body(&response)["error"]["code"], "bad_request");
    }
    let mut request = body_request("%%% not base64 %%%");
    request.is_base64_encoded = true;
    assert_eq!(stack.call(request).await.status_code, 400);
    assert_eq!(stack.issuer().calls(), 0);
    assert!(stack.records().is_empty());
}

#[tokio::test]
async fn a_get_gets_405() {
    let stack = stack().await;
    let mut request = bearer_request(&SigningKey::shared().sign(&claims()));
    request.request_context.http.method = Method::GET;
    let response = stack.call(request).await;
    assert_eq!(response.status_code, 405);
    assert_eq!(header(&response, "allow"), Some("POST"));
    assert_eq!(stack.issuer().calls(), 0);
}

// ------------------------------------------------------- upstream trouble

#[tokio::test]
async fn sts_throttling_gets_503_and_records_no_event() {
    let stack = stack().await;
    stack.issuer().fail_with(Some(503));
    let response = stack
        .call(bearer_request(&SigningKey::shared().sign(&claims())))
        .await;
    assert_eq!(response.status_code, 503);
    assert_eq!(body(&response)["error"]["code"], "service_unavailable");
    assert_eq!(header(&response, "retry-after"), Some("1"));
    assert!(stack.records().is_empty());
}

#[tokio::test]
async fn sts_refusal_gets_502_leaking_nothing_internal() {
    let stack = stack().await;
    stack.issuer().fail_with(Some(502));
    let response = stack
        .call(bearer_request(&SigningKey::shared().sign(&claims())))
        .await;
    assert_eq!(response.status_code, 502);
    let text = body(&response).to_string();
    assert_eq!(body(&response)["error"]["code"], "upstream_error");
    for internal in ["AccessDenied", "arn:", "AssumeRole", "injected"] {
        assert!(!text.contains(internal), "{internal} leaked: {text}");
    }
    assert!(stack.records().is_empty());
}

#[tokio::test]
async fn certificate_endpoint_down_gets_503_not_401() {
    let stack = stack().await;
    stack.server.state.failing.store(true, Ordering::SeqCst);
    let response = stack
        .call(bearer_request(&SigningKey::shared().sign(&claims())))
        .await;
    assert_eq!(response.status_code, 503);
    assert_eq!(stack.issuer().calls(), 0);
}

// ------------------------------------------------------ outbox faults

#[tokio::test]
async fn outbox_failing_still_returns_credentials_and_publishes_the_event_directly() {
    let stack = stack().await;
    stack.outbox().unavailable.set(true);
    let response = stack
        .call(bearer_request(&SigningKey::shared().sign(&claims())))
        .await;

    assert_eq!(response.status_code, 200);
    assert_eq!(body(&response), expected_credentials());
    assert!(stack.records().is_empty());
    let published = stack.bus().inner().published();
    assert_eq!(published.len(), 1);
    let entry = &published[0];
    assert_eq!(entry.detail_type, "user.signed_in");
    assert_eq!(entry.trace_header.as_deref(), Some(TRACE_HEADER));
    let detail = detail(&entry.detail);
    assert_detail_matches_the_claims(&detail);
    assert_eq!(
        detail["eventId"],
        entry
            .event_id
            .expect("entry carries the event id")
            .to_string()
    );
    assert!(stack.logs.with_message(OUTBOX_WRITE_FAILED).is_empty());
}

#[tokio::test]
async fn outbox_and_bus_failing_still_return_credentials_and_log_the_whole_event_once() {
    let stack = stack().await;
    stack.outbox().unavailable.set(true);
    stack.bus().unavailable.set(true);
    let response = stack
        .call(bearer_request(&SigningKey::shared().sign(&claims())))
        .await;

    assert_eq!(response.status_code, 200);
    assert_eq!(body(&response), expected_credentials());
    assert!(stack.records().is_empty());
    assert!(stack.bus().inner().published().is_empty());

    let lines = stack.logs.with_message(OUTBOX_WRITE_FAILED);
    assert_eq!(lines.len(), 1, "exactly one {OUTBOX_WRITE_FAILED} line");
    let line = &lines[0];
    assert_eq!(line["level"], "ERROR");
    let event: Value =
        serde_json::from_str(line["fields"]["event"].as_str().expect("event field")).expect("JSON");
    assert_eq!(event["source"], "interview-companion.auth");
    assert_eq!(event["detailType"], "user.signed_in");
    assert_eq!(event["traceHeader"], TRACE_HEADER);
    assert_eq!(line["fields"]["event_id"], event["eventId"]);
    let detail = &event["detail"];
    assert_eq!(detail["eventId"], event["eventId"]);
    assert_eq!(detail["userId"], UID);
    assert_eq!(detail["email"], email_hash(EMAIL));
    assert_eq!(detail["displayName"], REDACTED);
    assert_eq!(detail["photoURL"], REDACTED);
    assert_eq!(detail["provider"], "google.com");
    assert_eq!(detail["emailVerified"], true);
    assert!(detail["timestamp"].is_string());
    assert_eq!(detail["schemaVersion"], 2);
    let text = stack.logs.text();
    for personal in [EMAIL, "Ada Lovelace", "lh3.googleusercontent.com"] {
        assert!(!text.contains(personal), "{personal} in the logs");
    }
}

#[tokio::test]
async fn with_outbox_required_a_lost_event_gets_503() {
    let stack = stack_with(&[("OUTBOX_REQUIRED", "true")]).await;
    stack.outbox().unavailable.set(true);
    stack.bus().unavailable.set(true);
    let response = stack
        .call(bearer_request(&SigningKey::shared().sign(&claims())))
        .await;
    assert_eq!(response.status_code, 503);
    let text = body(&response).to_string();
    assert!(!text.contains(SESSION_TOKEN) && !text.contains(ACCESS_KEY_ID));
    assert_eq!(stack.logs.with_message(OUTBOX_WRITE_FAILED).len(), 1);
}

#[tokio::test]
async fn with_outbox_required_the_bus_fallback_still_signs_in() {
    let stack = stack_with(&[("OUTBOX_REQUIRED", "true")]).await;
    stack.outbox().unavailable.set(true);
    let response = stack
        .call(bearer_request(&SigningKey::shared().sign(&claims())))
        .await;
    assert_eq!(response.status_code, 200);
    assert_eq!(stack.bus().inner().published().len(), 1);
}

#[tokio::test]
async fn a_retry_whose_first_attempt_landed_counts_as_written() {
    let stack = stack().await;
    stack
        .outbox()
        .fail_inserts(Some(InsertFault::LandThenLoseAnswer));
    let response = stack
        .call(bearer_request(&SigningKey::shared().sign(&claims())))
        .await;
    assert_eq!(response.status_code, 200);
    assert_eq!(stack.outbox().inserts(), 2);
    assert_eq!(stack.records().len(), 1);
    assert!(
        stack.bus().inner().published().is_empty(),
        "no fallback for a write that landed"
    );
}

#[tokio::test]
async fn a_permanent_outbox_error_falls_back_at_once_without_retrying() {
    let stack = stack().await;
    stack.outbox().fail_inserts(Some(InsertFault::Permanent));
    let response = stack
        .call(bearer_request(&SigningKey::shared().sign(&claims())))
        .await;
    assert_eq!(response.status_code, 200);
    assert_eq!(stack.outbox().inserts(), 1);
    assert_eq!(stack.bus().inner().published().len(), 1);
}

#[tokio::test]
async fn a_hanging_outbox_is_abandoned_at_the_budget_and_the_bus_takes_the_event() {
    let stack = stack().await;
    stack.outbox().fail_inserts(Some(InsertFault::Hang));
    // Far beyond the 60 ms budget: a budget that no longer holds fails here
    // instead of hanging the test run.
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        stack.call(bearer_request(&SigningKey::shared().sign(&claims()))),
    )
    .await
    .expect("the sign-in answers without waiting on the hanging outbox");
    assert_eq!(response.status_code, 200);
    assert_eq!(stack.bus().inner().published().len(), 1);
}

#[tokio::test]
async fn a_throttled_bus_entry_is_retried_within_the_budget() {
    let stack = stack().await;
    stack.outbox().unavailable.set(true);
    stack
        .bus()
        .fail_entries(Some(auth_events_core::testing::EntryFault {
            code: "ThrottlingException".to_owned(),
            ratio: 1.0,
        }));
    let response = stack
        .call(bearer_request(&SigningKey::shared().sign(&claims())))
        .await;
    assert_eq!(response.status_code, 200);
    assert!(stack.bus().calls() > 1, "throttled entries are retried");
    assert_eq!(stack.logs.with_message(OUTBOX_WRITE_FAILED).len(), 1);
}

// ------------------------------------------------------------- logs

#[tokio::test]
async fn logs_of_every_path_hold_no_email_and_no_token_in_clear() {
    let stack = stack().await;
    let key = SigningKey::shared();
    let good = key.sign(&claims());
    let mut tokens = vec![good.clone()];

    stack.call(bearer_request(&good)).await;
    let in_body = key.sign(&claims());
    stack
        .call(body_request(&json!({ "idToken": in_body }).to_string()))
        .await;
    tokens.push(in_body);

    stack.outbox().unavailable.set(true);
    let fallback = key.sign(&claims());
    stack.call(bearer_request(&fallback)).await;
    tokens.push(fallback);

    stack.bus().unavailable.set(true);
    let lost = key.sign(&claims());
    stack.call(bearer_request(&lost)).await;
    tokens.push(lost);

    for bad in [
        key.sign(&claims_with(&json!({ "exp": now() - 3600 }))),
        key.sign(&claims_with(&json!({ "aud": "elsewhere" }))),
        key.sign_with_kid(&claims(), "unknown"),
        tampered(&key.sign(&claims())),
        unsigned_token(&key.kid, &claims()),
        key.sign(&claims_with(&json!({ "padding": "x".repeat(9000) }))),
    ] {
        stack.call(bearer_request(&bad)).await;
        tokens.push(bad);
    }
    stack.issuer().fail_with(Some(502));
    let refused = key.sign(&claims());
    stack.call(bearer_request(&refused)).await;
    tokens.push(refused);

    let text = stack.logs.text();
    assert!(!text.is_empty());
    assert!(!text.contains(EMAIL), "an email address in clear");
    assert!(!text.contains("ada.lovelace"), "the email's local part");
    for token in &tokens {
        for (n, segment) in token.split('.').enumerate() {
            // The header segment is the same for every token we mint.
            if n > 0 && segment.len() > 16 {
                assert!(!text.contains(segment), "a token segment in the logs");
            }
        }
    }
    assert!(!text.contains(SECRET_ACCESS_KEY) && !text.contains(SESSION_TOKEN));
    // The logs still identify the user, by uid and email hash.
    assert!(text.contains(UID));
    assert!(text.contains(&email_hash(EMAIL)));
    assert_eq!(
        stack.logs.with_message("exchange_completed").len(),
        tokens.len()
    );
}

#[test]
fn the_openapi_document_names_every_status_code_and_error_code_we_send() {
    let document = include_str!("../../../docs/openapi.yaml");
    for status in [
        "\"200\":", "\"400\":", "\"401\":", "\"403\":", "\"405\":", "\"502\":", "\"503\":",
    ] {
        assert!(document.contains(status), "{status}");
    }
    for code in [
        "bad_request",
        "invalid_token",
        "method_not_allowed",
        "upstream_error",
        "service_unavailable",
        "provider_not_allowed",
        "email_not_verified",
        "tenant_not_allowed",
    ] {
        assert!(document.contains(code), "{code}");
    }
    assert!(document.contains(INVALID_TOKEN_MESSAGE));
}
