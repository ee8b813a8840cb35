//! X-Ray trace headers, as PutEvents accepts them in `TraceHeader`.
//!
//! A client sends `X-Amzn-Trace-Id` as it likes, and AWS refuses a whole
//! PutEvents request if one entry's `TraceHeader` is empty or over 500
//! characters. So a header travels only when it is a well-formed X-Ray
//! header: a `Root=1-<8 hex>-<24 hex>` field and `key=value` fields of
//! visible ASCII, `;`-separated, at most [`TRACE_HEADER_MAX_CHARS`].

use crate::limits::TRACE_HEADER_MAX_CHARS;

/// `header` if it may be sent as a `TraceHeader`, else `None`.
pub fn well_formed(header: &str) -> Option<&str> {
    let fits = !header.is_empty() && header.len() <= TRACE_HEADER_MAX_CHARS;
    let mut fields = header.split(';').map(|field| field.split_once('='));
    let mut has_root = false;
    let valid = fits
        && fields.all(|field| match field {
            Some(("Root", value)) if !has_root => {
                has_root = true;
                is_trace_id(value)
            }
            Some((key, value)) => {
                key != "Root" && is_token(key) && !value.is_empty() && value.bytes().all(is_visible)
            }
            None => false,
        });
    (valid && has_root).then_some(header)
}

/// `1-<8 hex digits of epoch seconds>-<24 hex digits>`.
fn is_trace_id(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    matches!(parts.as_slice(), ["1", time, unique]
        if time.len() == 8 && unique.len() == 24
            && time.bytes().chain(unique.bytes()).all(|b| b.is_ascii_hexdigit()))
}

fn is_token(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_visible(byte: u8) -> bool {
    byte.is_ascii_graphic() && byte != b';'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ROOT: &str = "Root=1-5759e988-bd862e3fe1be46a994272793";

    #[test]
    fn x_ray_headers_as_aws_services_send_them_are_kept() {
        for header in [
            ROOT.to_owned(),
            format!("{ROOT};Parent=53995c3f42cd8ad8;Sampled=1"),
            format!("Self=1-67891234-12456789abcdef012345678;{ROOT};Sampled=0"),
            format!("{ROOT};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5"),
        ] {
            assert_eq!(well_formed(&header), Some(header.as_str()), "{header}");
        }
    }

    #[test]
    fn empty_oversized_rootless_or_malformed_headers_are_dropped() {
        let long = format!("{ROOT};Data={}", "a".repeat(TRACE_HEADER_MAX_CHARS));
        for header in [
            "",
            long.as_str(),
            "Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e98g-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a994272793;",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Root=1-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Note=é",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Note=a b",
            "hello",
        ] {
            assert_eq!(well_formed(header), None, "{header:?}");
        }
    }

    proptest! {
        #[test]
        fn whatever_is_kept_is_within_putevents_limits(header in any::<String>()) {
            if let Some(kept) = well_formed(&header) {
                prop_assert!(!kept.is_empty() && kept.chars().count() <= TRACE_HEADER_MAX_CHARS);
                prop_assert!(kept.starts_with("Root=1-") || kept.contains(";Root=1-"));
            }
        }

        #[test]
        fn a_root_with_visible_fields_is_kept_up_to_the_limit(
            fields in proptest::collection::vec(("[A-Za-z][A-Za-z0-9_-]{0,8}", "[!-:<-~]{1,20}"), 0..30)
        ) {
            let header: String = std::iter::once(ROOT.to_owned())
                .chain(fields.iter().filter(|(key, _)| key != "Root").map(|(key, value)| format!("{key}={value}")))
                .collect::<Vec<_>>()
                .join(";");
            prop_assert_eq!(well_formed(&header).is_some(), header.len() <= TRACE_HEADER_MAX_CHARS);
        }
    }
}
