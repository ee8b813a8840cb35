//! Shared by the test binaries and the benchmark: a generated signing key
//! with its self-signed certificate, a local certificate server, token
//! minting, a counting credential issuer, request builders and log capture.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_events_core::contract::UserId;
use auth_events_core::ports::PortError;
use auth_exchange::certs::{CachePolicy, HttpKeySource};
use auth_exchange::{CredentialIssuer, Credentials, IssueError};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use local_stack::dev_signer::DevSigner;
use serde_json::{Value, json};

pub const PROJECT: &str = "demo-auth-events";
pub const EMAIL: &str = "ada.lovelace@example.com";
pub const UID: &str = "kXz9QbV2hYc3TnQ0fJ8sLm1Pq7r2";

/// The development signer (an RSA key and its self-signed certificate, as
/// Google publishes them) with infallible signing for tests.
pub struct SigningKey {
    pub kid: String,
    pub cert_pem: String,
    signer: DevSigner,
}

impl SigningKey {
    pub fn generate(kid: &str) -> Self {
        let signer = DevSigner::generate(kid).expect("RSA key generation");
        Self {
            kid: signer.kid.clone(),
            cert_pem: signer.cert_pem.clone(),
            signer,
        }
    }

    /// RSA key generation takes a while in debug builds; one key per binary.
    pub fn shared() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::generate("test-kid-1"))
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.signer.sign(claims).expect("signing")
    }

    pub fn sign_with_kid(&self, claims: &Value, kid: &str) -> String {
        self.signer.sign_with_kid(claims, kid).expect("signing")
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Claims of a valid Firebase ID token for [`PROJECT`].
pub fn claims() -> Value {
    let now = now();
    json!({
        "iss": format!("https://securetoken.google.com/{PROJECT}"),
        "aud": PROJECT,
        "auth_time": now - 30,
        "user_id": UID,
        "sub": UID,
        "iat": now - 10,
        "exp": now + 3600,
        "email": EMAIL,
        "email_verified": true,
        "name": "Ada Lovelace",
        "picture": "https://lh3.googleusercontent.com/a/ada",
        "firebase": {
            "identities": { "email": [EMAIL], "google.com": ["1234567890"] },
            "sign_in_provider": "google.com"
        }
    })
}

/// `claims()` with `changes` merged over it.
pub fn claims_with(changes: &Value) -> Value {
    let mut claims = claims();
    for (key, value) in changes.as_object().expect("an object of changes") {
        claims[key] = value.clone();
    }
    claims
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

/// A token with `alg: none` and no signature.
pub fn unsigned_token(kid: &str, claims: &Value) -> String {
    let header = json!({ "alg": "none", "typ": "JWT", "kid": kid });
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// The classic algorithm-confusion forgery: HS256 keyed with the public
/// certificate the verifier itself trusts.
pub fn hs256_with_certificate(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    let secret = EncodingKey::from_secret(key.cert_pem.as_bytes()).expect("HMAC key");
    jsonwebtoken::encode(&header, claims, &secret).expect("signing")
}

/// A validly signed token whose payload was changed afterwards.
pub fn tampered(token: &str) -> String {
    let mut parts = token.split('.');
    let (header, payload, signature) = (
        parts.next().expect("header"),
        parts.next().expect("payload"),
        parts.next().expect("signature"),
    );
    let mut claims: Value = serde_json::from_slice(&unb64(payload)).expect("claims");
    claims["sub"] = json!("someone-else");
    format!(
        "{header}.{}.{signature}",
        b64(claims.to_string().as_bytes())
    )
}

/// Serves a certificate map `{kid: PEM}` as Google does, with switches for
/// failures and a hit counter.
pub struct CertServer {
    pub url: String,
    pub state: Arc<CertState>,
}

pub struct CertState {
    pub certs: Mutex<serde_json::Map<String, Value>>,
    pub max_age: Mutex<Option<u64>>,
    pub failing: AtomicBool,
    pub hits: AtomicUsize,
}

impl CertState {
    pub fn add(&self, key: &SigningKey) {
        self.certs
            .lock()
            .expect("lock")
            .insert(key.kid.clone(), Value::String(key.cert_pem.clone()));
    }
}

async fn serve_certs(State(state): State<Arc<CertState>>) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    if state.failing.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    let body = Value::Object(state.certs.lock().expect("lock").clone()).to_string();
    let cache_control = state.max_age.lock().expect("lock").map_or_else(
        || "public, must-revalidate".to_owned(),
        |secs| format!("public, max-age={secs}, must-revalidate, no-transform"),
    );
    (
        [
            (
                header::CONTENT_TYPE,
                "application/json; charset=UTF-8".to_owned(),
            ),
            (header::CACHE_CONTROL, cache_control),
        ],
        body,
    )
        .into_response()
}

impl CertServer {
    pub async fn start(keys: &[&SigningKey], max_age: Option<u64>) -> Self {
        let state = Arc::new(CertState {
            certs: Mutex::new(serde_json::Map::new()),
            max_age: Mutex::new(max_age),
            failing: AtomicBool::new(false),
            hits: AtomicUsize::new(0),
        });
        for key in keys {
            state.add(key);
        }
        let app = Router::new()
            .route("/certs", get(serve_certs))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind a local port");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("certificate server");
        });
        Self {
            url: format!("http://{addr}/certs"),
            state,
        }
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn key_source(&self, policy: CachePolicy) -> Arc<HttpKeySource> {
        Arc::new(HttpKeySource::new(self.url.clone(), policy).expect("http client"))
    }
}

/// A credential issuer that counts calls and can be told to fail.
#[derive(Debug, Default)]
pub struct FakeIssuer {
    calls: AtomicUsize,
    uids: Mutex<Vec<String>>,
    fail_with: Mutex<Option<u16>>,
}

pub const ACCESS_KEY_ID: &str = "ASIAFAKEEXAMPLE00001";
pub const SECRET_ACCESS_KEY: &str = "fake/secret+access+key";
pub const SESSION_TOKEN: &str = "FwoGZXIvYXdzEFakeSessionToken";
pub const EXPIRATION: &str = "2026-11-29T13:00:00Z";

impl FakeIssuer {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn uids(&self) -> Vec<String> {
        self.uids.lock().expect("lock").clone()
    }

    pub fn fail_with(&self, status: Option<u16>) {
        *self.fail_with.lock().expect("lock") = status;
    }
}

impl CredentialIssuer for FakeIssuer {
    async fn issue(&self, uid: &UserId) -> Result<Credentials, IssueError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.uids.lock().expect("lock").push(uid.to_string());
        match *self.fail_with.lock().expect("lock") {
            Some(503) => Err(IssueError::Unavailable(PortError::transient(
                "AssumeRole",
                "Throttling",
                "injected: rate exceeded",
            ))),
            Some(_) => Err(IssueError::Failed(PortError::permanent(
                "AssumeRole",
                "AccessDenied",
                "injected: arn:aws:iam::123456789012:role/app is not assumable",
            ))),
            None => Ok(Credentials {
                access_key_id: ACCESS_KEY_ID.to_owned(),
                secret_access_key: SECRET_ACCESS_KEY.to_owned(),
                session_token: SESSION_TOKEN.to_owned(),
                expiration: EXPIRATION.to_owned(),
            }),
        }
    }
}

/// The HTTP API fixture, a real payload v2 event, with its body and
/// Authorization header removed.
pub fn base_request() -> ApiGatewayV2httpRequest {
    let mut request: ApiGatewayV2httpRequest =
        serde_json::from_slice(include_bytes!("../fixtures/http-api-request.json"))
            .expect("fixture parses");
    request.headers.remove(header::AUTHORIZATION);
    request.body = None;
    request
}

pub fn bearer_request(token: &str) -> ApiGatewayV2httpRequest {
    let mut request = base_request();
    request.headers.insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header value"),
    );
    request
}

pub fn body_request(body: &str) -> ApiGatewayV2httpRequest {
    let mut request = base_request();
    request.body = Some(body.to_owned());
    request
}

/// Log lines written while the guard lives on this thread.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// JSON logs at every level, as the Lambda writes them, into a buffer.
    pub fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8 logs")
    }

    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|line| serde_json::from_str(line).expect("each log line is JSON"))
            .collect()
    }

    /// Lines whose message is `message`.
    pub fn with_message(&self, message: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|line| line["fields"]["message"] == message)
            .collect()
    }
}

/// STS's answer to AssumeRole, as its query API sends it.
pub const ASSUMED: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>uid-1</SourceIdentity>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/desktop-app/uid-1</Arn>
      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:uid-1</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <SessionToken>IQoJb3JpZ2luX2VjEXAMPLE</SessionToken>
      <Expiration>2026-11-29T13:00:00Z</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#;

/// The secret parts of [`ASSUMED`]'s credentials.
pub const ASSUMED_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY";
pub const ASSUMED_SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE";

pub fn fast_policy() -> CachePolicy {
    CachePolicy {
        min_ttl: Duration::ZERO,
        fetch_timeout: Duration::from_secs(2),
        ..CachePolicy::default()
    }
}
