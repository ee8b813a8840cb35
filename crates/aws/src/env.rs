//! Typed configuration from environment variables, read once at cold start.
//! Every error names the variable, so a misconfigured function fails at
//! init with a message an operator can act on.

use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is required but not set")]
    Missing { name: &'static str },
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// A source of variables; the process environment in production, a map in
/// tests.
pub trait Vars {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Vars for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<S: std::hash::BuildHasher> Vars for std::collections::HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned().filter(|v| !v.is_empty())
    }
}

pub fn required(vars: &impl Vars, name: &'static str) -> Result<String, ConfigError> {
    vars.var(name).ok_or(ConfigError::Missing { name })
}

pub fn parsed_or<T>(vars: &impl Vars, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match vars.var(name) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
            value,
        }),
    }
}

pub fn millis_or(
    vars: &impl Vars,
    name: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    parsed_or(vars, name, default_ms).map(Duration::from_millis)
}

pub fn secs_or(
    vars: &impl Vars,
    name: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    parsed_or(vars, name, default.as_secs()).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_missing_variable_is_named() {
        let error = required(&vars(&[]), "OUTBOX_TABLE").expect_err("missing");
        assert_eq!(
            error.to_string(),
            "environment variable OUTBOX_TABLE is required but not set"
        );
    }

    #[test]
    fn an_invalid_value_is_named_with_the_reason() {
        let error = parsed_or(&vars(&[("MAX_ATTEMPTS", "five")]), "MAX_ATTEMPTS", 5u32)
            .expect_err("invalid");
        assert!(
            error
                .to_string()
                .starts_with("environment variable MAX_ATTEMPTS=\"five\" is invalid")
        );
    }

    #[test]
    fn defaults_apply_when_unset() {
        let v = vars(&[("OUTBOX_WRITE_BUDGET_MS", "120")]);
        assert_eq!(
            millis_or(&v, "OUTBOX_WRITE_BUDGET_MS", Duration::ZERO).ok(),
            Some(Duration::from_millis(120))
        );
        assert_eq!(
            secs_or(&v, "UNSET", Duration::from_secs(3)).ok(),
            Some(Duration::from_secs(3))
        );
    }
}
