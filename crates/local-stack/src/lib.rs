//! The auth-events pipeline on one machine, for development, the demo and
//! the integration tests. Nothing here is deployed: the Lambda zips and
//! `outboxctl` are built without this crate.
//!
//! - [`dev_signer`]: a stand-in for Google's securetoken signer.
//! - [`moto`]: a moto server from the project virtualenv.
//! - [`stack`]: the real handlers behind local stand-ins for the stream
//!   event source mapping and EventBridge's Lambda target.
//! - [`strict`]: a proxy in front of moto that refuses what AWS refuses.

pub mod dev_signer;
pub mod moto;
pub mod stack;
pub mod strict;
