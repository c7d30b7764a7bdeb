//! `[source.tar]`: a tarball of the project.

use std::sync::Arc;

use super::{BuildCx, Content, Inputs, KeyCx, LayerSource, Made, finish, key_slot, put};
use crate::compose::debsrc::DebPlanner;
use crate::compose::project::{LayerDef, TarSource};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::layer::decompress;
use crate::transport::Context;

/// A tarball layer.
pub(super) struct Tar<'a>(pub(super) &'a TarSource);

impl Tar<'_> {
    /// Its path for `platform` (`{arch}`, `{os}`, `{variant}` replaced).
    fn path(&self, platform: &crate::spec::Platform) -> String {
        crate::compose::platforms::expand_path(&self.0.path, platform)
    }
}

impl LayerSource for Tar<'_> {
    /// The tarball's digest (through the stat cache).
    fn key(
        &self,
        def: &LayerDef,
        cx: &mut KeyCx<'_, '_>,
        mut h: Hasher,
        mut inputs: Inputs,
    ) -> Result<(Digest, Option<Inputs>)> {
        let d = cx
            .stat
            .digest(&key_slot(def), &def.dir.join(self.path(&cx.ctx.platform)))?;
        put(&mut h, b"tar");
        put(&mut h, d.hex().as_bytes());
        inputs
            .files
            .insert(format!("tarball {}", self.0.path), d.to_string());
        Ok(finish(h, inputs, cx))
    }

    fn build(&self, def: &LayerDef, cx: BuildCx<'_>) -> Result<Made> {
        if let Some(layers) = self.cached(def, &cx) {
            return Ok(Made::cached(layers));
        }
        let source = format!("tar:layers/{}/{}", cx.name, self.0.path);
        let layer = cx
            .builder(def, source)
            .build_from_tar(&cx.ctx.store, &def.dir.join(self.path(&cx.ctx.platform)))?;
        cx.remember(cx.key, &layer)?;
        Ok(Made::built(Arc::new(layer)))
    }

    fn contents(
        &self,
        def: &LayerDef,
        ctx: &Context,
        _deb: &DebPlanner<'_>,
        visit: &mut dyn FnMut(Content<'_>) -> Result<()>,
    ) -> Result<bool> {
        let path = def.dir.join(self.path(&ctx.platform));
        let f = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut r = decompress(f).map_err(|e| Error::io(&path, e))?;
        visit(Content::Tar(&mut r, &path))?;
        Ok(true)
    }

    fn reads(&self) -> Vec<&str> {
        vec![self.0.path.as_str()]
    }
}
