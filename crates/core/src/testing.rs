//! In-memory ports for unit tests, and fault-injecting wrappers that fail
//! chosen calls of any port implementation, real or in-memory.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::contract::{DisplayName, Email, EventId, Timestamp, UserAction, UserEvent, UserId};
use crate::dead_letter::RelayDeadLetter;
use crate::entry::BusEntry;
use crate::outbox::OutboxRecord;
use crate::ports::{
    DeadLetterSink, EntryResult, FailureHistory, Inserted, OutboxStore, PortError, ProfileStore,
    Publisher, WriteOutcome,
};
use crate::profile::{ProfileUpdate, UserItem, WriteCase};

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An on/off fault.
#[derive(Debug, Default)]
pub struct Switch(AtomicBool);

impl Switch {
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::SeqCst);
    }

    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A bus that keeps what it was sent.
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    published: Mutex<Vec<BusEntry>>,
    next_id: AtomicUsize,
}

impl MemoryPublisher {
    pub fn published(&self) -> Vec<BusEntry> {
        lock(&self.published).clone()
    }
}

impl Publisher for MemoryPublisher {
    async fn put_events(&self, entries: &[&BusEntry]) -> Result<Vec<EntryResult>, PortError> {
        let mut published = lock(&self.published);
        published.extend(entries.iter().map(|&entry| entry.clone()));
        Ok(entries
            .iter()
            .map(|_| EntryResult::Published {
                bus_event_id: format!("bus-{}", self.next_id.fetch_add(1, Ordering::SeqCst)),
            })
            .collect())
    }
}

/// Entry-level faults: each entry fails with `code` with probability `ratio`.
#[derive(Debug, Clone)]
pub struct EntryFault {
    pub code: String,
    pub ratio: f64,
}

/// A request-level refusal: any request that carries one of `carrying` is
/// refused whole with `code`, as AWS refuses a request for one bad entry.
#[derive(Debug, Clone)]
pub struct RequestFault {
    pub code: String,
    pub carrying: HashSet<EventId>,
}

/// Wraps a publisher; can make whole calls fail, or fail a share of the
/// entries without forwarding them, and logs what reached the inner one.
#[derive(Debug)]
pub struct FaultyPublisher<P> {
    inner: P,
    pub unavailable: Switch,
    request_fault: Mutex<Option<RequestFault>>,
    entry_fault: Mutex<Option<EntryFault>>,
    rng: Mutex<fastrand::Rng>,
    forwarded: Mutex<Vec<Option<EventId>>>,
    calls: AtomicUsize,
    hanging: AtomicUsize,
}

impl<P> FaultyPublisher<P> {
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            unavailable: Switch::default(),
            request_fault: Mutex::new(None),
            entry_fault: Mutex::new(None),
            rng: Mutex::new(fastrand::Rng::with_seed(7)),
            forwarded: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
            hanging: AtomicUsize::new(0),
        }
    }

    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The next `calls` calls never answer, as a request on a connection
    /// that hung.
    pub fn hang_next_calls(&self, calls: usize) {
        self.hanging.store(calls, Ordering::SeqCst);
    }

    pub fn refuse_requests(&self, fault: Option<RequestFault>) {
        *lock(&self.request_fault) = fault;
    }

    pub fn fail_entries(&self, fault: Option<EntryFault>) {
        *lock(&self.entry_fault) = fault;
    }

    /// Event ids of every entry forwarded to the inner publisher, in order.
    pub fn forwarded(&self) -> Vec<Option<EventId>> {
        lock(&self.forwarded).clone()
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl<P: Publisher> Publisher for FaultyPublisher<P> {
    async fn put_events(&self, entries: &[&BusEntry]) -> Result<Vec<EntryResult>, PortError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let hangs = self
            .hanging
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if hangs {
            return std::future::pending().await;
        }
        if self.unavailable.is_on() {
            return Err(PortError::transient(
                "PutEvents",
                "ServiceUnavailable",
                "injected: bus unavailable",
            ));
        }
        if let Some(fault) = lock(&self.request_fault).as_ref() {
            let refused = entries.iter().any(|entry| {
                entry
                    .event_id
                    .is_some_and(|id| fault.carrying.contains(&id))
            });
            if refused {
                return Err(PortError::permanent(
                    "PutEvents",
                    fault.code.clone(),
                    "injected: the request carries a refused entry",
                ));
            }
        }
        let fault = lock(&self.entry_fault).clone();
        let failing: Vec<bool> = {
            let mut rng = lock(&self.rng);
            entries
                .iter()
                .map(|_| fault.as_ref().is_some_and(|f| rng.f64() < f.ratio))
                .collect()
        };
        let forward: Vec<&BusEntry> = entries
            .iter()
            .zip(&failing)
            .filter(|(_, fail)| !**fail)
            .map(|(&entry, _)| entry)
            .collect();
        let mut inner_results = if forward.is_empty() {
            Vec::new()
        } else {
            lock(&self.forwarded).extend(forward.iter().map(|e| e.event_id));
            self.inner.put_events(&forward).await?
        }
        .into_iter();
        let code = fault.map(|f| f.code).unwrap_or_default();
        Ok(failing
            .into_iter()
            .map(|fail| {
                if fail {
                    EntryResult::Failed {
                        code: code.clone(),
                        message: "injected: entry failure".to_owned(),
                    }
                } else {
                    inner_results.next().unwrap_or(EntryResult::Failed {
                        code: "InternalFailure".to_owned(),
                        message: "inner publisher returned too few results".to_owned(),
                    })
                }
            })
            .collect())
    }
}

/// An outbox table in memory, with the same conditions as the adapter.
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    items: Mutex<BTreeMap<EventId, OutboxRecord>>,
}

impl MemoryOutbox {
    pub fn record(&self, event_id: EventId) -> Option<OutboxRecord> {
        lock(&self.items).get(&event_id).cloned()
    }

    pub fn records(&self) -> Vec<OutboxRecord> {
        lock(&self.items).values().cloned().collect()
    }
}

fn missing(operation: &'static str, event_id: EventId) -> PortError {
    PortError::permanent(
        operation,
        "ConditionalCheckFailedException",
        format!("no outbox item {event_id}"),
    )
}

impl OutboxStore for MemoryOutbox {
    async fn insert(&self, record: &OutboxRecord) -> Result<Inserted, PortError> {
        let mut items = lock(&self.items);
        if items.contains_key(&record.event_id) {
            return Ok(Inserted::AlreadyThere);
        }
        items.insert(record.event_id, record.clone());
        Ok(Inserted::New)
    }

    async fn mark_published(
        &self,
        event_id: EventId,
        bus_event_id: &str,
        at: Timestamp,
    ) -> Result<(), PortError> {
        let mut items = lock(&self.items);
        let item = items
            .get_mut(&event_id)
            .ok_or_else(|| missing("UpdateItem", event_id))?;
        item.published_at = Some(at);
        item.bus_event_id = Some(bus_event_id.to_owned());
        item.pending_shard = None;
        Ok(())
    }

    async fn record_failure(
        &self,
        event_id: EventId,
        error: &str,
        at: Timestamp,
    ) -> Result<Option<FailureHistory>, PortError> {
        let mut items = lock(&self.items);
        let item = items
            .get_mut(&event_id)
            .ok_or_else(|| missing("UpdateItem", event_id))?;
        if !item.is_pending() {
            return Ok(None);
        }
        item.attempts += 1;
        item.last_error = Some(error.to_owned());
        let first_failure_at = *item.first_failure_at.get_or_insert(at);
        Ok(Some(FailureHistory {
            attempts: item.attempts,
            first_failure_at,
        }))
    }

    async fn mark_dead_lettered(
        &self,
        event_id: EventId,
        reason: &str,
        at: Timestamp,
    ) -> Result<bool, PortError> {
        let mut items = lock(&self.items);
        let item = items
            .get_mut(&event_id)
            .ok_or_else(|| missing("UpdateItem", event_id))?;
        if !item.is_pending() {
            return Ok(false);
        }
        item.dead_lettered_at = Some(at);
        item.last_error = Some(reason.to_owned());
        item.pending_shard = None;
        Ok(true)
    }

    async fn pending(
        &self,
        cutoff: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, PortError> {
        let mut pending: Vec<_> = lock(&self.items)
            .values()
            .filter(|r| r.is_pending() && r.created_at < cutoff)
            .cloned()
            .collect();
        pending.sort_by_key(|r| r.created_at);
        pending.truncate(limit);
        Ok(pending)
    }

    async fn get(&self, event_id: EventId) -> Result<Option<OutboxRecord>, PortError> {
        Ok(self.record(event_id))
    }
}

/// How inserts misbehave, beyond being unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertFault {
    /// The first insert lands but its answer is lost (a timeout), so a
    /// retry finds the item already there.
    LandThenLoseAnswer,
    /// AccessDenied: retrying cannot help.
    Permanent,
    /// Never answers.
    Hang,
}

/// Wraps an outbox store; while `unavailable` is on every call fails with a
/// transient error, as a throttled or unreachable table would, and inserts
/// can be scripted to fail in other ways.
#[derive(Debug)]
pub struct FaultyOutbox<S> {
    inner: S,
    pub unavailable: Switch,
    insert_fault: Mutex<Option<InsertFault>>,
    inserts: AtomicUsize,
}

impl<S> FaultyOutbox<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            unavailable: Switch::default(),
            insert_fault: Mutex::new(None),
            inserts: AtomicUsize::new(0),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn fail_inserts(&self, fault: Option<InsertFault>) {
        *lock(&self.insert_fault) = fault;
    }

    /// Insert calls made, failed ones included.
    pub fn inserts(&self) -> usize {
        self.inserts.load(Ordering::SeqCst)
    }

    fn check(&self, operation: &'static str) -> Result<(), PortError> {
        if self.unavailable.is_on() {
            Err(PortError::transient(
                operation,
                "ProvisionedThroughputExceededException",
                "injected: table unavailable",
            ))
        } else {
            Ok(())
        }
    }
}

impl<S: OutboxStore> OutboxStore for FaultyOutbox<S> {
    async fn insert(&self, record: &OutboxRecord) -> Result<Inserted, PortError> {
        let attempt = self.inserts.fetch_add(1, Ordering::SeqCst);
        self.check("PutItem")?;
        let fault = *lock(&self.insert_fault);
        match fault {
            Some(InsertFault::LandThenLoseAnswer) if attempt == 0 => {
                self.inner.insert(record).await?;
                Err(PortError::transient(
                    "PutItem",
                    "Timeout",
                    "injected: response lost",
                ))
            }
            Some(InsertFault::Permanent) => Err(PortError::permanent(
                "PutItem",
                "AccessDeniedException",
                "injected: not authorised",
            )),
            Some(InsertFault::Hang) => std::future::pending().await,
            Some(InsertFault::LandThenLoseAnswer) | None => self.inner.insert(record).await,
        }
    }

    async fn mark_published(
        &self,
        event_id: EventId,
        bus_event_id: &str,
        at: Timestamp,
    ) -> Result<(), PortError> {
        self.check("UpdateItem")?;
        self.inner.mark_published(event_id, bus_event_id, at).await
    }

    async fn record_failure(
        &self,
        event_id: EventId,
        error: &str,
        at: Timestamp,
    ) -> Result<Option<FailureHistory>, PortError> {
        self.check("UpdateItem")?;
        self.inner.record_failure(event_id, error, at).await
    }

    async fn mark_dead_lettered(
        &self,
        event_id: EventId,
        reason: &str,
        at: Timestamp,
    ) -> Result<bool, PortError> {
        self.check("UpdateItem")?;
        self.inner.mark_dead_lettered(event_id, reason, at).await
    }

    async fn pending(
        &self,
        cutoff: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, PortError> {
        self.check("Query")?;
        self.inner.pending(cutoff, limit).await
    }

    async fn get(&self, event_id: EventId) -> Result<Option<OutboxRecord>, PortError> {
        self.check("GetItem")?;
        self.inner.get(event_id).await
    }
}

/// A DLQ in memory; `unavailable` makes sends fail.
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    letters: Mutex<Vec<RelayDeadLetter>>,
    pub unavailable: Switch,
}

impl MemoryDeadLetters {
    pub fn letters(&self) -> Vec<RelayDeadLetter> {
        lock(&self.letters).clone()
    }
}

impl DeadLetterSink for MemoryDeadLetters {
    async fn send(&self, letter: &RelayDeadLetter) -> Result<(), PortError> {
        if self.unavailable.is_on() {
            return Err(PortError::transient(
                "SendMessage",
                "ServiceUnavailable",
                "injected: DLQ unavailable",
            ));
        }
        lock(&self.letters).push(letter.clone());
        Ok(())
    }
}

/// Users and processed-events tables in memory, evaluating each case's
/// condition and write atomically under one lock, as a transaction does.
#[derive(Debug, Default)]
pub struct MemoryProfileStore {
    users: Mutex<(BTreeMap<String, UserItem>, HashSet<String>)>,
}

impl MemoryProfileStore {
    pub fn user(&self, user_id: &str) -> Option<UserItem> {
        lock(&self.users).0.get(user_id).cloned()
    }

    /// The specification of the Users table: each event applied once, in
    /// event order. Any delivery order, with duplicates, must end here.
    pub async fn applied_in_order(updates: &[ProfileUpdate]) -> Self {
        let store = Self::default();
        let mut sorted = updates.to_vec();
        sorted.sort_by_key(ProfileUpdate::order_key);
        for update in &sorted {
            crate::profile::apply(&store, update)
                .await
                .expect("the in-memory store never fails");
        }
        store
    }
}

/// A sign-in of `user` at a fixed instant plus `millis`, with the display
/// name `name` and a fresh event id: the unit of the profile laws' tests.
pub fn sign_in(user: &str, millis: i64, name: &str) -> ProfileUpdate {
    let mut event = UserEvent::new(
        UserAction::SignedIn,
        UserId::parse(user).expect("a valid user id"),
        Email::parse(format!("{name}@example.com")).expect("a valid email"),
        Timestamp::from_millis(1_790_000_000_000 + millis).expect("in range"),
    );
    event.detail.display_name = Some(DisplayName::parse(name).expect("a valid name"));
    ProfileUpdate::from_event(&event, None).expect("a minted event id")
}

impl ProfileStore for MemoryProfileStore {
    async fn write(
        &self,
        update: &ProfileUpdate,
        case: WriteCase,
    ) -> Result<WriteOutcome, PortError> {
        let mut guard = lock(&self.users);
        let (users, processed) = &mut *guard;
        if processed.contains(&update.dedupe_id) {
            return Ok(WriteOutcome::Duplicate);
        }
        let current = users.get(update.user_id.as_str());
        if !UserItem::condition_holds(current, update, case) {
            return Ok(WriteOutcome::ConditionFailed);
        }
        let next = UserItem::apply(current.cloned(), update, case, Timestamp::now());
        users.insert(update.user_id.to_string(), next);
        processed.insert(update.dedupe_id.clone());
        Ok(WriteOutcome::Applied)
    }
}
