//! Packages indexes: the binary packages a set of repositories offers for
//! one architecture, read in one streaming pass over each (xz, gzip or
//! plain) index and kept as the few fields resolution needs.

use std::collections::HashMap;
use std::io::{BufReader, Read};

use super::control::{Atom, Paragraphs, parse_relations};
use super::repo::{DebCache, Release};
use super::version::Version;
use crate::digest::Digest;
use crate::error::{Error, Result};

/// One binary package of an index.
#[derive(Clone, Debug)]
pub struct Package {
    /// Name.
    pub name: String,
    /// Version.
    pub version: Version,
    /// Architecture (`amd64`, `all`, …).
    pub arch: String,
    /// `Multi-Arch` (`same`, `foreign`, `allowed`, or empty).
    pub multi_arch: String,
    /// `Pre-Depends` (raw).
    pub pre_depends: String,
    /// `Depends` (raw).
    pub depends: String,
    /// `Conflicts` (raw).
    pub conflicts: String,
    /// `Breaks` (raw).
    pub breaks: String,
    /// `Replaces` (raw).
    pub replaces: String,
    /// `Provides`, parsed.
    pub provides: Vec<Atom>,
    /// `Priority`.
    pub priority: String,
    /// `Essential: yes`.
    pub essential: bool,
    /// Pool path relative to the repository URI.
    pub filename: String,
    /// .deb size.
    pub size: u64,
    /// .deb SHA256.
    pub sha256: Digest,
    /// Index of the repository in [`PackageDb::releases`].
    pub repo: usize,
}

/// The packages of several repositories for one architecture.
pub struct PackageDb {
    /// The architecture.
    pub arch: String,
    /// The releases the packages come from, in priority order.
    pub releases: Vec<Release>,
    /// Every package (first repository first; duplicates dropped).
    pub packages: Vec<Package>,
    by_name: HashMap<String, Vec<usize>>,
    providers: HashMap<String, Vec<usize>>,
}

impl PackageDb {
    /// Fetches (or takes from the cache) and reads the Packages index of
    /// every component of every release, for `arch` (plus `all` when the
    /// repository keeps it apart).
    pub fn load(cache: &DebCache, releases: Vec<Release>, arch: &str) -> Result<Self> {
        let mut db = PackageDb {
            arch: arch.to_string(),
            releases: Vec::new(),
            packages: Vec::new(),
            by_name: HashMap::new(),
            providers: HashMap::new(),
        };
        for (ri, release) in releases.iter().enumerate() {
            let comps: Vec<Option<&str>> = if release.repo.is_flat() {
                vec![None]
            } else {
                release
                    .repo
                    .components
                    .iter()
                    .map(|c| Some(c.as_str()))
                    .collect()
            };
            for comp in comps {
                let mut found = false;
                // As apt: binary-all only when the Release lists `all` and
                // does not say its packages are in every binary-ARCH index.
                let archs = release.fields.get("Architectures").unwrap_or("all");
                let separate_all = archs.split_whitespace().any(|a| a == "all")
                    && release.fields.get("No-Support-for-Architecture-all") != Some("Packages");
                let wanted: &[&str] = if separate_all {
                    &[arch, "all"]
                } else {
                    &[arch]
                };
                for &a in wanted {
                    let Some(f) = release.packages_file(comp, a) else {
                        continue;
                    };
                    found = true;
                    let d = cache.fetch_index(release, f)?;
                    let label = release.repo.dist_url(&f.path);
                    let r = cache.cas().open_blob(&d, Some(f.size))?;
                    let r = crate::deb::decompress(r, &f.path)
                        .map_err(|e| Error::from_pipeline(&label, e))?;
                    db.read_index(r, ri, &label)?;
                }
                if !found
                    && (release.repo.architectures.is_empty()
                        || release.repo.architectures.iter().any(|a| a == arch))
                {
                    return Err(Error::NotFound {
                        what: format!(
                            "Packages index for {}architecture {arch}",
                            comp.map(|c| format!("component {c}, ")).unwrap_or_default()
                        ),
                        location: release.repo.dist_url("InRelease"),
                        hint: format!(
                            " (it offers components {:?} and architectures {:?}; declared at {})",
                            release.fields.get("Components").unwrap_or(""),
                            release.fields.get("Architectures").unwrap_or(""),
                            release.repo.origin
                        ),
                    });
                }
            }
        }
        db.releases = releases;
        Ok(db)
    }

    /// Builds a database from packages already read (tests, tools).
    pub fn from_packages(arch: &str, releases: Vec<Release>, packages: Vec<Package>) -> Self {
        let mut db = PackageDb {
            arch: arch.to_string(),
            releases,
            packages: Vec::new(),
            by_name: HashMap::new(),
            providers: HashMap::new(),
        };
        for p in packages {
            db.add(p);
        }
        db
    }

    fn read_index(&mut self, r: impl Read, repo: usize, label: &str) -> Result<()> {
        let mut ps = Paragraphs::new(BufReader::with_capacity(1 << 20, r), false);
        let bad = |line: usize, d: String| {
            Error::invalid(
                "Packages index",
                format!("{label} (stanza at line {line})"),
                d,
            )
        };
        while let Some(p) = ps
            .next_paragraph()
            .map_err(|e| Error::from_pipeline(label, e))?
        {
            let line = ps.start_line;
            let arch = p.get("Architecture").unwrap_or("");
            if arch != self.arch && arch != "all" {
                continue;
            }
            let field = |k: &str| {
                p.get(k)
                    .map(str::to_string)
                    .ok_or_else(|| bad(line, format!("no {k} field")))
            };
            let name = field("Package")?;
            let version = Version::parse(&field("Version")?).map_err(|e| bad(line, e))?;
            let provides = parse_relations(p.get("Provides").unwrap_or(""))
                .map_err(|e| bad(line, e))?
                .into_iter()
                .flatten()
                .collect();
            let size = field("Size")?
                .parse()
                .map_err(|_| bad(line, "Size is not a number".into()))?;
            let sha256 =
                Digest::from_hex(&field("SHA256")?).map_err(|e| bad(line, e.to_string()))?;
            let get = |k: &str| p.get(k).unwrap_or("").replace('\n', " ");
            self.add(Package {
                name,
                version,
                arch: arch.to_string(),
                multi_arch: get("Multi-Arch"),
                pre_depends: get("Pre-Depends"),
                depends: get("Depends"),
                conflicts: get("Conflicts"),
                breaks: get("Breaks"),
                replaces: get("Replaces"),
                provides,
                priority: get("Priority"),
                essential: p.get("Essential") == Some("yes"),
                filename: field("Filename")?,
                size,
                sha256,
                repo,
            });
        }
        Ok(())
    }

    fn add(&mut self, p: Package) {
        let ids = self.by_name.entry(p.name.clone()).or_default();
        // The first repository to offer a version wins (apt: same pin).
        if ids
            .iter()
            .any(|&i| self.packages[i].version == p.version && self.packages[i].arch == p.arch)
        {
            return;
        }
        let id = self.packages.len();
        ids.push(id);
        for a in &p.provides {
            self.providers.entry(a.name.clone()).or_default().push(id);
        }
        self.packages.push(p);
    }

    /// Packages named `name` (every version).
    pub fn by_name(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Packages that provide `name`.
    pub fn providers(&self, name: &str) -> &[usize] {
        self.providers.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every real and virtual package name, for did-you-mean hints.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name
            .keys()
            .chain(self.providers.keys())
            .map(String::as_str)
    }
}
