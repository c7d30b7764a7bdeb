//! Reading .deb files: an `ar` archive holding `debian-binary`,
//! `control.tar.*` and `data.tar.*`, read in one forward pass.

use std::io::{self, Read};

use super::control::{Paragraph, parse_all};

/// The control part of a package: its `control` paragraph, `md5sums`, and
/// which maintainer scripts it has.
#[derive(Clone, Debug, Default)]
pub struct Control {
    /// The `control` file.
    pub paragraph: Paragraph,
    /// The `md5sums` file, if any.
    pub md5sums: Option<String>,
    /// `conffiles`, if any.
    pub conffiles: Option<String>,
    /// Names of maintainer scripts present (`postinst`, `preinst`, …).
    pub scripts: Vec<String>,
    /// The control members dpkg keeps in `/var/lib/dpkg/info` (the
    /// scripts, `triggers`, `templates`, `shlibs`, …) with their bytes and
    /// modes, sorted by name.
    pub info: Vec<(String, u32, Vec<u8>)>,
}

/// Largest control.tar accepted (real ones are a few KiB).
const MAX_CONTROL: u64 = 64 << 20;

/// A forward reader over the members of an `ar` archive.
pub struct ArReader<R: Read> {
    r: R,
    /// Bytes left in the current member (plus its padding byte).
    left: u64,
}

impl<R: Read> ArReader<R> {
    /// Checks the `!<arch>\n` magic.
    pub fn new(mut r: R) -> io::Result<Self> {
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)
            .map_err(|_| invalid("it is too short to be a .deb"))?;
        if &magic != b"!<arch>\n" {
            return Err(invalid("it is not a .deb (no ar archive magic)"));
        }
        Ok(ArReader { r, left: 0 })
    }

    /// Skips to the next member and returns its name and size; `None` at
    /// the end.
    pub fn next_member(&mut self) -> io::Result<Option<(String, u64)>> {
        io::copy(&mut (&mut self.r).take(self.left), &mut io::sink())?;
        self.left = 0;
        let mut h = [0u8; 60];
        let mut got = 0;
        while got < 60 {
            let n = self.r.read(&mut h[got..])?;
            if n == 0 {
                return if got == 0 {
                    Ok(None)
                } else {
                    Err(invalid("truncated ar member header"))
                };
            }
            got += n;
        }
        if &h[58..60] != b"`\n" {
            return Err(invalid("bad ar member header"));
        }
        let name = String::from_utf8_lossy(&h[..16])
            .trim_end()
            .trim_end_matches('/')
            .to_string();
        let size: u64 = String::from_utf8_lossy(&h[48..58])
            .trim()
            .parse()
            .map_err(|_| invalid("bad ar member size"))?;
        self.left = size + size % 2;
        Ok(Some((name, size)))
    }

    /// A reader over the current member's `size` bytes.
    pub fn member(&mut self, size: u64) -> MemberReader<'_, R> {
        MemberReader { ar: self, size }
    }
}

/// A reader over one member; reading it to the end leaves the archive at
/// the member's padding.
pub struct MemberReader<'a, R: Read> {
    ar: &'a mut ArReader<R>,
    size: u64,
}

impl<R: Read> Read for MemberReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.size == 0 {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.size) as usize;
        let n = self.ar.r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(invalid("truncated ar member"));
        }
        self.size -= n as u64;
        self.ar.left -= n as u64;
        Ok(n)
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Opens a .deb: reads `control.tar.*` and returns the control data and an
/// archive positioned at `data.tar.*` (its member name and size).
pub fn open<R: Read + Send>(r: R) -> io::Result<(Control, ArReader<R>, String, u64)> {
    let mut ar = ArReader::new(r)?;
    let mut control = None;
    while let Some((name, size)) = ar.next_member()? {
        if name.starts_with("control.tar") {
            if size > MAX_CONTROL {
                return Err(invalid("control.tar is implausibly large"));
            }
            let dec = super::decompress(ar.member(size), &name)?;
            control = Some(read_control(dec)?);
        } else if name.starts_with("data.tar") {
            let control = control.ok_or_else(|| invalid("data.tar comes before control.tar"))?;
            return Ok((control, ar, name, size));
        }
    }
    Err(invalid("it has no data.tar member"))
}

fn read_control(r: impl Read) -> io::Result<Control> {
    let mut c = Control::default();
    // Bytes of `info` members kept so far, bounded by MAX_CONTROL.
    let mut kept = 0u64;
    let mut ar = tar::Archive::new(r);
    for e in ar.entries()? {
        let mut e = e?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let path = e.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&path)
            .trim_start_matches("./")
            .to_string();
        let mut text = String::new();
        match name.as_str() {
            "control" | "md5sums" | "conffiles" => {
                (&mut e).take(MAX_CONTROL).read_to_string(&mut text)?;
            }
            "preinst" | "postinst" | "prerm" | "postrm" | "config" | "triggers" | "templates"
            | "shlibs" | "symbols" => {
                if matches!(
                    name.as_str(),
                    "preinst" | "postinst" | "prerm" | "postrm" | "config" | "triggers"
                ) {
                    c.scripts.push(name.clone());
                }
                let mode = e.header().mode()? & 0o7777;
                let mut bytes = Vec::new();
                (&mut e).take(MAX_CONTROL - kept).read_to_end(&mut bytes)?;
                kept += bytes.len() as u64;
                if kept >= MAX_CONTROL {
                    return Err(invalid("control.tar's members are implausibly large"));
                }
                c.info.push((name.clone(), mode, bytes));
                continue;
            }
            _ => continue,
        }
        match name.as_str() {
            "control" => {
                let mut ps =
                    parse_all(&text, false).map_err(|e| invalid(&format!("control file: {e}")))?;
                if ps.is_empty() {
                    return Err(invalid("empty control file"));
                }
                c.paragraph = ps.swap_remove(0);
            }
            "md5sums" => c.md5sums = Some(text),
            _ => c.conffiles = Some(text),
        }
    }
    if c.paragraph.is_empty() {
        return Err(invalid("control.tar has no control file"));
    }
    c.scripts.sort();
    c.info.sort();
    Ok(c)
}
