//! Where to act: the DLQ, the outbox table and the bus, from flags,
//! environment variables or the deployment prefix. Each is checked before
//! use, so a wrong name fails with one line naming it and the fix.

use anyhow::{Context, Result, bail};
use auth_events_aws::errors::classify;
use auth_events_aws::migrate::Names;
use auth_events_aws::{DynamoOutbox, EventBridgePublisher, SqsDeadLetters};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::cli::{Global, ResourceArgs};
use crate::migrate::sdk_config;
use crate::queue::Dlq;

#[derive(Debug)]
pub struct Resources {
    names: Names,
    args: ResourceArgs,
    endpoint: String,
    sqs: aws_sdk_sqs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    events: aws_sdk_eventbridge::Client,
}

impl Resources {
    pub async fn new(global: &Global, args: &ResourceArgs) -> Result<Self> {
        let names = Names::for_prefix(&global.prefix)?;
        let sdk = sdk_config(global).await;
        let endpoint = sdk.endpoint_url().unwrap_or("AWS").to_owned();
        Ok(Self {
            names,
            args: args.clone(),
            endpoint,
            sqs: aws_sdk_sqs::Client::new(&sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            events: aws_sdk_eventbridge::Client::new(&sdk),
        })
    }

    /// The DLQ, resolved through GetQueueUrl unless `--dlq-url` names it,
    /// and checked to exist.
    pub async fn dlq(&self) -> Result<Dlq> {
        let url = match &self.args.dlq_url {
            Some(url) => url.clone(),
            None => self.dlq_url_by_name().await?,
        };
        let checked = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await;
        match checked {
            Ok(_) => Ok(Dlq::new(self.sqs.clone(), url)),
            Err(error)
                if error.as_service_error().is_some_and(
                    aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError::is_queue_does_not_exist,
                ) =>
            {
                bail!(
                    "DLQ {url} does not exist at {}: fix --dlq-url (or DLQ_URL)",
                    self.endpoint
                )
            }
            Err(error) => Err(classify("GetQueueAttributes", error))
                .with_context(|| format!("checking DLQ {url} at {}", self.endpoint)),
        }
    }

    async fn dlq_url_by_name(&self) -> Result<String> {
        let name = &self.names.dlq;
        let output = self.sqs.get_queue_url().queue_name(name).send().await;
        match output {
            Ok(output) => output
                .queue_url
                .with_context(|| format!("GetQueueUrl of DLQ {name} returned no URL")),
            Err(error)
                if error.as_service_error().is_some_and(
                    aws_sdk_sqs::operation::get_queue_url::GetQueueUrlError::is_queue_does_not_exist,
                ) =>
            {
                bail!(
                    "DLQ {name} does not exist at {}: check --prefix, or name the queue with --dlq-url (or DLQ_URL)",
                    self.endpoint
                )
            }
            Err(error) => Err(classify("GetQueueUrl", error)).with_context(|| {
                format!(
                    "looking up DLQ {name} at {} (check --endpoint-url, --region and credentials)",
                    self.endpoint
                )
            }),
        }
    }

    pub fn outbox_table(&self) -> String {
        self.args
            .outbox_table
            .clone()
            .unwrap_or_else(|| self.names.outbox_table())
    }

    pub fn bus(&self) -> String {
        self.args
            .bus
            .clone()
            .unwrap_or_else(|| self.names.bus.clone())
    }

    /// The outbox table's adapter, after checking that the table exists.
    pub async fn outbox(&self) -> Result<DynamoOutbox> {
        let table = self.outbox_table();
        let described = self
            .dynamodb
            .describe_table()
            .table_name(&table)
            .send()
            .await;
        match described {
            Ok(_) => Ok(DynamoOutbox::new(self.dynamodb.clone(), table)),
            Err(error)
                if error.as_service_error().is_some_and(
                    aws_sdk_dynamodb::operation::describe_table::DescribeTableError::is_resource_not_found_exception,
                ) =>
            {
                let fix = if self.args.outbox_table.is_some() {
                    "fix --outbox-table (or OUTBOX_TABLE)"
                } else {
                    "check --prefix, or name the table with --outbox-table (or OUTBOX_TABLE)"
                };
                bail!(
                    "outbox table {table} does not exist at {}: {fix}",
                    self.endpoint
                )
            }
            Err(error) => Err(classify("DescribeTable", error)).with_context(|| {
                format!(
                    "checking outbox table {table} at {} (check --endpoint-url, --region and credentials)",
                    self.endpoint
                )
            }),
        }
    }

    /// The bus's publisher, after checking that the bus exists.
    pub async fn publisher(&self) -> Result<EventBridgePublisher> {
        let bus = self.bus();
        let described = self.events.describe_event_bus().name(&bus).send().await;
        match described {
            Ok(_) => Ok(EventBridgePublisher::new(self.events.clone(), bus)),
            Err(error)
                if error.as_service_error().is_some_and(
                    aws_sdk_eventbridge::operation::describe_event_bus::DescribeEventBusError::is_resource_not_found_exception,
                ) =>
            {
                let fix = if self.args.bus.is_some() {
                    "fix --bus (or EVENT_BUS_NAME)"
                } else {
                    "check --prefix, or name the bus with --bus (or EVENT_BUS_NAME)"
                };
                bail!("event bus {bus} does not exist at {}: {fix}", self.endpoint)
            }
            Err(error) => Err(classify("DescribeEventBus", error))
                .with_context(|| format!("checking event bus {bus} at {}", self.endpoint)),
        }
    }

    /// Where the relay engine sends what it cannot publish: the same DLQ.
    pub fn dead_letters(&self, dlq: &Dlq) -> SqsDeadLetters {
        SqsDeadLetters::new(self.sqs.clone(), dlq.url())
    }
}
