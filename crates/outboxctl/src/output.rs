//! What the commands print: human tables, JSON, ages, and the redaction of
//! personal data.

use std::time::Duration;

use anyhow::{Context, Result};
use auth_events_core::redact::{PiiKey, redact_json};
use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;
use serde_json::Value;

/// A table in the house style; it wraps to the terminal's width on a
/// terminal and never otherwise.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    table
}

pub fn print_json(value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("serialising the JSON output")?;
    println!("{text}");
    Ok(())
}

/// `45s`, `3m 12s`, `2h 5m`, `3d 4h`: the two largest units.
pub fn age(duration: Duration) -> String {
    let total = duration.as_secs();
    let (days, hours, minutes, seconds) = (
        total / 86_400,
        total % 86_400 / 3600,
        total % 3600 / 60,
        total % 60,
    );
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// Shortens `text` to at most `max` characters for a table cell.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// A JSON text with its personal data replaced (`redact_json`: addresses
/// hashed with `PII_HASH_KEY`, or redacted without it; names and photo URLs
/// redacted); other text unchanged.
pub fn redact_text(text: &str, key: Option<&PiiKey>) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(mut value) => {
            redact_json(&mut value, key);
            value.to_string()
        }
        Err(_) => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_show_the_two_largest_units() {
        assert_eq!(age(Duration::from_secs(45)), "45s");
        assert_eq!(age(Duration::from_secs(192)), "3m 12s");
        assert_eq!(age(Duration::from_mins(125)), "2h 5m");
        assert_eq!(age(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5)), "3d 4h");
    }

    #[test]
    fn text_is_cut_with_an_ellipsis() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
