//! Declarative table migrations and the local stack's messaging resources.
//!
//! Applying is additive and idempotent: it creates what is missing, enables
//! streams and TTL, adds missing GSIs, and reports each change. It never
//! deletes or rewrites anything, so running it twice changes nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use auth_events_core::contract::SOURCE;
use auth_events_core::limits;
use auth_events_core::ports::PortError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus,
};
use serde::Deserialize;

use crate::errors::classify;

/// The migration files, embedded so the binary carries its schema.
pub const MIGRATIONS: [(&str, &str); 3] = [
    (
        "0001_outbox.json",
        include_str!("../../../migrations/0001_outbox.json"),
    ),
    (
        "0002_users.json",
        include_str!("../../../migrations/0002_users.json"),
    ),
    (
        "0003_processed_events.json",
        include_str!("../../../migrations/0003_processed_events.json"),
    ),
];

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeyAttribute {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexDefinition {
    pub name: String,
    pub hash_key: KeyAttribute,
    #[serde(default)]
    pub range_key: Option<KeyAttribute>,
    pub projection: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TableMigration {
    pub version: u32,
    pub description: String,
    pub table: String,
    pub hash_key: KeyAttribute,
    #[serde(default)]
    pub range_key: Option<KeyAttribute>,
    #[serde(default)]
    pub stream: Option<String>,
    #[serde(default)]
    pub ttl_attribute: Option<String>,
    #[serde(default)]
    pub global_secondary_indexes: Vec<IndexDefinition>,
}

/// The desired state of every table: the latest migration of each.
pub fn desired_tables() -> Result<BTreeMap<String, TableMigration>, String> {
    let mut tables = BTreeMap::new();
    let mut last_version = 0;
    for (file, text) in MIGRATIONS {
        let migration: TableMigration =
            serde_json::from_str(text).map_err(|e| format!("migrations/{file}: {e}"))?;
        if migration.version <= last_version {
            return Err(format!(
                "migrations/{file}: version {} is not increasing",
                migration.version
            ));
        }
        last_version = migration.version;
        tables.insert(migration.table.clone(), migration);
    }
    Ok(tables)
}

/// Resource names for one deployment prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub prefix: String,
    pub bus: String,
    pub rule: String,
    pub dlq: String,
    /// The local stand-in for the rule's Lambda target: an SQS queue.
    pub target_queue: String,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "invalid prefix {0:?}: use at most 40 letters, digits, '-' or '_' (e.g. --prefix meeting-recorder-dev-)"
)]
pub struct InvalidPrefix(pub String);

impl Names {
    /// SQS queue names allow the narrowest character set of all the names
    /// derived from the prefix, so the prefix follows it.
    pub fn for_prefix(prefix: &str) -> Result<Self, InvalidPrefix> {
        let valid = prefix.len() <= 40
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(InvalidPrefix(prefix.to_owned()));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            bus: format!("{prefix}auth-events"),
            rule: format!("{prefix}user-signed-in"),
            dlq: format!("{prefix}auth-events-dlq"),
            target_queue: format!("{prefix}profile-target"),
        })
    }

    pub fn table(&self, logical: &str) -> String {
        format!("{}{logical}", self.prefix)
    }

    pub fn outbox_table(&self) -> String {
        self.table("outbox")
    }

    pub fn users_table(&self) -> String {
        self.table("users")
    }

    pub fn processed_table(&self) -> String {
        self.table("processed-events")
    }
}

/// One thing `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    CreatedTable(String),
    EnabledStream(String),
    EnabledTtl { table: String, attribute: String },
    AddedIndex { table: String, index: String },
    CreatedBus(String),
    CreatedRule(String),
    CreatedQueue(String),
    AddedTarget { rule: String, queue: String },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreatedTable(t) => write!(f, "created table {t}"),
            Change::EnabledStream(t) => write!(f, "enabled stream (NEW_IMAGE) on {t}"),
            Change::EnabledTtl { table, attribute } => {
                write!(f, "enabled TTL on {table}.{attribute}")
            }
            Change::AddedIndex { table, index } => write!(f, "added index {index} to {table}"),
            Change::CreatedBus(b) => write!(f, "created event bus {b}"),
            Change::CreatedRule(r) => write!(f, "created rule {r}"),
            Change::CreatedQueue(q) => write!(f, "created queue {q}"),
            Change::AddedTarget { rule, queue } => write!(f, "added target {queue} to rule {rule}"),
        }
    }
}

#[derive(Debug)]
pub struct Migrator {
    dynamodb: aws_sdk_dynamodb::Client,
    events: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    names: Names,
}

fn key_type(kind: &str) -> ScalarAttributeType {
    match kind {
        "N" => ScalarAttributeType::N,
        "B" => ScalarAttributeType::B,
        _ => ScalarAttributeType::S,
    }
}

fn key_schema(
    hash: &KeyAttribute,
    range: Option<&KeyAttribute>,
) -> Result<Vec<KeySchemaElement>, PortError> {
    let build = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| PortError::permanent("CreateTable", "Build", e.to_string()))
    };
    let mut schema = vec![build(&hash.name, KeyType::Hash)?];
    if let Some(range) = range {
        schema.push(build(&range.name, KeyType::Range)?);
    }
    Ok(schema)
}

fn attribute_definitions<'a>(
    keys: impl Iterator<Item = &'a KeyAttribute>,
) -> Result<Vec<AttributeDefinition>, PortError> {
    let unique: BTreeMap<&str, &str> = keys.map(|k| (k.name.as_str(), k.kind.as_str())).collect();
    unique
        .into_iter()
        .map(|(name, kind)| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(key_type(kind))
                .build()
                .map_err(|e| PortError::permanent("CreateTable", "Build", e.to_string()))
        })
        .collect()
}

fn all_keys(table: &TableMigration) -> impl Iterator<Item = &KeyAttribute> {
    std::iter::once(&table.hash_key)
        .chain(table.range_key.as_ref())
        .chain(
            table
                .global_secondary_indexes
                .iter()
                .flat_map(|i| std::iter::once(&i.hash_key).chain(i.range_key.as_ref())),
        )
}

fn index(definition: &IndexDefinition) -> Result<GlobalSecondaryIndex, PortError> {
    let projection = Projection::builder()
        .projection_type(ProjectionType::from(definition.projection.as_str()))
        .build();
    GlobalSecondaryIndex::builder()
        .index_name(&definition.name)
        .set_key_schema(Some(key_schema(
            &definition.hash_key,
            definition.range_key.as_ref(),
        )?))
        .projection(projection)
        .build()
        .map_err(|e| PortError::permanent("CreateTable", "Build", e.to_string()))
}

fn stream_spec(view: &str) -> Result<StreamSpecification, PortError> {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::from(view))
        .build()
        .map_err(|e| PortError::permanent("UpdateTable", "Build", e.to_string()))
}

impl Migrator {
    pub fn new(sdk: &aws_config::SdkConfig, names: Names) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            events: aws_sdk_eventbridge::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            names,
        }
    }

    /// Brings every table to its latest migration.
    pub async fn apply_tables(&self) -> Result<Vec<Change>, PortError> {
        let desired =
            desired_tables().map_err(|e| PortError::permanent("Migrate", "InvalidMigration", e))?;
        let mut changes = Vec::new();
        for table in desired.values() {
            self.apply_table(table, &mut changes).await?;
        }
        Ok(changes)
    }

    async fn apply_table(
        &self,
        table: &TableMigration,
        changes: &mut Vec<Change>,
    ) -> Result<(), PortError> {
        let name = self.names.table(&table.table);
        let described = self
            .dynamodb
            .describe_table()
            .table_name(&name)
            .send()
            .await;
        let existing = match described {
            Ok(output) => output.table,
            Err(error) if error.as_service_error().is_some_and(aws_sdk_dynamodb::operation::describe_table::DescribeTableError::is_resource_not_found_exception) => None,
            Err(error) => return Err(classify("DescribeTable", error)),
        };
        match existing {
            None => {
                let indexes: Vec<_> = table
                    .global_secondary_indexes
                    .iter()
                    .map(index)
                    .collect::<Result<_, _>>()?;
                self.dynamodb
                    .create_table()
                    .table_name(&name)
                    .set_key_schema(Some(key_schema(&table.hash_key, table.range_key.as_ref())?))
                    .set_attribute_definitions(Some(attribute_definitions(all_keys(table))?))
                    .billing_mode(BillingMode::PayPerRequest)
                    .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
                    .set_stream_specification(table.stream.as_deref().map(stream_spec).transpose()?)
                    .send()
                    .await
                    .map_err(|e| classify("CreateTable", e))?;
                changes.push(Change::CreatedTable(name.clone()));
                self.wait_active(&name).await?;
            }
            Some(description) => {
                let stream_on = description
                    .stream_specification()
                    .is_some_and(StreamSpecification::stream_enabled);
                if let (Some(view), false) = (&table.stream, stream_on) {
                    self.dynamodb
                        .update_table()
                        .table_name(&name)
                        .stream_specification(stream_spec(view)?)
                        .send()
                        .await
                        .map_err(|e| classify("UpdateTable", e))?;
                    changes.push(Change::EnabledStream(name.clone()));
                    self.wait_active(&name).await?;
                }
                let present: Vec<&str> = description
                    .global_secondary_indexes()
                    .iter()
                    .filter_map(|i| i.index_name())
                    .collect();
                for missing in table
                    .global_secondary_indexes
                    .iter()
                    .filter(|i| !present.contains(&i.name.as_str()))
                {
                    let gsi = index(missing)?;
                    let action = CreateGlobalSecondaryIndexAction::builder()
                        .index_name(gsi.index_name())
                        .set_key_schema(Some(gsi.key_schema().to_vec()))
                        .set_projection(gsi.projection().cloned())
                        .build()
                        .map_err(|e| PortError::permanent("UpdateTable", "Build", e.to_string()))?;
                    self.dynamodb
                        .update_table()
                        .table_name(&name)
                        .set_attribute_definitions(Some(attribute_definitions(all_keys(table))?))
                        .global_secondary_index_updates(
                            GlobalSecondaryIndexUpdate::builder().create(action).build(),
                        )
                        .send()
                        .await
                        .map_err(|e| classify("UpdateTable", e))?;
                    changes.push(Change::AddedIndex {
                        table: name.clone(),
                        index: missing.name.clone(),
                    });
                    self.wait_active(&name).await?;
                }
            }
        }
        if let Some(attribute) = &table.ttl_attribute {
            self.ensure_ttl(&name, attribute, changes).await?;
        }
        Ok(())
    }

    async fn ensure_ttl(
        &self,
        table: &str,
        attribute: &str,
        changes: &mut Vec<Change>,
    ) -> Result<(), PortError> {
        let current = self
            .dynamodb
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| classify("DescribeTimeToLive", e))?;
        let description = current.time_to_live_description();
        let enabled = description.is_some_and(|d| {
            matches!(
                d.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            ) && d.attribute_name() == Some(attribute)
        });
        if enabled {
            return Ok(());
        }
        let specification = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(attribute)
            .build()
            .map_err(|e| PortError::permanent("UpdateTimeToLive", "Build", e.to_string()))?;
        self.dynamodb
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(specification)
            .send()
            .await
            .map_err(|e| classify("UpdateTimeToLive", e))?;
        changes.push(Change::EnabledTtl {
            table: table.to_owned(),
            attribute: attribute.to_owned(),
        });
        Ok(())
    }

    /// Polls until the table is ACTIVE; on AWS creation takes seconds and
    /// TTL cannot be enabled before.
    async fn wait_active(&self, table: &str) -> Result<(), PortError> {
        let deadline = tokio::time::Instant::now() + Duration::from_mins(2);
        loop {
            let output = self
                .dynamodb
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| classify("DescribeTable", e))?;
            let table_active =
                output.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active);
            let indexes_active = output.table().is_none_or(|t| {
                t.global_secondary_indexes()
                    .iter()
                    .all(|i| i.index_status().is_none_or(|s| s.as_str() == "ACTIVE"))
            });
            if table_active && indexes_active {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(PortError::transient(
                    "DescribeTable",
                    "NotActive",
                    format!("{table} is not ACTIVE after 120 s"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The local stack's bus, `user.signed_in` rule, the rule's SQS target
    /// (standing in for the profile Lambda) and the DLQ. On AWS, Terraform
    /// owns these.
    pub async fn apply_messaging(&self) -> Result<Vec<Change>, PortError> {
        let mut changes = Vec::new();
        let names = &self.names;
        let bus_exists = match self.events.describe_event_bus().name(&names.bus).send().await {
            Ok(_) => true,
            Err(error) if error.as_service_error().is_some_and(aws_sdk_eventbridge::operation::describe_event_bus::DescribeEventBusError::is_resource_not_found_exception) => false,
            Err(error) => return Err(classify("DescribeEventBus", error)),
        };
        if !bus_exists {
            self.events
                .create_event_bus()
                .name(&names.bus)
                .send()
                .await
                .map_err(|e| classify("CreateEventBus", e))?;
            changes.push(Change::CreatedBus(names.bus.clone()));
        }
        let rule_exists = match self.events.describe_rule().name(&names.rule).event_bus_name(&names.bus).send().await {
            Ok(_) => true,
            Err(error) if error.as_service_error().is_some_and(aws_sdk_eventbridge::operation::describe_rule::DescribeRuleError::is_resource_not_found_exception) => false,
            Err(error) => return Err(classify("DescribeRule", error)),
        };
        if !rule_exists {
            let pattern =
                serde_json::json!({ "source": [SOURCE], "detail-type": ["user.signed_in"] });
            self.events
                .put_rule()
                .name(&names.rule)
                .event_bus_name(&names.bus)
                .event_pattern(pattern.to_string())
                .send()
                .await
                .map_err(|e| classify("PutRule", e))?;
            changes.push(Change::CreatedRule(names.rule.clone()));
        }
        // As queues.tf makes them: 14 days, and the DLQ at the size the
        // relay cuts its letters to.
        for queue in [&names.dlq, &names.target_queue] {
            if self.queue_url(queue).await?.is_none() {
                let mut request = self.sqs.create_queue().queue_name(queue).attributes(
                    aws_sdk_sqs::types::QueueAttributeName::MessageRetentionPeriod,
                    "1209600",
                );
                if queue == &names.dlq {
                    request = request.attributes(
                        aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize,
                        limits::DLQ_MAX_MESSAGE_BYTES.to_string(),
                    );
                }
                request
                    .send()
                    .await
                    .map_err(|e| classify("CreateQueue", e))?;
                changes.push(Change::CreatedQueue(queue.clone()));
            }
        }
        let target_arn = self.queue_arn(&names.target_queue).await?;
        let targets = self
            .events
            .list_targets_by_rule()
            .rule(&names.rule)
            .event_bus_name(&names.bus)
            .send()
            .await
            .map_err(|e| classify("ListTargetsByRule", e))?;
        if !targets.targets().iter().any(|t| t.arn() == target_arn) {
            let target = aws_sdk_eventbridge::types::Target::builder()
                .id("profile-target")
                .arn(&target_arn)
                .build()
                .map_err(|e| PortError::permanent("PutTargets", "Build", e.to_string()))?;
            self.events
                .put_targets()
                .rule(&names.rule)
                .event_bus_name(&names.bus)
                .targets(target)
                .send()
                .await
                .map_err(|e| classify("PutTargets", e))?;
            changes.push(Change::AddedTarget {
                rule: names.rule.clone(),
                queue: names.target_queue.clone(),
            });
        }
        Ok(changes)
    }

    pub async fn queue_url(&self, queue: &str) -> Result<Option<String>, PortError> {
        match self.sqs.get_queue_url().queue_name(queue).send().await {
            Ok(output) => Ok(output.queue_url),
            Err(error) if error.as_service_error().is_some_and(aws_sdk_sqs::operation::get_queue_url::GetQueueUrlError::is_queue_does_not_exist) => Ok(None),
            Err(error) => Err(classify("GetQueueUrl", error)),
        }
    }

    async fn queue_arn(&self, queue: &str) -> Result<String, PortError> {
        let url = self.queue_url(queue).await?.ok_or_else(|| {
            PortError::permanent("GetQueueUrl", "QueueDoesNotExist", queue.to_owned())
        })?;
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| classify("GetQueueAttributes", e))?;
        attributes
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| {
                PortError::permanent("GetQueueAttributes", "NoQueueArn", queue.to_owned())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_migrations_parse_with_increasing_versions() {
        let tables = desired_tables().expect("valid migrations");
        assert_eq!(
            tables.keys().collect::<Vec<_>>(),
            ["outbox", "processed-events", "users"]
        );
        let outbox = &tables["outbox"];
        assert_eq!(outbox.stream.as_deref(), Some("NEW_IMAGE"));
        assert_eq!(outbox.ttl_attribute.as_deref(), Some("expiresAt"));
        assert_eq!(
            outbox.global_secondary_indexes[0].name,
            auth_events_core::outbox::PENDING_INDEX
        );
    }

    #[test]
    fn a_prefix_with_characters_sqs_refuses_is_invalid() {
        assert!(Names::for_prefix("meeting-recorder-dev-").is_ok());
        assert!(Names::for_prefix("").is_ok());
        for bad in ["has space", "dots.are.bad", "slash/", &"x".repeat(41)] {
            assert!(Names::for_prefix(bad).is_err(), "{bad}");
        }
    }
}
