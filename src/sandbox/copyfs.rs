//! The root filesystem where overlayfs cannot be mounted: the snapshots
//! are copied into one directory (whiteouts and opaque directories
//! applied), every path's stamp is recorded, and after the commands ran the
//! directory is compared with the stamps to make an upper directory in
//! overlayfs's format (changed paths with their parent directories, a
//! 0/0 character device where a path was removed). The capture reads it
//! as it reads an overlay's upper directory and writes removals in one
//! form (see [`super::canon`]), so both give the same layer.
//!
//! A path counts as changed when its inode, ctime, mtime, size, mode or
//! owner differ: any write, rename, chmod or chown changes its ctime. The
//! copy costs the disk space and time of the whole stack, which is why
//! overlayfs is used wherever it mounts.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::rootfs::{check, cpath, remove_any};
use crate::error::{Error, IoContext, Result};

/// What identifies a path's state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    ino: u64,
    ctime: (i64, i64),
    mtime: (i64, i64),
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Self {
        Stamp {
            ino: m.ino(),
            ctime: (m.ctime(), m.ctime_nsec()),
            mtime: (m.mtime(), m.mtime_nsec()),
            size: m.size(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
        }
    }
}

/// The stamps of every path of a copied root filesystem, by relative path.
pub struct Stamps(HashMap<PathBuf, Stamp>);

/// Copies `lowers` (base first) into the empty directory `root`, applying
/// their whiteouts and opaque directories, and records the stamps.
pub fn copy_stack(lowers: &[PathBuf], root: &Path) -> Result<Stamps> {
    for lower in lowers {
        let mut dirs = Vec::new();
        apply(lower, root, Path::new(""), &mut dirs)?;
        // Children change their directory's mtime: set them last, deepest
        // first.
        for (d, m) in dirs.iter().rev() {
            set_times(d, m)?;
        }
    }
    let mut stamps = HashMap::new();
    walk(root, Path::new(""), &mut |rel, m| {
        stamps.insert(rel.to_path_buf(), Stamp::of(m));
        Ok(())
    })?;
    Ok(Stamps(stamps))
}

/// Applies the directory `rel` of `lower` onto `root`.
fn apply(
    lower: &Path,
    root: &Path,
    rel: &Path,
    dirs: &mut Vec<(PathBuf, fs::Metadata)>,
) -> Result<()> {
    let src_dir = lower.join(rel);
    for e in fs::read_dir(&src_dir).at(&src_dir)? {
        let e = e.at(&src_dir)?;
        let rel = rel.join(e.file_name());
        let (src, dst) = (lower.join(&rel), root.join(&rel));
        let m = fs::symlink_metadata(&src).at(&src)?;
        let ft = m.file_type();
        if ft.is_char_device() && m.rdev() == 0 {
            remove_any(&dst)?;
            continue;
        }
        if ft.is_dir() {
            let existing = fs::symlink_metadata(&dst).ok();
            if existing.as_ref().is_some_and(|d| !d.is_dir()) || is_opaque(&src) {
                remove_any(&dst)?;
            }
            if !dst.is_dir() {
                fs::create_dir(&dst).at(&dst)?;
            }
            set_meta(&src, &dst, &m)?;
            dirs.push((dst, m));
            apply(lower, root, &rel, dirs)?;
            continue;
        }
        remove_any(&dst)?;
        copy_entry(&src, &dst, &m)?;
    }
    Ok(())
}

/// Copies one non-directory entry with its metadata.
fn copy_entry(src: &Path, dst: &Path, m: &fs::Metadata) -> Result<()> {
    let ft = m.file_type();
    if ft.is_symlink() {
        let t = fs::read_link(src).at(src)?;
        std::os::unix::fs::symlink(&t, dst).at(dst)?;
    } else if ft.is_file() {
        // copy_file_range: a reflink where the filesystem has them.
        fs::copy(src, dst).map_err(|e| Error::io(dst, e))?;
    } else {
        let c = cpath(dst)?;
        let rc = unsafe { libc::mknod(c.as_ptr(), m.mode() as libc::mode_t, m.rdev()) };
        check(rc, dst)?;
    }
    set_meta(src, dst, m)?;
    set_times(dst, m)
}

/// Owner, mode (not for symlinks) and extended attributes (not overlay's
/// own) of `src` onto `dst`.
fn set_meta(src: &Path, dst: &Path, m: &fs::Metadata) -> Result<()> {
    let c = cpath(dst)?;
    check(unsafe { libc::lchown(c.as_ptr(), m.uid(), m.gid()) }, dst)?;
    if !m.file_type().is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777)).at(dst)?;
    }
    for (name, value) in xattrs(src)? {
        if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
            continue;
        }
        crate::sandbox::rootfs::set_xattr(dst, &name, &value)?;
    }
    Ok(())
}

impl Stamps {
    /// Compares `root` with the stamps and writes the difference into the
    /// empty directory `upper` in overlayfs's format (files are hard links
    /// into `root`, which must stay until the capture is done).
    pub fn diff_into(&self, root: &Path, upper: &Path) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        let mut changed: Vec<PathBuf> = Vec::new();
        walk(root, Path::new(""), &mut |rel, m| {
            seen.insert(rel.to_path_buf());
            if self.0.get(rel) != Some(&Stamp::of(m)) {
                changed.push(rel.to_path_buf());
            }
            Ok(())
        })?;
        for rel in &changed {
            copy_up(root, upper, rel)?;
        }
        // Removed paths: a whiteout at the highest one, unless what held
        // it is not a directory any more (a file cannot hold it).
        let mut removed: Vec<&PathBuf> = self.0.keys().filter(|p| !seen.contains(*p)).collect();
        removed.sort();
        let mut last: Option<&PathBuf> = None;
        for rel in removed {
            if last.is_some_and(|l| rel.starts_with(l)) {
                continue;
            }
            last = Some(rel);
            let parent = rel.parent().unwrap_or(Path::new(""));
            if !parent.as_os_str().is_empty() {
                if !root.join(parent).is_dir() {
                    continue;
                }
                copy_up(root, upper, parent)?;
            }
            let w = upper.join(rel);
            let c = cpath(&w)?;
            check(unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) }, &w)?;
        }
        // Copied-up directories keep the times they have in the root, as
        // overlayfs keeps them; deepest first, since setting a child's
        // changes nothing above it but making entries did.
        let mut dirs = Vec::new();
        walk(upper, Path::new(""), &mut |rel, m| {
            if m.is_dir() {
                dirs.push(rel.to_path_buf());
            }
            Ok(())
        })?;
        for rel in dirs.iter().rev() {
            if let Ok(m) = fs::symlink_metadata(root.join(rel))
                && m.is_dir()
            {
                set_times(&upper.join(rel), &m)?;
            }
        }
        Ok(())
    }
}

/// Puts `rel` (and its parent directories, with their metadata) into
/// `upper`: a directory is made, anything else hard-linked.
fn copy_up(root: &Path, upper: &Path, rel: &Path) -> Result<()> {
    let mut at = PathBuf::new();
    let parts: Vec<_> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        let (src, dst) = (root.join(&at), upper.join(&at));
        if fs::symlink_metadata(&dst).is_ok() {
            continue;
        }
        let m = fs::symlink_metadata(&src).at(&src)?;
        if m.is_dir() {
            fs::create_dir(&dst).at(&dst)?;
            set_meta(&src, &dst, &m)?;
        } else if i + 1 == parts.len() {
            fs::hard_link(&src, &dst).map_err(|e| Error::io(&dst, e))?;
        }
    }
    Ok(())
}

/// Calls `f` for every path below `root` (relative), parents first.
fn walk(
    root: &Path,
    rel: &Path,
    f: &mut dyn FnMut(&Path, &fs::Metadata) -> Result<()>,
) -> Result<()> {
    let dir = root.join(rel);
    for e in fs::read_dir(&dir).at(&dir)? {
        let e = e.at(&dir)?;
        let rel = rel.join(e.file_name());
        let p = root.join(&rel);
        let m = fs::symlink_metadata(&p).at(&p)?;
        f(&rel, &m)?;
        if m.is_dir() {
            walk(root, &rel, f)?;
        }
    }
    Ok(())
}

fn is_opaque(p: &Path) -> bool {
    xattrs(p).is_ok_and(|x| {
        x.iter()
            .any(|(n, v)| n == b"trusted.overlay.opaque" && v == b"y")
    })
}

/// The extended attributes of `p` itself.
fn xattrs(p: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let c = cpath(p)?;
    let mut names = vec![0u8; 4096];
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOTSUP) => Ok(Vec::new()),
            _ => Err(Error::io(p, e)),
        };
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cn = CString::new(name).expect("split at NUL");
        let mut buf = vec![0u8; 65536];
        let len =
            unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if len >= 0 {
            buf.truncate(len as usize);
            out.push((name.to_vec(), buf));
        }
    }
    Ok(out)
}

fn set_times(p: &Path, m: &fs::Metadata) -> Result<()> {
    let c = cpath(p)?;
    let t = |s: i64, ns: i64| libc::timespec {
        tv_sec: s as libc::time_t,
        tv_nsec: ns as _,
    };
    let times = [t(m.atime(), m.atime_nsec()), t(m.mtime(), m.mtime_nsec())];
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(rc, p)
}
