//! `strata build --check-reproducible`: each build-step layer is built a
//! second time, from scratch, and compared with the first, entry by entry,
//! in the layers' sorted order: the paths that differ, how (kind, mode,
//! owner, mtime, link target, size), and for file contents the first
//! differing byte offset.

use std::io::Read;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::layer::Layer;

/// Differences reported per layer, at most.
const MAX_DIFFERENCES: usize = 50;

/// One way two builds of a layer differ.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Difference {
    /// The path in the image.
    pub path: String,
    /// What differs.
    pub what: String,
}

/// What one entry of a layer is, apart from its content.
#[derive(PartialEq, Eq)]
struct Meta {
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<Vec<u8>>,
    size: u64,
}

/// A path and its entry.
type Named<'a, R> = (String, tar::Entry<'a, R>);

fn next<'a, R: Read>(it: &mut tar::Entries<'a, R>, label: &str) -> Result<Option<Named<'a, R>>> {
    match it.next() {
        None => Ok(None),
        Some(e) => {
            let e = e.map_err(|er| Error::from_pipeline(label, er))?;
            let p = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            Ok(Some((p, e)))
        }
    }
}

fn meta<R: Read>(e: &tar::Entry<'_, R>) -> Meta {
    let h = e.header();
    Meta {
        kind: h.entry_type().as_byte(),
        mode: h.mode().unwrap_or(0),
        uid: h.uid().unwrap_or(0),
        gid: h.gid().unwrap_or(0),
        mtime: h.mtime().unwrap_or(0),
        link: e.link_name_bytes().map(|l| l.into_owned()),
        size: e.size(),
    }
}

/// How the entries `a` and `b` (of the same path) differ.
fn describe(a: &Meta, b: &Meta) -> Vec<String> {
    let mut out = Vec::new();
    if a.kind != b.kind {
        out.push(format!(
            "entry type {:?} vs {:?}",
            a.kind as char, b.kind as char
        ));
    }
    if a.mode != b.mode {
        out.push(format!("mode {:o} vs {:o}", a.mode, b.mode));
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        out.push(format!("owner {}:{} vs {}:{}", a.uid, a.gid, b.uid, b.gid));
    }
    if a.mtime != b.mtime {
        out.push(format!("mtime {} vs {}", a.mtime, b.mtime));
    }
    if a.link != b.link {
        out.push("link target differs".into());
    }
    if a.size != b.size {
        out.push(format!("size {} vs {} bytes", a.size, b.size));
    }
    out
}

/// The first offset at which two streams differ (or where one ends).
fn first_difference(mut a: impl Read, mut b: impl Read) -> std::io::Result<Option<u64>> {
    let (mut ba, mut bb) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut a, &mut ba)?;
        let nb = read_full(&mut b, &mut bb)?;
        let n = na.min(nb);
        if let Some(i) = (0..n).find(|&i| ba[i] != bb[i]) {
            return Ok(Some(offset + i as u64));
        }
        if na != nb {
            return Ok(Some(offset + n as u64));
        }
        if na == 0 {
            return Ok(None);
        }
        offset += n as u64;
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// How two builds of one layer differ (empty when they are the same).
pub fn compare(first: &dyn Layer, second: &dyn Layer) -> Result<Vec<Difference>> {
    if first.diff_id() == second.diff_id() {
        return Ok(Vec::new());
    }
    let label = format!("layer {}", first.descriptor().digest);
    let mut ra = tar::Archive::new(crate::layer::uncompressed(first)?);
    let mut rb = tar::Archive::new(crate::layer::uncompressed(second)?);
    let mut ia = ra.entries().map_err(|e| Error::from_pipeline(&label, e))?;
    let mut ib = rb.entries().map_err(|e| Error::from_pipeline(&label, e))?;
    let mut out = Vec::new();
    let mut a = next(&mut ia, &label)?;
    let mut b = next(&mut ib, &label)?;
    let diff = |path: &str, what: String| Difference {
        path: format!("/{}", path.trim_end_matches('/')),
        what,
    };
    while out.len() < MAX_DIFFERENCES {
        match (a.take(), b.take()) {
            (None, None) => break,
            (Some((pa, _)), None) => {
                out.push(diff(&pa, "only in the first build".into()));
                a = next(&mut ia, &label)?;
            }
            (None, Some((pb, _))) => {
                out.push(diff(&pb, "only in the second build".into()));
                b = next(&mut ib, &label)?;
            }
            (Some((pa, ea)), Some((pb, eb))) if pa < pb => {
                out.push(diff(&pa, "only in the first build".into()));
                a = next(&mut ia, &label)?;
                b = Some((pb, eb));
                drop(ea);
            }
            (Some((pa, ea)), Some((pb, eb))) if pa > pb => {
                out.push(diff(&pb, "only in the second build".into()));
                b = next(&mut ib, &label)?;
                a = Some((pa, ea));
                drop(eb);
            }
            (Some((p, ea)), Some((_, eb))) => {
                let (ma, mb) = (meta(&ea), meta(&eb));
                let mut what = describe(&ma, &mb);
                if ma.kind == b'0'
                    && mb.kind == b'0'
                    && let Some(off) =
                        first_difference(ea, eb).map_err(|e| Error::from_pipeline(&label, e))?
                {
                    what.push(format!("content differs from byte {off}"));
                }
                if !what.is_empty() {
                    out.push(diff(&p, what.join(", ")));
                }
                a = next(&mut ia, &label)?;
                b = next(&mut ib, &label)?;
            }
        }
    }
    if out.is_empty() {
        // Same entries, different bytes: padding or header fields.
        out.push(Difference {
            path: "/".into(),
            what: "the tar streams differ outside the entries (headers or padding)".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_differences_are_found() {
        assert_eq!(first_difference(&b"abc"[..], &b"abc"[..]).unwrap(), None);
        assert_eq!(
            first_difference(&b"abcd"[..], &b"abXd"[..]).unwrap(),
            Some(2)
        );
        assert_eq!(first_difference(&b"ab"[..], &b"abc"[..]).unwrap(), Some(2));
        let big_a = vec![7u8; 200_000];
        let mut big_b = big_a.clone();
        big_b[150_001] = 0;
        assert_eq!(
            first_difference(&big_a[..], &big_b[..]).unwrap(),
            Some(150_001)
        );
    }
}
