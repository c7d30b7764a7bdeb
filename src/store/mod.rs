//! The content store: an OCI image-layout directory.
//!
//! The store at `$STRATA_STORE` (or `--store`, or
//! `$XDG_DATA_HOME/strata/store`, or `~/.local/share/strata/store`) is a
//! plain OCI layout that skopeo or umoci can read. `oci:DIR` targets are
//! opened with the same type.
//!
//! * Blobs are written through [`BlobWriter`]: temp file in `blobs/`,
//!   hashed while written, verified, fsynced and renamed to
//!   `blobs/sha256/<hex>`.
//! * Tags are `org.opencontainers.image.ref.name` annotations in
//!   `index.json`. Every update takes an exclusive `flock` on the layout
//!   directory and replaces `index.json` atomically, so concurrent strata
//!   processes lose no tag.
//! * Reads verify: [`Store::open_blob`] checks the digest at end of stream and
//!   [`Store::read_blob`] before returning.

mod blob;
mod maintenance;

pub use blob::BlobWriter;
pub use maintenance::{FsckReport, GcReport};

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, VerifyingReader};
use crate::error::{Error, IoContext, Result};
use crate::json;
use crate::spec::{Descriptor, Index, REF_NAME};

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI image-layout directory used as a content store.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The default store location: `$STRATA_STORE`, else
    /// `$XDG_DATA_HOME/strata/store`, else `~/.local/share/strata/store`.
    pub fn default_path() -> Result<PathBuf> {
        if let Some(p) = std::env::var_os("STRATA_STORE").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        if let Some(p) = std::env::var_os("XDG_DATA_HOME").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p).join("strata/store"));
        }
        match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
            Some(h) => Ok(PathBuf::from(h).join(".local/share/strata/store")),
            None => Err(Error::bad_input(
                "store location",
                "neither STRATA_STORE, XDG_DATA_HOME nor HOME is set; pass --store DIR",
            )),
        }
    }

    /// Opens the layout at `root`, creating an empty one if needed.
    pub fn open_or_create(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(root.join("blobs/sha256")).at(&root)?;
        let store = Store { root };
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            store.write_atomic("oci-layout", OCI_LAYOUT)?;
        }
        if !store.root.join("index.json").exists() {
            let _lock = store.lock()?;
            if !store.root.join("index.json").exists() {
                store.write_atomic("index.json", &json::to_canonical(&Index::default()))?;
            }
        }
        Ok(store)
    }

    /// Opens an existing layout, refusing a directory that is not one.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let layout = root.join("oci-layout");
        let bytes = fs::read(&layout).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound {
                    what: "oci-layout file".into(),
                    location: root.display().to_string(),
                    hint: " (not an OCI image layout)".into(),
                }
            } else {
                Error::io(&layout, e)
            }
        })?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid("oci-layout", layout.display().to_string(), e.to_string())
        })?;
        if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            return Err(Error::invalid(
                "oci-layout",
                layout.display().to_string(),
                "imageLayoutVersion must be \"1.0.0\"",
            ));
        }
        Ok(Store { root })
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest lives.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// True when the blob is present (its content is not checked).
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Opens a blob for streaming; the reader fails at end of stream when
    /// the content does not match `d` (or `size`, when given).
    pub fn open_blob(
        &self,
        d: &Digest,
        size: Option<u64>,
    ) -> Result<VerifyingReader<BufReader<File>>> {
        let path = self.blob_path(d);
        let f = File::open(&path).map_err(|e| self.blob_error(d, &path, e))?;
        Ok(VerifyingReader::new(
            BufReader::with_capacity(1 << 20, f),
            d.clone(),
            size,
            format!("blob {d} in {}", self.root.display()),
        ))
    }

    /// Reads a whole blob of at most `max` bytes, verified.
    pub fn read_blob(&self, d: &Digest, max: u64) -> Result<Vec<u8>> {
        let path = self.blob_path(d);
        let f = File::open(&path).map_err(|e| self.blob_error(d, &path, e))?;
        let len = f.metadata().at(&path)?.len();
        if len > max {
            return Err(Error::invalid(
                "blob",
                path.display().to_string(),
                format!("{len} bytes is more than the {max} allowed for this kind of document"),
            ));
        }
        let mut buf = Vec::with_capacity(len as usize);
        VerifyingReader::new(
            f,
            d.clone(),
            Some(len),
            format!("blob {d} in {}", self.root.display()),
        )
        .read_to_end(&mut buf)
        .at(&path)?;
        Ok(buf)
    }

    fn blob_error(&self, d: &Digest, path: &Path, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                what: format!("blob {d}"),
                location: self.root.display().to_string(),
                hint: " (if it was there when this command started, `strata store gc` removed it meanwhile: a short --grace removes blobs no tag holds yet; run this again)".into(),
            }
        } else {
            Error::io(path, e)
        }
    }

    /// Starts a new blob.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        BlobWriter::new(&self.root)
    }

    /// Stores `bytes`, returning their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::of(bytes);
        if self.has_blob(&d) {
            return Ok(d);
        }
        let mut w = self.blob_writer()?;
        w.write_all(bytes).at(self.root.join("blobs"))?;
        Ok(w.commit(None, "blob")?.0)
    }

    /// Streams `reader` into the store as blob `d`, refusing content that does
    /// not match. Does nothing when the blob is already present.
    pub fn put_verified(
        &self,
        mut reader: impl Read,
        d: &Digest,
        size: Option<u64>,
        what: &str,
    ) -> Result<()> {
        if self.has_blob(d) {
            return Ok(());
        }
        let mut w = self.blob_writer()?;
        std::io::copy(&mut reader, &mut w).map_err(|e| Error::from_pipeline(what, e))?;
        w.commit(Some((d, size)), what)?;
        Ok(())
    }

    /// Reads index.json.
    pub fn index(&self) -> Result<Index> {
        let path = self.root.join("index.json");
        let bytes = read_bounded(&path, crate::spec::MAX_MANIFEST_SIZE)?;
        Index::parse(&bytes, &path.display().to_string())
    }

    /// Updates index.json under an exclusive lock, replacing it atomically.
    pub fn update_index<R>(&self, f: impl FnOnce(&mut Index) -> Result<R>) -> Result<R> {
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let before = json::to_canonical(&index);
        let r = f(&mut index)?;
        let after = json::to_canonical(&index);
        // Nothing changed (a tag set to where it points): no write, no fsync.
        if after != before {
            self.write_atomic("index.json", &after)?;
        }
        Ok(r)
    }

    /// All tags, sorted by name.
    pub fn tags(&self) -> Result<Vec<(String, Descriptor)>> {
        let idx = self.index()?;
        let mut v: Vec<_> = idx
            .tags()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }

    /// Points tag `name` at `desc`, replacing any previous target.
    pub fn set_tag(&self, name: &str, desc: &Descriptor) -> Result<()> {
        let mut desc = desc.clone();
        desc.annotations.insert(REF_NAME.into(), name.into());
        self.update_index(|idx| {
            let same =
                |d: &Descriptor| d.annotations.get(REF_NAME).map(String::as_str) == Some(name);
            if idx.manifests.iter().filter(|d| same(d)).eq([&desc]) {
                return Ok(());
            }
            idx.manifests.retain(|d| !same(d));
            idx.manifests.push(desc);
            Ok(())
        })
    }

    /// Removes a tag; returns whether it existed.
    pub fn remove_tag(&self, name: &str) -> Result<bool> {
        self.update_index(|idx| {
            let before = idx.manifests.len();
            idx.manifests
                .retain(|d| d.annotations.get(REF_NAME).map(String::as_str) != Some(name));
            Ok(idx.manifests.len() != before)
        })
    }

    /// The descriptor a tag points at.
    pub fn resolve(&self, name: &str) -> Result<Descriptor> {
        let tags = self.tags()?;
        if let Some((_, d)) = tags.iter().find(|(n, _)| n == name) {
            return Ok(d.clone());
        }
        let names: Vec<&str> = tags.iter().map(|(n, _)| n.as_str()).collect();
        Err(Error::NotFound {
            what: format!("tag {name:?}"),
            location: self.root.display().to_string(),
            hint: if names.is_empty() {
                " (it has no tags)".into()
            } else {
                format!(" (tags: {})", names.join(", "))
            },
        })
    }

    /// Takes the exclusive layout lock (flock on the directory itself, so
    /// no lock file is left in the layout).
    pub fn lock(&self) -> Result<StoreLock> {
        let dir = File::open(&self.root).at(&self.root)?;
        dir.lock().at(&self.root)?;
        Ok(StoreLock { _dir: dir })
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let dest = self.root.join(name);
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.tmp-"))
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(&self.root)
            .at(&self.root)?;
        tmp.write_all(bytes).at(tmp.path())?;
        tmp.as_file().sync_all().at(tmp.path())?;
        tmp.persist(&dest).map_err(|e| Error::io(&dest, e.error))?;
        blob::sync_dir(&self.root)
    }
}

/// Replaces `path` with `bytes` atomically (a temp file in the same
/// directory, renamed over it), creating the directory if needed: for the
/// small records strata keeps beside the layout (caches, pointers). Two
/// writers never share a temp file.
pub(crate) fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("a file path has a parent");
    fs::create_dir_all(dir).at(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .at(dir)?;
    tmp.write_all(bytes).at(tmp.path())?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Held while index.json is being updated; released on drop.
pub struct StoreLock {
    _dir: File,
}

/// Reads a file after checking it is at most `max` bytes.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    let f = File::open(path).at(path)?;
    let len = f.metadata().at(path)?.len();
    if len > max {
        return Err(Error::invalid(
            "document",
            path.display().to_string(),
            format!("{len} bytes is more than the {max} allowed"),
        ));
    }
    let mut buf = Vec::with_capacity(len as usize);
    f.take(max + 1).read_to_end(&mut buf).at(path)?;
    Ok(buf)
}
