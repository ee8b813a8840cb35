//! The AWS limits this pipeline must respect, in one place, as AWS documents
//! them today. moto checks none of them, so the code that depends on one
//! reads it from here and the strict test layer (`local-stack`) enforces the
//! same figures, each of which a caller can lower where AWS is stricter than
//! documented (a region not yet raised, a queue configured smaller).

/// Entries per PutEvents request (EventBridge API reference, `PutEvents`:
/// `Entries`, 1 to 10 items).
pub const PUT_EVENTS_MAX_ENTRIES: usize = 10;

/// Total entry size of one PutEvents request, by the formula of
/// [`crate::entry::BusEntry::size`]: 1 MB (1,048,576 bytes) since January
/// 2026; it was 256 KB (262,144 bytes) before, which the relay's
/// `MAX_REQUEST_BYTES` can restore where AWS still refuses more.
pub const PUT_EVENTS_MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Length of a PutEvents entry's `TraceHeader`: 1 to 500 characters. One
/// entry outside it makes AWS refuse the whole request.
pub const TRACE_HEADER_MAX_CHARS: usize = 500;

/// The largest SQS message, body plus message attributes: 1 MiB since
/// August 2025 (256 KiB before). A queue's `MaximumMessageSize` may be lower.
pub const SQS_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Our DLQ's `MaximumMessageSize`, as `infra/terraform/queues.tf` and the
/// migrations create it: not an AWS limit but our choice below it. A
/// letter never needs more (the outbox item keeps the whole event), and
/// smaller messages keep `outboxctl` reading a deep DLQ in bounded memory.
pub const DLQ_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Whether SQS accepts `c` in a message body or string attribute: `#x9`,
/// `#xA`, `#xD`, `#x20` to `#xD7FF`, `#xE000` to `#xFFFD` and `#x10000` to
/// `#x10FFFF` (SQS `SendMessage`, `MessageBody`). A Rust `char` is never a
/// surrogate, so `#xD800` to `#xDFFF` cannot occur.
pub fn sqs_allows_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqs_refuses_control_characters_and_the_two_non_characters_only() {
        for allowed in [
            '\t', '\n', '\r', ' ', 'é', '\u{D7FF}', '\u{E000}', '\u{FFFD}', '😀',
        ] {
            assert!(sqs_allows_char(allowed), "{allowed:?}");
        }
        for refused in [
            '\0', '\u{1}', '\u{8}', '\u{B}', '\u{1F}', '\u{FFFE}', '\u{FFFF}',
        ] {
            assert!(!sqs_allows_char(refused), "{refused:?}");
        }
    }
}
