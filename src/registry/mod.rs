//! Talking to registries over the OCI distribution API, with no daemon.

pub mod api;
pub mod credentials;
pub mod http;
pub mod locations;
pub mod prune;
pub mod pull;
pub mod push;
pub mod pushtimes;
pub mod reference;
pub mod referrers;

pub use credentials::{Credential, Secret};
pub use http::retry::RetryPolicy;
pub use http::{Client, ClientOptions};
pub use reference::RegistryRef;
