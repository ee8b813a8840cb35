//! The user-profile Lambda: keeps the Users table from `user.signed_in`
//! events, idempotent and order-independent under at-least-once delivery.
//!
//! - [`config`]: settings from the environment, checked at cold start.
//! - [`handler`]: EventBridge event → contract → conditional profile write.

pub mod config;
pub mod handler;

pub use config::Config;
pub use handler::{Envelope, Handler, HandlerError, Outcome, Processed};
