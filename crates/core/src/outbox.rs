//! The outbox item: the event exactly as it will be published, plus its
//! publish state. One codec serves both the stream's `NewImage` and items
//! read through the SDK, because both are a [`serde_dynamo::Item`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::contract::Timestamp;
use crate::contract::{ContractError, EventId, UserEvent};
use crate::entry::BusEntry;

/// Name of the sparse GSI over unpublished items.
pub const PENDING_INDEX: &str = "pending-by-age";
/// Attribute names the adapters and migrations refer to.
pub const ATTR_EVENT_ID: &str = "eventId";
pub const ATTR_PENDING_SHARD: &str = "pendingShard";
pub const ATTR_CREATED_AT: &str = "createdAt";
pub const ATTR_EXPIRES_AT: &str = "expiresAt";

/// The pending GSI's partition key is spread over this many values, so that
/// a burst of sign-ins does not land on a single GSI partition.
pub const PENDING_SHARDS: u8 = 4;

/// Default outbox retention: far past the stream's 24 h, so the sweep still
/// finds anything the stream never delivered.
pub const DEFAULT_TTL: Duration = Duration::from_hours(14 * 24);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxRecord {
    pub event_id: EventId,
    pub source: String,
    pub detail_type: String,
    /// The exact JSON text that will be published as the entry's `Detail`.
    pub detail: String,
    pub created_at: Timestamp,
    /// Epoch seconds; DynamoDB's TTL attribute.
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<String>,
    /// Present while unpublished; its presence is what puts the item in the
    /// sparse pending index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_shard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus_event_id: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_lettered_at: Option<Timestamp>,
}

/// Why an item could not be read as an outbox record.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the item is not an outbox record: {0}")]
    Shape(#[from] serde_dynamo::Error),
    #[error("the outbox record breaks the contract: {0}")]
    Contract(#[from] ContractError),
}

impl OutboxRecord {
    /// A fresh, pending record for `event`, as the producer writes it.
    pub fn new(
        event: &UserEvent,
        now: Timestamp,
        ttl: Duration,
        trace_header: Option<String>,
    ) -> Self {
        let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        // An event without an id gets one in its detail as well: a key the
        // detail does not carry would make the relay refuse it as poison.
        let (event_id, detail) = if let Some(event_id) = event.detail.event_id {
            (event_id, event.detail_json())
        } else {
            let mut event = event.clone();
            let event_id = *event.detail.event_id.insert(EventId::new());
            (event_id, event.detail_json())
        };
        Self {
            event_id,
            source: event.source().to_owned(),
            detail_type: event.detail_type().to_owned(),
            detail,
            created_at: now,
            expires_at: now.epoch_seconds().saturating_add(ttl_secs),
            trace_header,
            pending_shard: Some(pending_shard_of(event_id)),
            published_at: None,
            bus_event_id: None,
            attempts: 0,
            first_failure_at: None,
            last_error: None,
            dead_lettered_at: None,
        }
    }

    pub fn to_item(&self) -> serde_dynamo::Item {
        serde_dynamo::to_item(self).expect("an OutboxRecord always serialises to an item")
    }

    /// Decodes the item's shape only; see [`OutboxRecord::event`] for the
    /// contract check.
    pub fn from_item(item: serde_dynamo::Item) -> Result<Self, DecodeError> {
        // `serde_dynamo::from_item` rebuilds the map through `Into`, which
        // rehashes every attribute; handing over the map itself does not.
        let map = serde_dynamo::AttributeValue::M(item.into_inner());
        Ok(serde_dynamo::from_attribute_value(map)?)
    }

    /// The event this record carries, checked against the contract.
    pub fn event(&self) -> Result<UserEvent, ContractError> {
        UserEvent::from_parts(&self.source, &self.detail_type, &self.detail)
    }

    /// The event, checked against the contract and against this item's
    /// key: every path that publishes an item (stream, sweep, redrive)
    /// refuses one whose `detail.eventId` is not its key, or consumers would
    /// dedupe it under another event's id.
    pub fn valid_event(&self) -> Result<UserEvent, ContractError> {
        let event = self.event()?;
        if event.detail.event_id != Some(self.event_id) {
            return Err(ContractError::Invalid {
                field: "eventId",
                reason: "differs between the item key and its detail",
            });
        }
        Ok(event)
    }

    /// Decodes and checks the contract in one step, as the relay does.
    pub fn decode_valid(item: serde_dynamo::Item) -> Result<Self, DecodeError> {
        let record = Self::from_item(item)?;
        record.valid_event()?;
        Ok(record)
    }

    pub fn is_pending(&self) -> bool {
        self.pending_shard.is_some()
    }

    pub fn bus_entry(&self) -> BusEntry {
        BusEntry {
            event_id: Some(self.event_id),
            source: self.source.clone(),
            detail_type: self.detail_type.clone(),
            detail: self.detail.clone(),
            trace_header: self.trace_header.clone(),
        }
    }
}

/// Spreads pending items over [`PENDING_SHARDS`] partition keys using the
/// UUIDv7's random tail, so the choice is stable for a given event.
pub fn pending_shard_of(event_id: EventId) -> String {
    let last = event_id.as_uuid().as_bytes()[15];
    format!("p{}", last % PENDING_SHARDS)
}

/// Every value the pending index's partition key can take.
pub fn pending_shards() -> impl Iterator<Item = String> {
    (0..PENDING_SHARDS).map(|shard| format!("p{shard}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Email, UserAction, UserId};

    fn sample() -> OutboxRecord {
        let event = UserEvent::new(
            UserAction::SignedIn,
            UserId::parse("uid-1").expect("valid"),
            Email::parse("a@example.com").expect("valid"),
            Timestamp::parse("2026-11-29T11:46:06.123Z").expect("valid"),
        );
        OutboxRecord::new(
            &event,
            Timestamp::parse("2026-11-29T11:46:06.200Z").expect("valid"),
            DEFAULT_TTL,
            Some("Root=1-5759e988-bd862e3fe1be46a994272793".to_owned()),
        )
    }

    #[test]
    fn a_new_record_is_pending_and_expires_after_its_ttl() {
        let record = sample();
        assert!(record.is_pending());
        assert_eq!(
            record.expires_at - record.created_at.epoch_seconds(),
            14 * 24 * 3600
        );
        assert_eq!(
            record.pending_shard,
            Some(pending_shard_of(record.event_id))
        );
    }

    #[test]
    fn unpublished_state_is_absent_from_the_item() {
        let item = sample().to_item();
        for absent in ["publishedAt", "busEventId", "lastError", "deadLetteredAt"] {
            assert!(!item.contains_key(absent), "{absent} should be absent");
        }
        for present in [
            "eventId",
            "detail",
            "createdAt",
            "expiresAt",
            "pendingShard",
            "traceHeader",
        ] {
            assert!(item.contains_key(present), "{present} should be present");
        }
    }

    #[test]
    fn decode_valid_refuses_a_detail_whose_event_id_differs_from_the_key() {
        let mut record = sample();
        record.event_id = EventId::new();
        assert!(OutboxRecord::decode_valid(record.to_item()).is_err());
    }

    #[test]
    fn an_event_without_an_id_gets_one_that_its_detail_carries_too() {
        let mut event = UserEvent::new(
            UserAction::SignedIn,
            UserId::parse("uid-1").expect("valid"),
            Email::parse("a@example.com").expect("valid"),
            Timestamp::parse("2026-11-29T11:46:06.123Z").expect("valid"),
        );
        event.detail.event_id = None;
        let record = OutboxRecord::new(&event, Timestamp::now(), DEFAULT_TTL, None);
        let decoded = OutboxRecord::decode_valid(record.to_item()).expect("not poison");
        assert_eq!(
            decoded.event().expect("valid").detail.event_id,
            Some(record.event_id)
        );
    }

    #[test]
    fn every_shard_name_is_listed() {
        let shards: Vec<_> = pending_shards().collect();
        for _ in 0..100 {
            assert!(shards.contains(&pending_shard_of(EventId::new())));
        }
    }
}
