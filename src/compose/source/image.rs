//! `[source.image]`: layers of another image, in any transport.

use std::path::PathBuf;
use std::sync::Arc;

use super::{BuildCx, Content, Inputs, KeyCx, LayerSource, Made, Status, audit, finish, put};
use crate::compose::debsrc::DebPlanner;
use crate::compose::project::{ImageSource as ImageSpec, LayerDef};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::image::Image;
use crate::layer::{Compression, Layer, StoreLayer, decompress};
use crate::media;
use crate::transport::Context;
use crate::transport::{self, ImageRef};

fn is_uncompressed(media_type: &str) -> bool {
    media_type == media::OCI_LAYER_TAR || media_type == media::DOCKER_LAYER_TAR
}

/// Copies the layer's blob into the store when it is not there; whether it
/// copied.
fn import(cx: &BuildCx<'_>, l: &dyn Layer, r: &ImageRef) -> Result<bool> {
    let d = l.descriptor();
    if cx.ctx.store.has_blob(&d.digest) {
        return Ok(false);
    }
    let progress = cx.progress();
    progress.phase("importing", Some(d.size));
    cx.ctx.store.put_verified(
        crate::progress::ReadProgress::new(l.open()?, progress),
        &d.digest,
        Some(d.size),
        &format!("layer {} of {r}", d.digest),
    )?;
    Ok(true)
}

/// The layer compressed with the project's compression (same diff_id),
/// from the layer cache or made now; whether it was made now.
fn recompressed(
    cx: &BuildCx<'_>,
    def: &LayerDef,
    l: &dyn Layer,
    r: &ImageRef,
) -> Result<(crate::spec::Descriptor, bool)> {
    let src = l.descriptor();
    let mut h = Hasher::new();
    put(&mut h, b"strata-recompress-1");
    put(&mut h, src.digest.to_string().as_bytes());
    put(&mut h, cx.settings.compression.to_string().as_bytes());
    let key = h.finish();
    if let Some(c) = cx.cache.get(&key) {
        return Ok((c.descriptor, false));
    }
    let progress = cx.progress();
    let what = format!("layer {} of {r}", src.digest);
    let made = cx
        .builder(def, String::new())
        .progress(progress.clone(), "recompressing")
        .compress_tar(&cx.ctx.store, &what, l.open()?)?;
    if made.diff_id() != l.diff_id() {
        return Err(Error::DigestMismatch {
            what: format!("uncompressed {what} (against its diff_id)"),
            expected: l.diff_id().to_string(),
            actual: made.diff_id().to_string(),
        });
    }
    cx.remember(&key, &made)?;
    let mut d = made.descriptor();
    d.annotations.clear();
    Ok((d, true))
}

/// A layer taken from another image.
pub(super) struct ImageSource<'a>(pub(super) &'a ImageSpec);

impl ImageSource<'_> {
    fn reference(&self, def: &LayerDef) -> Result<ImageRef> {
        Ok(ImageRef::parse(&self.0.reference)
            .map_err(|e| {
                Error::invalid(
                    "layer",
                    format!("{} key source.image.ref", def.rel),
                    e.to_string(),
                )
            })?
            .relative_to(&def.dir))
    }
}

impl LayerSource for ImageSource<'_> {
    /// The digests of the layers it takes.
    fn key(
        &self,
        def: &LayerDef,
        cx: &mut KeyCx<'_, '_>,
        mut h: Hasher,
        mut inputs: Inputs,
    ) -> Result<(Digest, Option<Inputs>)> {
        let image = transport::open(&self.reference(def)?, cx.ctx)?;
        for (i, l) in select_image_layers(def, image.as_ref())?.iter().enumerate() {
            put(&mut h, l.descriptor().digest.hex().as_bytes());
            inputs.files.insert(
                format!("image {} layer {i}", self.0.reference),
                l.descriptor().digest.to_string(),
            );
        }
        Ok(finish(h, inputs, cx))
    }

    /// Copies the blobs the store lacks; each keeps its digest, with the
    /// audit annotations on its descriptor.
    fn build(&self, def: &LayerDef, cx: BuildCx<'_>) -> Result<Made> {
        let r = self.reference(def)?;
        let image = transport::open(&r, cx.ctx)?;
        let manifest = image.digest()?;
        let recompress =
            self.0.recompress != Some(false) && cx.settings.compression != Compression::None;
        let mut status = Status::Cached;
        let mut out: Vec<Arc<dyn Layer>> = Vec::new();
        for l in select_image_layers(def, image.as_ref())? {
            let source_digest = l.descriptor().digest;
            let (mut d, imported) = if recompress && is_uncompressed(&l.descriptor().media_type) {
                recompressed(&cx, def, l.as_ref(), &r)?
            } else {
                (l.descriptor(), import(&cx, l.as_ref(), &r)?)
            };
            if imported {
                status = Status::Imported;
            }
            // The reference as written, the manifest it named then, and the
            // layer's digest there.
            let source = format!(
                "image:{}@{} layer {}",
                self.0.reference, manifest, source_digest
            );
            d.annotations = audit(def, cx.name, source);
            out.push(Arc::new(StoreLayer::new(
                cx.ctx.store.clone(),
                d,
                l.diff_id(),
            )));
        }
        Ok(Made {
            layers: out,
            status,
            ..Made::cached(Vec::new())
        })
    }

    /// Not recorded in the layer cache: the image is read again.
    fn cached(&self, _def: &LayerDef, _cx: &BuildCx<'_>) -> Option<Vec<Arc<dyn Layer>>> {
        None
    }

    fn contents(
        &self,
        def: &LayerDef,
        ctx: &Context,
        _deb: &DebPlanner<'_>,
        visit: &mut dyn FnMut(Content<'_>) -> Result<()>,
    ) -> Result<bool> {
        let r = self.reference(def)?;
        let image = transport::open(&r, ctx)?;
        for layer in select_image_layers(def, image.as_ref())? {
            let label = PathBuf::from(format!("layer {} of {r}", layer.descriptor().digest));
            let mut tar = decompress(layer.open()?).map_err(|e| Error::from_pipeline(&label, e))?;
            visit(Content::Tar(&mut tar, &label))?;
        }
        Ok(true)
    }

    fn never_builds(&self) -> bool {
        true
    }

    /// The image's reference as written and its config's platform, when
    /// the config gives one.
    fn platform(
        &self,
        def: &LayerDef,
        ctx: &Context,
    ) -> Result<Option<(String, crate::spec::Platform)>> {
        let image = transport::open(&self.reference(def)?, ctx)?;
        let p = image.config()?.platform();
        Ok((!p.architecture.is_empty()).then(|| (self.0.reference.clone(), p)))
    }
}

/// The layers `[source.image]` selects, refusing indexes out of range and
/// unknown digests.
pub fn select_image_layers(def: &LayerDef, image: &dyn Image) -> Result<Vec<Arc<dyn Layer>>> {
    let img = def.file.source.image.as_ref().expect("an image source");
    let layers = image.layers()?;
    let mut out = Vec::new();
    for &i in &img.indexes {
        out.push(layers.get(i).cloned().ok_or_else(|| {
            Error::invalid(
                "layer",
                format!("{} key source.image.indexes", def.rel),
                format!(
                    "index {i} is out of range: {} has {} layers (0 to {})",
                    img.reference,
                    layers.len(),
                    layers.len().saturating_sub(1)
                ),
            )
        })?);
    }
    for d in &img.digests {
        let found = layers
            .iter()
            .find(|l| l.descriptor().digest.to_string() == *d || l.diff_id().to_string() == *d);
        out.push(found.cloned().ok_or_else(|| {
            Error::invalid(
                "layer",
                format!("{} key source.image.digests", def.rel),
                format!("{} has no layer {d}", img.reference),
            )
        })?);
    }
    if out.is_empty() {
        return Err(Error::invalid(
            "layer",
            format!("{} key source.image", def.rel),
            "name the layers to take with indexes = [...] or digests = [...]",
        ));
    }
    Ok(out)
}
