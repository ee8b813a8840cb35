//! The outbox-relay Lambda: publishes outbox items to EventBridge from the
//! outbox table's stream, and from the table itself on a schedule (the
//! sweep), through the core relay engine.
//!
//! - [`config`]: settings from the environment, checked at cold start.
//! - [`handler`]: stream batch or schedule → relay → `batchItemFailures`.
//! - [`metrics`]: CloudWatch EMF lines.

pub mod config;
pub mod handler;
pub mod metrics;

pub use config::{Config, HandlerConfig};
pub use handler::{Handler, HandlerError, Invocation, Response, StreamOutcome, SweepSummary};
