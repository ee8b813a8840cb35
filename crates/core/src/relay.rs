//! Publishing outbox events: pack, put, retry only what failed, dead-letter
//! what never can succeed, and report what is still failing.
//!
//! The same engine serves the stream handler, the scheduled sweep and
//! `outboxctl` (sweep and redrive), so there is one publishing path.

use std::collections::VecDeque;
use std::time::Duration;

use backon::BackoffBuilder;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::contract::{EventId, Timestamp};
use crate::dead_letter::{DeadLetterKind, FailureStage, RelayDeadLetter, codes};
use crate::entry::{self, BusEntry};
use crate::limits;
use crate::outbox::OutboxRecord;
use crate::ports::{DeadLetterSink, EntryResult, OutboxStore, PortError, Publisher};
use crate::retry::FullJitter;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub max_entries: usize,
    pub max_request_bytes: usize,
    /// Invocations an event may fail transiently before it is dead-lettered
    /// instead of holding its shard.
    pub max_attempts: u32,
    pub backoff: FullJitter,
    /// How long one PutEvents request may take before it is given up and
    /// its entries retried: well under an invocation, so one hung
    /// connection cannot use all of it.
    pub attempt_timeout: Duration,
    /// The bound on each mark, DLQ send and failure count, which run as
    /// late as the retry deadline: below the handler's safety margin, so
    /// the invocation answers before Lambda's timeout.
    pub bookkeeping_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            max_entries: limits::PUT_EVENTS_MAX_ENTRIES,
            max_request_bytes: limits::PUT_EVENTS_MAX_REQUEST_BYTES,
            max_attempts: 5,
            backoff: FullJitter::new(Duration::from_millis(50), Duration::from_secs(2)),
            attempt_timeout: Duration::from_secs(3),
            bookkeeping_timeout: Duration::from_secs(1),
        }
    }
}

/// PutEvents per-entry error codes that a later attempt can fix; every other
/// code (`InvalidArgument`, `MalformedDetail`, `AccessDenied`,
/// `NotAuthorizedForSourceException`, ...) is permanent.
pub fn entry_error_is_retryable(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException" | "InternalFailure" | "InternalException" | "ServiceUnavailable"
    )
}

/// Codes of a PutEvents request refused whole for what it carries (too many
/// entries, too large in total, one entry's field out of bounds): a smaller
/// request without the offending entry is accepted, so the relay splits it.
/// Other permanent refusals (`AccessDeniedException`, a missing bus) refuse
/// any request; splitting would multiply them and dead-letter every event
/// for a fault of the deployment.
pub fn request_refused_for_its_content(code: &str) -> bool {
    matches!(
        code,
        "ValidationException"
            | "ValidationError"
            | "SerializationException"
            | "InvalidParameterValue"
            | "InvalidParameterCombination"
            | "MissingParameter"
            | "RequestEntityTooLarge"
    )
}

/// Publishes `entry` alone: its bus event id, or an error that is transient
/// when its code is one the relay retries.
pub async fn put_one(publisher: &impl Publisher, entry: &BusEntry) -> Result<String, PortError> {
    let results = publisher.put_events(&[entry]).await?;
    match results.into_iter().next() {
        Some(EntryResult::Published { bus_event_id }) => Ok(bus_event_id),
        Some(EntryResult::Failed { code, message }) if entry_error_is_retryable(&code) => {
            Err(PortError::transient("PutEvents", code, message))
        }
        Some(EntryResult::Failed { code, message }) => {
            Err(PortError::permanent("PutEvents", code, message))
        }
        None => Err(PortError::transient(
            "PutEvents",
            "InternalFailure",
            "no result for the entry",
        )),
    }
}

/// An event to publish, and its place in the batch it came from.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub position: usize,
    pub sequence_number: Option<String>,
    pub record: OutboxRecord,
}

/// A record that can never be published as it is.
#[derive(Debug, Clone)]
pub struct Poison {
    pub position: usize,
    pub sequence_number: Option<String>,
    /// The item's key, when readable: the outbox item then leaves the
    /// pending index, so the sweep does not dead-letter it again.
    pub event_id: Option<EventId>,
    pub raw_image: Value,
    pub stage: FailureStage,
    pub error_code: &'static str,
    pub message: String,
}

/// What one relay run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RelayReport {
    pub published: usize,
    /// Entry sends beyond the first, i.e. retries of failed entries only.
    pub resent_entries: usize,
    pub dead_lettered: usize,
    /// Batch positions still failing: the caller reports the lowest.
    pub failed_positions: Vec<usize>,
    /// The largest `now - createdAt` among published events.
    pub max_publish_lag: Option<Duration>,
}

impl RelayReport {
    pub fn lowest_failed_position(&self) -> Option<usize> {
        self.failed_positions.iter().copied().min()
    }
}

struct InFlight {
    candidate: Candidate,
    entry: BusEntry,
    last_error: String,
    /// Whether a request carrying it was sent: only those count as a
    /// failed attempt on the outbox item.
    sent: bool,
}

/// What counting one more failure did.
enum Counted {
    DeadLettered,
    /// The item was no longer pending: the sweep or another invocation
    /// published or dead-lettered it meanwhile.
    AlreadyHandled,
    StillFailing,
}

#[derive(Debug)]
pub struct Relay<P, S, D> {
    publisher: P,
    store: S,
    dead_letters: D,
    config: RelayConfig,
}

impl<P: Publisher, S: OutboxStore, D: DeadLetterSink> Relay<P, S, D> {
    pub fn new(publisher: P, store: S, dead_letters: D, config: RelayConfig) -> Self {
        Self {
            publisher,
            store,
            dead_letters,
            config,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn publisher(&self) -> &P {
        &self.publisher
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Sends poison records to the DLQ; a poison record is never retried,
    /// unless the DLQ itself is unreachable, when losing it is the worse
    /// outcome.
    pub async fn dead_letter_poison(&self, poison: Vec<Poison>, report: &mut RelayReport) {
        for record in poison {
            let now = Timestamp::now();
            let letter = RelayDeadLetter {
                kind: DeadLetterKind::Relay,
                event_id: record.event_id,
                entry: None,
                raw_image: Some(record.raw_image),
                stage: record.stage,
                error_code: record.error_code.to_owned(),
                message: record.message,
                attempts: 0,
                first_failure_at: now,
                last_failure_at: now,
                sequence_number: record.sequence_number,
                cut: None,
            };
            match self.deliver(&letter).await {
                Ok(()) => {
                    report.dead_lettered += 1;
                    if let Some(event_id) = record.event_id {
                        self.note_dead_lettered(event_id, &letter).await;
                    }
                }
                Err(error) => {
                    warn!(error = %error, "poison record could not be dead-lettered; the batch will be retried");
                    report.failed_positions.push(record.position);
                }
            }
        }
    }

    /// Publishes `candidates` before `deadline`, retrying failed entries with
    /// backoff and full jitter while time remains.
    pub async fn publish(
        &self,
        candidates: Vec<Candidate>,
        deadline: Instant,
        report: &mut RelayReport,
    ) {
        let mut in_flight = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let entry = candidate.record.bus_entry();
            if entry.size() > self.config.max_request_bytes {
                let message = format!(
                    "entry is {} bytes, over the {} byte request limit",
                    entry.size(),
                    self.config.max_request_bytes
                );
                // Without its entry: the entry would make the message too
                // large for SQS as well, and an unsendable letter would hold
                // the shard for good. The event stays readable in its outbox
                // item.
                self.dead_letter_event(
                    &candidate,
                    None,
                    FailureStage::Pack,
                    codes::TOO_LARGE,
                    &message,
                    report,
                )
                .await;
                continue;
            }
            in_flight.push(InFlight {
                candidate,
                entry,
                last_error: String::new(),
                sent: false,
            });
        }

        let mut delays = self.config.backoff.build();
        let mut given_up = Vec::new();
        let mut first_round = true;
        while !in_flight.is_empty() {
            if !first_round {
                let Some(delay) = delays.next() else { break };
                if Instant::now() + delay >= deadline {
                    break;
                }
                tokio::time::sleep(delay).await;
                report.resent_entries += in_flight.len();
            }
            first_round = false;
            let (retry, stop) = self.publish_round(in_flight, deadline, report).await;
            in_flight = retry;
            given_up.extend(stop);
        }
        given_up.extend(in_flight);
        let (sent, unsent): (Vec<InFlight>, Vec<InFlight>) =
            given_up.into_iter().partition(|f| f.sent);
        // Never offered to the bus: not a failed attempt, only unfinished.
        report
            .failed_positions
            .extend(unsent.iter().map(|f| f.candidate.position));
        // Concurrently, each within the bookkeeping bound: this runs after
        // the retry deadline, inside the safety margin.
        let counted = futures_util::future::join_all(sent.iter().map(|f| async {
            tokio::time::timeout(self.config.bookkeeping_timeout, self.count_failure(f))
                .await
                .unwrap_or(Counted::StillFailing)
        }))
        .await;
        for (failed, counted) in sent.iter().zip(counted) {
            match counted {
                Counted::DeadLettered => report.dead_lettered += 1,
                Counted::AlreadyHandled => {}
                Counted::StillFailing => report.failed_positions.push(failed.candidate.position),
            }
        }
    }

    /// `call`, or a transient `Timeout` once the bookkeeping bound passes.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, PortError>>,
    ) -> Result<T, PortError> {
        let bound = self.config.bookkeeping_timeout;
        // Boxed: an SDK call's future is kilobytes, and inline it would
        // grow every future of the engine and its callers.
        tokio::time::timeout(bound, Box::pin(call))
            .await
            .unwrap_or_else(|_| {
                Err(PortError::transient(
                    operation,
                    "Timeout",
                    format!("no answer within {bound:?}"),
                ))
            })
    }

    /// One pass over everything in flight; returns (retry, stop retrying).
    /// A request refused whole for its content is split in halves until
    /// each entry is either published or refused on its own, within the
    /// deadline; only an entry refused alone is dead-lettered.
    async fn publish_round(
        &self,
        in_flight: Vec<InFlight>,
        deadline: Instant,
        report: &mut RelayReport,
    ) -> (Vec<InFlight>, Vec<InFlight>) {
        let sizes: Vec<usize> = in_flight.iter().map(|f| f.entry.size()).collect();
        let ranges = entry::pack(
            &sizes,
            self.config.max_entries,
            self.config.max_request_bytes,
        );
        let mut items = in_flight.into_iter();
        let mut requests: VecDeque<Vec<InFlight>> = ranges
            .into_iter()
            .map(|range| items.by_ref().take(range.len()).collect())
            .collect();
        let mut retry = Vec::new();
        let mut stop = Vec::new();
        while let Some(mut chunk) = requests.pop_front() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                // A zero timeout still polls once, which may send: an event
                // could be published yet counted as failed.
                for f in &mut chunk {
                    "timeout".clone_into(&mut f.last_error);
                }
                stop.extend(chunk);
                continue;
            }
            for f in &mut chunk {
                f.sent = true;
            }
            let entries: Vec<&BusEntry> = chunk.iter().map(|f| &f.entry).collect();
            let limit = remaining.min(self.config.attempt_timeout);
            let outcome = tokio::time::timeout(limit, self.publisher.put_events(&entries)).await;
            match outcome {
                // Cut off: it may have been published, so a retry may
                // publish it twice, which consumers deduplicate. The retry
                // loop stops at the deadline.
                Err(_) => {
                    warn!(entries = chunk.len(), timeout = ?limit, "PutEvents did not answer in time; retrying its entries");
                    for f in &mut chunk {
                        "timeout".clone_into(&mut f.last_error);
                    }
                    retry.extend(chunk);
                }
                Ok(Err(error))
                    if !error.is_retryable() && request_refused_for_its_content(error.code()) =>
                {
                    if chunk.len() > 1 {
                        warn!(error = %error, entries = chunk.len(), "PutEvents refused the whole request; sending its halves");
                        report.resent_entries += chunk.len();
                        let second = chunk.split_off(chunk.len() / 2);
                        requests.push_front(second);
                        requests.push_front(chunk);
                    } else if let Some(refused) = chunk.pop() {
                        self.dead_letter_event(
                            &refused.candidate,
                            Some(refused.entry),
                            FailureStage::Publish,
                            error.code(),
                            error.message(),
                            report,
                        )
                        .await;
                    }
                }
                Ok(Err(error)) => {
                    let retryable = error.is_retryable();
                    warn!(error = %error, retryable, entries = chunk.len(), "PutEvents call failed");
                    for f in &mut chunk {
                        error.code().clone_into(&mut f.last_error);
                    }
                    if retryable {
                        retry.extend(chunk);
                    } else {
                        stop.extend(chunk);
                    }
                }
                Ok(Ok(results)) if results.len() != chunk.len() => {
                    // Zipping would silently drop the unanswered entries.
                    warn!(
                        entries = chunk.len(),
                        results = results.len(),
                        "PutEvents answered a different number of entries"
                    );
                    for f in &mut chunk {
                        "InternalFailure".clone_into(&mut f.last_error);
                    }
                    retry.extend(chunk);
                }
                Ok(Ok(results)) => self.settle(chunk, results, &mut retry, report).await,
            }
        }
        (retry, stop)
    }

    /// Applies one answered request's per-entry results: marks the
    /// published, keeps the retryable, dead-letters the refused.
    async fn settle(
        &self,
        chunk: Vec<InFlight>,
        results: Vec<EntryResult>,
        retry: &mut Vec<InFlight>,
        report: &mut RelayReport,
    ) {
        let mut published = Vec::new();
        for (mut f, result) in chunk.into_iter().zip(results) {
            match result {
                EntryResult::Published { bus_event_id } => {
                    published.push((f.candidate.record, bus_event_id));
                }
                EntryResult::Failed { code, .. } if entry_error_is_retryable(&code) => {
                    f.last_error = code;
                    retry.push(f);
                }
                EntryResult::Failed { code, message } => {
                    self.dead_letter_event(
                        &f.candidate,
                        Some(f.entry),
                        FailureStage::Publish,
                        &code,
                        &message,
                        report,
                    )
                    .await;
                }
            }
        }
        self.mark_published(&published, report).await;
    }

    /// Marks one request's published events, concurrently: sequential
    /// UpdateItems would cost a round trip per event.
    async fn mark_published(&self, published: &[(OutboxRecord, String)], report: &mut RelayReport) {
        let now = Timestamp::now();
        for (record, _) in published {
            report.published += 1;
            let lag = (now.as_datetime() - record.created_at.as_datetime())
                .to_std()
                .unwrap_or_default();
            report.max_publish_lag = report.max_publish_lag.max(Some(lag));
        }
        // No span per mark: the record's own span is in the handler, and the
        // only line a mark logs names its event.
        let marks = published.iter().map(|(record, bus_event_id)| async move {
            let result = self
                .bounded(
                    "UpdateItem",
                    self.store
                        .mark_published(record.event_id, bus_event_id, now),
                )
                .await;
            (record.event_id, result)
        });
        for (event_id, result) in futures_util::future::join_all(marks).await {
            if let Err(error) = result {
                // Published is what matters; a stale pending marker only
                // means the sweep may publish it again, which consumers
                // deduplicate.
                warn!(%event_id, error = %error, "published, but marking the outbox item failed");
            }
        }
    }

    /// Counts one more failed invocation on a still-pending item, and
    /// dead-letters the event once it has failed `max_attempts` times.
    async fn count_failure(&self, failed: &InFlight) -> Counted {
        let now = Timestamp::now();
        let record = &failed.candidate.record;
        let counted = self
            .bounded(
                "UpdateItem",
                self.store
                    .record_failure(record.event_id, &failed.last_error, now),
            )
            .await;
        match counted {
            Ok(None) => {
                info!(event_id = %record.event_id, "already published or dead-lettered; nothing to count");
                Counted::AlreadyHandled
            }
            Ok(Some(history)) if history.attempts >= self.config.max_attempts => {
                let message = format!(
                    "still failing after {} invocations, last error {}",
                    history.attempts, failed.last_error
                );
                let letter = letter_for(
                    &failed.candidate,
                    Some(failed.entry.clone()),
                    FailureStage::Publish,
                    codes::RETRIES_EXHAUSTED,
                    &message,
                    history.attempts,
                    history.first_failure_at,
                );
                if self.send_letter(&failed.candidate, &letter).await {
                    Counted::DeadLettered
                } else {
                    Counted::StillFailing
                }
            }
            Ok(Some(history)) => {
                warn!(event_id = %record.event_id, attempts = history.attempts, last_error = %failed.last_error, "event still failing; left for a later invocation");
                Counted::StillFailing
            }
            Err(error) => {
                warn!(event_id = %record.event_id, error = %error, "could not count the failure; left for a later invocation");
                Counted::StillFailing
            }
        }
    }

    async fn dead_letter_event(
        &self,
        candidate: &Candidate,
        entry: Option<BusEntry>,
        stage: FailureStage,
        code: &str,
        message: &str,
        report: &mut RelayReport,
    ) {
        let letter = letter_for(
            candidate,
            entry,
            stage,
            code,
            message,
            candidate.record.attempts + 1,
            candidate
                .record
                .first_failure_at
                .unwrap_or_else(Timestamp::now),
        );
        if self.send_letter(candidate, &letter).await {
            report.dead_lettered += 1;
        } else {
            report.failed_positions.push(candidate.position);
        }
    }

    async fn note_dead_lettered(&self, event_id: EventId, letter: &RelayDeadLetter) {
        let marked = self
            .bounded(
                "UpdateItem",
                self.store
                    .mark_dead_lettered(event_id, &letter.error_code, letter.last_failure_at),
            )
            .await;
        match marked {
            Ok(true) => {}
            Ok(false) => {
                info!(%event_id, "dead-lettered, but the item had already been handled meanwhile");
            }
            Err(error) => {
                warn!(%event_id, error = %error, "dead-lettered, but the outbox item still says pending");
            }
        }
    }

    /// Sends `letter`, or its minimal form if SQS refuses the full one as
    /// invalid: only an unreachable DLQ may hold a record back.
    async fn deliver(&self, letter: &RelayDeadLetter) -> Result<(), PortError> {
        match self
            .bounded("SendMessage", self.dead_letters.send(letter))
            .await
        {
            Err(error) if !error.is_retryable() => {
                warn!(event_id = ?letter.event_id, error = %error, "the DLQ refused the letter; sending a minimal one");
                let minimal = letter.minimal(error.code());
                self.bounded("SendMessage", self.dead_letters.send(&minimal))
                    .await
            }
            sent => sent,
        }
    }

    /// True when the letter reached the DLQ.
    async fn send_letter(&self, candidate: &Candidate, letter: &RelayDeadLetter) -> bool {
        let event_id = candidate.record.event_id;
        match self.deliver(letter).await {
            Ok(()) => {
                warn!(%event_id, error_code = %letter.error_code, "event dead-lettered");
                self.note_dead_lettered(event_id, letter).await;
                true
            }
            Err(error) => {
                warn!(%event_id, error = %error, "DLQ unreachable; the event stays failing so nothing is lost");
                false
            }
        }
    }

    /// Publishes pending items older than `older_than`: what the stream
    /// never delivered. Bounded by `limit` items per run.
    pub async fn sweep(
        &self,
        older_than: Duration,
        limit: usize,
        deadline: Instant,
    ) -> Result<SweepReport, PortError> {
        let cutoff_at = chrono::Utc::now()
            - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
        let cutoff = Timestamp::from_datetime(cutoff_at);
        let records = self.store.pending(cutoff, limit).await?;
        let oldest = records.iter().map(|r| r.created_at).min();
        let (candidates, poison) = validate_records(records);
        let mut relay = RelayReport::default();
        self.dead_letter_poison(poison, &mut relay).await;
        let found = candidates.len();
        self.publish(candidates, deadline, &mut relay).await;
        Ok(SweepReport {
            found,
            oldest_pending: oldest,
            relay,
        })
    }
}

fn letter_for(
    candidate: &Candidate,
    entry: Option<BusEntry>,
    stage: FailureStage,
    code: &str,
    message: &str,
    attempts: u32,
    first_failure_at: Timestamp,
) -> RelayDeadLetter {
    RelayDeadLetter {
        kind: DeadLetterKind::Relay,
        event_id: Some(candidate.record.event_id),
        entry,
        raw_image: None,
        stage,
        error_code: code.to_owned(),
        message: message.to_owned(),
        attempts,
        first_failure_at,
        last_failure_at: Timestamp::now(),
        sequence_number: candidate.sequence_number.clone(),
        cut: None,
    }
}

/// What a sweep found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub found: usize,
    pub oldest_pending: Option<Timestamp>,
    pub relay: RelayReport,
}

/// Splits records read from the table into publishable candidates and
/// contract-breaking poison, numbering them in order.
pub fn validate_records(records: Vec<OutboxRecord>) -> (Vec<Candidate>, Vec<Poison>) {
    let mut candidates = Vec::new();
    let mut poison = Vec::new();
    for (position, record) in records.into_iter().enumerate() {
        match record.valid_event() {
            Ok(_) => candidates.push(Candidate {
                position,
                sequence_number: None,
                record,
            }),
            Err(error) => poison.push(Poison {
                position,
                sequence_number: None,
                event_id: Some(record.event_id),
                raw_image: serde_json::to_value(&record).unwrap_or(Value::Null),
                stage: FailureStage::Contract,
                error_code: codes::CONTRACT_INVALID,
                message: error.to_string(),
            }),
        }
    }
    (candidates, poison)
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::contract::{Email, UserAction, UserEvent, UserId};
    use crate::testing::{
        EntryFault, FaultyPublisher, MemoryDeadLetters, MemoryOutbox, MemoryPublisher, RequestFault,
    };
    use proptest::strategy::Strategy as _;

    fn entry() -> BusEntry {
        BusEntry {
            event_id: None,
            source: "interview-companion.auth".to_owned(),
            detail_type: "user.signed_in".to_owned(),
            detail: "{}".to_owned(),
            trace_header: None,
        }
    }

    #[test]
    fn a_read_item_whose_detail_names_another_event_is_poison_not_a_candidate() {
        let event = |uid: &str| {
            UserEvent::new(
                UserAction::SignedIn,
                UserId::parse(uid).expect("valid"),
                Email::parse(format!("{uid}@example.com")).expect("valid"),
                Timestamp::now(),
            )
        };
        let record = |event: &UserEvent| {
            OutboxRecord::new(event, Timestamp::now(), crate::outbox::DEFAULT_TTL, None)
        };
        let good = record(&event("ada"));
        let mut mismatched = record(&event("bob"));
        mismatched.detail = record(&event("eve")).detail;

        let (candidates, poison) = validate_records(vec![good.clone(), mismatched.clone()]);

        assert_eq!(candidates.len(), 1);
        assert_eq!(candidates[0].record, good);
        assert_eq!(poison.len(), 1);
        assert_eq!(poison[0].position, 1);
        assert_eq!(poison[0].event_id, Some(mismatched.event_id));
        assert_eq!(poison[0].error_code, codes::CONTRACT_INVALID);
        assert!(
            poison[0].message.contains("eventId"),
            "{}",
            poison[0].message
        );
    }

    async fn put_one_failing_with(code: &str) -> PortError {
        let publisher = FaultyPublisher::new(MemoryPublisher::default());
        publisher.fail_entries(Some(EntryFault {
            code: code.to_owned(),
            ratio: 1.0,
        }));
        put_one(&publisher, &entry())
            .await
            .expect_err("the entry fails")
    }

    #[tokio::test]
    async fn put_one_answers_the_bus_event_id() {
        let id = put_one(&MemoryPublisher::default(), &entry()).await;
        assert_eq!(id.ok().as_deref(), Some("bus-0"));
    }

    #[tokio::test]
    async fn put_one_keeps_the_entry_code_and_its_retryability() {
        for (code, retryable) in [
            ("ThrottlingException", true),
            ("InternalException", true),
            ("AccessDeniedException", false),
            ("MalformedDetail", false),
        ] {
            let error = put_one_failing_with(code).await;
            assert_eq!(error.code(), code);
            assert_eq!(error.is_retryable(), retryable, "{code}");
        }
    }

    /// Publishes every entry, then answers with one result too few.
    #[derive(Debug, Default)]
    struct ShortAnswers(MemoryPublisher);

    impl Publisher for ShortAnswers {
        async fn put_events(&self, entries: &[&BusEntry]) -> Result<Vec<EntryResult>, PortError> {
            let mut results = self.0.put_events(entries).await?;
            results.pop();
            Ok(results)
        }
    }

    fn quick_backoff() -> RelayConfig {
        RelayConfig {
            backoff: FullJitter::new(Duration::from_millis(1), Duration::from_millis(2)),
            ..RelayConfig::default()
        }
    }

    /// `count` sign-ins written to `store` as the exchange writes them, as a
    /// stream batch would hand them to the relay.
    async fn candidates(store: &MemoryOutbox, count: usize) -> Vec<Candidate> {
        let mut candidates = Vec::new();
        for position in 0..count {
            let event = UserEvent::new(
                UserAction::SignedIn,
                UserId::parse(format!("uid-{position}")).expect("valid"),
                Email::parse(format!("u{position}@example.com")).expect("valid"),
                Timestamp::now(),
            );
            let record =
                OutboxRecord::new(&event, Timestamp::now(), crate::outbox::DEFAULT_TTL, None);
            store.insert(&record).await.expect("in memory");
            candidates.push(Candidate {
                position,
                sequence_number: None,
                record,
            });
        }
        candidates
    }

    #[tokio::test]
    async fn an_answer_missing_results_is_retried_whole_and_nothing_is_marked_published() {
        let relay = Relay::new(
            ShortAnswers::default(),
            MemoryOutbox::default(),
            MemoryDeadLetters::default(),
            quick_backoff(),
        );
        let candidates = candidates(relay.store(), 3).await;

        let mut report = RelayReport::default();
        let deadline = Instant::now() + Duration::from_millis(50);
        relay.publish(candidates, deadline, &mut report).await;

        assert_eq!(report.published, 0, "{report:?}");
        assert!(
            report.resent_entries >= 3,
            "the whole request was resent: {report:?}"
        );
        assert_eq!(report.failed_positions, vec![0, 1, 2]);
        assert!(relay.store().records().iter().all(OutboxRecord::is_pending));
    }

    type RefusingRelay = Relay<FaultyPublisher<MemoryPublisher>, MemoryOutbox, MemoryDeadLetters>;

    /// Publishes `count` events through a bus that refuses, with `code`, any
    /// whole request carrying an event at one of `refused` positions.
    async fn publish_refusing(
        count: usize,
        refused: &[usize],
        code: &str,
    ) -> (RefusingRelay, Vec<Candidate>, RelayReport) {
        let relay = Relay::new(
            FaultyPublisher::new(MemoryPublisher::default()),
            MemoryOutbox::default(),
            MemoryDeadLetters::default(),
            quick_backoff(),
        );
        let candidates = candidates(relay.store(), count).await;
        relay.publisher().refuse_requests(Some(RequestFault {
            code: code.to_owned(),
            carrying: refused
                .iter()
                .map(|&position| candidates[position].record.event_id)
                .collect(),
        }));
        let mut report = RelayReport::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        relay
            .publish(candidates.clone(), deadline, &mut report)
            .await;
        (relay, candidates, report)
    }

    fn published_ids(relay: &RefusingRelay) -> Vec<EventId> {
        let mut ids: Vec<EventId> = relay
            .publisher()
            .inner()
            .published()
            .iter()
            .filter_map(|entry| entry.event_id)
            .collect();
        ids.sort_unstable();
        ids
    }

    #[tokio::test]
    async fn a_request_refused_whole_for_one_entry_publishes_the_others_and_dead_letters_only_it_with_its_code()
     {
        let (relay, candidates, report) = publish_refusing(10, &[6], "ValidationException").await;
        let refused = candidates[6].record.event_id;

        let mut others: Vec<EventId> = candidates
            .iter()
            .map(|c| c.record.event_id)
            .filter(|&id| id != refused)
            .collect();
        others.sort_unstable();
        assert_eq!(published_ids(&relay), others, "each other event once");
        assert_eq!(report.published, 9, "{report:?}");
        assert_eq!(report.dead_lettered, 1, "{report:?}");
        assert!(report.failed_positions.is_empty(), "{report:?}");

        let letters = relay.dead_letters.letters();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].event_id, Some(refused));
        assert_eq!(letters[0].error_code, "ValidationException");
        assert_eq!(letters[0].stage, FailureStage::Publish);
        assert!(
            letters[0].message.contains("refused entry"),
            "AWS's message is kept: {}",
            letters[0].message
        );
        assert_eq!(
            letters[0].entry.as_ref().and_then(|e| e.event_id),
            Some(refused),
            "the letter carries the entry, so redrive can resend it"
        );
        let record = relay.store().record(refused).expect("still in the outbox");
        assert!(
            !record.is_pending(),
            "the refused event leaves the pending index"
        );
        assert!(
            relay.store().records().iter().all(|r| !r.is_pending()),
            "every other event is marked published"
        );
    }

    #[tokio::test]
    async fn a_refusal_any_request_would_get_is_not_split_and_dead_letters_nothing_at_once() {
        let (relay, _, report) =
            publish_refusing(10, &(0..10).collect::<Vec<_>>(), "AccessDeniedException").await;

        assert_eq!(relay.publisher().calls(), 1, "one request, not its halves");
        assert_eq!(report.dead_lettered, 0, "{report:?}");
        assert_eq!(report.failed_positions, (0..10).collect::<Vec<_>>());
        assert!(relay.store().records().iter().all(OutboxRecord::is_pending));
    }

    /// A DLQ that refuses every letter carrying a payload, as SQS refuses a
    /// body it cannot take, and keeps the rest.
    #[derive(Debug, Default)]
    struct RefusesFullLetters(MemoryDeadLetters);

    impl DeadLetterSink for RefusesFullLetters {
        async fn send(&self, letter: &RelayDeadLetter) -> Result<(), PortError> {
            if letter.entry.is_some() || letter.raw_image.is_some() {
                return Err(PortError::permanent(
                    "SendMessage",
                    "InvalidMessageContents",
                    "injected: the body holds a character SQS refuses",
                ));
            }
            self.0.send(letter).await
        }
    }

    #[tokio::test]
    async fn a_letter_sqs_refuses_is_sent_again_minimal_and_the_record_does_not_wait() {
        let relay = Relay::new(
            FaultyPublisher::new(MemoryPublisher::default()),
            MemoryOutbox::default(),
            RefusesFullLetters::default(),
            quick_backoff(),
        );
        let candidates = candidates(relay.store(), 1).await;
        let event_id = candidates[0].record.event_id;
        relay.publisher().fail_entries(Some(EntryFault {
            code: "InvalidArgument".to_owned(),
            ratio: 1.0,
        }));

        let mut report = RelayReport::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        relay.publish(candidates, deadline, &mut report).await;

        assert_eq!(report.dead_lettered, 1, "{report:?}");
        assert!(report.failed_positions.is_empty(), "{report:?}");
        let letters = relay.dead_letters.0.letters();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].event_id, Some(event_id));
        assert_eq!(letters[0].error_code, "InvalidArgument");
        assert!(
            letters[0]
                .cut
                .as_deref()
                .is_some_and(|note| note.contains("InvalidMessageContents")),
            "{:?}",
            letters[0]
        );
        assert!(!relay.store().record(event_id).expect("kept").is_pending());
    }

    fn faulty_relay<D: DeadLetterSink>(
        dead_letters: D,
        max_attempts: u32,
    ) -> Relay<FaultyPublisher<MemoryPublisher>, MemoryOutbox, D> {
        Relay::new(
            FaultyPublisher::new(MemoryPublisher::default()),
            MemoryOutbox::default(),
            dead_letters,
            RelayConfig {
                max_attempts,
                attempt_timeout: Duration::from_millis(100),
                ..quick_backoff()
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_put_events_that_hangs_is_cut_off_by_the_attempt_timeout_and_retried_in_time() {
        let relay = faulty_relay(MemoryDeadLetters::default(), 5);
        let candidates = candidates(relay.store(), 3).await;
        relay.publisher().hang_next_calls(1);

        let mut report = RelayReport::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        relay.publish(candidates, deadline, &mut report).await;

        assert_eq!(report.published, 3, "{report:?}");
        assert!(report.failed_positions.is_empty(), "{report:?}");
        assert_eq!(relay.publisher().calls(), 2, "one hung request, one retry");
        assert!(
            Instant::now() < deadline,
            "retried well before the deadline"
        );
    }

    /// A DLQ whose sends never answer.
    #[derive(Debug, Default)]
    struct HangingDlq;

    impl DeadLetterSink for HangingDlq {
        async fn send(&self, _: &RelayDeadLetter) -> Result<(), PortError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dlq_that_hangs_does_not_keep_the_invocation_past_its_deadline() {
        let relay = faulty_relay(HangingDlq, 1);
        let candidates = candidates(relay.store(), 4).await;
        // Two fail for good at once (a DLQ send inside the retry window),
        // two keep failing until the deadline (sends after it).
        let ids: Vec<EventId> = candidates.iter().map(|c| c.record.event_id).collect();
        relay.publisher().refuse_requests(Some(RequestFault {
            code: "ValidationException".to_owned(),
            carrying: ids[..2].iter().copied().collect(),
        }));
        relay.publisher().fail_entries(Some(EntryFault {
            code: "ThrottlingException".to_owned(),
            ratio: 1.0,
        }));

        let mut report = RelayReport::default();
        let budget = Duration::from_secs(2);
        let deadline = Instant::now() + budget;
        relay.publish(candidates, deadline, &mut report).await;

        let bound = relay.config().bookkeeping_timeout;
        assert!(
            Instant::now() <= deadline + bound,
            "{:?} past the deadline",
            Instant::now() - deadline
        );
        assert_eq!(report.failed_positions, vec![0, 1, 2, 3], "{report:?}");
        assert_eq!(report.dead_lettered, 0);
        assert!(relay.store().records().iter().all(OutboxRecord::is_pending));
    }

    #[tokio::test]
    async fn a_failure_recorded_after_the_sweep_published_the_item_changes_nothing() {
        let relay = faulty_relay(MemoryDeadLetters::default(), 1);
        let candidates = candidates(relay.store(), 1).await;
        let event_id = candidates[0].record.event_id;
        relay.publisher().unavailable.set(true);
        // What the sweep did meanwhile, elsewhere.
        relay
            .store()
            .mark_published(event_id, "bus-by-the-sweep", Timestamp::now())
            .await
            .expect("in memory");
        let before = relay.store().record(event_id);

        let mut report = RelayReport::default();
        let deadline = Instant::now() + Duration::from_millis(50);
        relay.publish(candidates, deadline, &mut report).await;

        assert!(relay.dead_letters.letters().is_empty(), "a false page");
        assert!(report.failed_positions.is_empty(), "{report:?}");
        assert_eq!(report.dead_lettered, 0);
        assert_eq!(
            relay.store().record(event_id),
            before,
            "the item is unchanged"
        );
    }

    #[tokio::test]
    async fn entries_never_sent_before_the_deadline_are_not_counted_as_attempts() {
        let relay = faulty_relay(MemoryDeadLetters::default(), 1);
        let candidates = candidates(relay.store(), 3).await;

        let mut report = RelayReport::default();
        relay.publish(candidates, Instant::now(), &mut report).await;

        assert_eq!(relay.publisher().calls(), 0);
        assert_eq!(report.failed_positions, vec![0, 1, 2]);
        assert!(relay.dead_letters.letters().is_empty());
        assert!(
            relay
                .store()
                .records()
                .iter()
                .all(|r| r.is_pending() && r.attempts == 0),
            "nothing was tried, so nothing is counted"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whichever entries make AWS refuse the requests that carry them,
        /// exactly those are dead-lettered and every other event is
        /// published exactly once, whatever the batch and its packing.
        #[test]
        fn splitting_dead_letters_exactly_the_refused_entries_and_publishes_the_rest_once(
            (count, refused) in (1usize..=25).prop_flat_map(|count| {
                (proptest::strategy::Just(count), proptest::collection::btree_set(0..count, 0..=count))
            })
        ) {
            let refused: Vec<usize> = refused.into_iter().collect();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
            let (relay, candidates, report) =
                runtime.block_on(publish_refusing(count, &refused, "ValidationException"));

            let mut expected: Vec<EventId> = (0..count)
                .filter(|position| !refused.contains(position))
                .map(|position| candidates[position].record.event_id)
                .collect();
            expected.sort_unstable();
            proptest::prop_assert_eq!(published_ids(&relay), expected);
            let mut letters: Vec<EventId> =
                relay.dead_letters.letters().iter().filter_map(|l| l.event_id).collect();
            letters.sort_unstable();
            let mut refused_ids: Vec<EventId> =
                refused.iter().map(|&p| candidates[p].record.event_id).collect();
            refused_ids.sort_unstable();
            proptest::prop_assert_eq!(letters, refused_ids);
            proptest::prop_assert!(report.failed_positions.is_empty(), "{:?}", report);
        }
    }
}
