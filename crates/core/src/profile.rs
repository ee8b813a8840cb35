//! The Users item as a function of the set of events seen, whatever their
//! order and however often each arrives.
//!
//! Each event is applied by one of four conditional writes, tried in turn
//! until one's condition holds. No write reads first: the condition is the
//! read, evaluated by DynamoDB atomically with the write. Events are ordered
//! by `orderKey = timestamp#dedupeId`: fixed-width UTC timestamps and
//! fixed-width ids compare correctly as strings, and the id breaks ties.

use std::time::Duration;

use backon::Retryable;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::contract::{DisplayName, Email, PhotoUrl, Provider, Timestamp, UserEvent, UserId};
use crate::ports::{PortError, ProfileStore, WriteOutcome};
use crate::retry::FullJitter;

/// How long an idempotency record outlives the outbox TTL plus the DLQ's
/// 14-day retention, so anything still redrivable is still deduplicated.
pub const DEFAULT_PROCESSED_TTL: Duration = Duration::from_hours(35 * 24);

/// One event, reduced to what the Users item needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileUpdate {
    pub user_id: UserId,
    pub dedupe_id: String,
    pub timestamp: Timestamp,
    pub email: Email,
    pub display_name: Option<DisplayName>,
    pub photo_url: Option<PhotoUrl>,
    pub provider: Option<Provider>,
}

impl ProfileUpdate {
    /// `None` when there is no id to deduplicate on.
    pub fn from_event(event: &UserEvent, envelope_id: Option<&str>) -> Option<Self> {
        Some(Self {
            dedupe_id: event.dedupe_id(envelope_id)?,
            user_id: event.detail.user_id.clone(),
            timestamp: event.detail.timestamp,
            email: event.detail.email.clone(),
            display_name: event.detail.display_name.clone(),
            photo_url: event.detail.photo_url.clone(),
            provider: event.detail.provider.clone(),
        })
    }

    pub fn order_key(&self) -> String {
        format!("{}#{}", self.timestamp, self.dedupe_id)
    }
}

/// The four conditional writes. Their conditions are disjoint and, together
/// with "duplicate", cover every state of the Users item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteCase {
    /// The event is newer than any seen: set the latest fields, count.
    /// Condition: `lastEventKey < :key`, or no `lastEventKey` at all (an
    /// item written before this design; its key reads as empty here).
    Newest,
    /// No item yet: create it from this event.
    /// Condition: `attribute_not_exists(userId)`.
    FirstSignIn,
    /// Older than the latest and older than `createdAt`: lower `createdAt`,
    /// count. Condition: `lastEventKey >= :key AND createdAt > :ts`.
    Earliest,
    /// Older than the latest, not the earliest: count only.
    /// Condition: `lastEventKey >= :key AND createdAt <= :ts`.
    Older,
}

impl WriteCase {
    /// The order to try: the common case (a returning user signing in now)
    /// succeeds on the first write.
    pub const ORDER: [WriteCase; 4] = [
        WriteCase::Newest,
        WriteCase::FirstSignIn,
        WriteCase::Earliest,
        WriteCase::Older,
    ];
}

/// The Users item, as stored. Attribute names are the seed's, plus the
/// bookkeeping this design adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserItem {
    pub user_id: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(rename = "photoURL", default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub created_at: String,
    pub last_login_date: String,
    pub sign_in_count: u64,
    pub last_event_id: String,
    pub last_event_key: String,
    pub updated_at: String,
}

impl UserItem {
    /// Whether `case`'s condition holds on `current` for `update`: the
    /// reference semantics the DynamoDB expressions implement.
    pub fn condition_holds(
        current: Option<&UserItem>,
        update: &ProfileUpdate,
        case: WriteCase,
    ) -> bool {
        let key = update.order_key();
        let ts = update.timestamp.to_string();
        match (case, current) {
            (WriteCase::FirstSignIn, None) => true,
            (WriteCase::Newest, Some(item)) => item.last_event_key < key,
            (WriteCase::Earliest, Some(item)) => item.last_event_key >= key && item.created_at > ts,
            (WriteCase::Older, Some(item)) => item.last_event_key >= key && item.created_at <= ts,
            _ => false,
        }
    }

    /// The item after `case` is applied; the reference for the adapter's
    /// update expressions.
    pub fn apply(
        current: Option<UserItem>,
        update: &ProfileUpdate,
        case: WriteCase,
        now: Timestamp,
    ) -> UserItem {
        let ts = update.timestamp.to_string();
        let latest = |created_at: String, count: u64| UserItem {
            user_id: update.user_id.to_string(),
            email: update.email.to_string(),
            display_name: update.display_name.as_ref().map(ToString::to_string),
            photo_url: update.photo_url.as_ref().map(ToString::to_string),
            provider: update.provider.as_ref().map(ToString::to_string),
            created_at,
            last_login_date: ts.clone(),
            sign_in_count: count,
            last_event_id: update.dedupe_id.clone(),
            last_event_key: update.order_key(),
            updated_at: now.to_string(),
        };
        match (case, current) {
            (WriteCase::FirstSignIn, _) | (_, None) => latest(ts.clone(), 1),
            (WriteCase::Newest, Some(item)) => latest(item.created_at, item.sign_in_count + 1),
            (WriteCase::Earliest, Some(item)) => UserItem {
                created_at: ts.clone(),
                sign_in_count: item.sign_in_count + 1,
                updated_at: now.to_string(),
                ..item
            },
            (WriteCase::Older, Some(item)) => UserItem {
                sign_in_count: item.sign_in_count + 1,
                updated_at: now.to_string(),
                ..item
            },
        }
    }
}

/// The result of applying one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The event created the user: the welcome e-mail's hook.
    FirstSignIn,
    Updated(WriteCase),
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] PortError),
    /// Every case's condition failed repeatedly: concurrent writers kept
    /// moving the item. Retryable: the next attempt sees a settled item.
    #[error("no conditional write applied after {0} rounds of concurrent changes")]
    Contended(usize),
}

impl ApplyError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ApplyError::Store(error) => error.is_retryable(),
            ApplyError::Contended(_) => true,
        }
    }
}

const ROUNDS: usize = 5;

/// Applies `update` exactly once, whatever was applied before.
pub async fn apply<S: ProfileStore>(
    store: &S,
    update: &ProfileUpdate,
) -> Result<Applied, ApplyError> {
    for _ in 0..ROUNDS {
        for case in WriteCase::ORDER {
            match store.write(update, case).await? {
                WriteOutcome::Applied if case == WriteCase::FirstSignIn => {
                    return Ok(Applied::FirstSignIn);
                }
                WriteOutcome::Applied => return Ok(Applied::Updated(case)),
                WriteOutcome::Duplicate => return Ok(Applied::Duplicate),
                WriteOutcome::ConditionFailed => {}
            }
        }
    }
    Err(ApplyError::Contended(ROUNDS))
}

/// [`apply`] with throttling, transaction conflicts and contention retried
/// with backoff and full jitter; what is left is returned for Lambda to
/// retry the event.
pub async fn apply_with_retries<S: ProfileStore>(
    store: &S,
    update: &ProfileUpdate,
    backoff: FullJitter,
) -> Result<Applied, ApplyError> {
    (|| apply(store, update))
        .retry(backoff)
        .when(ApplyError::is_retryable)
        .notify(|error, delay| info!(error = %error, ?delay, "retrying profile write"))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MemoryProfileStore, sign_in as update};
    use proptest::prelude::*;

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn the_first_event_creates_the_user_and_says_so() {
        let store = MemoryProfileStore::default();
        let applied = block_on(apply(&store, &update("u1", 0, "ann")));
        assert_eq!(applied.expect("applied"), Applied::FirstSignIn);
        assert_eq!(store.user("u1").expect("created").sign_in_count, 1);
    }

    #[test]
    fn a_duplicate_changes_nothing_and_succeeds() {
        let store = MemoryProfileStore::default();
        let first = update("u1", 0, "ann");
        block_on(apply(&store, &first)).expect("applied");
        let before = store.user("u1");
        assert_eq!(
            block_on(apply(&store, &first)).expect("ok"),
            Applied::Duplicate
        );
        assert_eq!(store.user("u1"), before);
    }

    #[test]
    fn an_older_event_counts_and_lowers_created_at_but_never_overwrites_newer_fields() {
        let store = MemoryProfileStore::default();
        let newer = update("u1", 1_000, "new");
        let older = update("u1", 0, "old");
        block_on(apply(&store, &newer)).expect("applied");
        assert_eq!(
            block_on(apply(&store, &older)).expect("applied"),
            Applied::Updated(WriteCase::Earliest)
        );
        let user = store.user("u1").expect("exists");
        assert_eq!(user.sign_in_count, 2);
        assert_eq!(user.created_at, older.timestamp.to_string());
        assert_eq!(user.last_login_date, newer.timestamp.to_string());
        assert_eq!(user.display_name.as_deref(), Some("new"));
    }

    fn without_clock(item: UserItem) -> UserItem {
        UserItem {
            updated_at: String::new(),
            ..item
        }
    }

    #[test]
    fn eight_concurrent_appliers_converge() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_time()
            .build()
            .expect("runtime");
        let updates: Vec<_> = (0..24i64)
            .map(|i| {
                update(
                    ["ann", "bob"][usize::try_from(i % 2).unwrap_or(0)],
                    (i * 7) % 30,
                    &format!("c{i}"),
                )
            })
            .collect();
        let store = std::sync::Arc::new(MemoryProfileStore::default());
        runtime.block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|task| {
                    let store = store.clone();
                    let mine: Vec<_> = updates.iter().skip(task).step_by(3).cloned().collect();
                    tokio::spawn(async move {
                        for u in mine {
                            apply(&*store, &u).await.expect("applied");
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("task finished");
            }
        });
        let reference = block_on(MemoryProfileStore::applied_in_order(&updates));
        for user in ["ann", "bob"] {
            assert_eq!(
                store.user(user).map(without_clock),
                reference.user(user).map(without_clock)
            );
        }
    }

    proptest! {
        #[test]
        fn any_order_with_any_duplicates_gives_the_timestamp_order_result(
            events in prop::collection::vec((0usize..3, 0i64..50), 1..20),
            order in prop::collection::vec(any::<prop::sample::Index>(), 1..40),
        ) {
            let users = ["a", "b", "c"];
            let updates: Vec<_> = events
                .iter()
                .enumerate()
                .map(|(i, (user, millis))| update(users[*user], *millis, &format!("n{i}")))
                .collect();

            let reference = block_on(MemoryProfileStore::applied_in_order(&updates));

            let shuffled = MemoryProfileStore::default();
            for pick in &order {
                block_on(apply(&shuffled, pick.get(&updates))).expect("applied");
            }
            for u in &updates {
                block_on(apply(&shuffled, u)).expect("applied");
            }

            for user in users {
                prop_assert_eq!(
                    shuffled.user(user).map(without_clock),
                    reference.user(user).map(without_clock)
                );
            }
        }
    }
}
