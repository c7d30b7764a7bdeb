//! Images: the [`Image`] trait every backend implements, a generic
//! manifest-backed image over any [`BlobSource`], and the lazy
//! [`ImageBuilder`].

mod builder;
mod config;
mod index;

pub use crate::spec::Platform;
pub use builder::{ImageBuilder, annotations};
pub use config::{ImageConfig, rfc3339};
pub use index::{BuiltIndex, ImageIndex, IndexBuilder, ManifestIndex, platform_of};

use std::io::Read;
use std::sync::Arc;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::Layer;
use crate::media;
use crate::spec::{Descriptor, Index, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Manifest};

/// An image: a manifest, a config and layers.
pub trait Image: Send + Sync {
    /// The manifest's exact bytes (its digest is the image's identity).
    fn raw_manifest(&self) -> Result<Vec<u8>>;
    /// The config's exact bytes.
    fn raw_config(&self) -> Result<Vec<u8>>;
    /// The layers, base first, in manifest order.
    fn layers(&self) -> Result<Vec<Arc<dyn Layer>>>;
    /// Where the image came from, for messages.
    fn location(&self) -> String;

    /// The manifest digest.
    fn digest(&self) -> Result<Digest> {
        Ok(Digest::of(&self.raw_manifest()?))
    }
    /// The parsed manifest.
    fn manifest(&self) -> Result<Manifest> {
        Manifest::parse(&self.raw_manifest()?, &self.location())
    }
    /// The parsed config.
    fn config(&self) -> Result<ImageConfig> {
        ImageConfig::parse(&self.raw_config()?, &self.location())
    }
    /// A descriptor of the manifest, to tag it.
    fn descriptor(&self) -> Result<Descriptor> {
        let raw = self.raw_manifest()?;
        let m = Manifest::parse(&raw, &self.location())?;
        Ok(Descriptor::new(
            m.media_type(),
            Digest::of(&raw),
            raw.len() as u64,
        ))
    }
}

/// The config of `image`, checked against the digest its manifest gives.
pub fn checked_config(image: &dyn Image, manifest: &Manifest) -> Result<Vec<u8>> {
    let config = image.raw_config()?;
    let actual = Digest::of(&config);
    if actual != manifest.config.digest {
        return Err(Error::DigestMismatch {
            what: format!("config of {}", image.location()),
            expected: manifest.config.digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(config)
}

/// Somewhere blobs can be read by descriptor: a layout directory, an
/// archive, a registry.
pub trait BlobSource: Send + Sync {
    /// Opens the blob; the reader fails at end of stream when the content
    /// does not match the descriptor's digest and size.
    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>>;
    /// Where the blobs live, for messages.
    fn location(&self) -> String;

    /// For blobs in a registry: (API host, repository), so a push to
    /// another repository of the same registry can mount instead of upload.
    fn mount_source(&self) -> Option<(String, String)> {
        None
    }

    /// Reads a whole blob of at most `max` bytes, verified.
    fn read_blob(&self, desc: &Descriptor, max: u64) -> Result<Vec<u8>> {
        if desc.size > max {
            return Err(Error::invalid(
                "descriptor",
                self.location(),
                format!(
                    "{} {} declares {} bytes, more than the {max} allowed",
                    desc.media_type, desc.digest, desc.size
                ),
            ));
        }
        let mut buf = Vec::with_capacity(desc.size as usize);
        self.open_blob(desc)?
            .take(max + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::from_pipeline(self.location(), e))?;
        Ok(buf)
    }
}

impl BlobSource for crate::store::Store {
    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(crate::store::Store::open_blob(
            self,
            &desc.digest,
            Some(desc.size),
        )?))
    }
    fn location(&self) -> String {
        self.root().display().to_string()
    }
}

/// An image read from a [`BlobSource`] through its manifest.
pub struct ManifestImage {
    source: Arc<dyn BlobSource>,
    raw_manifest: Vec<u8>,
    manifest: Manifest,
    raw_config: Vec<u8>,
    diff_ids: Vec<Digest>,
}

impl ManifestImage {
    /// Reads the manifest `desc` (and, when it is an index, the entry for
    /// `platform`) and the config from `source`.
    pub fn load(
        source: Arc<dyn BlobSource>,
        desc: &Descriptor,
        platform: &Platform,
    ) -> Result<Self> {
        let (raw_manifest, _) = resolve_manifest(source.as_ref(), desc, platform)?;
        Self::from_manifest(source, raw_manifest)
    }

    /// Builds the image from manifest bytes already read and verified.
    pub fn from_manifest(source: Arc<dyn BlobSource>, raw_manifest: Vec<u8>) -> Result<Self> {
        let loc = source.location();
        let manifest = Manifest::parse(&raw_manifest, &loc)?;
        let raw_config = source.read_blob(&manifest.config, MAX_CONFIG_SIZE)?;
        let config = ImageConfig::parse(
            &raw_config,
            &format!("config {} in {loc}", manifest.config.digest),
        )?;
        let diff_ids = config.diff_ids()?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::invalid(
                "image",
                loc,
                format!(
                    "the manifest lists {} layers but the config has {} diff_ids",
                    manifest.layers.len(),
                    diff_ids.len()
                ),
            ));
        }
        Ok(ManifestImage {
            source,
            raw_manifest,
            manifest,
            raw_config,
            diff_ids,
        })
    }
}

impl Image for ManifestImage {
    fn raw_manifest(&self) -> Result<Vec<u8>> {
        Ok(self.raw_manifest.clone())
    }
    fn raw_config(&self) -> Result<Vec<u8>> {
        Ok(self.raw_config.clone())
    }
    fn layers(&self) -> Result<Vec<Arc<dyn Layer>>> {
        Ok(self
            .manifest
            .layers
            .iter()
            .zip(&self.diff_ids)
            .map(|(d, id)| {
                Arc::new(SourceLayer {
                    source: Arc::clone(&self.source),
                    desc: d.clone(),
                    diff_id: id.clone(),
                }) as Arc<dyn Layer>
            })
            .collect())
    }
    fn location(&self) -> String {
        self.source.location()
    }
}

/// A layer read from a [`BlobSource`].
pub struct SourceLayer {
    source: Arc<dyn BlobSource>,
    desc: Descriptor,
    diff_id: Digest,
}

impl SourceLayer {
    /// A layer described by `desc` in `source`.
    pub fn new(source: Arc<dyn BlobSource>, desc: Descriptor, diff_id: Digest) -> Self {
        SourceLayer {
            source,
            desc,
            diff_id,
        }
    }
}

impl Layer for SourceLayer {
    fn descriptor(&self) -> Descriptor {
        self.desc.clone()
    }
    fn diff_id(&self) -> Digest {
        self.diff_id.clone()
    }
    fn open(&self) -> Result<Box<dyn Read + Send>> {
        self.source.open_blob(&self.desc)
    }
    fn mount_source(&self) -> Option<(String, String)> {
        self.source.mount_source()
    }
}

/// Reads the manifest `desc` points at; an index is resolved to the entry
/// matching `platform`. Returns the manifest bytes and its descriptor.
pub fn resolve_manifest(
    source: &dyn BlobSource,
    desc: &Descriptor,
    platform: &Platform,
) -> Result<(Vec<u8>, Descriptor)> {
    let mut desc = desc.clone();
    for _ in 0..4 {
        let raw = source.read_blob(&desc, MAX_MANIFEST_SIZE)?;
        if media::is_manifest(&desc.media_type) {
            return Ok((raw, desc));
        }
        if !media::is_index(&desc.media_type) {
            return Err(Error::Unsupported(format!(
                "{} in {} has media type {}, which is not an image manifest or index",
                desc.digest,
                source.location(),
                desc.media_type
            )));
        }
        let index = Index::parse(
            &raw,
            &format!("index {} in {}", desc.digest, source.location()),
        )?;
        desc = pick_platform(&index, platform, &source.location())?.clone();
    }
    Err(Error::invalid(
        "image index",
        source.location(),
        "indexes nested too deeply",
    ))
}

/// The entry of `index` for `platform`.
pub fn pick_platform<'a>(
    index: &'a Index,
    platform: &Platform,
    location: &str,
) -> Result<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| media::is_manifest(&d.media_type) || media::is_index(&d.media_type))
        .collect();
    if let Some(d) = candidates
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
    {
        return Ok(d);
    }
    if candidates.len() == 1 && candidates[0].platform.is_none() {
        return Ok(candidates[0]);
    }
    let available: Vec<String> = candidates
        .iter()
        .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
        .collect();
    Err(Error::NotFound {
        what: format!("platform {platform}"),
        location: location.to_string(),
        hint: format!(" (available: {}); pass --platform", available.join(", ")),
    })
}
