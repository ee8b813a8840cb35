//! Metrics as CloudWatch embedded metric format (EMF) log lines: one JSON
//! object per invocation on stdout, which CloudWatch Logs turns into metrics
//! without an API call (and without its latency or its IAM permission).

use std::io::Write;
use std::time::Duration;

use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "AuthEvents";
pub const FUNCTION_DIMENSION: &str = "Function";

pub const PUBLISHED: &str = "Published";
pub const RESENT: &str = "Resent";
pub const DEAD_LETTERED: &str = "DeadLettered";
pub const IGNORED: &str = "Ignored";
pub const STILL_FAILING: &str = "StillFailing";
pub const BATCH_DURATION: &str = "BatchDurationMs";
pub const PUBLISH_LAG: &str = "PublishLagMs";
pub const OLDEST_PENDING_AGE: &str = "OldestPendingAgeSeconds";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
        }
    }
}

/// What one invocation did, in numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayMetrics {
    pub published: usize,
    pub resent: usize,
    pub dead_lettered: usize,
    pub ignored: usize,
    pub still_failing: usize,
    pub batch_duration: Duration,
    /// Absent when nothing was published: a zero would drag the statistics.
    pub publish_lag: Option<Duration>,
}

/// One EMF document under construction.
#[derive(Debug, Clone)]
pub struct Emf {
    timestamp_millis: i64,
    /// Metric definitions per dimension-set group, in insertion order.
    directives: Vec<(Vec<Vec<&'static str>>, Vec<Value>)>,
    members: Map<String, Value>,
}

impl Emf {
    pub fn new(function: &str, timestamp_millis: i64) -> Self {
        let mut members = Map::new();
        members.insert(FUNCTION_DIMENSION.to_owned(), json!(function));
        Self {
            timestamp_millis,
            directives: Vec::new(),
            members,
        }
    }

    /// A metric dimensioned by function.
    #[must_use]
    pub fn metric(self, name: &'static str, unit: Unit, value: u64) -> Self {
        self.metric_in(vec![vec![FUNCTION_DIMENSION]], name, unit, value)
    }

    /// A metric published both per function and without dimensions, for
    /// alarms that are defined on the bare metric.
    #[must_use]
    pub fn alarm_metric(self, name: &'static str, unit: Unit, value: u64) -> Self {
        self.metric_in(vec![vec![FUNCTION_DIMENSION], vec![]], name, unit, value)
    }

    fn metric_in(
        mut self,
        dimensions: Vec<Vec<&'static str>>,
        name: &'static str,
        unit: Unit,
        value: u64,
    ) -> Self {
        let definition = json!({ "Name": name, "Unit": unit.as_str() });
        match self.directives.iter_mut().find(|(d, _)| *d == dimensions) {
            Some((_, metrics)) => metrics.push(definition),
            None => self.directives.push((dimensions, vec![definition])),
        }
        self.members.insert(name.to_owned(), json!(value));
        self
    }

    /// A searchable member that is not a metric.
    #[must_use]
    pub fn property(mut self, name: &str, value: Value) -> Self {
        self.members.insert(name.to_owned(), value);
        self
    }

    pub fn to_json(&self) -> Value {
        let directives: Vec<Value> = self
            .directives
            .iter()
            .map(|(dimensions, metrics)| {
                json!({
                    "Namespace": NAMESPACE,
                    "Dimensions": dimensions,
                    "Metrics": metrics,
                })
            })
            .collect();
        let mut root = self.members.clone();
        root.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": self.timestamp_millis,
                "CloudWatchMetrics": directives,
            }),
        );
        Value::Object(root)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn relay_metrics(emf: Emf, metrics: &RelayMetrics) -> Emf {
    let emf = emf
        .metric(PUBLISHED, Unit::Count, count(metrics.published))
        .metric(RESENT, Unit::Count, count(metrics.resent))
        .metric(DEAD_LETTERED, Unit::Count, count(metrics.dead_lettered))
        .metric(STILL_FAILING, Unit::Count, count(metrics.still_failing))
        .metric(
            BATCH_DURATION,
            Unit::Milliseconds,
            millis(metrics.batch_duration),
        );
    match metrics.publish_lag {
        Some(lag) => emf.metric(PUBLISH_LAG, Unit::Milliseconds, millis(lag)),
        None => emf,
    }
}

/// The line a stream invocation logs.
pub fn stream_line(function: &str, timestamp_millis: i64, metrics: &RelayMetrics) -> Emf {
    relay_metrics(Emf::new(function, timestamp_millis), metrics)
        .metric(IGNORED, Unit::Count, count(metrics.ignored))
        .property("trigger", json!("stream"))
}

/// The line a sweep logs. The oldest pending age is always present, 0 when
/// nothing is pending, because its alarm treats missing data as breaching:
/// silence must mean the sweep stopped, never that all is well.
pub fn sweep_line(
    function: &str,
    timestamp_millis: i64,
    metrics: &RelayMetrics,
    oldest_pending_age: Duration,
) -> Emf {
    relay_metrics(Emf::new(function, timestamp_millis), metrics)
        .alarm_metric(
            OLDEST_PENDING_AGE,
            Unit::Seconds,
            oldest_pending_age.as_secs(),
        )
        .property("trigger", json!("sweep"))
}

/// Writes the document as one line on stdout, where Lambda's log capture
/// picks it up. A failed write only loses a data point.
pub fn emit(emf: &Emf) {
    let line = emf.to_json().to_string();
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RelayMetrics {
        RelayMetrics {
            published: 99,
            resent: 7,
            dead_lettered: 1,
            ignored: 2,
            still_failing: 0,
            batch_duration: Duration::from_millis(120),
            publish_lag: Some(Duration::from_millis(850)),
        }
    }

    fn names(directive: &Value) -> Vec<String> {
        directive["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .map(|m| m["Name"].as_str().expect("name").to_owned())
            .collect()
    }

    #[test]
    fn a_stream_line_is_a_valid_emf_document() {
        let line = stream_line("dev-outbox-relay", 1_764_416_766_123, &sample()).to_json();
        let aws = &line["_aws"];
        assert_eq!(aws["Timestamp"], json!(1_764_416_766_123_i64));
        let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
        assert_eq!(directives.len(), 1);
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], json!("AuthEvents"));
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert_eq!(
            names(directive),
            [
                "Published",
                "Resent",
                "DeadLettered",
                "StillFailing",
                "BatchDurationMs",
                "PublishLagMs",
                "Ignored"
            ]
        );
        // Every declared metric and dimension must be a root member.
        assert_eq!(line["Function"], json!("dev-outbox-relay"));
        for name in names(directive) {
            assert!(line[&name].is_u64(), "{name} missing from the root");
        }
        assert_eq!(line["Published"], json!(99));
        assert_eq!(line["Resent"], json!(7));
        assert_eq!(line["PublishLagMs"], json!(850));
        assert_eq!(line["trigger"], json!("stream"));
    }

    #[test]
    fn publish_lag_is_left_out_when_nothing_was_published() {
        let metrics = RelayMetrics {
            publish_lag: None,
            ..sample()
        };
        let line = stream_line("f", 0, &metrics).to_json();
        assert!(line.get("PublishLagMs").is_none());
        assert!(!names(&line["_aws"]["CloudWatchMetrics"][0]).contains(&"PublishLagMs".to_owned()));
    }

    #[test]
    fn the_sweep_always_reports_oldest_pending_age_also_without_dimensions() {
        let line = sweep_line("f", 0, &RelayMetrics::default(), Duration::ZERO).to_json();
        assert_eq!(line["OldestPendingAgeSeconds"], json!(0));
        let directives = line["_aws"]["CloudWatchMetrics"]
            .as_array()
            .expect("directives");
        let alarm = directives
            .iter()
            .find(|d| names(d) == ["OldestPendingAgeSeconds"])
            .expect("a directive for the alarm metric");
        // The Terraform alarm names no dimension, so the bare metric must exist.
        assert_eq!(alarm["Dimensions"], json!([["Function"], []]));
        assert_eq!(alarm["Metrics"][0]["Unit"], json!("Seconds"));
        assert_eq!(line["trigger"], json!("sweep"));
    }

    #[test]
    fn a_line_is_single_line_json() {
        let text = sweep_line("f", 0, &sample(), Duration::from_secs(61))
            .to_json()
            .to_string();
        assert!(!text.contains('\n'));
        let back: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(back["OldestPendingAgeSeconds"], json!(61));
    }
}
