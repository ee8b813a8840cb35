//! The token exchange Lambda: verifies a Firebase ID token, returns
//! short-lived AWS credentials from STS, and records the sign-in as a
//! `user.signed_in` event in the outbox without ever letting the event
//! pipeline block the sign-in.
//!
//! - [`config`]: the environment, parsed once at cold start.
//! - [`verify`]: Firebase ID token verification; [`certs`]: Google's
//!   certificate map, cached.
//! - [`credentials`]: STS AssumeRole behind [`credentials::CredentialIssuer`].
//! - [`sign_in`]: the event and its delivery (outbox, bus, log).
//! - [`policy`]: which genuine sign-ins are accepted (providers, verified
//!   e-mail, tenants).
//! - [`handler`]: the HTTP edge, generic over every port.

pub mod certs;
pub mod config;
pub mod credentials;
pub mod handler;
pub mod policy;
pub mod sign_in;
pub mod verify;

pub use config::Config;
pub use credentials::{CredentialIssuer, Credentials, IssueError, StsIssuer};
pub use handler::{Exchange, Settings};
pub use sign_in::{Delivery, OUTBOX_WRITE_FAILED, SignInRecorder};
pub use verify::{KeySource, Rejection, StaticKeys, VerifiedToken, Verifier, VerifyError};
