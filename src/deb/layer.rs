//! Writing packages into a layer: each package's data.tar is streamed
//! through strata's tar header policy (paths checked, mtimes set to the
//! epoch), and a dpkg status entry per package is written under
//! `/var/lib/dpkg/status.d/` (as distroless does), so scanners see them.
//!
//! No maintainer script runs; for ca-certificates, base-passwd and mawk
//! strata writes what their postinst would (see `postinst_equivalent`). Paths under `/bin`, `/sbin`, `/lib*` are
//! written below `/usr` (merged /usr, what debootstrap sets up since
//! bullseye); the lowest deb layer also carries the `/bin → usr/bin`
//! style links.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::debfile;
use super::repo::DebCache;
use super::resolve::Selected;
use crate::error::{Error, Result};
use crate::layer::{Entry, EntryKind, TarEncoder};
use crate::tarsafe::{Framing, LayerPolicy, safe_entry_name};

/// Version of what a deb layer holds besides the packages' files (dpkg
/// database files, merged-/usr handling); part of deb layers' cache keys.
pub const FORMAT: u32 = 3;

/// Directories that merged /usr turns into links into `/usr` for `arch`
/// (as debootstrap's `setup_merged_usr` does).
pub fn merged_usr_dirs(arch: &str) -> Vec<&'static str> {
    let mut v = vec!["bin", "sbin", "lib"];
    v.extend(match arch {
        "amd64" => &["lib32", "lib64", "libx32"][..],
        "i386" => &["lib64", "libx32"],
        "ppc64el" | "powerpc" => &["lib64"],
        "s390x" => &["lib32"],
        "mips64el" => &["lib32", "lib64", "libo32"],
        _ => &[],
    });
    v.sort();
    v
}

/// Packages whose maintainer scripts usually matter, and what is missing
/// without them.
const POSTINST_MATTERS: &[(&str, &str)] = &[
    (
        "gawk",
        "its postinst registers /usr/bin/awk (update-alternatives); add a link if scripts call awk",
    ),
    ("debianutils", "its postinst writes /etc/shells (add-shell)"),
    (
        "openssh-server",
        "its postinst generates host keys and the sshd user",
    ),
    ("dbus", "its postinst creates the messagebus user"),
    ("fontconfig", "its postinst builds the font cache"),
    (
        "systemd",
        "its postinst creates system users and enables units",
    ),
];

/// How a deb layer is written.
pub struct DebLayer<'a> {
    /// The packages, in order.
    pub packages: &'a [Selected],
    /// Architecture (for the merged-/usr directories).
    pub arch: &'a str,
    /// Write the merged-/usr links (the lowest deb layer of a stack).
    pub usr_links: bool,
    /// Rewrite `/bin`, `/lib`, … paths below `/usr`.
    pub merged_usr: bool,
}

struct Writer<'t, 'w> {
    tar: &'t mut TarEncoder<&'w mut dyn Write>,
    dirs: HashSet<Vec<u8>>,
    owners: HashMap<Vec<u8>, usize>,
    rewrite: Vec<&'static str>,
    /// Files of the current package that a postinst equivalent needs.
    captured: Vec<(String, Vec<u8>)>,
}

/// Whether package `pkg`'s file `path` is needed by what strata does in
/// place of its postinst.
fn captures(pkg: &str, path: &[u8]) -> bool {
    match pkg {
        "ca-certificates" => {
            path.starts_with(b"usr/share/ca-certificates/") && path.ends_with(b".crt")
        }
        "base-passwd" => {
            path == b"usr/share/base-passwd/passwd.master"
                || path == b"usr/share/base-passwd/group.master"
        }
        _ => false,
    }
}

fn pipe(label: &str) -> impl Fn(io::Error) -> Error + '_ {
    move |e| Error::from_pipeline(label, e)
}

/// A tar entry written by strata itself (no xattrs, no hardlink key).
fn entry(path: Vec<u8>, kind: EntryKind, mode: u32, uid: u32, gid: u32) -> Entry {
    Entry {
        path,
        kind,
        mode,
        uid,
        gid,
        xattrs: Vec::new(),
        link_key: None,
    }
}

impl Writer<'_, '_> {
    /// Emits every missing parent directory of `path` (0755, root).
    fn parents(&mut self, path: &[u8], label: &str) -> Result<()> {
        for (i, &b) in path.iter().enumerate() {
            if b == b'/' && !self.dirs.contains(&path[..i]) {
                let e = entry(path[..i].to_vec(), EntryKind::Dir, 0o755, 0, 0);
                self.tar.header(&e, 0).map_err(pipe(label))?;
                self.dirs.insert(path[..i].to_vec());
            }
        }
        Ok(())
    }

    /// `bin/x` → `usr/bin/x` under merged /usr.
    fn usr(&self, name: String) -> String {
        let first = name.split('/').next().unwrap_or("");
        if self.rewrite.contains(&first) {
            format!("usr/{name}")
        } else {
            name
        }
    }

    fn symlink(&mut self, path: &str, target: &str, label: &str) -> Result<()> {
        let p = path.as_bytes().to_vec();
        if self.owners.contains_key(&p) || self.dirs.contains(&p) {
            return Ok(());
        }
        self.parents(&p, label)?;
        let e = entry(
            p.clone(),
            EntryKind::Symlink(target.as_bytes().to_vec()),
            0o777,
            0,
            0,
        );
        self.tar.header(&e, 0).map_err(pipe(label))?;
        self.owners.insert(p, usize::MAX);
        Ok(())
    }

    fn file(&mut self, path: &str, content: &[u8], label: &str) -> Result<()> {
        let p = path.as_bytes().to_vec();
        self.parents(&p, label)?;
        let e = entry(
            p,
            EntryKind::File {
                source: PathBuf::from(label),
                size: content.len() as u64,
                mtime: (0, 0),
                id: (0, 0),
            },
            0o644,
            0,
            0,
        );
        self.tar
            .header(&e, content.len() as u64)
            .map_err(pipe(label))?;
        self.tar.get_mut().write_all(content).map_err(pipe(label))?;
        self.tar.pad(content.len() as u64).map_err(pipe(label))
    }
}

/// Does, for a few packages, the deterministic part of what their postinst
/// would: ca-certificates' `update-ca-certificates` (the
/// `/etc/ca-certificates.conf` selection of every certificate, the
/// `/etc/ssl/certs/ca-certificates.crt` bundle and the `.pem` links),
/// base-passwd's `update-passwd` on a new system (`/etc/passwd` and
/// `/etc/group` from the master files) and mawk's `awk` alternative.
fn postinst_equivalent(w: &mut Writer<'_, '_>, pkg: &str, label: &str) -> Result<()> {
    let mut captured = std::mem::take(&mut w.captured);
    captured.sort();
    match pkg {
        "ca-certificates" => {
            let mut conf = String::from(
                "# Written by strata in place of ca-certificates' postinst: every\n# certificate of /usr/share/ca-certificates is selected.\n",
            );
            let mut bundle = Vec::new();
            for (path, pem) in &captured {
                let rel = path.trim_start_matches("usr/share/ca-certificates/");
                conf.push_str(rel);
                conf.push('\n');
                bundle.extend_from_slice(pem);
                if !pem.ends_with(b"\n") {
                    bundle.push(b'\n');
                }
            }
            w.file("etc/ca-certificates.conf", conf.as_bytes(), label)?;
            w.file("etc/ssl/certs/ca-certificates.crt", &bundle, label)?;
            for (path, _) in &captured {
                let base = path.rsplit('/').next().unwrap_or(path);
                let pem = format!("etc/ssl/certs/{}.pem", base.trim_end_matches(".crt"));
                w.symlink(&pem, &format!("/{path}"), label)?;
            }
        }
        "base-passwd" => {
            for (path, content) in &captured {
                let name = if path.ends_with("passwd.master") {
                    "passwd"
                } else {
                    "group"
                };
                w.file(&format!("etc/{name}"), content, label)?;
            }
        }
        "mawk" => {
            for alt in ["awk", "nawk"] {
                w.symlink(
                    &format!("usr/bin/{alt}"),
                    &format!("/etc/alternatives/{alt}"),
                    label,
                )?;
                w.symlink(&format!("etc/alternatives/{alt}"), "/usr/bin/mawk", label)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Writes one regular file (0644, root) and its missing parent
/// directories (0755), as deb layers write their dpkg files.
pub(crate) fn write_file(
    tar: &mut TarEncoder<&mut dyn Write>,
    path: &str,
    content: &[u8],
    label: &str,
) -> Result<()> {
    let mut w = Writer {
        tar,
        dirs: HashSet::from([Vec::new()]),
        owners: HashMap::new(),
        rewrite: Vec::new(),
        captured: Vec::new(),
    };
    w.file(path, content, label)
}

/// Warnings for the packages whose maintainer scripts usually matter
/// (no maintainer script runs when strata writes a layer).
pub fn postinst_warnings(packages: &[Selected]) -> Vec<String> {
    packages
        .iter()
        .filter_map(|p| {
            POSTINST_MATTERS
                .iter()
                .find(|(n, _)| *n == p.name)
                .map(|(_, why)| format!("package {}: {why}", p.name))
        })
        .collect()
}

/// Packages with a hand-written equivalent of their postinst (see
/// `postinst_equivalent`).
const EQUIVALENT: &[&str] = &["base-passwd", "ca-certificates", "mawk"];

/// For a package whose `preinst` or `postinst` did not run: one line
/// naming it and what is likely missing, read from the scripts
/// (`update-alternatives --install` links, users and groups, shells,
/// diversions, units). `None` when it has neither script, or when strata
/// writes what its postinst would.
pub fn script_warning(name: &str, control: &debfile::Control) -> Option<String> {
    let scripts: Vec<&str> = control
        .scripts
        .iter()
        .map(String::as_str)
        .filter(|s| *s == "preinst" || *s == "postinst")
        .collect();
    if scripts.is_empty() || EQUIVALENT.contains(&name) {
        return None;
    }
    let mut missing: Vec<String> = Vec::new();
    for (member, _, body) in &control.info {
        if member != "preinst" && member != "postinst" {
            continue;
        }
        let text = String::from_utf8_lossy(body);
        let words: Vec<&str> = text.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if *w == "--install"
                && i > 0
                && words[i - 1].ends_with("update-alternatives")
                && let Some(link) = words.get(i + 1).filter(|l| l.starts_with('/'))
            {
                missing.push(format!("{link} (alternative)"));
            }
        }
        for (needle, what) in [
            ("adduser", "system users or groups"),
            ("useradd", "system users or groups"),
            ("groupadd", "system users or groups"),
            ("addgroup", "system users or groups"),
            ("add-shell", "/etc/shells entries"),
            ("dpkg-divert", "diversions"),
            ("deb-systemd-helper", "enabled systemd units"),
            ("update-ca-certificates", "the CA bundle"),
        ] {
            if text.contains(needle) {
                missing.push(what.to_string());
            }
        }
    }
    missing.sort();
    missing.dedup();
    let mut line = format!("package {name}: its {} did not run", scripts.join(" and "));
    if !missing.is_empty() {
        line.push_str(&format!("; likely missing: {}", missing.join(", ")));
    }
    Some(line)
}

/// Streams the packages of `spec` from `cache` into `tar`.
pub fn write(
    tar: &mut TarEncoder<&mut dyn Write>,
    cache: &DebCache,
    spec: &DebLayer<'_>,
) -> Result<()> {
    let links = merged_usr_dirs(spec.arch);
    let mut w = Writer {
        tar,
        dirs: HashSet::new(),
        owners: HashMap::new(),
        rewrite: if spec.merged_usr {
            links.clone()
        } else {
            Vec::new()
        },
        captured: Vec::new(),
    };
    w.dirs.insert(Vec::new());
    if spec.usr_links && spec.merged_usr {
        for d in &links {
            let e = entry(
                d.as_bytes().to_vec(),
                EntryKind::Symlink(format!("usr/{d}").into_bytes()),
                0o777,
                0,
                0,
            );
            w.tar.header(&e, 0).map_err(pipe("merged /usr"))?;
            w.owners.insert(d.as_bytes().to_vec(), usize::MAX);
            let target = format!("usr/{d}/");
            w.parents(target.as_bytes(), "merged /usr")?;
        }
    }
    for (i, p) in spec.packages.iter().enumerate() {
        let label = format!("{} {} ({})", p.name, p.version, p.filename);
        let blob = cache.cas().open_blob(&p.sha256, Some(p.size))?;
        let (control, mut ar, data_name, data_size) =
            debfile::open(blob).map_err(|e| bad_deb(&label, e))?;
        let data =
            super::decompress(ar.member(data_size), &data_name).map_err(|e| bad_deb(&label, e))?;
        let listed = write_data(&mut w, data, i, spec.packages, &label)?;
        postinst_equivalent(&mut w, &p.name, &label)?;
        let para = status_paragraph(&control);
        let base = format!("var/lib/dpkg/status.d/{}", p.name);
        w.file(&base, para.to_text().as_bytes(), &label)?;
        // dpkg's own database files, so `dpkg -L` works where dpkg is.
        let info = format!("var/lib/dpkg/info/{}", p.name);
        w.file(
            &format!("{info}.list"),
            (listed.join("\n") + "\n").as_bytes(),
            &label,
        )?;
        if let Some(md5) = &control.md5sums {
            w.file(&format!("{base}.md5sums"), md5.as_bytes(), &label)?;
            w.file(&format!("{info}.md5sums"), md5.as_bytes(), &label)?;
        }
    }
    Ok(())
}

/// A package's dpkg status paragraph: its control fields with
/// `Status: install ok installed` after `Package`.
pub fn status_paragraph(control: &debfile::Control) -> super::control::Paragraph {
    let mut para = control.paragraph.clone();
    para.insert_after("Package", "Status", "install ok installed");
    para
}

/// Reads the control part of a cached .deb.
pub fn read_control(cache: &DebCache, p: &Selected) -> Result<debfile::Control> {
    let label = format!("{} {} ({})", p.name, p.version, p.filename);
    let blob = cache.cas().open_blob(&p.sha256, Some(p.size))?;
    let (control, _, _, _) = debfile::open(blob).map_err(|e| bad_deb(&label, e))?;
    Ok(control)
}

fn bad_deb(label: &str, e: io::Error) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<Error>()) {
        return Error::from_pipeline(label, e);
    }
    Error::invalid("package", label, e.to_string())
}

/// Streams one package's data.tar; returns its paths as dpkg lists them
/// (`/.`, then each path as the package names it).
fn write_data(
    w: &mut Writer<'_, '_>,
    data: impl Read,
    pkg: usize,
    all: &[Selected],
    label: &str,
) -> Result<Vec<String>> {
    let archive = Path::new(label);
    let mut listed = vec!["/.".to_string()];
    let mut ar = tar::Archive::new(Framing::new(data));
    let mut policy = LayerPolicy::new(archive);
    for e in ar.entries().map_err(|e| bad_deb(label, e))? {
        let mut e = e.map_err(|e| bad_deb(label, e))?;
        let Some(name) = policy.check(&e)? else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        listed.push(format!("/{name}"));
        let name = w.usr(name);
        let h = e.header();
        let mode = h.mode().map_err(|e| bad_deb(label, e))? & 0o7777;
        let uid = h.uid().map_err(|e| bad_deb(label, e))? as u32;
        let gid = h.gid().map_err(|e| bad_deb(label, e))? as u32;
        let etype = h.entry_type();
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let kind = match etype {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File {
                source: PathBuf::from(label),
                size: e.size(),
                mtime: (0, 0),
                id: (0, 0),
            },
            tar::EntryType::Symlink => EntryKind::Symlink(link.unwrap_or_default()),
            tar::EntryType::Link => {
                let t = safe_entry_name(archive, &link.unwrap_or_default())?;
                EntryKind::Hardlink(w.usr(t).into_bytes())
            }
            other => {
                return Err(Error::invalid(
                    "package",
                    label,
                    format!(
                        "entry {name:?} has type {other:?}, which strata does not put in layers"
                    ),
                ));
            }
        };
        let path = name.into_bytes();
        if matches!(kind, EntryKind::Dir) {
            if w.dirs.contains(&path) {
                continue;
            }
            if let Some(&o) = w.owners.get(&path) {
                return Err(clash(&path, o, pkg, all, label));
            }
            w.parents(&path, label)?;
            let en = entry(path.clone(), kind, mode, uid, gid);
            w.tar.header(&en, 0).map_err(pipe(label))?;
            w.dirs.insert(path);
            continue;
        }
        if w.dirs.contains(&path) {
            return Err(clash(&path, usize::MAX, pkg, all, label));
        }
        if let Some(&o) = w.owners.get(&path) {
            let replaces = o != usize::MAX
                && super::control::parse_relations(&all[pkg].replaces)
                    .unwrap_or_default()
                    .iter()
                    .flatten()
                    .any(|a| a.name == all[o].name);
            if !replaces {
                return Err(clash(&path, o, pkg, all, label));
            }
        }
        w.parents(&path, label)?;
        w.owners.insert(path.clone(), pkg);
        let size = match &kind {
            EntryKind::File { size, .. } => *size,
            _ => 0,
        };
        let capture = size <= 1 << 20 && captures(&all[pkg].name, &path);
        let captured_name = String::from_utf8_lossy(&path).into_owned();
        let en = entry(path, kind, mode, uid, gid);
        w.tar.header(&en, size).map_err(pipe(label))?;
        if size > 0 {
            // Files a postinst equivalent needs are kept as they stream by.
            let mut kept = capture.then(|| Vec::with_capacity(size as usize));
            let n = match &mut kept {
                Some(buf) => {
                    (&mut e).take(size).read_to_end(buf).map_err(pipe(label))?;
                    w.tar.get_mut().write_all(buf).map_err(pipe(label))?;
                    buf.len() as u64
                }
                None => io::copy(&mut e, w.tar.get_mut()).map_err(pipe(label))?,
            };
            if n != size {
                return Err(Error::invalid(
                    "package",
                    label,
                    "its data.tar is truncated",
                ));
            }
            w.tar.pad(size).map_err(pipe(label))?;
            if let Some(buf) = kept {
                w.captured.push((captured_name, buf));
            }
        }
    }
    Ok(listed)
}

fn clash(path: &[u8], owner: usize, pkg: usize, all: &[Selected], label: &str) -> Error {
    let other = match owner {
        usize::MAX => "a directory or merged-/usr link of this layer".to_string(),
        o => format!("package {}", all[o].name),
    };
    Error::invalid(
        "package",
        label,
        format!(
            "/{} is also in {other}, and {} does not declare Replaces on it; leave one of them out",
            String::from_utf8_lossy(path),
            all[pkg].name
        ),
    )
}
