//! One EventBridge event in, at most one Users write out.
//!
//! EventBridge delivers at least once and in any order, and relay retries
//! and redrives resend an event under a new envelope id. The handler only
//! validates and reduces the event; idempotency and order independence come
//! from [`auth_events_core::profile`]'s conditional writes.

use auth_events_aws::errors::cause_chain;
use auth_events_core::contract::{ContractError, UserEvent};
use auth_events_core::ports::ProfileStore;
use auth_events_core::profile::{self, Applied, ApplyError, ProfileUpdate, WriteCase};
use auth_events_core::retry::FullJitter;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use tracing::{Span, error, info, instrument};

/// The event as the EventBridge rule's Lambda target delivers it.
pub type Envelope = EventBridgeEvent<Value>;

/// What applying the event did to the Users item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The event created the user.
    FirstSignIn,
    Updated,
    /// Seen before (same `eventId`, or same envelope id for events without
    /// one): nothing changed.
    Duplicate,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::FirstSignIn => "first_sign_in",
            Outcome::Updated => "updated",
            Outcome::Duplicate => "duplicate",
        }
    }
}

/// The function's result. `first_sign_in` is the welcome e-mail's hook, so
/// it keeps the name the seed's design gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Processed {
    pub user_id: String,
    /// The id the event was deduplicated on: `detail.eventId`, or the
    /// envelope id for hand-written events that lack one.
    pub dedupe_id: String,
    /// `detail.eventId`, when the producer minted one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub outcome: Outcome,
    #[serde(rename = "first_sign_in")]
    pub first_sign_in: bool,
}

/// Why an event was not applied.
///
/// Every variant fails the invocation: for an asynchronous invocation that
/// is what sends the event to the on-failure destination (after Lambda's own
/// retries), where `outboxctl` can see and redrive it. The `error_type` says
/// whether a redrive can help.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Permanent: the event breaks the contract. Nothing was written.
    #[error("event rejected: it does not satisfy the user event contract")]
    InvalidEvent(#[source] ContractError),
    /// Permanent: neither `detail.eventId` nor an envelope id to deduplicate
    /// on. Nothing was written.
    #[error("event rejected: no detail.eventId and no envelope id to deduplicate on")]
    NoDedupeId,
    /// Retryable: throttling, transaction conflicts or contention outlasted
    /// the retry budget. Lambda retries the event; the idempotency record
    /// makes that safe.
    #[error("profile write still failing after retries")]
    WriteRetryable(#[source] ApplyError),
    /// Permanent: the store refused the write (access denied, missing
    /// table); retrying the event only helps once the cause is fixed.
    #[error("profile write refused")]
    WritePermanent(#[source] ApplyError),
}

impl HandlerError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, HandlerError::WriteRetryable(_))
    }

    /// Stable names for CloudWatch metrics filters and on-failure records;
    /// the prefix tells an operator whether redriving can help.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::InvalidEvent(_) => "Permanent.InvalidEvent",
            HandlerError::NoDedupeId => "Permanent.NoDedupeId",
            HandlerError::WriteRetryable(_) => "Retryable.ProfileWrite",
            HandlerError::WritePermanent(_) => "Permanent.ProfileWrite",
        }
    }

    fn from_apply(error: ApplyError) -> Self {
        if error.is_retryable() {
            HandlerError::WriteRetryable(error)
        } else {
            HandlerError::WritePermanent(error)
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: cause_chain(&error),
        }
    }
}

/// The handler, generic over the store so tests and benchmarks run it
/// against memory.
#[derive(Debug)]
pub struct Handler<S> {
    store: S,
    backoff: FullJitter,
}

impl<S: ProfileStore> Handler<S> {
    pub fn new(store: S, backoff: FullJitter) -> Self {
        Self { store, backoff }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The Lambda entry point.
    pub async fn handle(&self, event: LambdaEvent<Envelope>) -> Result<Processed, HandlerError> {
        self.process(&event.payload).await
    }

    /// Applies one event and logs the result or the error with its causes.
    #[instrument(
        name = "profile_event",
        skip_all,
        fields(envelope_id = envelope.id.as_deref(), user_id, dedupe_id, write)
    )]
    pub async fn process(&self, envelope: &Envelope) -> Result<Processed, HandlerError> {
        let result = self.apply(envelope).await;
        match &result {
            Ok(processed) => info!(
                outcome = processed.outcome.as_str(),
                first_sign_in = processed.first_sign_in,
                "profile event applied"
            ),
            Err(error) => error!(
                error_type = error.error_type(),
                retryable = error.is_retryable(),
                error = %cause_chain(&error),
                "profile event not applied"
            ),
        }
        result
    }

    async fn apply(&self, envelope: &Envelope) -> Result<Processed, HandlerError> {
        let event =
            UserEvent::from_detail_value(&envelope.source, &envelope.detail_type, &envelope.detail)
                .map_err(HandlerError::InvalidEvent)?;
        let span = Span::current();
        span.record("user_id", event.detail.user_id.as_str());

        // An empty envelope id would become an empty key, which DynamoDB
        // refuses only after the retries have been spent.
        let envelope_id = envelope.id.as_deref().filter(|id| !id.trim().is_empty());
        let update =
            ProfileUpdate::from_event(&event, envelope_id).ok_or(HandlerError::NoDedupeId)?;
        span.record("dedupe_id", update.dedupe_id.as_str());

        let applied = profile::apply_with_retries(&self.store, &update, self.backoff)
            .await
            .map_err(HandlerError::from_apply)?;
        let outcome = match applied {
            Applied::FirstSignIn => Outcome::FirstSignIn,
            Applied::Updated(_) => Outcome::Updated,
            Applied::Duplicate => Outcome::Duplicate,
        };
        if let Applied::Updated(case) = applied {
            span.record("write", write_case_name(case));
        }
        Ok(Processed {
            user_id: update.user_id.to_string(),
            event_id: event.detail.event_id.map(|id| id.to_string()),
            dedupe_id: update.dedupe_id,
            outcome,
            first_sign_in: outcome == Outcome::FirstSignIn,
        })
    }
}

fn write_case_name(case: WriteCase) -> &'static str {
    match case {
        WriteCase::Newest => "newest",
        WriteCase::FirstSignIn => "first_sign_in",
        WriteCase::Earliest => "earliest",
        WriteCase::Older => "older",
    }
}
