//! `strata plan`: which layers and images a build would make or reuse, and
//! why, without building. With `--since REV`, the paths git reports changed
//! are mapped to layers and to the images that contain them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::build::{Inputs, Selection, selected_images};
use super::cache::{LayerCache, StatCache};
use super::graph::Graph;
use super::project::Project;
use super::source::{KeyCx, Settings};
use crate::error::{Error, Result};
use crate::transport::Context;

/// One layer in the plan.
#[derive(Debug, Serialize)]
pub struct LayerPlan {
    /// Name.
    pub name: String,
    /// Version.
    pub version: Option<String>,
    /// "build" or "reuse".
    pub action: &'static str,
    /// For "reuse": "local" (this store has it) or "cache" (the registry
    /// cache has it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<&'static str>,
    /// Why it would be built.
    pub reasons: Vec<String>,
    /// A deb layer's resolved packages (`name=version`), dependencies first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// A deb layer's repositories (`URI SUITE`) it resolved against.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suites: Vec<String>,
    /// Warnings about the layer (a build step with network access, whose
    /// downloads its key does not cover).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Its cache key.
    pub key: crate::digest::Digest,
    /// The platform, for images built for several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The same blob serves another platform too (same key).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// One image in the plan.
#[derive(Debug, Serialize)]
pub struct ImagePlan {
    /// Name.
    pub name: String,
    /// "compose" when a layer of it would be built, else "reuse".
    pub action: &'static str,
    /// Its layers, base first.
    pub layers: Vec<String>,
    /// The layers that would be built.
    pub changed_layers: Vec<String>,
    /// The platform, for images built for several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// What `--since` found.
#[derive(Debug, Serialize)]
pub struct SincePlan {
    /// The revision compared against.
    pub rev: String,
    /// Project-relative paths git reports changed.
    pub paths: Vec<String>,
    /// Layers those paths belong to.
    pub layers: Vec<String>,
    /// Images containing those layers (all of them when strata.toml changed).
    pub images: Vec<String>,
}

/// The whole plan.
#[derive(Debug, Serialize)]
pub struct Plan {
    /// Layers in build order.
    pub layers: Vec<LayerPlan>,
    /// Images.
    pub images: Vec<ImagePlan>,
    /// With `--since`.
    pub since: Option<SincePlan>,
    /// The layers to build, in dependency waves: each wave's layers need
    /// only layers of earlier waves (or reused ones), so a CI matrix can
    /// build a wave's layers in parallel jobs.
    pub waves: Vec<Vec<String>>,
    /// The registry cache looked at, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<super::regcache::CacheReport>,
    /// Warnings (records in the cache that cannot be used).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Plans a build of `sel`, reading the store's cache but writing nothing.
/// Images that name platforms are planned once per platform (narrowed by
/// `sel.platforms`); their layers and images name the platform, and a
/// layer whose key is the same on several platforms is `shared`.
pub fn plan(
    project: &Project,
    ctx: &Context,
    sel: &Selection,
    since: Option<&str>,
) -> Result<Plan> {
    let names = selected_images(project, sel)?;
    let passes = super::platforms::passes(project, &names, &sel.platforms)?;
    if passes.iter().all(|(p, _)| p.is_none()) {
        return plan_one(project, ctx, sel, since);
    }
    let mut merged: Option<Plan> = None;
    for (pass, images) in passes {
        let one = Selection {
            images,
            profile: None,
            ..sel.clone()
        };
        let pctx;
        let c = match &pass {
            Some(p) => {
                pctx = ctx.for_platform(p.clone());
                &pctx
            }
            None => ctx,
        };
        let mut p = plan_one(project, c, &one, since)?;
        let label = pass.as_ref().map(|p| p.to_string());
        for l in &mut p.layers {
            // The build machine's layers (for steps that run on it) say so.
            if l.platform.is_none() {
                l.platform = label.clone();
            }
        }
        for i in &mut p.images {
            i.platform = label.clone();
        }
        merged = Some(match merged {
            None => p,
            Some(mut m) => {
                for l in p.layers {
                    // The build machine's layers can come from two passes.
                    if !m
                        .layers
                        .iter()
                        .any(|k| k.name == l.name && k.platform == l.platform)
                    {
                        m.layers.push(l);
                    }
                }
                m.images.extend(p.images);
                for (i, w) in p.waves.into_iter().enumerate() {
                    if m.waves.len() <= i {
                        m.waves.push(Vec::new());
                    }
                    for l in w {
                        if !m.waves[i].contains(&l) {
                            m.waves[i].push(l);
                        }
                    }
                }
                for w in p.warnings {
                    if !m.warnings.contains(&w) {
                        m.warnings.push(w);
                    }
                }
                m
            }
        });
    }
    let mut plan = merged.expect("at least one pass");
    let keys: Vec<(crate::digest::Digest, Option<String>)> = plan
        .layers
        .iter()
        .map(|l| (l.key.clone(), l.platform.clone()))
        .collect();
    for l in &mut plan.layers {
        l.shared = keys
            .iter()
            .any(|(k, p)| *k == l.key && *p != l.platform && p.is_some());
    }
    Ok(plan)
}

fn plan_one(
    project: &Project,
    ctx: &Context,
    sel: &Selection,
    since: Option<&str>,
) -> Result<Plan> {
    let graph = Graph::new(project)?;
    let names = selected_images(project, sel)?;
    let settings = super::build::settings(project)?;
    let cache = LayerCache::new(&ctx.store)?;
    let mut stat = StatCache::load(&ctx.store)?;
    let deb = super::debsrc::DebPlanner::new(project, &graph, ctx, sel.refresh);
    let mut all: Vec<&str> = Vec::new();
    let mut image_layers = BTreeMap::new();
    for n in &names {
        let ls = graph.image_layers(n)?;
        all.extend(ls.iter().copied());
        image_layers.insert(n.clone(), ls);
    }
    // What the images' build steps run over is built too.
    let wanted = super::build::needed_layers(&graph, &[], &all, &ctx.platform)?;
    let mut building = BTreeSet::new();
    // The inputs record only explains a rebuild.
    let want = |_: &str, k: &crate::digest::Digest| cache.get(k).is_none();
    let hosts = super::hoststack::HostStacks::key(
        project,
        &graph,
        ctx,
        &wanted,
        (settings, sel.refresh),
        &mut stat,
    )?;
    let keyed = layer_keys(
        project,
        &graph,
        &deb,
        &mut stat,
        settings,
        (&wanted, &hosts),
        &want,
    )?;
    let remote = super::build::open_cache(project, ctx, &sel.cache)?;
    let hits = match &remote {
        Some(rc) => {
            rc.probe_only();
            let lookups: Vec<(&str, &crate::digest::Digest)> = keyed
                .iter()
                .filter(|(l, k, _)| {
                    cache.get(k).is_none() && !super::source::of(&project.layers[*l]).never_builds()
                })
                .map(|(l, k, _)| (*l, k))
                .collect();
            super::regcache::lookup_all(rc, &lookups)
        }
        None => BTreeMap::new(),
    };
    // The build machine's stacks are built only for steps that are.
    let steps_run = keyed
        .iter()
        .any(|(l, k, _)| hosts.holds(l) && cache.get(k).is_none() && !hits.contains_key(l));
    let mut layers = match steps_run {
        true => hosts.plans(project, &graph, &cache),
        false => Vec::new(),
    };
    for (l, key, inputs) in keyed {
        let def = &project.layers[l];
        let source = super::source::of(def);
        let packages = source.packages(l, &deb)?;
        let local = source.never_builds() || cache.get(&key).is_some();
        let cached = local || hits.contains_key(l);
        let from = match (local, cached) {
            (true, _) => Some("local"),
            (false, true) => Some("cache"),
            _ => None,
        };
        let reasons = if cached {
            Vec::new()
        } else {
            match cache
                .inputs(l, &ctx.platform)
                .and_then(|b| serde_json::from_slice::<Inputs>(&b).ok())
            {
                Some(before) => {
                    let mut r = inputs
                        .as_ref()
                        .map(|i| i.changes_since(&before))
                        .unwrap_or_default();
                    if r.is_empty() {
                        r.push("its cached blob is no longer in the store".into());
                    }
                    r
                }
                None => vec!["never built in this store".into()],
            }
        };
        if !cached {
            building.insert(l);
        }
        layers.push(LayerPlan {
            name: l.to_string(),
            version: def.file.layer.version.clone(),
            action: if cached { "reuse" } else { "build" },
            from,
            reasons,
            packages,
            suites: source.suites(def)?,
            warnings: source.plan_warnings(def),
            key,
            platform: None,
            shared: false,
        });
    }
    stat.discard();
    let images = image_layers
        .into_iter()
        .map(|(name, ls)| {
            let changed: Vec<String> = ls
                .iter()
                .filter(|l| building.contains(*l))
                .map(|l| l.to_string())
                .collect();
            ImagePlan {
                name,
                action: if changed.is_empty() {
                    "reuse"
                } else {
                    "compose"
                },
                layers: ls.iter().map(|l| l.to_string()).collect(),
                changed_layers: changed,
                platform: None,
            }
        })
        .collect();
    let since = since
        .map(|rev| since_plan(project, &graph, rev))
        .transpose()?;
    let waves = graph
        .waves()
        .into_iter()
        .map(|w| {
            w.into_iter()
                .filter(|l| building.contains(l))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    Ok(Plan {
        layers,
        images,
        since,
        waves,
        warnings: remote.as_ref().map(|rc| rc.warnings()).unwrap_or_default(),
        cache: remote.as_ref().map(|rc| rc.report()),
    })
}

/// A layer's name, its cache key and (when `want_record` asked for it) its
/// inputs record.
pub type Keyed<'p> = (&'p str, crate::digest::Digest, Option<Inputs>);

/// The cache keys of the `wanted` layers, in build order, computed as a
/// build computes them (stat cache, deb resolutions) but building nothing.
/// `wanted` must hold every layer beneath each of them.
pub(super) fn layer_keys<'p>(
    project: &'p Project,
    graph: &Graph<'p>,
    deb: &super::debsrc::DebPlanner<'_>,
    stat: &mut StatCache,
    settings: Settings,
    (wanted, hosts): (&BTreeSet<&'p str>, &super::hoststack::HostStacks<'p>),
    want_record: &dyn Fn(&str, &crate::digest::Digest) -> bool,
) -> Result<Vec<Keyed<'p>>> {
    let mut keys: BTreeMap<&str, crate::digest::Digest> = BTreeMap::new();
    let mut out = Vec::new();
    for &l in graph.order().iter().filter(|l| wanted.contains(*l)) {
        let def = &project.layers[l];
        let below = hosts.stack_keys(graph, l, &keys);
        let want = |k: &crate::digest::Digest| want_record(l, k);
        let mut kx = KeyCx {
            settings,
            ctx: deb.context(),
            deb,
            stat,
            below: &below,
            want_record: &want,
        };
        let span = crate::trace::span("key", format!("key {l}"));
        let (key, inputs) = super::source::key(def, &mut kx)?;
        drop(span);
        keys.insert(l, key.clone());
        out.push((l, key, inputs));
    }
    Ok(out)
}

/// The cache keys of the layers of `images` (and of what their build steps
/// run over), for `strata check`: the same keys a build uses, so listings
/// cached by key are read instead of walking sources and .debs again.
pub fn image_keys<'p>(
    project: &'p Project,
    graph: &Graph<'p>,
    deb: &super::debsrc::DebPlanner<'_>,
    images: &[String],
) -> Result<BTreeMap<&'p str, crate::digest::Digest>> {
    let settings = super::build::settings(project)?;
    let mut all = Vec::new();
    for n in images {
        all.extend(graph.image_layers(n)?);
    }
    let wanted = super::build::needed_layers(graph, &[], &all, &deb.context().platform)?;
    let mut stat = StatCache::load(&deb.context().store)?;
    let hosts = super::hoststack::HostStacks::key(
        project,
        graph,
        deb.context(),
        &wanted,
        (settings, false),
        &mut stat,
    )?;
    let keyed = layer_keys(
        project,
        graph,
        deb,
        &mut stat,
        settings,
        (&wanted, &hosts),
        &|_, _| false,
    )?;
    stat.discard();
    Ok(keyed.into_iter().map(|(l, k, _)| (l, k)).collect())
}

fn git(root: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|e| Error::bad_input("--since", format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(Error::bad_input(
            "--since",
            format!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn since_plan(project: &Project, graph: &Graph<'_>, rev: &str) -> Result<SincePlan> {
    let top = PathBuf::from(git(&project.root, &["rev-parse", "--show-toplevel"])?.trim());
    let root = project
        .root
        .canonicalize()
        .map_err(|e| Error::io(&project.root, e))?;
    let mut changed: BTreeSet<PathBuf> = BTreeSet::new();
    for args in [
        vec!["diff", "--name-only", rev, "--"],
        vec!["ls-files", "--others", "--exclude-standard"],
    ] {
        let base = if args[0] == "ls-files" {
            root.clone()
        } else {
            top.clone()
        };
        for line in git(&project.root, &args)?.lines().filter(|l| !l.is_empty()) {
            changed.insert(base.join(line));
        }
    }
    // Each layer owns its directory and every project path it reads.
    let mut owned: Vec<(PathBuf, &str)> = Vec::new();
    for (name, def) in &project.layers {
        owned.push((def.dir.canonicalize().unwrap_or(def.dir.clone()), name));
        for from in super::source::of(def).reads() {
            if let Ok(p) = def.dir.join(from).canonicalize() {
                owned.push((p, name));
            }
        }
    }
    let mut paths = Vec::new();
    let mut layers: BTreeSet<&str> = BTreeSet::new();
    let mut all_images = false;
    for p in &changed {
        let Ok(rel) = p.strip_prefix(&root) else {
            continue;
        };
        paths.push(rel.display().to_string());
        if rel == Path::new("strata.toml") {
            all_images = true;
        }
        for (dir, name) in &owned {
            if p.starts_with(dir) {
                layers.insert(name);
            }
        }
    }
    let mut images = Vec::new();
    for name in project.file.images.keys() {
        let ls = graph.image_layers(name)?;
        if all_images || ls.iter().any(|l| layers.contains(l)) {
            images.push(name.clone());
        }
    }
    Ok(SincePlan {
        rev: rev.to_string(),
        paths,
        layers: layers.into_iter().map(str::to_string).collect(),
        images,
    })
}
