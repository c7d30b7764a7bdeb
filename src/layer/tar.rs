//! strata's tar header policy, written by hand on top of `tar::Header`.
//!
//! * ustar headers; a path that does not fit name/prefix, a long link
//!   target, a size of 8 GiB or more, or an id above 2097151 gets a PAX
//!   extended header (`PaxHeader`, deterministic name) in front.
//! * mtime is the same for every entry (see [`crate::layer::LayerBuilder::mtime`]);
//!   uname and gname are empty; no atime or ctime; device numbers are 0.
//! * Directories end in `/`. Permission bits keep setuid, setgid and sticky.
//! * xattrs become `SCHILY.xattr.*` PAX records when asked for.

use std::io::{self, Write};

use super::walk::{Entry, EntryKind};

const BLOCK: usize = 512;
const MAX_OCTAL_SIZE: u64 = 0o77777777777; // 11 octal digits
const MAX_OCTAL_ID: u32 = 0o7777777; // 7 octal digits

/// Writes tar entries with strata's header policy to `w`.
pub struct TarEncoder<W: Write> {
    w: W,
    mtime: u64,
}

impl<W: Write> TarEncoder<W> {
    /// A new encoder; every header gets `mtime`.
    pub fn new(w: W, mtime: u64) -> Self {
        TarEncoder { w, mtime }
    }

    /// The mtime written in the headers that follow (build-step layers
    /// keep each file's time, clamped to the epoch).
    pub fn set_mtime(&mut self, mtime: u64) {
        self.mtime = mtime;
    }

    /// Writes the header (and PAX header if needed) of `e` whose content is
    /// `size` bytes; for files, the caller then writes exactly `size` bytes
    /// followed by [`TarEncoder::pad`].
    pub fn header(&mut self, e: &Entry, size: u64) -> io::Result<()> {
        let mut path = e.path.clone();
        let (etype, link): (tar::EntryType, Option<&[u8]>) = match &e.kind {
            EntryKind::Dir => {
                path.push(b'/');
                (tar::EntryType::Directory, None)
            }
            EntryKind::File { .. } => (tar::EntryType::Regular, None),
            EntryKind::Symlink(t) => (tar::EntryType::Symlink, Some(t)),
            EntryKind::Hardlink(t) => (tar::EntryType::Link, Some(t)),
        };
        let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(etype);
        h.set_mode(e.mode);
        h.set_mtime(self.mtime);
        if !set_ustar_path(&mut h, &path) {
            pax.push(("path", path.clone()));
            set_truncated_name(&mut h, &path);
        }
        if let Some(t) = link {
            if t.len() <= 100 {
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
            } else {
                pax.push(("linkpath", t.to_vec()));
                h.as_old_mut().linkname.copy_from_slice(&t[..100]);
            }
        }
        if size > MAX_OCTAL_SIZE {
            pax.push(("size", size.to_string().into_bytes()));
            h.set_size(0);
        } else {
            h.set_size(size);
        }
        for (key, id) in [("uid", e.uid), ("gid", e.gid)] {
            if id > MAX_OCTAL_ID {
                pax.push((key, id.to_string().into_bytes()));
            }
        }
        h.set_uid(u64::from(e.uid.min(MAX_OCTAL_ID)));
        h.set_gid(u64::from(e.gid.min(MAX_OCTAL_ID)));
        let xattr_keys: Vec<String> = e
            .xattrs
            .iter()
            .map(|(k, _)| format!("SCHILY.xattr.{}", String::from_utf8_lossy(k)))
            .collect();
        for ((_, v), k) in e.xattrs.iter().zip(&xattr_keys) {
            pax.push((k.as_str(), v.clone()));
        }
        if !pax.is_empty() {
            self.write_pax(&pax)?;
        }
        // Device fields are zero-filled octal for every entry.
        h.set_device_major(0)?;
        h.set_device_minor(0)?;
        h.set_cksum();
        self.w.write_all(h.as_bytes())
    }

    fn write_pax(&mut self, records: &[(&str, Vec<u8>)]) -> io::Result<()> {
        let mut body = Vec::new();
        for (k, v) in records {
            // "%d %s=%s\n" where %d counts the whole record including itself.
            let rest = k.len() + v.len() + 3; // ' ', '=', '\n'
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_mode(0o644);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(body.len() as u64);
        h.as_old_mut().name[..9].copy_from_slice(b"PaxHeader");
        h.set_device_major(0)?;
        h.set_device_minor(0)?;
        h.set_cksum();
        self.w.write_all(h.as_bytes())?;
        self.w.write_all(&body)?;
        self.pad(body.len() as u64)
    }

    /// Pads file content of `size` bytes to the block boundary.
    pub fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.w.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// The underlying writer (to stream file content).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.w
    }

    /// Writes the end-of-archive marker and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.write_all(&[0u8; BLOCK * 2])?;
        Ok(self.w)
    }
}

/// Puts `path` in the ustar name (and prefix) fields; false when it does
/// not fit and a PAX path record is needed.
fn set_ustar_path(h: &mut tar::Header, path: &[u8]) -> bool {
    let ustar = h.as_ustar_mut().expect("ustar header");
    if path.len() <= 100 {
        ustar.name[..path.len()].copy_from_slice(path);
        return true;
    }
    // Split at a '/' so that prefix ≤ 155 and name ≤ 100 bytes.
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let trailing = trimmed.len() != path.len();
    for (i, &b) in trimmed.iter().enumerate().rev() {
        if b != b'/' {
            continue;
        }
        let (prefix, name) = (&trimmed[..i], &trimmed[i + 1..]);
        let name_len = name.len() + usize::from(trailing);
        if prefix.len() <= 155 && name_len <= 100 && !name.is_empty() {
            ustar.prefix[..prefix.len()].copy_from_slice(prefix);
            ustar.name[..name.len()].copy_from_slice(name);
            if trailing {
                ustar.name[name.len()] = b'/';
            }
            return true;
        }
        if prefix.len() <= 155 {
            break;
        }
    }
    false
}

fn set_truncated_name(h: &mut tar::Header, path: &[u8]) {
    let n = path.len().min(100);
    h.as_old_mut().name[..n].copy_from_slice(&path[..n]);
}
