//! Writing tar archives (oci-archive, docker-archive) crash-safely: into a
//! temp file beside the destination, fsynced and renamed at the end.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, IoContext, Result};

/// A tar archive being written; nothing appears at the destination until
/// [`ArchiveWriter::commit`].
pub struct ArchiveWriter {
    out: BufWriter<NamedTempFile>,
    dest: PathBuf,
    pos: u64,
}

impl ArchiveWriter {
    /// Starts an archive that will be renamed to `dest`.
    pub fn create(dest: &Path) -> Result<Self> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(Error::NotFound {
                what: format!("directory {}", dir.display()),
                location: "the file system".into(),
                hint: format!(" (create it to write {})", dest.display()),
            });
        }
        let tmp = tempfile::Builder::new()
            .prefix(".strata-archive-")
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(&dir)
            .at(&dir)?;
        Ok(ArchiveWriter {
            out: BufWriter::with_capacity(1 << 20, tmp),
            dest: dest.to_path_buf(),
            pos: 0,
        })
    }

    pub(super) fn header(name: &str, size: u64, dir: bool) -> Result<tar::Header> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)
            .map_err(|e| Error::invalid("archive entry name", name, e.to_string()))?;
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        Ok(h)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).at(&self.dest)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.put(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    /// Adds a directory entry.
    pub fn add_dir(&mut self, name: &str) -> Result<()> {
        let h = Self::header(name, 0, true)?;
        self.put(h.as_bytes())
    }

    /// Adds a file from memory.
    pub fn add_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let h = Self::header(name, bytes.len() as u64, false)?;
        self.put(h.as_bytes())?;
        self.put(bytes)?;
        self.pad(bytes.len() as u64)
    }

    /// Adds a file of known `size` streamed from `r`.
    pub fn add_reader(&mut self, name: &str, size: u64, r: impl Read) -> Result<()> {
        let h = Self::header(name, size, false)?;
        self.put(h.as_bytes())?;
        let n = io::copy(&mut r.take(size), &mut self.out)
            .map_err(|e| Error::from_pipeline(name, e))?;
        if n != size {
            return Err(Error::SizeMismatch {
                what: name.to_string(),
                expected: size,
                actual: n,
            });
        }
        self.pos += n;
        self.pad(size)
    }

    /// Adds a file of unknown size streamed from `r`: the header is written
    /// once the size is known, by seeking back. Returns the size.
    pub fn add_stream(&mut self, name: &str, mut r: impl Read) -> Result<u64> {
        let start = self.pos;
        self.put(&[0u8; 512])?;
        let n = io::copy(&mut r, &mut self.out).map_err(|e| Error::from_pipeline(name, e))?;
        self.pos += n;
        self.pad(n)?;
        let h = Self::header(name, n, false)?;
        self.out.flush().at(&self.dest)?;
        let file: &mut File = self.out.get_mut().as_file_mut();
        file.seek(SeekFrom::Start(start)).at(&self.dest)?;
        file.write_all(h.as_bytes()).at(&self.dest)?;
        file.seek(SeekFrom::Start(self.pos)).at(&self.dest)?;
        Ok(n)
    }

    /// Ends the archive, fsyncs it and moves it to its destination.
    pub fn commit(mut self) -> Result<()> {
        self.put(&[0u8; 1024])?;
        let tmp = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&self.dest, e.into_error()))?;
        tmp.as_file().sync_all().at(tmp.path())?;
        tmp.persist(&self.dest)
            .map_err(|e| Error::io(&self.dest, e.error))?;
        Ok(())
    }
}
