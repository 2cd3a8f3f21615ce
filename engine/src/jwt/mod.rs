//! JWT verification inside the filter, for deployments where Envoy's
//! `jwt_authn` is not configured: the bundle ships the trusted issuers and
//! their public keys (`identity.verify`), and the filter checks tokens
//! itself against the proxy's clock.
//!
//! - [`config`]: the serde types embedded in the bundle;
//! - [`keys`]: supported algorithms and JWK compilation;
//! - [`verify`]: the [`Verifier`] (structure, algorithm policy, key
//!   selection, signature, claims);
//! - [`cache`]: the bounded [`TokenCache`] of verified tokens;
//! - [`error`]: configuration errors with JSON paths and token rejections
//!   with stable reason codes.
//!
//! Signatures are checked by the RustCrypto backend of `jsonwebtoken`
//! (pure Rust, builds for wasm32-wasip1); everything around it (parsing,
//! algorithm policy, time and audience checks) is done here so that the
//! rules are ours and no system clock is read.

pub mod cache;
pub mod config;
pub mod error;
pub mod keys;
pub mod verify;

pub use cache::TokenCache;
pub use config::{IssuerConfig, VerifyConfig};
pub use error::{JwtConfigError, JwtError, MalformedPart, REASON_CODES};
pub use keys::{Alg, SUPPORTED_ALGS};
pub use verify::Verifier;
