//! Crash-safe blob writes: temp file → hash → verify → fsync → rename.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};

/// Streams a blob into a temp file inside the layout (same filesystem),
/// hashing and counting as it goes. [`BlobWriter::commit`] verifies, fsyncs
/// and renames the file to `blobs/sha256/<hex>`; dropping the writer
/// without committing removes the temp file, so a partial blob is never
/// visible under a digest.
pub struct BlobWriter {
    inner: HashingWriter<BufWriter<WriteBehind>>,
    blobs_dir: PathBuf,
    /// Removes the temp file if a signal ends strata.
    _registered: crate::cleanup::Registered,
    /// Told the bytes written, every MiB or so.
    progress: crate::progress::LayerProgress,
    reported: u64,
}

impl BlobWriter {
    pub(crate) fn new(layout_root: &Path) -> Result<Self> {
        let blobs = layout_root.join("blobs");
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(&blobs)
            .at(&blobs)?;
        let registered = crate::cleanup::register(tmp.path().to_path_buf());
        Ok(BlobWriter {
            _registered: registered,
            inner: HashingWriter::new(BufWriter::with_capacity(
                1 << 20,
                WriteBehind {
                    file: tmp,
                    written: 0,
                    started: 0,
                },
            )),
            blobs_dir: blobs.join("sha256"),
            progress: Default::default(),
            reported: 0,
        })
    }

    /// Reports the bytes written to `p` as they are written.
    pub fn with_progress(mut self, p: crate::progress::LayerProgress) -> Self {
        self.progress = p;
        self
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Finishes the blob, checking it against `expected` digest and size when
    /// given, and moves it under its digest. Returns the digest and size.
    pub fn commit(
        self,
        expected: Option<(&Digest, Option<u64>)>,
        what: &str,
    ) -> Result<(Digest, u64)> {
        let (buf, digest, size) = self.inner.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| Error::io(&self.blobs_dir, e.into_error()))?
            .file;
        if let Some((want, want_size)) = expected {
            if let Some(ws) = want_size
                && ws != size
            {
                return Err(Error::SizeMismatch {
                    what: what.to_string(),
                    expected: ws,
                    actual: size,
                });
            }
            if *want != digest {
                return Err(Error::DigestMismatch {
                    what: what.to_string(),
                    expected: want.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let dest = self.blobs_dir.join(digest.hex());
        if dest.exists() {
            // Same content is already there; the temp file is dropped.
            return Ok((digest, size));
        }
        tmp.as_file().sync_all().at(tmp.path())?;
        if !tmp.path().exists() {
            return Err(Error::Unsupported(format!(
                "{what} ({digest}): its temp file {} was removed while it was being written, so nothing was stored; was `strata store gc` run with a short --grace meanwhile? Run this again",
                tmp.path().display()
            )));
        }
        tmp.persist(&dest).map_err(|e| Error::io(&dest, e.error))?;
        sync_dir(&self.blobs_dir)?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if self.progress.is_on() && self.inner.len() - self.reported >= 1 << 20 {
            self.reported = self.inner.len();
            self.progress.bytes(self.reported);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Starts the kernel's writeback of a large blob as it is written, every
/// [`WRITE_BEHIND`] bytes, without waiting for it: the fsync at commit then
/// has little left to do, instead of flushing the whole blob at the end.
struct WriteBehind {
    file: NamedTempFile,
    written: u64,
    /// Bytes handed to writeback so far.
    started: u64,
}

const WRITE_BEHIND: u64 = 8 << 20;

impl Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= WRITE_BEHIND {
            use std::os::fd::AsRawFd;
            let len = self.written - self.started;
            // SAFETY: a valid open descriptor; the call only schedules I/O.
            // A failure (e.g. a filesystem without it) only loses the head
            // start: the fsync at commit still makes the blob durable.
            unsafe {
                libc::sync_file_range(
                    self.file.as_file().as_raw_fd(),
                    self.started as libc::off64_t,
                    len as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.started = self.written;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// fsyncs a directory so a rename inside it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_temp_file_removed_while_writing_is_named_as_such() {
        use std::io::Write;
        let t = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open_or_create(t.path()).unwrap();
        let mut w = store.blob_writer().unwrap();
        w.write_all(b"some bytes").unwrap();
        for e in std::fs::read_dir(t.path().join("blobs")).unwrap() {
            let p = e.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
            {
                std::fs::remove_file(p).unwrap();
            }
        }
        let err = w.commit(None, "layer x").unwrap_err().to_string();
        assert!(
            err.contains("layer x")
                && err.contains("was removed while it was being written")
                && err.contains("gc"),
            "{err}"
        );
        assert!(!store.has_blob(&crate::digest::Digest::of(b"some bytes")));
    }
}
