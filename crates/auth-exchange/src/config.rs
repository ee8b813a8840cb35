//! The function's configuration, parsed once at cold start. Every error names
//! the variable, so a misconfigured function stops at init with a message an
//! operator can act on.

use std::time::Duration;

use auth_events_aws::env::{ConfigError, Vars, millis_or, parsed_or, required, secs_or};
use auth_events_core::redact::PiiKey;

use crate::policy::SignInPolicy;

pub const DEFAULT_CERTS_URL: &str =
    "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com";

/// `DurationSeconds` bounds (AWS limits): at least 900, and at most one hour
/// because a Lambda's credentials are themselves a role session, and STS
/// caps a chained role session at one hour whatever the role's maximum.
const SESSION_SECS_RANGE: std::ops::RangeInclusive<u64> = 900..=3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `FIREBASE_PROJECT_ID`: the tokens' audience and issuer suffix.
    pub firebase_project_id: String,
    /// `APP_ROLE_ARN`: the role the desktop app's credentials are for.
    pub app_role_arn: String,
    /// `OUTBOX_TABLE`
    pub outbox_table: String,
    /// `EVENT_BUS_NAME`: the fallback when the outbox write fails.
    pub event_bus_name: String,
    /// `FIREBASE_CERTS_URL`: the x509 certificate map `{kid: PEM}`. Only
    /// Google's, unless the development switch `ALLOW_DEV_CERTS_URL=true`
    /// (the local stack, tests), which also allows plain http on loopback.
    pub firebase_certs_url: String,
    /// `ALLOWED_PROVIDERS`, `REQUIRE_VERIFIED_EMAIL`, `ALLOWED_TENANTS`.
    pub policy: SignInPolicy,
    /// `PII_HASH_KEY`: the per-deployment key of the e-mail hashes in logs.
    pub pii_hash_key: PiiKey,
    /// `OUTBOX_WRITE_BUDGET_MS`: the time the outbox write, and separately the
    /// fallback publish, may add to a sign-in.
    pub outbox_write_budget: Duration,
    /// `OUTBOX_REQUIRED`: answer 503 rather than return credentials for a
    /// sign-in whose event could be neither written nor published.
    pub outbox_required: bool,
    /// `CLOCK_SKEW_SECS`
    pub clock_skew: Duration,
    /// `SESSION_DURATION_SECS`
    pub session_duration: Duration,
    /// `OUTBOX_TTL_DAYS`
    pub outbox_ttl: Duration,
}

fn invalid(name: &'static str, value: &impl ToString, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_string(),
        reason: reason.to_owned(),
    }
}

impl Config {
    pub fn from_vars(vars: &(impl Vars + ?Sized)) -> Result<Self, ConfigError> {
        let firebase_project_id = required(vars, "FIREBASE_PROJECT_ID")?;
        let app_role_arn = required(vars, "APP_ROLE_ARN")?;
        if !app_role_arn.starts_with("arn:") || !app_role_arn.contains(":role/") {
            return Err(invalid(
                "APP_ROLE_ARN",
                &app_role_arn,
                "not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)",
            ));
        }
        let outbox_table = required(vars, "OUTBOX_TABLE")?;
        let event_bus_name = required(vars, "EVENT_BUS_NAME")?;
        let firebase_certs_url =
            parsed_or(vars, "FIREBASE_CERTS_URL", DEFAULT_CERTS_URL.to_owned())?;
        let allow_dev_certs_url = parsed_or(vars, "ALLOW_DEV_CERTS_URL", false)?;
        if firebase_certs_url != DEFAULT_CERTS_URL {
            // The map decides which signatures are genuine: anyone who can
            // point it elsewhere can mint tokens for any user.
            if !allow_dev_certs_url {
                return Err(invalid(
                    "FIREBASE_CERTS_URL",
                    &firebase_certs_url,
                    "only Google's certificate map is accepted; another needs the development switch ALLOW_DEV_CERTS_URL=true",
                ));
            }
            if !certs_url_is_acceptable(&firebase_certs_url) {
                return Err(invalid(
                    "FIREBASE_CERTS_URL",
                    &firebase_certs_url,
                    "must be an https URL (plain http only for a loopback host)",
                ));
            }
        }
        let policy = SignInPolicy::from_vars(vars)?;
        let pii_hash_key =
            PiiKey::parse(&required(vars, "PII_HASH_KEY")?).map_err(|e| ConfigError::Invalid {
                name: "PII_HASH_KEY",
                value: "[redacted]".to_owned(),
                reason: e.to_string(),
            })?;
        let outbox_write_budget =
            millis_or(vars, "OUTBOX_WRITE_BUDGET_MS", Duration::from_millis(300))?;
        if outbox_write_budget.is_zero() {
            return Err(invalid("OUTBOX_WRITE_BUDGET_MS", &0, "must be positive"));
        }
        let outbox_required = parsed_or(vars, "OUTBOX_REQUIRED", false)?;
        let clock_skew = secs_or(vars, "CLOCK_SKEW_SECS", Duration::from_mins(1))?;
        if clock_skew > Duration::from_mins(5) {
            return Err(invalid(
                "CLOCK_SKEW_SECS",
                &clock_skew.as_secs(),
                "at most 300: a larger allowance keeps expired tokens usable",
            ));
        }
        let session_duration = secs_or(vars, "SESSION_DURATION_SECS", Duration::from_hours(1))?;
        if !SESSION_SECS_RANGE.contains(&session_duration.as_secs()) {
            return Err(invalid(
                "SESSION_DURATION_SECS",
                &session_duration.as_secs(),
                "between 900 and 3600: a chained role session lasts at most one hour",
            ));
        }
        let ttl_days: u64 = parsed_or(vars, "OUTBOX_TTL_DAYS", 14)?;
        // The outbox must outlive the stream's 24 h retention, or the sweep
        // could miss what the stream never delivered.
        if !(2..=365).contains(&ttl_days) {
            return Err(invalid(
                "OUTBOX_TTL_DAYS",
                &ttl_days,
                "must be between 2 and 365 days",
            ));
        }
        Ok(Self {
            firebase_project_id,
            app_role_arn,
            outbox_table,
            event_bus_name,
            firebase_certs_url,
            policy,
            pii_hash_key,
            outbox_write_budget,
            outbox_required,
            clock_skew,
            session_duration,
            outbox_ttl: Duration::from_secs(ttl_days * 24 * 3600),
        })
    }
}

/// The certificate URL decides which keys we trust, so it must be https; the
/// local stack serves its test certificates over plain http on loopback.
fn certs_url_is_acceptable(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    url.strip_prefix("http://").is_some_and(|rest| {
        let authority = rest.split('/').next().unwrap_or_default();
        let host = authority
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(authority, |(host, _)| host);
        matches!(host, "127.0.0.1" | "localhost" | "[::1]")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: [(&str, &str); 5] = [
        ("FIREBASE_PROJECT_ID", "demo-project"),
        ("APP_ROLE_ARN", "arn:aws:iam::123456789012:role/app"),
        ("OUTBOX_TABLE", "dev-outbox"),
        ("EVENT_BUS_NAME", "dev-bus"),
        ("PII_HASH_KEY", "0123456789abcdef0123456789abcdef"),
    ];

    /// The required variables, then `overrides`.
    fn vars<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        [REQUIRED.as_slice(), overrides].concat()
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let config = Config::from_vars(&vars(&[])).expect("valid");
        assert_eq!(config.firebase_certs_url, DEFAULT_CERTS_URL);
        assert_eq!(config.policy, SignInPolicy::default());
        assert_eq!(config.outbox_write_budget, Duration::from_millis(300));
        assert!(!config.outbox_required);
        assert_eq!(config.clock_skew, Duration::from_mins(1));
        assert_eq!(config.session_duration, Duration::from_hours(1));
        assert_eq!(config.outbox_ttl, Duration::from_hours(14 * 24));
    }

    #[test]
    fn every_missing_required_variable_is_named() {
        for name in [
            "FIREBASE_PROJECT_ID",
            "APP_ROLE_ARN",
            "OUTBOX_TABLE",
            "EVENT_BUS_NAME",
            "PII_HASH_KEY",
        ] {
            let mut v = vars(&[]);
            v.retain(|(key, _)| *key != name);
            let error = Config::from_vars(&v).expect_err("missing");
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn invalid_values_are_refused_naming_the_variable() {
        for (name, value) in [
            ("OUTBOX_REQUIRED", "yes"),
            ("OUTBOX_WRITE_BUDGET_MS", "0"),
            ("OUTBOX_WRITE_BUDGET_MS", "fast"),
            ("SESSION_DURATION_SECS", "60"),
            ("SESSION_DURATION_SECS", "7200"),
            ("CLOCK_SKEW_SECS", "3600"),
            ("OUTBOX_TTL_DAYS", "1"),
            ("APP_ROLE_ARN", "app-role"),
            ("PII_HASH_KEY", "too-short"),
            ("ALLOW_DEV_CERTS_URL", "maybe"),
        ] {
            let error = Config::from_vars(&vars(&[(name, value)])).expect_err(value);
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn the_hash_key_is_never_echoed_in_an_error() {
        let error = Config::from_vars(&vars(&[("PII_HASH_KEY", "secret-but-short")]))
            .expect_err("too short");
        assert!(!error.to_string().contains("secret-but-short"), "{error}");
    }

    #[test]
    fn another_certificate_map_needs_the_development_switch() {
        for url in [
            "https://certs.example.com/x509",
            "http://127.0.0.1:8123/certs",
        ] {
            let error = Config::from_vars(&vars(&[("FIREBASE_CERTS_URL", url)])).expect_err(url);
            assert!(error.to_string().contains("ALLOW_DEV_CERTS_URL"), "{error}");
        }
    }

    #[test]
    fn with_the_switch_plain_http_certificates_are_accepted_only_on_loopback() {
        let dev = ("ALLOW_DEV_CERTS_URL", "true");
        for url in [
            "http://127.0.0.1:8123/certs",
            "http://localhost/certs",
            "http://[::1]:9/x",
            "https://certs.example.com/x509",
        ] {
            let config = Config::from_vars(&vars(&[dev, ("FIREBASE_CERTS_URL", url)])).expect(url);
            assert_eq!(config.firebase_certs_url, url);
        }
        for url in [
            "http://example.com/certs",
            "http://127.0.0.1.evil.com/certs",
        ] {
            let error =
                Config::from_vars(&vars(&[dev, ("FIREBASE_CERTS_URL", url)])).expect_err(url);
            assert!(error.to_string().contains("FIREBASE_CERTS_URL"), "{error}");
        }
    }

    #[test]
    fn overrides_are_read() {
        let config = Config::from_vars(&vars(&[
            ("OUTBOX_REQUIRED", "true"),
            ("OUTBOX_WRITE_BUDGET_MS", "120"),
            ("SESSION_DURATION_SECS", "900"),
            ("OUTBOX_TTL_DAYS", "30"),
            ("CLOCK_SKEW_SECS", "5"),
        ]))
        .expect("valid");
        assert!(config.outbox_required);
        assert_eq!(config.outbox_write_budget, Duration::from_millis(120));
        assert_eq!(config.session_duration, Duration::from_mins(15));
        assert_eq!(config.outbox_ttl, Duration::from_hours(30 * 24));
        assert_eq!(config.clock_skew, Duration::from_secs(5));
    }
}
