//! What strata knows of a Debian package without its .deb: its dpkg status
//! paragraph and what is likely missing when its maintainer scripts do not
//! run, by the .deb's SHA256 (`STORE/.strata/deb/facts/SHA256`).
//!
//! Written whenever a .deb's control part is read, and from the package
//! list of a registry cache record, so a fresh machine whose deb layers are
//! cache hits builds the image's dpkg status layer and gives the same
//! warnings without downloading a .deb.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::deb::repo::DebCache;
use crate::deb::resolve::Selected;
use crate::digest::Digest;
use crate::error::Result;
use crate::store::Store;

/// The facts of one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    /// Its `/var/lib/dpkg/status` paragraph, each field on its own line.
    pub status: String,
    /// What is likely missing when its `preinst`/`postinst` do not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// One package of a deb layer, as a cache record lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageEntry {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub arch: String,
    /// The .deb's SHA256.
    pub sha256: Digest,
    /// Its facts.
    #[serde(flatten)]
    pub facts: Facts,
}

fn path(store: &Store, sha256: &Digest) -> PathBuf {
    store.root().join(".strata/deb/facts").join(sha256.hex())
}

/// The facts of the package whose .deb has `sha256`, if known.
pub fn lookup(store: &Store, sha256: &Digest) -> Option<Facts> {
    let bytes = crate::store::read_bounded(&path(store, sha256), 16 << 20).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Remembers the facts of the package whose .deb has `sha256`.
pub fn put(store: &Store, sha256: &Digest, facts: &Facts) -> Result<()> {
    crate::store::write_file_atomic(&path(store, sha256), &crate::json::to_canonical(facts))
}

/// The facts of `p`: known, else read from its .deb (which must be in
/// `cache`) and remembered.
pub fn of_cached_deb(store: &Store, cache: &DebCache, p: &Selected) -> Result<Facts> {
    if let Some(f) = lookup(store, &p.sha256) {
        return Ok(f);
    }
    let control = crate::deb::layer::read_control(cache, p)?;
    let facts = Facts {
        status: crate::deb::layer::status_paragraph(&control).to_text(),
        warning: crate::deb::layer::script_warning(&p.name, &control),
    };
    put(store, &p.sha256, &facts)?;
    Ok(facts)
}

/// The facts of every package of `packages`, downloading only the .debs
/// of those not known yet.
pub fn of_all(store: &Store, packages: &[Selected]) -> Result<Vec<Facts>> {
    let cache = DebCache::new(store)?;
    let known: Vec<Option<Facts>> = packages.iter().map(|p| lookup(store, &p.sha256)).collect();
    let unknown: Vec<Selected> = packages
        .iter()
        .zip(&known)
        .filter(|(_, f)| f.is_none())
        .map(|(p, _)| p.clone())
        .collect();
    super::debsrc::fetch_all(&cache, &unknown, &Default::default())?;
    packages
        .iter()
        .zip(known)
        .map(|(p, f)| match f {
            Some(f) => Ok(f),
            None => of_cached_deb(store, &cache, p),
        })
        .collect()
}

/// The package list of a deb layer for its cache record: every package
/// with its facts, read from the store (and from .debs still in the
/// store's package cache). `None` when some package's facts are not at
/// hand without the network.
pub fn entries(store: &Store, packages: &[Selected]) -> Option<Vec<PackageEntry>> {
    let cache = DebCache::new(store).ok()?;
    packages
        .iter()
        .map(|p| {
            let facts = match lookup(store, &p.sha256) {
                Some(f) => f,
                None if cache.cas().has_blob(&p.sha256) => of_cached_deb(store, &cache, p).ok()?,
                None => return None,
            };
            Some(PackageEntry {
                name: p.name.clone(),
                version: p.version.clone(),
                arch: p.arch.clone(),
                sha256: p.sha256.clone(),
                facts,
            })
        })
        .collect()
}

/// Remembers the facts a cache record lists. Each status must be one
/// paragraph of the package it names (nothing more can be slipped into an
/// image's dpkg database); else nothing is remembered and the error says
/// which package.
pub fn remember(store: &Store, entries: &[PackageEntry]) -> Result<()> {
    for e in entries {
        let paras =
            crate::deb::control::parse_all(&e.facts.status, false).map_err(|er| er.to_string());
        let ok = paras.as_ref().is_ok_and(|ps| {
            ps.len() == 1
                && ps[0].get("Package") == Some(e.name.as_str())
                && ps[0].get("Version") == Some(e.version.as_str())
        });
        if !ok {
            return Err(crate::error::Error::invalid(
                "package list",
                format!("package {} {}", e.name, e.version),
                "its dpkg status is not one paragraph of that package",
            ));
        }
    }
    for e in entries {
        if lookup(store, &e.sha256).as_ref() != Some(&e.facts) {
            put(store, &e.sha256, &e.facts)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: &str) -> PackageEntry {
        PackageEntry {
            name: "hello".into(),
            version: "1.0".into(),
            arch: "amd64".into(),
            sha256: Digest::of(b"deb"),
            facts: Facts {
                status: status.into(),
                warning: None,
            },
        }
    }

    #[test]
    fn only_one_paragraph_of_the_named_package_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(dir.path()).unwrap();
        let good = "Package: hello\nStatus: install ok installed\nVersion: 1.0\n";
        for bad in [
            "Package: other\nVersion: 1.0\n",
            "Package: hello\nVersion: 2.0\n",
            &format!("{good}\nPackage: rootkit\nVersion: 1\n"),
            "not a paragraph",
        ] {
            let err = remember(&store, &[entry(bad)]).unwrap_err().to_string();
            assert!(err.contains("package hello 1.0"), "{err}");
            assert!(lookup(&store, &Digest::of(b"deb")).is_none());
        }
        remember(&store, &[entry(good)]).unwrap();
        assert_eq!(lookup(&store, &Digest::of(b"deb")).unwrap().status, good);
    }
}
