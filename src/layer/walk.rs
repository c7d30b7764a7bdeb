//! Collecting a layer's entries from source → destination mappings.
//!
//! The walk never follows symlinks, sorts everything by destination path,
//! adds the parent directories a destination implies, and detects
//! hardlinks by (device, inode) so the second and later names become link
//! entries pointing at the first in sorted order.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// One source → destination mapping of a layer.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// File or directory on disk.
    pub source: PathBuf,
    /// Absolute destination in the image. For a directory source, its
    /// contents go below this path.
    pub dest: String,
    /// Owner written for every entry of this mapping.
    pub uid: u32,
    /// Group written for every entry of this mapping.
    pub gid: u32,
    /// Permission bits to force on regular files (directories keep theirs).
    pub mode: Option<u32>,
    /// Glob patterns, relative to `source`, of entries to leave out (`*`
    /// and `?` stay within one path component, `**` crosses them). A
    /// directory that matches is left out with everything below it.
    pub exclude: Vec<String>,
}

impl Mapping {
    /// Maps `source` to the absolute image path `dest`, owned by 0:0.
    pub fn new(source: impl Into<PathBuf>, dest: &str) -> Result<Self> {
        Ok(Mapping {
            source: source.into(),
            dest: normalize_dest(dest)?,
            uid: 0,
            gid: 0,
            mode: None,
            exclude: Vec::new(),
        })
    }

    /// Leaves out entries matching these globs.
    pub fn exclude(mut self, patterns: Vec<String>) -> Self {
        self.exclude = patterns;
        self
    }

    /// Sets the owner of every entry of this mapping.
    pub fn owner(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Forces the permission bits of regular files.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode & 0o7777);
        self
    }
}

/// Normalizes an absolute image path: `/usr//bin/` → `usr/bin`, refusing
/// relative paths and `..`. The root is the empty string.
pub fn normalize_dest(dest: &str) -> Result<String> {
    if !dest.starts_with('/') {
        return Err(Error::bad_input(
            "destination",
            format!("{dest:?} must be an absolute path inside the image, e.g. /usr/bin/tool"),
        ));
    }
    let mut parts = Vec::new();
    for c in dest.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(Error::bad_input(
                    "destination",
                    format!("{dest:?} contains '..'; give the path without it"),
                ));
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file read from `source`, expected to be `size` bytes.
    File {
        /// Where to read it.
        source: PathBuf,
        /// Size at walk time.
        size: u64,
        /// mtime at walk time (seconds, nanoseconds), to detect changes.
        mtime: (i64, i64),
        /// (device, inode) at walk time, for the stat cache.
        id: (u64, u64),
    },
    /// A symlink with its target, as stored (never followed).
    Symlink(Vec<u8>),
    /// A hardlink to an earlier entry's path.
    Hardlink(Vec<u8>),
}

/// One entry of a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Path relative to the image root, no leading or trailing slash.
    pub path: Vec<u8>,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Extended attributes (only when asked for).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// (dev, ino, nlink) of a regular file, for hardlink detection.
    pub(crate) link_key: Option<(u64, u64)>,
}

/// Collects the entries of all mappings, sorted by path, parents first.
pub fn collect(mappings: &[Mapping], xattrs: bool) -> Result<Vec<Entry>> {
    let mut entries: BTreeMap<Vec<u8>, (Entry, usize)> = BTreeMap::new();
    for (i, m) in mappings.iter().enumerate() {
        let meta = fs::symlink_metadata(&m.source).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::MissingSource {
                    path: m.source.clone(),
                }
            } else {
                Error::io(&m.source, e)
            }
        })?;
        let dest = m.dest.as_bytes().to_vec();
        if meta.is_dir() {
            walk_dir(&m.source, &dest, m, i, xattrs, &mut entries)?;
        } else {
            if dest.is_empty() {
                return Err(Error::bad_input(
                    "destination",
                    format!(
                        "{} is not a directory and cannot be placed at /",
                        m.source.display()
                    ),
                ));
            }
            insert(
                &mut entries,
                entry_for(&m.source, &meta, dest, m, xattrs)?,
                i,
                &m.source,
            )?;
        }
    }
    // Parent directories implied by destinations.
    let paths: Vec<Vec<u8>> = entries.keys().cloned().collect();
    for p in paths {
        let mut end = 0;
        while let Some(pos) = p[end..].iter().position(|&b| b == b'/') {
            let parent = p[..end + pos].to_vec();
            entries.entry(parent.clone()).or_insert_with(|| {
                (
                    Entry {
                        path: parent,
                        kind: EntryKind::Dir,
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                        xattrs: Vec::new(),
                        link_key: None,
                    },
                    usize::MAX,
                )
            });
            end += pos + 1;
        }
    }
    // Hardlinks: first name in sorted order keeps the content.
    let mut first: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (_, (mut e, _)) in entries {
        if let Some(key) = e.link_key {
            if let Some(target) = first.get(&key) {
                e.kind = EntryKind::Hardlink(target.clone());
            } else {
                first.insert(key, e.path.clone());
            }
        }
        out.push(e);
    }
    Ok(out)
}

fn insert(
    entries: &mut BTreeMap<Vec<u8>, (Entry, usize)>,
    e: Entry,
    mapping: usize,
    src: &Path,
) -> Result<()> {
    if let Some((prev, _)) = entries.get(&e.path)
        && !(prev.kind == EntryKind::Dir && e.kind == EntryKind::Dir)
    {
        return Err(Error::bad_input(
            "--add",
            format!(
                "/{} is given twice (the second time from {}); map the sources to different destinations",
                String::from_utf8_lossy(&e.path),
                src.display()
            ),
        ));
    }
    // Two mappings may contribute the same directory: the later one's
    // metadata wins, deterministically.
    entries.insert(e.path.clone(), (e, mapping));
    Ok(())
}

fn walk_dir(
    dir: &Path,
    dest: &[u8],
    m: &Mapping,
    idx: usize,
    xattrs: bool,
    entries: &mut BTreeMap<Vec<u8>, (Entry, usize)>,
) -> Result<()> {
    // The mapping's root directory itself becomes an entry unless it is /.
    if !dest.is_empty() {
        let meta = fs::symlink_metadata(dir).at(dir)?;
        insert(
            entries,
            entry_for(dir, &meta, dest.to_vec(), m, xattrs)?,
            idx,
            dir,
        )?;
    }
    let mut stack: Vec<(PathBuf, Vec<u8>, Vec<u8>)> =
        vec![(dir.to_path_buf(), dest.to_vec(), Vec::new())];
    while let Some((d, dprefix, rel_prefix)) = stack.pop() {
        // DirEntry::metadata is an lstat relative to the open directory: no
        // path lookup from the root for every file.
        let mut children: Vec<(std::ffi::OsString, fs::Metadata)> = Vec::new();
        for ent in fs::read_dir(&d).at(&d)? {
            let ent = ent.at(&d)?;
            let meta = ent.metadata().at(ent.path())?;
            children.push((ent.file_name(), meta));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, meta) in children {
            let mut rel = rel_prefix.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(OsStr::as_bytes(&name));
            if m.exclude.iter().any(|p| glob_match(p.as_bytes(), &rel)) {
                continue;
            }
            let src = d.join(&name);
            let mut path = dprefix.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(OsStr::as_bytes(&name));
            let e = entry_for(&src, &meta, path, m, xattrs)?;
            let child = meta.is_dir().then(|| e.path.clone());
            insert(entries, e, idx, &src)?;
            if let Some(child) = child {
                stack.push((src, child, rel));
            }
        }
    }
    Ok(())
}

fn entry_for(
    src: &Path,
    meta: &fs::Metadata,
    path: Vec<u8>,
    m: &Mapping,
    want_xattrs: bool,
) -> Result<Entry> {
    let ft = meta.file_type();
    let mut mode = meta.mode() & 0o7777;
    let mut link_key = None;
    let kind = if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        if let Some(forced) = m.mode {
            mode = forced;
        }
        if meta.nlink() > 1 {
            link_key = Some((meta.dev(), meta.ino()));
        }
        EntryKind::File {
            source: src.to_path_buf(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            id: (meta.dev(), meta.ino()),
        }
    } else if ft.is_symlink() {
        let target = fs::read_link(src).at(src)?;
        EntryKind::Symlink(target.as_os_str().as_bytes().to_vec())
    } else {
        let what = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_block_device() || ft.is_char_device() {
            "a device node"
        } else {
            "of an unknown type"
        };
        return Err(Error::bad_input(
            "--add",
            format!(
                "{} is {what}, which strata does not put in layers; exclude it",
                src.display()
            ),
        ));
    };
    let xattrs = if want_xattrs && !ft.is_symlink() {
        read_xattrs(src)?
    } else {
        Vec::new()
    };
    Ok(Entry {
        path,
        kind,
        mode,
        uid: m.uid,
        gid: m.gid,
        xattrs,
        link_key,
    })
}

fn read_xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    use std::ffi::CString;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::bad_input("path", "contains NUL"))?;
    let mut names = vec![0u8; 4096];
    // SAFETY: c is a valid C string and names a buffer of the given length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOTSUP) {
            return Ok(Vec::new());
        }
        return Err(Error::io(path, e));
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).expect("split on NUL");
        let mut val = vec![0u8; 65536];
        // SAFETY: valid C strings and a buffer of the given length.
        let len = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                val.as_mut_ptr().cast(),
                val.len(),
            )
        };
        if len < 0 {
            return Err(Error::io(path, std::io::Error::last_os_error()));
        }
        val.truncate(len as usize);
        out.push((name.to_vec(), val));
    }
    out.sort();
    Ok(out)
}

/// Matches a path against a glob: `*` and `?` within one component, `**`
/// across components.
pub fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    match pat.first() {
        None => s.is_empty(),
        Some(b'*') if pat.get(1) == Some(&b'*') => {
            let rest = pat[2..].strip_prefix(b"/").unwrap_or(&pat[2..]);
            (0..=s.len()).any(|i| {
                (i == 0 || s[i - 1] == b'/' || rest.is_empty()) && glob_match(rest, &s[i..])
            })
        }
        Some(b'*') => (0..=s.len())
            .take_while(|&i| i == 0 || s[i - 1] != b'/')
            .any(|i| glob_match(&pat[1..], &s[i..])),
        Some(b'?') => s.first().is_some_and(|&c| c != b'/') && glob_match(&pat[1..], &s[1..]),
        Some(&c) => s.first() == Some(&c) && glob_match(&pat[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match(b"*.o", b"a.o"));
        assert!(!glob_match(b"*.o", b"dir/a.o"));
        assert!(glob_match(b"**/*.o", b"dir/sub/a.o"));
        assert!(glob_match(b"**/*.o", b"a.o"));
        assert!(glob_match(b"target", b"target"));
        assert!(glob_match(b"docs/**", b"docs/x/y"));
        assert!(!glob_match(b"?.txt", b"ab.txt"));
    }
}
