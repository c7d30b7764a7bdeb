//! `oci-archive:FILE[:TAG]` — an OCI image layout in a tar file.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::archive_writer::ArchiveWriter;
use crate::digest::{Digest, VerifyingReader};
use crate::error::{Error, Result};
use crate::image::{BlobSource, Image, ManifestImage};
use crate::spec::{Descriptor, Index, MAX_MANIFEST_SIZE, Manifest, Platform, REF_NAME};
use crate::tarsafe::ArchiveIndex;

/// Blobs inside an archive, by digest (`blobs/sha256/<hex>`).
pub struct ArchiveBlobs {
    index: ArchiveIndex,
}

impl BlobSource for ArchiveBlobs {
    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>> {
        let r = self
            .index
            .entry(&format!("blobs/sha256/{}", desc.digest.hex()))?;
        Ok(Box::new(VerifyingReader::new(
            r,
            desc.digest.clone(),
            Some(desc.size),
            format!("blob {} in {}", desc.digest, self.index.path().display()),
        )))
    }
    fn location(&self) -> String {
        self.index.path().display().to_string()
    }
}

/// Opens the image tagged `tag` (or the only one) in an oci-archive.
pub fn open(path: &Path, tag: Option<&str>, platform: &Platform) -> Result<ManifestImage> {
    let index = ArchiveIndex::open(path)?;
    let layout = index.read("oci-layout", 4096)?;
    if !String::from_utf8_lossy(&layout).contains("\"1.0.0\"") {
        return Err(Error::invalid(
            "oci-layout",
            path.display().to_string(),
            "imageLayoutVersion must be \"1.0.0\"",
        ));
    }
    let idx = Index::parse(
        &index.read("index.json", MAX_MANIFEST_SIZE)?,
        &format!("{}:index.json", path.display()),
    )?;
    let desc = match tag {
        Some(t) => idx
            .tags()
            .find(|(n, _)| *n == t)
            .map(|(_, d)| d.clone())
            .ok_or_else(|| Error::NotFound {
                what: format!("tag {t:?}"),
                location: path.display().to_string(),
                hint: format!(
                    " (tags: {})",
                    idx.tags().map(|(n, _)| n).collect::<Vec<_>>().join(", ")
                ),
            })?,
        None => match idx.manifests.as_slice() {
            [one] => one.clone(),
            _ => {
                return Err(Error::bad_input(
                    "reference",
                    format!(
                        "{} holds {} images; name one with :TAG",
                        path.display(),
                        idx.manifests.len()
                    ),
                ));
            }
        },
    };
    ManifestImage::load(
        Arc::new(ArchiveBlobs { index }) as Arc<dyn BlobSource>,
        &desc,
        platform,
    )
}

/// Writes `image` as an oci-archive at `path` with `tag` (replacing the file).
pub fn write(image: &dyn Image, path: &Path, tag: Option<&str>) -> Result<Digest> {
    let raw = image.raw_manifest()?;
    let m = Manifest::parse(&raw, &image.location())?;
    let digest = Digest::of(&raw);
    let mut desc = Descriptor::new(m.media_type(), digest.clone(), raw.len() as u64);
    if let Some(t) = tag {
        desc.annotations.insert(REF_NAME.into(), t.into());
    }
    let index = Index {
        manifests: vec![desc],
        ..Index::default()
    };
    let mut w = ArchiveWriter::create(path)?;
    w.add_bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    w.add_bytes("index.json", &crate::json::to_canonical(&index))?;
    w.add_dir("blobs/")?;
    w.add_dir("blobs/sha256/")?;
    let mut seen = BTreeSet::new();
    for layer in image.layers()? {
        let d = layer.descriptor();
        if seen.insert(d.digest.clone()) {
            w.add_reader(
                &format!("blobs/sha256/{}", d.digest.hex()),
                d.size,
                layer.open()?,
            )?;
        }
    }
    let config = crate::image::checked_config(image, &m)?;
    if seen.insert(m.config.digest.clone()) {
        w.add_bytes(&format!("blobs/sha256/{}", m.config.digest.hex()), &config)?;
    }
    if seen.insert(digest.clone()) {
        w.add_bytes(&format!("blobs/sha256/{}", digest.hex()), &raw)?;
    }
    w.commit()?;
    Ok(digest)
}
