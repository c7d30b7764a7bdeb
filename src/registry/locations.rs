//! Where blobs are: for each registry, the repositories a blob was pushed
//! to or read from, kept in the store (`.strata/blob-locations/HOST/HEX`,
//! one repository per line, the newest last), as docker's distribution
//! metadata and skopeo's blob-info cache keep it. A push then mounts a blob
//! from a repository known to hold it instead of uploading it; a stale
//! entry costs one refused mount, never an error.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::digest::Digest;

/// At most this many repositories are remembered per blob.
const MAX_REPOS: usize = 8;

/// The blob-locations directory of a store.
#[derive(Clone, Debug)]
pub struct BlobLocations {
    dir: PathBuf,
}

impl BlobLocations {
    /// The record under `store_root`.
    pub fn new(store_root: &Path) -> Self {
        BlobLocations {
            dir: store_root.join(".strata/blob-locations"),
        }
    }

    fn file(&self, host: &str, digest: &Digest) -> PathBuf {
        let host: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(host).join(digest.hex())
    }

    /// Repositories of `host` known to hold `digest`, newest first.
    pub fn get(&self, host: &str, digest: &Digest) -> Vec<String> {
        let text = std::fs::read_to_string(self.file(host, digest)).unwrap_or_default();
        let mut repos: Vec<String> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        repos.reverse();
        repos
    }

    /// Remembers that `repo` of `host` holds `digest` (best effort: a
    /// failure to write only loses a shortcut).
    pub fn add(&self, host: &str, digest: &Digest, repo: &str) {
        let path = self.file(host, digest);
        let mut repos = self.get(host, digest);
        if repos.first().map(String::as_str) == Some(repo) {
            return;
        }
        repos.retain(|r| r != repo);
        repos.insert(0, repo.to_string());
        repos.truncate(MAX_REPOS);
        repos.reverse();
        let _ = (|| -> std::io::Result<()> {
            let dir = path.parent().expect("has a parent");
            std::fs::create_dir_all(dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            for r in &repos {
                writeln!(tmp, "{r}")?;
            }
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        })();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let l = BlobLocations::new(dir.path());
        let d = Digest::of(b"x");
        assert!(l.get("h:5000", &d).is_empty());
        for i in 0..10 {
            l.add("h:5000", &d, &format!("r{i}"));
        }
        l.add("h:5000", &d, "r3");
        let got = l.get("h:5000", &d);
        assert_eq!(got.len(), MAX_REPOS);
        assert_eq!(got[0], "r3");
        assert_eq!(got[1], "r9");
        assert!(l.get("other", &d).is_empty());
    }
}
