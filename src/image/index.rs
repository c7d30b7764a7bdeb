//! Multi-platform images: the [`ImageIndex`] trait beside [`Image`], an
//! index read from any [`BlobSource`] ([`ManifestIndex`]) and one made
//! from images ([`IndexBuilder`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{BlobSource, Image, ManifestImage};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::media;
use crate::spec::{Descriptor, Index, MAX_MANIFEST_SIZE, Platform};

/// An image index: one image manifest per platform.
pub trait ImageIndex: Send + Sync {
    /// The index's exact bytes (its digest is the index's identity).
    fn raw_index(&self) -> Result<Vec<u8>>;
    /// Its images in index order, each with its descriptor in the index
    /// (platform set).
    fn images(&self) -> Result<Vec<(Descriptor, Arc<dyn Image>)>>;
    /// Where the index came from, for messages.
    fn location(&self) -> String;

    /// The index digest.
    fn digest(&self) -> Result<Digest> {
        Ok(Digest::of(&self.raw_index()?))
    }
    /// A descriptor of the index, to tag it.
    fn descriptor(&self) -> Result<Descriptor> {
        let raw = self.raw_index()?;
        let i = Index::parse(&raw, &self.location())?;
        Ok(Descriptor::new(
            i.media_type.unwrap_or_else(|| media::OCI_INDEX.into()),
            Digest::of(&raw),
            raw.len() as u64,
        ))
    }
}

/// An index read from a [`BlobSource`]: its image manifests are read
/// (each with its config) when it is opened; layers stay where they are.
pub struct ManifestIndex {
    raw: Vec<u8>,
    images: Vec<(Descriptor, Arc<dyn Image>)>,
    location: String,
}

impl ManifestIndex {
    /// Reads the index `desc` and every image manifest it lists from
    /// `source` (a layout or archive, where manifests are blobs).
    pub fn load(source: Arc<dyn BlobSource>, desc: &Descriptor) -> Result<Self> {
        let raw = source.read_blob(desc, MAX_MANIFEST_SIZE)?;
        let blobs = Arc::clone(&source);
        Self::from_index(source, raw, &|d| blobs.read_blob(d, MAX_MANIFEST_SIZE))
    }

    /// Builds the index from bytes already read and verified; each image
    /// manifest is read (verified) by `manifest`, each config from
    /// `source`. Entries that are not image manifests (nested indexes,
    /// artifacts) are refused by digest and media type.
    pub fn from_index(
        source: Arc<dyn BlobSource>,
        raw: Vec<u8>,
        manifest: &dyn Fn(&Descriptor) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        let location = source.location();
        let index = Index::parse(&raw, &location)?;
        let mut images = Vec::new();
        for d in &index.manifests {
            if !media::is_manifest(&d.media_type) {
                return Err(Error::Unsupported(format!(
                    "the index in {location} lists {} of media type {}: only image manifests can be copied with every platform",
                    d.digest, d.media_type
                )));
            }
            let image = ManifestImage::from_manifest(Arc::clone(&source), manifest(d)?)?;
            images.push((d.clone(), Arc::new(image) as Arc<dyn Image>));
        }
        Ok(ManifestIndex {
            raw,
            images,
            location,
        })
    }
}

impl ImageIndex for ManifestIndex {
    fn raw_index(&self) -> Result<Vec<u8>> {
        Ok(self.raw.clone())
    }
    fn images(&self) -> Result<Vec<(Descriptor, Arc<dyn Image>)>> {
        Ok(self.images.clone())
    }
    fn location(&self) -> String {
        self.location.clone()
    }
}

/// Makes an OCI image index from images, one per platform, in the order
/// added (the bytes depend only on the images, their platforms and the
/// annotations).
#[derive(Default)]
pub struct IndexBuilder {
    entries: Vec<(Platform, Arc<dyn Image>)>,
    annotations: BTreeMap<String, String>,
}

impl IndexBuilder {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `image` for `platform`; a platform given twice is an error at
    /// [`build`](Self::build).
    pub fn add(&mut self, platform: Platform, image: Arc<dyn Image>) -> &mut Self {
        self.entries.push((platform, image));
        self
    }

    /// Sets an index annotation.
    pub fn annotate(&mut self, key: &str, value: &str) -> &mut Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// The index.
    pub fn build(&self) -> Result<BuiltIndex> {
        let mut index = Index {
            annotations: self.annotations.clone(),
            ..Index::default()
        };
        let mut images = Vec::new();
        for (platform, image) in &self.entries {
            if index
                .manifests
                .iter()
                .any(|d| d.platform.as_ref() == Some(platform))
            {
                return Err(Error::bad_input(
                    "platforms",
                    format!("platform {platform} is given twice"),
                ));
            }
            let mut d = image.descriptor()?;
            d.platform = Some(platform.clone());
            index.manifests.push(d.clone());
            images.push((d, Arc::clone(image)));
        }
        if images.is_empty() {
            return Err(Error::bad_input("platforms", "an index needs an image"));
        }
        let raw = crate::json::to_canonical(&index);
        if raw.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(Error::invalid(
                "image index",
                "index",
                format!(
                    "{} bytes, more than the {MAX_MANIFEST_SIZE} a registry accepts",
                    raw.len()
                ),
            ));
        }
        Ok(BuiltIndex { raw, images })
    }
}

/// An index made by [`IndexBuilder`].
pub struct BuiltIndex {
    raw: Vec<u8>,
    images: Vec<(Descriptor, Arc<dyn Image>)>,
}

impl ImageIndex for BuiltIndex {
    fn raw_index(&self) -> Result<Vec<u8>> {
        Ok(self.raw.clone())
    }
    fn images(&self) -> Result<Vec<(Descriptor, Arc<dyn Image>)>> {
        Ok(self.images.clone())
    }
    fn location(&self) -> String {
        "built index".into()
    }
}

/// The platform an image says it is for (its config's os, architecture,
/// variant and os.version).
pub fn platform_of(image: &dyn Image) -> Result<Platform> {
    let v: serde_json::Value = serde_json::from_slice(&image.raw_config()?)
        .map_err(|e| Error::invalid("image config", image.location(), e.to_string()))?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    match (s("os"), s("architecture")) {
        (Some(os), Some(architecture)) => Ok(Platform {
            os,
            architecture,
            variant: s("variant"),
            os_version: s("os.version"),
            os_features: None,
        }),
        _ => Err(Error::invalid(
            "image config",
            image.location(),
            "it names no os and architecture",
        )),
    }
}
