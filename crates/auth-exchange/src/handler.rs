//! The HTTP edge: API Gateway HTTP API / Function URL payload v2 in, JSON out.
//!
//! `POST /auth/exchange` with `Authorization: Bearer <Firebase ID token>` or
//! a JSON body `{"idToken": "..."}`. Error bodies are
//! `{"error":{"code":..,"message":..}}` and say nothing about which check
//! failed or what failed inside.

use std::time::Duration;

use auth_events_aws::errors::cause_chain;
use auth_events_core::contract::Timestamp;
use auth_events_core::outbox::OutboxRecord;
use auth_events_core::ports::{OutboxStore, Publisher};
use auth_events_core::redact::PiiKey;
use auth_events_core::trace;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::Method;
use http::header::{self, HeaderMap, HeaderValue};
use tracing::{Span, field, info, instrument, warn};

use crate::config::Config;
use crate::credentials::{CredentialIssuer, Credentials};
use crate::policy::{PolicyRefusal, SignInPolicy};
use crate::sign_in::{SignInRecorder, sign_in_event};
use crate::verify::{KeySource, MAX_TOKEN_BYTES, Verifier, VerifyError};

/// A body this large is not an `{"idToken": ...}` request; refuse it before
/// decoding.
const MAX_BODY_BYTES: usize = 2 * MAX_TOKEN_BYTES;

const BODY_SHAPE: &str = "The request body must be a JSON object {\"idToken\": \"...\"}.";

pub const INVALID_TOKEN_MESSAGE: &str =
    "The ID token is missing, malformed, expired or not valid for this application.";

/// What the handler needs beyond its ports.
#[derive(Debug, Clone)]
pub struct Settings {
    pub outbox_required: bool,
    pub outbox_ttl: Duration,
    pub policy: SignInPolicy,
    pub pii_hash_key: PiiKey,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            outbox_required: config.outbox_required,
            outbox_ttl: config.outbox_ttl,
            policy: config.policy.clone(),
            pii_hash_key: config.pii_hash_key.clone(),
        }
    }
}

/// The token exchange, generic over its ports so tests can drive every
/// failure through in-memory and fault-injecting implementations.
#[derive(Debug)]
pub struct Exchange<K, C, O, P> {
    verifier: Verifier<K>,
    issuer: C,
    recorder: SignInRecorder<O, P>,
    settings: Settings,
}

/// A failure answered with a JSON error body.
#[derive(Debug)]
struct Refusal {
    status: u16,
    code: &'static str,
    message: &'static str,
    /// For the logs only: which check or dependency said no.
    reason: &'static str,
}

impl Refusal {
    const fn new(
        status: u16,
        code: &'static str,
        message: &'static str,
        reason: &'static str,
    ) -> Self {
        Self {
            status,
            code,
            message,
            reason,
        }
    }

    const fn invalid_token(reason: &'static str) -> Self {
        Self::new(401, "invalid_token", INVALID_TOKEN_MESSAGE, reason)
    }

    fn forbidden(refusal: PolicyRefusal) -> Self {
        Self::new(403, refusal.code(), refusal.message(), refusal.code())
    }

    const fn bad_request(message: &'static str) -> Self {
        Self::new(400, "bad_request", message, "bad_request")
    }

    const fn unavailable(reason: &'static str) -> Self {
        Self::new(
            503,
            "service_unavailable",
            "Sign-in is temporarily unavailable. Retry shortly.",
            reason,
        )
    }

    const fn upstream(reason: &'static str) -> Self {
        Self::new(
            502,
            "upstream_error",
            "Credentials could not be issued. Retry later or contact support.",
            reason,
        )
    }
}

impl<K, C, O, P> Exchange<K, C, O, P>
where
    K: KeySource,
    C: CredentialIssuer,
    O: OutboxStore,
    P: Publisher,
{
    pub fn new(
        verifier: Verifier<K>,
        issuer: C,
        recorder: SignInRecorder<O, P>,
        settings: Settings,
    ) -> Self {
        Self {
            verifier,
            issuer,
            recorder,
            settings,
        }
    }

    /// The exchange as the configuration describes it, around the given
    /// ports.
    pub fn from_config(config: &Config, keys: K, issuer: C, outbox: O, publisher: P) -> Self {
        Self::new(
            Verifier::new(&config.firebase_project_id, config.clock_skew, keys),
            issuer,
            SignInRecorder::new(
                outbox,
                publisher,
                config.outbox_write_budget,
                config.pii_hash_key.clone(),
            ),
            Settings::from_config(config),
        )
    }

    pub fn issuer(&self) -> &C {
        &self.issuer
    }

    pub fn recorder(&self) -> &SignInRecorder<O, P> {
        &self.recorder
    }

    #[instrument(
        name = "auth_exchange",
        skip_all,
        fields(
            request_id = request.request_context.request_id.as_deref().unwrap_or_default(),
            uid = field::Empty,
            email_hash = field::Empty,
            event_id = field::Empty,
        )
    )]
    /// Answers one request. `function_trace_id` is this invocation's own
    /// X-Ray trace id (the Lambda context's), which the event carries when
    /// the client sent no usable `X-Amzn-Trace-Id`.
    pub async fn handle(
        &self,
        request: ApiGatewayV2httpRequest,
        function_trace_id: Option<&str>,
    ) -> ApiGatewayV2httpResponse {
        let (response, outcome) = match self.exchange(&request, function_trace_id).await {
            Ok((credentials, event)) => (success(&credentials), event),
            Err(refusal) => (refusal_response(&refusal), refusal.reason),
        };
        info!(status = response.status_code, outcome, "exchange_completed");
        response
    }

    /// The credentials and what became of the sign-in event, or the refusal.
    async fn exchange(
        &self,
        request: &ApiGatewayV2httpRequest,
        function_trace_id: Option<&str>,
    ) -> Result<(Credentials, &'static str), Refusal> {
        if request.request_context.http.method != Method::POST {
            return Err(Refusal::new(
                405,
                "method_not_allowed",
                "Use POST.",
                "method_not_allowed",
            ));
        }
        let token = bearer_token(request)?;
        let verified = self
            .verifier
            .verify(&token)
            .await
            .map_err(|error| match error {
                VerifyError::Rejected(reason) => Refusal::invalid_token(reason.as_str()),
                VerifyError::KeysUnavailable(cause) => {
                    warn!(error = %cause_chain(&cause), "token_not_verifiable");
                    Refusal::unavailable("certificates_unavailable")
                }
            })?;
        let span = Span::current();
        span.record("uid", verified.uid.as_str());
        if let Some(email) = &verified.claims.email {
            span.record("email_hash", self.settings.pii_hash_key.email_hash(email));
        }
        // Before any credentials exist: a refused sign-in costs STS nothing.
        self.settings
            .policy
            .check(&verified.claims)
            .map_err(Refusal::forbidden)?;

        let credentials = self.issuer.issue(&verified.uid).await.map_err(|error| {
            warn!(
                status = error.status(),
                code = error.code(),
                error = %cause_chain(&error),
                "credentials_not_issued"
            );
            if error.status() == 503 {
                Refusal::unavailable("sts_unavailable")
            } else {
                Refusal::upstream("sts_refused")
            }
        })?;

        let now = Timestamp::now();
        let outcome = match sign_in_event(&verified, now) {
            Ok(event) => {
                let trace_header = trace_header(&request.headers, function_trace_id);
                let record = OutboxRecord::new(&event, now, self.settings.outbox_ttl, trace_header);
                span.record("event_id", field::display(record.event_id));
                let delivery = self.recorder.deliver(&record).await;
                if delivery.is_lost() && self.settings.outbox_required {
                    return Err(Refusal::unavailable("event_lost_and_outbox_required"));
                }
                delivery.as_str()
            }
            // The contract cannot carry a sign-in without an email (phone or
            // anonymous auth); that user still gets credentials.
            Err(reason) => {
                warn!(reason = %reason, "sign_in_event_not_representable");
                "event_not_representable"
            }
        };
        Ok((credentials, outcome))
    }
}

/// The client's `X-Amzn-Trace-Id` when it is one PutEvents accepts, else
/// the function's own trace id. A malformed header is dropped, not refused:
/// the sign-in does not depend on it, and sent on it would make the bus
/// refuse the whole request it rides in. Only its length is logged: the
/// value is the client's to choose.
fn trace_header(headers: &HeaderMap, function_trace_id: Option<&str>) -> Option<String> {
    let sent = headers.get("x-amzn-trace-id");
    let kept = sent
        .and_then(|value| value.to_str().ok())
        .and_then(trace::well_formed);
    if let (Some(value), None) = (sent, kept) {
        info!(chars = value.len(), "trace_header_dropped");
    }
    kept.or_else(|| function_trace_id.and_then(trace::well_formed))
        .map(str::to_owned)
}

/// The token from `Authorization: Bearer`, else from the JSON body. No token
/// at all is a 401 (an unauthenticated request); a body that is not our
/// JSON is a 400.
fn bearer_token(request: &ApiGatewayV2httpRequest) -> Result<String, Refusal> {
    if let Some(value) = request.headers.get(header::AUTHORIZATION) {
        let not_bearer = || Refusal::invalid_token("authorization_not_bearer");
        let value = value.to_str().map_err(|_| not_bearer())?;
        let (scheme, token) = value.trim().split_once(' ').ok_or_else(not_bearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(not_bearer());
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(Refusal::invalid_token("missing_token"));
        }
        return Ok(token.to_owned());
    }
    let Some(body) = request.body.as_deref().filter(|b| !b.trim().is_empty()) else {
        return Err(Refusal::invalid_token("missing_token"));
    };
    // base64 inflates by 4/3, hence the allowance.
    if body.len() > MAX_BODY_BYTES * 4 / 3 + 4 {
        return Err(Refusal::bad_request("The request body is too large."));
    }
    let bytes = if request.is_base64_encoded {
        STANDARD
            .decode(body)
            .map_err(|_| Refusal::bad_request("The request body is not valid base64."))?
    } else {
        body.as_bytes().to_vec()
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Refusal::bad_request("The request body is too large."));
    }
    // A map rather than a derived struct: serde would also accept the
    // struct's fields as a JSON array, which is not our request shape.
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| Refusal::bad_request(BODY_SHAPE))?;
    let token = object
        .get("idToken")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| Refusal::bad_request(BODY_SHAPE))?
        .trim();
    if token.is_empty() {
        return Err(Refusal::invalid_token("missing_token"));
    }
    Ok(token.to_owned())
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Credentials and refusals alike must not be cached by any proxy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers
}

fn response(status: u16, headers: HeaderMap, body: String) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(body));
    response.is_base64_encoded = false;
    response
}

fn success(credentials: &Credentials) -> ApiGatewayV2httpResponse {
    let body = serde_json::json!({ "credentials": credentials }).to_string();
    response(200, json_headers(), body)
}

fn refusal_response(refusal: &Refusal) -> ApiGatewayV2httpResponse {
    let mut headers = json_headers();
    match refusal.status {
        401 => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        405 => {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        503 => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    let body = serde_json::json!({
        "error": { "code": refusal.code, "message": refusal.message }
    })
    .to_string();
    response(refusal.status, headers, body)
}
