//! The DynamoDB adapter of [`OutboxStore`].

use std::collections::HashMap;

use auth_events_core::contract::{EventId, Timestamp};
use auth_events_core::outbox::{
    ATTR_CREATED_AT, ATTR_EVENT_ID, ATTR_PENDING_SHARD, OutboxRecord, PENDING_INDEX, pending_shards,
};
use auth_events_core::ports::{FailureHistory, Inserted, OutboxStore, PortError};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use crate::errors::classify;

pub type SdkItem = HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct DynamoOutbox {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn decode(operation: &'static str, item: SdkItem) -> Result<OutboxRecord, PortError> {
    OutboxRecord::from_item(item.into())
        .map_err(|e| PortError::permanent(operation, "UndecodableItem", e.to_string()))
}

impl DynamoOutbox {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(event_id: EventId) -> SdkItem {
        HashMap::from([(ATTR_EVENT_ID.to_owned(), s(event_id.to_string()))])
    }

    /// An update of an item that must already exist: a missing item means
    /// the record expired or was never written, which the caller logs.
    async fn update_existing(
        &self,
        event_id: EventId,
        expression: &str,
        values: SdkItem,
        returns: ReturnValue,
    ) -> Result<Option<SdkItem>, PortError> {
        self.update_if(
            event_id,
            expression,
            "attribute_exists(eventId)",
            values,
            returns,
        )
        .await
        .map_err(|e| classify("UpdateItem", e))
    }

    /// `update_existing` on an item still in the pending index: the
    /// returned attributes (empty unless asked for), or `None` when the item
    /// is there but no longer pending, so the caller can tell "already
    /// handled" from "missing", which stays an error.
    async fn update_pending(
        &self,
        event_id: EventId,
        expression: &str,
        values: SdkItem,
        returns: ReturnValue,
    ) -> Result<Option<SdkItem>, PortError> {
        let condition = format!("attribute_exists({ATTR_PENDING_SHARD})");
        match self
            .update_if(event_id, expression, &condition, values, returns)
            .await
        {
            Ok(attributes) => Ok(Some(attributes.unwrap_or_default())),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                match self.get(event_id).await? {
                    Some(_) => Ok(None),
                    None => Err(classify("UpdateItem", error)),
                }
            }
            Err(error) => Err(classify("UpdateItem", error)),
        }
    }

    async fn update_if(
        &self,
        event_id: EventId,
        expression: &str,
        condition: &str,
        values: SdkItem,
        returns: ReturnValue,
    ) -> Result<Option<SdkItem>, SdkError<UpdateItemError, HttpResponse>> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(event_id)))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .return_values(returns)
            .send()
            .await?;
        Ok(output.attributes)
    }

    /// Up to `limit` pending items of one shard of the pending index,
    /// oldest first, created before `cutoff`.
    async fn pending_in_shard(
        &self,
        shard: String,
        cutoff: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, PortError> {
        let mut records = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PENDING_INDEX)
            .key_condition_expression("#shard = :shard AND #created < :cutoff")
            .expression_attribute_names("#shard", ATTR_PENDING_SHARD)
            .expression_attribute_names("#created", ATTR_CREATED_AT)
            .expression_attribute_values(":shard", s(shard))
            .expression_attribute_values(":cutoff", s(cutoff.to_string()))
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .into_paginator()
            .items()
            .send();
        let mut taken = 0;
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| classify("Query", e))?;
            let key = item.get(ATTR_EVENT_ID).and_then(|v| v.as_s().ok()).cloned();
            match decode("Query", item) {
                Ok(record) => records.push(record),
                // One unreadable item must not stop the sweep for all
                // the others; the stream path dead-letters it with its
                // raw image. Only the key is logged: decoder messages
                // can quote attribute values, and the item holds an
                // email.
                Err(_) => {
                    tracing::warn!(event_id = ?key, "skipping an undecodable pending outbox item");
                }
            }
            taken += 1;
            if taken >= limit {
                break;
            }
        }
        Ok(records)
    }
}

impl OutboxStore for DynamoOutbox {
    async fn insert(&self, record: &OutboxRecord) -> Result<Inserted, PortError> {
        let item: SdkItem = record.to_item().into();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(eventId)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Inserted::New),
            // The event id is minted per sign-in, so an existing item can
            // only be our own earlier attempt that landed before a retry.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(aws_sdk_dynamodb::operation::put_item::PutItemError::is_conditional_check_failed_exception) =>
            {
                Ok(Inserted::AlreadyThere)
            }
            Err(error) => Err(classify("PutItem", error)),
        }
    }

    async fn mark_published(
        &self,
        event_id: EventId,
        bus_event_id: &str,
        at: Timestamp,
    ) -> Result<(), PortError> {
        let values = HashMap::from([
            (":at".to_owned(), s(at.to_string())),
            (":bus".to_owned(), s(bus_event_id)),
        ]);
        self.update_existing(
            event_id,
            "SET publishedAt = :at, busEventId = :bus REMOVE pendingShard",
            values,
            ReturnValue::None,
        )
        .await?;
        Ok(())
    }

    async fn record_failure(
        &self,
        event_id: EventId,
        error: &str,
        at: Timestamp,
    ) -> Result<Option<FailureHistory>, PortError> {
        let values = HashMap::from([
            (":err".to_owned(), s(error)),
            (":at".to_owned(), s(at.to_string())),
            (":one".to_owned(), AttributeValue::N("1".to_owned())),
        ]);
        let Some(attributes) = self
            .update_pending(
                event_id,
                "SET lastError = :err, firstFailureAt = if_not_exists(firstFailureAt, :at) ADD attempts :one",
                values,
                ReturnValue::AllNew,
            )
            .await?
        else {
            return Ok(None);
        };
        let record = decode("UpdateItem", attributes)?;
        Ok(Some(FailureHistory {
            attempts: record.attempts,
            first_failure_at: record.first_failure_at.unwrap_or(at),
        }))
    }

    async fn mark_dead_lettered(
        &self,
        event_id: EventId,
        reason: &str,
        at: Timestamp,
    ) -> Result<bool, PortError> {
        let values = HashMap::from([
            (":at".to_owned(), s(at.to_string())),
            (":why".to_owned(), s(reason)),
        ]);
        let marked = self
            .update_pending(
                event_id,
                "SET deadLetteredAt = :at, lastError = :why REMOVE pendingShard",
                values,
                ReturnValue::None,
            )
            .await?;
        Ok(marked.is_some())
    }

    async fn pending(
        &self,
        cutoff: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, PortError> {
        // The shards at once: one after another they were four round trips
        // of the sweep's deadline.
        let shards = futures_util::future::try_join_all(
            pending_shards().map(|shard| self.pending_in_shard(shard, cutoff, limit)),
        )
        .await?;
        let mut records: Vec<OutboxRecord> = shards.into_iter().flatten().collect();
        records.sort_by_key(|r| r.created_at);
        records.truncate(limit);
        Ok(records)
    }

    async fn get(&self, event_id: EventId) -> Result<Option<OutboxRecord>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(event_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        output.item.map(|item| decode("GetItem", item)).transpose()
    }
}
