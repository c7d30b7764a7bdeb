//! What a build publishes besides the image: its SBOM artifact, pushes to
//! the project's registry, and the clean-up of SBOM tags nothing points at.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::build::Built;
use super::debsrc::Resolution;
use super::project::Project;
use super::report::ImageReport;
use super::source::annotations;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{Image, ImageBuilder};
use crate::spec::Platform;
use crate::transport::{self, Context};

/// What a build pushes: an image, or a multi-platform image's index.
#[derive(Clone, Copy)]
pub(super) enum Publishable<'a> {
    /// One image manifest.
    Image(&'a dyn Image),
    /// An index and its images.
    Index(&'a dyn crate::image::ImageIndex),
}

impl Publishable<'_> {
    /// The descriptor of its manifest or index, as tags point at it.
    pub(super) fn descriptor(&self) -> Result<crate::spec::Descriptor> {
        match self {
            Publishable::Image(i) => i.descriptor(),
            Publishable::Index(i) => i.descriptor(),
        }
    }
}

/// Pushes `image` to `[defaults] registry`: every tag `NAME:TAG` becomes
/// `docker://REGISTRY/NAME:TAG` (one upload per repository, then tags).
pub(super) fn push_image(
    project: &Project,
    ctx: &Context,
    image: Publishable<'_>,
    tags: &[String],
    sboms: &[(&crate::sbom::Artifact, &Digest)],
    cache: Option<&(String, String)>,
) -> Result<(Vec<String>, PushStats)> {
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
    let mut stats = PushStats::default();
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
        // Blobs recorded in a registry cache on the same registry mount
        // from it.
        let mount_from: Vec<String> = cache
            .filter(|(host, _)| host == target.api_host())
            .map(|(_, repo)| repo.clone())
            .into_iter()
            .collect();
        let report = match &image {
            Publishable::Image(i) => crate::registry::push::push(
                &client,
                *i,
                &target,
                &repo_tags[1..],
                &mount_from,
                ctx.progress.clone(),
            )?,
            Publishable::Index(i) => crate::registry::push::push_index(
                &client,
                *i,
                &target,
                &repo_tags[1..],
                &mount_from,
                ctx.progress.clone(),
            )?,
        };
        stats.pushed += report.pushed;
        stats.skipped += report.skipped;
        stats.mounted += report.mounted;
        stats.bytes += report.bytes;
        pushed.extend(repo_tags.iter().map(|t| target.with_tag(t).to_string()));
        for (artifact, subject) in sboms {
            crate::registry::referrers::attach(
                &client,
                &target,
                *artifact,
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
    Ok((pushed, stats))
}

/// Records the layers this build made or found in the store in the
/// registry cache (those found there are not written again). Listing files
/// are made first, here; the uploads then run in parallel.
pub(super) fn record_layers(
    project: &Project,
    deb: &super::debsrc::DebPlanner<'_>,
    rc: &super::regcache::RegistryCache,
    keys: &BTreeMap<&str, Digest>,
    built: &BTreeMap<&str, Built>,
    cache: &super::cache::LayerCache,
) -> Result<()> {
    use super::source::Status;
    let mut todo = Vec::new();
    for (&l, b) in built {
        if b.report.status == Status::Remote || !rc.is_on() {
            continue;
        }
        let def = &project.layers[l];
        let listing = super::check::listing_file(def, deb, &keys[l])?;
        let packages = super::source::of(def)
            .resolution(l, deb)?
            .and_then(|r| super::debfacts::entries(&deb.context().store, &r.packages));
        todo.push((
            l,
            def,
            listing,
            cache.inputs(l, &deb.context().platform),
            packages,
        ));
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4.min(todo.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((l, def, listing, inputs, packages)) = todo.get(i) else {
                        break;
                    };
                    let _span = crate::trace::span("cache", format!("record {l}"));
                    let extras = super::regcache::Extras {
                        listing: listing.as_deref(),
                        inputs: inputs.as_deref(),
                        packages: packages.clone(),
                    };
                    rc.record(
                        l,
                        def.file.layer.version.as_deref(),
                        &keys[l],
                        &built[l].layers,
                        &extras,
                    );
                }
            });
        }
    });
    rc.record_push_times();
    Ok(())
}

/// What pushing one image moved, over all its repositories (the image's
/// blobs and config; the SBOM is not counted).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PushStats {
    /// Blobs uploaded.
    pub pushed: usize,
    /// Blobs the registry had.
    pub skipped: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Blob bytes uploaded.
    pub bytes: u64,
}

/// Removes SBOM tags (`REPO:sha256-HEX.spdx`) whose image no other tag of
/// the store points at any more, so they do not pile up build after build.
pub(super) fn drop_orphan_sboms(store: &crate::store::Store) -> Result<()> {
    let tags = store.tags()?;
    let mut live = std::collections::BTreeSet::new();
    for (_, d) in tags.iter().filter(|(n, _)| !n.ends_with(".spdx")) {
        live.insert(d.digest.hex().to_string());
        // A multi-platform image's platforms keep their SBOMs.
        if crate::media::is_index(&d.media_type)
            && let Ok(raw) = store.read_blob(&d.digest, crate::spec::MAX_MANIFEST_SIZE)
            && let Ok(index) = crate::spec::Index::parse(&raw, "store index")
        {
            live.extend(index.manifests.iter().map(|m| m.digest.hex().to_string()));
        }
    }
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
pub(super) fn sbom_parts(
    image: &ImageBuilder,
    layers: &[&str],
    built: &BTreeMap<&str, Built>,
    resolutions: &BTreeMap<&str, Arc<Resolution>>,
    project: &super::project::Project,
    spec: &super::project::ImageSpec,
) -> Result<(Vec<crate::sbom::SbomLayer>, Vec<crate::sbom::SbomPackage>)> {
    use crate::sbom::{SbomLayer, SbomPackage};
    let sb_layers: Vec<SbomLayer> = image
        .layers()?
        .iter()
        .map(|l| {
            let d = l.descriptor();
            let name = d
                .annotations
                .get(annotations::NAME)
                .cloned()
                .unwrap_or_else(|| "base".into());
            SbomLayer {
                description: project
                    .layers
                    .get(&name)
                    .and_then(|def| def.file.layer.description.clone()),
                name,
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
    Ok((sb_layers, pkgs))
}

/// Composes, writes, tags (and with `push`, pushes) each planned image with
/// its SBOM. In a platform pass, each image is only stored with its SBOM
/// and handed back in `composed`: its index is tagged, pushed and loaded.
pub(super) fn write_images(
    run: &super::build::Run<'_, '_>,
    plans: Vec<super::build::Plan<'_>>,
    sel: &super::build::Selection,
    engine: Option<&transport::daemon::Engine>,
    remote: Option<&super::regcache::RegistryCache>,
    composed: &mut Vec<(String, Arc<dyn Image>)>,
) -> Result<Vec<ImageReport>> {
    let mut images = Vec::new();
    for (name, layers, tags) in plans {
        let w = store_image(run, &name, &layers, &tags, sel)?;
        let (mut pushed, mut push, mut load) = (Vec::new(), None, None);
        if sel.platform_pass {
            composed.push((name.clone(), Arc::clone(&w.image) as Arc<dyn Image>));
        } else {
            (pushed, push, load) = publish_image(run, &w, &tags, sel, engine, remote)?;
        }
        let size = w.image.layers()?.iter().map(|l| l.descriptor().size).sum();
        images.push(ImageReport {
            name,
            digest: w.digest,
            size,
            previous_size: w.previous_size,
            tags,
            pushed,
            push,
            load,
            stored: w.stored,
            sbom: w.sbom_tag,
            packages: w.packages,
            platforms: Vec::new(),
        });
    }
    if !sel.platform_pass {
        drop_orphan_sboms(&run.ctx.store)?;
    }
    Ok(images)
}

/// An image composed and (unless a push-only build leaves its layers in the
/// registry cache) written to the store, with its SBOM.
struct StoredImage {
    name: String,
    image: Arc<crate::image::ImageBuilder>,
    digest: Digest,
    desc: crate::spec::Descriptor,
    stored: bool,
    previous_size: Option<u64>,
    artifact: crate::sbom::Artifact,
    sbom_tag: String,
    packages: usize,
}

/// Composes image `name`, writes it to the store when its layers are there
/// (or the build keeps a local copy) and writes its SBOM, found by the tag
/// the SBOM of `tags[0]`'s repository gets.
fn store_image(
    run: &super::build::Run<'_, '_>,
    name: &str,
    layers: &[&str],
    tags: &[String],
    sel: &super::build::Selection,
) -> Result<StoredImage> {
    let (project, ctx) = (run.project, run.ctx);
    let spec = &project.file.images[name];
    let _assembling = crate::trace::span("image", format!("assemble {name}"));
    let image = run.compose(name, layers)?;
    let previous_size = transport::oci::open(&ctx.store, Some(&tags[0]), &Platform::host())
        .ok()
        .and_then(|img| Some(img.layers().ok()?.iter().map(|l| l.descriptor().size).sum()));
    // Layers still in the registry cache are downloaded for a store tag; a
    // push-only build leaves them there and tags nothing here.
    let all_local = image
        .layers()?
        .iter()
        .all(|l| ctx.store.has_blob(&l.descriptor().digest));
    let stored = all_local || !sel.push || sel.keep_local;
    let (digest, desc) = if stored {
        let digest = transport::oci::write_image(&image, &ctx.store, None)?;
        (digest, image.descriptor()?)
    } else {
        (image.digest()?, image.descriptor()?)
    };
    let (sb_layers, sb_packages) =
        sbom_parts(&image, layers, run.built, run.resolutions, project, spec)?;
    let packages = sb_packages.len();
    let epoch = run.settings.epoch;
    let inputs = crate::sbom::inputs_key(name, &digest, epoch, &sb_layers, &sb_packages);
    let repo = tags[0]
        .rsplit_once(':')
        .map_or(tags[0].as_str(), |(n, _)| n);
    let sbom_tag = crate::sbom::Artifact::tag(repo, &digest);
    // The same inputs make the same document: a no-op build keeps it.
    let artifact = match crate::sbom::Artifact::find(&ctx.store, &sbom_tag, &inputs)? {
        Some(a) => a,
        None => {
            let doc = crate::sbom::spdx(name, &digest, epoch, &sb_layers, &sb_packages);
            let a = crate::sbom::Artifact::write(
                &ctx.store,
                &desc,
                crate::sbom::SPDX_JSON,
                &doc,
                epoch,
                Some(&inputs),
            )?;
            // A platform's SBOM is found by its tag when its index is
            // pushed.
            if stored || sel.platform_pass {
                ctx.store.set_tag(&sbom_tag, &a.descriptor()?)?;
            }
            a
        }
    };
    Ok(StoredImage {
        name: name.to_string(),
        image: Arc::new(image),
        digest,
        desc,
        stored,
        previous_size,
        artifact,
        sbom_tag,
        packages,
    })
}

/// Tags a single-platform image in the store (when it is stored there),
/// pushes it with `push` (its SBOM attached with `attach_sbom`) and loads
/// it into `engine`: what was pushed, the push's numbers and the load's.
type Published = (
    Vec<String>,
    Option<PushStats>,
    Option<transport::daemon::LoadReport>,
);

fn publish_image(
    run: &super::build::Run<'_, '_>,
    w: &StoredImage,
    tags: &[String],
    sel: &super::build::Selection,
    engine: Option<&transport::daemon::Engine>,
    remote: Option<&super::regcache::RegistryCache>,
) -> Result<Published> {
    let (project, ctx) = (run.project, run.ctx);
    if w.stored {
        for t in tags {
            ctx.store.set_tag(t, &w.desc)?;
        }
    }
    let (mut pushed, mut push) = (Vec::new(), None);
    if sel.push {
        let attach: Vec<_> = sel
            .attach_sbom
            .then_some((&w.artifact, &w.digest))
            .into_iter()
            .collect();
        let _span = crate::trace::span("image", format!("push {}", w.name));
        let cache = remote.map(|rc| rc.mount_source());
        let (refs, stats) = push_image(
            project,
            ctx,
            Publishable::Image(w.image.as_ref()),
            tags,
            &attach,
            cache.as_ref(),
        )?;
        (pushed, push) = (refs, Some(stats));
    }
    let load = match engine {
        Some(e) => Some(transport::daemon::load(e, w.image.as_ref(), tags)?),
        None => None,
    };
    Ok((pushed, push, load))
}
