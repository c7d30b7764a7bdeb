//! `strata build`: build the layers whose inputs changed, reuse the rest,
//! compose the images and tag them in the store.
//!
//! A layer's cache key hashes strata's layer-format version, the
//! compression, the mtime epoch, its normalized layer.toml and its inputs:
//! every copied entry's path, kind, mode, owner, link target and content
//! digest (from the stat cache), a tarball's digest, or the digests of the
//! image layers it takes. A layer whose key is cached is not rebuilt — no
//! tar, no compression. Layers do not depend on the layers beneath them, so
//! changing a lower layer rebuilds only the manifests and configs of the
//! images that contain it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::cache::{CachedLayer, LayerCache, StatCache};
use super::check::{copy_mappings, select_image_layers};
use super::debsrc::{DebPlanner, Resolution};
use super::graph::Graph;
use super::project::{LayerDef, Project};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::image::{Image, ImageBuilder};
use crate::layer::{
    Compression, EntryKind, LAYER_FORMAT_VERSION, Layer, LayerBuilder, StoreLayer, collect,
};
use crate::spec::Platform;
use crate::transport::{self, Context, ImageRef};

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

/// What happened to one layer.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    /// Layer name.
    pub name: String,
    /// Layer version.
    pub version: Option<String>,
    /// "built", "cached" or "imported".
    pub status: &'static str,
    /// Seconds spent.
    pub seconds: f64,
    /// Compressed size of its blobs.
    pub size: u64,
    /// Its blob digests.
    pub digests: Vec<Digest>,
    /// The cache key.
    pub key: Digest,
}

/// What happened to one image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    /// Image name.
    pub name: String,
    /// Manifest digest.
    pub digest: Digest,
    /// Sum of its layers' compressed sizes.
    pub size: u64,
    /// The same sum for the image the first tag pointed at before, if any.
    pub previous_size: Option<u64>,
    /// Tags written.
    pub tags: Vec<String>,
    /// Registry references pushed (with `--push`).
    pub pushed: Vec<String>,
    /// Store tag of the image's SPDX SBOM.
    pub sbom: String,
    /// Packages the SBOM lists.
    pub packages: usize,
}

/// The build report.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// Layers in build order.
    pub layers: Vec<LayerReport>,
    /// Images.
    pub images: Vec<ImageReport>,
    /// Cached layers / all layers.
    pub cache_hit_rate: f64,
    /// Files whose content was read to compute keys.
    pub files_hashed: usize,
    /// Total seconds.
    pub seconds: f64,
    /// Warnings (layers whose bytes changed without a version bump).
    pub warnings: Vec<String>,
    /// Layer and image tests (with `test`).
    pub tests: Vec<super::layertest::TestReport>,
}

/// Which images to build.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Images by name (all when empty and no profile).
    pub images: Vec<String>,
    /// A profile from `[profiles]`.
    pub profile: Option<String>,
    /// Fail when a layer's bytes would differ from strata.lock (and do not
    /// update it).
    pub locked: bool,
    /// Push the built images to `[defaults] registry` under their tags.
    pub push: bool,
    /// Fetch the Release files of deb layers' repositories anew.
    pub refresh: bool,
    /// With `push`, attach each image's SBOM in the registry (referrers
    /// API, or the tag-schema fallback).
    pub attach_sbom: bool,
    /// Run the layers' and images' tests before tagging; a failure tags
    /// nothing.
    pub test: bool,
    /// Run tests that passed before over the same layers again.
    pub rerun: bool,
    /// Stop after the tests: tag, record and push nothing (`strata test`).
    pub tests_only: bool,
    /// Build every build-step layer a second time and fail, tagging
    /// nothing, when the two differ (naming the paths).
    pub check_reproducible: bool,
}

struct Built {
    layers: Vec<Arc<dyn Layer>>,
    report: LayerReport,
    warnings: Vec<String>,
}

/// The images a selection names.
pub fn selected_images(project: &Project, sel: &Selection) -> Result<Vec<String>> {
    let mut names = sel.images.clone();
    if let Some(p) = &sel.profile {
        let members = project
            .file
            .profiles
            .get(p)
            .ok_or_else(|| Error::NotFound {
                what: format!("profile {p:?}"),
                location: "strata.toml [profiles]".into(),
                hint: format!(
                    " (profiles: {})",
                    project
                        .file
                        .profiles
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        names.extend(members.iter().cloned());
    }
    if names.is_empty() {
        names = project.file.images.keys().cloned().collect();
    }
    names.dedup();
    Ok(names)
}

/// The mtime/created epoch: SOURCE_DATE_EPOCH when set, else the project
/// default, else 0.
pub fn epoch(project: &Project) -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => crate::layer::source_date_epoch(),
        _ => Ok(project.file.defaults.source_date_epoch.unwrap_or(0)),
    }
}

/// The compression of the project's layers.
pub fn compression(project: &Project) -> Result<Compression> {
    match &project.file.defaults.compression {
        Some(c) => Compression::parse(c).map_err(|e| {
            Error::invalid(
                "project",
                "strata.toml key defaults.compression",
                e.to_string(),
            )
        }),
        None => Ok(Compression::gzip()),
    }
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

/// Computes a layer's cache key.
pub fn layer_key(
    def: &LayerDef,
    compression: Compression,
    epoch: u64,
    stat: &mut StatCache,
    deb: &DebPlanner<'_>,
    below: &[(&str, Digest)],
) -> Result<Digest> {
    Ok(layer_key_with(def, compression, epoch, stat, deb, below, &|_| false)?.0)
}

/// Computes a layer's cache key and the inputs it hashed.
pub fn layer_key_inputs(
    def: &LayerDef,
    compression: Compression,
    epoch: u64,
    stat: &mut StatCache,
    deb: &DebPlanner<'_>,
    below: &[(&str, Digest)],
) -> Result<(Digest, Inputs)> {
    let (key, inputs) = layer_key_with(def, compression, epoch, stat, deb, below, &|_| true)?;
    Ok((key, inputs.expect("asked for")))
}

/// The key, and the inputs record when `want_record(key)` (building the
/// record for tens of thousands of files costs more than the key itself,
/// and a cache hit rarely needs it).
///
/// A copy layer's key is remembered with the stat fingerprint of its inputs
/// (see [`StatCache`]): when the fingerprint is unchanged and no record is
/// wanted, the key comes without a single content lookup.
///
/// `below` are the keys of the layers a build step runs over, base first
/// (see [`stack_keys`]); other kinds ignore them.
#[allow(clippy::too_many_arguments)]
pub(super) fn layer_key_with(
    def: &LayerDef,
    compression: Compression,
    epoch: u64,
    stat: &mut StatCache,
    deb: &DebPlanner<'_>,
    below: &[(&str, Digest)],
    want_record: &dyn Fn(&Digest) -> bool,
) -> Result<(Digest, Option<Inputs>)> {
    let ctx = deb.context();
    let mut h = Hasher::new();
    let mut inputs = Inputs {
        settings: format!("format {LAYER_FORMAT_VERSION}, {compression}, epoch {epoch}"),
        definition: Digest::of(&crate::json::to_canonical(&def.file)).to_string(),
        files: BTreeMap::new(),
    };
    put(
        &mut h,
        format!("strata-layer-format-{LAYER_FORMAT_VERSION}").as_bytes(),
    );
    put(&mut h, compression.to_string().as_bytes());
    put(&mut h, &epoch.to_le_bytes());
    put(&mut h, &crate::json::to_canonical(&def.file));
    let src = &def.file.source;
    if !src.copy.is_empty() {
        let entries = collect(&copy_mappings(def)?, false)?;
        let (fingerprint, racy) = stat_fingerprint(h.clone(), &entries, stat);
        let slot = key_slot(def);
        if let Some(key) = stat.remembered_key(&slot, &fingerprint)
            && !want_record(&key)
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
            let fingerprint = entry_fingerprint(stat, &slot, e)?;
            put(&mut h, fingerprint.as_bytes());
            fingerprints.push(fingerprint);
        }
        let key = h.finish();
        if !racy {
            stat.remember_key(&slot, fingerprint, key.clone());
        }
        if !want_record(&key) {
            return Ok((key, None));
        }
        for (e, fingerprint) in entries.iter().zip(fingerprints) {
            inputs.files.insert(
                format!("/{}", String::from_utf8_lossy(&e.path)),
                format!("{fingerprint} {:o} {}:{}", e.mode, e.uid, e.gid),
            );
        }
        return Ok((key, Some(inputs)));
    } else if let Some(t) = &src.tar {
        let d = stat.digest(&key_slot(def), &def.dir.join(&t.path))?;
        put(&mut h, b"tar");
        put(&mut h, d.hex().as_bytes());
        inputs
            .files
            .insert(format!("tarball {}", t.path), d.to_string());
    } else if src.deb.is_some() {
        let res = deb.resolve(&def.file.layer.name)?;
        put(
            &mut h,
            format!("deb-layer-format-{}", crate::deb::layer::FORMAT).as_bytes(),
        );
        put(&mut h, res.arch.as_bytes());
        put(&mut h, &[u8::from(res.merged_usr), u8::from(res.usr_links)]);
        for p in &res.packages {
            put(&mut h, p.name.as_bytes());
            put(&mut h, p.version.as_bytes());
            put(&mut h, p.arch.as_bytes());
            put(&mut h, p.sha256.hex().as_bytes());
            inputs.files.insert(
                format!("package {}", p.name),
                format!("{} {}", p.version, p.sha256),
            );
        }
    } else if let Some(run) = &src.run {
        put(
            &mut h,
            format!("strata-step-format-{}", super::step::STEP_FORMAT).as_bytes(),
        );
        let platform = Platform::host().to_string();
        put(&mut h, platform.as_bytes());
        inputs.settings.push_str(&format!(
            ", step format {}, {platform}",
            super::step::STEP_FORMAT
        ));
        for (name, key) in below {
            put(&mut h, name.as_bytes());
            put(&mut h, key.hex().as_bytes());
            inputs
                .files
                .insert(format!("layer {name} beneath"), key.to_string());
        }
        let slot = key_slot(def);
        for e in collect(&super::step::input_mappings(def, run)?, false)? {
            put(&mut h, &e.path);
            put(&mut h, &e.mode.to_le_bytes());
            let fingerprint = entry_fingerprint(stat, &slot, &e)?;
            put(&mut h, fingerprint.as_bytes());
            inputs.files.insert(
                format!("input /{}", String::from_utf8_lossy(&e.path)),
                format!("{fingerprint} {:o}", e.mode),
            );
        }
    } else if let Some(img) = &src.image {
        let r = ImageRef::parse(&img.reference)?.relative_to(&def.dir);
        let image = transport::open(&r, ctx)?;
        for (i, l) in select_image_layers(def, image.as_ref())?.iter().enumerate() {
            put(&mut h, l.descriptor().digest.hex().as_bytes());
            inputs.files.insert(
                format!("image {} layer {i}", img.reference),
                l.descriptor().digest.to_string(),
            );
        }
    }
    let key = h.finish();
    let record = want_record(&key).then_some(inputs);
    Ok((key, record))
}

/// What an input entry's key records: its kind, and a file's content
/// digest (through the stat cache).
fn entry_fingerprint(stat: &mut StatCache, slot: &str, e: &crate::layer::Entry) -> Result<String> {
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

/// The keys of the layers `layer`'s build step runs over, base first (empty
/// for other kinds), from the keys computed so far in graph order.
pub fn stack_keys<'p>(
    project: &Project,
    graph: &Graph<'p>,
    layer: &str,
    keys: &BTreeMap<&str, Digest>,
) -> Vec<(&'p str, Digest)> {
    if project.layers[layer].file.source.run.is_none() {
        return Vec::new();
    }
    graph
        .build_stack(layer)
        .into_iter()
        .map(|l| (l, keys[l].clone()))
        .collect()
}

/// Hashes `s` with its length in front, so consecutive fields cannot run
/// into each other.
fn put(h: &mut Hasher, s: &[u8]) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s);
}

/// The stat fingerprint of a copy layer's entries on top of the key's
/// prefix `h`: the key's inputs with each file's (size, mtime, device,
/// inode) in place of its content. Also whether any file is too recently
/// modified for the fingerprint to be trusted next time.
fn stat_fingerprint(
    mut h: Hasher,
    entries: &[crate::layer::Entry],
    stat: &StatCache,
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

/// Computes a layer's key (recording its inputs) and builds it, or takes it
/// from the cache.
fn key_and_build_layer(
    project: &Project,
    name: &str,
    compression: Compression,
    epoch: u64,
    stat: &mut StatCache,
    cache: &LayerCache,
    deb: &DebPlanner<'_>,
) -> Result<Built> {
    let def = &project.layers[name];
    let (key, inputs) = layer_key_inputs(def, compression, epoch, stat, deb, &[])?;
    cache.put_inputs(name, &serde_json::to_vec(&inputs).expect("serializes"))?;
    let res = match def.file.source.deb {
        Some(_) => Some(deb.resolve(name)?),
        None => None,
    };
    build_layer(
        project,
        name,
        compression,
        epoch,
        key,
        cache,
        deb.context(),
        0,
        res,
        Below::default(),
    )
}

/// What a build step runs over: the built layers of its stack, base first,
/// and their `[env]` in order.
#[derive(Default)]
pub(super) struct Below {
    layers: Vec<Arc<dyn Layer>>,
    env: Vec<(String, String)>,
}

/// [`Below`] for layer `l` (empty unless it is a build step), from the
/// layers built so far.
fn step_below(
    project: &Project,
    graph: &Graph<'_>,
    l: &str,
    built: &BTreeMap<&str, Built>,
) -> Below {
    if project.layers[l].file.source.run.is_none() {
        return Below::default();
    }
    let mut below = Below::default();
    for s in graph.build_stack(l) {
        below.layers.extend(built[s].layers.iter().cloned());
        for (k, v) in &project.layers[s].file.env {
            set_env_expanded(&mut below.env, k, v);
        }
    }
    below
}

/// The layers a build of `plans` keys and builds: the images' layers and
/// what their build steps run over.
fn needed_layers<'p>(
    graph: &Graph<'p>,
    plans: &[(String, Vec<&'p str>, Vec<String>)],
) -> std::collections::BTreeSet<&'p str> {
    let mut all: Vec<&'p str> = plans
        .iter()
        .flat_map(|(_, ls, _)| ls.iter().copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    graph.with_step_stacks(&all).into_iter().collect()
}

/// Builds layer `name` whose key is `key` (or takes it from the cache),
/// compressing on `threads` threads (0: all cores).
#[allow(clippy::too_many_arguments)]
fn build_layer(
    project: &Project,
    name: &str,
    compression: Compression,
    epoch: u64,
    key: Digest,
    cache: &LayerCache,
    ctx: &Context,
    threads: usize,
    deb: Option<Arc<Resolution>>,
    below: Below,
) -> Result<Built> {
    let started = Instant::now();
    let def = &project.layers[name];
    let rel_dir = format!("layers/{name}");
    let src = &def.file.source;
    let mut report = LayerReport {
        name: name.to_string(),
        version: def.file.layer.version.clone(),
        status: "cached",
        seconds: 0.0,
        size: 0,
        digests: Vec::new(),
        key: key.clone(),
    };
    let layers: Vec<Arc<dyn Layer>> = if let Some(img) = &src.image {
        let r = ImageRef::parse(&img.reference)?.relative_to(&def.dir);
        let image = transport::open(&r, ctx)?;
        let mut out: Vec<Arc<dyn Layer>> = Vec::new();
        for l in select_image_layers(def, image.as_ref())? {
            let mut d = l.descriptor();
            let fresh = !ctx.store.has_blob(&d.digest);
            if fresh {
                ctx.store.put_verified(
                    l.open()?,
                    &d.digest,
                    Some(d.size),
                    &format!("layer {} of {r}", d.digest),
                )?;
                report.status = "imported";
            }
            d.annotations = audit(def, name, format!("image:{}@{}", img.reference, d.digest));
            out.push(Arc::new(StoreLayer::new(ctx.store.clone(), d, l.diff_id())));
        }
        out
    } else if let (Some(res), Some(d)) = (&deb, &src.deb) {
        // One cache entry per layer: key, or key+index with one layer per package.
        let n = if d.one_layer_per_package {
            res.packages.len()
        } else {
            1
        };
        let subkey = |i: usize| match d.one_layer_per_package {
            false => key.clone(),
            true => Digest::of(format!("{key} package {i}").as_bytes()),
        };
        let cached: Option<Vec<CachedLayer>> = (0..n).map(|i| cache.get(&subkey(i))).collect();
        let layers = match cached {
            Some(c) => c,
            None => {
                report.status = "built";
                let make = |g: &[crate::deb::resolve::Selected]| {
                    let what = if d.one_layer_per_package {
                        g.iter().map(|p| p.label()).collect::<Vec<_>>().join(",")
                    } else {
                        d.packages.join(",")
                    };
                    let mut lb = LayerBuilder::new().compression(compression).mtime(epoch);
                    if threads > 0 {
                        lb = lb.threads(threads);
                    }
                    for (k, v) in audit(def, name, format!("deb:{what}")) {
                        lb = lb.annotation(k, v);
                    }
                    lb
                };
                let built = super::debsrc::build(ctx, res, d.one_layer_per_package, make)?;
                let mut out = Vec::new();
                for (i, l) in built.iter().enumerate() {
                    let c = CachedLayer {
                        descriptor: l.descriptor(),
                        diff_id: l.diff_id(),
                    };
                    cache.put(&subkey(i), &c)?;
                    out.push(c);
                }
                out
            }
        };
        layers
            .into_iter()
            .map(|c| {
                Arc::new(StoreLayer::new(ctx.store.clone(), c.descriptor, c.diff_id))
                    as Arc<dyn Layer>
            })
            .collect()
    } else if let Some(c) = cache.get(&key) {
        vec![
            Arc::new(StoreLayer::new(ctx.store.clone(), c.descriptor, c.diff_id)) as Arc<dyn Layer>,
        ]
    } else if let Some(run) = &src.run {
        report.status = "built";
        let mut lb = LayerBuilder::new().compression(compression).mtime(epoch);
        if threads > 0 {
            lb = lb.threads(threads);
        }
        for (k, v) in audit(def, name, format!("run:{rel_dir}/layer.toml")) {
            lb = lb.annotation(k, v);
        }
        let cx = super::step::StepContext {
            name,
            key: &key,
            store: &ctx.store,
            lowers: below.layers,
            lower_env: below.env,
            epoch,
            builder: lb,
        };
        let layer = super::step::build(def, run, &cx)?;
        cache.put(
            &key,
            &CachedLayer {
                descriptor: layer.descriptor(),
                diff_id: layer.diff_id(),
            },
        )?;
        vec![Arc::new(layer)]
    } else if src.copy.is_empty() && src.tar.is_none() {
        Vec::new()
    } else {
        report.status = "built";
        let source = if let Some(t) = &src.tar {
            format!("tar:{rel_dir}/{}", t.path)
        } else {
            let froms: Vec<String> = src
                .copy
                .iter()
                .map(|c| format!("{rel_dir}/{}", c.from))
                .collect();
            format!("copy:{}", froms.join(","))
        };
        let mut lb = LayerBuilder::new().compression(compression).mtime(epoch);
        if threads > 0 {
            lb = lb.threads(threads);
        }
        for (k, v) in audit(def, name, source) {
            lb = lb.annotation(k, v);
        }
        let layer = if let Some(t) = &src.tar {
            lb.build_from_tar(&ctx.store, &def.dir.join(&t.path))?
        } else {
            for m in copy_mappings(def)? {
                lb = lb.mapping(m);
            }
            lb.build(&ctx.store)?
        };
        cache.put(
            &key,
            &CachedLayer {
                descriptor: layer.descriptor(),
                diff_id: layer.diff_id(),
            },
        )?;
        vec![Arc::new(layer)]
    };
    report.size = layers.iter().map(|l| l.descriptor().size).sum();
    report.digests = layers.iter().map(|l| l.descriptor().digest).collect();
    report.seconds = started.elapsed().as_secs_f64();
    let warnings = deb
        .map(|r| {
            crate::deb::layer::postinst_warnings(&r.packages)
                .into_iter()
                .map(|w| format!("layer {name}: {w}"))
                .collect()
        })
        .unwrap_or_default();
    Ok(Built {
        layers,
        report,
        warnings,
    })
}

/// Sets `key` in an ordered environment (an existing key keeps its place).
pub(super) fn set_env(env: &mut Vec<(String, String)>, key: &str, value: String) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(e) => e.1 = value,
        None => env.push((key.to_string(), value)),
    }
}

/// [`set_env`] with `value` expanded (see [`expand`]) over what is set.
pub(super) fn set_env_expanded(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    let flat: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let value = expand(value, &flat);
    set_env(env, key, value);
}

/// Expands `$NAME` / `${NAME}` in `value` with the config's current env.
pub(super) fn expand(value: &str, env: &[String]) -> String {
    let lookup = |k: &str| {
        env.iter()
            .find_map(|e| e.strip_prefix(&format!("{k}=")).map(str::to_string))
            .unwrap_or_default()
    };
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(j) => (&inner[..j], j + 2),
                None => ("", 0),
            }
        } else {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..n], n)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
        } else {
            out.push_str(&lookup(name));
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}

fn expand_tag(pattern: &str, project: &Project, image: &str, epoch: u64) -> Result<String> {
    let mut t = pattern
        .replace("{project}", &project.file.project.name)
        .replace("{image}", image);
    if t.contains("{version}") {
        let spec = &project.file.images[image];
        let top = spec
            .layers
            .first()
            .map(|l| l.split('@').next().unwrap_or(l));
        let version = top
            .and_then(|l| project.layers.get(l))
            .and_then(|d| d.file.layer.version.clone())
            .ok_or_else(|| {
                Error::invalid(
                    "tag",
                    format!("strata.toml images.{image}.tags {pattern:?}"),
                    "{version} needs a version in the image's first layer",
                )
            })?;
        t = t.replace("{version}", &version);
    }
    if t.contains("{timestamp}") {
        let stamp = crate::image::rfc3339(epoch)
            .replace([':', '-'], "")
            .replace('T', "-");
        t = t.replace("{timestamp}", stamp.trim_end_matches('Z'));
    }
    if t.contains("{git_sha}") {
        let out = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(&project.root)
            .output()
            .map_err(|e| {
                Error::bad_input("tag pattern {git_sha}", format!("cannot run git: {e}"))
            })?;
        if !out.status.success() {
            return Err(Error::bad_input(
                "tag pattern {git_sha}",
                format!(
                    "{} is not in a git repository with commits",
                    project.root.display()
                ),
            ));
        }
        t = t.replace("{git_sha}", String::from_utf8_lossy(&out.stdout).trim());
    }
    crate::reference::normalize_name(&t).map_err(|e| {
        Error::invalid(
            "tag",
            format!("strata.toml images.{image}.tags {pattern:?}"),
            e.to_string(),
        )
    })
}

/// The tags image `name` gets: its `tags` (or `{project}/{image}:latest`)
/// and `stable_tags`, expanded and checked.
pub fn image_tags(project: &Project, name: &str, epoch: u64) -> Result<Vec<String>> {
    let spec = &project.file.images[name];
    let mut patterns = if spec.tags.is_empty() {
        vec!["{project}/{image}:latest".to_string()]
    } else {
        spec.tags.clone()
    };
    patterns.extend(spec.stable_tags.iter().cloned());
    patterns
        .iter()
        .map(|p| expand_tag(p, project, name, epoch))
        .collect()
}

/// Two images of the project that would write the same tag are an error
/// (the later would silently take it from the earlier). The `selected`
/// images' tags must expand; another image whose patterns cannot expand
/// here (e.g. `{git_sha}` outside git) is left out of the comparison.
pub fn check_tag_clashes(project: &Project, selected: &[String], epoch: u64) -> Result<()> {
    let mut owner: BTreeMap<String, &str> = BTreeMap::new();
    for name in project.file.images.keys() {
        let tags = match image_tags(project, name, epoch) {
            Ok(t) => t,
            Err(e) if selected.contains(name) => return Err(e),
            Err(_) => continue,
        };
        for t in tags {
            match owner.get(&t) {
                Some(other) if *other != name.as_str() => {
                    return Err(Error::invalid(
                        "tag",
                        "strata.toml",
                        format!(
                            "images {other} and {name} both write the tag {t}; give each image its own tags"
                        ),
                    ));
                }
                Some(_) => {
                    return Err(Error::invalid(
                        "tag",
                        format!("strata.toml images.{name}"),
                        format!("the tag {t} is given twice"),
                    ));
                }
                None => {
                    owner.insert(t, name);
                }
            }
        }
    }
    Ok(())
}

/// Builds the selected images.
pub fn build(project: &Project, ctx: &Context, sel: &Selection) -> Result<BuildReport> {
    let started = Instant::now();
    let graph = Graph::new(project)?;
    let names = selected_images(project, sel)?;
    let compression = compression(project)?;
    let epoch = epoch(project)?;
    // Check every image's layer list (and tag patterns) before writing anything.
    let mut plans = Vec::new();
    check_tag_clashes(project, &names, epoch)?;
    for name in &names {
        let layers = graph.image_layers(name)?;
        let tags = image_tags(project, name, epoch)?;
        plans.push((name.clone(), layers, tags));
    }
    let mut lock = super::lock::Lock::load(&project.root)?;
    let planner = DebPlanner::new(project, &graph, ctx, sel.refresh);
    if sel.locked {
        verify_locked(project, &graph, &plans, &lock, compression, epoch, &planner)?;
    }
    let cache = LayerCache::new(&ctx.store)?;
    let mut stat = StatCache::load(&ctx.store)?;
    let mut built: BTreeMap<&str, Built> = BTreeMap::new();
    let mut order = Vec::new();
    // Keys first (the stat cache is sequential), then each dependency wave's
    // layers build in parallel, sharing the cores.
    let mut keys: BTreeMap<&str, Digest> = BTreeMap::new();
    let mut records = Vec::new();
    let needed = needed_layers(&graph, &plans);
    for &l in graph.order() {
        if needed.contains(&l) {
            let def = &project.layers[l];
            // The record explains the next rebuild; a cache hit means the
            // recorded inputs are these already.
            let want = |k: &Digest| cache.get(k).is_none() || !cache.has_inputs(l);
            let below = stack_keys(project, &graph, l, &keys);
            let (key, inputs) =
                layer_key_with(def, compression, epoch, &mut stat, &planner, &below, &want)?;
            if let Some(inputs) = inputs {
                records.push((l, serde_json::to_vec(&inputs).expect("serializes")));
            }
            keys.insert(l, key);
            order.push(l);
        }
    }
    // The composition checks run before anything is written; an image whose
    // spec and layer keys already passed is not checked again.
    let mut warnings = check_images(project, &graph, &plans, &keys, &planner)?;
    let mut resolutions: BTreeMap<&str, Arc<Resolution>> = BTreeMap::new();
    for &l in keys.keys() {
        if project.layers[l].file.source.deb.is_some() {
            resolutions.insert(l, planner.resolve(l)?);
        }
    }
    for (l, record) in records {
        cache.put_inputs(l, &record)?;
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    for wave in graph.waves() {
        let todo: Vec<&str> = wave.into_iter().filter(|l| keys.contains_key(l)).collect();
        let threads = (cores / todo.len().clamp(1, cores)).max(1);
        let results: Vec<(&str, Result<Built>)> = std::thread::scope(|s| {
            let handles: Vec<_> = todo
                .iter()
                .map(|&l| {
                    let key = keys[l].clone();
                    let cache = &cache;
                    let res = resolutions.get(l).cloned();
                    let below = step_below(project, &graph, l, &built);
                    (
                        l,
                        s.spawn(move || {
                            build_layer(
                                project,
                                l,
                                compression,
                                epoch,
                                key,
                                cache,
                                ctx,
                                threads,
                                res,
                                below,
                            )
                        }),
                    )
                })
                .collect();
            handles
                .into_iter()
                .map(|(l, h)| {
                    (
                        l,
                        h.join().unwrap_or_else(|_| {
                            Err(Error::Unsupported(format!("building layer {l} panicked")))
                        }),
                    )
                })
                .collect()
        });
        for (l, r) in results {
            let b = r?;
            warnings.extend(b.warnings.iter().cloned());
            built.insert(l, b);
        }
    }
    stat.save()?;
    if !sel.locked && !sel.tests_only {
        for (&name, b) in &built {
            if let Some(w) = lock.record(pin_of(project, name, &b.layers)) {
                warnings.push(w);
            }
        }
        let all: Vec<&str> = project.layers.keys().map(String::as_str).collect();
        lock.retain(&all);
        lock.save(&project.root)?;
    }
    if sel.check_reproducible {
        check_reproducible(project, &graph, &order, &built, compression, epoch, &keys)?;
    }
    let tests = if sel.test || sel.tests_only {
        run_tests(
            project,
            ctx,
            &graph,
            &plans,
            &order,
            &built,
            &resolutions,
            &cache,
            compression,
            epoch,
            sel.rerun,
        )?
    } else {
        Vec::new()
    };
    let failed: Vec<&super::layertest::TestReport> = tests.iter().filter(|t| !t.passed).collect();
    if sel.tests_only || !failed.is_empty() {
        if !sel.tests_only {
            return Err(Error::invalid(
                "build",
                project.root.display().to_string(),
                format!(
                    "{} of {} tests failed, so nothing was tagged:\n{}",
                    failed.len(),
                    tests.len(),
                    failed
                        .iter()
                        .map(|t| format!(
                            "  {}: `{}`: {}{}",
                            t.target,
                            t.name,
                            t.problem.as_deref().unwrap_or(""),
                            t.output
                                .iter()
                                .rev()
                                .take(20)
                                .rev()
                                .map(|l| format!("\n      {}", crate::text::escape(l)))
                                .collect::<String>()
                        ))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            ));
        }
        let layer_reports: Vec<LayerReport> =
            order.iter().map(|l| built[l].report.clone()).collect();
        return Ok(BuildReport {
            cache_hit_rate: 0.0,
            layers: layer_reports,
            images: Vec::new(),
            files_hashed: stat.hashed,
            seconds: started.elapsed().as_secs_f64(),
            warnings,
            tests,
        });
    }
    let mut images = Vec::new();
    for (name, layers, tags) in plans {
        let spec = &project.file.images[&name];
        let image = compose_image(
            project,
            ctx,
            &name,
            &layers,
            &built,
            &resolutions,
            &cache,
            compression,
            epoch,
        )?;
        let previous_size = transport::oci::open(&ctx.store, Some(&tags[0]), &Platform::host())
            .ok()
            .and_then(|img| Some(img.layers().ok()?.iter().map(|l| l.descriptor().size).sum()));
        let digest = transport::oci::write_image(&image, &ctx.store, None)?;
        let desc = image.descriptor()?;
        for t in &tags {
            ctx.store.set_tag(t, &desc)?;
        }
        let (doc, packages) = sbom_of(
            &name,
            &image,
            &digest,
            epoch,
            &layers,
            &built,
            &resolutions,
            spec,
        )?;
        let artifact =
            crate::sbom::Artifact::write(&ctx.store, &desc, crate::sbom::SPDX_JSON, &doc, epoch)?;
        let repo = tags[0]
            .rsplit_once(':')
            .map_or(tags[0].as_str(), |(n, _)| n);
        let sbom_tag = crate::sbom::Artifact::tag(repo, &digest);
        ctx.store.set_tag(&sbom_tag, &artifact.descriptor()?)?;
        let mut pushed = Vec::new();
        if sel.push {
            let attach = sel.attach_sbom.then_some((&artifact, &digest));
            pushed = push_image(project, ctx, &image, &tags, attach)?;
        }
        images.push(ImageReport {
            name,
            digest,
            size: image.layers()?.iter().map(|l| l.descriptor().size).sum(),
            previous_size,
            tags,
            pushed,
            sbom: sbom_tag,
            packages,
        });
    }
    drop_orphan_sboms(&ctx.store)?;
    let layer_reports: Vec<LayerReport> = order.iter().map(|l| built[l].report.clone()).collect();
    let hits = layer_reports
        .iter()
        .filter(|r| r.status == "cached")
        .count();
    Ok(BuildReport {
        cache_hit_rate: if layer_reports.is_empty() {
            1.0
        } else {
            hits as f64 / layer_reports.len() as f64
        },
        layers: layer_reports,
        images,
        files_hashed: stat.hashed,
        seconds: started.elapsed().as_secs_f64(),
        warnings,
        tests,
    })
}

/// Builds each build-step layer of `order` again in a scratch store and
/// compares it with the one built (or cached): an error lists the paths
/// that differ.
#[allow(clippy::too_many_arguments)]
fn check_reproducible(
    project: &Project,
    graph: &Graph<'_>,
    order: &[&str],
    built: &BTreeMap<&str, Built>,
    compression: Compression,
    epoch: u64,
    keys: &BTreeMap<&str, Digest>,
) -> Result<()> {
    let scratch_dir = tempfile::Builder::new()
        .prefix("strata-reproducible-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let scratch = crate::store::Store::open_or_create(scratch_dir.path())?;
    let mut problems = Vec::new();
    for &l in order {
        let def = &project.layers[l];
        let Some(run) = &def.file.source.run else {
            continue;
        };
        let below = step_below(project, graph, l, built);
        let lb = LayerBuilder::new().compression(compression).mtime(epoch);
        let cx = super::step::StepContext {
            name: l,
            key: &keys[l],
            store: &scratch,
            lowers: below.layers,
            lower_env: below.env,
            epoch,
            builder: lb,
        };
        let again = super::step::build(def, run, &cx)?;
        let first = &built[l].layers[0];
        let diffs = super::repro::compare(first.as_ref(), &again)?;
        if !diffs.is_empty() {
            problems.push(format!(
                "layer {l}: {} ({} vs {}):\n{}",
                "two builds differ",
                first.diff_id(),
                again.diff_id(),
                diffs
                    .iter()
                    .map(|d| format!("  {}: {}", crate::text::escape(&d.path), d.what))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(
        "build",
        project.root.display().to_string(),
        format!(
            "build steps that are not reproducible, so nothing was tagged:\n{}",
            problems.join("\n")
        ),
    ))
}

/// Runs the tests of every layer the build made (over the layer and its
/// `[runtime]` stack) and of every selected image (in the composed image,
/// untagged), in that order.
#[allow(clippy::too_many_arguments)]
fn run_tests(
    project: &Project,
    ctx: &Context,
    graph: &Graph<'_>,
    plans: &[(String, Vec<&str>, Vec<String>)],
    order: &[&str],
    built: &BTreeMap<&str, Built>,
    resolutions: &BTreeMap<&str, Arc<Resolution>>,
    cache: &LayerCache,
    compression: Compression,
    epoch: u64,
    rerun: bool,
) -> Result<Vec<super::layertest::TestReport>> {
    use super::layertest::{TestTarget, run};
    let mut out = Vec::new();
    for &l in order {
        let def = &project.layers[l];
        if def.file.tests.is_empty() {
            continue;
        }
        let mut layers = Vec::new();
        let mut pairs = vec![("PATH".to_string(), super::step::DEFAULT_PATH.to_string())];
        for s in graph.runtime_stack(l) {
            layers.extend(built[s].layers.iter().cloned());
            for (k, v) in &project.layers[s].file.env {
                set_env_expanded(&mut pairs, k, v);
            }
        }
        pairs.sort();
        let env: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let target = TestTarget {
            label: format!("layer {l}"),
            layers,
            env,
            cwd: "/".into(),
            tests: &def.file.tests,
        };
        out.extend(run(&ctx.store, &target, rerun)?);
    }
    for (name, layers, _) in plans {
        let spec = &project.file.images[name];
        if spec.tests.is_empty() {
            continue;
        }
        let image = compose_image(
            project,
            ctx,
            name,
            layers,
            built,
            resolutions,
            cache,
            compression,
            epoch,
        )?;
        let cfg = image.config()?;
        let mut env = cfg.env();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={}", super::step::DEFAULT_PATH));
        }
        let target = TestTarget {
            label: format!("image {name}"),
            layers: image.layers()?,
            env,
            cwd: cfg
                .field("WorkingDir")
                .filter(|w| !w.is_empty())
                .unwrap_or("/")
                .to_string(),
            tests: &spec.tests,
        };
        out.extend(run(&ctx.store, &target, rerun)?);
    }
    Ok(out)
}

/// Composes image `name` from its built layers: base, layers in order
/// with their env and labels, the dpkg status layer, the image's own
/// config. Nothing is tagged.
#[allow(clippy::too_many_arguments)]
fn compose_image(
    project: &Project,
    ctx: &Context,
    name: &str,
    layers: &[&str],
    built: &BTreeMap<&str, Built>,
    resolutions: &BTreeMap<&str, Arc<Resolution>>,
    cache: &LayerCache,
    compression: Compression,
    epoch: u64,
) -> Result<ImageBuilder> {
    let spec = &project.file.images[name];
    let base = match project.base_ref(name)? {
        None => None,
        Some(r) => Some(transport::open(&r, ctx)?),
    };
    let mut image = match &base {
        None => ImageBuilder::scratch(spec.platform()?),
        Some(base) => {
            transport::oci::copy_layers(base.as_ref(), &ctx.store)?;
            ImageBuilder::from_base(base.as_ref(), &spec.base)?
        }
    };
    image.created(epoch);
    for l in layers {
        let def = &project.layers[*l];
        for layer in &built[l].layers {
            image.append_layer(
                Arc::clone(layer),
                &format!("strata build: layer {}", def.label()),
            );
        }
        let cfg = image.config_mut();
        for (k, v) in &def.file.env {
            let value = expand(v, &cfg.env());
            cfg.set_env(k, &value);
        }
        for (k, v) in &def.file.labels {
            cfg.set_label(k, v);
        }
    }
    let debs: Vec<&Resolution> = layers
        .iter()
        .filter_map(|l| resolutions.get(l).map(|r| r.as_ref()))
        .collect();
    if !debs.is_empty()
        && let Some(status) =
            super::debsrc::status_layer(ctx, cache, base.as_deref(), &debs, compression, epoch)?
    {
        image.append_layer(
            Arc::new(status),
            "strata build: dpkg database (/var/lib/dpkg/status)",
        );
    }
    let cfg = image.config_mut();
    for (k, v) in &spec.env {
        let value = expand(v, &cfg.env());
        cfg.set_env(k, &value);
    }
    if let Some(e) = &spec.entrypoint {
        cfg.set_entrypoint(e.clone());
    }
    if let Some(c) = &spec.cmd {
        cfg.set_cmd(c.clone());
    }
    if let Some(w) = &spec.workdir {
        cfg.set_workdir(w);
    }
    if let Some(u) = &spec.user {
        cfg.set_user(u);
    }
    for p in &spec.ports {
        cfg.add_exposed_port(p)?;
    }
    for v in &spec.volumes {
        cfg.add_volume(v)?;
    }
    for (k, v) in &spec.labels {
        cfg.set_label(k, v);
    }
    for (k, v) in &spec.annotations {
        image.annotate(k, v);
    }
    Ok(image)
}

/// Pushes `image` to `[defaults] registry`: every tag `NAME:TAG` becomes
/// `docker://REGISTRY/NAME:TAG` (one upload per repository, then tags).
fn push_image(
    project: &Project,
    ctx: &Context,
    image: &ImageBuilder,
    tags: &[String],
    sbom: Option<(&crate::sbom::Artifact, &Digest)>,
) -> Result<Vec<String>> {
    let registry = project.file.defaults.registry.as_deref().ok_or_else(|| {
        Error::bad_input(
            "--push",
            "strata.toml has no [defaults] registry = \"HOST[:PORT][/NAMESPACE]\"",
        )
    })?;
    let client = ctx.client()?;
    let mut by_repo: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in tags {
        let (name, tag) = t.rsplit_once(':').expect("normalized tags have a tag");
        by_repo
            .entry(name.to_string())
            .or_default()
            .push(tag.to_string());
    }
    let mut pushed = Vec::new();
    for (name, repo_tags) in by_repo {
        let target = crate::registry::RegistryRef::parse(&format!(
            "{}/{name}:{}",
            registry.trim_end_matches('/'),
            repo_tags[0]
        ))
        .map_err(|e| {
            Error::invalid(
                "project",
                "strata.toml key defaults.registry",
                e.to_string(),
            )
        })?;
        crate::registry::push::push(
            &client,
            image,
            &target,
            &repo_tags[1..],
            &[],
            ctx.progress.clone(),
        )?;
        pushed.extend(repo_tags.iter().map(|t| target.with_tag(t).to_string()));
        if let Some((artifact, subject)) = sbom {
            crate::registry::referrers::attach(
                &client,
                &target,
                artifact,
                &artifact.referrer_descriptor(),
                subject,
            )?;
            pushed.push(format!(
                "{}@{} (SBOM)",
                target.repository,
                artifact.digest()?
            ));
        }
    }
    Ok(pushed)
}

/// Removes SBOM tags (`REPO:sha256-HEX.spdx`) whose image no other tag of
/// the store points at any more, so they do not pile up build after build.
fn drop_orphan_sboms(store: &crate::store::Store) -> Result<()> {
    let tags = store.tags()?;
    let live: std::collections::BTreeSet<String> = tags
        .iter()
        .filter(|(n, _)| !n.ends_with(".spdx"))
        .map(|(_, d)| d.digest.hex().to_string())
        .collect();
    for (name, _) in &tags {
        if let Some(hex) = name
            .rsplit_once(":sha256-")
            .and_then(|(_, t)| t.strip_suffix(".spdx"))
            && !live.contains(hex)
        {
            store.remove_tag(name)?;
        }
    }
    Ok(())
}

/// The SPDX SBOM of a composed image: its layers with their sources, and
/// every package of its deb layers with the layer it is in.
#[allow(clippy::too_many_arguments)]
fn sbom_of(
    name: &str,
    image: &ImageBuilder,
    digest: &Digest,
    epoch: u64,
    layers: &[&str],
    built: &BTreeMap<&str, Built>,
    resolutions: &BTreeMap<&str, Arc<Resolution>>,
    spec: &super::project::ImageSpec,
) -> Result<(Vec<u8>, usize)> {
    use crate::sbom::{SbomLayer, SbomPackage};
    let sb_layers: Vec<SbomLayer> = image
        .layers()?
        .iter()
        .map(|l| {
            let d = l.descriptor();
            SbomLayer {
                name: d
                    .annotations
                    .get(annotations::NAME)
                    .cloned()
                    .unwrap_or_else(|| "base".into()),
                version: d.annotations.get(annotations::VERSION).cloned(),
                source: d
                    .annotations
                    .get(annotations::SOURCE)
                    .cloned()
                    .unwrap_or_else(|| format!("base:{}", spec.base)),
                digest: d.digest,
            }
        })
        .collect();
    let mut pkgs = Vec::new();
    for l in layers {
        let (Some(res), Some(b)) = (resolutions.get(l), built.get(l)) else {
            continue;
        };
        for (i, p) in res.packages.iter().enumerate() {
            let layer = if b.layers.len() == res.packages.len() {
                &b.layers[i]
            } else {
                &b.layers[0]
            };
            let ld = layer.descriptor().digest;
            pkgs.push(SbomPackage {
                name: p.name.clone(),
                version: p.version.clone(),
                arch: p.arch.clone(),
                layer: sb_layers.iter().position(|x| x.digest == ld).unwrap_or(0),
                download: crate::deb::sources::pool_url(&p.repo, &p.filename),
                sha256: p.sha256.clone(),
            });
        }
    }
    let n = pkgs.len();
    Ok((crate::sbom::spdx(name, digest, epoch, &sb_layers, &pkgs), n))
}

/// Runs [`super::check::check_image`] for every planned image whose
/// (spec, base, layer keys) has not passed before; errors fail the build,
/// warnings are returned.
fn check_images(
    project: &Project,
    graph: &Graph<'_>,
    plans: &[(String, Vec<&str>, Vec<String>)],
    keys: &BTreeMap<&str, Digest>,
    deb: &DebPlanner<'_>,
) -> Result<Vec<String>> {
    let ctx = deb.context();
    let dir = ctx.store.root().join(".strata/checks");
    let mut warnings = Vec::new();
    let mut passed = Vec::new();
    for (name, layers, _) in plans {
        let mut h = Hasher::new();
        h.update(&crate::json::to_canonical(&project.file.images[name]));
        for l in layers {
            h.update(l.as_bytes());
            h.update(keys[l].hex().as_bytes());
        }
        let marker = dir.join(h.finish().hex());
        if marker.is_file() {
            continue;
        }
        let findings = super::check::check_image_keyed(project, graph, name, deb, Some(keys))?;
        let errors: Vec<String> = findings
            .iter()
            .filter(|f| f.level == "error")
            .map(|f| f.message.clone())
            .collect();
        if !errors.is_empty() {
            return Err(Error::invalid(
                "composition",
                format!("strata.toml [images.{name}]"),
                format!("{} (run strata check for the full list)", errors.join("; ")),
            ));
        }
        warnings.extend(
            findings
                .into_iter()
                .map(|f| format!("image {name}: {}", f.message)),
        );
        passed.push(marker);
    }
    if !passed.is_empty() {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        for m in passed {
            std::fs::write(&m, b"ok").map_err(|e| Error::io(&m, e))?;
        }
    }
    Ok(warnings)
}

fn pin_of(project: &Project, name: &str, layers: &[Arc<dyn Layer>]) -> super::lock::Pin {
    super::lock::Pin {
        name: name.to_string(),
        version: project.layers[name]
            .file
            .layer
            .version
            .clone()
            .unwrap_or_default(),
        diff_ids: layers.iter().map(|l| l.diff_id()).collect(),
        digests: layers.iter().map(|l| l.descriptor().digest).collect(),
    }
}

/// `--locked`: learns every layer's bytes (from the cache, or by building it
/// into a throwaway store) and compares them with strata.lock before
/// anything is written to the real store.
fn verify_locked(
    project: &Project,
    graph: &Graph<'_>,
    plans: &[(String, Vec<&str>, Vec<String>)],
    lock: &super::lock::Lock,
    compression: Compression,
    epoch: u64,
    deb: &DebPlanner<'_>,
) -> Result<()> {
    let ctx = deb.context();
    let scratch_dir = tempfile::Builder::new()
        .prefix("strata-locked-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let mut scratch = Context::new(crate::store::Store::open_or_create(scratch_dir.path())?);
    scratch.platform = ctx.platform.clone();
    scratch.registry = ctx.registry.clone();
    let real_cache = LayerCache::new(&ctx.store).ok();
    let scratch_cache = LayerCache::new(&scratch.store)?;
    let mut stat = StatCache::load(&ctx.store)?;
    let needed = needed_layers(graph, plans);
    let mut keys: BTreeMap<&str, Digest> = BTreeMap::new();
    for &l in graph.order() {
        if !needed.contains(&l) {
            continue;
        }
        let def = &project.layers[l];
        let below = stack_keys(project, graph, l, &keys);
        let key = layer_key(def, compression, epoch, &mut stat, deb, &below)?;
        keys.insert(l, key.clone());
        if def.file.source.run.is_some() && real_cache.as_ref().and_then(|c| c.get(&key)).is_none()
        {
            return Err(Error::Unsupported(format!(
                "--locked cannot check build-step layer {l} yet: it is not in this store's cache; build it once without --locked, then check"
            )));
        }
        let one = !def
            .file
            .source
            .deb
            .as_ref()
            .is_some_and(|d| d.one_layer_per_package);
        let layers: Vec<Arc<dyn Layer>> = match real_cache.as_ref().and_then(|c| c.get(&key)) {
            Some(c) if def.file.source.image.is_none() && one => {
                vec![Arc::new(StoreLayer::new(
                    ctx.store.clone(),
                    c.descriptor,
                    c.diff_id,
                ))]
            }
            _ => {
                let mut st = StatCache::load(&scratch.store)?;
                let scratch_deb = DebPlanner::new(project, graph, &scratch, false);
                scratch_deb.share_downloads(deb)?;
                key_and_build_layer(
                    project,
                    l,
                    compression,
                    epoch,
                    &mut st,
                    &scratch_cache,
                    &scratch_deb,
                )?
                .layers
            }
        };
        lock.verify(&pin_of(project, l, &layers))?;
    }
    stat.discard();
    Ok(())
}
