//! A registry repository as the shared build cache.
//!
//! One record per layer key, an OCI artifact manifest tagged
//! `NAME.KEYHEX` in the cache repository:
//!
//! - config: the record (`application/vnd.strata.layer-record.v1+json`):
//!   format version, key, layer name and version, the layer's blob
//!   descriptors (annotations included) and diff_ids;
//! - layers: the layer's blobs themselves (so the registry refuses a
//!   record whose blobs it lacks, keeps them referenced, and other
//!   repositories can mount them), then the file listing `check` reads,
//!   the inputs summary `plan` diffs and, for deb layers, the packages
//!   with their dpkg status paragraphs (so the image's dpkg database is
//!   written without the .debs), each zstd-compressed.
//!
//! The bytes depend only on the layer (no time, no host), so jobs that write
//! the same key at once write the same manifest. A record that cannot be
//! read, whose blobs are missing, whose listing fails its digest, that
//! names another key or layer, or that a newer strata wrote is a miss with a
//! warning, never an error. An unreachable cache is one warning and the
//! build goes on without it; refused writes turn the cache read-only.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{BlobSource, Image, SourceLayer};
use crate::layer::{Layer, StoreLayer};
use crate::media;
use crate::registry::api::Repo;
use crate::registry::pull::RegistryBlobs;
use crate::registry::{Client, RegistryRef};
use crate::spec::{Descriptor, Manifest};
use crate::store::Store;

/// The record's media type (and the manifest's artifactType).
pub const RECORD_TYPE: &str = "application/vnd.strata.layer-record.v1+json";
/// A zstd-compressed `strata-listing 2` file.
pub const LISTING_TYPE: &str = "application/vnd.strata.listing.v2+zstd";
/// A zstd-compressed inputs summary (JSON).
pub const INPUTS_TYPE: &str = "application/vnd.strata.inputs.v1+zstd";
/// A deb layer's packages with their dpkg status paragraphs (zstd JSON,
/// [`PackageEntry`](super::debfacts::PackageEntry) list).
pub const PACKAGES_TYPE: &str = "application/vnd.strata.deb-packages.v1+zstd";
/// The record format this strata writes and reads.
pub const RECORD_FORMAT: u32 = 1;
const MAX_RECORD: u64 = 1 << 20;
const MAX_AUX: u64 = 64 << 20;
const MAX_AUX_PLAIN: u64 = 512 << 20;

/// What a record says of one layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// [`RECORD_FORMAT`] when written.
    pub format: u32,
    /// The layer key.
    pub key: Digest,
    /// The layer's name.
    pub layer: String,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its blobs, in order, with their annotations.
    pub blobs: Vec<Descriptor>,
    /// Their diff_ids.
    pub diff_ids: Vec<Digest>,
}

/// Counts for the build report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CacheReport {
    /// The cache repository.
    pub repository: String,
    /// Whether records were written (false: read-only or refused).
    pub writable: bool,
    /// Layers found in the cache.
    pub hits: usize,
    /// Layers looked up and not found (or not usable).
    pub misses: usize,
    /// Records written.
    pub recorded: usize,
    /// Bytes read from the cache (records, listings and layer blobs).
    pub bytes_downloaded: u64,
    /// Blob bytes uploaded to the cache.
    pub bytes_uploaded: u64,
}

/// The cache repository of a build.
pub struct RegistryCache {
    client: Arc<Client>,
    repo: RegistryRef,
    store: Store,
    writable: AtomicBool,
    disabled: AtomicBool,
    warnings: Mutex<Vec<String>>,
    hits: AtomicUsize,
    misses: AtomicUsize,
    recorded: AtomicUsize,
    down: Arc<AtomicU64>,
    up: AtomicU64,
    /// Bring a hit's listing into the store (off for `plan`).
    listings: AtomicBool,
    /// Record tags written, whose push times are not recorded yet.
    written: Mutex<Vec<String>>,
}

/// What a record carries besides the layer's blobs.
#[derive(Default)]
pub struct Extras<'a> {
    /// The layer's file listing (`check`).
    pub listing: Option<&'a Path>,
    /// Its inputs summary (`plan`).
    pub inputs: Option<&'a [u8]>,
    /// A deb layer's packages.
    pub packages: Option<Vec<super::debfacts::PackageEntry>>,
}

/// A layer found in the cache: its blobs, read from the registry (or the
/// store, when it has them) only when something reads them.
pub struct Hit {
    /// The layer's blobs.
    pub layers: Vec<Arc<dyn Layer>>,
}

impl RegistryCache {
    /// The cache at `reference` (`docker://HOST[:PORT]/REPO`).
    pub fn open(
        client: Arc<Client>,
        store: &Store,
        reference: &str,
        read_only: bool,
    ) -> Result<Self> {
        let r = parse_reference(reference)?;
        Ok(RegistryCache {
            client,
            repo: r,
            store: store.clone(),
            writable: AtomicBool::new(!read_only),
            disabled: AtomicBool::new(false),
            warnings: Mutex::default(),
            hits: AtomicUsize::new(0),
            misses: AtomicUsize::new(0),
            recorded: AtomicUsize::new(0),
            down: Arc::default(),
            up: AtomicU64::new(0),
            listings: AtomicBool::new(true),
            written: Mutex::default(),
        })
    }

    /// Looks records up without bringing their listings into the store
    /// (what `plan` needs: hit or miss).
    pub fn probe_only(&self) {
        self.listings.store(false, Ordering::Relaxed);
    }

    /// The repository (`HOST/REPO`).
    pub fn repository(&self) -> String {
        self.repo.to_string()
    }

    /// (API host, repository), for mounting its blobs elsewhere.
    pub fn mount_source(&self) -> (String, String) {
        (
            self.repo.api_host().to_string(),
            self.repo.repository.clone(),
        )
    }

    /// The tag of a layer's record: its name (as a tag allows) and key.
    pub fn tag(name: &str, key: &Digest) -> String {
        let mut n: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        if !n.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            n.insert(0, '_');
        }
        format!("{n}.{}", key.hex())
    }

    /// The warnings so far (each said once).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().expect("lock").clone()
    }

    /// The counts so far.
    pub fn report(&self) -> CacheReport {
        CacheReport {
            repository: self.repository(),
            writable: self.writable.load(Ordering::Relaxed)
                && !self.disabled.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            recorded: self.recorded.load(Ordering::Relaxed),
            bytes_downloaded: self.down.load(Ordering::Relaxed),
            bytes_uploaded: self.up.load(Ordering::Relaxed),
        }
    }

    fn warn(&self, w: String) {
        let mut ws = self.warnings.lock().expect("lock");
        if !ws.contains(&w) {
            ws.push(w);
        }
    }

    /// An error from the registry: an unreachable cache is switched off
    /// (one warning); anything else is a warning about this layer.
    fn trouble(&self, what: &str, e: Error) {
        let off = match e {
            Error::Connect { .. } => Some("is unreachable"),
            Error::Unauthorized { .. } => Some("refused to be read"),
            _ => None,
        };
        if let Some(why) = off {
            if !self.disabled.swap(true, Ordering::Relaxed) {
                self.warn(format!(
                    "cache {} {why} ({e}); building without it",
                    self.repository()
                ));
            }
            return;
        }
        self.warn(format!("cache {}: {what}: {e}", self.repository()));
    }

    /// Whether the cache is usable for reads.
    pub fn is_on(&self) -> bool {
        !self.disabled.load(Ordering::Relaxed)
    }

    /// Looks up layer `name`'s record for `key`. Misses (and records that
    /// cannot be trusted) are `None`; the reason is a warning when it is not
    /// a plain absence.
    pub fn lookup(&self, name: &str, key: &Digest) -> Option<Hit> {
        if !self.is_on() {
            return None;
        }
        let tag = Self::tag(name, key);
        match self.lookup_inner(name, key, &tag) {
            Ok(Some(hit)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(hit)
            }
            Ok(None) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                self.trouble(&format!("record {tag} not used"), e);
                None
            }
        }
    }

    fn lookup_inner(&self, name: &str, key: &Digest, tag: &str) -> Result<Option<Hit>> {
        let repo = Repo::new(&self.client, &self.repo);
        let m = match repo.get_manifest(tag) {
            Ok(m) => m,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        self.down.fetch_add(m.bytes.len() as u64, Ordering::Relaxed);
        let manifest = Manifest::parse(&m.bytes, &format!("{}:{tag}", self.repo))?;
        let bad = |why: String| Error::invalid("cache record", format!("{}:{tag}", self.repo), why);
        if manifest.artifact_type.as_deref() != Some(RECORD_TYPE)
            || manifest.config.media_type != RECORD_TYPE
        {
            return Err(bad("not a strata layer record".into()));
        }
        let raw = self.read_blob(&manifest.config, MAX_RECORD)?;
        let probe: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| bad(e.to_string()))?;
        let format = probe.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
        if format > u64::from(RECORD_FORMAT) {
            return Err(bad(format!(
                "written by a newer strata (record format {format}; this strata reads {RECORD_FORMAT})"
            )));
        }
        let record: Record = serde_json::from_slice(&raw).map_err(|e| bad(e.to_string()))?;
        if record.key != *key || record.layer != name {
            return Err(bad(format!(
                "it is for layer {:?} key {}, not layer {name:?} key {key}: refused",
                record.layer, record.key
            )));
        }
        if record.blobs.is_empty() || record.blobs.len() != record.diff_ids.len() {
            return Err(bad("its blobs and diff_ids do not match".into()));
        }
        for b in &record.blobs {
            if !manifest.layers.iter().any(|l| l.digest == b.digest) {
                return Err(bad(format!("blob {} is not in its manifest", b.digest)));
            }
            if !self.store.has_blob(&b.digest) && repo.blob_size(&b.digest)?.is_none() {
                return Err(bad(format!(
                    "its blob {} is missing from the registry",
                    b.digest
                )));
            }
        }
        if let Some(d) = manifest
            .layers
            .iter()
            .find(|l| l.media_type == PACKAGES_TYPE)
            .filter(|_| self.listings.load(Ordering::Relaxed))
        {
            let z = self.read_blob(d, MAX_AUX)?;
            let text = unzstd(&z).map_err(|e| bad(format!("package list: {e}")))?;
            let entries: Vec<super::debfacts::PackageEntry> =
                serde_json::from_slice(&text).map_err(|e| bad(format!("package list: {e}")))?;
            super::debfacts::remember(&self.store, &entries)
                .map_err(|e| bad(format!("package list: {e}")))?;
        }
        if let Some(listing) = manifest
            .layers
            .iter()
            .find(|l| l.media_type == LISTING_TYPE)
            .filter(|_| self.listings.load(Ordering::Relaxed))
        {
            let path = crate::compose::check::listing_path(&self.store, key);
            if !path.is_file() {
                let z = self.read_blob(listing, MAX_AUX)?;
                let text = unzstd(&z).map_err(|e| bad(format!("listing: {e}")))?;
                crate::store::write_file_atomic(&path, &text)?;
            }
        }
        let source = Arc::new(
            RegistryBlobs::new(Arc::clone(&self.client), self.repo.clone())
                .with_local(Some(self.store.clone())),
        ) as Arc<dyn BlobSource>;
        let counted = Arc::new(Counted {
            inner: source,
            store: self.store.clone(),
            down: Arc::clone(&self.down),
        }) as Arc<dyn BlobSource>;
        let layers = record
            .blobs
            .into_iter()
            .zip(record.diff_ids)
            .map(|(d, diff)| {
                Arc::new(SourceLayer::new(Arc::clone(&counted), d, diff)) as Arc<dyn Layer>
            })
            .collect();
        Ok(Some(Hit { layers }))
    }

    /// A small blob of the cache repository, verified.
    fn read_blob(&self, d: &Descriptor, max: u64) -> Result<Vec<u8>> {
        let source = RegistryBlobs::new(Arc::clone(&self.client), self.repo.clone());
        let bytes = source.read_blob(d, max)?;
        self.down.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }

    /// Whether a record for `key` is known to be in the cache: a marker in
    /// the store, else a HEAD of its tag.
    fn has_record(&self, name: &str, key: &Digest) -> Result<bool> {
        if self.marker(key).is_file() {
            return Ok(true);
        }
        let repo = Repo::new(&self.client, &self.repo);
        Ok(repo.head_manifest(&Self::tag(name, key))?.is_some())
    }

    fn marker(&self, key: &Digest) -> std::path::PathBuf {
        let repo = Digest::of(self.repository().as_bytes());
        self.store
            .root()
            .join(".strata/cache-records")
            .join(&repo.hex()[..16])
            .join(key.hex())
    }

    /// Records layer `name` (its `key`, `layers` and `extras`) in the
    /// cache, unless it is there already. Failures are warnings; a refused
    /// write makes the cache read-only.
    pub fn record(
        &self,
        name: &str,
        version: Option<&str>,
        key: &Digest,
        layers: &[Arc<dyn Layer>],
        extras: &Extras<'_>,
    ) {
        if !self.is_on() || !self.writable.load(Ordering::Relaxed) || layers.is_empty() {
            return;
        }
        match self.has_record(name, key).and_then(|there| {
            if there {
                return Ok(false);
            }
            self.write_record(name, version, key, layers, extras)
                .map(|_| true)
        }) {
            Ok(wrote) => {
                if wrote {
                    self.recorded.fetch_add(1, Ordering::Relaxed);
                }
                let m = self.marker(key);
                let _ = crate::store::write_file_atomic(&m, b"");
            }
            Err(e @ Error::Unauthorized { .. }) => {
                if self.writable.swap(false, Ordering::Relaxed) {
                    self.warn(format!(
                        "cache {} refused a write ({e}); using it read-only",
                        self.repository()
                    ));
                }
            }
            Err(e) => self.trouble(&format!("layer {name} not recorded"), e),
        }
    }

    /// Records the push times of the records written so far, in one write
    /// of the repository's push-times record (for `strata cache prune`).
    pub fn record_push_times(&self) {
        let tags = std::mem::take(&mut *self.written.lock().expect("lock"));
        if tags.is_empty() {
            return;
        }
        let now = crate::registry::pushtimes::now();
        if let Err(e) = crate::registry::pushtimes::record(&self.client, &self.repo, &tags, now) {
            self.warn(format!(
                "cache {}: the push times of {} record(s) were not recorded ({e}); strata cache prune ranks those by name",
                self.repository(),
                tags.len()
            ));
        }
    }

    fn write_record(
        &self,
        name: &str,
        version: Option<&str>,
        key: &Digest,
        layers: &[Arc<dyn Layer>],
        extras: &Extras<'_>,
    ) -> Result<()> {
        let record = Record {
            format: RECORD_FORMAT,
            key: key.clone(),
            layer: name.to_string(),
            version: version.map(str::to_string),
            blobs: layers.iter().map(|l| l.descriptor()).collect(),
            diff_ids: layers.iter().map(|l| l.diff_id()).collect(),
        };
        let raw = crate::json::to_canonical(&record);
        let mut blobs: Vec<Arc<dyn Layer>> = layers.to_vec();
        let mut aux = |bytes: &[u8], media_type: &str| -> Result<()> {
            let z = zstd::bulk::compress(bytes, 6).map_err(|e| Error::io("zstd", e))?;
            let digest = self.store.put_bytes(&z)?;
            let d = Descriptor::new(media_type, digest.clone(), z.len() as u64);
            blobs.push(Arc::new(StoreLayer::new(self.store.clone(), d, digest)));
            Ok(())
        };
        if let Some(p) = extras.listing
            && let Ok(text) = crate::store::read_bounded(p, MAX_AUX_PLAIN)
        {
            aux(&text, LISTING_TYPE)?;
        }
        if let Some(i) = extras.inputs {
            aux(i, INPUTS_TYPE)?;
        }
        if let Some(p) = &extras.packages {
            aux(&crate::json::to_canonical(p), PACKAGES_TYPE)?;
        }
        let mut annotations = BTreeMap::new();
        annotations.insert("dev.strata.cache.key".to_string(), key.to_string());
        annotations.insert("dev.strata.layer.name".to_string(), name.to_string());
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            artifact_type: Some(RECORD_TYPE.into()),
            config: Descriptor::new(RECORD_TYPE, Digest::of(&raw), raw.len() as u64),
            layers: blobs.iter().map(|l| l.descriptor()).collect(),
            subject: None,
            annotations,
            extra: BTreeMap::new(),
        };
        let image = RecordImage {
            manifest: manifest.to_bytes("cache record")?,
            config: raw,
            blobs,
            location: format!("cache record of layer {name}"),
        };
        let target = self.repo.with_tag(&Self::tag(name, key));
        let report =
            crate::registry::push::push_with(&self.client, &image, &target, &[], &[], None, false)?;
        self.up.fetch_add(report.bytes, Ordering::Relaxed);
        self.written
            .lock()
            .expect("lock")
            .push(Self::tag(name, key));
        Ok(())
    }
}

/// A cache reference, `docker://HOST[:PORT]/REPO` (no digest), as its
/// repository.
fn parse_reference(reference: &str) -> Result<RegistryRef> {
    let bad = |why: &str| {
        Error::bad_input(
            "cache",
            format!("{reference:?}: {why}; give docker://HOST[:PORT]/REPOSITORY"),
        )
    };
    let rest = reference
        .strip_prefix("docker://")
        .ok_or_else(|| bad("a cache is a registry repository"))?;
    let r = RegistryRef::parse(rest).map_err(|e| bad(&e.to_string()))?;
    if r.digest.is_some() {
        return Err(bad("a cache repository takes no digest"));
    }
    Ok(r.repository_only())
}

/// A record as an image, so the one push path writes it: blobs (skipped,
/// mounted or uploaded), config, manifest, tag.
struct RecordImage {
    manifest: Vec<u8>,
    config: Vec<u8>,
    blobs: Vec<Arc<dyn Layer>>,
    location: String,
}

impl Image for RecordImage {
    fn raw_manifest(&self) -> Result<Vec<u8>> {
        Ok(self.manifest.clone())
    }
    fn raw_config(&self) -> Result<Vec<u8>> {
        Ok(self.config.clone())
    }
    fn layers(&self) -> Result<Vec<Arc<dyn Layer>>> {
        Ok(self.blobs.clone())
    }
    fn location(&self) -> String {
        self.location.clone()
    }
}

/// Counts the bytes read from the registry (not those the store serves).
struct Counted {
    inner: Arc<dyn BlobSource>,
    store: Store,
    down: Arc<AtomicU64>,
}

impl BlobSource for Counted {
    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>> {
        if !self.store.has_blob(&desc.digest) {
            self.down.fetch_add(desc.size, Ordering::Relaxed);
        }
        self.inner.open_blob(desc)
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    fn mount_source(&self) -> Option<(String, String)> {
        self.inner.mount_source()
    }
}

fn unzstd(z: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(z)?
        .take(MAX_AUX_PLAIN + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > MAX_AUX_PLAIN {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "larger than allowed",
        ));
    }
    Ok(out)
}

/// Looks up every `(layer, key)` in parallel (a few small requests each).
pub fn lookup_all<'a>(
    cache: &RegistryCache,
    wanted: &[(&'a str, &Digest)],
) -> BTreeMap<&'a str, Hit> {
    let next = AtomicUsize::new(0);
    let found = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..8.min(wanted.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((name, key)) = wanted.get(i) else {
                        break;
                    };
                    let _span = crate::trace::span("cache", format!("lookup {name}"));
                    if let Some(h) = cache.lookup(name, key) {
                        found.lock().expect("lock").insert(*name, h);
                    }
                }
            });
        }
    });
    found.into_inner().expect("lock")
}

/// The layer names that have records among `tags` (`NAME.KEYHEX`).
fn record_names(tags: &[String]) -> std::collections::BTreeSet<String> {
    tags.iter()
        .filter_map(|t| {
            let (name, hex) = t.rsplit_once('.')?;
            (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| name.to_string())
        })
        .collect()
}

/// Applies a keep policy to the cache repository `reference`, per layer
/// name: the newest `keep` records of each layer (by the push times strata
/// records), and with `older_than`, also every record pushed within it.
/// Returns the fate of every record tag.
pub fn prune(
    client: &Arc<Client>,
    reference: &str,
    keep: usize,
    older_than: Option<std::time::Duration>,
    dry_run: bool,
) -> Result<Vec<crate::registry::prune::TagFate>> {
    let r = parse_reference(reference)?;
    let tags = Repo::new(client, &r).list_tags()?;
    let mut out = Vec::new();
    for name in record_names(&tags) {
        let pattern = format!("{name}.{}", "?".repeat(64));
        let opts = crate::registry::prune::PruneOptions {
            keep,
            older_than,
            matching: Some(pattern.clone()),
            protect: Vec::new(),
            dry_run,
        };
        out.extend(
            crate::registry::prune::prune(client, &r, &opts)?
                .into_iter()
                .filter(|f| crate::layer::glob_match(pattern.as_bytes(), f.tag.as_bytes())),
        );
    }
    Ok(out)
}
