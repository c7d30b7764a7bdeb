//! What a build checks before it tags anything: the composition of each
//! image, `--locked` against strata.lock, `--check-reproducible`, and the
//! layers' and images' tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::build::{Plan, Run, below_from, needed_layers};
use super::cache::{LayerCache, StatCache};
use super::debsrc::DebPlanner;
use super::echo::{Echo, EchoMode};
use super::graph::Graph;
use super::project::Project;
use super::source::{Below, BuildCx, KeyCx, RunsOver, Settings};
use super::vars::set_env_expanded;
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::image::Image;
use crate::layer::{Layer, LayerBuilder};
use crate::transport::Context;

/// Builds each build-step layer of `order` again in a scratch store and
/// compares it with the one built (or cached): an error lists the paths
/// that differ.
pub(super) fn check_reproducible(run: &Run<'_, '_>, keys: &BTreeMap<&str, Digest>) -> Result<()> {
    let (project, built) = (run.project, run.built);
    let scratch_dir = tempfile::Builder::new()
        .prefix("strata-reproducible-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let scratch = crate::store::Store::open_or_create(scratch_dir.path())?;
    let mut problems = Vec::new();
    for &l in run.order {
        let def = &project.layers[l];
        let Some(step) = &def.file.source.run else {
            continue;
        };
        let below = run.hosts.below(
            project,
            run.graph,
            l,
            built,
            (run.cache, run.settings, run.echo),
        )?;
        let Settings { compression, epoch } = run.settings;
        let lb = LayerBuilder::new().compression(compression).mtime(epoch);
        // Its output goes where the first build's went; the report keeps
        // the first build's.
        let echo = Echo::new(l, run.echo);
        let cx = super::step::StepContext {
            name: l,
            key: &keys[l],
            store: &scratch,
            lowers: below.layers,
            lower_env: below.env,
            epoch,
            platforms: super::step::Platforms::of(step, &run.ctx.platform),
            builder: lb,
            echo: &echo,
        };
        let again = super::step::build(def, step, &cx)?;
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
pub(super) fn run_tests(
    run: &Run<'_, '_>,
    plans: &[Plan<'_>],
    layers_alone: &[String],
    rerun: bool,
) -> Result<Vec<super::layertest::TestReport>> {
    let (project, ctx, graph, built) = (run.project, run.ctx, run.graph, run.built);
    use super::layertest::TestTarget;
    let mut targets = Vec::new();
    // With layers named on their own: those and the images' layers.
    let wanted = |l: &str| {
        layers_alone.is_empty()
            || layers_alone.iter().any(|a| a == l)
            || plans.iter().any(|(_, ls, _)| ls.contains(&l))
    };
    for &l in run.order {
        let def = &project.layers[l];
        if def.file.tests.is_empty() || !wanted(l) {
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
        targets.push(target);
    }
    for (name, layers, _) in plans {
        let spec = &project.file.images[name];
        if spec.tests.is_empty() {
            continue;
        }
        let image = run.compose(name, layers)?;
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
        targets.push(target);
    }
    // Tests mostly wait on their commands: a few more than the cores.
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get()) * 2;
    super::layertest::run_all(&ctx.store, &targets, rerun, jobs)
}

/// Runs [`super::check::check_image_listed`] for every planned image whose
/// (spec, base, layer keys) has not passed before; errors fail the build,
/// warnings are returned, and the images with build steps not built yet,
/// whose files were not checked (check them again once built).
pub(super) fn check_images(
    project: &Project,
    graph: &Graph<'_>,
    plans: &[Plan<'_>],
    keys: &BTreeMap<&str, Digest>,
    deb: &DebPlanner<'_>,
) -> Result<(Vec<String>, Vec<String>)> {
    let ctx = deb.context();
    let dir = ctx.store.root().join(".strata/checks");
    let mut warnings = Vec::new();
    let mut passed = Vec::new();
    let mut later = Vec::new();
    let read = super::check::Listings::default();
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
        let (findings, unknown) =
            super::check::check_image_listed(project, graph, name, deb, keys, &read)?;
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
        if unknown.is_empty() {
            passed.push(marker);
        } else {
            later.push(name.clone());
        }
    }
    if !passed.is_empty() {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        for m in passed {
            std::fs::write(&m, b"ok").map_err(|e| Error::io(&m, e))?;
        }
    }
    Ok((warnings, later))
}

pub(super) fn pin_of(project: &Project, name: &str, layers: &[Arc<dyn Layer>]) -> super::lock::Pin {
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
        platform: None,
    }
}

/// `--locked`: learns every layer's bytes (from the cache, or by building it
/// into a throwaway store) and compares them with strata.lock before
/// anything is written to the real store (but the build machine's stacks
/// of build steps that run on it, which no lock pins).
pub(super) fn verify_locked<'p>(
    project: &Project,
    (graph, hosts): (&Graph<'p>, &super::hoststack::HostStacks<'p>),
    plans: &[Plan<'_>],
    lock: &super::lock::Lock,
    settings: Settings,
    deb: &DebPlanner<'_>,
    platform: Option<&str>,
) -> Result<()> {
    let ctx = deb.context();
    let scratch_dir = tempfile::Builder::new()
        .prefix("strata-locked-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let mut scratch = Context::new(crate::store::Store::open_or_create(scratch_dir.path())?);
    scratch.platform = ctx.platform.clone();
    scratch.registry = ctx.registry.clone();
    DebPlanner::new(project, graph, &scratch, false).share_downloads(deb)?;
    let real_cache = LayerCache::new(&ctx.store).ok();
    let scratch_cache = LayerCache::new(&scratch.store)?;
    let mut stat = StatCache::load(&ctx.store)?;
    let needed = needed_layers(graph, plans, &[], &ctx.platform)?;
    let mut keys: BTreeMap<&str, Digest> = BTreeMap::new();
    let mut made: BTreeMap<&str, Vec<Arc<dyn Layer>>> = BTreeMap::new();
    for &l in graph.order().iter().filter(|l| needed.contains(*l)) {
        let def = &project.layers[l];
        let source = super::source::of(def);
        let runs = source.runs_over() != RunsOver::Nothing;
        let below = hosts.stack_keys(graph, l, &keys);
        let mut kx = KeyCx {
            settings,
            ctx,
            deb,
            stat: &mut stat,
            below: &below,
            want_record: &|_| false,
        };
        let (key, _) = super::source::key(def, &mut kx)?;
        keys.insert(l, key.clone());
        let res = source.resolution(l, deb)?;
        let cx = |cache, ctx, below| BuildCx {
            name: l,
            key: &key,
            settings,
            threads: 0,
            cache,
            ctx,
            below,
            deb: res.clone(),
            echo: EchoMode::Stream,
        };
        let cached = real_cache
            .as_ref()
            .and_then(|cache| source.cached(def, &cx(cache, ctx, Below::default())));
        let layers = match cached {
            Some(layers) => layers,
            None => {
                // A build step or maintainer scripts run over the layers
                // learnt so far, into the scratch store.
                let below = match runs {
                    true if hosts.holds(l) => {
                        let cache = LayerCache::new(&ctx.store)?;
                        let settings = (&cache, settings, EchoMode::Stream);
                        hosts.below(project, graph, l, &BTreeMap::new(), settings)?
                    }
                    true => below_from(project, graph, l, |s| &made[s]),
                    false => Below::default(),
                };
                source
                    .build(def, cx(&scratch_cache, &scratch, below))?
                    .layers
            }
        };
        let mut pin = pin_of(project, l, &layers);
        pin.platform = platform.map(str::to_string);
        lock.verify(&pin).map_err(|e| match runs {
            true => not_reproducible(e, l),
            false => e,
        })?;
        made.insert(l, layers);
    }
    stat.discard();
    Ok(())
}

/// The error of a build whose tests failed: each failure with the last
/// lines of its output.
pub(super) fn tests_failed(
    project: &Project,
    failed: &[&super::layertest::TestReport],
    total: usize,
) -> Error {
    let lines: Vec<String> = failed
        .iter()
        .map(|t| {
            let tail: String = t
                .output
                .iter()
                .rev()
                .take(20)
                .rev()
                .map(|l| format!("\n      {}", crate::text::escape(l)))
                .collect();
            format!(
                "  {}: `{}`: {}{tail}",
                t.target,
                t.name,
                t.problem.as_deref().unwrap_or("")
            )
        })
        .collect();
    Error::invalid(
        "build",
        project.root.display().to_string(),
        format!(
            "{} of {total} tests failed, so nothing was tagged:\n{}",
            failed.len(),
            lines.join("\n")
        ),
    )
}

/// A lock mismatch of a layer that runs commands: when its inputs did not
/// change, its commands are not reproducible.
fn not_reproducible(e: Error, layer: &str) -> Error {
    match e {
        Error::Invalid {
            what,
            location,
            detail,
        } => Error::Invalid {
            what,
            location,
            detail: format!(
                "{detail}. Layer {layer} runs commands (a build step or maintainer scripts): if nothing it depends on changed, its commands do not give the same bytes twice; strata build --check-reproducible names the paths that differ"
            ),
        },
        e => e,
    }
}
