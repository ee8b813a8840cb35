//! The `user.{action}` event contract.
//!
//! Every field is a validating newtype, so a [`UserDetail`] that exists is a
//! valid one: deserialising runs the same checks as the constructors.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The EventBridge `source` of every event in the family.
pub const SOURCE: &str = "interview-companion.auth";

/// The version of the detail schema this code emits. Version 2 added
/// `emailVerified`; consumers read both.
pub const SCHEMA_VERSION: u32 = 2;

/// What a detail without `schemaVersion` (the seed's hand-written events)
/// is read as.
pub const FIRST_SCHEMA_VERSION: u32 = 1;

/// Why a value was refused by the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} is not valid: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("unknown detail-type {0:?}")]
    UnknownDetailType(String),
    #[error("unexpected source {0:?}")]
    UnexpectedSource(String),
    #[error("detail is not valid JSON for the contract: {0}")]
    Detail(String),
}

/// Declares a string newtype whose every instance passed `validate`, with a
/// hand-written JSON Schema that states the same limits.
macro_rules! validated_string {
    ($(#[$meta:meta])* $name:ident, $field:literal, $schema:tt, $validate:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, ContractError> {
                let value = value.into();
                let validate: fn(&str) -> Result<(), ContractError> = $validate;
                validate(&value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(raw).map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

fn bounded(field: &'static str, value: &str, max: usize) -> Result<(), ContractError> {
    if value.trim().is_empty() {
        return Err(ContractError::Empty { field });
    }
    if value.chars().count() > max {
        return Err(ContractError::TooLong { field, max });
    }
    if value.chars().any(char::is_control) {
        return Err(ContractError::Invalid {
            field,
            reason: "contains control characters",
        });
    }
    Ok(())
}

pub const USER_ID_MAX: usize = 128;
pub const EMAIL_MAX: usize = 254;
pub const DISPLAY_NAME_MAX: usize = 256;
pub const PHOTO_URL_MAX: usize = 2048;
pub const PROVIDER_MAX: usize = 64;

validated_string!(
    /// A Firebase uid: non-empty, at most 128 characters.
    UserId,
    "userId",
    { "type": "string", "minLength": 1, "maxLength": 128 },
    |v| bounded("userId", v, USER_ID_MAX)
);

validated_string!(
    /// An e-mail address: one `@`, a non-empty local part of at most 64
    /// characters and a dotted domain, at most 254 characters in all.
    Email,
    "email",
    { "type": "string", "format": "email", "minLength": 3, "maxLength": 254 },
    validate_email
);

validated_string!(
    /// A display name as the identity provider gave it.
    DisplayName,
    "displayName",
    { "type": "string", "minLength": 1, "maxLength": 256 },
    |v| bounded("displayName", v, DISPLAY_NAME_MAX)
);

validated_string!(
    /// A profile photo URL; https only, so the app never loads mixed content.
    PhotoUrl,
    "photoURL",
    { "type": "string", "format": "uri", "pattern": "^https://", "maxLength": 2048 },
    validate_photo_url
);

validated_string!(
    /// The Firebase sign-in provider, e.g. `google.com` or `password`.
    Provider,
    "provider",
    { "type": "string", "minLength": 1, "maxLength": 64 },
    |v| bounded("provider", v, PROVIDER_MAX)
);

fn validate_email(value: &str) -> Result<(), ContractError> {
    const FIELD: &str = "email";
    let invalid = |reason| ContractError::Invalid {
        field: FIELD,
        reason,
    };
    if value.is_empty() {
        return Err(ContractError::Empty { field: FIELD });
    }
    if value.len() > EMAIL_MAX {
        return Err(ContractError::TooLong {
            field: FIELD,
            max: EMAIL_MAX,
        });
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("contains whitespace"));
    }
    let (local, domain) = value.rsplit_once('@').ok_or_else(|| invalid("has no @"))?;
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return Err(invalid("local part is empty, too long or has a second @"));
    }
    let labels_ok = domain
        .split('.')
        .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    if !domain.contains('.') || !labels_ok {
        return Err(invalid("domain is not a dotted host name"));
    }
    Ok(())
}

fn validate_photo_url(value: &str) -> Result<(), ContractError> {
    const FIELD: &str = "photoURL";
    if value.len() > PHOTO_URL_MAX {
        return Err(ContractError::TooLong {
            field: FIELD,
            max: PHOTO_URL_MAX,
        });
    }
    let host = value
        .strip_prefix("https://")
        .ok_or(ContractError::Invalid {
            field: FIELD,
            reason: "must be an https URL",
        })?;
    if host.is_empty() || host.starts_with('/') || value.chars().any(char::is_whitespace) {
        return Err(ContractError::Invalid {
            field: FIELD,
            reason: "has no host or contains whitespace",
        });
    }
    Ok(())
}

/// The producer-minted identity of one event: a UUIDv7, so ids sort by
/// creation time. Consumers deduplicate on it, never on the envelope id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for EventId {
    fn from(value: Uuid) -> Self {
        Self(value)
    }
}

impl FromStr for EventId {
    type Err = ContractError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| ContractError::Invalid {
                field: "eventId",
                reason: "is not a UUID",
            })
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl JsonSchema for EventId {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("EventId")
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "uuid" })
    }
}

/// An instant in UTC at millisecond precision, written as RFC 3339 with a
/// fixed width (`2026-11-29T11:46:06.123Z`), so that string order is time
/// order: DynamoDB condition expressions compare these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    /// Truncates to milliseconds, the contract's precision.
    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        let millis = at.timestamp_millis();
        Self(Utc.timestamp_millis_opt(millis).single().unwrap_or(at))
    }

    pub fn from_millis(millis: i64) -> Option<Self> {
        Utc.timestamp_millis_opt(millis).single().map(Self)
    }

    pub fn parse(value: &str) -> Result<Self, ContractError> {
        DateTime::parse_from_rfc3339(value)
            .map(|at| Self::from_datetime(at.with_timezone(&Utc)))
            .map_err(|_| ContractError::Invalid {
                field: "timestamp",
                reason: "is not an RFC 3339 date-time",
            })
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    pub fn millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    pub fn epoch_seconds(&self) -> i64 {
        self.0.timestamp()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Timestamp")
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "date-time" })
    }
}

/// What happened to the user. A new action of the family is one new variant
/// here; everything downstream keys on [`UserAction::detail_type`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserAction {
    SignedIn,
}

impl UserAction {
    pub const ALL: &'static [UserAction] = &[UserAction::SignedIn];

    pub fn detail_type(self) -> &'static str {
        match self {
            UserAction::SignedIn => "user.signed_in",
        }
    }

    pub fn from_detail_type(detail_type: &str) -> Result<Self, ContractError> {
        Self::ALL
            .iter()
            .copied()
            .find(|action| action.detail_type() == detail_type)
            .ok_or_else(|| ContractError::UnknownDetailType(detail_type.to_owned()))
    }
}

fn default_schema_version() -> u32 {
    FIRST_SCHEMA_VERSION
}

/// The `detail` of a `user.{action}` event.
///
/// `eventId` is optional only so that hand-written events (the seed's test
/// command) still parse; producers in this repository always set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    #[serde(default = "default_schema_version")]
    #[schemars(range(min = 1))]
    pub schema_version: u32,
    pub user_id: UserId,
    pub email: Email,
    /// Whether the identity provider verified `email` (schema version 2);
    /// absent in version 1 events, which consumers read as unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    pub timestamp: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<DisplayName>,
    #[serde(rename = "photoURL", default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<PhotoUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
}

/// One event of the family: the action decides the detail-type, the detail
/// carries the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEvent {
    pub action: UserAction,
    pub detail: UserDetail,
}

impl UserEvent {
    /// A new event as a producer mints it: fresh UUIDv7 and current schema.
    pub fn new(action: UserAction, user_id: UserId, email: Email, timestamp: Timestamp) -> Self {
        Self {
            action,
            detail: UserDetail {
                event_id: Some(EventId::new()),
                schema_version: SCHEMA_VERSION,
                user_id,
                email,
                email_verified: None,
                timestamp,
                display_name: None,
                photo_url: None,
                provider: None,
            },
        }
    }

    pub fn source(&self) -> &'static str {
        SOURCE
    }

    pub fn detail_type(&self) -> &'static str {
        self.action.detail_type()
    }

    /// The detail exactly as it will be published.
    pub fn detail_json(&self) -> String {
        serde_json::to_string(&self.detail).expect("a UserDetail always serialises")
    }

    /// Parses an event as EventBridge carries it: source, detail-type and the
    /// detail's JSON text.
    pub fn from_parts(
        source: &str,
        detail_type: &str,
        detail: &str,
    ) -> Result<Self, ContractError> {
        Self::with_detail(source, detail_type, || serde_json::from_str(detail))
    }

    /// The same, for a detail that is already JSON, as a Lambda receives an
    /// EventBridge event: no round trip through text.
    pub fn from_detail_value(
        source: &str,
        detail_type: &str,
        detail: &serde_json::Value,
    ) -> Result<Self, ContractError> {
        Self::with_detail(source, detail_type, || UserDetail::deserialize(detail))
    }

    fn with_detail(
        source: &str,
        detail_type: &str,
        detail: impl FnOnce() -> Result<UserDetail, serde_json::Error>,
    ) -> Result<Self, ContractError> {
        if source != SOURCE {
            return Err(ContractError::UnexpectedSource(source.to_owned()));
        }
        let action = UserAction::from_detail_type(detail_type)?;
        let detail = detail().map_err(|e| ContractError::Detail(e.to_string()))?;
        Ok(Self { action, detail })
    }

    /// The key consumers deduplicate on: the producer's `eventId`, or the
    /// envelope id for hand-written events that lack one.
    pub fn dedupe_id(&self, envelope_id: Option<&str>) -> Option<String> {
        self.detail
            .event_id
            .map(|id| id.to_string())
            .or_else(|| envelope_id.map(str::to_owned))
    }
}

/// The JSON Schema of the detail of `action`, as checked in under `schemas/`.
pub fn detail_schema(action: UserAction) -> serde_json::Value {
    let mut schema = schemars::schema_for!(UserDetail);
    schema.insert(
        "$id".to_owned(),
        format!(
            "https://schemas.interview-companion.dev/auth-events/{}.json",
            action.detail_type()
        )
        .into(),
    );
    schema.insert(
        "title".to_owned(),
        format!("{} detail", action.detail_type()).into(),
    );
    schema.to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_hand_written_event_parses_without_an_event_id() {
        let seed = r#"{"userId":"test-user-123","email":"test@example.com","displayName":"Test User","timestamp":"2024-01-15T10:30:00Z"}"#;
        let event = UserEvent::from_parts(SOURCE, "user.signed_in", seed).expect("seed event");
        assert_eq!(event.detail.event_id, None);
        assert_eq!(event.detail.schema_version, FIRST_SCHEMA_VERSION);
        assert_eq!(event.detail.email_verified, None);
        assert_eq!(
            event.dedupe_id(Some("envelope-1")).as_deref(),
            Some("envelope-1")
        );
    }

    #[test]
    fn timestamps_are_written_in_fixed_width_utc_milliseconds() {
        let at = Timestamp::parse("2026-11-29T12:46:06.123456+01:00").expect("valid");
        assert_eq!(at.to_string(), "2026-11-29T11:46:06.123Z");
        let whole = Timestamp::parse("2026-11-29T11:46:06Z").expect("valid");
        assert_eq!(whole.to_string(), "2026-11-29T11:46:06.000Z");
    }

    #[test]
    fn user_id_is_non_empty_and_at_most_128_characters() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("   ").is_err());
        assert!(UserId::parse("a".repeat(128)).is_ok());
        assert_eq!(
            UserId::parse("a".repeat(129)),
            Err(ContractError::TooLong {
                field: "userId",
                max: 128
            })
        );
    }

    #[test]
    fn email_syntax_is_checked() {
        for good in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(Email::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "", "plain", "@b.co", "a@", "a@b", "a b@c.de", "a@-b.co", "a@b..co",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(long).is_err());
    }

    #[test]
    fn photo_url_must_be_https() {
        assert!(PhotoUrl::parse("https://lh3.googleusercontent.com/a/x").is_ok());
        assert!(PhotoUrl::parse("http://example.com/x.png").is_err());
        assert!(PhotoUrl::parse("javascript:alert(1)").is_err());
        assert!(PhotoUrl::parse("https://").is_err());
    }

    #[test]
    fn invalid_fields_are_refused_when_deserialising() {
        let bad = r#"{"userId":"","email":"test@example.com","timestamp":"2024-01-15T10:30:00Z"}"#;
        assert!(UserEvent::from_parts(SOURCE, "user.signed_in", bad).is_err());
        let no_user = r#"{"email":"test@example.com","timestamp":"2024-01-15T10:30:00Z"}"#;
        assert!(UserEvent::from_parts(SOURCE, "user.signed_in", no_user).is_err());
    }

    #[test]
    fn unknown_detail_types_and_foreign_sources_are_refused() {
        let detail = r#"{"userId":"u","email":"a@b.co","timestamp":"2024-01-15T10:30:00Z"}"#;
        assert!(matches!(
            UserEvent::from_parts(SOURCE, "user.exploded", detail),
            Err(ContractError::UnknownDetailType(_))
        ));
        assert!(matches!(
            UserEvent::from_parts("aws.events", "user.signed_in", detail),
            Err(ContractError::UnexpectedSource(_))
        ));
    }

    #[test]
    fn new_events_carry_a_version_7_event_id() {
        let event = UserEvent::new(
            UserAction::SignedIn,
            UserId::parse("u1").expect("valid"),
            Email::parse("a@b.co").expect("valid"),
            Timestamp::now(),
        );
        let id = event.detail.event_id.expect("minted");
        assert_eq!(id.as_uuid().get_version_num(), 7);
    }
}
