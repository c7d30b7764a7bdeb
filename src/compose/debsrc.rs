//! `[source.deb]` layers in a project: which repositories they use, what
//! the layers beneath them already have (their dpkg status), the resolved
//! package set (cached by Release digests and request, so a no-op build
//! neither reads indexes nor touches the network), and writing the layer.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::graph::Graph;
use super::project::{DebSource, LayerDef, Project};
use crate::deb::control::Paragraphs;
use crate::deb::index::PackageDb;
use crate::deb::repo::{DebCache, Release};
use crate::deb::resolve::{Installed, Selected, resolve};
use crate::deb::sources::{Repository, SignedBy, system_repositories};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::layer::{LayerBuilder, StoreLayer};
use crate::transport::Context;

/// Bump when resolution rules change: cached resolutions are then redone.
const RESOLVER_VERSION: u32 = 1;

/// The resolved content of one deb layer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Resolution {
    /// Debian architecture.
    pub arch: String,
    /// Packages to add, dependencies first.
    pub packages: Vec<Selected>,
    /// Packages the layers beneath have (left out of this layer).
    pub below: Vec<Installed>,
    /// Whether `/bin`, `/sbin`, `/lib*` paths are written below `/usr`:
    /// unless a layer beneath has a real `/bin` directory.
    pub merged_usr: bool,
    /// Whether this layer carries the merged-/usr links (`/bin →
    /// usr/bin`, …): merged, and no layer beneath has `/bin` yet.
    pub usr_links: bool,
}

/// Resolves the deb layers of a project, once each per run.
pub struct DebPlanner<'a> {
    project: &'a Project,
    graph: &'a Graph<'a>,
    ctx: &'a Context,
    refresh: bool,
    cache: RefCell<Option<DebCache>>,
    resolved: RefCell<BTreeMap<String, Arc<Resolution>>>,
    releases: RefCell<HashMap<(String, String), Release>>,
    dbs: RefCell<HashMap<Digest, Rc<PackageDb>>>,
}

impl<'a> DebPlanner<'a> {
    /// A planner; with `refresh`, every Release is fetched anew (once per run).
    pub fn new(
        project: &'a Project,
        graph: &'a Graph<'a>,
        ctx: &'a Context,
        refresh: bool,
    ) -> Self {
        DebPlanner {
            project,
            graph,
            ctx,
            refresh,
            cache: RefCell::new(None),
            resolved: RefCell::new(BTreeMap::new()),
            releases: RefCell::new(HashMap::new()),
            dbs: RefCell::new(HashMap::new()),
        }
    }

    /// The context it resolves in.
    pub fn context(&self) -> &'a Context {
        self.ctx
    }

    /// Makes this planner's store use the downloads (Release files,
    /// indexes, .debs) of `other`'s store, e.g. for a throwaway store.
    pub fn share_downloads(&self, other: &DebPlanner<'_>) -> Result<()> {
        let src = other.ctx.store.root().join(".strata/deb");
        let dst = self.ctx.store.root().join(".strata/deb");
        std::fs::create_dir_all(&src).map_err(|e| Error::io(&src, e))?;
        let parent = dst.parent().expect("has a parent");
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        if !dst.exists() {
            std::os::unix::fs::symlink(&src, &dst).map_err(|e| Error::io(&dst, e))?;
        }
        Ok(())
    }

    /// The download cache of the store.
    pub fn cache(&self) -> Result<DebCache> {
        let mut c = self.cache.borrow_mut();
        if c.is_none() {
            *c = Some(DebCache::new(&self.ctx.store)?);
        }
        Ok(c.clone().expect("set above"))
    }

    /// Every layer beneath `name` (its requires and runtime layers,
    /// transitively), in build order.
    pub fn below(&self, name: &str) -> Vec<&'a str> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![name];
        while let Some(l) = stack.pop() {
            let (req, run) = self.graph.edges(l);
            for &d in req.iter().chain(run) {
                if seen.insert(d) {
                    stack.push(d);
                }
            }
        }
        self.graph
            .order()
            .iter()
            .copied()
            .filter(|l| seen.contains(l))
            .collect()
    }

    /// The resolution of deb layer `name`.
    pub fn resolve(&self, name: &str) -> Result<Arc<Resolution>> {
        if let Some(r) = self.resolved.borrow().get(name) {
            return Ok(Arc::clone(r));
        }
        let def = &self.project.layers[name];
        let deb = def.file.source.deb.as_ref().expect("a deb layer");
        let arch = match &deb.architecture {
            Some(a) => a.clone(),
            None => super::platforms::debian_arch(&self.ctx.platform),
        };
        let mut below = Vec::new();
        // What /bin is beneath: Some(true) a link, Some(false) a directory.
        let mut bin: Option<bool> = None;
        for l in self.below(name) {
            let ldef = &self.project.layers[l];
            let (installed, b) = if ldef.file.source.deb.is_some() {
                let r = self.resolve(l)?;
                let b = match (r.merged_usr, r.usr_links) {
                    (false, _) => Some(false),
                    (true, true) => Some(true),
                    (true, false) => None,
                };
                (r.packages.iter().map(|p| installed_of(p, l)).collect(), b)
            } else {
                self.dpkg_status(ldef)?
            };
            below.extend(installed);
            bin = match (bin, b) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), _) | (_, Some(true)) => Some(true),
                _ => None,
            };
        }
        let merged_usr = bin != Some(false);
        let usr_links = bin.is_none();
        let cache = self.cache()?;
        // The Release digests key the resolution; the Releases themselves
        // are read only when the resolution is not cached.
        let mut releases: Vec<(Repository, Digest)> = Vec::new();
        for repo in repositories(def, deb)? {
            let digest = match (self.refresh, cache.cached_release_digest(&repo)) {
                (false, Some(d)) => d,
                _ => self.release(&cache, &repo)?.digest,
            };
            releases.push((repo, digest));
        }
        let mut h = Hasher::new();
        let mut put = |s: &str| {
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        put(&format!("strata-deb-resolve-{RESOLVER_VERSION}"));
        put(&arch);
        put(&format!("merged {merged_usr} links {usr_links}"));
        for p in &deb.packages {
            put(p);
        }
        for (repo, digest) in &releases {
            put(&repo.uri);
            put(&repo.suite);
            put(&repo.components.join(" "));
            put(digest.hex());
        }
        for i in &below {
            put(&serde_json::to_string(i).expect("serializes"));
        }
        let db_key = {
            let mut dh = Hasher::new();
            dh.update(arch.as_bytes());
            for (repo, digest) in &releases {
                dh.update(digest.hex().as_bytes());
                dh.update(repo.components.join(" ").as_bytes());
            }
            dh.finish()
        };
        let key = h.finish();
        let path = cache.dir().join("resolved").join(key.hex());
        let packages: Vec<Selected> = match std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(p) => p,
            None => {
                let progress =
                    crate::progress::LayerProgress::new(self.ctx.layer_progress.clone(), name);
                progress.phase("resolving packages", None);
                let got = self.resolve_now(&cache, def, deb, &releases, (db_key, &arch), &below);
                progress.done();
                let got = got?;
                crate::store::write_file_atomic(
                    &path,
                    &serde_json::to_vec(&got).expect("serializes"),
                )?;
                got
            }
        };
        let r = Arc::new(Resolution {
            arch,
            packages,
            below,
            merged_usr,
            usr_links,
        });
        self.resolved
            .borrow_mut()
            .insert(name.to_string(), Arc::clone(&r));
        Ok(r)
    }

    /// Resolves a deb layer's packages against its repositories' indexes
    /// (fetched when not cached).
    fn resolve_now(
        &self,
        cache: &DebCache,
        def: &LayerDef,
        deb: &DebSource,
        releases: &[(Repository, Digest)],
        (db_key, arch): (Digest, &str),
        below: &[Installed],
    ) -> Result<Vec<Selected>> {
        let releases = releases
            .iter()
            .map(|(repo, _)| self.release(cache, repo))
            .collect::<Result<Vec<_>>>()?;
        let db = self.db(cache, db_key, releases, arch)?;
        resolve(&db, &deb.packages, below).map_err(|e| {
            Error::invalid(
                "Debian packages",
                format!("{} key source.deb.packages", def.rel),
                e,
            )
        })
    }

    fn release(&self, cache: &DebCache, repo: &Repository) -> Result<Release> {
        let k = (repo.uri.clone(), repo.suite.clone());
        if let Some(r) = self.releases.borrow().get(&k) {
            let mut r = r.clone();
            r.repo = repo.clone();
            return Ok(r);
        }
        let r = cache.release(repo, self.refresh)?;
        self.releases.borrow_mut().insert(k, r.clone());
        Ok(r)
    }

    fn db(
        &self,
        cache: &DebCache,
        key: Digest,
        releases: Vec<Release>,
        arch: &str,
    ) -> Result<Rc<PackageDb>> {
        if let Some(db) = self.dbs.borrow().get(&key) {
            return Ok(Rc::clone(db));
        }
        let db = Rc::new(PackageDb::load(cache, releases, arch)?);
        self.dbs.borrow_mut().insert(key, Rc::clone(&db));
        Ok(db)
    }

    /// The packages a non-deb layer carries, from its dpkg status
    /// (`/var/lib/dpkg/status` and `/var/lib/dpkg/status.d/*`), and what
    /// its `/bin` is (a link, a directory, or absent).
    fn dpkg_status(&self, def: &LayerDef) -> Result<(Vec<Installed>, Option<bool>)> {
        let name = def.file.layer.name.as_str();
        let mut texts: Vec<(String, Vec<u8>)> = Vec::new();
        let mut bin = None;
        let mut visit = |c: super::source::Content<'_>| match c {
            super::source::Content::Entries(entries) => {
                for e in entries {
                    let p = String::from_utf8_lossy(&e.path).into_owned();
                    if p == "bin" {
                        bin = Some(matches!(e.kind, crate::layer::EntryKind::Symlink(_)));
                    }
                    if let crate::layer::EntryKind::File { source, .. } = &e.kind
                        && is_status_path(&p)
                    {
                        texts.push((
                            p,
                            std::fs::read(source).map_err(|er| Error::io(source, er))?,
                        ));
                    }
                }
                Ok(())
            }
            super::source::Content::Tar(r, label) => scan_status(r, label, &mut texts, &mut bin),
        };
        super::source::of(def).contents(def, self.ctx, self, &mut visit)?;
        // A later status file replaces an earlier one of the same path.
        let mut by_path: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (p, t) in texts {
            by_path.insert(p, t);
        }
        let mut out = Vec::new();
        for (p, t) in by_path {
            let mut ps = Paragraphs::new(&t[..], false);
            while let Some(para) = ps.next_paragraph().map_err(|e| {
                Error::invalid("dpkg status", format!("layer {name}: /{p}"), e.to_string())
            })? {
                let installed = para.get("Status").is_none_or(|s| s.ends_with(" installed"));
                let (Some(n), Some(v)) = (para.get("Package"), para.get("Version")) else {
                    continue;
                };
                if installed {
                    let conflicts = [para.get("Conflicts"), para.get("Breaks")]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(", ");
                    out.push(Installed {
                        name: n.to_string(),
                        version: v.to_string(),
                        arch: para.get("Architecture").unwrap_or("").to_string(),
                        provides: para.get("Provides").unwrap_or("").to_string(),
                        conflicts,
                        layer: name.to_string(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        Ok((out, bin))
    }
}

fn installed_of(p: &Selected, layer: &str) -> Installed {
    Installed {
        name: p.name.clone(),
        version: p.version.clone(),
        arch: p.arch.clone(),
        provides: p.provides.clone(),
        conflicts: p.conflicts.clone(),
        layer: layer.to_string(),
    }
}

fn is_status_path(p: &str) -> bool {
    p == "var/lib/dpkg/status"
        || (p.starts_with("var/lib/dpkg/status.d/") && !p.ends_with(".md5sums"))
}

fn scan_status(
    r: impl Read,
    label: &std::path::Path,
    out: &mut Vec<(String, Vec<u8>)>,
    bin: &mut Option<bool>,
) -> Result<()> {
    crate::tarsafe::for_each_entry(label, r, |name, e| {
        if name == "bin" {
            *bin = Some(e.header().entry_type().is_symlink());
        }
        if e.header().entry_type().is_file() && is_status_path(name) {
            let mut buf = Vec::new();
            e.take(64 << 20)
                .read_to_end(&mut buf)
                .map_err(|er| Error::from_pipeline(label, er))?;
            out.push((name.to_string(), buf));
        }
        Ok(())
    })
}

/// The repositories a deb layer uses: its own, or the machine's apt
/// sources narrowed to `suite` and `components`.
pub fn repositories(def: &LayerDef, deb: &DebSource) -> Result<Vec<Repository>> {
    let at = |k: &str| format!("{} key source.deb.{k}", def.rel);
    if !deb.repositories.is_empty() {
        let mut out = Vec::new();
        for (i, r) in deb.repositories.iter().enumerate() {
            let signed_by = match &r.signed_by {
                None => SignedBy::Default,
                Some(p) => {
                    let path = def.dir.join(p);
                    if !path.is_file() {
                        return Err(Error::invalid(
                            "layer",
                            at("repositories.signed_by"),
                            format!("keyring {} does not exist", path.display()),
                        ));
                    }
                    SignedBy::Keyrings(vec![path])
                }
            };
            let repo = Repository {
                uri: r.uri.trim_end_matches('/').to_string(),
                suite: r.suite.clone(),
                components: r.components.clone(),
                signed_by,
                architectures: Vec::new(),
                origin: format!("{} repositories[{i}]", def.rel),
            };
            let text = format!(
                "deb {} {} {}",
                repo.uri,
                repo.suite,
                repo.components.join(" ")
            );
            // The same shape checks as the machine's sources.
            crate::deb::sources::parse_list(&text, &repo.origin)
                .map_err(|e| Error::invalid("layer", at("repositories"), e.to_string()))?;
            out.push(repo);
        }
        return Ok(out);
    }
    let apt = crate::deb::sources::apt_dir();
    let all = system_repositories(&apt)?;
    let mut out: Vec<Repository> = all
        .iter()
        .filter(|r| {
            deb.suite
                .as_ref()
                .is_none_or(|s| in_suite(&r.suite, s, deb.updates))
        })
        .cloned()
        .map(|mut r| {
            if let Some(c) = &deb.components {
                r.components.retain(|x| c.contains(x));
            }
            r
        })
        .filter(|r| r.is_flat() || !r.components.is_empty())
        .collect();
    if out.is_empty() {
        let suites: BTreeSet<&str> = all.iter().map(|r| r.suite.as_str()).collect();
        return Err(Error::invalid(
            "layer",
            at(if deb.suite.is_some() {
                "suite"
            } else {
                "repositories"
            }),
            if all.is_empty() {
                format!(
                    "{} configures no deb repository; add [[source.deb.repositories]]",
                    apt.display()
                )
            } else {
                format!(
                    "no apt source of this machine matches (suites configured: {}); add [[source.deb.repositories]]",
                    suites.into_iter().collect::<Vec<_>>().join(", ")
                )
            },
        ));
    }
    out.dedup();
    Ok(out)
}

/// Whether an apt entry of suite `entry` belongs to `suite`: the suite
/// itself, and with `updates` its update and security pockets (`-updates`,
/// `-security`, and the older `SUITE/updates` security layout).
fn in_suite(entry: &str, suite: &str, updates: bool) -> bool {
    entry == suite
        || updates
            && entry
                .strip_prefix(suite)
                .is_some_and(|rest| ["-updates", "-security", "/updates"].contains(&rest))
}

/// Downloads the .debs of `packages` that the cache lacks (4 at a time),
/// each checked against the SHA256 of its index.
pub fn fetch_all(
    cache: &DebCache,
    packages: &[Selected],
    progress: &crate::progress::LayerProgress,
) -> Result<()> {
    let missing: Vec<&Selected> = packages
        .iter()
        .filter(|p| !cache.cas().has_blob(&p.sha256))
        .collect();
    if !missing.is_empty() {
        progress.phase(
            &format!("downloading {} .deb(s)", missing.len()),
            Some(missing.iter().map(|p| p.size).sum()),
        );
    }
    let fetched = std::sync::atomic::AtomicU64::new(0);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4.min(missing.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(p) = missing.get(i) else { break };
                    let url = crate::deb::sources::pool_url(&p.repo, &p.filename);
                    let what = format!("package {} {}", p.name, p.version);
                    match cache.fetch_file(&url, &p.sha256, p.size, &what) {
                        Ok(()) => progress.bytes(
                            fetched.fetch_add(p.size, std::sync::atomic::Ordering::Relaxed)
                                + p.size,
                        ),
                        Err(e) => errors.lock().expect("not poisoned").push((i, e)),
                    }
                }
            });
        }
    });
    let mut errors = errors.into_inner().expect("not poisoned");
    errors.sort_by_key(|(i, _)| *i);
    match errors.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// Writes the layer(s) of a resolved deb layer: one layer, or one per
/// package (in dependency order). `builder` makes the layer builder
/// (compression, mtime, annotations) for a group of packages.
pub fn build(
    ctx: &Context,
    res: &Resolution,
    per_package: bool,
    builder: impl Fn(&[Selected]) -> LayerBuilder,
    progress: &crate::progress::LayerProgress,
) -> Result<Vec<StoreLayer>> {
    let cache = DebCache::new(&ctx.store)?;
    fetch_all(&cache, &res.packages, progress)?;
    let groups: Vec<&[Selected]> = if per_package {
        res.packages.chunks(1).collect()
    } else {
        vec![&res.packages[..]]
    };
    let mut layers = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let spec = crate::deb::layer::DebLayer {
            packages: g,
            arch: &res.arch,
            usr_links: res.usr_links && i == 0,
            merged_usr: res.merged_usr,
        };
        layers.push(builder(g).build_stream(&ctx.store, |tar| {
            crate::deb::layer::write(tar, &cache, &spec)
        })?);
    }
    Ok(layers)
}

/// Remembers the facts of each package of `res` (its dpkg status
/// paragraph and what is likely missing when its scripts do not run),
/// read while the .debs are at hand, so cached builds and other machines
/// can say it too.
pub fn record_script_warnings(ctx: &Context, res: &Resolution) -> Result<()> {
    super::debfacts::of_all(&ctx.store, &res.packages).map(drop)
}

/// The packages of a deb layer whose maintainer scripts did not run and
/// what is likely missing, one entry each (`None` when none has scripts).
/// From the packages' facts; without them, the packages strata knows to
/// matter.
pub fn script_warnings(ctx: &Context, res: &Resolution) -> Option<Vec<String>> {
    let known: Option<Vec<_>> = res
        .packages
        .iter()
        .map(|p| super::debfacts::lookup(&ctx.store, &p.sha256))
        .collect();
    let lines: Vec<String> = match known {
        Some(facts) => facts.into_iter().filter_map(|f| f.warning).collect(),
        None => crate::deb::layer::postinst_warnings(&res.packages),
    };
    (!lines.is_empty()).then_some(lines)
}

/// Lists the files a resolved deb layer will contain (for the composition
/// checks), by writing its tar stream into a pipe read by `list`.
pub fn list(
    ctx: &Context,
    res: &Resolution,
    list: impl FnOnce(&mut dyn Read) -> Result<()>,
) -> Result<()> {
    let cache = DebCache::new(&ctx.store)?;
    fetch_all(&cache, &res.packages, &Default::default())?;
    let (mut reader, writer) = std::io::pipe().map_err(|e| Error::io("pipe", e))?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || -> Result<()> {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, writer);
            {
                let sink: &mut dyn std::io::Write = &mut w;
                let mut tar = crate::layer::TarEncoder::new(sink, 0);
                let spec = crate::deb::layer::DebLayer {
                    packages: &res.packages,
                    arch: &res.arch,
                    usr_links: res.usr_links,
                    merged_usr: res.merged_usr,
                };
                crate::deb::layer::write(&mut tar, &cache, &spec)?;
                tar.finish().map_err(|e| Error::io("pipe", e))?;
            }
            std::io::Write::flush(&mut w).map_err(|e| Error::io("pipe", e))?;
            Ok(())
        });
        let listed = list(&mut reader);
        // Drain so the producer never blocks on a reader that gave up.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
        drop(reader);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(Error::Unsupported("listing a deb layer panicked".into())));
        produced.and(listed)
    })
}

/// `/var/lib/dpkg/status` of an image layer (`None` when it has none),
/// cached by the layer's digest.
fn layer_status(ctx: &Context, layer: &dyn crate::layer::Layer) -> Result<Option<Vec<u8>>> {
    let d = layer.descriptor().digest;
    let path = ctx.store.root().join(".strata/deb/status").join(d.hex());
    if let Ok(b) = std::fs::read(&path) {
        return Ok(b.strip_prefix(b"+").map(<[u8]>::to_vec));
    }
    let label = PathBuf::from(format!("layer {d}"));
    let mut texts = Vec::new();
    let mut bin = None;
    scan_status(layer.open()?, &label, &mut texts, &mut bin)?;
    let status = texts
        .into_iter()
        .rev()
        .find(|(p, _)| p == "var/lib/dpkg/status")
        .map(|(_, t)| t);
    let mut record = Vec::new();
    if let Some(t) = &status {
        record.push(b'+');
        record.extend_from_slice(t);
    }
    crate::store::write_file_atomic(&path, &record)?;
    Ok(status)
}

/// The image's dpkg database layer, for images that contain dpkg: one
/// `/var/lib/dpkg/status` listing the base image's packages and every
/// package of the image's deb layers (by name; a deb layer's entry wins),
/// so `dpkg -l` works. Layers are shared between images, so this one small
/// layer on top is per image; it is cached by its inputs. `None` when the
/// image has no deb package or no dpkg.
pub fn status_layer(
    ctx: &Context,
    layer_cache: &super::cache::LayerCache,
    base: Option<&dyn crate::image::Image>,
    debs: &[&Resolution],
    compression: crate::layer::Compression,
    epoch: u64,
) -> Result<Option<StoreLayer>> {
    if debs.iter().all(|r| r.packages.is_empty()) {
        return Ok(None);
    }
    let mut base_text = Vec::new();
    if let Some(b) = base {
        for l in b.layers()? {
            if let Some(t) = layer_status(ctx, l.as_ref())? {
                base_text = t;
            }
        }
    }
    let base_paras = crate::deb::control::parse_all(&String::from_utf8_lossy(&base_text), false)
        .map_err(|e| {
            Error::invalid(
                "dpkg status",
                "the base image's /var/lib/dpkg/status",
                e.to_string(),
            )
        })?;
    let has_dpkg = debs
        .iter()
        .any(|r| r.packages.iter().any(|p| p.name == "dpkg"))
        || base_paras.iter().any(|p| p.get("Package") == Some("dpkg"));
    if !has_dpkg {
        return Ok(None);
    }
    let mut h = Hasher::new();
    h.update(format!("strata-dpkg-status-1 {compression} {epoch}").as_bytes());
    h.update(Digest::of(&base_text).hex().as_bytes());
    for r in debs {
        for p in &r.packages {
            h.update(format!("\n{} {}", p.name, p.sha256).as_bytes());
        }
    }
    let key = h.finish();
    if let Some(c) = layer_cache.get(&key) {
        return Ok(Some(StoreLayer::new(
            ctx.store.clone(),
            c.descriptor,
            c.diff_id,
        )));
    }
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for p in &base_paras {
        if let Some(n) = p.get("Package") {
            by_name.insert(n.to_string(), p.to_text());
        }
    }
    for r in debs {
        let facts = super::debfacts::of_all(&ctx.store, &r.packages)?;
        for (p, f) in r.packages.iter().zip(facts) {
            by_name.insert(p.name.clone(), f.status);
        }
    }
    let text = by_name.into_values().collect::<Vec<_>>().join("\n");
    let layer = LayerBuilder::new()
        .compression(compression)
        .mtime(epoch)
        .annotation(super::source::annotations::NAME, "dpkg-status")
        .annotation(
            super::source::annotations::SOURCE,
            "dpkg-status:/var/lib/dpkg/status",
        )
        .build_stream(&ctx.store, |tar| {
            crate::deb::layer::write_file(
                tar,
                "var/lib/dpkg/status",
                text.as_bytes(),
                "dpkg status layer",
            )
        })?;
    layer_cache.put(
        &key,
        &super::cache::CachedLayer {
            descriptor: crate::layer::Layer::descriptor(&layer),
            diff_id: crate::layer::Layer::diff_id(&layer),
        },
    )?;
    Ok(Some(layer))
}

#[cfg(test)]
mod suite_tests {
    use super::in_suite;

    #[test]
    fn a_release_suite_takes_its_update_and_security_pockets_unless_told_not_to() {
        for e in [
            "bookworm",
            "bookworm-updates",
            "bookworm-security",
            "bookworm/updates",
        ] {
            assert!(in_suite(e, "bookworm", true), "{e}");
        }
        assert!(in_suite("bookworm", "bookworm", false));
        for e in ["bookworm-updates", "bookworm-security"] {
            assert!(!in_suite(e, "bookworm", false), "{e}");
        }
        for e in [
            "bookworm-backports",
            "trixie",
            "bookworm-proposed-updates",
            "bookwormx",
        ] {
            assert!(!in_suite(e, "bookworm", true), "{e}");
        }
    }
}
