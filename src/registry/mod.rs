//! Talking to registries over the OCI distribution API, with no daemon.

pub mod api;
pub mod client;
pub mod credentials;
pub mod prune;
pub mod pull;
pub mod push;
pub mod reference;
pub mod referrers;

pub use client::{Client, ClientOptions};
pub use credentials::{Credential, Secret};
pub use reference::RegistryRef;
