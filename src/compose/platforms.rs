//! Multi-platform builds. Images that name platforms (`platforms` in the
//! image or in `[defaults]`) are built in one pass of the build per
//! platform, with the context's platform set to it: deb layers resolve
//! against that architecture's indexes, image layers take that platform
//! from an index, build steps key on it; copy and tar layers hash the same
//! inputs on every pass, so they are one blob shared by every platform.
//! A pass stores its images untagged; then each image of two or more
//! platforms becomes an OCI index over them, tagged (and pushed) once every
//! platform's manifest is written.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::build::{BuildReport, ImageReport, PlatformImage, Selection};
use super::project::{Defaults, Project};
use super::publish::Publishable;
use crate::error::{Error, Result};
use crate::image::{Image, IndexBuilder};
use crate::spec::Platform;
use crate::transport::{self, Context};

/// The architectures strata builds for, as OCI names them, with the
/// variants each takes.
const KNOWN_PLATFORMS: &[(&str, &[&str])] = &[
    ("amd64", &[]),
    ("arm64", &["v8"]),
    ("arm", &["v5", "v6", "v7"]),
    ("386", &[]),
    ("riscv64", &[]),
    ("ppc64le", &[]),
    ("s390x", &[]),
    ("mips64le", &[]),
];

/// `path` with `{os}`, `{arch}` and `{variant}` replaced by `platform`'s
/// (a per-platform input path such as `dist/{arch}/app`).
pub fn expand_path(path: &str, platform: &Platform) -> String {
    if !path.contains('{') {
        return path.to_string();
    }
    path.replace("{os}", &platform.os)
        .replace("{arch}", &platform.architecture)
        .replace("{variant}", platform.variant.as_deref().unwrap_or(""))
}

/// Parses a platform of a project (`linux/ARCH[/VARIANT]`), refusing what
/// strata cannot build for with the known ones; `key` names where it was
/// written.
pub fn parse_platform(s: &str, key: &str) -> Result<crate::spec::Platform> {
    let known = || {
        KNOWN_PLATFORMS
            .iter()
            .flat_map(|(a, vs)| {
                std::iter::once(format!("linux/{a}"))
                    .chain(vs.iter().map(move |v| format!("linux/{a}/{v}")))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let bad = || {
        Error::bad_input(
            key,
            format!("unknown platform {s:?}; strata builds for {}", known()),
        )
    };
    let p = crate::spec::Platform::parse(s).map_err(|_| bad())?;
    let ok = p.os == "linux"
        && KNOWN_PLATFORMS.iter().any(|(a, vs)| {
            *a == p.architecture && p.variant.as_deref().is_none_or(|v| vs.contains(&v))
        });
    if !ok {
        return Err(bad());
    }
    Ok(p)
}

impl super::project::ImageSpec {
    /// The platforms the image is built for: its `platforms`, else its
    /// `platform`, else `[defaults] platforms`, else the host's. `name`
    /// names the image in errors; a platform given twice is refused.
    pub fn platforms(&self, name: &str, defaults: &Defaults) -> Result<Vec<crate::spec::Platform>> {
        let (list, key) = match (&self.platforms, &self.platform) {
            (Some(l), _) => (
                l.clone(),
                format!("strata.toml key images.{name}.platforms"),
            ),
            (None, Some(_)) => return Ok(vec![self.platform()?]),
            (None, None) if !defaults.platforms.is_empty() => (
                defaults.platforms.clone(),
                "strata.toml key defaults.platforms".to_string(),
            ),
            (None, None) => return Ok(vec![crate::spec::Platform::host()]),
        };
        if list.is_empty() {
            return Err(Error::bad_input(&key, "give at least one platform"));
        }
        let mut out: Vec<crate::spec::Platform> = Vec::new();
        for s in &list {
            let p = parse_platform(s, &key)?;
            if out.contains(&p) {
                return Err(Error::bad_input(&key, format!("{s} is given twice")));
            }
            out.push(p);
        }
        Ok(out)
    }

    /// Whether it names platforms (its own `platforms`, or `[defaults]
    /// platforms` when it names no `platform`): then it is built in a pass
    /// per platform, and a pass's platform is the image's.
    pub fn names_platforms(&self, defaults: &Defaults) -> bool {
        self.platforms.is_some() || (self.platform.is_none() && !defaults.platforms.is_empty())
    }

    /// The platform the image is for in a build whose context is for
    /// `pass`: that one when the image names platforms, else its
    /// `platform` (the host's when not given).
    pub fn platform_in(
        &self,
        defaults: &Defaults,
        pass: &crate::spec::Platform,
    ) -> Result<crate::spec::Platform> {
        if self.names_platforms(defaults) {
            return Ok(pass.clone());
        }
        self.platform()
    }
}

/// An image built per platform: its name, the platforms of this build and
/// whether it is an index (it names two or more platforms, even when
/// `--platform` narrows the build to one).
pub(super) struct Wanted {
    name: String,
    platforms: Vec<Platform>,
    index: bool,
}

/// The selected images that name platforms. Empty when none does (the
/// build is one pass, as for a project without platforms).
pub(super) fn wanted(project: &Project, sel: &Selection) -> Result<Vec<Wanted>> {
    if sel.platform_pass || sel.tests_only || !sel.layers.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in super::build::selected_images(project, sel)? {
        if let Some((all, platforms)) = narrowed(project, &name, &sel.platforms)? {
            out.push(Wanted {
                name,
                platforms,
                index: all > 1,
            });
        }
    }
    Ok(out)
}

/// For an image that names platforms: how many it names, and those of
/// them `narrow` keeps (all when `narrow` is empty; none is an error).
/// `None` for an image that names none (or an unknown name, left to the
/// caller, which says what it meant).
fn narrowed(
    project: &Project,
    name: &str,
    narrow: &[Platform],
) -> Result<Option<(usize, Vec<Platform>)>> {
    let defaults = &project.file.defaults;
    let Some(spec) = project.file.images.get(name) else {
        return Ok(None);
    };
    if !spec.names_platforms(defaults) {
        return Ok(None);
    }
    let all = spec.platforms(name, defaults)?;
    let chosen: Vec<Platform> = all
        .iter()
        .filter(|p| narrow.is_empty() || narrow.contains(p))
        .cloned()
        .collect();
    if chosen.is_empty() {
        return Err(Error::bad_input(
            "--platform",
            format!(
                "image {name} is built for {}, none of which --platform names",
                list(&all)
            ),
        ));
    }
    Ok(Some((all.len(), chosen)))
}

fn list(ps: &[Platform]) -> String {
    ps.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds `wanted` one platform at a time (and the other selected images
/// in one pass of their own), then makes, tags, pushes and loads each
/// multi-platform image.
pub(super) fn build(
    project: &Project,
    ctx: &Context,
    sel: &Selection,
    wanted: Vec<Wanted>,
) -> Result<BuildReport> {
    let started = std::time::Instant::now();
    let engine = super::build::engine_for(sel)?;
    let singles: Vec<String> = super::build::selected_images(project, sel)?
        .into_iter()
        .filter(|n| !wanted.iter().any(|w| &w.name == n))
        .collect();
    let mut passes: Vec<(Option<Platform>, BuildReport)> = Vec::new();
    if !singles.is_empty() {
        let one = Selection {
            images: singles,
            profile: None,
            ..sel.clone()
        };
        passes.push((None, super::build::build(project, ctx, &one)?));
    }
    let mut order: Vec<Platform> = Vec::new();
    for p in wanted.iter().flat_map(|w| &w.platforms) {
        if !order.contains(p) {
            order.push(p.clone());
        }
    }
    for p in &order {
        let pass = Selection {
            images: wanted
                .iter()
                .filter(|w| w.platforms.contains(p))
                .map(|w| w.name.clone())
                .collect(),
            profile: None,
            // A pass pushes and loads nothing (the index does), but knows
            // whether the build pushes: a push-only build leaves cache
            // hits in the registry.
            platform_pass: true,
            load: false,
            ..sel.clone()
        };
        passes.push(run_pass(project, ctx, p, &pass)?);
    }
    let mut images: Vec<ImageReport> = passes
        .iter()
        .filter(|(p, _)| p.is_none())
        .flat_map(|(_, r)| r.images.clone())
        .collect();
    for w in &wanted {
        let parts: Vec<Part<'_>> = passes
            .iter()
            .filter_map(|(p, r)| {
                Some(Part {
                    platform: p.clone()?,
                    report: r.images.iter().find(|i| i.name == w.name)?,
                    vars: r.tag_vars.as_ref(),
                    image: r
                        .composed
                        .0
                        .iter()
                        .find(|(n, _)| *n == w.name)
                        .map(|(_, i)| Arc::clone(i))?,
                })
            })
            .collect();
        images.push(publish(project, ctx, sel, w, &parts, engine.as_ref())?);
    }
    super::publish::drop_orphan_sboms(&ctx.store)?;
    Ok(merge(passes, images, started))
}

/// One platform's pass of the build: `pass` in a context for `p`, its
/// layers marked with the platform.
fn run_pass(
    project: &Project,
    ctx: &Context,
    p: &Platform,
    pass: &Selection,
) -> Result<(Option<Platform>, BuildReport)> {
    let _span = crate::trace::span("platform", p.to_string());
    let mut report = super::build::build(project, &ctx.for_platform(p.clone()), pass)?;
    for l in &mut report.layers {
        // What was built for the build machine says so already.
        l.platform.get_or_insert_with(|| p.to_string());
    }
    Ok((Some(p.clone()), report))
}

/// `build --layer NAME --platform P,...`: the layers (and what they need)
/// for each platform, recorded in the registry cache; a CI fan-out job per
/// layer and platform.
pub(super) fn build_layers(
    project: &Project,
    ctx: &Context,
    sel: &Selection,
) -> Result<BuildReport> {
    let started = std::time::Instant::now();
    let mut passes = Vec::new();
    for p in &sel.platforms {
        let pass = Selection {
            platform_pass: true,
            push: false,
            load: false,
            ..sel.clone()
        };
        passes.push(run_pass(project, ctx, p, &pass)?);
    }
    let images = passes.iter().flat_map(|(_, r)| r.images.clone()).collect();
    Ok(merge(passes, images, started))
}

/// Tags (pushes, loads) one image of a multi-platform build: an index over
/// its platforms' images, or the one image when it names one platform.
fn publish(
    project: &Project,
    ctx: &Context,
    sel: &Selection,
    w: &Wanted,
    parts: &[Part<'_>],
    engine: Option<&transport::daemon::Engine>,
) -> Result<ImageReport> {
    let first = parts[0].report;
    let tags = match w.index {
        true => index_tags(project, &w.name, parts)?,
        false => first.tags.clone(),
    };
    let mut report = first.clone();
    report.tags = tags.clone();
    // Stored when every platform's image is (not so for a push-only build
    // whose layers stay in the registry cache).
    let stored = parts.iter().all(|p| p.report.stored);
    let index = if w.index {
        let mut b = IndexBuilder::new();
        for p in parts {
            b.add(p.platform.clone(), Arc::clone(&p.image));
        }
        let index = b.build()?;
        if stored {
            transport::oci::write_index(&index, &ctx.store, None)?;
        }
        report.platforms = parts
            .iter()
            .map(|p| PlatformImage {
                platform: p.platform.to_string(),
                digest: p.report.digest.clone(),
                size: p.report.size,
                packages: p.report.packages,
                sbom: p.report.sbom.clone(),
            })
            .collect();
        report.size = parts.iter().map(|p| p.report.size).sum();
        report.packages = parts.iter().map(|p| p.report.packages).sum();
        report.previous_size = None;
        Some(index)
    } else {
        None
    };
    let what = match &index {
        Some(i) => Publishable::Index(i),
        None => Publishable::Image(parts[0].image.as_ref()),
    };
    let desc = what.descriptor()?;
    if stored {
        for t in &tags {
            ctx.store.set_tag(t, &desc)?;
        }
    }
    report.digest = desc.digest.clone();
    report.stored = stored;
    if sel.push {
        let _span = crate::trace::span("image", format!("push {}", w.name));
        // Each platform's SBOM is attached to its manifest.
        let mut artifacts = Vec::new();
        if sel.attach_sbom {
            for p in parts {
                if let Some(a) = crate::sbom::Artifact::open(&ctx.store, &p.report.sbom)? {
                    artifacts.push((a, p.report.digest.clone()));
                }
            }
        }
        let sboms: Vec<_> = artifacts.iter().map(|(a, d)| (a, d)).collect();
        let (refs, stats) = super::publish::push_image(project, ctx, what, &tags, &sboms, None)?;
        report.pushed = refs;
        report.push = Some(stats);
    }
    if let Some(e) = engine {
        // The engine holds one platform: the host's, else the first.
        let host = Platform::host();
        let part = parts
            .iter()
            .find(|p| host.matches(&p.platform))
            .unwrap_or(&parts[0]);
        report.load = Some(transport::daemon::load(e, part.image.as_ref(), &tags)?);
    }
    Ok(report)
}

/// The tags of image `name`'s index: its patterns expanded as in the first
/// platform's pass, but with `{content}` over every platform's content, so
/// that a change on any one platform gives a new content tag.
fn index_tags(project: &Project, name: &str, parts: &[Part<'_>]) -> Result<Vec<String>> {
    let vars = parts[0].vars.and_then(|first| {
        first.with_index_content(
            name,
            parts.iter().map(|p| {
                (
                    p.platform.to_string(),
                    p.vars.and_then(|v| v.content.get(name)),
                )
            }),
        )
    });
    match vars {
        Some(vars) => super::tags::image_tags(project, name, &vars),
        None => Ok(parts[0].report.tags.clone()),
    }
}

/// One platform's image of a multi-platform build.
struct Part<'a> {
    platform: Platform,
    report: &'a ImageReport,
    /// What its pass expanded tag patterns with.
    vars: Option<&'a super::tags::TagVars>,
    image: Arc<dyn Image>,
}

/// One report for the whole build: every pass's layers (with their
/// platforms), the images, warnings once each, the cache counts summed.
fn merge(
    passes: Vec<(Option<Platform>, BuildReport)>,
    images: Vec<ImageReport>,
    started: std::time::Instant,
) -> BuildReport {
    let mut out = BuildReport {
        layers: Vec::new(),
        images,
        files_hashed: 0,
        seconds: started.elapsed().as_secs_f64(),
        warnings: Vec::new(),
        tests: Vec::new(),
        cache: None,
        cache_hit_rate: 0.0,
        composed: Default::default(),
        tag_vars: None,
    };
    let mut said = BTreeSet::new();
    for (_, r) in passes {
        for l in r.layers {
            // The build machine's stack of a step that runs on it is in
            // the pass for its platform too: listed once.
            if !out
                .layers
                .iter()
                .any(|k| k.name == l.name && k.platform == l.platform && k.key == l.key)
            {
                out.layers.push(l);
            }
        }
        out.files_hashed += r.files_hashed;
        out.tests.extend(r.tests);
        for w in r.warnings {
            if said.insert(w.clone()) {
                out.warnings.push(w);
            }
        }
        if let Some(c) = r.cache {
            let sum = out
                .cache
                .get_or_insert_with(|| super::regcache::CacheReport {
                    repository: c.repository.clone(),
                    writable: c.writable,
                    ..Default::default()
                });
            sum.writable &= c.writable;
            sum.hits += c.hits;
            sum.misses += c.misses;
            sum.recorded += c.recorded;
            sum.bytes_downloaded += c.bytes_downloaded;
            sum.bytes_uploaded += c.bytes_uploaded;
        }
    }
    out.cache_hit_rate = super::report::hit_rate(&out.layers);
    out
}

/// The passes a check (or any per-platform walk) over images `names` makes:
/// `None` (the context's platform) for the images that name no platforms,
/// then each platform with the images built for it, narrowed to `narrow`
/// when it is not empty.
pub fn passes(
    project: &Project,
    names: &[String],
    narrow: &[Platform],
) -> Result<Vec<(Option<Platform>, Vec<String>)>> {
    let mut out: Vec<(Option<Platform>, Vec<String>)> = Vec::new();
    let mut plain = Vec::new();
    for name in names {
        let Some((_, chosen)) = narrowed(project, name, narrow)? else {
            plain.push(name.clone());
            continue;
        };
        for p in &chosen {
            match out.iter_mut().find(|(q, _)| q.as_ref() == Some(p)) {
                Some((_, images)) => images.push(name.clone()),
                None => out.push((Some(p.clone()), vec![name.clone()])),
            }
        }
    }
    if !plain.is_empty() {
        out.insert(0, (None, plain));
    }
    Ok(out)
}

/// The Debian architecture of an OCI platform.
pub fn debian_arch(p: &Platform) -> String {
    match (p.architecture.as_str(), p.variant.as_deref()) {
        ("arm", Some("v7") | None) => "armhf".into(),
        ("arm", _) => "armel".into(),
        ("386", _) => "i386".into(),
        ("ppc64le", _) => "ppc64el".into(),
        ("mips64le", _) => "mips64el".into(),
        (a, _) => a.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::debian_arch;

    #[test]
    fn oci_platforms_map_to_debian_architectures() {
        for (platform, arch) in [
            ("linux/amd64", "amd64"),
            ("linux/arm64", "arm64"),
            ("linux/arm64/v8", "arm64"),
            ("linux/arm/v7", "armhf"),
            ("linux/arm", "armhf"),
            ("linux/arm/v6", "armel"),
            ("linux/arm/v5", "armel"),
            ("linux/386", "i386"),
            ("linux/ppc64le", "ppc64el"),
            ("linux/mips64le", "mips64el"),
            ("linux/s390x", "s390x"),
            ("linux/riscv64", "riscv64"),
        ] {
            let p = crate::spec::Platform::parse(platform).unwrap();
            assert_eq!(debian_arch(&p), arch, "{platform}");
        }
    }
}
