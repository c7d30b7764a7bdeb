//! Reading tar archives without trusting them.
//!
//! [`safe_entry_name`] is the one check every tar read in strata goes
//! through: absolute names, `..` components and NUL bytes are refused with
//! an error naming the archive and the entry. [`ArchiveIndex`] scans an
//! archive once and serves entries by name with positioned reads, so
//! several blobs can stream from one archive at once.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};

/// Normalizes a tar entry name (`./a//b/` → `a/b`), refusing names that
/// would land outside the extraction root.
pub fn safe_entry_name(archive: &Path, raw: &[u8]) -> Result<String> {
    let unsafe_path = |reason: &str| Error::UnsafePath {
        archive: archive.to_path_buf(),
        entry: String::from_utf8_lossy(raw).into_owned(),
        reason: reason.to_string(),
    };
    if raw.contains(&0) {
        return Err(unsafe_path("it contains a NUL byte"));
    }
    let s = std::str::from_utf8(raw).map_err(|_| unsafe_path("it is not valid UTF-8"))?;
    if s.starts_with('/') {
        return Err(unsafe_path("it is an absolute path"));
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(unsafe_path("it contains '..'")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Where an entry's content lies in the archive file.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    /// Byte offset of the content.
    pub offset: u64,
    /// Content length.
    pub size: u64,
}

/// An index of a tar archive's regular-file entries.
pub struct ArchiveIndex {
    path: PathBuf,
    file: Arc<File>,
    entries: HashMap<String, Span>,
}

impl ArchiveIndex {
    /// Scans `path`. Every entry name is checked with [`safe_entry_name`].
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).at(path)?;
        let mut entries = HashMap::new();
        {
            let mut ar = tar::Archive::new(&file);
            for entry in ar.entries_with_seek().map_err(|e| bad_archive(path, e))? {
                let entry = entry.map_err(|e| bad_archive(path, e))?;
                let raw = entry.path_bytes().into_owned();
                let name = safe_entry_name(path, &raw)?;
                if let Some(link) = entry.link_name_bytes() {
                    // Link entries are never followed, but one pointing out of
                    // the archive marks it as hostile.
                    if entry.header().entry_type().is_hard_link() {
                        safe_entry_name(path, &link)?;
                    }
                }
                if entry.header().entry_type().is_file() {
                    entries.insert(
                        name,
                        Span {
                            offset: entry.raw_file_position(),
                            size: entry.size(),
                        },
                    );
                }
            }
        }
        Ok(ArchiveIndex {
            path: path.to_path_buf(),
            file: Arc::new(file),
            entries,
        })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks up an entry; `name` is normalized and checked first, so a
    /// manifest naming `../x` is refused as unsafe rather than "not found".
    pub fn span(&self, name: &str) -> Result<Span> {
        let norm = safe_entry_name(&self.path, name.as_bytes())?;
        self.entries
            .get(&norm)
            .copied()
            .ok_or_else(|| Error::NotFound {
                what: format!("entry {name:?}"),
                location: self.path.display().to_string(),
                hint: String::new(),
            })
    }

    /// Streams an entry.
    pub fn entry(&self, name: &str) -> Result<SectionReader> {
        let span = self.span(name)?;
        Ok(SectionReader {
            file: Arc::clone(&self.file),
            pos: span.offset,
            end: span.offset + span.size,
        })
    }

    /// Reads a whole entry of at most `max` bytes.
    pub fn read(&self, name: &str, max: u64) -> Result<Vec<u8>> {
        let span = self.span(name)?;
        if span.size > max {
            return Err(Error::invalid(
                "archive entry",
                format!("{}:{name}", self.path.display()),
                format!("{} bytes is more than the {max} allowed", span.size),
            ));
        }
        let mut buf = Vec::with_capacity(span.size as usize);
        self.entry(name)?.read_to_end(&mut buf).at(&self.path)?;
        Ok(buf)
    }
}

fn bad_archive(path: &Path, e: io::Error) -> Error {
    Error::invalid("tar archive", path.display().to_string(), e.to_string())
}

/// A reader over one entry of an archive, using positioned reads.
pub struct SectionReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for SectionReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive is truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escapes() {
        let a = Path::new("x.tar");
        assert_eq!(safe_entry_name(a, b"./a//b/").unwrap(), "a/b");
        for bad in [&b"/etc/passwd"[..], b"../x", b"a/../../x", b"a\0b"] {
            let e = safe_entry_name(a, bad).unwrap_err().to_string();
            assert!(e.contains("unsafe path") && e.contains("x.tar"), "{e}");
        }
    }
}
