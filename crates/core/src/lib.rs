//! The domain of auth-events, free of any AWS SDK.
//!
//! - [`contract`]: the `user.{action}` event contract with validating newtypes.
//! - [`outbox`]: the outbox item and its DynamoDB codec.
//! - [`entry`]: EventBridge entries and AWS's entry-size formula.
//! - [`relay`]: publishing outbox events with per-entry retries and dead letters.
//! - [`profile`]: the order-independent Users update, as conditional writes.
//! - [`dead_letter`]: every message shape that can land in the DLQ.
//! - [`ports`]: the traits the AWS adapters implement.
//! - [`trace`]: which X-Ray trace headers PutEvents may carry.
//! - [`limits`]: the AWS limits the pipeline respects, with their sources.

pub mod contract;
pub mod dead_letter;
pub mod entry;
pub mod limits;
pub mod outbox;
pub mod ports;
pub mod profile;
pub mod redact;
pub mod relay;
pub mod retry;
pub mod trace;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
