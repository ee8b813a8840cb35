//! The function's settings, read once at cold start.

use std::time::Duration;

use auth_events_aws::env::{ConfigError, Vars, millis_or, parsed_or, required};
use auth_events_core::retry::FullJitter;

const SECONDS_PER_DAY: u64 = 24 * 60 * 60;

/// Everything the handler and its store need from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `USERS_TABLE`: the Users table, keyed by `userId`.
    pub users_table: String,
    /// `PROCESSED_EVENTS_TABLE`: the idempotency records, keyed by `eventId`.
    pub processed_table: String,
    /// `PROCESSED_TTL_DAYS` (35): must outlive the outbox TTL plus the DLQ's
    /// retention, or a late redrive is counted twice.
    pub processed_ttl: Duration,
    /// `RETRY_MAX_TIMES` (6): retries of a throttled or conflicting write
    /// before the invocation fails and Lambda retries the event.
    pub retry_max_times: usize,
    /// `BACKOFF_MIN_MS` (20).
    pub backoff_min: Duration,
    /// `BACKOFF_MAX_MS` (1000).
    pub backoff_max: Duration,
}

impl Config {
    pub fn from_vars(vars: &(impl Vars + ?Sized)) -> Result<Self, ConfigError> {
        let users_table = required(vars, "USERS_TABLE")?;
        let processed_table = required(vars, "PROCESSED_EVENTS_TABLE")?;
        let ttl_days: u64 = parsed_or(vars, "PROCESSED_TTL_DAYS", 35)?;
        let processed_ttl = ttl_days
            .checked_mul(SECONDS_PER_DAY)
            .filter(|_| ttl_days > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| ConfigError::Invalid {
                name: "PROCESSED_TTL_DAYS",
                value: ttl_days.to_string(),
                // Zero would expire idempotency records at once and let
                // every retry count again.
                reason: "must be a positive number of days".to_owned(),
            })?;
        let backoff_min = millis_or(vars, "BACKOFF_MIN_MS", Duration::from_millis(20))?;
        let backoff_max = millis_or(vars, "BACKOFF_MAX_MS", Duration::from_secs(1))?;
        if backoff_max < backoff_min {
            return Err(ConfigError::Invalid {
                name: "BACKOFF_MAX_MS",
                value: backoff_max.as_millis().to_string(),
                reason: format!("is below BACKOFF_MIN_MS ({} ms)", backoff_min.as_millis()),
            });
        }
        Ok(Self {
            users_table,
            processed_table,
            processed_ttl,
            retry_max_times: parsed_or(vars, "RETRY_MAX_TIMES", 6)?,
            backoff_min,
            backoff_max,
        })
    }

    /// The retry schedule for profile writes.
    pub fn backoff(&self) -> FullJitter {
        FullJitter::new(self.backoff_min, self.backoff_max).with_max_times(self.retry_max_times)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: [(&str, &str); 2] = [
        ("USERS_TABLE", "dev-users"),
        ("PROCESSED_EVENTS_TABLE", "dev-processed-events"),
    ];

    #[test]
    fn only_the_table_names_are_required_and_the_rest_has_documented_defaults() {
        let config = Config::from_vars(&TABLES).expect("valid");
        assert_eq!(
            config,
            Config {
                users_table: "dev-users".to_owned(),
                processed_table: "dev-processed-events".to_owned(),
                processed_ttl: Duration::from_secs(35 * SECONDS_PER_DAY),
                retry_max_times: 6,
                backoff_min: Duration::from_millis(20),
                backoff_max: Duration::from_secs(1),
            }
        );
        assert_eq!(
            config.processed_ttl,
            auth_events_core::profile::DEFAULT_PROCESSED_TTL
        );
    }

    #[test]
    fn every_setting_can_be_overridden() {
        let overrides = [
            ("PROCESSED_TTL_DAYS", "40"),
            ("RETRY_MAX_TIMES", "3"),
            ("BACKOFF_MIN_MS", "5"),
            ("BACKOFF_MAX_MS", "50"),
        ];
        let all = [TABLES.as_slice(), &overrides].concat();
        let config = Config::from_vars(&all).expect("valid");
        assert_eq!(
            config.processed_ttl,
            Duration::from_secs(40 * SECONDS_PER_DAY)
        );
        assert_eq!(config.retry_max_times, 3);
        assert_eq!(config.backoff().max_times, Some(3));
        assert_eq!(config.backoff().min_delay, Duration::from_millis(5));
        assert_eq!(config.backoff().max_delay, Duration::from_millis(50));
    }

    #[test]
    fn a_missing_table_fails_naming_the_variable() {
        let error = Config::from_vars(&TABLES[..1]).expect_err("missing");
        assert!(
            error.to_string().contains("PROCESSED_EVENTS_TABLE"),
            "{error}"
        );
        let error = Config::from_vars(&TABLES[1..]).expect_err("missing");
        assert!(error.to_string().contains("USERS_TABLE"), "{error}");
    }

    #[test]
    fn settings_that_would_break_deduplication_or_backoff_are_refused_by_name() {
        for (name, value) in [
            ("PROCESSED_TTL_DAYS", "0"),
            ("PROCESSED_TTL_DAYS", "thirty"),
            ("RETRY_MAX_TIMES", "-1"),
            ("BACKOFF_MAX_MS", "10"),
        ] {
            let all = [TABLES.as_slice(), &[(name, value)]].concat();
            let error = Config::from_vars(&all).expect_err("invalid");
            assert!(error.to_string().contains(name), "{name}={value}: {error}");
        }
    }
}
