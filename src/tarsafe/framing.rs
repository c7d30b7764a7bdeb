//! An independent check of a tar stream's framing, as Go's archive/tar
//! (containerd, umoci, Docker) reads it, run on the bytes as they flow into
//! the tar crate, so that strata accepts only archives both parse the same
//! way.
//!
//! It refuses what Go refuses (bad checksums, malformed PAX records: a
//! wrong record length, no `=`, a non-numeric length, `size=-1`, a size
//! that does not fit in 64 bits, NUL in names) and what the two parsers
//! would read differently: data on header-only entries (links,
//! directories, devices), one zero block followed by more entries, GNU
//! sparse files, and PAX or GNU long-name headers over 1 MiB (Go's limit,
//! which also bounds what is held in memory).

use std::io::{self, Read};

/// The largest PAX or GNU long-name header Go accepts.
pub const MAX_SPECIAL: u64 = 1 << 20;
const BLOCK: usize = 512;

/// A reader that checks the framing of the tar stream passing through it;
/// a violation is an `InvalidData` error naming the header's offset.
pub struct Framing<R> {
    inner: R,
    /// Offset of the next byte in the stream.
    pos: u64,
    state: State,
    /// A block being assembled (a header, or the block after a zero one).
    block: Vec<u8>,
    /// Size from the last local PAX header, for the next entry.
    pax_size: Option<u64>,
}

enum State {
    /// Reading a header block.
    Header,
    /// Inside an entry's data (padded to the block size); `keep` collects
    /// a PAX header's records.
    Data {
        left: u64,
        keep: Option<(u8, Vec<u8>)>,
        unpadded: u64,
    },
    /// Read one zero block; the next must be zero too.
    OneZero,
    /// Past the end-of-archive marker.
    End,
}

impl<R: Read> Framing<R> {
    /// Checks the tar stream `inner`.
    pub fn new(inner: R) -> Self {
        Framing {
            inner,
            pos: 0,
            state: State::Header,
            block: Vec::with_capacity(BLOCK),
            pax_size: None,
        }
    }

    fn fail(&self, at: u64, why: impl std::fmt::Display) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("invalid tar header at byte {at}: {why}"),
        )
    }

    /// Feeds `bytes` (just read) through the state machine.
    fn observe(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::End => return Ok(()),
                State::Data {
                    left,
                    keep,
                    unpadded,
                } => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    if let Some((_, buf)) = keep {
                        let want = (*unpadded as usize).saturating_sub(buf.len()).min(n);
                        buf.extend_from_slice(&bytes[..want]);
                    }
                    *left -= n as u64;
                    self.pos += n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        let kept = keep.take();
                        self.state = State::Header;
                        if let Some((kind, records)) = kept {
                            let at = self.pos;
                            let size = parse_pax(&records).map_err(|e| self.fail(at, e))?;
                            if kind == b'x' {
                                self.pax_size = size;
                            }
                        }
                    }
                }
                State::Header | State::OneZero => {
                    let n = (BLOCK - self.block.len()).min(bytes.len());
                    self.block.extend_from_slice(&bytes[..n]);
                    self.pos += n as u64;
                    bytes = &bytes[n..];
                    if self.block.len() == BLOCK {
                        let block = std::mem::take(&mut self.block);
                        self.header(&block)?;
                        self.block = block;
                        self.block.clear();
                    }
                }
            }
        }
        Ok(())
    }

    /// A complete block in the Header or OneZero state.
    fn header(&mut self, h: &[u8]) -> io::Result<()> {
        let at = self.pos - BLOCK as u64;
        let zero = h.iter().all(|&b| b == 0);
        if matches!(self.state, State::OneZero) {
            if !zero {
                return Err(self.fail(
                    at,
                    "an entry after a zero block (the end-of-archive marker is two)",
                ));
            }
            self.state = State::End;
            return Ok(());
        }
        if zero {
            if self.pax_size.is_some() {
                return Err(self.fail(at, "the archive ends after a PAX header"));
            }
            self.state = State::OneZero;
            return Ok(());
        }
        check_checksum(h).map_err(|e| self.fail(at, e))?;
        let kind = h[156];
        let header_size = numeric(&h[124..136]).map_err(|e| self.fail(at, format!("size: {e}")))?;
        let size = match kind {
            b'x' | b'g' | b'L' | b'K' => header_size,
            _ => self.pax_size.take().unwrap_or(header_size),
        };
        match kind {
            b'S' => {
                return Err(self.fail(
                    at,
                    "a GNU sparse file, which strata does not accept in layers",
                ));
            }
            b'x' | b'g' | b'L' | b'K' if size > MAX_SPECIAL => {
                return Err(self.fail(
                    at,
                    format!("a {}-byte extended header (at most {MAX_SPECIAL})", size),
                ));
            }
            // Links, directories, devices and FIFOs carry no data; Go
            // ignores a size on them, the tar crate skips it: refused.
            b'1' | b'2' | b'3' | b'4' | b'5' | b'6' if size != 0 => {
                return Err(self.fail(
                    at,
                    format!(
                        "a header-only entry (type {:?}) with size {size}",
                        kind as char
                    ),
                ));
            }
            _ => {}
        }
        let keep = matches!(kind, b'x' | b'g').then(|| (kind, Vec::with_capacity(size as usize)));
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        self.state = if padded == 0 {
            if let Some((k, records)) = keep {
                let size = parse_pax(&records).map_err(|e| self.fail(at, e))?;
                if k == b'x' {
                    self.pax_size = size;
                }
            }
            State::Header
        } else {
            State::Data {
                left: padded,
                keep,
                unpadded: size,
            }
        };
        Ok(())
    }
}

impl<R: Read> Read for Framing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.observe(&buf[..n])?;
        if n == 0 && !buf.is_empty() && matches!(self.state, State::Data { .. }) {
            return Err(self.fail(self.pos, "the archive ends inside an entry"));
        }
        Ok(n)
    }
}

fn check_checksum(h: &[u8]) -> Result<(), String> {
    let stored = octal(&h[148..156]).map_err(|e| format!("checksum field: {e}"))?;
    let unsigned: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u64
            }
        })
        .sum();
    let signed: i64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as i8 as i64
            }
        })
        .sum();
    if stored != unsigned && stored as i64 != signed {
        return Err(format!(
            "checksum {stored} does not match the header ({unsigned})"
        ));
    }
    Ok(())
}

/// An octal field as Go's parseOctal reads it: NULs and spaces around it
/// are trimmed, and what is left must be octal digits.
fn octal(f: &[u8]) -> Result<u64, String> {
    let t = trim(f);
    if t.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(t).map_err(|_| "not ASCII".to_string())?;
    u64::from_str_radix(s, 8).map_err(|_| format!("{s:?} is not an octal number"))
}

/// A numeric field: octal, or base-256 when its first byte has the high bit.
fn numeric(f: &[u8]) -> Result<u64, String> {
    if f[0] & 0x80 == 0 {
        return octal(f);
    }
    if f[0] & 0x40 != 0 {
        return Err("a negative base-256 number".into());
    }
    let mut v: u64 = (f[0] & 0x3f) as u64;
    for &b in &f[1..] {
        if v >> 56 != 0 {
            return Err("a base-256 number over 64 bits".into());
        }
        v = (v << 8) | b as u64;
    }
    if v > i64::MAX as u64 {
        return Err("a base-256 number over 63 bits".into());
    }
    Ok(v)
}

fn trim(f: &[u8]) -> &[u8] {
    let is_pad = |b: &u8| *b == 0 || *b == b' ';
    let start = f.iter().position(|b| !is_pad(b)).unwrap_or(f.len());
    let end = f.iter().rposition(|b| !is_pad(b)).map_or(start, |e| e + 1);
    &f[start..end.max(start)]
}

/// Parses PAX records as Go's parsePAX and mergePAX do, returning the
/// `size` record's value.
pub fn parse_pax(mut s: &[u8]) -> Result<Option<u64>, String> {
    let mut size = None;
    while !s.is_empty() {
        let sp = s
            .iter()
            .position(|&b| b == b' ')
            .ok_or("a PAX record without a length")?;
        let len = std::str::from_utf8(&s[..sp])
            .ok()
            .and_then(|l| l.parse::<i64>().ok())
            .ok_or_else(|| {
                format!(
                    "PAX record length {:?} is not a number",
                    String::from_utf8_lossy(&s[..sp])
                )
            })?;
        if len < 5 || len as u64 > s.len() as u64 || sp as i64 + 1 >= len {
            return Err(format!("PAX record length {len} does not fit the record"));
        }
        let (rec, rest) = s.split_at(len as usize);
        s = rest;
        let rec = &rec[sp + 1..];
        let rec = rec
            .strip_suffix(b"\n")
            .ok_or("a PAX record that does not end its length with a newline")?;
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or("a PAX record without '='")?;
        let (k, v) = (&rec[..eq], &rec[eq + 1..]);
        let key = std::str::from_utf8(k).map_err(|_| "a PAX key that is not UTF-8")?;
        let nul_in = |x: &[u8]| x.contains(&0);
        match key {
            "" => return Err("a PAX record with an empty key".into()),
            "path" | "linkpath" | "uname" | "gname" if nul_in(v) => {
                return Err(format!("a NUL byte in the PAX {key}"));
            }
            _ if nul_in(k) => return Err("a NUL byte in a PAX key".into()),
            _ => {}
        }
        let text = || std::str::from_utf8(v).map_err(|_| format!("PAX {key} is not text"));
        match key {
            "size" => {
                let n = text()?.parse::<i64>().map_err(|_| {
                    format!("PAX size {:?} is not a 64-bit number", text().unwrap_or(""))
                })?;
                if n < 0 {
                    return Err(format!("PAX size {n} is negative"));
                }
                size = Some(n as u64);
            }
            "uid" | "gid" => {
                text()?.parse::<i64>().map_err(|_| {
                    format!(
                        "PAX {key} {:?} is not a 64-bit number",
                        text().unwrap_or("")
                    )
                })?;
            }
            "mtime" | "atime" | "ctime" => {
                check_pax_time(text()?).map_err(|e| format!("PAX {key}: {e}"))?
            }
            k if k.starts_with("GNU.sparse.") => {
                return Err("a GNU sparse file, which strata does not accept in layers".into());
            }
            _ => {}
        }
    }
    Ok(size)
}

/// Go's parsePAXTime: seconds as a 64-bit number, an optional fraction of
/// digits.
fn check_pax_time(t: &str) -> Result<(), String> {
    let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
    secs.parse::<i64>()
        .map_err(|_| format!("{t:?} is not a time"))?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{t:?} is not a time"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kv: &str) -> Vec<u8> {
        // "LEN kv\n" with LEN counting itself.
        let body = kv.len() + 2;
        let mut len = body + 1;
        while format!("{len} {kv}\n").len() != len {
            len += 1;
        }
        format!("{len} {kv}\n").into_bytes()
    }

    #[test]
    fn pax_records_are_parsed_as_strictly_as_go() {
        assert_eq!(parse_pax(&rec("path=a/b")), Ok(None));
        assert_eq!(parse_pax(&rec("size=42")), Ok(Some(42)));
        let mut two = rec("path=x");
        two.extend(rec("mtime=1700000000.123"));
        assert_eq!(parse_pax(&two), Ok(None));
        for (bad, why) in [
            (b"8 path=x\n".to_vec(), "newline"),
            (b"11 path=x\n".to_vec(), "does not fit"),
            (b"10 pathx\n\n".to_vec(), "without '='"),
            (b"xx path=x\n".to_vec(), "not a number"),
            (rec("size=-1"), "negative"),
            (rec("size=99999999999999999999"), "64-bit"),
            (rec("size=12a"), "64-bit"),
            (rec("uid=x"), "64-bit"),
            (rec("mtime=1.x"), "not a time"),
            (rec("=v"), "empty key"),
            (rec("path=a\0b"), "NUL"),
            (rec("GNU.sparse.map=0,1"), "sparse"),
            (b"10 path=ab".to_vec(), "newline"),
            (b"path=x\n".to_vec(), "without a length"),
        ] {
            let e = parse_pax(&bad).unwrap_err();
            assert!(e.contains(why), "{:?}: {e}", String::from_utf8_lossy(&bad));
        }
    }

    fn header(name: &str, kind: tar::EntryType, size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    fn read_all(bytes: &[u8]) -> io::Result<()> {
        io::copy(&mut Framing::new(bytes), &mut io::sink()).map(|_| ())
    }

    fn pad(mut v: Vec<u8>) -> Vec<u8> {
        v.resize(v.len().div_ceil(512) * 512, 0);
        v
    }

    #[test]
    fn framing_refuses_what_parsers_would_read_differently() {
        let mut ok = header("a", tar::EntryType::Regular, 3);
        ok.extend(pad(b"abc".to_vec()));
        ok.extend([0u8; 1024]);
        read_all(&ok).unwrap();

        // A symlink with data.
        let mut bad = header("l", tar::EntryType::Symlink, 3);
        bad.extend(pad(b"abc".to_vec()));
        bad.extend([0u8; 1024]);
        let e = read_all(&bad).unwrap_err().to_string();
        assert!(e.contains("header-only") && e.contains("byte 0"), "{e}");

        // One zero block, then another entry.
        let mut bad = ok[..1024].to_vec();
        bad.extend([0u8; 512]);
        bad.extend(header("b", tar::EntryType::Regular, 0));
        let e = read_all(&bad).unwrap_err().to_string();
        assert!(e.contains("after a zero block"), "{e}");

        // A bad checksum.
        let mut bad = ok.clone();
        bad[0] = b'z';
        let e = read_all(&bad).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");

        // A malformed PAX header.
        let records = b"12 path=x\n".to_vec();
        let mut bad = header("pax", tar::EntryType::XHeader, records.len() as u64);
        bad.extend(pad(records));
        bad.extend(&ok);
        let e = read_all(&bad).unwrap_err().to_string();
        assert!(e.contains("does not fit"), "{e}");

        // An oversized PAX header is refused before its data is read.
        let bad = header("pax", tar::EntryType::XHeader, MAX_SPECIAL + 1);
        let e = read_all(&bad).unwrap_err().to_string();
        assert!(e.contains("extended header"), "{e}");

        // A PAX size applies to the next entry's framing.
        let records = rec("size=3");
        let mut good = header("pax", tar::EntryType::XHeader, records.len() as u64);
        good.extend(pad(records));
        good.extend(header("a", tar::EntryType::Regular, 0));
        good.extend(pad(b"abc".to_vec()));
        good.extend([0u8; 1024]);
        read_all(&good).unwrap();

        // Cut inside an entry.
        let e = read_all(&ok[..600]).unwrap_err().to_string();
        assert!(e.contains("ends inside an entry"), "{e}");
    }
}
