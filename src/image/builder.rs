//! Assembling an image from a base (or scratch) and appended layers.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::config::{ImageConfig, rfc3339};
use super::{Image, Platform};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::Layer;
use crate::media;
use crate::spec::{Descriptor, Manifest};
use crate::store::Store;

/// Annotation keys written on manifests.
pub mod annotations {
    /// When the image was made (SOURCE_DATE_EPOCH).
    pub const CREATED: &str = "org.opencontainers.image.created";
    /// Source repository URL.
    pub const SOURCE: &str = "org.opencontainers.image.source";
    /// Source revision.
    pub const REVISION: &str = "org.opencontainers.image.revision";
    /// The base image's reference.
    pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
    /// The base image's manifest digest.
    pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
}

/// Builds an image lazily: nothing is written until the builder is written
/// somewhere, and the builder is itself an [`Image`], so it can be handed to
/// any transport's writer.
pub struct ImageBuilder {
    config: ImageConfig,
    layers: Vec<Arc<dyn Layer>>,
    annotations: BTreeMap<String, String>,
    created: u64,
}

impl ImageBuilder {
    /// An image with no base.
    pub fn scratch(platform: Platform) -> Self {
        ImageBuilder {
            config: ImageConfig::new(&platform),
            layers: Vec::new(),
            annotations: BTreeMap::new(),
            created: 0,
        }
    }

    /// An image on top of `base`, whose reference is `base_name`. The base
    /// config is kept whole (unknown fields included); its layers are reused
    /// as they are.
    pub fn from_base(base: &dyn Image, base_name: &str) -> Result<Self> {
        let config = base.config()?;
        let layers = base.layers()?;
        let mut annotations = BTreeMap::new();
        annotations.insert(annotations::BASE_NAME.into(), base_name.to_string());
        annotations.insert(annotations::BASE_DIGEST.into(), base.digest()?.to_string());
        Ok(ImageBuilder {
            config,
            layers,
            annotations,
            created: 0,
        })
    }

    /// The config, to set entrypoint, env and the rest.
    pub fn config_mut(&mut self) -> &mut ImageConfig {
        &mut self.config
    }

    /// Sets the creation time (seconds since 1970), used for the config's
    /// `created`, history entries and the `created` annotation.
    pub fn created(&mut self, secs: u64) -> &mut Self {
        self.created = secs;
        self
    }

    /// Appends a layer with a history entry.
    pub fn append_layer(&mut self, layer: Arc<dyn Layer>, created_by: &str) -> &mut Self {
        self.config.push_diff_id(&layer.diff_id());
        self.config
            .push_history(&rfc3339(self.created), created_by, false);
        self.layers.push(layer);
        self
    }

    /// Records a history entry for a config-only change.
    pub fn add_history(&mut self, created_by: &str) -> &mut Self {
        self.config
            .push_history(&rfc3339(self.created), created_by, true);
        self
    }

    /// Sets a manifest annotation.
    pub fn annotate(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    fn final_config(&self) -> ImageConfig {
        let mut c = self.config.clone();
        c.set_created(&rfc3339(self.created));
        c
    }

    /// Writes the image into `store` (copying base layers it lacks) and, with
    /// `tag`, points the tag at it. Returns the manifest digest.
    pub fn write_to_store(&self, store: &Store, tag: Option<&str>) -> Result<Digest> {
        crate::transport::oci::write_image(self, store, tag)
    }
}

impl Image for ImageBuilder {
    fn raw_config(&self) -> Result<Vec<u8>> {
        Ok(self.final_config().to_bytes())
    }

    fn raw_manifest(&self) -> Result<Vec<u8>> {
        let config = self.raw_config()?;
        let mut annotations = self.annotations.clone();
        annotations.insert(annotations::CREATED.into(), rfc3339(self.created));
        let mut layers: Vec<Descriptor> = self.layers.iter().map(|l| l.descriptor()).collect();
        for l in &mut layers {
            // Docker layer types become their OCI twins in an OCI manifest.
            l.media_type = match media::layer_compression(&l.media_type) {
                Some(c) => c.media_type().to_string(),
                None => {
                    return Err(Error::Unsupported(format!(
                        "layer {} has media type {}, which strata cannot put in an image",
                        l.digest, l.media_type
                    )));
                }
            };
        }
        let m = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(media::OCI_CONFIG, Digest::of(&config), config.len() as u64),
            layers,
            subject: None,
            annotations,
            extra: BTreeMap::new(),
        };
        m.to_bytes("the image being built")
    }

    fn layers(&self) -> Result<Vec<Arc<dyn Layer>>> {
        Ok(self.layers.clone())
    }

    fn location(&self) -> String {
        "image being built".into()
    }
}
