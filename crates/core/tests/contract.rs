//! Laws of the contract that must hold for every input.

use std::path::PathBuf;

use auth_events_core::contract::{
    DisplayName, Email, EventId, PhotoUrl, Provider, Timestamp, UserAction, UserEvent, UserId,
    detail_schema,
};
use auth_events_core::outbox::{DEFAULT_TTL, OutboxRecord};
use proptest::prelude::*;

fn schema_path(action: UserAction) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas")
        .join(format!("{}.json", action.detail_type()))
}

/// Regenerate with `UPDATE_SCHEMAS=1 cargo test -p auth-events-core --test contract`.
#[test]
fn the_checked_in_schema_matches_the_code() {
    for &action in UserAction::ALL {
        let generated =
            serde_json::to_string_pretty(&detail_schema(action)).expect("serialises") + "\n";
        let path = schema_path(action);
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &generated).expect("schema written");
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            checked_in,
            generated,
            "{} drifted from the code; run UPDATE_SCHEMAS=1 cargo test -p auth-events-core --test contract",
            path.display()
        );
    }
}

prop_compose! {
    fn events()(
        user in "[A-Za-z0-9]{1,128}",
        local in "[a-z0-9._+-]{1,30}",
        domain in "[a-z]{1,20}\\.(com|org|co\\.uk)",
        millis in 0i64..4_102_444_800_000,
        name in proptest::option::of("[A-Za-zéü漢][A-Za-z .'é漢-]{0,60}"),
        photo in proptest::option::of("[a-z0-9/._-]{1,80}"),
        provider in proptest::option::of("(google\\.com|password|github\\.com)"),
        email_verified in proptest::option::of(proptest::bool::ANY),
    ) -> UserEvent {
        let mut event = UserEvent::new(
            UserAction::SignedIn,
            UserId::parse(user).expect("generated valid"),
            Email::parse(format!("{local}@{domain}")).expect("generated valid"),
            Timestamp::from_millis(millis).expect("in range"),
        );
        event.detail.display_name = name.map(|n| DisplayName::parse(n).expect("generated valid"));
        event.detail.photo_url = photo.map(|p| PhotoUrl::parse(format!("https://cdn.example.com/{p}")).expect("generated valid"));
        event.detail.provider = provider.map(|p| Provider::parse(p).expect("generated valid"));
        event.detail.email_verified = email_verified;
        event
    }
}

proptest! {
    #[test]
    fn a_detail_parsed_from_text_or_from_json_is_the_same_event(event in events()) {
        let text = event.detail_json();
        let value: serde_json::Value = serde_json::from_str(&text).expect("detail is JSON");
        let from_text = UserEvent::from_parts(event.source(), event.detail_type(), &text);
        let from_value = UserEvent::from_detail_value(event.source(), event.detail_type(), &value);
        prop_assert_eq!(from_text.as_ref().ok(), Some(&event));
        prop_assert_eq!(from_value.ok(), Some(event));
    }

    #[test]
    fn every_event_validates_against_the_checked_in_schema(event in events()) {
        let schema: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(schema_path(event.action)).expect("schema checked in"),
        ).expect("schema is JSON");
        let validator = jsonschema::validator_for(&schema).expect("a valid schema");
        let detail: serde_json::Value = serde_json::from_str(&event.detail_json()).expect("detail is JSON");
        let errors: Vec<String> = validator.iter_errors(&detail).map(|e| e.to_string()).collect();
        prop_assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn outbox_record_to_item_and_back_is_identity(event in events(), trace in proptest::option::of("Root=1-[0-9a-f]{8}-[0-9a-f]{24}"), attempts in 0u32..10) {
        let mut record = OutboxRecord::new(&event, Timestamp::now(), DEFAULT_TTL, trace);
        record.attempts = attempts;
        let back = OutboxRecord::decode_valid(record.to_item()).expect("decodes");
        prop_assert_eq!(back, record);
    }

    #[test]
    fn the_detail_round_trips_through_json(event in events()) {
        let parsed = UserEvent::from_parts(event.source(), event.detail_type(), &event.detail_json()).expect("parses");
        prop_assert_eq!(parsed, event);
    }

    #[test]
    fn entry_size_is_awss_formula(event in events()) {
        let record = OutboxRecord::new(&event, Timestamp::now(), DEFAULT_TTL, Some("Root=1-x".to_owned()));
        let entry = record.bus_entry();
        // Source + DetailType + Detail in UTF-8 bytes (counted here char by
        // char, independently of `str::len`); no Time, no Resources, and the
        // trace header does not count.
        let utf8_bytes = |s: &str| s.chars().map(char::len_utf8).sum::<usize>();
        let expected = utf8_bytes(&entry.source) + utf8_bytes(&entry.detail_type) + utf8_bytes(&entry.detail);
        prop_assert_eq!(entry.size(), expected);
    }

    #[test]
    fn event_ids_parse_back_from_their_text(_ in 0..1u8) {
        let id = EventId::new();
        prop_assert_eq!(id.to_string().parse::<EventId>().expect("parses"), id);
    }
}
