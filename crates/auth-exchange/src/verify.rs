//! Firebase ID token verification, as Firebase documents it for third-party
//! JWT libraries: RS256 only, `kid` from Google's securetoken certificates,
//! `aud` = project id, `iss` = `https://securetoken.google.com/<project>`,
//! `exp` in the future, `iat` and `auth_time` in the past, `sub` a uid.
//!
//! Every rejection carries a [`Rejection`] reason for logs and tests; the
//! HTTP edge answers all of them with the same 401.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_events_core::contract::UserId;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::certs::FetchError;

/// Tokens longer than this are refused before any parsing. Firebase ID
/// tokens are about 1 KB; custom claims can grow them, but not to this.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Google's key ids are 40 hex digits; anything much longer is not one, and
/// should not reach our logs or the cache lookup.
const MAX_KID_CHARS: usize = 128;

/// Why a token was refused. Only logs and tests see the difference; the
/// client gets the same answer for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    TooLarge,
    Malformed,
    Algorithm,
    MissingKid,
    UnknownKid,
    Signature,
    Expired,
    Audience,
    Issuer,
    MissingClaim,
    IssuedInFuture,
    AuthTimeInFuture,
    Subject,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::TooLarge => "token_too_large",
            Rejection::Malformed => "malformed",
            Rejection::Algorithm => "algorithm_not_rs256",
            Rejection::MissingKid => "missing_kid",
            Rejection::UnknownKid => "unknown_kid",
            Rejection::Signature => "bad_signature",
            Rejection::Expired => "expired",
            Rejection::Audience => "wrong_audience",
            Rejection::Issuer => "wrong_issuer",
            Rejection::MissingClaim => "missing_claim",
            Rejection::IssuedInFuture => "issued_in_future",
            Rejection::AuthTimeInFuture => "auth_time_in_future",
            Rejection::Subject => "invalid_subject",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The token is not a valid Firebase ID token for this project.
    #[error("token rejected: {0}")]
    Rejected(Rejection),
    /// We could not tell: the signing certificates could not be fetched.
    #[error("the signing certificates are unavailable")]
    KeysUnavailable(#[source] FetchError),
}

impl From<Rejection> for VerifyError {
    fn from(reason: Rejection) -> Self {
        VerifyError::Rejected(reason)
    }
}

/// Why a key source could not produce a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no signing certificate has this key id")]
    UnknownKid,
    #[error(transparent)]
    Unavailable(#[from] FetchError),
}

/// Where verification keys come from: Google's certificate endpoint in
/// production ([`crate::certs::HttpKeySource`]), a fixed map in tests.
pub trait KeySource: Send + Sync {
    fn key(&self, kid: &str) -> impl Future<Output = Result<Arc<DecodingKey>, KeyError>> + Send;
}

impl<K: KeySource> KeySource for Arc<K> {
    fn key(&self, kid: &str) -> impl Future<Output = Result<Arc<DecodingKey>, KeyError>> + Send {
        (**self).key(kid)
    }
}

/// A fixed set of keys, e.g. for tests and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct StaticKeys(HashMap<String, Arc<DecodingKey>>);

impl StaticKeys {
    /// Keys from a certificate map in Google's format, `{kid: PEM}`.
    pub fn from_certificates<'a>(
        certs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        certs
            .into_iter()
            .map(|(kid, pem)| Ok((kid.to_owned(), Arc::new(key_from_certificate(pem)?))))
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl KeySource for StaticKeys {
    async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, KeyError> {
        self.0.get(kid).cloned().ok_or(KeyError::UnknownKid)
    }
}

/// The RSA public key of an x509 certificate in PEM.
///
/// jsonwebtoken 12 accepts a `CERTIFICATE` PEM here: it checks that the
/// subject key is `rsaEncryption` and takes the certificate's first BIT
/// STRING, which in a v3 certificate is the SubjectPublicKeyInfo's key (the
/// signature comes after it). A test proves it with a generated certificate.
pub fn key_from_certificate(pem: &str) -> Result<DecodingKey, jsonwebtoken::errors::Error> {
    DecodingKey::from_rsa_pem(pem.as_bytes())
}

/// `firebase` claim: how the user signed in, and for Identity Platform's
/// multi-tenancy, into which tenant.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FirebaseInfo {
    #[serde(default)]
    pub sign_in_provider: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
}

/// The claims of a Firebase ID token that we check or use.
#[derive(Clone, Deserialize)]
pub struct FirebaseClaims {
    pub sub: String,
    pub aud: String,
    pub iss: String,
    pub exp: u64,
    pub iat: u64,
    pub auth_time: u64,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub picture: Option<String>,
    #[serde(default)]
    pub firebase: FirebaseInfo,
}

/// Claims as a verified token of `uid` would carry them, signed in with
/// Google and nothing optional set, for unit tests to adjust.
#[cfg(test)]
impl FirebaseClaims {
    pub(crate) fn of(uid: &str) -> Self {
        Self {
            sub: uid.to_owned(),
            aud: "p".to_owned(),
            iss: "https://securetoken.google.com/p".to_owned(),
            exp: 0,
            iat: 0,
            auth_time: 0,
            email: None,
            email_verified: None,
            name: None,
            picture: None,
            firebase: FirebaseInfo {
                sign_in_provider: Some("google.com".to_owned()),
                tenant: None,
            },
        }
    }
}

// By hand, so that a stray `{:?}` never puts an address in the logs.
impl fmt::Debug for FirebaseClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirebaseClaims")
            .field("sub", &self.sub)
            .field("aud", &self.aud)
            .field("iss", &self.iss)
            .field("exp", &self.exp)
            .field("iat", &self.iat)
            .field("auth_time", &self.auth_time)
            .field("email", &self.email.as_ref().map(|_| "[redacted]"))
            .field("email_verified", &self.email_verified)
            .field("name", &self.name.as_ref().map(|_| "[redacted]"))
            .field("picture", &self.picture.is_some())
            .field("firebase", &self.firebase)
            .finish()
    }
}

/// A token that passed every check, with its uid already a contract type.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub uid: UserId,
    pub claims: FirebaseClaims,
}

/// Only what we need from the header before choosing a key; parsed by hand
/// so that `alg: none` and friends are refused as an algorithm, not as noise.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Debug)]
pub struct Verifier<K> {
    keys: K,
    validation: Validation,
    skew_secs: u64,
}

impl<K: KeySource> Verifier<K> {
    pub fn new(project_id: &str, clock_skew: Duration, keys: K) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[project_id]);
        validation.set_issuer(&[format!("https://securetoken.google.com/{project_id}")]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = clock_skew.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = false;
        Self {
            keys,
            validation,
            skew_secs: clock_skew.as_secs(),
        }
    }

    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        let kid = precheck(token)?;
        let key = self.keys.key(&kid).await.map_err(|e| match e {
            KeyError::UnknownKid => VerifyError::Rejected(Rejection::UnknownKid),
            KeyError::Unavailable(cause) => VerifyError::KeysUnavailable(cause),
        })?;
        self.verify_with(token, &key)
    }

    /// Signature and claims, once the key is known.
    fn verify_with(&self, token: &str, key: &DecodingKey) -> Result<VerifiedToken, VerifyError> {
        let data = jsonwebtoken::decode::<FirebaseClaims>(token, key, &self.validation)
            .map_err(|e| rejection_of(e.kind()))?;
        let claims = data.claims;
        let latest = unix_now().saturating_add(self.skew_secs);
        if claims.iat > latest {
            return Err(Rejection::IssuedInFuture.into());
        }
        if claims.auth_time > latest {
            return Err(Rejection::AuthTimeInFuture.into());
        }
        let uid = UserId::parse(claims.sub.as_str()).map_err(|_| Rejection::Subject)?;
        Ok(VerifiedToken { uid, claims })
    }
}

/// The cheap checks, before any key lookup: size, shape, algorithm, kid.
/// Returns the kid.
fn precheck(token: &str) -> Result<String, Rejection> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Rejection::TooLarge);
    }
    let well_formed = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    if !well_formed || header.is_empty() || payload.is_empty() {
        return Err(Rejection::Malformed);
    }
    let header: RawHeader = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(Rejection::Malformed)?;
    if header.alg != "RS256" {
        return Err(Rejection::Algorithm);
    }
    if signature.is_empty() {
        return Err(Rejection::Signature);
    }
    let kid = header.kid.ok_or(Rejection::MissingKid)?;
    if kid.is_empty() || kid.chars().count() > MAX_KID_CHARS {
        return Err(Rejection::UnknownKid);
    }
    Ok(kid)
}

fn rejection_of(kind: &ErrorKind) -> Rejection {
    match kind {
        ErrorKind::InvalidSignature => Rejection::Signature,
        ErrorKind::ExpiredSignature => Rejection::Expired,
        ErrorKind::InvalidAudience => Rejection::Audience,
        ErrorKind::InvalidIssuer => Rejection::Issuer,
        ErrorKind::MissingRequiredClaim(_) => Rejection::MissingClaim,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => Rejection::Algorithm,
        _ => Rejection::Malformed,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
