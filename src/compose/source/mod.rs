//! Layer sources: one type per `[source.*]` kind, each with its key, its
//! build, and what it will contain before it is built. [`of`] is the one
//! place the kind of a layer is matched; build, plan, check, `--locked`
//! and the deb planner go through the [`LayerSource`] trait.
//!
//! A layer's cache key hashes strata's layer-format version, the
//! compression, the mtime epoch, its normalized layer.toml, then what its
//! kind adds: every copied entry's path, kind, mode, owner, link target and
//! content digest (from the stat cache), a tarball's digest, the digests of
//! the image layers it takes, the packages a deb layer resolves to, a build
//! step's definition and inputs. Layers do not depend on the layers beneath
//! them, except those that run something over them (a build step, a deb
//! layer's maintainer scripts): their key covers the keys beneath.

mod copy;
mod deb;
mod image;
mod run;
mod tar;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::cache::{CachedLayer, LayerCache, StatCache};
use super::debsrc::{DebPlanner, Resolution};
use super::echo::EchoMode;
use super::project::LayerDef;
use crate::digest::{Digest, Hasher};
use crate::error::Result;
use crate::layer::{
    Compression, Entry, EntryKind, LAYER_FORMAT_VERSION, Layer, LayerBuilder, StoreLayer,
};
use crate::transport::Context;

pub use copy::copy_mappings;
pub use image::select_image_layers;

/// Annotation keys of the audit trail on every layer descriptor.
pub mod annotations {
    /// The layer's name.
    pub const NAME: &str = "dev.strata.layer.name";
    /// The layer's version.
    pub const VERSION: &str = "dev.strata.layer.version";
    /// Where its content came from (project-relative path, tarball, or
    /// image reference and digest).
    pub const SOURCE: &str = "dev.strata.layer.source";
}

/// What a layer's key was computed from, to explain a rebuild.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Inputs {
    /// The build settings (format version, compression, epoch).
    pub settings: String,
    /// Digest of the normalized layer.toml.
    pub definition: String,
    /// Input → fingerprint (image path for copied entries, `tar` or `image`).
    pub files: BTreeMap<String, String>,
}

impl Inputs {
    /// Why `self` (now) differs from `before`, one line each.
    pub fn changes_since(&self, before: &Inputs) -> Vec<String> {
        let mut out = Vec::new();
        if self.settings != before.settings {
            out.push(format!(
                "build settings changed ({} → {})",
                before.settings, self.settings
            ));
        }
        if self.definition != before.definition {
            out.push("layer.toml changed".into());
        }
        for (k, v) in &self.files {
            match before.files.get(k) {
                None => out.push(format!("added {k}")),
                Some(b) if b != v => out.push(format!("changed {k}")),
                _ => {}
            }
        }
        for k in before.files.keys().filter(|k| !self.files.contains_key(*k)) {
            out.push(format!("removed {k}"));
        }
        out
    }
}

/// What a layer runs something over, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunsOver {
    /// Nothing: its bytes depend on its own inputs only.
    Nothing,
    /// Its `[requires]` layers, each with its `[runtime]` layers (a build
    /// step).
    BuildStack,
    /// Its `[requires]` and `[runtime]` layers with their `[runtime]`
    /// layers (a deb layer's maintainer scripts).
    Closure,
}

/// How every layer of a build is made: the same for all its layers.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// The layers' compression.
    pub compression: Compression,
    /// mtime and `created` epoch.
    pub epoch: u64,
}

/// What computing a key needs.
pub struct KeyCx<'a, 'p> {
    /// The build settings.
    pub settings: Settings,
    /// Where images and blobs are read from.
    pub ctx: &'a Context,
    /// Resolves deb layers.
    pub deb: &'a DebPlanner<'p>,
    /// Content digests by stat fingerprint.
    pub stat: &'a mut StatCache,
    /// The keys of the layers the source runs over (see [`RunsOver`]),
    /// base first; empty for the others.
    pub below: &'a [(&'a str, Digest)],
    /// Whether to build the inputs record for this key (building it for
    /// tens of thousands of files costs more than the key itself, and a
    /// cache hit rarely needs it).
    pub want_record: &'a dyn Fn(&Digest) -> bool,
}

/// What a build step runs over: the built layers of its stack, base first,
/// and their `[env]` in order.
#[derive(Default)]
pub struct Below {
    /// The layers, base first.
    pub layers: Vec<Arc<dyn Layer>>,
    /// Their `[env]`, merged in order.
    pub env: Vec<(String, String)>,
}

/// What building one layer needs. `Send`, so layers of a wave build on
/// threads of their own.
pub struct BuildCx<'a> {
    /// The layer's name.
    pub name: &'a str,
    /// Its key.
    pub key: &'a Digest,
    /// The build settings.
    pub settings: Settings,
    /// Compression threads (0: all cores).
    pub threads: usize,
    /// Layer cache of the store.
    pub cache: &'a LayerCache,
    /// The store and transports.
    pub ctx: &'a Context,
    /// What it runs over (see [`RunsOver`]).
    pub below: Below,
    /// Its resolution, for a deb layer.
    pub deb: Option<Arc<Resolution>>,
    /// Where the output of commands it runs goes.
    pub echo: EchoMode,
}

impl BuildCx<'_> {
    /// Where this layer's progress goes.
    pub fn progress(&self) -> crate::progress::LayerProgress {
        crate::progress::LayerProgress::new(self.ctx.layer_progress.clone(), self.name)
    }

    /// A layer builder with the build's settings and the audit annotations.
    pub(super) fn builder(&self, def: &LayerDef, source: String) -> LayerBuilder {
        let mut lb = LayerBuilder::new()
            .compression(self.settings.compression)
            .mtime(self.settings.epoch)
            .progress(self.progress(), "compressing");
        if self.threads > 0 {
            lb = lb.threads(self.threads);
        }
        for (k, v) in audit(def, self.name, source) {
            lb = lb.annotation(k, v);
        }
        lb
    }

    /// A cache entry as a layer of the store.
    fn layer(&self, c: CachedLayer) -> Arc<dyn Layer> {
        Arc::new(StoreLayer::new(
            self.ctx.store.clone(),
            c.descriptor,
            c.diff_id,
        ))
    }

    /// Records `layer` under `key` in the layer cache.
    fn remember(&self, key: &Digest, layer: &dyn Layer) -> Result<()> {
        self.cache.put(
            key,
            &CachedLayer {
                descriptor: layer.descriptor(),
                diff_id: layer.diff_id(),
            },
        )
    }
}

/// How a layer's blobs came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Taken from the layer cache.
    Cached,
    /// Built now.
    Built,
    /// Copied into the store from another image.
    Imported,
    /// Found in the registry cache: its blobs stay there until read.
    Remote,
}

impl Status {
    /// "cached", "built", "imported" or "remote".
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Cached => "cached",
            Status::Built => "built",
            Status::Imported => "imported",
            Status::Remote => "remote",
        }
    }
}

/// A layer's blobs, how they came to be, and warnings about them.
pub struct Made {
    /// Its blobs, in order.
    pub layers: Vec<Arc<dyn Layer>>,
    /// Built, cached or imported.
    pub status: Status,
    /// Warnings for the build report.
    pub warnings: Vec<String>,
    /// The last lines the commands it ran printed (with
    /// [`EchoMode::Report`]).
    pub output: Vec<String>,
    /// The log of the commands it ran, when it ran any.
    pub log: Option<PathBuf>,
}

impl Made {
    fn cached(layers: Vec<Arc<dyn Layer>>) -> Self {
        Made {
            layers,
            status: Status::Cached,
            warnings: Vec::new(),
            output: Vec::new(),
            log: None,
        }
    }

    /// Blobs found in the registry cache.
    pub(crate) fn remote(layers: Vec<Arc<dyn Layer>>) -> Self {
        Made {
            status: Status::Remote,
            ..Made::cached(layers)
        }
    }

    fn built(layer: Arc<dyn Layer>) -> Self {
        Made {
            layers: vec![layer],
            status: Status::Built,
            warnings: Vec::new(),
            output: Vec::new(),
            log: None,
        }
    }
}

/// What a layer will contain, before it is built.
pub enum Content<'r> {
    /// Entries of the project's files (a copy layer).
    Entries(&'r [Entry]),
    /// A tar stream (compressed or not) and a label naming where it is
    /// from.
    Tar(&'r mut dyn Read, &'r Path),
}

/// A `[source.*]` kind.
pub trait LayerSource {
    /// What it adds to the key, after the common prefix in `h`; the inputs
    /// record when `cx.want_record` asks for it.
    fn key(
        &self,
        def: &LayerDef,
        cx: &mut KeyCx<'_, '_>,
        h: Hasher,
        inputs: Inputs,
    ) -> Result<(Digest, Option<Inputs>)>;

    /// Builds the layer, or takes it from the cache.
    fn build(&self, def: &LayerDef, cx: BuildCx<'_>) -> Result<Made>;

    /// The layer's blobs when the cache has all of them, without building
    /// (by default the one blob recorded under the layer's key).
    fn cached(&self, _def: &LayerDef, cx: &BuildCx<'_>) -> Option<Vec<Arc<dyn Layer>>> {
        cached_one(cx)
    }

    /// Feeds `visit` what the layer will contain; `false` when that is not
    /// known before it is built (a build step).
    fn contents(
        &self,
        def: &LayerDef,
        ctx: &Context,
        deb: &DebPlanner<'_>,
        visit: &mut dyn FnMut(Content<'_>) -> Result<()>,
    ) -> Result<bool>;

    /// What it runs something over.
    fn runs_over(&self) -> RunsOver {
        RunsOver::Nothing
    }

    /// Project paths it reads, relative to the layer's directory.
    fn reads(&self) -> Vec<&str> {
        Vec::new()
    }

    /// Whether `plan` always shows it as reused: it has no bytes of its
    /// own to build (an image source copies, an empty source has none).
    fn never_builds(&self) -> bool {
        false
    }

    /// Warnings `plan` shows for it.
    fn plan_warnings(&self, _def: &LayerDef) -> Vec<String> {
        Vec::new()
    }

    /// Warnings about what building it made (or would make) that `check`
    /// lists every time; a build says them only when it builds the layer.
    fn check_warnings(
        &self,
        _def: &LayerDef,
        _name: &str,
        _deb: &DebPlanner<'_>,
        _settings: Settings,
    ) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// The platform of the image it takes its bytes from, with that
    /// image's reference as written (image sources only).
    fn platform(
        &self,
        _def: &LayerDef,
        _ctx: &Context,
    ) -> Result<Option<(String, crate::spec::Platform)>> {
        Ok(None)
    }

    /// The package repositories it resolves against (`URI SUITE`), as
    /// `plan` shows them.
    fn suites(&self, _def: &LayerDef) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// The packages it resolves to, as `plan` shows them.
    fn packages(&self, _name: &str, _deb: &DebPlanner<'_>) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Its package resolution, which building it needs (deb layers only).
    fn resolution(&self, _name: &str, _deb: &DebPlanner<'_>) -> Result<Option<Arc<Resolution>>> {
        Ok(None)
    }
}

/// The source of layer `def`: the one place the kind is matched.
pub fn of(def: &LayerDef) -> Box<dyn LayerSource + '_> {
    let src = &def.file.source;
    if !src.copy.is_empty() {
        Box::new(copy::Copy(&src.copy))
    } else if let Some(t) = &src.tar {
        Box::new(tar::Tar(t))
    } else if let Some(i) = &src.image {
        Box::new(image::ImageSource(i))
    } else if let Some(d) = &src.deb {
        Box::new(deb::Deb(d))
    } else if let Some(r) = &src.run {
        Box::new(run::Run(r))
    } else {
        Box::new(Empty)
    }
}

/// Computes a layer's key, and its inputs record when `cx.want_record`
/// asks for it.
pub fn key(def: &LayerDef, cx: &mut KeyCx<'_, '_>) -> Result<(Digest, Option<Inputs>)> {
    let Settings { compression, epoch } = cx.settings;
    let inputs = Inputs {
        settings: format!("format {LAYER_FORMAT_VERSION}, {compression}, epoch {epoch}"),
        definition: Digest::of(&crate::json::to_canonical(&def.file)).to_string(),
        files: BTreeMap::new(),
    };
    let mut h = Hasher::new();
    key_prefix(&mut h, def, cx.settings);
    of(def).key(def, cx, h, inputs)
}

/// A layer with no source: metadata only (env, labels), no blob.
struct Empty;

impl LayerSource for Empty {
    fn key(
        &self,
        _def: &LayerDef,
        cx: &mut KeyCx<'_, '_>,
        h: Hasher,
        inputs: Inputs,
    ) -> Result<(Digest, Option<Inputs>)> {
        Ok(finish(h, inputs, cx))
    }

    fn build(&self, _def: &LayerDef, _cx: BuildCx<'_>) -> Result<Made> {
        Ok(Made::cached(Vec::new()))
    }

    fn cached(&self, _def: &LayerDef, _cx: &BuildCx<'_>) -> Option<Vec<Arc<dyn Layer>>> {
        Some(Vec::new())
    }

    fn contents(
        &self,
        _def: &LayerDef,
        _ctx: &Context,
        _deb: &DebPlanner<'_>,
        _visit: &mut dyn FnMut(Content<'_>) -> Result<()>,
    ) -> Result<bool> {
        Ok(true)
    }

    fn never_builds(&self) -> bool {
        true
    }
}

/// The key in `h`, and the inputs record if wanted.
fn finish(h: Hasher, inputs: Inputs, cx: &KeyCx<'_, '_>) -> (Digest, Option<Inputs>) {
    let key = h.finish();
    let record = (cx.want_record)(&key).then_some(inputs);
    (key, record)
}

/// The one cache entry of a single-blob layer.
fn cached_one(cx: &BuildCx<'_>) -> Option<Vec<Arc<dyn Layer>>> {
    cx.cache.get(cx.key).map(|c| vec![cx.layer(c)])
}

/// What every layer's key starts with: the layer format, the compression,
/// the epoch and the normalized layer.toml.
fn key_prefix(h: &mut Hasher, def: &LayerDef, s: Settings) {
    put(
        h,
        format!("strata-layer-format-{LAYER_FORMAT_VERSION}").as_bytes(),
    );
    put(h, s.compression.to_string().as_bytes());
    put(h, &s.epoch.to_le_bytes());
    put(h, &crate::json::to_canonical(&def.file));
}

/// Hashes `s` with its length in front, so consecutive fields cannot run
/// into each other.
pub(crate) fn put(h: &mut Hasher, s: &[u8]) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s);
}

/// What an input entry's key records: its kind, and a file's content
/// digest (through the stat cache).
fn entry_fingerprint(stat: &mut StatCache, slot: &str, e: &Entry) -> Result<String> {
    Ok(match &e.kind {
        EntryKind::Dir => "dir".to_string(),
        EntryKind::Symlink(t) => format!("symlink {}", String::from_utf8_lossy(t)),
        EntryKind::Hardlink(t) => format!("link {}", String::from_utf8_lossy(t)),
        EntryKind::File {
            source,
            size,
            mtime,
            id,
        } => stat
            .digest_with(slot, source, *size, *mtime, *id)?
            .to_string(),
    })
}

/// Where a layer's remembered key and per-file stat cache live: one slot
/// per layer directory, so two projects (or checkouts) sharing a store keep
/// theirs apart.
fn key_slot(def: &LayerDef) -> String {
    // By absolute path: `-C proj` from two working directories is two slots.
    let dir = def.dir.canonicalize().unwrap_or_else(|_| def.dir.clone());
    Digest::of(dir.as_os_str().as_encoded_bytes())
        .hex()
        .to_string()
}

fn audit(def: &LayerDef, name: &str, source: String) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert(annotations::NAME.to_string(), name.to_string());
    if let Some(v) = &def.file.layer.version {
        a.insert(annotations::VERSION.to_string(), v.clone());
    }
    a.insert(annotations::SOURCE.to_string(), source);
    a
}
