//! A development stand-in for Google's securetoken signer: an RSA key with
//! its self-signed certificate, the `{kid: PEM}` map Google publishes, and
//! Firebase-shaped ID tokens. Only a verifier pointed at this certificate
//! map (the local stack, tests) accepts these tokens. It lives here, in the
//! crate that is never deployed, so no build of the token exchange can carry
//! it; `infra/check-packages.py` proves the zips lack [`CERTIFICATE_HOST`].

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::header;
use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The development certificate's host name: a string that appears in any
/// binary linking this signer, and so must never appear in a Lambda zip.
pub const CERTIFICATE_HOST: &str = "securetoken.auth-events-dev-signer.local";

#[derive(Debug, thiserror::Error)]
pub enum DevKeyError {
    #[error("generating or reading the development key: {0}")]
    Key(#[from] rcgen::Error),
    #[error("jsonwebtoken refused the development key: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// A signing key and its certificate, as Google's securetoken service has.
pub struct DevSigner {
    pub kid: String,
    pub private_key_pem: String,
    pub cert_pem: String,
    encoding: EncodingKey,
}

impl std::fmt::Debug for DevSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl DevSigner {
    /// A fresh RSA-2048 key. Slow in debug builds (about a second).
    pub fn generate(kid: &str) -> Result<Self, DevKeyError> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
        Self::from_key_pair(kid, &key_pair)
    }

    /// The signer for a key saved earlier with [`DevSigner::private_key_pem`],
    /// so a token minted by one process verifies in another.
    pub fn from_private_key_pem(kid: &str, pem: &str) -> Result<Self, DevKeyError> {
        let key_pair = rcgen::KeyPair::from_pem(pem)?;
        Self::from_key_pair(kid, &key_pair)
    }

    fn from_key_pair(kid: &str, key_pair: &rcgen::KeyPair) -> Result<Self, DevKeyError> {
        let cert = rcgen::CertificateParams::new(vec![CERTIFICATE_HOST.to_owned()])?
            .self_signed(key_pair)?;
        let private_key_pem = key_pair.serialize_pem();
        Ok(Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_rsa_pem(private_key_pem.as_bytes())?,
            private_key_pem,
            cert_pem: cert.pem(),
        })
    }

    /// The certificate map, shaped like Google's x509 endpoint.
    pub fn certificate_map(&self) -> Value {
        json!({ self.kid.clone(): self.cert_pem })
    }

    /// Signs `claims` with RS256 under this key's `kid`.
    pub fn sign(&self, claims: &Value) -> Result<String, DevKeyError> {
        self.sign_with_kid(claims, &self.kid)
    }

    pub fn sign_with_kid(&self, claims: &Value, kid: &str) -> Result<String, DevKeyError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// A router serving the certificate map at `path` with a one-hour
    /// `max-age`, as Google does.
    pub fn certificate_router(&self, path: &str) -> Router {
        let body = self.certificate_map().to_string();
        Router::new().route(
            path,
            get(move || {
                let body = body.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "application/json; charset=UTF-8"),
                            (
                                header::CACHE_CONTROL,
                                "public, max-age=3600, must-revalidate, no-transform",
                            ),
                        ],
                        body,
                    )
                }
            }),
        )
    }
}

/// Who signs in with a development token.
#[derive(Debug, Clone)]
pub struct DevIdentity {
    pub uid: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub provider: String,
}

impl DevIdentity {
    pub fn new(uid: impl Into<String>) -> Self {
        Self {
            uid: uid.into(),
            email: None,
            name: None,
            picture: None,
            provider: "password".to_owned(),
        }
    }
}

/// The claims of a valid Firebase ID token for `project`, issued now and
/// valid for an hour.
pub fn claims(project: &str, identity: &DevIdentity) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = json!({
        "iss": format!("https://securetoken.google.com/{project}"),
        "aud": project,
        "auth_time": now.saturating_sub(5),
        "user_id": identity.uid,
        "sub": identity.uid,
        "iat": now.saturating_sub(1),
        "exp": now + 3600,
        "firebase": { "identities": {}, "sign_in_provider": identity.provider },
    });
    for (claim, value) in [
        ("email", &identity.email),
        ("name", &identity.name),
        ("picture", &identity.picture),
    ] {
        if let Some(value) = value {
            claims[claim] = json!(value);
        }
    }
    if identity.email.is_some() {
        claims["email_verified"] = json!(true);
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_check_looks_for_this_signers_certificate_host() {
        let script = include_str!("../../../infra/check-packages.py");
        assert!(
            script.contains(CERTIFICATE_HOST),
            "infra/check-packages.py must search the zips for {CERTIFICATE_HOST:?}"
        );
    }
}
