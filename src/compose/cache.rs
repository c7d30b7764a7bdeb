//! The build cache: layer cache keys → built layers, and a stat cache so
//! unchanged inputs are not re-read.
//!
//! Both live under `STORE/.strata/` (the store stays a valid OCI layout).
//! A cache entry whose blob is gone (after `store gc`) is a miss.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, hash_reader};
use crate::error::{IoContext, Result};
use crate::spec::{Descriptor, Platform};
use crate::store::Store;

/// A layer in the cache.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CachedLayer {
    /// Its descriptor (media type, digest, size, annotations).
    pub descriptor: Descriptor,
    /// Its diff_id.
    pub diff_id: Digest,
}

/// The layer cache of a store.
pub struct LayerCache {
    store: Store,
    dir: PathBuf,
}

impl LayerCache {
    /// The cache of `store`.
    pub fn new(store: &Store) -> Result<Self> {
        let dir = store.root().join(".strata/layers");
        std::fs::create_dir_all(&dir).at(&dir)?;
        Ok(LayerCache {
            store: store.clone(),
            dir,
        })
    }

    /// The layer built for `key`, if its blob is still in the store.
    pub fn get(&self, key: &Digest) -> Option<CachedLayer> {
        let bytes = std::fs::read(self.dir.join(key.hex())).ok()?;
        let c: CachedLayer = serde_json::from_slice(&bytes).ok()?;
        self.store.has_blob(&c.descriptor.digest).then_some(c)
    }

    /// Records what layer `name` was last built from for `platform`.
    pub fn put_inputs(&self, name: &str, platform: &Platform, json: &[u8]) -> Result<()> {
        let dir = self.dir.with_file_name("inputs");
        std::fs::create_dir_all(&dir).at(&dir)?;
        write_atomic(&dir, &inputs_file(name, platform), json)
    }

    /// Whether an inputs record exists for layer `name` on `platform`.
    pub fn has_inputs(&self, name: &str, platform: &Platform) -> bool {
        self.inputs_path(name, platform).is_file()
    }

    /// What layer `name` was last built from for `platform`, if recorded.
    pub fn inputs(&self, name: &str, platform: &Platform) -> Option<Vec<u8>> {
        std::fs::read(self.inputs_path(name, platform)).ok()
    }

    fn inputs_path(&self, name: &str, platform: &Platform) -> PathBuf {
        self.dir
            .with_file_name("inputs")
            .join(inputs_file(name, platform))
    }

    /// Records the layer built for `key`.
    pub fn put(&self, key: &Digest, layer: &CachedLayer) -> Result<()> {
        write_atomic(
            &self.dir,
            key.hex(),
            &serde_json::to_vec(layer).expect("serializes"),
        )
    }
}

/// The file of a layer's inputs record: one per platform, so that a
/// platform's rebuild is explained by what that platform was built from.
fn inputs_file(name: &str, platform: &Platform) -> String {
    format!("{name}@{}", platform.to_string().replace('/', "-"))
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    crate::store::write_file_atomic(&dir.join(name), bytes)
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct StatEntry {
    size: u64,
    mtime_ns: i128,
    ino: u64,
    dev: u64,
    /// Hex digest (kept as text: tens of thousands are loaded per build).
    digest: String,
}

/// How close to the start of a build a file's mtime may be and still be
/// trusted. A file written in the same timestamp tick as a stat could change
/// again without its (size, mtime) changing; such files are hashed on every
/// build until they are older than this (git's "racily clean" rule).
const RACY: Duration = Duration::from_secs(2);

/// Per layer: path, size, mtime, inode → content digest; and the stat
/// fingerprint of its inputs → its cache key.
///
/// The fingerprint hashes everything a copy layer's key hashes, but with
/// each file's (size, mtime, device, inode) in place of its content digest.
/// When it matches the one remembered for the layer, the key is known
/// without looking up a single file: a no-op build only walks. Otherwise
/// only that layer's per-file map is read (and, if it changed, written),
/// under `STORE/.strata/stat/SLOT.json`; one slot per layer directory, so
/// projects and checkouts sharing a store keep theirs apart.
pub struct StatCache {
    dir: PathBuf,
    slots: HashMap<String, Slot>,
    /// Layer slot → (fingerprint, key) to remember at save.
    remembered: Vec<(String, Digest, Digest)>,
    /// mtimes at or after this are too recent to trust.
    racy_after: (i64, i64),
    /// Files whose content was hashed (stat cache misses).
    pub hashed: usize,
}

#[derive(Default)]
struct Slot {
    entries: HashMap<String, StatEntry>,
    dirty: bool,
}

impl StatCache {
    /// The stat cache of `store` (each layer's part read on first use).
    pub fn load(store: &Store) -> Result<Self> {
        let dir = store.root().join(".strata");
        std::fs::create_dir_all(&dir).at(&dir)?;
        let since = SystemTime::now()
            .checked_sub(RACY)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .unwrap_or_default();
        Ok(StatCache {
            dir,
            slots: HashMap::new(),
            remembered: Vec::new(),
            racy_after: (since.as_secs() as i64, i64::from(since.subsec_nanos())),
            hashed: 0,
        })
    }

    /// The per-file map of `slot`, read from disk the first time (called
    /// once per input file: a hit allocates nothing).
    fn slot(&mut self, slot: &str) -> &mut Slot {
        if !self.slots.contains_key(slot) {
            let path = self.dir.join("stat").join(format!("{slot}.json"));
            let entries = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            self.slots.insert(
                slot.to_string(),
                Slot {
                    entries,
                    dirty: false,
                },
            );
        }
        self.slots.get_mut(slot).expect("inserted above")
    }

    /// Whether an mtime is too recent for its file to be trusted unread.
    pub fn is_racy(&self, mtime: (i64, i64)) -> bool {
        mtime >= self.racy_after
    }

    /// The content digest of `file` (an input of the layer in `slot`),
    /// re-reading it only when its size, mtime or inode changed.
    pub fn digest(&mut self, slot: &str, file: &Path) -> Result<Digest> {
        let m = std::fs::metadata(file).at(file)?;
        self.digest_with(
            slot,
            file,
            m.len(),
            (m.mtime(), m.mtime_nsec()),
            (m.dev(), m.ino()),
        )
    }

    /// [`StatCache::digest`] with the metadata already at hand (from a walk).
    pub fn digest_with(
        &mut self,
        slot: &str,
        file: &Path,
        size: u64,
        mtime: (i64, i64),
        id: (u64, u64),
    ) -> Result<Digest> {
        let mtime_ns = i128::from(mtime.0) * 1_000_000_000 + i128::from(mtime.1);
        let key = file.to_string_lossy();
        if let Some(e) = self.slot(slot).entries.get(key.as_ref())
            && e.size == size
            && e.mtime_ns == mtime_ns
            && (e.dev, e.ino) == id
            && let Ok(d) = Digest::from_hex(&e.digest)
        {
            return Ok(d);
        }
        let (digest, _) = hash_reader(std::fs::File::open(file).at(file)?).at(file)?;
        self.hashed += 1;
        if !self.is_racy(mtime) {
            let entry = StatEntry {
                size,
                mtime_ns,
                ino: id.1,
                dev: id.0,
                digest: digest.hex().to_string(),
            };
            let s = self.slot(slot);
            s.entries.insert(key.into_owned(), entry);
            s.dirty = true;
        }
        Ok(digest)
    }

    /// The key remembered for the layer in `slot` if its inputs' stat
    /// fingerprint is still `fingerprint`.
    pub fn remembered_key(&self, slot: &str, fingerprint: &Digest) -> Option<Digest> {
        let text = std::fs::read_to_string(self.dir.join("keys").join(slot)).ok()?;
        let (fp, key) = text.trim().split_once(' ')?;
        (fp == fingerprint.hex()).then(|| Digest::from_hex(key).ok())?
    }

    /// Remembers `key` for the layer in `slot` at save (only when none of
    /// its files is racy: the caller checks).
    pub fn remember_key(&mut self, slot: &str, fingerprint: Digest, key: Digest) {
        self.remembered.push((slot.to_string(), fingerprint, key));
    }

    /// Forgets changes (for read-only uses such as `plan`).
    pub fn discard(&mut self) {
        self.slots.clear();
        self.remembered.clear();
    }

    /// Writes what changed: remembered keys and changed per-file maps.
    pub fn save(&self) -> Result<()> {
        if !self.remembered.is_empty() {
            let dir = self.dir.join("keys");
            std::fs::create_dir_all(&dir).at(&dir)?;
            for (slot, fp, key) in &self.remembered {
                let line = format!("{} {}\n", fp.hex(), key.hex());
                write_atomic(&dir, slot, line.as_bytes())?;
            }
        }
        let dir = self.dir.join("stat");
        for (slot, s) in self.slots.iter().filter(|(_, s)| s.dirty) {
            std::fs::create_dir_all(&dir).at(&dir)?;
            write_atomic(
                &dir,
                &format!("{slot}.json"),
                &serde_json::to_vec(&s.entries).expect("serializes"),
            )?;
        }
        // The single stat cache of earlier versions is superseded.
        let _ = std::fs::remove_file(self.dir.join("statcache.json"));
        Ok(())
    }
}
