//! The traits the AWS adapters implement, and the one error they share.
//!
//! They are generic (`impl Future` in traits), not `dyn`: production and the
//! local stack use the same SDK-backed types, only the endpoint differs.

use std::future::Future;

use crate::contract::{EventId, Timestamp};
use crate::dead_letter::RelayDeadLetter;
use crate::entry::BusEntry;
use crate::outbox::OutboxRecord;
use crate::profile::{ProfileUpdate, WriteCase};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A failed call to AWS (or a fake), classified by what should happen next.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Worth retrying: throttling, timeouts, 5xx, transaction conflicts.
    #[error("{operation}: transient failure ({code}): {message}")]
    Transient {
        operation: &'static str,
        code: String,
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Retrying cannot help: access denied, missing resource, bad request.
    #[error("{operation}: {code}: {message}")]
    Permanent {
        operation: &'static str,
        code: String,
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl PortError {
    pub fn transient(
        operation: &'static str,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Transient {
            operation,
            code: code.into(),
            message: message.into(),
            source: None,
        }
    }

    pub fn permanent(
        operation: &'static str,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Permanent {
            operation,
            code: code.into(),
            message: message.into(),
            source: None,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    pub fn code(&self) -> &str {
        match self {
            Self::Transient { code, .. } | Self::Permanent { code, .. } => code,
        }
    }

    /// The service's own words, without the operation and code.
    pub fn message(&self) -> &str {
        match self {
            Self::Transient { message, .. } | Self::Permanent { message, .. } => message,
        }
    }
}

/// The result of one entry of a `PutEvents` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    Published { bus_event_id: String },
    Failed { code: String, message: String },
}

pub trait Publisher: Send + Sync {
    /// Publishes `entries` in one request; the results are in entry order.
    /// Borrowed, because an entry is only read into the request, and retries
    /// send the same entries again.
    fn put_events(
        &self,
        entries: &[&BusEntry],
    ) -> impl Future<Output = Result<Vec<EntryResult>, PortError>> + Send;
}

/// Whether a conditional insert created the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// The item was already there: an SDK retry of a write that had landed.
    AlreadyThere,
}

/// How often, and since when, an outbox event has failed to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureHistory {
    pub attempts: u32,
    pub first_failure_at: Timestamp,
}

pub trait OutboxStore: Send + Sync {
    fn insert(
        &self,
        record: &OutboxRecord,
    ) -> impl Future<Output = Result<Inserted, PortError>> + Send;

    /// Sets `publishedAt` and the bus event id and leaves the pending index.
    fn mark_published(
        &self,
        event_id: EventId,
        bus_event_id: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Counts one failed invocation on a pending item and returns the
    /// history so far; `None` when the item is no longer pending (published
    /// or dead-lettered meanwhile), when nothing is counted.
    fn record_failure(
        &self,
        event_id: EventId,
        error: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<Option<FailureHistory>, PortError>> + Send;

    /// Leaves the pending index: the event now waits in the DLQ. False,
    /// changing nothing, when the item was no longer pending.
    fn mark_dead_lettered(
        &self,
        event_id: EventId,
        reason: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Pending items created before `cutoff`, oldest first, at most `limit`.
    fn pending(
        &self,
        cutoff: Timestamp,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxRecord>, PortError>> + Send;

    fn get(
        &self,
        event_id: EventId,
    ) -> impl Future<Output = Result<Option<OutboxRecord>, PortError>> + Send;
}

pub trait DeadLetterSink: Send + Sync {
    fn send(&self, letter: &RelayDeadLetter) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// What one conditional profile write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Applied,
    /// The processed-events record exists: this event was applied before.
    Duplicate,
    /// The Users item is not in the state this case assumes.
    ConditionFailed,
}

pub trait ProfileStore: Send + Sync {
    fn write(
        &self,
        update: &ProfileUpdate,
        case: WriteCase,
    ) -> impl Future<Output = Result<WriteOutcome, PortError>> + Send;
}

/// A shared publisher is a publisher: the local stack keeps a handle on its
/// fault-injecting bus while the relay owns it.
impl<T: Publisher + ?Sized> Publisher for std::sync::Arc<T> {
    fn put_events(
        &self,
        entries: &[&BusEntry],
    ) -> impl Future<Output = Result<Vec<EntryResult>, PortError>> + Send {
        (**self).put_events(entries)
    }
}
