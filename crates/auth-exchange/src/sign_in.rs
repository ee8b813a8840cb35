//! Recording a sign-in: the `user.signed_in` event from verified claims, and
//! its delivery — outbox first, the bus directly if the outbox fails, a
//! complete log line if both fail — without ever waiting longer than the
//! budget on either.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use auth_events_core::contract::{
    ContractError, DisplayName, Email, PhotoUrl, Provider, Timestamp, UserAction, UserEvent,
};
use auth_events_core::outbox::OutboxRecord;
use auth_events_core::ports::{Inserted, OutboxStore, PortError, Publisher};
use auth_events_core::redact::{PiiKey, redact_json};
use auth_events_core::relay::put_one;
use auth_events_core::retry::FullJitter;
use backon::Retryable;
use tracing::{debug, error, warn};

use crate::verify::VerifiedToken;

/// The stable marker SREs search for: a sign-in whose event reached neither
/// the outbox nor the bus. The line holds the whole event, email hashed.
pub const OUTBOX_WRITE_FAILED: &str = "outbox_write_failed";

/// Retries inside the budget start small: the budget is a few hundred ms and
/// DynamoDB throttling usually clears within tens of them.
const RETRY: FullJitter = FullJitter::new(Duration::from_millis(10), Duration::from_millis(80));

/// The `user.signed_in` event for a verified token. Optional claims that
/// break the contract (a name with control characters, an http photo) are
/// dropped rather than failing the sign-in; a missing or invalid email
/// cannot be dropped, the contract requires it.
pub fn sign_in_event(token: &VerifiedToken, at: Timestamp) -> Result<UserEvent, ContractError> {
    let claims = &token.claims;
    let email = Email::parse(
        claims
            .email
            .clone()
            .ok_or(ContractError::Empty { field: "email" })?,
    )?;
    let mut event = UserEvent::new(UserAction::SignedIn, token.uid.clone(), email, at);
    // Firebase sets the claim beside every e-mail; without it, nothing
    // vouches for the address.
    event.detail.email_verified = Some(claims.email_verified.unwrap_or(false));
    event.detail.display_name = claims
        .name
        .as_deref()
        .and_then(|name| DisplayName::parse(name).ok());
    event.detail.photo_url = claims
        .picture
        .as_deref()
        .and_then(|url| PhotoUrl::parse(url).ok());
    event.detail.provider = claims
        .firebase
        .sign_in_provider
        .as_deref()
        .and_then(|provider| Provider::parse(provider).ok());
    Ok(event)
}

/// Where the event ended up.
#[derive(Debug)]
pub enum Delivery {
    /// In the outbox; the relay publishes it.
    Outbox(Inserted),
    /// The outbox failed; the event went straight onto the bus.
    Bus { outbox_error: String },
    /// Neither: only the `outbox_write_failed` log line holds it.
    Lost {
        outbox_error: String,
        bus_error: String,
    },
}

impl Delivery {
    pub fn is_lost(&self) -> bool {
        matches!(self, Delivery::Lost { .. })
    }

    /// For the request's summary log line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Delivery::Outbox(Inserted::New) => "event_in_outbox",
            Delivery::Outbox(Inserted::AlreadyThere) => "event_in_outbox_on_retry",
            Delivery::Bus { .. } => "event_published_directly",
            Delivery::Lost { .. } => "event_lost_logged",
        }
    }
}

#[derive(Debug)]
pub struct SignInRecorder<O, P> {
    outbox: O,
    publisher: P,
    budget: Duration,
    pii_hash_key: PiiKey,
}

impl<O: OutboxStore, P: Publisher> SignInRecorder<O, P> {
    pub fn new(outbox: O, publisher: P, budget: Duration, pii_hash_key: PiiKey) -> Self {
        Self {
            outbox,
            publisher,
            budget,
            pii_hash_key,
        }
    }

    pub fn outbox(&self) -> &O {
        &self.outbox
    }

    pub fn publisher(&self) -> &P {
        &self.publisher
    }

    /// Delivers `record`, spending at most the budget on the outbox and at
    /// most the budget again on the bus.
    ///
    /// A write that times out may still land; the bus then carries the event
    /// twice (once from the relay), which consumers dedupe on `eventId`.
    pub async fn deliver(&self, record: &OutboxRecord) -> Delivery {
        let outbox_error = match self.write_outbox(record).await {
            Ok(inserted) => return Delivery::Outbox(inserted),
            Err(e) => e,
        };
        warn!(
            event_id = %record.event_id,
            error = %outbox_error,
            "outbox_write_falling_back_to_bus"
        );
        match self.publish(record).await {
            Ok(bus_event_id) => {
                warn!(
                    event_id = %record.event_id,
                    bus_event_id = %bus_event_id,
                    "sign_in_event_published_directly"
                );
                Delivery::Bus { outbox_error }
            }
            Err(bus_error) => {
                error!(
                    event_id = %record.event_id,
                    outbox_error = %outbox_error,
                    bus_error = %bus_error,
                    event = %redacted_record(record, &self.pii_hash_key),
                    "{OUTBOX_WRITE_FAILED}"
                );
                Delivery::Lost {
                    outbox_error,
                    bus_error,
                }
            }
        }
    }

    async fn write_outbox(&self, record: &OutboxRecord) -> Result<Inserted, String> {
        let tracker = Attempts::default();
        let attempts = (|| tracker.track(self.outbox.insert(record)))
            .retry(RETRY)
            .when(PortError::is_retryable)
            .notify(|e: &PortError, delay: Duration| {
                debug!(error = %e, retry_in_ms = millis(delay), "outbox_write_retrying");
            });
        let outcome = tokio::time::timeout(self.budget, attempts).await;
        tracker.settle("outbox write", self.budget, outcome)
    }

    async fn publish(&self, record: &OutboxRecord) -> Result<String, String> {
        let entry = record.bus_entry();
        let tracker = Attempts::default();
        let attempts = (|| tracker.track(put_one(&self.publisher, &entry)))
            .retry(RETRY)
            .when(PortError::is_retryable)
            .notify(|e: &PortError, delay: Duration| {
                debug!(error = %e, retry_in_ms = millis(delay), "direct_publish_retrying");
            });
        let outcome = tokio::time::timeout(self.budget, attempts).await;
        tracker.settle("direct publish", self.budget, outcome)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Counts the attempts of a retried call and keeps its last error, so that a
/// budget running out still reports what was going wrong.
#[derive(Default)]
struct Attempts {
    count: AtomicU32,
    last_error: Mutex<Option<String>>,
}

impl Attempts {
    async fn track<T>(
        &self,
        attempt: impl Future<Output = Result<T, PortError>>,
    ) -> Result<T, PortError> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let result = attempt.await;
        if let Err(error) = &result {
            *self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
        }
        result
    }

    fn settle<T>(
        self,
        what: &str,
        budget: Duration,
        outcome: Result<Result<T, PortError>, tokio::time::error::Elapsed>,
    ) -> Result<T, String> {
        let count = self.count.load(Ordering::Relaxed);
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(format!("{what} failed after {count} attempt(s): {error}")),
            Err(_) => {
                let last = self
                    .last_error
                    .into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .unwrap_or_else(|| "no answer".to_owned());
                Err(format!(
                    "{what} budget of {} ms exhausted after {count} attempt(s); last: {last}",
                    millis(budget)
                ))
            }
        }
    }
}

/// The whole record as JSON, with the detail's `email` replaced by its
/// keyed hash and its name and photo URL redacted: enough to reconstruct
/// and replay the event by hand, with the profile looked up by uid, and
/// nothing personal to read from it.
pub fn redacted_record(record: &OutboxRecord, key: &PiiKey) -> String {
    let mut detail: serde_json::Value =
        serde_json::from_str(&record.detail).unwrap_or(serde_json::Value::Null);
    redact_json(&mut detail, Some(key));
    serde_json::json!({
        "eventId": record.event_id,
        "source": record.source,
        "detailType": record.detail_type,
        "detail": detail,
        "createdAt": record.created_at,
        "expiresAt": record.expires_at,
        "traceHeader": record.trace_header,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use auth_events_core::contract::{Timestamp, UserId};

    use super::*;
    use crate::verify::FirebaseClaims;

    fn token(email: Option<&str>, name: Option<&str>, picture: Option<&str>) -> VerifiedToken {
        VerifiedToken {
            uid: UserId::parse("uid-1").expect("valid"),
            claims: FirebaseClaims {
                email: email.map(str::to_owned),
                email_verified: Some(true),
                name: name.map(str::to_owned),
                picture: picture.map(str::to_owned),
                ..FirebaseClaims::of("uid-1")
            },
        }
    }

    #[test]
    fn the_event_carries_the_claims() {
        let at = Timestamp::now();
        let event = sign_in_event(
            &token(
                Some("ada@example.com"),
                Some("Ada"),
                Some("https://x.example/p.png"),
            ),
            at,
        )
        .expect("valid");
        assert_eq!(event.detail.user_id.as_str(), "uid-1");
        assert_eq!(event.detail.email.as_str(), "ada@example.com");
        assert_eq!(
            event.detail.display_name.map(|n| n.to_string()).as_deref(),
            Some("Ada")
        );
        assert_eq!(
            event.detail.photo_url.map(|p| p.to_string()).as_deref(),
            Some("https://x.example/p.png")
        );
        assert_eq!(
            event.detail.provider.map(|p| p.to_string()).as_deref(),
            Some("google.com")
        );
        assert_eq!(event.detail.timestamp, at);
    }

    #[test]
    fn an_http_photo_is_dropped_not_fatal() {
        let event = sign_in_event(
            &token(
                Some("ada@example.com"),
                None,
                Some("http://x.example/p.png"),
            ),
            Timestamp::now(),
        )
        .expect("valid");
        assert!(event.detail.photo_url.is_none());
    }

    #[test]
    fn without_an_email_there_is_no_contract_event() {
        assert!(sign_in_event(&token(None, None, None), Timestamp::now()).is_err());
        assert!(sign_in_event(&token(Some("not-an-email"), None, None), Timestamp::now()).is_err());
    }

    #[test]
    fn the_redacted_record_hashes_the_email_hides_the_profile_and_keeps_everything_else() {
        let key = PiiKey::parse(&"k".repeat(32)).expect("valid");
        let event = sign_in_event(
            &token(
                Some("ada@example.com"),
                Some("Ada"),
                Some("https://photos.example/ada.png"),
            ),
            Timestamp::now(),
        )
        .expect("valid");
        let record = OutboxRecord::new(
            &event,
            Timestamp::now(),
            Duration::from_mins(1),
            Some("Root=1-x".to_owned()),
        );
        let text = redacted_record(&record, &key);
        for personal in ["ada@example.com", "Ada", "photos.example"] {
            assert!(!text.contains(personal), "{personal} in {text}");
        }
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value["eventId"], record.event_id.to_string());
        assert_eq!(value["detail"]["email"], key.email_hash("ada@example.com"));
        assert_eq!(value["detail"]["userId"], "uid-1");
        assert_eq!(value["detail"]["provider"], "google.com");
        assert_eq!(value["traceHeader"], "Root=1-x");
        assert_eq!(value["detailType"], "user.signed_in");
    }
}
