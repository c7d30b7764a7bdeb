//! Checks on composed images, without building: file conflicts between
//! layers, file-vs-directory clashes, declared binaries, base platform.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use super::debsrc::DebPlanner;
use super::graph::Graph;
use super::project::{ConflictPolicy, LayerDef, Project};
use super::source::Content;
use crate::error::Result;
use crate::layer::EntryKind;
use crate::tarsafe::for_each_entry;
use crate::transport::{self, Context};

/// What a path is in a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Directory.
    Dir,
    /// Regular file or hardlink.
    File,
    /// Symlink.
    Symlink,
}

/// A path in a layer.
#[derive(Clone, Debug)]
pub struct FileInfo {
    /// Its kind.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// A symlink's target, as written in the layer.
    pub target: Option<Box<str>>,
}

fn list_tar(
    r: impl Read,
    label: &std::path::Path,
    out: &mut BTreeMap<String, FileInfo>,
) -> Result<()> {
    for_each_entry(label, r, |name, e| {
        let h = e.header();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Regular | tar::EntryType::Link | tar::EntryType::Continuous => {
                Kind::File
            }
            _ => return Ok(()),
        };
        // A whiteout (a build step's removal) is no file of the layer.
        let base = name.rsplit('/').next().unwrap_or(name);
        if !name.is_empty() && !base.starts_with(".wh.") {
            let target = match kind {
                Kind::Symlink => e
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into()),
                _ => None,
            };
            out.insert(
                name.to_string(),
                FileInfo {
                    kind,
                    mode: h.mode().unwrap_or(0),
                    target,
                },
            );
        }
        Ok(())
    })
}

/// Lists the files a layer will contain, without building it (nothing
/// for a build step, whose files are known only once it ran).
pub fn list_layer(def: &LayerDef, deb: &DebPlanner<'_>) -> Result<BTreeMap<String, FileInfo>> {
    Ok(list_known(def, deb)?.unwrap_or_default())
}

/// [`list_layer`], `None` when the files are not known before the layer is
/// built (a build step).
fn list_known(def: &LayerDef, deb: &DebPlanner<'_>) -> Result<Option<BTreeMap<String, FileInfo>>> {
    let mut out = BTreeMap::new();
    let mut visit = |c: Content<'_>| match c {
        Content::Entries(entries) => {
            for e in entries {
                let (kind, target) = match &e.kind {
                    EntryKind::Dir => (Kind::Dir, None),
                    EntryKind::Symlink(t) => {
                        (Kind::Symlink, Some(String::from_utf8_lossy(t).into()))
                    }
                    EntryKind::File { .. } | EntryKind::Hardlink(_) => (Kind::File, None),
                };
                out.insert(
                    String::from_utf8_lossy(&e.path).into_owned(),
                    FileInfo {
                        kind,
                        mode: e.mode,
                        target,
                    },
                );
            }
            Ok(())
        }
        Content::Tar(r, label) => list_tar(r, label, &mut out),
    };
    let known = super::source::of(def).contents(def, deb.context(), deb, &mut visit)?;
    Ok(known.then_some(out))
}

/// The files of the layer the cache holds under `key`, if it does.
fn list_cached_blob(
    ctx: &Context,
    key: &crate::digest::Digest,
) -> Result<Option<BTreeMap<String, FileInfo>>> {
    let Some(c) = super::cache::LayerCache::new(&ctx.store)?.get(key) else {
        return Ok(None);
    };
    use crate::layer::Layer;
    let layer = crate::layer::StoreLayer::new(ctx.store.clone(), c.descriptor, c.diff_id);
    let label = std::path::PathBuf::from(format!("layer {}", layer.descriptor().digest));
    let r = crate::layer::decompress(layer.open()?)
        .map_err(|e| crate::Error::from_pipeline(&label, e))?;
    let mut out = BTreeMap::new();
    list_tar(r, &label, &mut out)?;
    Ok(Some(out))
}

/// The `[provides]` findings of the listed layers over the image's merged
/// files. With some layer's files unknown (a step not built), a binary or
/// library not found may be in it: then it is a warning.
fn provides_findings(
    project: &Project,
    arch: &str,
    layers: &[&str],
    listed: &[(&str, Listing)],
    owner: &HashMap<&str, (&str, &FileInfo)>,
    complete: bool,
    push: &mut impl FnMut(&'static str, String),
) -> Result<()> {
    let defs: Vec<&LayerDef> = layers.iter().map(|l| &project.layers[*l]).collect();
    let lib_dirs = super::provides::library_dirs(arch, &defs);
    for (l, _) in listed {
        for m in super::provides::check_layer(l, &project.layers[*l], owner, &lib_dirs) {
            if complete {
                push("error", m);
            } else {
                push(
                    "warning",
                    format!("{m} (not certain: some layers' files are known only once built)"),
                );
            }
        }
    }
    Ok(())
}

/// Packages that more than one deb layer of the image installs, with the
/// layers (in image order).
pub(super) fn shared_packages<'p>(
    project: &Project,
    layers: &[&'p str],
    deb: &DebPlanner<'_>,
) -> Result<BTreeMap<String, Vec<&'p str>>> {
    let mut by_package: BTreeMap<String, Vec<&'p str>> = BTreeMap::new();
    for &l in layers {
        let Some(res) = super::source::of(&project.layers[l]).resolution(l, deb)? else {
            continue;
        };
        for p in &res.packages {
            by_package.entry(p.name.clone()).or_default().push(l);
        }
    }
    by_package.retain(|_, ls| ls.len() > 1);
    Ok(by_package)
}

/// One message per set of layers that share packages: which packages,
/// how many files conflict, and the dependency that fixes it.
fn shared_messages(
    shared: &BTreeMap<String, Vec<&str>>,
    hidden: &BTreeMap<(&str, &str), usize>,
) -> Vec<String> {
    let mut groups: BTreeMap<&[&str], Vec<&str>> = BTreeMap::new();
    for (p, ls) in shared {
        groups.entry(ls.as_slice()).or_default().push(p);
    }
    groups
        .into_iter()
        .map(|(ls, pkgs)| {
            let files: usize = hidden
                .iter()
                .filter(|((a, b), _)| ls.contains(a) && ls.contains(b))
                .map(|(_, n)| n)
                .sum();
            let quoted: Vec<String> = pkgs.iter().map(|p| format!("{p:?}")).collect();
            format!(
                "layers {} each install {} ({files} conflicting file(s)); install {} once, beneath them: a layer with [source.deb] packages = [{}] that {} require (add it to their [requires] and [runtime] layers)",
                ls.join(", "),
                pkgs.join(", "),
                if pkgs.len() == 1 { "it" } else { "them" },
                quoted.join(", "),
                ls.join(" and "),
            )
        })
        .collect()
}

/// Warnings about layer `name` that a build gives only when it builds the
/// layer (a deb layer whose maintainer scripts do not run).
pub fn layer_warnings(project: &Project, name: &str, deb: &DebPlanner<'_>) -> Result<Vec<String>> {
    let def = &project.layers[name];
    let settings = super::build::settings(project)?;
    super::source::of(def).check_warnings(def, name, deb, settings)
}

/// The version-bump warnings the next build of these layers would give,
/// as far as they are known before building: a versioned layer (not
/// opted out with `warn_unbumped = false`) whose inputs changed since it was
/// last built in this store, while strata.lock pins its bytes at the same
/// version. A layer never built in this store says nothing (a fresh clone
/// rebuilds the locked bytes).
pub fn bump_warnings(
    project: &Project,
    ctx: &Context,
    keys: &BTreeMap<&str, crate::digest::Digest>,
) -> Result<Vec<(String, String)>> {
    let lock = super::lock::Lock::load(&project.root)?;
    let cache = super::cache::LayerCache::new(&ctx.store)?;
    let mut out = Vec::new();
    for (&l, key) in keys {
        let def = &project.layers[l];
        let layer = &def.file.layer;
        let Some(version) = layer.version.as_deref() else {
            continue;
        };
        let pinned = lock.get(l).is_some_and(|p| p.version == version);
        if !layer.warn_unbumped
            || !pinned
            || super::source::of(def).never_builds()
            || cache.get(key).is_some()
            || cache.inputs(l, &ctx.platform).is_none()
        {
            continue;
        }
        out.push((
            l.to_string(),
            format!(
                "layer {l}@{version}: its inputs changed since it was last built and its version did not, so the next build changes its bytes without a version bump (strata plan says what changed); bump its version to record a deliberate change, or set warn_unbumped = false in {} for a layer that changes on every commit",
                def.rel
            ),
        ));
    }
    Ok(out)
}

/// One finding of a check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    /// "error" or "warning".
    pub level: &'static str,
    /// The image it concerns.
    pub image: String,
    /// What is wrong, naming layers and paths.
    pub message: String,
    /// The platform it was found for, for an image built for several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// For an image checked on several platforms: a finding for some of them
/// only says which of its platforms are fine (a binary missing on arm64
/// but present on amd64 names both). `checked` maps each image to the
/// platforms it was checked for.
pub fn name_platforms_without(
    findings: &mut [Finding],
    checked: &std::collections::BTreeMap<String, Vec<String>>,
) {
    let on: Vec<(String, String, Option<String>)> = findings
        .iter()
        .map(|f| (f.image.clone(), f.message.clone(), f.platform.clone()))
        .collect();
    for f in findings.iter_mut() {
        let (Some(_), Some(all)) = (&f.platform, checked.get(&f.image)) else {
            continue;
        };
        let fine: Vec<&str> = all
            .iter()
            .filter(|p| {
                !on.iter().any(|(i, m, q)| {
                    *i == f.image && *m == f.message && q.as_deref() == Some(p.as_str())
                })
            })
            .map(String::as_str)
            .collect();
        if !fine.is_empty() {
            f.message = format!("{} (not so on {})", f.message, fine.join(", "));
        }
    }
}

/// The first line of a listing file: its format version (a file of
/// another version is listed again and rewritten). Lines are `KIND MODE
/// PATH`, a symlink's `PATH` followed by NUL and its target.
const LISTING_HEADER: &str = "strata-listing 2\n";

/// Where a layer's file listing is cached, by layer key.
pub(crate) fn listing_path(
    store: &crate::store::Store,
    key: &crate::digest::Digest,
) -> std::path::PathBuf {
    store.root().join(".strata/listings").join(key.hex())
}

/// The listing file of layer `def` under `key`, written now when it is not
/// there yet (`None` for a build step not built yet).
pub fn listing_file(
    def: &LayerDef,
    deb: &DebPlanner<'_>,
    key: &crate::digest::Digest,
) -> Result<Option<std::path::PathBuf>> {
    Ok(list_layer_keyed(def, deb, key)?.map(|_| listing_path(&deb.context().store, key)))
}

type Listing = std::rc::Rc<BTreeMap<String, FileInfo>>;

/// The file listings one check run has read, by layer key: images that
/// share a layer (a toolchain in ten images) read its listing once. A key
/// names its content, so an entry never goes stale; the run owns them, so
/// they go with it.
#[derive(Default)]
pub struct Listings(std::cell::RefCell<HashMap<crate::digest::Digest, Listing>>);

/// [`list_layer`], cached by layer key when one is given: a layer whose key
/// did not change is not walked again. A build step's files come from its
/// blob once it is built; `None` before.
fn list_layer_cached(
    def: &LayerDef,
    deb: &DebPlanner<'_>,
    key: Option<&crate::digest::Digest>,
    read: &Listings,
) -> Result<Option<Listing>> {
    let Some(key) = key else {
        return Ok(list_known(def, deb)?.map(Listing::new));
    };
    if let Some(l) = read.0.borrow().get(key) {
        return Ok(Some(Listing::clone(l)));
    }
    let listing = list_layer_keyed(def, deb, key)?.map(Listing::new);
    if let Some(l) = &listing {
        read.0.borrow_mut().insert(key.clone(), Listing::clone(l));
    }
    Ok(listing)
}

/// [`list_layer_cached`] from the listing file under `key`, else from the
/// layer's source (or its built blob), writing the file.
fn list_layer_keyed(
    def: &LayerDef,
    deb: &DebPlanner<'_>,
    key: &crate::digest::Digest,
) -> Result<Option<BTreeMap<String, FileInfo>>> {
    let ctx = deb.context();
    let path = listing_path(&ctx.store, key);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Some(body) = text.strip_prefix(LISTING_HEADER)
    {
        let mut out = BTreeMap::new();
        for line in body.lines() {
            let mut parts = line.splitn(3, ' ');
            let (Some(k), Some(m), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let (kind, p, target) = match k {
                "d" => (Kind::Dir, rest, None),
                "l" => {
                    let (p, t) = rest.split_once('\0').unwrap_or((rest, ""));
                    (Kind::Symlink, p, Some(t.into()))
                }
                _ => (Kind::File, rest, None),
            };
            out.insert(
                p.to_string(),
                FileInfo {
                    kind,
                    mode: u32::from_str_radix(m, 8).unwrap_or(0),
                    target,
                },
            );
        }
        return Ok(Some(out));
    }
    let files = match list_known(def, deb)? {
        Some(files) => files,
        None => match list_cached_blob(ctx, key)? {
            Some(files) => files,
            None => return Ok(None),
        },
    };
    let mut text = String::from(LISTING_HEADER);
    for (p, f) in &files {
        let target = f.target.as_deref().unwrap_or("");
        if p.contains(['\n', '\0']) || target.contains(['\n', '\0']) {
            return Ok(Some(files));
        }
        match f.kind {
            Kind::Dir => text.push_str(&format!("d {:o} {p}\n", f.mode)),
            Kind::Symlink => text.push_str(&format!("l {:o} {p}\0{target}\n", f.mode)),
            Kind::File => text.push_str(&format!("f {:o} {p}\n", f.mode)),
        }
    }
    // Only a cache: a failed write costs a walk next time, nothing more.
    let _ = crate::store::write_file_atomic(&path, text.as_bytes());
    Ok(Some(files))
}

/// Checks image `name` of the project, given its layers' cache keys (as
/// [`super::plan::image_keys`] computes them): a layer's file list comes
/// from the listing cached under its key, read once per run into `read`.
pub fn check_image_keyed(
    project: &Project,
    graph: &Graph<'_>,
    name: &str,
    deb: &DebPlanner<'_>,
    keys: &BTreeMap<&str, crate::digest::Digest>,
    read: &Listings,
) -> Result<Vec<Finding>> {
    Ok(check_image_listed(project, graph, name, deb, keys, read)?.0)
}

/// [`check_image_keyed`], and the layers whose files are not known yet
/// (build steps not built): their files were not checked.
pub fn check_image_listed<'p>(
    project: &Project,
    graph: &Graph<'p>,
    name: &str,
    deb: &DebPlanner<'_>,
    keys: &BTreeMap<&str, crate::digest::Digest>,
    read: &Listings,
) -> Result<(Vec<Finding>, Vec<&'p str>)> {
    let mut unknown = Vec::new();
    let ctx = deb.context();
    let spec = &project.file.images[name];
    let policy = spec.conflict_policy();
    let mut findings = Vec::new();
    let mut push = |level: &'static str, message: String| {
        findings.push(Finding {
            level,
            image: name.to_string(),
            message,
            platform: None,
        })
    };
    let layers = graph.image_layers(name)?;
    let mut listed = Vec::new();
    for &l in &layers {
        let def = &project.layers[l];
        match list_layer_cached(def, deb, keys.get(l), read)? {
            Some(files) => listed.push((l, files)),
            None => unknown.push(l),
        }
    }
    // Deb layers that install the same package conflict on its files:
    // said once per package (below), not once per file.
    let shared = shared_packages(project, &layers, deb)?;
    // The pairs of layers (lower, upper) that share a package.
    let sharing: std::collections::BTreeSet<(&str, &str)> = shared
        .values()
        .flat_map(|ls| {
            ls.iter()
                .enumerate()
                .flat_map(move |(i, a)| ls[i + 1..].iter().map(move |b| (*a, *b)))
        })
        .collect();
    let mut hidden: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    // Paths borrowed from the listings: no copy of a large layer's names.
    let mut owner: HashMap<&str, (&str, &FileInfo)> = HashMap::new();
    for (l, files) in &listed {
        let l = *l;
        for (path, info) in files.iter() {
            if let Some((prev, prev_info)) = owner.get(path.as_str()) {
                let both_files = info.kind != Kind::Dir && prev_info.kind != Kind::Dir;
                if both_files && sharing.contains(&(*prev, l)) {
                    *hidden.entry((prev, l)).or_default() += 1;
                    owner.insert(path.as_str(), (l, info));
                    continue;
                }
                let both_dirs = info.kind == Kind::Dir && prev_info.kind == Kind::Dir;
                if !both_dirs {
                    let clash = (info.kind == Kind::Dir) != (prev_info.kind == Kind::Dir);
                    let overridden = spec
                        .overrides
                        .iter()
                        .any(|o| *o == format!("{l}:/{path}") || *o == format!("{prev}:/{path}"));
                    if clash && !overridden {
                        push(
                            "error",
                            format!(
                                "/{path} is a directory in one of {prev} and {l} and not in the other (file-vs-directory clash); if {l} replaces it on purpose, allow it with overrides = [\"{l}:/{path}\"] in strata.toml [images.{name}]"
                            ),
                        );
                    } else if !clash && !overridden && policy != ConflictPolicy::Allow {
                        let level = if policy == ConflictPolicy::Error {
                            "error"
                        } else {
                            "warning"
                        };
                        push(
                            level,
                            format!(
                                "/{path} is in layers {prev} and {l}; {l} wins (it is above). Allow it with overrides = [\"{l}:/{path}\"] in strata.toml [images.{name}]"
                            ),
                        );
                    }
                }
            }
            owner.insert(path.as_str(), (l, info));
        }
    }
    if policy != ConflictPolicy::Allow {
        let level = if policy == ConflictPolicy::Error {
            "error"
        } else {
            "warning"
        };
        for m in shared_messages(&shared, &hidden) {
            push(level, m);
        }
    }
    let want = spec.platform_in(&project.file.defaults, &ctx.platform)?;
    provides_findings(
        project,
        &want.architecture,
        &layers,
        &listed,
        &owner,
        unknown.is_empty(),
        &mut push,
    )?;
    for &l in &layers {
        let def = &project.layers[l];
        if let Some((from, have)) = super::source::of(def).platform(def, ctx)?
            && !want.matches(&have)
        {
            push(
                "error",
                format!(
                    "{} key source.image: layer {l} comes from {from} which is {have}, but image {name} is for {want}; take it from an image of {want}",
                    def.rel,
                ),
            );
        }
    }
    if let Some(r) = project.base_ref(name)? {
        let base = transport::open(&r, ctx)?;
        let have = base.config()?.platform();
        if !want.matches(&have) {
            push(
                "error",
                format!("base {} is {have}, but the image is for {want}", spec.base),
            );
        }
    }
    Ok((findings, unknown))
}
