//! An overlay upper directory as a layer: walked in strata's sorted order
//! and streamed through the one layer writer.
//!
//! * removals become `.wh.NAME` entries in one form, whatever overlayfs
//!   wrote (see [`super::canon`]);
//! * mount targets the runtime created (stubs for inputs, caches, secrets)
//!   are dropped when the layers beneath did not have them, as BuildKit's
//!   `MountStubsCleaner` does;
//! * mtimes are clamped to the epoch (older times stay), owners stay
//!   numeric, and of the xattrs `security.capability` is kept, and those
//!   the step names;
//! * `excludes` (globs, `**` crosses directories) and, unless turned off,
//!   the default noise (`/tmp`, `/var/tmp`, `/run`, apt's caches and
//!   lists, …) are left out;
//! * with `outputs`, only those paths (and the directories above them) are
//!   kept.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::layer::{Entry, EntryKind, LayerBuilder, StoreLayer, TarEncoder, glob_match};
use crate::store::Store;

/// Paths whose changes a step never captures unless it asks for them.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "tmp",
    "var/tmp",
    "run",
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "var/log/apt",
    "var/cache/ldconfig/aux-cache",
    "var/cache/debconf/*-old",
    "var/log/dpkg.log",
    "var/log/alternatives.log",
];

/// What to keep of an upper directory.
#[derive(Clone, Debug, Default)]
pub struct CaptureSpec {
    /// The newest mtime written (SOURCE_DATE_EPOCH).
    pub epoch: u64,
    /// Keep only these paths (relative, no leading `/`) and what is below.
    pub outputs: Vec<String>,
    /// Globs (relative) of paths to leave out, with what is below.
    pub excludes: Vec<String>,
    /// Mount targets (relative) to drop when they are runtime stubs.
    pub stubs: Vec<String>,
    /// The lower directories, to tell a stub from a path that was there.
    pub lowers: Vec<PathBuf>,
    /// Leave out [`DEFAULT_EXCLUDES`] too.
    pub default_excludes: bool,
    /// Extended attributes kept besides `security.capability` (names or
    /// globs).
    pub xattrs: Vec<String>,
}

/// One path of the upper directory, as it will be written.
struct Found {
    rel: Vec<u8>,
    kind: FoundKind,
    meta: fs::Metadata,
}

enum FoundKind {
    Dir { opaque: bool },
    File,
    Symlink(Vec<u8>),
    Whiteout,
}

/// The paths of `upper` that `spec` keeps, sorted by full path.
fn scan(upper: &Path, spec: &CaptureSpec) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = upper.join(&rel);
        for e in fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            let rel = rel.join(e.file_name());
            let path = upper.join(&rel);
            let meta = fs::symlink_metadata(&path).at(&path)?;
            let bytes = rel.as_os_str().as_bytes().to_vec();
            if excluded(&bytes, spec) {
                continue;
            }
            let ft = meta.file_type();
            let kind = if ft.is_dir() {
                stack.push(rel.clone());
                FoundKind::Dir {
                    opaque: opaque(&path),
                }
            } else if ft.is_file() {
                FoundKind::File
            } else if ft.is_symlink() {
                let t = fs::read_link(&path).at(&path)?;
                FoundKind::Symlink(t.as_os_str().as_bytes().to_vec())
            } else if ft.is_char_device() && meta.rdev() == 0 {
                FoundKind::Whiteout
            } else {
                return Err(Error::invalid(
                    "build step output",
                    format!("/{}", rel.display()),
                    "it is a device, socket or FIFO, which strata does not put in layers",
                ));
            };
            out.push(Found {
                rel: bytes,
                kind,
                meta,
            });
        }
    }
    canonical_removals(&mut out, upper, spec)?;
    drop_stubs(&mut out, spec);
    if !spec.outputs.is_empty() {
        out.retain(|f| {
            spec.outputs.iter().any(|o| {
                let o = o.as_bytes();
                under(&f.rel, o) || (under(o, &f.rel) && matches!(f.kind, FoundKind::Dir { .. }))
            })
        });
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// Rewrites whiteouts and opaque directories into the one form (see
/// [`super::canon`]), so the layer does not depend on the kernel or on
/// whether the root filesystem was an overlay or a copy.
fn canonical_removals(found: &mut Vec<Found>, upper: &Path, spec: &CaptureSpec) -> Result<()> {
    use super::canon::{LowerView, Upper, whiteouts};
    let map = found
        .iter()
        .map(|f| {
            let kind = match f.kind {
                FoundKind::Dir { opaque } => Upper::Dir { opaque },
                FoundKind::Whiteout => Upper::Whiteout,
                _ => Upper::Other,
            };
            (f.rel.clone(), kind)
        })
        .collect();
    let keep = whiteouts(&map, &LowerView::new(&spec.lowers));
    found.retain(|f| !matches!(f.kind, FoundKind::Whiteout));
    for f in found.iter_mut() {
        if let FoundKind::Dir { opaque } = &mut f.kind {
            *opaque = false;
        }
    }
    let placeholder = fs::symlink_metadata(upper).at(upper)?;
    for rel in keep {
        if !excluded(&rel, spec) {
            found.push(Found {
                rel,
                kind: FoundKind::Whiteout,
                meta: placeholder.clone(),
            });
        }
    }
    Ok(())
}

/// `p` is `dir` or below it.
fn under(p: &[u8], dir: &[u8]) -> bool {
    p == dir || (p.starts_with(dir) && p.get(dir.len()) == Some(&b'/'))
}

fn excluded(rel: &[u8], spec: &CaptureSpec) -> bool {
    let user = spec.excludes.iter().map(String::as_str);
    let defaults: &[&str] = if spec.default_excludes {
        DEFAULT_EXCLUDES
    } else {
        &[]
    };
    defaults.iter().copied().chain(user).any(|g| {
        let g = g.trim_start_matches('/').as_bytes();
        glob_match(g, rel)
            || rel
                .iter()
                .enumerate()
                .any(|(i, &b)| b == b'/' && glob_match(g, &rel[..i]))
    })
}

/// Drops mount targets (and directories made only to hold them) that the
/// layers beneath did not have and the commands left empty.
fn drop_stubs(found: &mut Vec<Found>, spec: &CaptureSpec) {
    let in_lower = |rel: &[u8]| {
        let p = std::ffi::OsStr::from_bytes(rel);
        spec.lowers
            .iter()
            .any(|l| fs::symlink_metadata(l.join(p)).is_ok())
    };
    for stub in &spec.stubs {
        let mut rel = stub.trim_matches('/').as_bytes().to_vec();
        while !rel.is_empty() {
            let has_children = found.iter().any(|f| under(&f.rel, &rel) && f.rel != rel);
            let Some(i) = found.iter().position(|f| f.rel == rel) else {
                break;
            };
            let empty = match found[i].kind {
                FoundKind::Dir { .. } => !has_children,
                FoundKind::File => found[i].meta.len() == 0,
                _ => false,
            };
            if !empty || in_lower(&rel) {
                break;
            }
            found.remove(i);
            match rel.iter().rposition(|&b| b == b'/') {
                Some(p) => rel.truncate(p),
                None => break,
            }
        }
    }
}

fn opaque(path: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|n| xattr(path, n).is_some_and(|v| v == b"y"))
}

/// The names of the extended attributes of `path` itself, sorted.
fn xattr_names(path: &Path) -> Vec<Vec<u8>> {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return Vec::new();
    };
    let mut buf = vec![0u8; 16384];
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return Vec::new();
    }
    buf.truncate(n as usize);
    let mut names: Vec<Vec<u8>> = buf
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    names.sort();
    names
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    let len =
        unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return None;
    }
    buf.truncate(len as usize);
    Some(buf)
}

/// Writes what `spec` keeps of `upper` as a layer with `lb`. Errors when
/// nothing is kept, naming the outputs asked for.
pub fn capture(
    upper: &Path,
    spec: &CaptureSpec,
    lb: &LayerBuilder,
    store: &Store,
) -> Result<StoreLayer> {
    let found = scan(upper, spec)?;
    let missing: Vec<String> = spec
        .outputs
        .iter()
        .filter(|o| !found.iter().any(|f| under(&f.rel, o.as_bytes())))
        .map(|o| format!("/{o}"))
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(
            "build step",
            "its output",
            format!(
                "the outputs {} match nothing the commands wrote",
                missing.join(", ")
            ),
        ));
    }
    if found.is_empty() {
        return Err(Error::invalid(
            "build step",
            "its output",
            if spec.outputs.is_empty() {
                "the commands changed no file (outside the excluded paths)".to_string()
            } else {
                format!(
                    "the outputs {} match nothing the commands wrote",
                    spec.outputs
                        .iter()
                        .map(|o| format!("/{o}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ));
    }
    lb.build_stream(store, |tar| {
        let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
        for f in &found {
            write_found(tar, upper, f, spec, &mut links)?;
        }
        Ok(())
    })
}

fn write_found(
    tar: &mut TarEncoder<&mut dyn Write>,
    upper: &Path,
    f: &Found,
    spec: &CaptureSpec,
    links: &mut HashMap<(u64, u64), Vec<u8>>,
) -> Result<()> {
    let epoch = spec.epoch;
    let m = &f.meta;
    let path = upper.join(std::ffi::OsStr::from_bytes(&f.rel));
    let mut e = Entry {
        path: f.rel.clone(),
        kind: EntryKind::Dir,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        xattrs: Vec::new(),
        link_key: None,
    };
    if let Some(cap) = xattr(&path, "security.capability") {
        e.xattrs.push((b"security.capability".to_vec(), cap));
    }
    if !spec.xattrs.is_empty() && !matches!(f.kind, FoundKind::Whiteout) {
        for name in xattr_names(&path) {
            let wanted = name != b"security.capability"
                && !name.starts_with(b"trusted.overlay.")
                && spec.xattrs.iter().any(|g| glob_match(g.as_bytes(), &name));
            if let Some(value) = wanted
                .then(|| xattr(&path, &String::from_utf8_lossy(&name)))
                .flatten()
            {
                e.xattrs.push((name, value));
            }
        }
        e.xattrs.sort();
    }
    // A whiteout's time is when the path was removed: always after the
    // epoch, so the epoch.
    let mtime = match f.kind {
        FoundKind::Whiteout => epoch,
        _ => (m.mtime().max(0) as u64).min(epoch),
    };
    tar.set_mtime(mtime);
    let io = |err: std::io::Error| Error::from_pipeline(&path, err);
    match &f.kind {
        FoundKind::Dir { opaque } => {
            tar.header(&e, 0).map_err(io)?;
            if *opaque {
                let mut wh = e.clone();
                wh.path.extend_from_slice(b"/.wh..wh..opq");
                wh.kind = EntryKind::File {
                    source: PathBuf::new(),
                    size: 0,
                    mtime: (0, 0),
                    id: (0, 0),
                };
                wh.mode = 0;
                wh.xattrs.clear();
                tar.header(&wh, 0).map_err(io)?;
            }
        }
        FoundKind::Whiteout => {
            let (dir, name) = match f.rel.iter().rposition(|&b| b == b'/') {
                Some(i) => (&f.rel[..=i], &f.rel[i + 1..]),
                None => (&f.rel[..0], &f.rel[..]),
            };
            e.path = [dir, b".wh.", name].concat();
            e.kind = EntryKind::File {
                source: PathBuf::new(),
                size: 0,
                mtime: (0, 0),
                id: (0, 0),
            };
            e.mode = 0;
            e.uid = 0;
            e.gid = 0;
            e.xattrs.clear();
            tar.header(&e, 0).map_err(io)?;
        }
        FoundKind::Symlink(t) => {
            e.kind = EntryKind::Symlink(t.clone());
            e.xattrs.clear();
            tar.header(&e, 0).map_err(io)?;
        }
        FoundKind::File => {
            let id = (m.dev(), m.ino());
            if m.nlink() > 1 {
                if let Some(first) = links.get(&id) {
                    e.kind = EntryKind::Hardlink(first.clone());
                    e.xattrs.clear();
                    return tar.header(&e, 0).map_err(io);
                }
                links.insert(id, f.rel.clone());
            }
            let file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .at(&path)?;
            let size = file.metadata().at(&path)?.len();
            e.kind = EntryKind::File {
                source: path.clone(),
                size,
                mtime: (m.mtime(), m.mtime_nsec()),
                id,
            };
            tar.header(&e, size).map_err(io)?;
            let copied = std::io::copy(&mut (&file).take(size), tar.get_mut()).map_err(io)?;
            if copied != size {
                return Err(Error::FileChanged {
                    path,
                    detail: format!("it shrank while captured ({copied} of {size} bytes)"),
                });
            }
            tar.pad(size).map_err(io)?;
            drop::<File>(file);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Layer;

    /// The xattrs of each entry of `layer`'s tar stream.
    fn xattrs_of(layer: &StoreLayer) -> Vec<(String, Vec<String>)> {
        let r = crate::layer::decompress(layer.open().unwrap()).unwrap();
        let mut a = tar::Archive::new(r);
        let mut out = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            let mut names = Vec::new();
            if let Some(exts) = e.pax_extensions().unwrap() {
                for x in exts {
                    let x = x.unwrap();
                    if let Some(n) = x.key().unwrap().strip_prefix("SCHILY.xattr.") {
                        names.push(n.to_string());
                    }
                }
            }
            out.push((path, names));
        }
        out
    }

    #[test]
    fn xattrs_are_kept_only_when_named_and_default_excludes_can_be_turned_off() {
        let t = tempfile::tempdir().unwrap();
        let upper = t.path().join("upper");
        fs::create_dir_all(upper.join("var/lib/apt/lists")).unwrap();
        fs::write(upper.join("var/lib/apt/lists/x"), "x").unwrap();
        let f = upper.join("f");
        fs::write(&f, "f").unwrap();
        let set = |n: &[u8], v: &[u8]| crate::sandbox::rootfs::set_xattr(&f, n, v).is_ok();
        if !(set(b"user.keep.me", b"1") && set(b"user.other", b"2")) {
            return; // no user xattrs on this filesystem
        }
        let store = Store::open_or_create(t.path().join("store")).unwrap();
        let lb = LayerBuilder::new();
        let spec = CaptureSpec {
            default_excludes: true,
            ..Default::default()
        };
        let plain = capture(&upper, &spec, &lb, &store).unwrap();
        let got = xattrs_of(&plain);
        assert_eq!(got[0], ("f".to_string(), Vec::<String>::new()));
        assert!(
            !got.iter().any(|(p, _)| p.ends_with("lists/x")),
            "apt lists are left out by default: {got:?}"
        );
        let spec = CaptureSpec {
            default_excludes: false,
            xattrs: vec!["user.keep*".into()],
            ..Default::default()
        };
        let kept = capture(&upper, &spec, &lb, &store).unwrap();
        let got = xattrs_of(&kept);
        assert!(
            got.contains(&("f".to_string(), vec!["user.keep.me".to_string()])),
            "{got:?}"
        );
        assert!(
            got.iter().any(|(p, _)| p == "var/lib/apt/lists/x"),
            "{got:?}"
        );
    }
}
