//! `oci:DIR[:TAG]` — OCI image-layout directories (and the store, which is
//! one).

use std::sync::Arc;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{BlobSource, Image, ImageIndex, ManifestImage, ManifestIndex};
use crate::registry::push::{BlobOutcome, Progress, ProgressFn, ProgressReader};
use crate::spec::{Descriptor, Manifest, Platform};
use crate::store::Store;

/// Opens the image tagged `tag` in the layout (or its only image when no tag
/// is given).
pub fn open(store: &Store, tag: Option<&str>, platform: &Platform) -> Result<ManifestImage> {
    let desc = select(store, tag)?;
    ManifestImage::load(
        Arc::new(store.clone()) as Arc<dyn BlobSource>,
        &desc,
        platform,
    )
}

/// The index entry for `tag`, or the only entry when `tag` is `None`.
pub fn select(store: &Store, tag: Option<&str>) -> Result<Descriptor> {
    match tag {
        Some(t) => store.resolve(t),
        None => {
            let index = store.index()?;
            match index.manifests.as_slice() {
                [one] => Ok(one.clone()),
                [] => Err(Error::NotFound {
                    what: "any image".into(),
                    location: store.root().display().to_string(),
                    hint: " (the layout's index.json is empty)".into(),
                }),
                many => Err(Error::bad_input(
                    "reference",
                    format!(
                        "{} holds {} images; name one with :TAG (tags: {})",
                        store.root().display(),
                        many.len(),
                        index.tags().map(|(n, _)| n).collect::<Vec<_>>().join(", ")
                    ),
                )),
            }
        }
    }
}

/// Copies every blob of `image` that `store` lacks into it (verified),
/// writes the config and manifest and, with `tag`, points the tag at the
/// manifest. Blobs first, then config, then manifest, then the tag: a
/// failure never leaves a tag pointing at missing content.
pub fn write_image(image: &dyn Image, store: &Store, tag: Option<&str>) -> Result<Digest> {
    write_image_with(image, store, tag, None)
}

/// [`write_image`] reporting per-blob progress of the layers it copies.
pub fn write_image_with(
    image: &dyn Image,
    store: &Store,
    tag: Option<&str>,
    progress: Option<&ProgressFn>,
) -> Result<Digest> {
    copy_layers_with(image, store, progress)?;
    let desc = write_config_and_manifest(image, store)?;
    if let Some(tag) = tag {
        store.set_tag(tag, &desc)?;
    }
    Ok(desc.digest)
}

/// Copies the layers of `image` that `store` lacks into it, each verified
/// against its digest and size on the way, up to 4 at a time.
pub fn copy_layers(image: &dyn Image, store: &Store) -> Result<()> {
    copy_layers_with(image, store, None)
}

/// [`copy_layers`] reporting per-blob progress.
pub fn copy_layers_with(
    image: &dyn Image,
    store: &Store,
    progress: Option<&ProgressFn>,
) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    let todo: Vec<_> = image
        .layers()?
        .into_iter()
        .filter(|l| !store.has_blob(&l.descriptor().digest) && seen.insert(l.descriptor().digest))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_error = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..todo.len().min(4) {
            s.spawn(|| {
                while let Some(layer) =
                    todo.get(next.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
                {
                    let d = layer.descriptor();
                    let what = format!("layer {} from {}", d.digest, image.location());
                    if let Some(p) = progress {
                        p(&Progress::Start {
                            digest: d.digest.clone(),
                            size: d.size,
                        });
                    }
                    let r = layer.open().and_then(|r| {
                        let r = ProgressReader {
                            inner: r,
                            sent: 0,
                            digest: d.digest.clone(),
                            total: None,
                            progress: progress.cloned(),
                        };
                        store.put_verified(r, &d.digest, Some(d.size), &what)
                    });
                    if let (Some(p), true) = (progress, r.is_ok()) {
                        p(&Progress::Done {
                            digest: d.digest.clone(),
                            outcome: BlobOutcome::Pushed,
                        });
                    }
                    if let Err(e) = r {
                        first_error.lock().expect("lock").get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    match first_error.into_inner().expect("lock") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Writes all of `image`'s blobs into `store`; returns the manifest
/// descriptor.
pub fn write_blobs(image: &dyn Image, store: &Store) -> Result<Descriptor> {
    copy_layers(image, store)?;
    write_config_and_manifest(image, store)
}

/// Writes the config and manifest of `image` (its layers already stored).
fn write_config_and_manifest(image: &dyn Image, store: &Store) -> Result<Descriptor> {
    let raw = image.raw_manifest()?;
    let m = Manifest::parse(&raw, &image.location())?;
    let config = image.raw_config()?;
    let what = format!("config of {}", image.location());
    store.put_verified(&config[..], &m.config.digest, Some(m.config.size), &what)?;
    let digest = store.put_bytes(&raw)?;
    Ok(Descriptor::new(m.media_type(), digest, raw.len() as u64))
}

/// The index tagged `tag` (or the only entry) in the layout, when that
/// entry is an image index; `None` when it is a single image.
pub fn open_index(store: &Store, tag: Option<&str>) -> Result<Option<ManifestIndex>> {
    let desc = select(store, tag)?;
    if !crate::media::is_index(&desc.media_type) {
        return Ok(None);
    }
    ManifestIndex::load(Arc::new(store.clone()) as Arc<dyn BlobSource>, &desc).map(Some)
}

/// Writes every image of `index` (blobs, config, manifest), then the index,
/// then, with `tag`, points the tag at the index: a failure never leaves a
/// tag on an index whose manifests are missing.
pub fn write_index(index: &dyn ImageIndex, store: &Store, tag: Option<&str>) -> Result<Digest> {
    for (_, image) in index.images()? {
        write_blobs(image.as_ref(), store)?;
    }
    let raw = index.raw_index()?;
    let desc = index.descriptor()?;
    store.put_verified(&raw[..], &desc.digest, Some(desc.size), "image index")?;
    if let Some(tag) = tag {
        store.set_tag(tag, &desc)?;
    }
    Ok(desc.digest)
}
