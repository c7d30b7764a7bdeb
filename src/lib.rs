//! strata: a daemonless, deterministic OCI image builder.
//!
//! The library is organised the way go-containerregistry's `pkg/v1` is:
//!
//! * [`digest`] — content digests, hashing readers and writers;
//! * [`store`] — an OCI image-layout directory used as the content store
//!   (crash-safe blob writes, locked tag updates, `fsck`, `gc`);
//! * [`layer`] — the [`layer::Layer`] trait and the deterministic streaming
//!   layer writer (tar header policy, parallel gzip, multithreaded zstd);
//! * [`image`] — the [`image::Image`] trait, image configs and the
//!   [`image::ImageBuilder`] that appends layers to a base;
//! * [`transport`] — reading and writing images as `oci:`, `oci-archive:`,
//!   `docker-archive:` or store tags;
//! * [`validate`] — recomputes every digest, diff_id and size of an image;
//! * [`deb`] — layers from Debian packages (apt repositories, resolution,
//!   dpkg status).
//!
//! ```no_run
//! use strata::{store::Store, layer::{LayerBuilder, Mapping}, image::ImageBuilder};
//! # fn main() -> strata::Result<()> {
//! let store = Store::open_or_create("/tmp/store")?;
//! let layer = LayerBuilder::new()
//!     .mapping(Mapping::new("/bin/busybox", "/bin/busybox")?)
//!     .build(&store)?;
//! let mut image = ImageBuilder::scratch(strata::image::Platform::host());
//! image.append_layer(std::sync::Arc::new(layer), "strata: add busybox");
//! image.config_mut().set_entrypoint(vec!["/bin/busybox".into(), "echo".into(), "hi".into()]);
//! let digest = image.write_to_store(&store, Some("demo:latest"))?;
//! println!("{digest}");
//! # Ok(()) }
//! ```

pub mod cleanup;
pub mod compose;
pub mod deb;
pub mod digest;
pub mod error;
pub mod image;
pub mod json;
pub mod layer;
pub mod media;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod sandbox;
pub mod sbom;
pub mod spec;
pub mod store;
pub mod tarsafe;
pub mod text;
pub mod trace;
pub mod transport;
pub mod validate;

pub use digest::Digest;
pub use error::{Error, Result};
