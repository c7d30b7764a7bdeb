//! Reading tar archives without trusting them.
//!
//! [`safe_entry_name`] checks one name: absolute names, `..` components and
//! NUL bytes are refused with an error naming the archive and the entry.
//! [`LayerPolicy`] is the one check every reader of a layer's entries goes
//! through (source tarballs, Debian data.tar, `ls`, `validate`, composition
//! checks): on top of the names, it refuses an entry whose path passes
//! through a symlink of the same layer and a hardlink whose target is not
//! an earlier entry of the layer. [`ArchiveIndex`] scans an
//! archive once and serves entries by name with positioned reads, so
//! several blobs can stream from one archive at once.

mod framing;

pub use framing::{Framing, parse_pax};

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::text::escape;

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

/// The rules for the entries of one layer, applied in archive order.
///
/// A layer is unpacked entry by entry. An entry below a path that an
/// earlier entry of the same layer made a symlink (`a -> /`, then `a/f`)
/// would be written wherever the link points, and a hardlink is made to
/// whatever its target names at that moment, so both are refused here, as
/// are names that climb out (`..`, absolute). Symlink *targets* may point
/// anywhere: they are data, resolved inside the container's root by
/// runtimes, and strata never follows them when it reads a layer.
pub struct LayerPolicy {
    label: PathBuf,
    /// Every entry so far, with whether it is a directory.
    seen: HashMap<String, bool>,
    /// Paths that are symlinks at this point of the layer.
    symlinks: HashSet<String>,
    /// Directories entries so far were written in (listed or not).
    parents: HashSet<String>,
}

impl LayerPolicy {
    /// A policy for the layer called `label` in errors.
    pub fn new(label: impl Into<PathBuf>) -> Self {
        LayerPolicy {
            label: label.into(),
            seen: HashMap::new(),
            symlinks: HashSet::new(),
            parents: HashSet::new(),
        }
    }

    /// Checks `entry` against what came before it; returns its normalized
    /// name, or `None` for a global PAX header (no file of its own).
    pub fn check<R: Read>(&mut self, entry: &tar::Entry<'_, R>) -> Result<Option<String>> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(None);
        }
        let link = entry.link_name_bytes();
        self.check_parts(&entry.path_bytes(), kind, link.as_deref())
            .map(Some)
    }

    /// [`LayerPolicy::check`] for an entry given by its parts.
    pub fn check_parts(
        &mut self,
        raw: &[u8],
        kind: tar::EntryType,
        link: Option<&[u8]>,
    ) -> Result<String> {
        let name = safe_entry_name(&self.label, raw)?;
        let refuse = |reason: String| Error::UnsafePath {
            archive: self.label.clone(),
            entry: String::from_utf8_lossy(raw).into_owned(),
            reason,
        };
        if let Some(p) = self.symlink_above(&name) {
            return Err(refuse(format!(
                "its parent {} is a symlink in this layer, so it would be written wherever the link points",
                escape(p)
            )));
        }
        if name.is_empty() && !kind.is_dir() {
            return Err(refuse(
                "it names the root directory, which only a directory entry may".into(),
            ));
        }
        if let Some(p) = self.file_above(&name) {
            return Err(refuse(format!(
                "its parent {} is a file in this layer, not a directory",
                escape(p)
            )));
        }
        if kind.is_hard_link() {
            let target = safe_entry_name(&self.label, link.unwrap_or_default())?;
            if let Some(p) = self.symlink_above(&target) {
                return Err(refuse(format!(
                    "it is a hardlink to {}, which passes through the symlink {}",
                    escape(&target),
                    escape(p)
                )));
            }
            match self.seen.get(&target) {
                None => {
                    return Err(refuse(format!(
                        "it is a hardlink to {}, which is not an earlier entry of this layer",
                        escape(&target)
                    )));
                }
                Some(true) => {
                    return Err(refuse(format!(
                        "it is a hardlink to the directory {}",
                        escape(&target)
                    )));
                }
                Some(false) if target == name => {
                    return Err(refuse("it is a hardlink to itself".into()));
                }
                // Writing the link replaces the directory its target is in.
                Some(false) if target.starts_with(&format!("{name}/")) => {
                    return Err(refuse(format!(
                        "it is a hardlink to {}, which is inside the directory this entry replaces",
                        escape(&target)
                    )));
                }
                Some(false) => {}
            }
        }
        // A non-directory over a directory removes what was below it: no
        // later hardlink may name it, and no symlink below it remains.
        // (Rare, so the scan is affordable.)
        if !kind.is_dir() && self.parents.contains(&name) {
            let below = format!("{name}/");
            self.seen.retain(|k, _| !k.starts_with(&below));
            self.symlinks.retain(|k| !k.starts_with(&below));
            self.parents.retain(|k| !k.starts_with(&below));
            self.parents.remove(&name);
        }
        for (i, _) in name.match_indices('/') {
            if !self.parents.contains(&name[..i]) {
                self.parents.insert(name[..i].to_string());
            }
        }
        if kind.is_symlink() && link.unwrap_or_default().is_empty() {
            // Linux cannot make one (symlink(2) answers ENOENT).
            return Err(refuse("it is a symlink with an empty target".into()));
        }
        if kind.is_symlink() {
            self.symlinks.insert(name.clone());
        } else if !self.symlinks.is_empty() {
            self.symlinks.remove(&name);
        }
        self.seen.insert(name.clone(), kind.is_dir());
        Ok(name)
    }

    /// A proper ancestor of `name` that is a non-directory entry (other
    /// than a symlink) at this point of the layer, if any.
    fn file_above<'n>(&self, name: &'n str) -> Option<&'n str> {
        name.match_indices('/')
            .map(|(i, _)| &name[..i])
            .find(|p| self.seen.get(*p) == Some(&false) && !self.symlinks.contains(*p))
    }

    /// The nearest proper ancestor of `name` that is a symlink, if any.
    fn symlink_above<'n>(&self, name: &'n str) -> Option<&'n str> {
        if self.symlinks.is_empty() {
            return None;
        }
        name.match_indices('/')
            .map(|(i, _)| &name[..i])
            .find(|p| self.symlinks.contains(*p))
    }
}

/// Reads a whole uncompressed layer tar through [`Framing`] and
/// [`LayerPolicy`], calling `each` with every checked entry, and then to
/// its very end (so a verifying reader beneath sees every byte).
pub fn for_each_entry<R: Read>(
    label: &Path,
    r: R,
    mut each: impl FnMut(&str, &mut tar::Entry<'_, Framing<R>>) -> Result<()>,
) -> Result<()> {
    let mut policy = LayerPolicy::new(label);
    let mut ar = tar::Archive::new(Framing::new(r));
    for e in ar.entries().map_err(|e| Error::from_pipeline(label, e))? {
        let mut e = e.map_err(|e| Error::from_pipeline(label, e))?;
        if let Some(name) = policy.check(&e)? {
            each(&name, &mut e)?;
        }
    }
    // Past the end-of-archive blocks: padding still counts for digests.
    io::copy(&mut ar.into_inner(), &mut io::sink()).map_err(|e| Error::from_pipeline(label, e))?;
    Ok(())
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
    /// Symlinks, by name, to the archive path they point at (resolved
    /// against their directory; one pointing outside is refused).
    links: HashMap<String, String>,
}

impl ArchiveIndex {
    /// Scans `path`. Every entry name is checked with [`safe_entry_name`].
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).at(path)?;
        Self::from_file(file, path)
    }

    /// Scans an open archive file (one with no path of its own, such as an
    /// unlinked temp file); `path` names it in messages.
    pub fn from_file(file: File, path: &Path) -> Result<Self> {
        let mut entries = HashMap::new();
        let mut links = HashMap::new();
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
                if entry.header().entry_type().is_symlink() {
                    // `docker save` links repeated layers:
                    // ID/layer.tar -> ../OTHER/layer.tar.
                    let target = entry.link_name_bytes().unwrap_or_default();
                    let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                    let joined = if target.starts_with(b"/") {
                        target.to_vec()
                    } else {
                        [dir.as_bytes(), b"/", &target].concat()
                    };
                    links.insert(name.clone(), resolve_inside(path, &name, &joined)?);
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
            links,
        })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks up an entry; `name` is normalized and checked first, so a
    /// manifest naming `../x` is refused as unsafe rather than "not found".
    pub fn span(&self, name: &str) -> Result<Span> {
        let mut norm = safe_entry_name(&self.path, name.as_bytes())?;
        // Follow symlinks inside the archive, a few hops at most.
        for _ in 0..8 {
            match self.links.get(&norm) {
                Some(t) => norm = t.clone(),
                None => break,
            }
        }
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

/// `joined` (a link's directory and target) normalized, `..` applied;
/// refused when it climbs above the archive root or is absolute.
fn resolve_inside(archive: &Path, name: &str, joined: &[u8]) -> Result<String> {
    let refuse = |reason: &str| Error::UnsafePath {
        archive: archive.to_path_buf(),
        entry: name.to_string(),
        reason: reason.to_string(),
    };
    if joined.starts_with(b"/") {
        return Err(refuse("it is a symlink to an absolute path"));
    }
    let s = std::str::from_utf8(joined).map_err(|_| refuse("its target is not UTF-8"))?;
    let mut parts: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(refuse("it is a symlink that points outside the archive"));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
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
    use tar::EntryType as T;

    fn run(entries: &[(&str, T, Option<&str>)]) -> Result<()> {
        let mut p = LayerPolicy::new("layer sha256:x");
        for (name, kind, link) in entries {
            p.check_parts(name.as_bytes(), *kind, link.map(str::as_bytes))?;
        }
        Ok(())
    }

    fn refused(entries: &[(&str, T, Option<&str>)], why: &str) {
        let e = run(entries).unwrap_err().to_string();
        assert!(e.contains(why) && e.contains("layer sha256:x"), "{e}");
    }

    #[test]
    fn entries_below_a_symlink_of_the_layer_are_refused() {
        refused(
            &[("a", T::Symlink, Some("/")), ("a/f", T::Regular, None)],
            "its parent a is a symlink",
        );
        // Chained relative links that climb out.
        refused(
            &[
                ("d", T::Directory, None),
                ("d/up", T::Symlink, Some("..")),
                ("d/up2", T::Symlink, Some("up/..")),
                ("d/up2/etc/passwd", T::Regular, None),
            ],
            "its parent d/up2 is a symlink",
        );
        // A symlink replaced by a directory is a directory again.
        run(&[
            ("a", T::Symlink, Some("/")),
            ("a", T::Directory, None),
            ("a/f", T::Regular, None),
        ])
        .unwrap();
        // Symlink targets themselves may point anywhere.
        run(&[("etc/localtime", T::Symlink, Some("/usr/share/zoneinfo/UTC"))]).unwrap();
    }

    #[test]
    fn hardlinks_must_name_an_earlier_entry_of_the_layer() {
        run(&[("a", T::Regular, None), ("b", T::Link, Some("a"))]).unwrap();
        run(&[("a", T::Regular, None), ("b", T::Link, Some("./a"))]).unwrap();
        refused(&[("b", T::Link, Some("a"))], "not an earlier entry");
        refused(
            &[("b", T::Link, Some("a")), ("a", T::Regular, None)],
            "not an earlier entry",
        );
        refused(
            &[
                ("l", T::Symlink, Some("/etc")),
                ("b", T::Link, Some("l/passwd")),
            ],
            "passes through the symlink l",
        );
        refused(
            &[("d", T::Directory, None), ("b", T::Link, Some("d"))],
            "hardlink to the directory d",
        );
        refused(&[("b", T::Link, Some("../etc/passwd"))], "'..'");
        refused(&[("b", T::Link, Some("/etc/passwd"))], "absolute");
        // Found by tests/fuzz.rs: umoci could not unpack these. The link
        // replaces the directory its target is in...
        refused(
            &[("b/a", T::Regular, None), ("b", T::Link, Some("b/a"))],
            "inside the directory this entry replaces",
        );
        // ...or the target went with a directory an entry replaced.
        refused(
            &[
                ("d/f", T::Regular, None),
                ("d", T::Regular, None),
                ("x", T::Link, Some("d/f")),
            ],
            "not an earlier entry",
        );
        refused(
            &[
                ("d", T::Directory, None),
                ("d/l", T::Symlink, Some("/")),
                ("d", T::Symlink, Some("/tmp")),
                ("d", T::Directory, None),
                ("x", T::Link, Some("d/l")),
            ],
            "not an earlier entry",
        );
        // Below a file of the same layer, or a file for the root: neither
        // unpacks (umoci: "not a directory", "change type of root").
        refused(
            &[("x", T::Regular, None), ("x/a", T::Directory, None)],
            "its parent x is a file in this layer",
        );
        refused(&[(".", T::Regular, None)], "root directory");
        refused(&[("a", T::Symlink, Some(""))], "empty target");
        run(&[(".", T::Directory, None), ("./a", T::Regular, None)]).unwrap();
        // A file replaced by a directory is a directory again.
        run(&[
            ("x", T::Regular, None),
            ("x", T::Directory, None),
            ("x/a", T::Regular, None),
        ])
        .unwrap();
        // A directory over a directory keeps what is in it.
        run(&[
            ("d/f", T::Regular, None),
            ("d", T::Directory, None),
            ("x", T::Link, Some("d/f")),
        ])
        .unwrap();
    }

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
