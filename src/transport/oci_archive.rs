//! `oci-archive:FILE[:TAG]` — an OCI image layout in a tar file.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::archive_writer::ArchiveWriter;
use crate::digest::{Digest, VerifyingReader};
use crate::error::{Error, Result};
use crate::image::{BlobSource, Image, ImageIndex, ManifestImage, ManifestIndex};
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
    let (index, desc) = select(path, tag)?;
    ManifestImage::load(
        Arc::new(ArchiveBlobs { index }) as Arc<dyn BlobSource>,
        &desc,
        platform,
    )
}

/// The index tagged `tag` (or the only entry) in an oci-archive, when that
/// entry is an image index; `None` when it is a single image.
pub fn open_index(path: &Path, tag: Option<&str>) -> Result<Option<ManifestIndex>> {
    let (index, desc) = select(path, tag)?;
    if !crate::media::is_index(&desc.media_type) {
        return Ok(None);
    }
    ManifestIndex::load(
        Arc::new(ArchiveBlobs { index }) as Arc<dyn BlobSource>,
        &desc,
    )
    .map(Some)
}

/// The archive's blobs and its index.json entry for `tag` (or its only one).
fn select(path: &Path, tag: Option<&str>) -> Result<(ArchiveIndex, Descriptor)> {
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
    Ok((index, desc))
}

/// Writes `image` as an oci-archive at `path` with `tag` (replacing the file).
pub fn write(image: &dyn Image, path: &Path, tag: Option<&str>) -> Result<Digest> {
    let raw = image.raw_manifest()?;
    let m = Manifest::parse(&raw, &image.location())?;
    let desc = Descriptor::new(m.media_type(), Digest::of(&raw), raw.len() as u64);
    write_entries(path, tag, desc, &[image], None)
}

/// Writes `index` (every image's blobs, each manifest, the index) as an
/// oci-archive at `path` whose index.json points at it with `tag`.
pub fn write_index(index: &dyn ImageIndex, path: &Path, tag: Option<&str>) -> Result<Digest> {
    let images: Vec<_> = index.images()?.into_iter().map(|(_, i)| i).collect();
    let refs: Vec<&dyn Image> = images.iter().map(|i| i.as_ref()).collect();
    let raw = index.raw_index()?;
    write_entries(path, tag, index.descriptor()?, &refs, Some(&raw))
}

/// The archive: `top` (an image manifest, or the index whose bytes are
/// `index_raw`) in index.json, then every blob of `images` once.
fn write_entries(
    path: &Path,
    tag: Option<&str>,
    mut top: Descriptor,
    images: &[&dyn Image],
    index_raw: Option<&[u8]>,
) -> Result<Digest> {
    let digest = top.digest.clone();
    if let Some(t) = tag {
        top.annotations.insert(REF_NAME.into(), t.into());
    }
    let index = Index {
        manifests: vec![top],
        ..Index::default()
    };
    let mut w = ArchiveWriter::create(path)?;
    w.add_bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    w.add_bytes("index.json", &crate::json::to_canonical(&index))?;
    w.add_dir("blobs/")?;
    w.add_dir("blobs/sha256/")?;
    let mut seen = BTreeSet::new();
    for image in images {
        let raw = image.raw_manifest()?;
        let m = Manifest::parse(&raw, &image.location())?;
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
        let config = crate::image::checked_config(*image, &m)?;
        if seen.insert(m.config.digest.clone()) {
            w.add_bytes(&format!("blobs/sha256/{}", m.config.digest.hex()), &config)?;
        }
        let md = Digest::of(&raw);
        if seen.insert(md.clone()) {
            w.add_bytes(&format!("blobs/sha256/{}", md.hex()), &raw)?;
        }
    }
    if let Some(raw) = index_raw
        && seen.insert(digest.clone())
    {
        w.add_bytes(&format!("blobs/sha256/{}", digest.hex()), raw)?;
    }
    w.commit()?;
    Ok(digest)
}
