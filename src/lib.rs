//! registry-edge: a private OCI registry served at the edge. The read side of the OCI Distribution
//! API is answered here, from object storage holding the registry in distribution's storage layout;
//! blob downloads are redirected to presigned storage URLs.
//!
//! Everything but `workers` is a platform-independent core over `http` types and small traits
//! (`ObjectStore`, `EdgeCache`, `Clock`, `HttpClient`); it builds and tests natively. `workers` is
//! the Cloudflare Workers adapter, the only code that touches the `worker` crate.

pub mod api;
pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod content;
pub mod error;
pub mod events;
pub mod handlers;
pub mod index;
pub mod jobs;
pub mod layout;
pub mod media;
pub mod operation;
pub mod origin;
pub mod platform;
pub mod query;
pub mod records;
pub mod reference;
pub mod route;
pub mod storage;
pub mod upstream;
pub mod webhooks;

#[cfg(target_arch = "wasm32")]
mod workers;

#[cfg(test)]
mod fuzz_tests;
