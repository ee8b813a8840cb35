//! Logs as one JSON object per line, as CloudWatch Logs Insights reads them.
//!
//! `RUST_LOG` sets the level of this project's own crates only. Everything
//! else (the Lambda runtime, hyper, reqwest, rustls, the AWS SDK) stays at
//! `info` or above whatever it says: at `trace` the runtime logs every raw
//! invocation payload (a sign-in's ID token, worth an hour of AWS
//! credentials) and the SDK its wire traffic and signing input (session
//! tokens). Our own logs never carry a token or an address in clear.

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// The crates whose log level `RUST_LOG` may lower below `info`.
pub const OWN_CRATES: [&str; 5] = [
    "auth_exchange",
    "auth_events_core",
    "auth_events_aws",
    "outbox_relay",
    "user_profile",
];

/// Whether `metadata` may be logged whatever `RUST_LOG` allows: events and
/// spans of our own crates, and everyone else's at `info` or above.
pub fn within_floor(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= Level::INFO || is_own(metadata.target())
}

fn is_own(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or_default();
    OWN_CRATES.contains(&krate)
}

/// Installs the JSON subscriber; `RUST_LOG` sets the level (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let layer = fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_filter(filter.and(filter_fn(within_floor)));
    // A second call (tests, the local stack hosting several handlers) keeps
    // the first subscriber, which is what we want.
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_crates_follow_rust_log_below_info() {
        for target in [
            "auth_exchange::handler",
            "outbox_relay",
            "auth_events_core::relay",
        ] {
            assert!(is_own(target), "{target}");
        }
        for target in [
            "lambda_runtime::layers::api_response",
            "lambda_runtime_api_client",
            "hyper_util::client",
            "aws_smithy_runtime::client::orchestrator",
            "aws_sigv4::http_request::sign",
            "reqwest::connect",
            // A prefix of ours is not ours.
            "auth_exchange_extras",
        ] {
            assert!(!is_own(target), "{target}");
        }
    }
}
