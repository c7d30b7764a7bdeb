//! The one-pass layer writer: tar → hasher (diff_id) → compressor →
//! hasher (digest) → temp blob in the store → verify, fsync, rename.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::Layer;
use super::compress::{Compression, Encoder, encoder};
use super::tar::TarEncoder;
use super::walk::{Entry, EntryKind, Mapping, walk};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::spec::Descriptor;
use crate::store::Store;

/// Where a layer's tar stream is written: hashed (diff_id) and compressed
/// into a blob writer.
type LayerSink = Box<dyn Encoder<crate::store::BlobWriter>>;

/// Version of strata's layer byte format (tar header policy, gzip block
/// layout). Part of every layer cache key: bump it when bytes change.
pub const LAYER_FORMAT_VERSION: u32 = 1;

/// `SOURCE_DATE_EPOCH` as seconds, or 0 when unset. Every tar entry gets
/// this mtime, so layers do not depend on when files were checked out.
pub fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse::<u64>().map_err(|_| {
            Error::bad_input(
                "SOURCE_DATE_EPOCH",
                format!("{v:?} is not a whole number of seconds since 1970"),
            )
        }),
        _ => Ok(0),
    }
}

/// Builds one layer from source → destination mappings.
///
/// Determinism: entries are sorted, every mtime is the same
/// (`SOURCE_DATE_EPOCH` or 0), uid/gid come from the mapping (0:0 by
/// default), uname/gname are empty and xattrs are off unless asked for. The
/// bytes do not depend on the thread count.
#[derive(Clone, Debug)]
pub struct LayerBuilder {
    mappings: Vec<Mapping>,
    compression: Compression,
    threads: usize,
    mtime: Option<u64>,
    xattrs: bool,
    annotations: BTreeMap<String, String>,
    progress: crate::progress::LayerProgress,
    phase: &'static str,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    /// gzip, all cores, mtime from `SOURCE_DATE_EPOCH` (0 when unset).
    pub fn new() -> Self {
        LayerBuilder {
            mappings: Vec::new(),
            compression: Compression::gzip(),
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            mtime: None,
            xattrs: false,
            annotations: BTreeMap::new(),
            progress: Default::default(),
            phase: "compressing",
        }
    }
    /// Reports writing the layer to `p`, as `phase` with the compressed
    /// bytes written.
    pub fn progress(mut self, p: crate::progress::LayerProgress, phase: &'static str) -> Self {
        self.progress = p;
        self.phase = phase;
        self
    }
    /// Adds a mapping.
    pub fn mapping(mut self, m: Mapping) -> Self {
        self.mappings.push(m);
        self
    }
    /// Sets the compression.
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }
    /// Sets the number of compression threads (≥ 1); the bytes do not change.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }
    /// Sets the mtime written for every entry.
    pub fn mtime(mut self, secs: u64) -> Self {
        self.mtime = Some(secs);
        self
    }
    /// Records extended attributes as PAX `SCHILY.xattr.*` records.
    pub fn xattrs(mut self, on: bool) -> Self {
        self.xattrs = on;
        self
    }
    /// Adds an annotation to the layer's descriptor.
    pub fn annotation(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.annotations.insert(k.into(), v.into());
        self
    }

    /// Walks the sources and writes the layer into `store` in one pass.
    pub fn build(&self, store: &Store) -> Result<StoreLayer> {
        let mtime = match self.mtime {
            Some(m) => m,
            None => source_date_epoch()?,
        };
        // Sources are checked here, before the blob writer exists; the
        // walk then runs alongside the compression.
        let entries = walk(&self.mappings, self.xattrs)?;
        let blob_dir = store.root().join("blobs");
        self.write_layer(store, |hashed| {
            let mut tar = TarEncoder::new(hashed, mtime);
            for e in entries {
                write_entry(&mut tar, &e?)?;
            }
            tar.finish().at(&blob_dir)
        })
    }

    /// The one-pass pipeline: `fill` writes the tar stream into a hasher
    /// (diff_id) over the compressor over the store's blob writer (digest);
    /// the blob is then committed under its digest.
    fn write_layer(
        &self,
        store: &Store,
        fill: impl FnOnce(LayerSink) -> Result<LayerSink>,
    ) -> Result<StoreLayer> {
        let blob_dir = store.root().join("blobs");
        self.progress.phase(self.phase, None);
        let out = store.blob_writer()?.with_progress(self.progress.clone());
        let enc = encoder(self.compression, self.threads, out).at(&blob_dir)?;
        let (blob, diff_id, _) = fill(enc)?.finish().at(&blob_dir)?;
        let (digest, size) = blob.commit(None, "layer")?;
        let mut desc = Descriptor::new(self.compression.media_type(), digest, size);
        desc.annotations = self.annotations.clone();
        Ok(StoreLayer {
            store: store.clone(),
            desc,
            diff_id,
        })
    }
}

impl LayerBuilder {
    /// Writes a layer whose entries `fill` emits through strata's tar
    /// header policy (e.g. entries re-read from another archive), in the
    /// same one pass: diff_id, compression, digest, crash-safe commit.
    pub fn build_stream(
        &self,
        store: &Store,
        fill: impl FnOnce(&mut TarEncoder<&mut dyn Write>) -> Result<()>,
    ) -> Result<StoreLayer> {
        let mtime = match self.mtime {
            Some(m) => m,
            None => source_date_epoch()?,
        };
        let blob_dir = store.root().join("blobs");
        self.write_layer(store, |mut hashed| {
            {
                let w: &mut dyn Write = &mut hashed;
                let mut tar = TarEncoder::new(w, mtime);
                fill(&mut tar)?;
                tar.finish().at(&blob_dir)?;
            }
            Ok(hashed)
        })
    }

    /// Compresses an uncompressed layer tar stream as it is (no entry is
    /// rewritten): the layer's diff_id is the stream's digest. For layers
    /// taken from other images, whose entries were checked where they were
    /// made.
    pub fn compress_tar(&self, store: &Store, what: &str, mut r: impl Read) -> Result<StoreLayer> {
        self.write_layer(store, |mut hashed| {
            std::io::copy(&mut r, &mut hashed).map_err(|e| Error::from_pipeline(what, e))?;
            Ok(hashed)
        })
    }

    /// Makes a layer of an existing tarball (plain, gzip or zstd). Every
    /// entry is checked first with [`crate::tarsafe::LayerPolicy`] (no
    /// absolute paths or `..`, nothing below a symlink of the tarball,
    /// hardlinks only to earlier entries); the tar
    /// stream is then compressed as it is, so its diff_id is the digest of
    /// the uncompressed tarball. Mappings, mtime and owners do not apply.
    pub fn build_from_tar(&self, store: &Store, path: &Path) -> Result<StoreLayer> {
        let open = || -> Result<Box<dyn Read + Send>> {
            let f = File::open(path).at(path)?;
            super::decompress(f).at(path)
        };
        crate::tarsafe::for_each_entry(path, open()?, |_, _| Ok(()))?;
        self.write_layer(store, |mut hashed| {
            std::io::copy(&mut open()?, &mut hashed).map_err(|e| Error::from_pipeline(path, e))?;
            Ok(hashed)
        })
    }
}

fn write_entry(tar: &mut TarEncoder<LayerSink>, e: &Entry) -> Result<()> {
    let EntryKind::File {
        source,
        size,
        mtime,
        ..
    } = &e.kind
    else {
        return tar
            .header(e, 0)
            .map_err(|err| Error::from_pipeline(String::from_utf8_lossy(&e.path).as_ref(), err));
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(source)
        .at(source)?;
    // No fstat here: the checks after reading catch any change since the walk.
    tar.header(e, *size)
        .map_err(|err| Error::from_pipeline(source, err))?;
    let mut remaining = *size;
    let mut f = &file;
    loop {
        // Straight into the compression block, one byte more than is left:
        // a regular file that returns it has grown; one that returns fewer
        // bytes than asked is at its end.
        let (n, asked) = tar
            .get_mut()
            .read_from(&mut f, remaining.saturating_add(1))
            .map_err(|err| Error::from_pipeline(source, err))?;
        if n as u64 > remaining {
            return Err(Error::FileChanged {
                path: source.clone(),
                detail: format!("it grew beyond the {size} bytes it had when listed"),
            });
        }
        remaining -= n as u64;
        if n < asked {
            break;
        }
    }
    if remaining > 0 {
        return Err(Error::FileChanged {
            path: source.clone(),
            detail: format!(
                "it shrank: {} of {size} bytes could be read",
                size - remaining
            ),
        });
    }
    check_unchanged(&file, source, *size, *mtime)?;
    tar.pad(*size)
        .map_err(|err| Error::from_pipeline(source, err))
}

fn check_unchanged(f: &File, path: &Path, size: u64, mtime: (i64, i64)) -> Result<()> {
    let m = f.metadata().at(path)?;
    if !m.is_file() {
        return Err(Error::FileChanged {
            path: path.to_path_buf(),
            detail: "it is no longer a regular file".into(),
        });
    }
    if m.len() != size {
        return Err(Error::FileChanged {
            path: path.to_path_buf(),
            detail: format!("its size went from {size} to {} bytes", m.len()),
        });
    }
    if (m.mtime(), m.mtime_nsec()) != mtime {
        return Err(Error::FileChanged {
            path: path.to_path_buf(),
            detail: "its modification time changed".into(),
        });
    }
    Ok(())
}

/// A layer whose blob is in a store.
#[derive(Clone, Debug)]
pub struct StoreLayer {
    store: Store,
    desc: Descriptor,
    diff_id: Digest,
}

impl StoreLayer {
    /// A layer already in `store`, described by `desc` with `diff_id`.
    pub fn new(store: Store, desc: Descriptor, diff_id: Digest) -> Self {
        StoreLayer {
            store,
            desc,
            diff_id,
        }
    }
    /// The compressed digest.
    pub fn digest(&self) -> &Digest {
        &self.desc.digest
    }
    /// The compressed size.
    pub fn size(&self) -> u64 {
        self.desc.size
    }
}

impl Layer for StoreLayer {
    fn descriptor(&self) -> Descriptor {
        self.desc.clone()
    }
    fn diff_id(&self) -> Digest {
        self.diff_id.clone()
    }
    fn open(&self) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(
            self.store
                .open_blob(&self.desc.digest, Some(self.desc.size))?,
        ))
    }
    fn open_for_push(&self) -> Result<Box<dyn Read + Send>> {
        let path = self.store.blob_path(&self.desc.digest);
        let f = File::open(&path).at(&path)?;
        Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f)))
    }
}
