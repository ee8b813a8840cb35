//! Short-lived AWS credentials for a verified user: STS AssumeRole on the
//! app role, with the uid as session name, source identity and session tag.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use auth_events_core::contract::UserId;
use auth_events_core::ports::PortError;
use aws_sdk_sts::error::SdkError;
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_sdk_sts::primitives::DateTimeFormat;
use aws_sdk_sts::types::Tag;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The session tag IAM policies can refer to as `${aws:PrincipalTag/userId}`.
pub const USER_ID_TAG: &str = "userId";

/// The response's `credentials` object, in the seed's field names.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// RFC 3339, UTC.
    pub expiration: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field("session_token", &"[redacted]")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// Why no credentials were issued. The variant decides the HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// Throttling, 5xx, timeouts, network: a retry may succeed (503).
    #[error("STS is unavailable")]
    Unavailable(#[source] PortError),
    /// STS refused or answered something unusable (502).
    #[error("STS refused to issue credentials")]
    Failed(#[source] PortError),
}

impl IssueError {
    pub fn status(&self) -> u16 {
        match self {
            IssueError::Unavailable(_) => 503,
            IssueError::Failed(_) => 502,
        }
    }

    pub fn code(&self) -> &str {
        match self {
            IssueError::Unavailable(e) | IssueError::Failed(e) => e.code(),
        }
    }
}

pub trait CredentialIssuer: Send + Sync {
    fn issue(&self, uid: &UserId) -> impl Future<Output = Result<Credentials, IssueError>> + Send;
}

/// AssumeRole through the AWS SDK.
#[derive(Debug, Clone)]
pub struct StsIssuer {
    client: aws_sdk_sts::Client,
    role_arn: String,
    duration_secs: i32,
}

impl StsIssuer {
    pub fn new(
        client: aws_sdk_sts::Client,
        role_arn: impl Into<String>,
        duration: Duration,
    ) -> Self {
        Self {
            client,
            role_arn: role_arn.into(),
            duration_secs: i32::try_from(duration.as_secs()).unwrap_or(i32::MAX),
        }
    }
}

impl CredentialIssuer for StsIssuer {
    async fn issue(&self, uid: &UserId) -> Result<Credentials, IssueError> {
        let principal = session_name(uid.as_str());
        let tag = Tag::builder()
            .key(USER_ID_TAG)
            .value(tag_value(uid.as_str()))
            .build()
            .map_err(|e| {
                IssueError::Failed(PortError::permanent(
                    "AssumeRole",
                    "InvalidTag",
                    e.to_string(),
                ))
            })?;
        let output = self
            .client
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&principal)
            .source_identity(&principal)
            .tags(tag)
            .duration_seconds(self.duration_secs)
            .send()
            .await
            .map_err(classify)?;
        let credentials = output.credentials().ok_or_else(|| {
            IssueError::Failed(PortError::permanent(
                "AssumeRole",
                "NoCredentials",
                "the response carries no credentials",
            ))
        })?;
        let expiration = credentials
            .expiration()
            .fmt(DateTimeFormat::DateTime)
            .map_err(|e| {
                IssueError::Failed(PortError::permanent(
                    "AssumeRole",
                    "BadExpiration",
                    e.to_string(),
                ))
            })?;
        Ok(Credentials {
            access_key_id: credentials.access_key_id().to_owned(),
            secret_access_key: credentials.secret_access_key().to_owned(),
            session_token: credentials.session_token().to_owned(),
            expiration,
        })
    }
}

/// Throttling, 5xx, timeouts and network failures are worth a retry by the
/// client (503); anything else is STS refusing us (502).
fn classify(error: SdkError<AssumeRoleError>) -> IssueError {
    let port = auth_events_aws::errors::classify("AssumeRole", error);
    if port.is_retryable() {
        IssueError::Unavailable(port)
    } else {
        IssueError::Failed(port)
    }
}

/// STS allows `[\w+=,.@-]`, 2 to 64 characters, for both RoleSessionName and
/// SourceIdentity.
fn sts_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

const STS_NAME_MAX: usize = 64;

/// RoleSessionName and SourceIdentity for `uid`: the uid itself when STS
/// accepts it (every uid Firebase generates), otherwise a readable sanitised
/// prefix plus a hash of the whole uid, so that two uids never share a name
/// in CloudTrail.
pub fn session_name(uid: &str) -> String {
    let len = uid.chars().count();
    if (2..=STS_NAME_MAX).contains(&len) && uid.chars().all(sts_name_char) {
        return uid.to_owned();
    }
    let digest = hex::encode(Sha256::digest(uid.as_bytes()));
    let prefix: String = uid
        .chars()
        .map(|c| if sts_name_char(c) { c } else { '_' })
        .take(STS_NAME_MAX - 17)
        .collect();
    format!("{prefix}-{}", &digest[..16])
}

/// Characters a uid may hold to be its own `userId` session tag: allowed in
/// a tag value, and inert where policies substitute
/// `${aws:PrincipalTag/userId}` into a resource path (tags also allow `/`,
/// `:`, `=`, `+` and spaces, which would let one uid name another's path,
/// e.g. `alice/x` inside `users/alice/*`).
fn tag_safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-')
}

/// Marks a derived tag value: `=` is not [`tag_safe_char`], so no uid used
/// verbatim can ever equal a derived value.
const DERIVED_TAG_PREFIX: &str = "h=";

/// The `userId` session tag for `uid`: the uid itself when every character
/// is [`tag_safe_char`] (always so for the uids Firebase generates), else
/// `h=` and 40 hex digits of its SHA-256, stable for the user and distinct
/// for distinct uids.
pub fn tag_value(uid: &str) -> String {
    if !uid.is_empty() && uid.chars().all(tag_safe_char) {
        return uid.to_owned();
    }
    let digest = hex::encode(Sha256::digest(uid.as_bytes()));
    format!("{DERIVED_TAG_PREFIX}{}", &digest[..40])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_uids_are_used_verbatim() {
        let uid = "kXz9QbV2hYc3TnQ0fJ8sLm1Pq7r2";
        assert_eq!(session_name(uid), uid);
        assert_eq!(tag_value(uid), uid);
    }

    #[test]
    fn session_names_stay_within_the_sts_character_set_and_length() {
        for uid in [
            "a",
            "user with spaces/and#symbols",
            &"x".repeat(128),
            "ünïcødé-üser",
            "a:b",
        ] {
            let name = session_name(uid);
            let len = name.chars().count();
            assert!((2..=64).contains(&len), "{uid:?} -> {name:?}");
            assert!(name.chars().all(sts_name_char), "{uid:?} -> {name:?}");
        }
    }

    /// What AWS accepts as a session tag value: letters, digits, spaces and
    /// `_.:/=+-@`, at most 256 characters (ASCII letters here: we emit
    /// nothing else).
    fn aws_accepts_as_tag_value(value: &str) -> bool {
        value.len() <= 256
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c))
    }

    #[test]
    fn uids_with_commas_slashes_spaces_or_non_ascii_get_a_derived_tag() {
        for uid in ["a,b", "alice/../bob", "a b", "ünïcødé", "x:y", "p+q=r", "*"] {
            let tag = tag_value(uid);
            assert!(tag.starts_with("h="), "{uid:?} -> {tag:?}");
            assert!(aws_accepts_as_tag_value(&tag), "{uid:?} -> {tag:?}");
            assert!(!tag.contains('/'), "{uid:?} -> {tag:?}");
            assert_eq!(tag, tag_value(uid), "stable");
        }
        assert_ne!(tag_value("a,b"), tag_value("a b"));
        assert_eq!(
            tag_value("first.last@example.com"),
            "first.last@example.com"
        );
    }

    proptest::proptest! {
        #[test]
        fn every_uid_gets_a_tag_aws_accepts_that_no_other_uid_gets(
            a in "\\PC{1,128}",
            b in "\\PC{1,128}",
        ) {
            let (ta, tb) = (tag_value(&a), tag_value(&b));
            proptest::prop_assert!(aws_accepts_as_tag_value(&ta), "{a:?} -> {ta:?}");
            proptest::prop_assert!(ta.chars().all(|c| tag_safe_char(c) || c == '='));
            proptest::prop_assert_eq!(a == b, ta == tb);
        }
    }

    #[test]
    fn distinct_uids_that_sanitise_alike_get_distinct_session_names() {
        assert_ne!(session_name("a b"), session_name("a#b"));
        let long = "y".repeat(100);
        assert_ne!(session_name(&long), session_name(&format!("{long}z")));
    }

    #[test]
    fn credentials_debug_hides_the_secret_and_the_token() {
        let credentials = Credentials {
            access_key_id: "ASIAEXAMPLE".to_owned(),
            secret_access_key: "very-secret".to_owned(),
            session_token: "token-value".to_owned(),
            expiration: "2026-11-29T12:00:00Z".to_owned(),
        };
        let debug = format!("{credentials:?}");
        assert!(!debug.contains("very-secret"));
        assert!(!debug.contains("token-value"));
    }

    #[test]
    fn credentials_serialise_with_the_seeds_field_names() {
        let credentials = Credentials {
            access_key_id: "A".to_owned(),
            secret_access_key: "S".to_owned(),
            session_token: "T".to_owned(),
            expiration: "E".to_owned(),
        };
        assert_eq!(
            serde_json::to_value(&credentials).expect("serialises"),
            serde_json::json!({
                "AccessKeyId": "A",
                "SecretAccessKey": "S",
                "SessionToken": "T",
                "Expiration": "E"
            })
        );
    }
}
