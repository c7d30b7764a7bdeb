//! apt sources: the machine's `/etc/apt/sources.list`, `sources.list.d/*.list`
//! (one-line format) and `sources.list.d/*.sources` (deb822 format), read
//! the way apt reads them. Only `deb` entries are used (not `deb-src`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Which keys may sign a repository's Release file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum SignedBy {
    /// No `Signed-By`: apt's trusted keyrings (`/etc/apt/trusted.gpg` and
    /// `/etc/apt/trusted.gpg.d/`).
    Default,
    /// Keyring files (binary or ASCII-armored).
    Keyrings(Vec<PathBuf>),
    /// An ASCII-armored key block written inline (deb822 only).
    Inline(String),
}

/// One repository: a URI, a suite and its components.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Repository {
    /// Base URI (`http://…`, `https://…` or `file:/…`), without a trailing `/`.
    pub uri: String,
    /// Suite or codename (`bookworm`, `stable`), or a flat repository's
    /// path ending in `/` (then `components` is empty).
    pub suite: String,
    /// Components (`main`, `contrib`, …).
    pub components: Vec<String>,
    /// The keys that may sign it.
    pub signed_by: SignedBy,
    /// Architectures the entry is limited to (`arch=`), empty for all.
    pub architectures: Vec<String>,
    /// Where it was declared (`FILE:LINE`), for error messages.
    pub origin: String,
}

impl Repository {
    /// Whether this is a flat repository (`deb URI path/`).
    pub fn is_flat(&self) -> bool {
        self.suite.ends_with('/')
    }

    /// The URL of a file of the suite (`InRelease`, `main/binary-amd64/…`).
    pub fn dist_url(&self, file: &str) -> String {
        if self.is_flat() {
            let base = self.suite.trim_start_matches("./");
            format!("{}/{base}{file}", self.uri)
        } else {
            format!("{}/dists/{}/{file}", self.uri, self.suite)
        }
    }

    /// Short text for messages: `URI SUITE`.
    pub fn label(&self) -> String {
        format!("{} {}", self.uri, self.suite)
    }
}

/// The URL of a pool file: a repository `uri` and a Packages index
/// `Filename`.
pub fn pool_url(uri: &str, filename: &str) -> String {
    format!("{uri}/{}", filename.trim_start_matches("./"))
}

/// The machine's apt configuration directory (`/etc/apt`).
pub fn apt_dir() -> PathBuf {
    PathBuf::from("/etc/apt")
}

/// Reads every `deb` entry of `DIR/sources.list` and `DIR/sources.list.d/`
/// (`*.list` and `*.sources`, in name order, as apt does).
pub fn system_repositories(dir: &Path) -> Result<Vec<Repository>> {
    let mut out = Vec::new();
    let main = dir.join("sources.list");
    if main.is_file() {
        out.extend(parse_list_file(&main)?);
    }
    let d = dir.join("sources.list.d");
    if let Ok(rd) = std::fs::read_dir(&d) {
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            match f.extension().and_then(|e| e.to_str()) {
                Some("list") => out.extend(parse_list_file(&f)?),
                Some("sources") => out.extend(parse_sources_file(&f)?),
                _ => {}
            }
        }
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Parses a one-line-format file (`deb [opts] URI SUITE [COMPONENT…]`).
pub fn parse_list_file(path: &Path) -> Result<Vec<Repository>> {
    parse_list(&read(path)?, &path.display().to_string())
}

/// Parses one-line-format text; `name` is used in errors.
pub fn parse_list(text: &str, name: &str) -> Result<Vec<Repository>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let origin = format!("{name}:{}", i + 1);
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |what: &str| Error::invalid("apt source", origin.clone(), what.to_string());
        let (kind, rest) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("expected `deb URI SUITE [COMPONENT...]`"))?;
        if kind == "deb-src" {
            continue;
        }
        if kind != "deb" {
            return Err(bad(&format!(
                "unknown type {kind:?} (expected deb or deb-src)"
            )));
        }
        let mut rest = rest.trim();
        let mut options = Vec::new();
        if let Some(r) = rest.strip_prefix('[') {
            let (opts, after) = r
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in options"))?;
            options = opts
                .split_whitespace()
                .map(|o| {
                    o.split_once('=')
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                        .ok_or_else(|| bad(&format!("option {o:?} is not key=value")))
                })
                .collect::<Result<_>>()?;
            rest = after.trim();
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            return Err(bad("expected `deb URI SUITE [COMPONENT...]`"));
        };
        let components: Vec<String> = words.map(str::to_string).collect();
        let mut repo = Repository {
            uri: uri.trim_end_matches('/').to_string(),
            suite: suite.to_string(),
            components,
            signed_by: SignedBy::Default,
            architectures: Vec::new(),
            origin: origin.clone(),
        };
        for (k, v) in options {
            match k.as_str() {
                "signed-by" => {
                    repo.signed_by = SignedBy::Keyrings(v.split(',').map(PathBuf::from).collect());
                }
                "arch" => repo.architectures = v.split(',').map(str::to_string).collect(),
                _ => {}
            }
        }
        check_shape(&repo)?;
        out.push(repo);
    }
    Ok(out)
}

/// Parses a deb822 `.sources` file.
pub fn parse_sources_file(path: &Path) -> Result<Vec<Repository>> {
    parse_sources(&read(path)?, &path.display().to_string())
}

/// Parses deb822 sources text; `name` is used in errors.
pub fn parse_sources(text: &str, name: &str) -> Result<Vec<Repository>> {
    let mut out = Vec::new();
    let mut reader = super::control::Paragraphs::new(text.as_bytes(), true);
    loop {
        let p = reader
            .next_paragraph()
            .map_err(|e| Error::invalid("apt sources", name, e.to_string()))?;
        let Some(p) = p else { break };
        let origin = format!("{name}:{}", reader.start_line);
        let list = |k: &str| -> Vec<String> {
            p.get(k)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        if p.get("Enabled")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("no"))
        {
            continue;
        }
        if !list("Types").iter().any(|t| t == "deb") {
            continue;
        }
        let signed_by = match p.get("Signed-By") {
            None => SignedBy::Default,
            Some(v) if v.contains("BEGIN PGP PUBLIC KEY BLOCK") => SignedBy::Inline(v.to_string()),
            Some(v) => SignedBy::Keyrings(v.split_whitespace().map(PathBuf::from).collect()),
        };
        let uris = list("URIs");
        let suites = list("Suites");
        if uris.is_empty() || suites.is_empty() {
            return Err(Error::invalid(
                "apt sources",
                origin,
                "a deb entry needs URIs and Suites",
            ));
        }
        for uri in &uris {
            for suite in &suites {
                let repo = Repository {
                    uri: uri.trim_end_matches('/').to_string(),
                    suite: suite.clone(),
                    components: list("Components"),
                    signed_by: signed_by.clone(),
                    architectures: list("Architectures"),
                    origin: origin.clone(),
                };
                check_shape(&repo)?;
                out.push(repo);
            }
        }
    }
    Ok(out)
}

fn check_shape(r: &Repository) -> Result<()> {
    if r.is_flat() != r.components.is_empty() {
        return Err(Error::invalid(
            "apt source",
            r.origin.clone(),
            if r.is_flat() {
                "a flat repository (suite ending in '/') takes no components"
            } else {
                "name at least one component (e.g. main) after the suite"
            },
        ));
    }
    let scheme_ok = ["http://", "https://", "file:"]
        .iter()
        .any(|s| r.uri.starts_with(s));
    if !scheme_ok {
        return Err(Error::invalid(
            "apt source",
            r.origin.clone(),
            format!(
                "URI {:?}: strata fetches http://, https:// and file: repositories",
                r.uri
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_format() {
        let text = "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://example.invalid/debian/ bookworm main contrib # trailing\ndeb-src http://x/ y main\ndeb file:/srv/repo ./\n";
        let r = parse_list(text, "sources.list").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].uri, "http://example.invalid/debian");
        assert_eq!(r[0].suite, "bookworm");
        assert_eq!(r[0].components, vec!["main", "contrib"]);
        assert_eq!(r[0].architectures, vec!["amd64"]);
        assert_eq!(r[0].signed_by, SignedBy::Keyrings(vec!["/k.gpg".into()]));
        assert_eq!(r[0].origin, "sources.list:2");
        assert_eq!(
            r[0].dist_url("InRelease"),
            "http://example.invalid/debian/dists/bookworm/InRelease"
        );
        assert!(r[1].is_flat());
        assert_eq!(r[1].dist_url("Packages"), "file:/srv/repo/Packages");
        let e = parse_list("deb http://x bookworm\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f:1") && e.contains("component"), "{e}");
        let e = parse_list("deb ftp://x b main\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ftp://x"), "{e}");
    }

    #[test]
    fn deb822_format() {
        let text = "Types: deb deb-src\nURIs: http://a.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/k.gpg\n\nTypes: deb\nEnabled: no\nURIs: http://b.invalid\nSuites: x\nComponents: main\n\nTypes: deb\nURIs: http://c.invalid\nSuites: s\nComponents: main\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END PGP PUBLIC KEY BLOCK-----\n";
        let r = parse_sources(text, "debian.sources").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].suite, "bookworm-updates");
        assert_eq!(r[0].origin, "debian.sources:1");
        assert!(matches!(r[2].signed_by, SignedBy::Inline(ref k) if k.contains("abc")));
    }
}
