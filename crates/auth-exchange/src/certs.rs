//! Google's securetoken certificate map, fetched over HTTPS and cached for
//! the response's `Cache-Control: max-age`.
//!
//! An unknown `kid` refetches at most once per [`CachePolicy::unknown_kid_interval`],
//! so a stream of forged kids costs Google one request a minute per instance,
//! not one per token. When a refresh fails, the previous set keeps serving
//! for [`CachePolicy::stale_grace`]: Google rotates keys days before retiring
//! them, and a sign-in outage because of a certificate endpoint blip would
//! be worse.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::verify::{KeyError, KeySource, key_from_certificate};

/// The certificate map is a few KB; anything far larger is not it.
const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("requesting the certificate map: {0}")]
    Request(#[source] reqwest::Error),
    #[error("the certificate endpoint answered HTTP {0}")]
    Status(u16),
    #[error("the certificate map is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("the certificate map is not a JSON object of PEM strings")]
    Body(#[source] serde_json::Error),
    #[error("the certificate map holds no usable RSA certificate")]
    NoUsableKeys,
    #[error("the certificate endpoint failed recently; waiting before the next attempt")]
    BackingOff,
}

/// How long fetched keys are trusted and how often we may ask again.
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// Used when the response has no `max-age`.
    pub default_ttl: Duration,
    /// Floors `max-age`, so `max-age=0` cannot turn every sign-in into a fetch.
    pub min_ttl: Duration,
    /// Caps `max-age`, so a key Google withdraws is dropped within this time.
    pub max_ttl: Duration,
    /// The least time between two fetches caused by an unknown `kid`.
    pub unknown_kid_interval: Duration,
    /// After a failed fetch, requests wait this long before trying again.
    pub failure_backoff: Duration,
    /// How long past expiry a cached set may serve while refreshes fail.
    pub stale_grace: Duration,
    /// Connect plus response time for one fetch.
    pub fetch_timeout: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_mins(5),
            min_ttl: Duration::from_mins(1),
            max_ttl: Duration::from_hours(24),
            unknown_kid_interval: Duration::from_mins(1),
            failure_backoff: Duration::from_secs(5),
            stale_grace: Duration::from_hours(1),
            fetch_timeout: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Default)]
struct CertSet {
    keys: HashMap<String, Arc<DecodingKey>>,
    fresh_until: Option<Instant>,
    last_attempt: Option<Instant>,
    last_attempt_failed: bool,
}

impl CertSet {
    fn is_fresh(&self, now: Instant) -> bool {
        self.fresh_until.is_some_and(|until| now < until)
    }

    fn usable_stale(&self, now: Instant, grace: Duration) -> bool {
        self.fresh_until.is_some_and(|until| now < until + grace)
    }

    fn attempted_within(&self, now: Instant, interval: Duration) -> bool {
        self.last_attempt
            .is_some_and(|at| now.saturating_duration_since(at) < interval)
    }
}

/// What a lookup decided without fetching.
enum Lookup {
    Found(Arc<DecodingKey>),
    Unknown,
    NeedsFetch,
}

#[derive(Debug)]
pub struct HttpKeySource {
    client: reqwest::Client,
    url: String,
    policy: CachePolicy,
    state: RwLock<CertSet>,
    // One fetch at a time; concurrent lookups wait for it and then read the
    // refreshed set instead of fetching again.
    refresh: tokio::sync::Mutex<()>,
}

impl HttpKeySource {
    pub fn new(url: impl Into<String>, policy: CachePolicy) -> Result<Self, FetchError> {
        let url = url.into();
        // The map decides which signatures are genuine, so it is read from
        // exactly the configured place: no redirect is followed, and an
        // https URL never falls back to plain http.
        let client = reqwest::Client::builder()
            .timeout(policy.fetch_timeout)
            .connect_timeout(policy.fetch_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(url.starts_with("https://"))
            .build()
            .map_err(FetchError::Request)?;
        Ok(Self {
            client,
            url,
            policy,
            state: RwLock::default(),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// Fetches the set now unless a fresh one is cached; used to warm the
    /// cache at cold start, off the request path.
    pub async fn prefetch(&self) -> Result<(), FetchError> {
        let _guard = self.refresh.lock().await;
        if self.read().is_fresh(Instant::now()) {
            return Ok(());
        }
        self.fetch_and_store().await
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, CertSet> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CertSet> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn lookup(&self, kid: &str, now: Instant) -> Lookup {
        let set = self.read();
        let fresh = set.is_fresh(now);
        match set.keys.get(kid) {
            Some(key) if fresh => Lookup::Found(Arc::clone(key)),
            None if fresh && set.attempted_within(now, self.policy.unknown_kid_interval) => {
                Lookup::Unknown
            }
            _ => Lookup::NeedsFetch,
        }
    }

    /// After a fetch failed: the stale key if it may still serve.
    fn stale_fallback(&self, kid: &str, error: FetchError) -> Result<Arc<DecodingKey>, KeyError> {
        let now = Instant::now();
        let set = self.read();
        if set.usable_stale(now, self.policy.stale_grace) {
            if let Some(key) = set.keys.get(kid) {
                return Ok(Arc::clone(key));
            }
            // A fresh set that lacks this kid is a real answer, not an outage.
            if set.is_fresh(now) {
                return Err(KeyError::UnknownKid);
            }
        }
        Err(KeyError::Unavailable(error))
    }

    async fn fetch_and_store(&self) -> Result<(), FetchError> {
        let started = Instant::now();
        let result = self.fetch().await;
        let mut set = self.write();
        set.last_attempt = Some(started);
        match result {
            Ok((keys, ttl)) => {
                info!(
                    keys = keys.len(),
                    ttl_secs = ttl.as_secs(),
                    "signing_certificates_refreshed"
                );
                set.keys = keys;
                set.fresh_until = Some(started + ttl);
                set.last_attempt_failed = false;
                Ok(())
            }
            Err(error) => {
                warn!(error = %error, "signing_certificates_fetch_failed");
                set.last_attempt_failed = true;
                Err(error)
            }
        }
    }

    async fn fetch(&self) -> Result<(HashMap<String, Arc<DecodingKey>>, Duration), FetchError> {
        let mut response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(FetchError::Request)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let ttl = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .and_then(max_age)
            .map_or(self.policy.default_ttl, |ttl| {
                ttl.clamp(self.policy.min_ttl, self.policy.max_ttl)
            });
        if response
            .content_length()
            .is_some_and(|len| len > MAX_BODY_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(FetchError::Request)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let certs: HashMap<String, String> =
            serde_json::from_slice(&body).map_err(FetchError::Body)?;
        let keys: HashMap<_, _> = certs
            .iter()
            .filter_map(|(kid, pem)| match key_from_certificate(pem) {
                Ok(key) => Some((kid.clone(), Arc::new(key))),
                Err(error) => {
                    warn!(kid = %kid, error = %error, "signing_certificate_unusable");
                    None
                }
            })
            .collect();
        if keys.is_empty() {
            return Err(FetchError::NoUsableKeys);
        }
        Ok((keys, ttl))
    }
}

impl KeySource for HttpKeySource {
    async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, KeyError> {
        match self.lookup(kid, Instant::now()) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Unknown => return Err(KeyError::UnknownKid),
            Lookup::NeedsFetch => {}
        }
        let _guard = self.refresh.lock().await;
        // Whoever held the lock may have fetched what we need.
        let now = Instant::now();
        match self.lookup(kid, now) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Unknown => return Err(KeyError::UnknownKid),
            Lookup::NeedsFetch => {}
        }
        let backing_off = {
            let set = self.read();
            set.last_attempt_failed && set.attempted_within(now, self.policy.failure_backoff)
        };
        if backing_off {
            return self.stale_fallback(kid, FetchError::BackingOff);
        }
        debug!(kid = %kid, "fetching_signing_certificates");
        match self.fetch_and_store().await {
            Ok(()) => {
                let set = self.read();
                set.keys
                    .get(kid)
                    .map(Arc::clone)
                    .ok_or(KeyError::UnknownKid)
            }
            Err(error) => self.stale_fallback(kid, error),
        }
    }
}

/// `max-age` from a `Cache-Control` value such as
/// `public, max-age=19302, must-revalidate, no-transform`.
pub fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| value.trim().trim_matches('"').parse().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_googles_cache_control() {
        assert_eq!(
            max_age("public, max-age=19302, must-revalidate, no-transform"),
            Some(Duration::from_secs(19302))
        );
        assert_eq!(max_age("Max-Age=5"), Some(Duration::from_secs(5)));
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
