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

/// A source of variables: the process environment in production, name-value
/// pairs in tests and local drivers.
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

/// Name-value pairs; a later pair overrides an earlier one of the same name,
/// so defaults can be listed first and a test's overrides after them.
impl<K: AsRef<str>, V: AsRef<str>> Vars for [(K, V)] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(key, _)| key.as_ref() == name)
            .map(|(_, value)| value.as_ref())
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Vars for [(K, V); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.as_slice().var(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Vars for Vec<(K, V)> {
    fn var(&self, name: &str) -> Option<String> {
        self.as_slice().var(name)
    }
}

pub fn required(vars: &(impl Vars + ?Sized), name: &'static str) -> Result<String, ConfigError> {
    vars.var(name).ok_or(ConfigError::Missing { name })
}

pub fn parsed_or<T>(
    vars: &(impl Vars + ?Sized),
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
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
    vars: &(impl Vars + ?Sized),
    name: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    parsed_or(vars, name, default_ms).map(Duration::from_millis)
}

pub fn secs_or(
    vars: &(impl Vars + ?Sized),
    name: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    parsed_or(vars, name, default.as_secs()).map(Duration::from_secs)
}

/// `30s`, `15m`, `2h`, `3d`: a whole number and one unit.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    const FIX: &str = "use a whole number followed by s, m, h or d (e.g. 30s, 15m, 2h, 3d)";
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("the unit is missing: {FIX}"))?;
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| FIX.to_owned())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(FIX.to_owned()),
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("too long: {FIX}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_one_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_mins(15)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_hours(2)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_hours(72)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "5",
            "5x",
            "m",
            "1.5h",
            "-1s",
            "2h30m",
            "99999999999999999999d",
        ] {
            let error = parse_duration(bad).expect_err(bad);
            assert!(error.contains("e.g. 30s"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_missing_variable_is_named() {
        let error = required(&[("EVENT_BUS_NAME", "bus")], "OUTBOX_TABLE").expect_err("missing");
        assert_eq!(
            error.to_string(),
            "environment variable OUTBOX_TABLE is required but not set"
        );
    }

    #[test]
    fn an_invalid_value_is_named_with_the_reason() {
        let error =
            parsed_or(&[("MAX_ATTEMPTS", "five")], "MAX_ATTEMPTS", 5u32).expect_err("invalid");
        assert!(
            error
                .to_string()
                .starts_with("environment variable MAX_ATTEMPTS=\"five\" is invalid")
        );
    }

    #[test]
    fn a_later_pair_overrides_an_earlier_one_and_empty_means_unset() {
        let v = [
            ("MAX_ATTEMPTS", "5"),
            ("DLQ_URL", "q"),
            ("MAX_ATTEMPTS", "3"),
            ("DLQ_URL", ""),
        ];
        assert_eq!(v.var("MAX_ATTEMPTS").as_deref(), Some("3"));
        assert_eq!(v.var("DLQ_URL"), None);
        assert_eq!(v.var("UNSET"), None);
    }

    #[test]
    fn defaults_apply_when_unset() {
        let v = [("OUTBOX_WRITE_BUDGET_MS", "120")];
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
