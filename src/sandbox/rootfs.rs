//! Unpacked layers ("snapshots"), kept under the store by diff_id and
//! stacked as overlay lower directories, as containerd's snapshotter keeps
//! them. A snapshot is unpacked into a temp directory and renamed into
//! place, so a crash never leaves a half-unpacked one under its name.
//!
//! Unpacking goes through [`crate::tarsafe::for_each_entry`] (names,
//! links and framing checked), into a fresh directory where the only
//! entries are the layer's own, so no path can pass through a symlink.
//! Whiteouts become overlay whiteouts (a 0/0 character device) and opaque
//! markers the `trusted.overlay.opaque` attribute, so the stack reads as
//! the image would.

use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer::Layer;

/// Where snapshots live: `STORE/.strata/rootfs/HEX` per diff_id.
pub fn snapshots_dir(store_root: &Path) -> PathBuf {
    store_root.join(".strata/rootfs")
}

/// The unpacked directory of `layer`, unpacking it first when needed.
pub fn snapshot(store_root: &Path, layer: &dyn Layer) -> Result<PathBuf> {
    let dir = snapshots_dir(store_root);
    let diff_id = layer.diff_id();
    let path = dir.join(diff_id.hex());
    if path.is_dir() {
        return Ok(path);
    }
    fs::create_dir_all(&dir).at(&dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-unpack-")
        .tempdir_in(&dir)
        .at(&dir)?;
    let root = tmp.path().join("fs");
    fs::create_dir(&root).at(&root)?;
    unpack(layer, &root, &diff_id)?;
    match fs::rename(&root, &path) {
        Ok(()) => {}
        // Another build unpacked the same layer first: theirs is as good.
        Err(_) if path.is_dir() => {}
        Err(e) => return Err(Error::io(&path, e)),
    }
    Ok(path)
}

fn unpack(layer: &dyn Layer, root: &Path, diff_id: &Digest) -> Result<()> {
    let d = layer.descriptor();
    let label = PathBuf::from(format!("layer {}", d.digest));
    let blob = crate::digest::VerifyingReader::new(
        layer.open()?,
        d.digest.clone(),
        Some(d.size),
        format!("layer {}", d.digest),
    );
    let dec = crate::layer::decompress(blob).map_err(|e| Error::from_pipeline(&label, e))?;
    let dec = crate::digest::VerifyingReader::new(
        dec,
        diff_id.clone(),
        None,
        format!("uncompressed layer {} (diff_id)", d.digest),
    );
    let mut dirs: Vec<(PathBuf, i64)> = Vec::new();
    crate::tarsafe::for_each_entry(&label, dec, |name, e| {
        if name.is_empty() {
            return Ok(());
        }
        let dest = root.join(name);
        let h = e.header();
        let kind = h.entry_type();
        let mode = h.mode().at(&label)? & 0o7777;
        let uid = h.uid().at(&label)? as u32;
        let gid = h.gid().at(&label)? as u32;
        let mtime = h.mtime().at(&label)? as i64;
        let file_name = dest
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).at(parent)?;
        }
        // Whiteouts: `.wh..wh..opq` marks its directory opaque, `.wh.NAME`
        // hides NAME of the layers beneath.
        if file_name == b".wh..wh..opq" {
            let parent = dest.parent().expect("has a parent");
            return set_xattr(parent, b"trusted.overlay.opaque", b"y");
        }
        if let Some(hidden) = file_name.strip_prefix(b".wh.") {
            let target = dest.with_file_name(std::ffi::OsStr::from_bytes(hidden));
            remove_any(&target)?;
            return mknod(&target, libc::S_IFCHR, 0);
        }
        if !kind.is_dir() {
            remove_any(&dest)?;
        }
        match kind {
            tar::EntryType::Directory => {
                if !dest.is_dir() {
                    remove_any(&dest)?;
                    fs::create_dir(&dest).at(&dest)?;
                }
                dirs.push((dest.clone(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&dest)
                    .at(&dest)?;
                let size = e.size();
                std::io::copy(&mut e.by_ref().take(size), &mut f)
                    .map_err(|er| Error::from_pipeline(&label, er))?;
            }
            tar::EntryType::Symlink => {
                let target = e.link_name_bytes().unwrap_or_default();
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &dest)
                    .at(&dest)?;
            }
            tar::EntryType::Link => {
                let target = e.link_name_bytes().unwrap_or_default();
                let target = crate::tarsafe::safe_entry_name(&label, &target)?;
                fs::hard_link(root.join(target), &dest).at(&dest)?;
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let major = h.device_major().at(&label)?.unwrap_or(0);
                let minor = h.device_minor().at(&label)?.unwrap_or(0);
                let fmt = if kind == tar::EntryType::Char {
                    libc::S_IFCHR
                } else {
                    libc::S_IFBLK
                };
                mknod(&dest, fmt | mode, libc::makedev(major, minor))?;
            }
            tar::EntryType::Fifo => mknod(&dest, libc::S_IFIFO | mode, 0)?,
            other => {
                return Err(Error::invalid(
                    "layer",
                    label.display().to_string(),
                    format!("entry {name:?} has type {other:?}, which strata cannot unpack"),
                ));
            }
        }
        lchown(&dest, uid, gid)?;
        if !kind.is_symlink() {
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).at(&dest)?;
        }
        if let Some(exts) = e.pax_extensions().at(&label)? {
            for ext in exts {
                let ext = ext.at(&label)?;
                if let Some(attr) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    set_xattr(&dest, attr, ext.value_bytes())?;
                }
            }
        }
        if !kind.is_dir() {
            set_mtime(&dest, mtime)?;
        }
        Ok(())
    })?;
    // Directory times last: writing their children moved them.
    for (d, mtime) in dirs.iter().rev() {
        set_mtime(d, *mtime)?;
    }
    Ok(())
}

pub(super) fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::bad_input(p.display().to_string(), "a NUL byte in a path"))
}

pub(super) fn check(rc: libc::c_int, p: &Path) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::io(p, std::io::Error::last_os_error()))
    }
}

pub(super) fn remove_any(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).at(p),
        Ok(_) => fs::remove_file(p).at(p),
        Err(_) => Ok(()),
    }
}

fn mknod(p: &Path, mode: libc::mode_t, dev: libc::dev_t) -> Result<()> {
    let c = cpath(p)?;
    check(unsafe { libc::mknod(c.as_ptr(), mode, dev) }, p)
}

fn lchown(p: &Path, uid: u32, gid: u32) -> Result<()> {
    let c = cpath(p)?;
    check(unsafe { libc::lchown(c.as_ptr(), uid, gid) }, p)
}

/// Sets an extended attribute on `p` itself (a symlink is not followed).
pub fn set_xattr(p: &Path, name: &[u8], value: &[u8]) -> Result<()> {
    let c = cpath(p)?;
    let n = CString::new(name)
        .map_err(|_| Error::bad_input(p.display().to_string(), "a NUL byte in an xattr name"))?;
    check(
        unsafe {
            libc::lsetxattr(
                c.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        },
        p,
    )
}

/// Sets the mtime (and atime) of `p` itself, a symlink not followed.
pub(crate) fn set_mtime(p: &Path, secs: i64) -> Result<()> {
    let c = cpath(p)?;
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    check(
        unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        },
        p,
    )
}
