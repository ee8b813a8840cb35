//! The relay's settings, read once at cold start from the environment.

use std::fmt::Display;
use std::time::Duration;

use auth_events_aws::env::{ConfigError, Vars, millis_or, parsed_or, required, secs_or};
use auth_events_core::limits;
use auth_events_core::relay::RelayConfig;
use auth_events_core::retry::FullJitter;

/// Where the relay reads, publishes and dead-letters, and how hard it tries.
#[derive(Debug, Clone)]
pub struct Config {
    pub outbox_table: String,
    pub event_bus_name: String,
    pub dlq_url: String,
    /// The DLQ's `MaximumMessageSize`: letters are cut to fit it.
    pub dlq_max_message_bytes: usize,
    pub relay: RelayConfig,
    pub handler: HandlerConfig,
}

/// The settings the handler itself uses, apart from the publishing engine's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerConfig {
    /// The sweep leaves younger pending items to the stream, which normally
    /// delivers them within seconds.
    pub sweep_older_than: Duration,
    /// Bounds one sweep's work, so a large backlog drains over several runs
    /// instead of timing out in one.
    pub sweep_max_items: usize,
    /// Kept free before the Lambda deadline so the handler can still count
    /// failures, dead-letter and answer before it is killed.
    pub safety_margin: Duration,
    /// The `Function` metric dimension.
    pub function_name: String,
    /// Whether to write EMF lines to stdout; a local stack hosting the
    /// handler inside a CLI turns them off to keep its output readable.
    pub emit_metrics: bool,
}

impl Default for HandlerConfig {
    fn default() -> Self {
        Self {
            sweep_older_than: Duration::from_mins(5),
            sweep_max_items: 500,
            safety_margin: Duration::from_secs(2),
            function_name: DEFAULT_FUNCTION_NAME.to_owned(),
            emit_metrics: true,
        }
    }
}

/// The dimension value outside Lambda (tests, the local stack).
pub const DEFAULT_FUNCTION_NAME: &str = "outbox-relay";

impl Config {
    pub fn from_vars(vars: &(impl Vars + ?Sized)) -> Result<Self, ConfigError> {
        let defaults = RelayConfig::default();
        let handler_defaults = HandlerConfig::default();

        let max_attempts: u32 = parsed_or(vars, "MAX_ATTEMPTS", defaults.max_attempts)?;
        check(
            max_attempts >= 1,
            "MAX_ATTEMPTS",
            max_attempts,
            "must be at least 1",
        )?;

        let max_request_bytes: usize =
            parsed_or(vars, "MAX_REQUEST_BYTES", defaults.max_request_bytes)?;
        check(
            (1..=limits::PUT_EVENTS_MAX_REQUEST_BYTES).contains(&max_request_bytes),
            "MAX_REQUEST_BYTES",
            max_request_bytes,
            // Above AWS's limit, EventBridge would refuse every request the
            // packer fills; below it (262144 where the old limit holds) is
            // how an operator matches a stricter region.
            "must be between 1 and 1048576 (the PutEvents limit)",
        )?;

        let dlq_max_message_bytes: usize =
            parsed_or(vars, "DLQ_MAX_MESSAGE_BYTES", limits::DLQ_MAX_MESSAGE_BYTES)?;
        check(
            (1024..=limits::SQS_MAX_MESSAGE_BYTES).contains(&dlq_max_message_bytes),
            "DLQ_MAX_MESSAGE_BYTES",
            dlq_max_message_bytes,
            // SQS's own bounds on MaximumMessageSize.
            "must be between 1024 and 1048576, the DLQ's MaximumMessageSize",
        )?;

        let backoff_min = millis_or(vars, "BACKOFF_MIN_MS", defaults.backoff.min_delay)?;
        let backoff_max = millis_or(vars, "BACKOFF_MAX_MS", defaults.backoff.max_delay)?;
        // A zero delay would retry a throttled bus in a tight loop.
        check(
            !backoff_min.is_zero(),
            "BACKOFF_MIN_MS",
            backoff_min.as_millis(),
            "must be at least 1",
        )?;
        check(
            backoff_max >= backoff_min,
            "BACKOFF_MAX_MS",
            backoff_max.as_millis(),
            "must not be below BACKOFF_MIN_MS",
        )?;

        let sweep_max_items: usize =
            parsed_or(vars, "SWEEP_MAX_ITEMS", handler_defaults.sweep_max_items)?;
        check(
            sweep_max_items >= 1,
            "SWEEP_MAX_ITEMS",
            sweep_max_items,
            "must be at least 1",
        )?;

        Ok(Self {
            outbox_table: required(vars, "OUTBOX_TABLE")?,
            event_bus_name: required(vars, "EVENT_BUS_NAME")?,
            dlq_url: required(vars, "DLQ_URL")?,
            dlq_max_message_bytes,
            relay: RelayConfig {
                max_entries: defaults.max_entries,
                max_request_bytes,
                max_attempts,
                backoff: FullJitter::new(backoff_min, backoff_max),
                ..defaults
            },
            handler: HandlerConfig {
                sweep_older_than: secs_or(
                    vars,
                    "SWEEP_OLDER_THAN_SECS",
                    handler_defaults.sweep_older_than,
                )?,
                sweep_max_items,
                safety_margin: millis_or(vars, "SAFETY_MARGIN_MS", handler_defaults.safety_margin)?,
                function_name: parsed_or(
                    vars,
                    "AWS_LAMBDA_FUNCTION_NAME",
                    handler_defaults.function_name,
                )?,
                emit_metrics: true,
            },
        })
    }
}

fn check(
    ok: bool,
    name: &'static str,
    value: impl Display,
    reason: &str,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            name,
            value: value.to_string(),
            reason: reason.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: [(&str, &str); 3] = [
        ("OUTBOX_TABLE", "dev-outbox"),
        ("EVENT_BUS_NAME", "dev-auth"),
        (
            "DLQ_URL",
            "http://localhost:5000/123456789012/dev-relay-dlq",
        ),
    ];

    /// The required variables, then `overrides`.
    fn vars<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        [REQUIRED.as_slice(), overrides].concat()
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let config = Config::from_vars(&vars(&[])).expect("valid");
        assert_eq!(config.outbox_table, "dev-outbox");
        assert_eq!(config.event_bus_name, "dev-auth");
        assert_eq!(config.relay.max_attempts, 5);
        assert_eq!(config.relay.max_entries, 10);
        assert_eq!(config.dlq_max_message_bytes, 262_144);
        assert_eq!(config.relay.max_request_bytes, 1_048_576);
        assert_eq!(config.relay.backoff.min_delay, Duration::from_millis(50));
        assert_eq!(config.relay.backoff.max_delay, Duration::from_secs(2));
        assert_eq!(config.relay.backoff.max_times, None);
        assert_eq!(config.handler, HandlerConfig::default());
        assert_eq!(config.handler.sweep_older_than, Duration::from_mins(5));
        assert_eq!(config.handler.sweep_max_items, 500);
        assert_eq!(config.handler.safety_margin, Duration::from_secs(2));
    }

    #[test]
    fn every_setting_can_be_overridden() {
        let config = Config::from_vars(&vars(&[
            ("MAX_ATTEMPTS", "3"),
            ("MAX_REQUEST_BYTES", "100000"),
            ("SWEEP_OLDER_THAN_SECS", "60"),
            ("SWEEP_MAX_ITEMS", "50"),
            ("SAFETY_MARGIN_MS", "500"),
            ("BACKOFF_MIN_MS", "5"),
            ("BACKOFF_MAX_MS", "100"),
            ("AWS_LAMBDA_FUNCTION_NAME", "dev-outbox-relay"),
        ]))
        .expect("valid");
        assert_eq!(config.relay.max_attempts, 3);
        assert_eq!(config.relay.max_request_bytes, 100_000);
        assert_eq!(config.relay.backoff.min_delay, Duration::from_millis(5));
        assert_eq!(config.relay.backoff.max_delay, Duration::from_millis(100));
        assert_eq!(config.handler.sweep_older_than, Duration::from_mins(1));
        assert_eq!(config.handler.sweep_max_items, 50);
        assert_eq!(config.handler.safety_margin, Duration::from_millis(500));
        assert_eq!(config.handler.function_name, "dev-outbox-relay");
    }

    #[test]
    fn a_missing_required_variable_is_named() {
        let mut env = vars(&[]);
        env.retain(|(key, _)| *key != "DLQ_URL");
        let error = Config::from_vars(&env).expect_err("missing");
        assert!(error.to_string().contains("DLQ_URL"), "{error}");
    }

    #[test]
    fn nonsensical_values_fail_at_cold_start_naming_the_variable() {
        for (name, value) in [
            ("MAX_ATTEMPTS", "0"),
            ("MAX_ATTEMPTS", "five"),
            ("MAX_REQUEST_BYTES", "0"),
            ("MAX_REQUEST_BYTES", "1048577"),
            ("BACKOFF_MIN_MS", "0"),
            ("BACKOFF_MAX_MS", "10"),
            ("SWEEP_MAX_ITEMS", "0"),
            ("SAFETY_MARGIN_MS", "-1"),
        ] {
            let error = Config::from_vars(&vars(&[(name, value)])).expect_err(name);
            assert!(error.to_string().contains(name), "{name}={value}: {error}");
        }
    }
}
