//! `strata build`: build the layers whose inputs changed, reuse the rest,
//! compose the images and tag them in the store.
//!
//! Keys come first, in graph order (see [`super::source`] for what each
//! kind's key covers); then each dependency wave's layers build in
//! parallel, each by its [`LayerSource`](super::source::LayerSource). A layer whose key is cached is
//! not rebuilt — no tar, no compression. Most layers do not depend on the
//! layers beneath them, so changing a lower layer rebuilds only the
//! manifests and configs of the images that contain it; build steps and
//! configured deb layers, which run over the layers beneath, are the
//! exception.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::cache::{LayerCache, StatCache};
use super::debsrc::{DebPlanner, Resolution};
use super::echo::EchoMode;
use super::graph::Graph;
use super::hoststack::HostStacks;
use super::project::Project;
use super::source::{Below, BuildCx, Settings};
use super::vars::set_env_expanded;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::{Compression, Layer};
use crate::spec::Platform;
use crate::transport::{self, Context};

pub use super::report::{BuildReport, ImageReport, LayerReport, PlatformImage};
pub use super::source::{Inputs, annotations};
pub use super::tags::{TagVars, check_tag_clashes, image_tags, shown_tag};

/// Which registry cache a build or plan uses.
#[derive(Debug, Clone, Default)]
pub struct CacheChoice {
    /// `docker://HOST/REPO`, instead of `[defaults] cache`.
    pub reference: Option<String>,
    /// Use no registry cache.
    pub off: bool,
    /// Read the cache, never write it (untrusted jobs).
    pub read_only: bool,
}

/// The registry cache `choice` selects for `project`, if any.
pub fn open_cache(
    project: &Project,
    ctx: &Context,
    choice: &CacheChoice,
) -> Result<Option<super::regcache::RegistryCache>> {
    if choice.off {
        return Ok(None);
    }
    let Some(r) = choice
        .reference
        .as_deref()
        .or(project.file.defaults.cache.as_deref())
    else {
        return Ok(None);
    };
    Ok(Some(super::regcache::RegistryCache::open(
        ctx.client()?,
        &ctx.store,
        r,
        choice.read_only,
    )?))
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
    /// Write and tag every image in the store even when pushing (its layers
    /// still in the registry cache or a base registry are downloaded), for
    /// a local output.
    pub keep_local: bool,
    /// The registry cache to use (else `[defaults] cache`), or none.
    pub cache: CacheChoice,
    /// Load the built images into the Docker Engine under their tags,
    /// sending only the layers it lacks.
    pub load: bool,
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
    /// Where the output of build steps and maintainer scripts goes.
    pub echo: EchoMode,
    /// Layers whose own tests to run (`strata test LAYER`), each built
    /// with its `[runtime]` stack; with layers and no images named, no
    /// image is selected.
    pub layers: Vec<String>,
    /// Build only these of the images' platforms (all when empty).
    pub platforms: Vec<Platform>,
    /// One platform's pass of a multi-platform build (the context's
    /// platform): images are stored untagged and not pushed or loaded,
    /// lock pins carry the platform.
    pub platform_pass: bool,
}

/// A layer of this build: its blobs and what happened to it.
pub(super) struct Built {
    /// Its blobs, in order.
    pub(super) layers: Vec<Arc<dyn Layer>>,
    /// What happened to it.
    pub(super) report: LayerReport,
    /// Warnings for the build report.
    pub(super) warnings: Vec<String>,
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
    if names.is_empty() && sel.layers.is_empty() {
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

/// The settings every layer of `project` is made with.
pub(super) fn settings(project: &Project) -> Result<Settings> {
    Ok(Settings {
        compression: compression(project)?,
        epoch: epoch(project)?,
    })
}

/// The keys of the layers `layer` runs something over (a build step, a deb
/// layer's maintainer scripts), base first (empty for other layers), from the keys computed so far in graph order.
pub(super) fn stack_keys<'p>(
    graph: &Graph<'p>,
    layer: &str,
    keys: &BTreeMap<&str, Digest>,
) -> Vec<(&'p str, Digest)> {
    graph
        .run_stack(layer)
        .into_iter()
        .map(|l| (l, keys[l].clone()))
        .collect()
}

/// [`Below`] for layer `l` (empty unless it is a build step), from the
/// layers built so far.
pub(super) fn step_below(
    project: &Project,
    graph: &Graph<'_>,
    l: &str,
    built: &BTreeMap<&str, Built>,
) -> Below {
    below_from(project, graph, l, |s| &built[s].layers)
}

/// [`Below`] for layer `l`, with `layers_of` giving the blobs of the
/// layers beneath.
pub(super) fn below_from<'b>(
    project: &Project,
    graph: &Graph<'_>,
    l: &str,
    layers_of: impl Fn(&str) -> &'b [Arc<dyn Layer>],
) -> Below {
    let mut below = Below::default();
    for s in graph.run_stack(l) {
        below.layers.extend(layers_of(s).iter().cloned());
        for (k, v) in &project.layers[s].file.env {
            set_env_expanded(&mut below.env, k, v);
        }
    }
    below
}

/// The layers a build of `plans` keys and builds: the images' layers and
/// what their build steps run over.
pub(super) fn needed_layers<'p>(
    graph: &Graph<'p>,
    plans: &[(String, Vec<&'p str>, Vec<String>)],
    extra: &[&'p str],
    platform: &Platform,
) -> Result<std::collections::BTreeSet<&'p str>> {
    let mut all: Vec<&'p str> = plans
        .iter()
        .flat_map(|(_, ls, _)| ls.iter().copied())
        .chain(extra.iter().copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    // In a pass for another platform than the build machine's, steps that
    // run on it run over its own build of their stacks (HostStacks).
    let project = graph.project();
    let apart = super::hoststack::apart(platform);
    let needed: std::collections::BTreeSet<&'p str> = graph
        .with_step_stacks_but(&all, |l| {
            apart && super::hoststack::on_build_machine(&project.layers[l])
        })
        .into_iter()
        .collect();
    // Checked here, for these layers only: a missing input elsewhere in
    // the project blocks nothing.
    project.check_inputs(needed.iter().copied(), platform)?;
    Ok(needed)
}

/// Builds layer `name` whose key is `key` (or takes it from the cache)
/// by its source, compressing on `threads` threads (0: all cores).
fn build_layer(
    project: &Project,
    cx: BuildCx<'_>,
    hit: Option<&super::regcache::Hit>,
) -> Result<Built> {
    let started = Instant::now();
    let def = &project.layers[cx.name];
    let (name, key) = (cx.name.to_string(), cx.key.clone());
    let progress = cx.progress();
    let _span = crate::trace::span("layer", format!("build {name}"));
    let made = match hit {
        Some(h) => Ok(super::source::Made::remote(h.layers.clone())),
        None => super::source::of(def).build(def, cx),
    };
    progress.done();
    let made = made?;
    let report = LayerReport {
        name,
        version: def.file.layer.version.clone(),
        status: made.status,
        seconds: started.elapsed().as_secs_f64(),
        size: made.layers.iter().map(|l| l.descriptor().size).sum(),
        digests: made.layers.iter().map(|l| l.descriptor().digest).collect(),
        key,
        platform: None,
        output: made.output,
        log: made.log,
    };
    Ok(Built {
        layers: made.layers,
        report,
        warnings: made.warnings,
    })
}

/// An image of this build: its name, its layers in order and its tags.
pub(super) type Plan<'p> = (String, Vec<&'p str>, Vec<String>);

/// The layers a build keys, in graph order, with their keys; the inputs
/// records to store are returned beside them.
struct Keyed<'p> {
    order: Vec<&'p str>,
    keys: BTreeMap<&'p str, Digest>,
    records: Vec<(&'p str, Vec<u8>)>,
}

/// Computes the key of every layer the plans need, in graph order (the
/// stat cache is sequential).
fn key_layers<'p>(
    project: &'p Project,
    graph: &Graph<'p>,
    (needed, hosts): (&std::collections::BTreeSet<&'p str>, &HostStacks<'p>),
    settings: Settings,
    stat: &mut StatCache,
    cache: &LayerCache,
    planner: &DebPlanner<'_>,
) -> Result<Keyed<'p>> {
    let mut out = Keyed {
        order: Vec::new(),
        keys: BTreeMap::new(),
        records: Vec::new(),
    };
    // The record explains the next rebuild; a cache hit means the recorded
    // inputs are these already.
    let want = |l: &str, k: &Digest| {
        cache.get(k).is_none() || !cache.has_inputs(l, &planner.context().platform)
    };
    for (l, key, inputs) in super::plan::layer_keys(
        project,
        graph,
        planner,
        stat,
        settings,
        (needed, hosts),
        &want,
    )? {
        if let Some(inputs) = inputs {
            out.records
                .push((l, serde_json::to_vec(&inputs).expect("serializes")));
        }
        out.keys.insert(l, key);
        out.order.push(l);
    }
    Ok(out)
}

/// Builds the keyed layers, each dependency wave's layers in parallel,
/// sharing the cores.
pub(super) fn build_waves<'p>(
    project: &Project,
    graph: &Graph<'p>,
    ctx: &Context,
    (keys, resolutions): (
        &BTreeMap<&'p str, Digest>,
        &BTreeMap<&'p str, Arc<Resolution>>,
    ),
    settings: Settings,
    (cache, hits): (&LayerCache, &BTreeMap<&str, super::regcache::Hit>),
    (echo, hosts): (EchoMode, &HostStacks<'p>),
) -> Result<BTreeMap<&'p str, Built>> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut built: BTreeMap<&str, Built> = BTreeMap::new();
    for wave in graph.waves() {
        let todo: Vec<&str> = wave.into_iter().filter(|l| keys.contains_key(l)).collect();
        let threads = (cores / todo.len().clamp(1, cores)).max(1);
        // What each runs over, before the threads start (a step on the
        // build machine may build its stack first, when it is not cached).
        let mut belows = BTreeMap::new();
        for &l in &todo {
            let cached = cache.get(&keys[l]).is_some() || hits.contains_key(l);
            let below = match hosts.holds(l) && cached {
                true => Below::default(),
                false => hosts.below(project, graph, l, &built, (cache, settings, echo))?,
            };
            belows.insert(l, below);
        }
        let results: Vec<(&str, Result<Built>)> = std::thread::scope(|s| {
            let handles: Vec<_> = todo
                .iter()
                .map(|&l| {
                    let cx = BuildCx {
                        name: l,
                        key: &keys[l],
                        settings,
                        threads,
                        cache,
                        ctx,
                        below: belows.remove(l).unwrap_or_default(),
                        deb: resolutions.get(l).cloned(),
                        echo,
                    };
                    let hit = hits.get(l);
                    (l, s.spawn(move || build_layer(project, cx, hit)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(l, h)| {
                    let r = h.join().unwrap_or_else(|_| {
                        Err(Error::Unsupported(format!("building layer {l} panicked")))
                    });
                    (l, r)
                })
                .collect()
        });
        for (l, r) in results {
            built.insert(l, r?);
        }
    }
    Ok(built)
}

/// Builds the selected images.
pub fn build(project: &Project, ctx: &Context, sel: &Selection) -> Result<BuildReport> {
    if !sel.layers.is_empty() && !sel.platforms.is_empty() && !sel.platform_pass {
        return super::platforms::build_layers(project, ctx, sel);
    }
    let wanted = super::platforms::wanted(project, sel)?;
    if !wanted.is_empty() {
        return super::platforms::build(project, ctx, sel, wanted);
    }
    let started = Instant::now();
    let graph = Graph::new(project)?;
    let names = selected_images(project, sel)?;
    let settings = settings(project)?;
    let engine = engine_for(sel)?;
    // Check every image's layer list before writing anything; tags are
    // filled in once the layer keys are known.
    let started_at = TagVars::now();
    let mut plans: Vec<Plan<'_>> = Vec::new();
    for name in &names {
        plans.push((name.clone(), graph.image_layers(name)?, Vec::new()));
    }
    let mut lock = super::lock::Lock::load(&project.root)?;
    let planner = DebPlanner::new(project, &graph, ctx, sel.refresh);
    let mut stat = StatCache::load(&ctx.store)?;
    // Layers tested on their own need their [runtime] stacks.
    let mut alone: Vec<&str> = Vec::new();
    for l in &sel.layers {
        let def = project.layers.get(l).ok_or_else(|| Error::NotFound {
            what: format!("layer {l:?}"),
            location: "layers/".into(),
            hint: String::new(),
        })?;
        alone.extend(graph.runtime_stack(&def.file.layer.name));
    }
    let needed = needed_layers(&graph, &plans, &alone, &ctx.platform)?;
    let hosts = HostStacks::key(
        project,
        &graph,
        ctx,
        &needed,
        (settings, sel.refresh),
        &mut stat,
    )?;
    if sel.locked {
        let pinned = sel.platform_pass.then(|| ctx.platform.to_string());
        super::verify::verify_locked(
            project,
            (&graph, &hosts),
            &plans,
            &lock,
            settings,
            &planner,
            pinned.as_deref(),
        )?;
    }
    let cache = LayerCache::new(&ctx.store)?;
    let keyed = key_layers(
        project,
        &graph,
        (&needed, &hosts),
        settings,
        &mut stat,
        &cache,
        &planner,
    )?;
    let vars = started_at.with_content(project, &graph, &keyed.keys);
    check_tag_clashes(project, &names, &vars)?;
    for (name, _, tags) in &mut plans {
        *tags = image_tags(project, name, &vars)?;
    }
    // Layers this store lacks are looked up in the registry cache (a hit
    // brings its listing, for the checks, not its blobs).
    let remote = open_cache(project, ctx, &sel.cache)?;
    let remote_hits = match &remote {
        Some(rc) => {
            let wanted: Vec<(&str, &Digest)> = keyed
                .order
                .iter()
                .map(|l| (*l, &keyed.keys[l]))
                .filter(|(_, k)| cache.get(k).is_none())
                .collect();
            super::regcache::lookup_all(rc, &wanted)
        }
        None => BTreeMap::new(),
    };
    // The composition checks run before anything is written; an image whose
    // spec and layer keys already passed is not checked again.
    let (mut warnings, later) =
        super::verify::check_images(project, &graph, &plans, &keyed.keys, &planner)?;
    let mut resolutions: BTreeMap<&str, Arc<Resolution>> = BTreeMap::new();
    for &l in keyed.keys.keys() {
        let def = &project.layers[l];
        if let Some(r) = super::source::of(def).resolution(l, &planner)? {
            resolutions.insert(l, r);
        }
    }
    for (l, record) in &keyed.records {
        cache.put_inputs(l, &ctx.platform, record)?;
    }
    let built = build_waves(
        project,
        &graph,
        ctx,
        (&keyed.keys, &resolutions),
        settings,
        (&cache, &remote_hits),
        (sel.echo, &hosts),
    )?;
    for &l in &keyed.order {
        warnings.extend(built[l].warnings.iter().cloned());
    }
    if let Some(rc) = &remote {
        super::publish::record_layers(project, &planner, rc, &keyed.keys, &built, &cache)?;
    }
    // Images with build steps are checked again now that the steps' files
    // are known, before anything is tagged.
    let unchecked: Vec<Plan<'_>> = plans
        .iter()
        .filter(|p| later.contains(&p.0))
        .cloned()
        .collect();
    if !unchecked.is_empty() {
        let (again, _) =
            super::verify::check_images(project, &graph, &unchecked, &keyed.keys, &planner)?;
        for w in again {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    stat.save()?;
    if !sel.locked && !sel.tests_only {
        for (&name, b) in &built {
            let mut pin = super::verify::pin_of(project, name, &b.layers);
            pin.platform = sel.platform_pass.then(|| ctx.platform.to_string());
            if let Some(w) = lock.record(pin)
                && project.layers[name].file.layer.warn_unbumped
            {
                warnings.push(w);
            }
        }
        let all: Vec<&str> = project.layers.keys().map(String::as_str).collect();
        lock.retain(&all);
        lock.save(&project.root)?;
    }
    let run = Run {
        project,
        ctx,
        graph: &graph,
        order: &keyed.order,
        built: &built,
        resolutions: &resolutions,
        cache: &cache,
        settings,
        echo: sel.echo,
        lazy_base: sel.push && !sel.keep_local,
        hosts: &hosts,
    };
    if sel.check_reproducible {
        super::verify::check_reproducible(&run, &keyed.keys)?;
    }
    let tests = if sel.test || sel.tests_only {
        super::verify::run_tests(&run, &plans, &sel.layers, sel.rerun)?
    } else {
        Vec::new()
    };
    let failed: Vec<&super::layertest::TestReport> = tests.iter().filter(|t| !t.passed).collect();
    if !sel.tests_only && !failed.is_empty() {
        return Err(super::verify::tests_failed(project, &failed, tests.len()));
    }
    let mut composed = Vec::new();
    let images = if sel.tests_only {
        Vec::new()
    } else {
        super::publish::write_images(
            &run,
            plans,
            sel,
            engine.as_ref(),
            remote.as_ref(),
            &mut composed,
        )?
    };
    // What was built for the build machine comes first, as it did.
    let layers: Vec<LayerReport> = hosts
        .reports(&graph)
        .into_iter()
        .chain(keyed.order.iter().map(|l| built[l].report.clone()))
        .collect();
    if let Some(rc) = &remote {
        warnings.extend(rc.warnings());
    }
    Ok(BuildReport {
        cache_hit_rate: match sel.tests_only {
            true => 0.0,
            false => super::report::hit_rate(&layers),
        },
        layers,
        images,
        files_hashed: stat.hashed,
        seconds: started.elapsed().as_secs_f64(),
        warnings,
        tests,
        cache: remote.as_ref().map(|rc| rc.report()),
        composed: super::report::Composed(composed),
        tag_vars: Some(vars),
    })
}

/// With `load`, the Docker Engine, reached before anything is built (an
/// engine that cannot be reached fails the build before it starts).
pub(super) fn engine_for(sel: &Selection) -> Result<Option<transport::daemon::Engine>> {
    sel.load
        .then(|| -> Result<_> {
            let e = transport::daemon::Engine::from_env()?;
            e.ping()?;
            Ok(e)
        })
        .transpose()
}

/// What a build made, for the steps after the layers: reproducibility,
/// tests, images.
pub(super) struct Run<'a, 'p> {
    pub(super) project: &'a Project,
    pub(super) ctx: &'a Context,
    pub(super) graph: &'a Graph<'p>,
    pub(super) order: &'a [&'p str],
    pub(super) built: &'a BTreeMap<&'p str, Built>,
    pub(super) resolutions: &'a BTreeMap<&'p str, Arc<Resolution>>,
    pub(super) cache: &'a LayerCache,
    pub(super) settings: Settings,
    pub(super) echo: EchoMode,
    /// Leave a registry base's layers in the registry (a push-only build).
    pub(super) lazy_base: bool,
    /// What steps that run on the build machine run over.
    pub(super) hosts: &'a HostStacks<'p>,
}

impl Run<'_, '_> {
    /// Image `name` composed from its built layers, untagged.
    pub(super) fn compose(
        &self,
        name: &str,
        layers: &[&str],
    ) -> Result<crate::image::ImageBuilder> {
        super::assemble::compose_image(
            self.project,
            self.ctx,
            name,
            layers,
            self.built,
            self.resolutions,
            self.cache,
            self.settings.compression,
            self.settings.epoch,
            !self.lazy_base,
        )
    }
}
