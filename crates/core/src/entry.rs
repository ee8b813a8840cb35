//! EventBridge `PutEvents` entries, their size by AWS's documented formula,
//! and packing into requests.

use serde::{Deserialize, Serialize};

use crate::contract::EventId;

/// One event as it goes onto the bus. The bus name is the publisher's, not
/// the entry's, so the same entry can be published anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BusEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    pub source: String,
    pub detail_type: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<String>,
}

impl BusEntry {
    /// The entry size as EventBridge computes it: the UTF-8 bytes of
    /// `Source`, `DetailType` and `Detail`, plus 14 if `Time` is set and the
    /// bytes of each `Resources` entry. We set neither `Time` nor
    /// `Resources`, and `TraceHeader` does not count.
    pub fn size(&self) -> usize {
        self.source.len() + self.detail_type.len() + self.detail.len()
    }
}

/// Splits `entries` into consecutive requests of at most `max_entries`
/// entries and at most `max_bytes` in total, keeping their order. Returns the
/// index ranges; an entry larger than `max_bytes` gets a request of its own
/// (the caller dead-letters it before packing).
pub fn pack(sizes: &[usize], max_entries: usize, max_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut requests = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (index, &size) in sizes.iter().enumerate() {
        let full = index - start == max_entries || (index > start && bytes + size > max_bytes);
        if full {
            requests.push(start..index);
            start = index;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        requests.push(start..sizes.len());
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_counts_utf8_bytes_not_characters() {
        let entry = BusEntry {
            event_id: None,
            source: "s".to_owned(),
            detail_type: "dt".to_owned(),
            detail: r#"{"n":"é"}"#.to_owned(),
            trace_header: Some("Root=1-abc".to_owned()),
        };
        assert_eq!(entry.size(), 1 + 2 + 10);
    }

    #[test]
    fn packing_respects_the_entry_count() {
        let ranges = pack(&[1; 25], 10, crate::limits::PUT_EVENTS_MAX_REQUEST_BYTES);
        assert_eq!(ranges, vec![0..10, 10..20, 20..25]);
    }

    #[test]
    fn packing_respects_the_byte_limit() {
        let ranges = pack(&[60, 60, 60, 100, 1], 10, 150);
        assert_eq!(ranges, vec![0..2, 2..3, 3..5]);
    }

    #[test]
    fn an_oversized_entry_gets_its_own_request() {
        let ranges = pack(&[10, 500, 10], 10, 100);
        assert_eq!(ranges, vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn nothing_to_pack_gives_no_request() {
        assert!(pack(&[], 10, 100).is_empty());
    }
}
