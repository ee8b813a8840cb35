//! What may appear in logs and operator output in place of personal data.
//!
//! E-mail addresses become a keyed hash (HMAC-SHA256 under a per-deployment
//! [`PiiKey`]): stable, so one user's lines correlate, but not reversible
//! with a list of known addresses, as a plain hash would be. Display names
//! and photo URLs are dropped for [`REDACTED`]; the uid identifies the user.

use std::fmt;

use hmac::{KeyInit, Mac};

/// What stands where a name or photo URL was.
pub const REDACTED: &str = "[redacted]";

/// The shortest key accepted: 32 bytes, HMAC-SHA256's own output size.
pub const MIN_KEY_BYTES: usize = 32;

/// The hashes are cut to this many hex digits (80 bits): plenty to tell a
/// deployment's users apart, shorter in every log line.
const HASH_HEX_DIGITS: usize = 20;

/// The key of the keyed e-mail hash, from configuration (`PII_HASH_KEY`).
#[derive(Clone, PartialEq, Eq)]
pub struct PiiKey(Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the key is {0} bytes; at least {MIN_KEY_BYTES} are needed (e.g. `openssl rand -hex 32`)")]
pub struct KeyTooShort(pub usize);

impl PiiKey {
    pub fn parse(text: &str) -> Result<Self, KeyTooShort> {
        let bytes = text.trim().as_bytes();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyTooShort(bytes.len()));
        }
        Ok(Self(bytes.to_vec()))
    }

    /// The stand-in for `email`: `hmac:` and 20 hex digits, the same for
    /// every spelling that differs only in case or surrounding space.
    pub fn email_hash(&self, email: &str) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        mac.update(email.trim().to_lowercase().as_bytes());
        let digest = hex::encode(mac.finalize().into_bytes());
        format!("hmac:{}", &digest[..HASH_HEX_DIGITS])
    }
}

// By hand, so the key never reaches a log through `{:?}`.
impl fmt::Debug for PiiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PiiKey([redacted])")
    }
}

/// What the value of the detail field `name` becomes, if it holds personal
/// data: an address its keyed hash ([`REDACTED`] without a key), a name or
/// photo URL always [`REDACTED`].
fn redacted(name: &str, value: &str, key: Option<&PiiKey>) -> Option<String> {
    match (name, key) {
        ("email", Some(key)) => Some(key.email_hash(value)),
        ("email" | "displayName" | "photoURL", _) => Some(REDACTED.to_owned()),
        _ => None,
    }
}

/// Replaces every personal field in `value`, at any depth and inside
/// strings that hold JSON (an entry's `detail`, a stream image's `S`).
pub fn redact_json(value: &mut serde_json::Value, key: Option<&PiiKey>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (name, inner) in map.iter_mut() {
                let replacement = inner.as_str().and_then(|text| redacted(name, text, key));
                match replacement {
                    Some(text) => *inner = Value::String(text),
                    None => redact_json(inner, key),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| redact_json(item, key)),
        Value::String(text) if text.trim_start().starts_with('{') => {
            if let Ok(mut nested) = serde_json::from_str::<Value>(text) {
                redact_json(&mut nested, key);
                *text = nested.to_string();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> PiiKey {
        PiiKey::parse(&text.repeat(32)).expect("long enough")
    }

    #[test]
    fn the_hash_is_stable_case_insensitive_and_hides_the_address() {
        let key = key("k");
        let a = key.email_hash("Alice@Example.com");
        assert_eq!(a, key.email_hash(" alice@example.com "));
        assert!(!a.contains("alice"));
        assert!(!a.contains('@'));
        assert_eq!(a.len(), "hmac:".len() + HASH_HEX_DIGITS);
    }

    #[test]
    fn another_deployments_key_gives_another_hash() {
        assert_ne!(
            key("a").email_hash("alice@example.com"),
            key("b").email_hash("alice@example.com")
        );
    }

    #[test]
    fn a_short_key_is_refused_and_the_key_never_prints() {
        assert_eq!(PiiKey::parse("short"), Err(KeyTooShort(5)));
        let text = format!("{:?}", key("s"));
        assert!(!text.contains("sss"), "{text}");
    }

    #[test]
    fn personal_fields_are_replaced_at_any_depth_and_inside_json_strings() {
        let mut value = serde_json::json!({
            "entry": {"detail": r#"{"email":"ann@example.com","userId":"u1","displayName":"Ann"}"#},
            "rawImage": {"detail": {"S": r#"{"email":"bob@example.com","photoURL":"https://p.example/b"}"#}},
            "detail": {"email": "cy@example.com"},
        });
        redact_json(&mut value, Some(&key("k")));
        let text = value.to_string();
        for secret in [
            "ann@example.com",
            "bob@example.com",
            "cy@example.com",
            "Ann",
            "p.example",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("hmac:"), "{text}");
        assert!(text.contains("u1"), "{text}");
    }

    #[test]
    fn without_a_key_an_address_is_redacted_not_hashed() {
        let mut value = serde_json::json!({"email": "ann@example.com"});
        redact_json(&mut value, None);
        assert_eq!(value["email"], REDACTED);
    }
}
