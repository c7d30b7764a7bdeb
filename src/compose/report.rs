//! What `strata build` reports: per layer, per image (and per platform of
//! a multi-platform image), and for the whole build.

use serde::Serialize;

use super::source::Status;
use crate::digest::Digest;
use crate::transport;

/// What happened to one layer.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    /// Layer name.
    pub name: String,
    /// Layer version.
    pub version: Option<String>,
    /// Built, cached or imported.
    pub status: Status,
    /// Seconds spent.
    pub seconds: f64,
    /// Compressed size of its blobs.
    pub size: u64,
    /// Its blob digests.
    pub digests: Vec<Digest>,
    /// The cache key.
    pub key: Digest,
    /// The platform it was built for, in a multi-platform build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The last lines its commands printed (build steps and maintainer
    /// scripts run now, with [`EchoMode::Report`](super::echo::EchoMode::Report)).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<String>,
    /// The whole log of its commands, when they ran in this build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<std::path::PathBuf>,
}

/// What happened to one image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    /// Image name.
    pub name: String,
    /// Manifest digest.
    pub digest: Digest,
    /// Sum of its layers' compressed sizes.
    pub size: u64,
    /// The same sum for the image the first tag pointed at before, if any.
    pub previous_size: Option<u64>,
    /// Tags written.
    pub tags: Vec<String>,
    /// Registry references pushed (with `--push`).
    pub pushed: Vec<String>,
    /// What the push moved (with `--push`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<super::publish::PushStats>,
    /// Whether it was written and tagged in the store (a push-only build
    /// whose layers are in the registry cache leaves them there).
    pub stored: bool,
    /// What loading it into the Docker Engine sent (with `load`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<transport::daemon::LoadReport>,
    /// Store tag of the image's SPDX SBOM.
    pub sbom: String,
    /// Packages the SBOM lists (for a multi-platform image, summed over
    /// its platforms).
    pub packages: usize,
    /// For a multi-platform image (an index, whose digest `digest` is):
    /// each platform's manifest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<PlatformImage>,
}

/// One platform of a multi-platform image.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformImage {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// Its layers' compressed size.
    pub size: u64,
    /// Packages its SBOM lists.
    pub packages: usize,
    /// Store tag of its SBOM.
    pub sbom: String,
}

/// The build report.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// Layers in build order.
    pub layers: Vec<LayerReport>,
    /// Images.
    pub images: Vec<ImageReport>,
    /// Cached layers / all layers.
    pub cache_hit_rate: f64,
    /// Files whose content was read to compute keys.
    pub files_hashed: usize,
    /// Total seconds.
    pub seconds: f64,
    /// Warnings (layers whose bytes changed without a version bump).
    pub warnings: Vec<String>,
    /// Layer and image tests (with `test`).
    pub tests: Vec<super::layertest::TestReport>,
    /// What the registry cache did, when one was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<super::regcache::CacheReport>,
    /// A platform pass's composed images (by name), for their index.
    #[serde(skip)]
    pub(crate) composed: Composed,
    /// What this build's tag patterns expanded with (`{content}` per
    /// image), for an index over platform passes.
    #[serde(skip)]
    pub(crate) tag_vars: Option<super::tags::TagVars>,
}

/// Images a platform pass composed, which may not be in the store (a
/// push-only build leaves cache hits in the registry).
#[derive(Clone, Default)]
pub(crate) struct Composed(pub(crate) Vec<(String, std::sync::Arc<dyn crate::image::Image>)>);

impl std::fmt::Debug for Composed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| n))
            .finish()
    }
}

/// The share of `layers` taken from a cache (local or remote); 1 when there
/// are none.
pub(crate) fn hit_rate(layers: &[LayerReport]) -> f64 {
    let hits = layers
        .iter()
        .filter(|l| matches!(l.status, Status::Cached | Status::Remote))
        .count();
    match layers.len() {
        0 => 1.0,
        n => hits as f64 / n as f64,
    }
}
