//! `[[source.copy]]`: files of the project.

use std::sync::Arc;

use super::{BuildCx, Content, Inputs, KeyCx, LayerSource, Made, entry_fingerprint, key_slot, put};
use crate::compose::debsrc::DebPlanner;
use crate::compose::project::{CopySource, LayerDef};
use crate::digest::{Digest, Hasher};
use crate::error::Result;
use crate::layer::{Entry, EntryKind, Mapping, collect};
use crate::spec::Platform;
use crate::transport::Context;

/// A copy layer.
pub(super) struct Copy<'a>(pub(super) &'a [CopySource]);

/// The mappings of a layer's `[[source.copy]]` entries for `platform`
/// (those whose `platforms` name it, or name none; its os, arch and variant
/// replace `{os}`, `{arch}`, `{variant}` in `from`). A layer with no entry
/// for `platform` is an error naming it.
pub fn copy_mappings(def: &LayerDef, platform: &Platform) -> Result<Vec<Mapping>> {
    let copy = &def.file.source.copy;
    if !copy.is_empty() && !copy.iter().any(|c| c.applies_to(platform)) {
        return Err(crate::error::Error::invalid(
            "layer",
            format!("{} key source.copy.platforms", def.rel),
            format!(
                "layer {} has no [[source.copy]] entry for {platform}; add one, or build its images without that platform",
                def.file.layer.name
            ),
        ));
    }
    copy.iter()
        .filter(|c| c.applies_to(platform))
        .map(|c| {
            let from = crate::compose::platforms::expand_path(&c.from, platform);
            let mut m = Mapping::new(def.dir.join(from), &c.to)?
                .owner(c.uid.unwrap_or(0), c.gid.unwrap_or(0))
                .exclude(c.exclude.clone());
            if let Some(mode) = c.mode {
                m = m.mode(mode);
            }
            Ok(m)
        })
        .collect()
}

impl LayerSource for Copy<'_> {
    /// Every entry's path, mode, owner and fingerprint. The key is
    /// remembered with the stat fingerprint of the inputs (see
    /// [`crate::compose::cache::StatCache`]): when that is unchanged and no
    /// record is wanted, the key comes without a single content lookup.
    fn key(
        &self,
        def: &LayerDef,
        cx: &mut KeyCx<'_, '_>,
        mut h: Hasher,
        mut inputs: Inputs,
    ) -> Result<(Digest, Option<Inputs>)> {
        let entries = collect(&copy_mappings(def, &cx.ctx.platform)?, false)?;
        let (fingerprint, racy) = stat_fingerprint(h.clone(), &entries, cx.stat);
        let slot = key_slot(def);
        if let Some(key) = cx.stat.remembered_key(&slot, &fingerprint)
            && !(cx.want_record)(&key)
        {
            return Ok((key, None));
        }
        let mut fingerprints = Vec::with_capacity(entries.len());
        for e in &entries {
            put(&mut h, &e.path);
            put(
                &mut h,
                &[e.mode as u8, (e.mode >> 8) as u8, (e.mode >> 16) as u8],
            );
            put(&mut h, &e.uid.to_le_bytes());
            put(&mut h, &e.gid.to_le_bytes());
            let fingerprint = entry_fingerprint(cx.stat, &slot, e)?;
            put(&mut h, fingerprint.as_bytes());
            fingerprints.push(fingerprint);
        }
        let key = h.finish();
        if !racy {
            cx.stat.remember_key(&slot, fingerprint, key.clone());
        }
        if !(cx.want_record)(&key) {
            return Ok((key, None));
        }
        for (e, fingerprint) in entries.iter().zip(fingerprints) {
            inputs.files.insert(
                format!("/{}", String::from_utf8_lossy(&e.path)),
                format!("{fingerprint} {:o} {}:{}", e.mode, e.uid, e.gid),
            );
        }
        Ok((key, Some(inputs)))
    }

    fn build(&self, def: &LayerDef, cx: BuildCx<'_>) -> Result<Made> {
        if let Some(layers) = self.cached(def, &cx) {
            return Ok(Made::cached(layers));
        }
        let rel_dir = format!("layers/{}", cx.name);
        let froms: Vec<String> = self
            .0
            .iter()
            .map(|c| format!("{rel_dir}/{}", c.from))
            .collect();
        let mut lb = cx.builder(def, format!("copy:{}", froms.join(",")));
        for m in copy_mappings(def, &cx.ctx.platform)? {
            lb = lb.mapping(m);
        }
        let layer = lb.build(&cx.ctx.store)?;
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
        let entries = collect(&copy_mappings(def, &ctx.platform)?, false)?;
        visit(Content::Entries(&entries))?;
        Ok(true)
    }

    fn reads(&self) -> Vec<&str> {
        self.0.iter().map(|c| c.from.as_str()).collect()
    }
}

/// The stat fingerprint of a copy layer's entries on top of the key's
/// prefix `h`: the key's inputs with each file's (size, mtime, device,
/// inode) in place of its content. Also whether any file is too recently
/// modified for the fingerprint to be trusted next time.
fn stat_fingerprint(
    mut h: Hasher,
    entries: &[Entry],
    stat: &crate::compose::cache::StatCache,
) -> (Digest, bool) {
    let mut racy = false;
    h.update(b"stat-fingerprint-1");
    for e in entries {
        put(&mut h, &e.path);
        h.update(&e.mode.to_le_bytes());
        h.update(&e.uid.to_le_bytes());
        h.update(&e.gid.to_le_bytes());
        match &e.kind {
            EntryKind::Dir => h.update(b"d"),
            EntryKind::Symlink(t) => {
                h.update(b"s");
                put(&mut h, t);
            }
            EntryKind::Hardlink(t) => {
                h.update(b"h");
                put(&mut h, t);
            }
            EntryKind::File {
                source,
                size,
                mtime,
                id,
            } => {
                racy |= stat.is_racy(*mtime);
                h.update(b"f");
                put(&mut h, source.as_os_str().as_encoded_bytes());
                for n in [*size, mtime.0 as u64, mtime.1 as u64, id.0, id.1] {
                    h.update(&n.to_le_bytes());
                }
            }
        }
    }
    (h.finish(), racy)
}
