//! The DynamoDB adapter of [`ProfileStore`]: one `TransactWriteItems` per
//! attempt, pairing the idempotency record with the conditional Users
//! update, so an event is applied exactly when its record is written.

use std::collections::HashMap;
use std::time::Duration;

use auth_events_core::contract::Timestamp;
use auth_events_core::ports::{PortError, ProfileStore, WriteOutcome};
use auth_events_core::profile::{ProfileUpdate, WriteCase};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use crate::errors::{classify, code_is_retryable};

#[derive(Debug, Clone)]
pub struct DynamoProfileStore {
    client: aws_sdk_dynamodb::Client,
    users_table: String,
    processed_table: String,
    processed_ttl: Duration,
}

/// The parts of one Users update: expressions plus exactly the values they
/// use (DynamoDB refuses unused values).
#[derive(Debug, Default, PartialEq)]
pub struct UsersUpdate {
    pub condition: &'static str,
    pub update: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// Builds the expressions for `case`; the semantics are
/// [`auth_events_core::profile::UserItem::apply`]'s, under its conditions.
pub fn users_update(update: &ProfileUpdate, case: WriteCase, now: Timestamp) -> UsersUpdate {
    let mut set = vec!["updatedAt = :now"];
    let mut remove = Vec::new();
    let mut add = None;
    let mut values = HashMap::from([(":now".to_owned(), s(now.to_string()))]);
    let mut names = HashMap::new();
    let one = || AttributeValue::N("1".to_owned());

    let condition = match case {
        WriteCase::FirstSignIn => "attribute_not_exists(userId)",
        // An item written before this design (the seed's) has no
        // lastEventKey: the next event is the newest we know of.
        WriteCase::Newest => {
            "attribute_exists(userId) AND (attribute_not_exists(lastEventKey) OR lastEventKey < :key)"
        }
        WriteCase::Earliest => "lastEventKey >= :key AND createdAt > :ts",
        WriteCase::Older => "lastEventKey >= :key AND createdAt <= :ts",
    };
    values.insert(":key".to_owned(), s(update.order_key()));
    match case {
        WriteCase::FirstSignIn | WriteCase::Newest => {
            set.extend([
                "email = :email",
                "lastLoginDate = :ts",
                "lastEventId = :id",
                "lastEventKey = :key",
            ]);
            // The optional fields share one path, so all three go through
            // attribute names even though only some are reserved words.
            let optional = [
                (
                    "displayName",
                    ":name",
                    update.display_name.as_ref().map(ToString::to_string),
                ),
                (
                    "photoURL",
                    ":photo",
                    update.photo_url.as_ref().map(ToString::to_string),
                ),
                (
                    "provider",
                    ":provider",
                    update.provider.as_ref().map(ToString::to_string),
                ),
            ];
            for (attribute, placeholder, value) in optional {
                let name = format!("#{attribute}");
                match value {
                    Some(value) => {
                        values.insert(placeholder.to_owned(), s(value));
                        set.push(match attribute {
                            "displayName" => "#displayName = :name",
                            "photoURL" => "#photoURL = :photo",
                            _ => "#provider = :provider",
                        });
                    }
                    None if case == WriteCase::Newest => remove.push(name.clone()),
                    None => continue,
                }
                names.insert(name, attribute.to_owned());
            }
            values.insert(":email".to_owned(), s(update.email.to_string()));
            values.insert(":ts".to_owned(), s(update.timestamp.to_string()));
            values.insert(":id".to_owned(), s(update.dedupe_id.clone()));
            if case == WriteCase::FirstSignIn {
                set.extend(["createdAt = :ts", "signInCount = :one"]);
                values.insert(":one".to_owned(), one());
            } else {
                add = Some("signInCount :one");
                values.insert(":one".to_owned(), one());
            }
        }
        WriteCase::Earliest => {
            set.push("createdAt = :ts");
            values.insert(":ts".to_owned(), s(update.timestamp.to_string()));
            add = Some("signInCount :one");
            values.insert(":one".to_owned(), one());
        }
        WriteCase::Older => {
            values.insert(":ts".to_owned(), s(update.timestamp.to_string()));
            add = Some("signInCount :one");
            values.insert(":one".to_owned(), one());
        }
    }
    let mut clauses = vec![format!("SET {}", set.join(", "))];
    clauses.extend(add.map(|add| format!("ADD {add}")));
    if !remove.is_empty() {
        clauses.push(format!("REMOVE {}", remove.join(", ")));
    }
    let expression = clauses.join(" ");
    UsersUpdate {
        condition,
        update: expression,
        names,
        values,
    }
}

impl DynamoProfileStore {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        users_table: impl Into<String>,
        processed_table: impl Into<String>,
        processed_ttl: Duration,
    ) -> Self {
        Self {
            client,
            users_table: users_table.into(),
            processed_table: processed_table.into(),
            processed_ttl,
        }
    }

    fn processed_record(
        &self,
        update: &ProfileUpdate,
        now: Timestamp,
    ) -> Result<TransactWriteItem, PortError> {
        let ttl = i64::try_from(self.processed_ttl.as_secs()).unwrap_or(i64::MAX);
        let put = Put::builder()
            .table_name(&self.processed_table)
            .item("eventId", s(update.dedupe_id.clone()))
            .item("userId", s(update.user_id.to_string()))
            .item("processedAt", s(now.to_string()))
            .item(
                "expiresAt",
                AttributeValue::N(now.epoch_seconds().saturating_add(ttl).to_string()),
            )
            .condition_expression("attribute_not_exists(eventId)")
            .build()
            .map_err(|e| PortError::permanent("TransactWriteItems", "Build", e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn users_write(
        &self,
        update: &ProfileUpdate,
        case: WriteCase,
        now: Timestamp,
    ) -> Result<TransactWriteItem, PortError> {
        let parts = users_update(update, case, now);
        let builder = Update::builder()
            .table_name(&self.users_table)
            .key("userId", s(update.user_id.to_string()))
            .update_expression(parts.update)
            .condition_expression(parts.condition)
            .set_expression_attribute_values(Some(parts.values));
        let builder = if parts.names.is_empty() {
            builder
        } else {
            builder.set_expression_attribute_names(Some(parts.names))
        };
        let update = builder
            .build()
            .map_err(|e| PortError::permanent("TransactWriteItems", "Build", e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

impl ProfileStore for DynamoProfileStore {
    async fn write(
        &self,
        update: &ProfileUpdate,
        case: WriteCase,
    ) -> Result<WriteOutcome, PortError> {
        let now = Timestamp::now();
        let result = self
            .client
            .transact_write_items()
            .transact_items(self.processed_record(update, now)?)
            .transact_items(self.users_write(update, case, now)?)
            .send()
            .await;
        let Err(error) = result else {
            return Ok(WriteOutcome::Applied);
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            error.as_service_error()
        {
            let codes: Vec<&str> = cancelled
                .cancellation_reasons()
                .iter()
                .map(|reason| reason.code().unwrap_or("None"))
                .collect();
            match codes.as_slice() {
                ["ConditionalCheckFailed", ..] => return Ok(WriteOutcome::Duplicate),
                [_, "ConditionalCheckFailed"] => return Ok(WriteOutcome::ConditionFailed),
                reasons => {
                    if let Some(code) = reasons.iter().find(|code| code_is_retryable(code)) {
                        return Err(PortError::transient(
                            "TransactWriteItems",
                            *code,
                            format!("cancelled: {reasons:?}"),
                        ));
                    }
                }
            }
        }
        Err(classify("TransactWriteItems", error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_events_core::contract::{Email, UserAction, UserEvent, UserId};

    fn update(with_name: bool) -> ProfileUpdate {
        let mut event = UserEvent::new(
            UserAction::SignedIn,
            UserId::parse("u1").expect("valid"),
            Email::parse("a@example.com").expect("valid"),
            Timestamp::now(),
        );
        if with_name {
            event.detail.display_name =
                Some(auth_events_core::contract::DisplayName::parse("Ann").expect("valid"));
        }
        ProfileUpdate::from_event(&event, None).expect("has an id")
    }

    /// DynamoDB refuses a value or a name the expressions do not use.
    fn assert_every_placeholder_is_used(parts: &UsersUpdate) {
        let text = format!("{} {}", parts.update, parts.condition);
        for placeholder in parts.values.keys().chain(parts.names.keys()) {
            assert!(
                text.contains(placeholder.as_str()),
                "{placeholder} unused in {text}"
            );
        }
    }

    #[test]
    fn every_case_uses_exactly_the_values_it_declares() {
        for case in WriteCase::ORDER {
            for with_name in [true, false] {
                let parts = users_update(&update(with_name), case, Timestamp::now());
                assert_every_placeholder_is_used(&parts);
            }
        }
    }

    #[test]
    fn the_newest_event_removes_profile_fields_it_does_not_carry() {
        let parts = users_update(&update(false), WriteCase::Newest, Timestamp::now());
        assert!(
            parts
                .update
                .contains("REMOVE #displayName, #photoURL, #provider"),
            "{}",
            parts.update
        );
        let first = users_update(&update(false), WriteCase::FirstSignIn, Timestamp::now());
        assert!(!first.update.contains("REMOVE"));
    }
}
