//! One way to write what was removed, whatever the kernel did.
//!
//! overlayfs records a removal in its upper directory either as a whiteout
//! (a 0/0 character device) or by marking a re-created directory opaque,
//! and which one depends on the kernel version; it also marks brand-new
//! directories opaque on some kernels. The layer must not depend on that,
//! nor differ between an overlay and a copied root filesystem. So the
//! capture rewrites removals against the layers beneath into one form:
//!
//! * no opaque markers: an opaque directory becomes a whiteout for each
//!   path of the layers beneath it that the upper directory does not
//!   replace (a directory there that replaces one beneath hides the one
//!   beneath the same way, recursively);
//! * a whiteout only where the layers beneath have the path.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The merged view of lower directories in overlayfs's format (base
/// first), read on demand.
pub struct LowerView<'a> {
    lowers: &'a [PathBuf],
}

/// What a path is in the lower view.
#[derive(Debug, PartialEq, Eq)]
pub enum Lower {
    /// Not there.
    Absent,
    /// A file, symlink or device.
    NonDir,
    /// A directory with these children (name → is a directory).
    Dir(BTreeMap<OsString, bool>),
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    let mut buf = [0u8; 4];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|n| {
            let n = std::ffi::CString::new(*n).expect("no NUL");
            let len = unsafe {
                libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
            };
            len == 1 && buf[0] == b'y'
        })
}

impl<'a> LowerView<'a> {
    /// The view of `lowers`, base first.
    pub fn new(lowers: &'a [PathBuf]) -> Self {
        LowerView { lowers }
    }

    /// What `rel` is in the view.
    pub fn lookup(&self, rel: &Path) -> Lower {
        let mut kind: Option<bool> = None;
        let mut children: BTreeMap<OsString, bool> = BTreeMap::new();
        let mut hidden: BTreeSet<OsString> = BTreeSet::new();
        'layers: for layer in self.lowers.iter().rev() {
            // The ancestors must be directories here for `rel` to be here;
            // a whiteout or non-directory hides everything beneath.
            let mut stop_after = false;
            let mut at = PathBuf::new();
            for part in rel.parent().into_iter().flat_map(|p| p.components()) {
                at.push(part);
                match fs::symlink_metadata(layer.join(&at)) {
                    Err(_) => continue 'layers,
                    Ok(m) if is_whiteout(&m) || !m.is_dir() => break 'layers,
                    Ok(_) => stop_after |= is_opaque(&layer.join(&at)),
                }
            }
            let path = layer.join(rel);
            match fs::symlink_metadata(&path) {
                Err(_) => {}
                Ok(m) if is_whiteout(&m) => break,
                Ok(m) if m.is_dir() => {
                    if kind == Some(false) {
                        break;
                    }
                    kind = Some(true);
                    if let Ok(rd) = fs::read_dir(&path) {
                        for e in rd.flatten() {
                            let name = e.file_name();
                            if hidden.contains(&name) || children.contains_key(&name) {
                                continue;
                            }
                            match e.metadata() {
                                Ok(cm) if is_whiteout(&cm) => {
                                    hidden.insert(name);
                                }
                                Ok(cm) => {
                                    children.insert(name, cm.is_dir());
                                }
                                Err(_) => {}
                            }
                        }
                    }
                    stop_after |= is_opaque(&path);
                }
                Ok(_) => {
                    if kind.is_none() {
                        kind = Some(false);
                    }
                    break;
                }
            }
            if stop_after {
                break;
            }
        }
        match kind {
            None => Lower::Absent,
            Some(false) => Lower::NonDir,
            Some(true) => Lower::Dir(children),
        }
    }
}

/// An upper directory's paths (relative, bytes): what is there.
pub enum Upper {
    /// A directory, opaque or not.
    Dir { opaque: bool },
    /// A whiteout.
    Whiteout,
    /// Anything else.
    Other,
}

/// The whiteouts `upper` (relative path → what it is) stands for against
/// `lower`, in the one form: which of its whiteouts to keep, and which to
/// add for its opaque directories. Opaque markers are to be dropped.
pub fn whiteouts(upper: &BTreeMap<Vec<u8>, Upper>, lower: &LowerView<'_>) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    for (rel, kind) in upper {
        let path = Path::new(std::ffi::OsStr::from_bytes(rel));
        match kind {
            Upper::Whiteout if lower.lookup(path) != Lower::Absent => {
                out.insert(rel.clone());
            }
            Upper::Dir { opaque: true } => hide_beneath(rel, upper, lower, &mut out),
            _ => {}
        }
    }
    out
}

/// Whiteouts for what the layers beneath have in directory `rel` that the
/// upper directory does not replace.
fn hide_beneath(
    rel: &[u8],
    upper: &BTreeMap<Vec<u8>, Upper>,
    lower: &LowerView<'_>,
    out: &mut BTreeSet<Vec<u8>>,
) {
    let Lower::Dir(children) = lower.lookup(Path::new(std::ffi::OsStr::from_bytes(rel))) else {
        return;
    };
    for (name, lower_is_dir) in children {
        let child = [rel, b"/", &name.into_vec()].concat();
        match upper.get(&child) {
            None | Some(Upper::Whiteout) => {
                out.insert(child);
            }
            Some(Upper::Dir { .. }) if lower_is_dir => hide_beneath(&child, upper, lower, out),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whiteout(p: &Path) {
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) }, 0);
    }

    #[test]
    fn the_lower_view_applies_whiteouts_and_shadowing() {
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        for f in ["d/x", "d/y", "d/sub/z", "f"] {
            let p = a.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "").unwrap();
        }
        fs::create_dir_all(b.join("d")).unwrap();
        whiteout(&b.join("d/x"));
        fs::write(b.join("d/w"), "").unwrap();
        whiteout(&b.join("f"));
        let lowers = [a, b];
        let v = LowerView::new(&lowers);
        let Lower::Dir(c) = v.lookup(Path::new("d")) else {
            panic!("d is a directory")
        };
        let names: Vec<_> = c.keys().map(|n| n.to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["sub", "w", "y"]);
        assert_eq!(v.lookup(Path::new("f")), Lower::Absent);
        assert_eq!(v.lookup(Path::new("d/x")), Lower::Absent);
        assert_eq!(v.lookup(Path::new("d/y")), Lower::NonDir);
        assert_eq!(v.lookup(Path::new("nope/y")), Lower::Absent);
        // An opaque directory: its whiteouts for what is beneath, except
        // what it replaces; a directory replacing one recursively.
        let mut upper = BTreeMap::new();
        upper.insert(b"d".to_vec(), Upper::Dir { opaque: true });
        upper.insert(b"d/y".to_vec(), Upper::Other);
        upper.insert(b"d/sub".to_vec(), Upper::Dir { opaque: false });
        upper.insert(b"new".to_vec(), Upper::Dir { opaque: true });
        upper.insert(b"gone".to_vec(), Upper::Whiteout);
        let w: Vec<String> = whiteouts(&upper, &v)
            .into_iter()
            .map(|p| String::from_utf8(p).unwrap())
            .collect();
        assert_eq!(w, ["d/sub/z", "d/w"]);
    }
}
