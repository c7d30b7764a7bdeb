//! Collecting a layer's entries from source → destination mappings.
//!
//! The walk never follows symlinks, sorts everything by destination path,
//! adds the parent directories a destination implies, and detects
//! hardlinks by (device, inode) so the second and later names become link
//! entries pointing at the first in sorted order.

use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::tree::TreeWalk;
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

/// Collects the entries of all mappings, sorted by path, parents first
/// (see [`walk`]).
pub fn collect(mappings: &[Mapping], xattrs: bool) -> Result<Vec<Entry>> {
    walk(mappings, xattrs)?.collect()
}

/// Streams the entries of all mappings, sorted by path, parents first: the
/// order a layer's tar has. Memory holds the open directories' listings,
/// not the tree.
///
/// The parent directories a destination implies are added as `0755 0:0`.
/// Where two mappings give the same directory, the later mapping's
/// metadata wins; any other path given twice is an error, and so is a
/// destination below a path another mapping makes a file or symlink. The
/// second and later names of a hardlinked inode become link entries to the
/// first name. Each mapping's source is checked before the first entry,
/// so a missing source fails before anything is written.
pub fn walk(mappings: &[Mapping], xattrs: bool) -> Result<Walk> {
    let mut sources = vec![Source {
        mapping: None,
        head: None,
        rest: Stream::List(implied_parents(mappings).into_iter()),
    }];
    for m in mappings {
        let meta = fs::symlink_metadata(&m.source).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::MissingSource {
                    path: m.source.clone(),
                }
            } else {
                Error::io(&m.source, e)
            }
        })?;
        let rest = if meta.is_dir() {
            Stream::Tree(Box::new(TreeWalk::new(m, &meta, xattrs)?))
        } else {
            if m.dest.is_empty() {
                return Err(Error::bad_input(
                    "destination",
                    format!(
                        "{} is not a directory and cannot be placed at /",
                        m.source.display()
                    ),
                ));
            }
            let e = entry_for(&m.source, &meta, m.dest.as_bytes().to_vec(), m, xattrs)?;
            Stream::List(vec![e].into_iter())
        };
        sources.push(Source {
            mapping: Some(m.source.clone()),
            head: None,
            rest,
        });
    }
    Ok(Walk {
        sources,
        first_names: HashMap::new(),
        failed: false,
    })
}

/// The directories above every mapping's destination, sorted.
fn implied_parents(mappings: &[Mapping]) -> Vec<Entry> {
    let mut parents = std::collections::BTreeSet::new();
    for m in mappings {
        let d = m.dest.as_bytes();
        for (i, &b) in d.iter().enumerate() {
            if b == b'/' {
                parents.insert(d[..i].to_vec());
            }
        }
    }
    parents
        .into_iter()
        .map(|path| Entry {
            path,
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            xattrs: Vec::new(),
            link_key: None,
        })
        .collect()
}

/// The sorted entries of all mappings; see [`walk`].
pub struct Walk {
    /// Implied parents first (lowest precedence), then each mapping.
    sources: Vec<Source>,
    /// (device, inode) → the first name of a hardlinked file.
    first_names: HashMap<(u64, u64), Vec<u8>>,
    failed: bool,
}

struct Source {
    /// The mapping's source path; `None` for the implied parents.
    mapping: Option<PathBuf>,
    head: Option<Entry>,
    rest: Stream,
}

enum Stream {
    List(std::vec::IntoIter<Entry>),
    Tree(Box<TreeWalk>),
}

impl Source {
    /// Fills `head` from the stream (it stays empty once the stream ends).
    fn fill(&mut self) -> Result<()> {
        if self.head.is_none() {
            self.head = match &mut self.rest {
                Stream::List(it) => it.next(),
                Stream::Tree(t) => t.next().transpose()?,
            };
        }
        Ok(())
    }

    fn path(&self) -> Option<&[u8]> {
        self.head.as_ref().map(|h| h.path.as_slice())
    }
}

impl Walk {
    fn next_entry(&mut self) -> Result<Option<Entry>> {
        for s in &mut self.sources {
            s.fill()?;
        }
        // The first source holding the smallest path, then every source
        // holding that same path.
        let Some(first) = (0..self.sources.len())
            .filter(|&i| self.sources[i].head.is_some())
            .min_by(|&a, &b| self.sources[a].path().cmp(&self.sources[b].path()))
        else {
            return Ok(None);
        };
        let min = self.sources[first].path();
        let same: Vec<usize> = (first..self.sources.len())
            .filter(|&i| self.sources[i].path() == min)
            .collect();
        let all_dirs = same.iter().all(|&i| {
            self.sources[i]
                .head
                .as_ref()
                .is_some_and(|h| h.kind == EntryKind::Dir)
        });
        if same.len() > 1 && !all_dirs {
            let min = self.sources[first].path().expect("has a head").to_vec();
            return Err(self.clash(&same, &min));
        }
        // Two mappings may give the same directory: the later one's
        // metadata wins, deterministically.
        let last = *same.last().expect("at least one source has the path");
        for &i in &same[..same.len() - 1] {
            self.sources[i].head = None;
        }
        let mut e = self.sources[last].head.take().expect("head present");
        if let Some(key) = e.link_key {
            if let Some(first) = self.first_names.get(&key) {
                e.kind = EntryKind::Hardlink(first.clone());
            } else {
                self.first_names.insert(key, e.path.clone());
            }
        }
        Ok(Some(e))
    }

    fn clash(&self, same: &[usize], path: &[u8]) -> Error {
        let shown = String::from_utf8_lossy(path);
        let from: Vec<String> = same
            .iter()
            .filter_map(|&i| self.sources[i].mapping.as_ref())
            .map(|p| p.display().to_string())
            .collect();
        if same[0] == 0 {
            return Error::bad_input(
                "--add",
                format!(
                    "/{shown} is not a directory in {}, but another destination is below it; \
                     map the sources so that /{shown} is a directory",
                    from.join(" and ")
                ),
            );
        }
        Error::bad_input(
            "--add",
            format!(
                "/{shown} is given twice (the second time from {}); map the sources to different destinations",
                from.last().expect("two mappings clash")
            ),
        )
    }
}

impl Iterator for Walk {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.failed {
            return None;
        }
        let r = self.next_entry().transpose();
        if matches!(r, Some(Err(_))) {
            self.failed = true;
            self.sources.clear();
        }
        r
    }
}

pub(super) fn entry_for(
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
    use super::*;
    use std::os::unix::fs::symlink;

    fn paths(ms: &[Mapping]) -> Vec<String> {
        collect(ms, false)
            .unwrap()
            .into_iter()
            .map(|e| String::from_utf8(e.path).unwrap())
            .collect()
    }

    /// Names around `/` in byte order ('-' and '.' sort before it, '0'
    /// and '_' after), nested, with more directories than the read-ahead
    /// window: the stream must be exactly the sorted full paths.
    #[test]
    fn order_is_full_path_order() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let mut want = vec!["top".to_string()];
        for a in ["a", "a-c", "a.txt", "a0", "a_b", "b", "b.d"] {
            for b in ["", "/x", "/x-y", "/x.z", "/x/y", "/x/y-z", "/x0"] {
                want.push(format!("top/{a}{b}"));
            }
        }
        for i in 0..600 {
            want.push(format!("top/many/d{i}/f"));
        }
        let mut dirs = std::collections::BTreeSet::new();
        for w in &want {
            for (i, _) in w.match_indices('/') {
                dirs.insert(w[..i].to_string());
            }
        }
        for w in &want {
            let p = root.join(w);
            if dirs.contains(w) {
                fs::create_dir_all(&p).unwrap();
            } else {
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, w).unwrap();
            }
        }
        want.extend(dirs.iter().cloned());
        want.sort();
        want.dedup();
        let got = paths(&[Mapping::new(root.join("top"), "/top").unwrap()]);
        assert_eq!(got, want);
    }

    #[test]
    fn mappings_merge_with_implied_parents_and_later_directories_winning() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        fs::create_dir_all(a.join("usr/bin")).unwrap();
        fs::write(a.join("usr/bin/x"), "x").unwrap();
        fs::create_dir_all(b.join("bin")).unwrap();
        fs::write(b.join("bin/y"), "y").unwrap();
        fs::write(t.path().join("f"), "f").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(b.join("bin"), fs::Permissions::from_mode(0o700)).unwrap();
        let ms = [
            Mapping::new(&a, "/").unwrap(),
            Mapping::new(&b, "/usr").unwrap(),
            Mapping::new(t.path().join("f"), "/opt/etc/f").unwrap(),
        ];
        let all = collect(&ms, false).unwrap();
        let got: Vec<&[u8]> = all.iter().map(|e| e.path.as_slice()).collect();
        let want: Vec<&[u8]> = vec![
            b"opt",
            b"opt/etc",
            b"opt/etc/f",
            b"usr",
            b"usr/bin",
            b"usr/bin/x",
            b"usr/bin/y",
        ];
        assert_eq!(got, want);
        assert_eq!(all[4].mode, 0o700, "the later mapping's directory wins");
        assert_eq!(all[0].mode, 0o755, "implied parent");
    }

    fn error_of(ms: &[Mapping]) -> String {
        collect(ms, false).unwrap_err().to_string()
    }

    #[test]
    fn a_path_given_twice_or_below_a_file_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("f"), "f").unwrap();
        let f = t.path().join("f");
        let m = |dest: &str| Mapping::new(&f, dest).unwrap();
        let err = error_of(&[m("/etc/f"), m("/etc/f")]);
        assert!(err.contains("/etc/f is given twice"), "{err}");
        let err = error_of(&[m("/etc"), m("/etc/f")]);
        assert!(err.contains("/etc is not a directory"), "{err}");
        let d = t.path().join("d");
        fs::create_dir(&d).unwrap();
        symlink("usr/bin", d.join("bin")).unwrap();
        let err = error_of(&[Mapping::new(&d, "/").unwrap(), m("/bin/tool")]);
        assert!(err.contains("/bin is not a directory"), "{err}");
    }

    #[test]
    fn excludes_and_hardlinks() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("d");
        fs::create_dir_all(d.join("target/x")).unwrap();
        fs::create_dir_all(d.join("src")).unwrap();
        fs::write(d.join("src/z.o"), "o").unwrap();
        fs::write(d.join("src/b.rs"), "b").unwrap();
        fs::hard_link(d.join("src/b.rs"), d.join("a.rs")).unwrap();
        let m = Mapping::new(&d, "/")
            .unwrap()
            .exclude(vec!["target".into(), "**/*.o".into()]);
        let all = collect(&[m], false).unwrap();
        let got: Vec<(String, bool)> = all
            .iter()
            .map(|e| {
                let link = matches!(&e.kind, EntryKind::Hardlink(t) if t == b"a.rs");
                (String::from_utf8(e.path.clone()).unwrap(), link)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a.rs".into(), false),
                ("src".into(), false),
                ("src/b.rs".into(), true)
            ]
        );
    }

    #[test]
    fn a_bad_entry_fails_its_directory_when_the_walk_reaches_it() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("d");
        fs::create_dir_all(d.join("a")).unwrap();
        fs::write(d.join("a/f"), "f").unwrap();
        fs::create_dir_all(d.join("c")).unwrap();
        fs::write(d.join("d"), "d").unwrap();
        // A directory's listing fails as a whole when the walk reaches it.
        let fifo = std::ffi::CString::new(d.join("c/fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let mut w = walk(&[Mapping::new(&d, "/").unwrap()], false).unwrap();
        for want in [&b"a"[..], b"a/f", b"c"] {
            assert_eq!(w.next().unwrap().unwrap().path, want);
        }
        let err = w.next().unwrap().unwrap_err().to_string();
        assert!(err.contains("c/fifo is a FIFO"), "{err}");
        assert!(w.next().is_none(), "the walk ends after an error");
    }

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
