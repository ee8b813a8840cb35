//! The EventBridge adapter of [`Publisher`].

use auth_events_core::entry::BusEntry;
use auth_events_core::ports::{EntryResult, PortError, Publisher};
use auth_events_core::trace;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::errors::classify;

#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl EventBridgePublisher {
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }

    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    /// The SDK request entry for `entry` on this bus.
    pub fn request_entry(&self, entry: &BusEntry) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(&entry.source)
            .detail_type(&entry.detail_type)
            .detail(&entry.detail)
            // Checked again here, on every path to the bus: outbox items and
            // dead letters can come from writers other than the exchange.
            .set_trace_header(
                entry
                    .trace_header
                    .as_deref()
                    .and_then(trace::well_formed)
                    .map(str::to_owned),
            )
            .build()
    }
}

impl Publisher for EventBridgePublisher {
    async fn put_events(&self, entries: &[&BusEntry]) -> Result<Vec<EntryResult>, PortError> {
        let request: Vec<_> = entries.iter().map(|&e| self.request_entry(e)).collect();
        let output = self
            .client
            .put_events()
            .set_entries(Some(request))
            .send()
            .await
            .map_err(|e| classify("PutEvents", e))?;
        let results: Vec<EntryResult> = output
            .entries()
            .iter()
            .map(|result| match (result.event_id(), result.error_code()) {
                (Some(id), None) => EntryResult::Published {
                    bus_event_id: id.to_owned(),
                },
                (_, code) => EntryResult::Failed {
                    code: code.unwrap_or("Unknown").to_owned(),
                    message: result.error_message().unwrap_or_default().to_owned(),
                },
            })
            .collect();
        // A count that differs from the entries' is the engine's to handle:
        // it cannot tell which entries landed, so it retries them all.
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher() -> EventBridgePublisher {
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
            .build();
        EventBridgePublisher::new(aws_sdk_eventbridge::Client::from_conf(config), "bus")
    }

    fn entry(trace_header: &str) -> BusEntry {
        BusEntry {
            event_id: None,
            source: "interview-companion.auth".to_owned(),
            detail_type: "user.signed_in".to_owned(),
            detail: "{}".to_owned(),
            trace_header: Some(trace_header.to_owned()),
        }
    }

    #[test]
    fn an_entry_from_any_writer_goes_out_without_a_trace_header_putevents_would_refuse() {
        let publisher = publisher();
        let good = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
        assert_eq!(
            publisher.request_entry(&entry(good)).trace_header(),
            Some(good)
        );
        for bad in ["", "x".repeat(501).as_str(), "Sampled=1"] {
            assert_eq!(
                publisher.request_entry(&entry(bad)).trace_header(),
                None,
                "{bad:?}"
            );
        }
    }
}
