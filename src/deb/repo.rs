//! The apt repository client: fetch a suite's `InRelease` (or `Release` +
//! `Release.gpg`), check its OpenPGP signature with `gpgv` against the
//! keyring the entry names (or apt's trusted keyrings), then fetch Packages
//! indexes checked against the Release SHA256 list and .deb files checked
//! against the index.
//!
//! Everything fetched is cached content-addressed in a nested OCI layout
//! (`STORE/.strata/deb`), which `store gc` leaves alone, so a rebuild
//! works offline. A suite's Release is fetched once and then reused until
//! a refresh is asked for (`strata build --refresh`), like apt's lists
//! between two `apt-get update`s: builds stay reproducible and offline.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::control::{Paragraph, parse_all};
use super::sources::{Repository, SignedBy};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::registry::http::retry::{RetryPolicy, Step};
use crate::store::Store;

/// Largest Release file accepted.
const MAX_RELEASE: u64 = 64 << 20;

/// A file listed in a Release file.
#[derive(Clone, Debug)]
pub struct ReleaseFile {
    /// Path relative to the suite directory.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA256.
    pub sha256: Digest,
}

/// A verified Release file.
#[derive(Clone, Debug)]
pub struct Release {
    /// The repository it belongs to.
    pub repo: Repository,
    /// Digest of the verified (signed) text, as cached.
    pub digest: Digest,
    /// The Release paragraph.
    pub fields: Paragraph,
    /// Its SHA256 file list.
    pub files: Vec<ReleaseFile>,
}

impl Release {
    /// Parses the verified text of a Release file.
    fn parse(repo: &Repository, digest: Digest, text: &str, location: &str) -> Result<Self> {
        let bad = |d: String| Error::invalid("Release file", location, d);
        let mut ps = parse_all(text, false).map_err(|e| bad(e.to_string()))?;
        if ps.is_empty() {
            return Err(bad("it is empty".into()));
        }
        let fields = ps.swap_remove(0);
        let mut files = Vec::new();
        for line in fields.get("SHA256").unwrap_or("").lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.is_empty() {
                continue;
            }
            let [hash, size, path] = w[..] else {
                return Err(bad(format!("SHA256 line {line:?} is not `HASH SIZE PATH`")));
            };
            files.push(ReleaseFile {
                path: path.to_string(),
                size: size
                    .parse()
                    .map_err(|_| bad(format!("size {size:?} is not a number")))?,
                sha256: Digest::from_hex(hash)?,
            });
        }
        if files.is_empty() {
            return Err(bad(
                "it lists no SHA256 hashes; strata needs SHA256 to check the indexes".into(),
            ));
        }
        Ok(Release {
            repo: repo.clone(),
            digest,
            fields,
            files,
        })
    }

    /// The Packages index of `component`/`arch`: the first of
    /// `Packages.xz`, `Packages.gz`, `Packages` that the Release lists.
    pub fn packages_file(&self, component: Option<&str>, arch: &str) -> Option<&ReleaseFile> {
        let dir = match component {
            Some(c) => format!("{c}/binary-{arch}/"),
            None => String::new(),
        };
        ["Packages.xz", "Packages.gz", "Packages"]
            .iter()
            .find_map(|n| {
                let want = format!("{dir}{n}");
                self.files.iter().find(|f| f.path == want)
            })
    }

    /// The URL of a listed file, by hash when the repository offers it.
    fn urls(&self, f: &ReleaseFile) -> Vec<String> {
        let mut out = Vec::new();
        if self.fields.get("Acquire-By-Hash") == Some("yes")
            && let Some((dir, _)) = f.path.rsplit_once('/')
        {
            out.push(
                self.repo
                    .dist_url(&format!("{dir}/by-hash/SHA256/{}", f.sha256.hex())),
            );
        }
        out.push(self.repo.dist_url(&f.path));
        out
    }
}

#[derive(Serialize, Deserialize)]
struct Pointer {
    uri: String,
    suite: String,
    digest: Digest,
    fetched: u64,
}

/// Where Debian downloads are cached and how they are fetched.
#[derive(Clone)]
pub struct DebCache {
    cas: Store,
    dir: PathBuf,
    http: Arc<OnceLock<reqwest::blocking::Client>>,
    policy: RetryPolicy,
    apt_dir: PathBuf,
}

impl DebCache {
    /// The cache of `store` (`STORE/.strata/deb`); trusted keyrings and
    /// sources default to the machine's `/etc/apt`.
    pub fn new(store: &Store) -> Result<Self> {
        let dir = store.root().join(".strata/deb");
        let cas = Store::open_or_create(&dir)?;
        Ok(DebCache {
            cas,
            dir,
            http: Arc::new(OnceLock::new()),
            policy: RetryPolicy::default(),
            apt_dir: super::sources::apt_dir(),
        })
    }

    /// The HTTP client, made on first use: builds whose downloads are all
    /// cached never start one.
    fn http(&self) -> Result<&reqwest::blocking::Client> {
        if let Some(c) = self.http.get() {
            return Ok(c);
        }
        // Mirrors may redirect; no credentials are involved.
        let c = crate::registry::http::blocking_client(&self.policy, None, true)?;
        Ok(self.http.get_or_init(|| c))
    }

    /// Uses `policy` for retries and the stall timeout.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Uses `dir` instead of `/etc/apt` for the default trusted keyrings.
    pub fn with_apt_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.apt_dir = dir.into();
        self
    }

    /// The content-addressed download store.
    pub fn cas(&self) -> &Store {
        &self.cas
    }

    /// Extra state (Release pointers, resolutions) lives below this.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn pointer_path(&self, repo: &Repository) -> PathBuf {
        let key = Digest::of(format!("{}\n{}", repo.uri, repo.suite).as_bytes());
        self.dir.join("releases").join(key.hex())
    }

    /// The digest of the cached Release of `repo`, without reading it
    /// (`None` when none is cached).
    pub fn cached_release_digest(&self, repo: &Repository) -> Option<Digest> {
        let bytes = std::fs::read(self.pointer_path(repo)).ok()?;
        let p = serde_json::from_slice::<Pointer>(&bytes).ok()?;
        self.cas.has_blob(&p.digest).then_some(p.digest)
    }

    /// The verified Release of `repo`: the cached one, unless `refresh` or
    /// none is cached, in which case it is fetched and its signature checked.
    pub fn release(&self, repo: &Repository, refresh: bool) -> Result<Release> {
        let ptr_path = self.pointer_path(repo);
        if !refresh
            && let Ok(bytes) = std::fs::read(&ptr_path)
            && let Ok(p) = serde_json::from_slice::<Pointer>(&bytes)
            && self.cas.has_blob(&p.digest)
        {
            let text = self.cas.read_blob(&p.digest, MAX_RELEASE)?;
            let text = String::from_utf8_lossy(&text);
            return Release::parse(repo, p.digest, &text, &repo.dist_url("InRelease"));
        }
        let (text, location) = self.fetch_verified_release(repo)?;
        let release = {
            let digest = Digest::of(text.as_bytes());
            Release::parse(repo, digest, &text, &location)?
        };
        check_release(&release, &location)?;
        self.cas.put_bytes(text.as_bytes())?;
        let ptr = Pointer {
            uri: repo.uri.clone(),
            suite: repo.suite.clone(),
            digest: release.digest.clone(),
            fetched: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        crate::store::write_file_atomic(&ptr_path, &serde_json::to_vec(&ptr).expect("serializes"))?;
        Ok(release)
    }

    /// Fetches InRelease (or Release + Release.gpg) and returns the text
    /// gpgv vouches for.
    fn fetch_verified_release(&self, repo: &Repository) -> Result<(String, String)> {
        let url = repo.dist_url("InRelease");
        let tmp = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let keyrings = self.keyrings(repo, tmp.path())?;
        if let Some(body) = self.get_small(&url, MAX_RELEASE)? {
            let signed = tmp.path().join("InRelease");
            std::fs::write(&signed, &body).at(&signed)?;
            let text = gpgv(&keyrings, &signed, None, &url, tmp.path())?;
            return Ok((text, url));
        }
        let rel_url = repo.dist_url("Release");
        let Some(body) = self.get_small(&rel_url, MAX_RELEASE)? else {
            return Err(Error::NotFound {
                what: format!("InRelease or Release of suite {:?}", repo.suite),
                location: repo.uri.clone(),
                hint: format!(
                    " (declared at {}); check the URI and suite name",
                    repo.origin
                ),
            });
        };
        let sig_url = repo.dist_url("Release.gpg");
        let sig = self.get_small(&sig_url, 1 << 20)?.ok_or_else(|| {
            Error::invalid(
                "repository",
                repo.label(),
                format!("{rel_url} is not signed: there is no InRelease and no Release.gpg"),
            )
        })?;
        let data = tmp.path().join("Release");
        let sigf = tmp.path().join("Release.gpg");
        std::fs::write(&data, &body).at(&data)?;
        std::fs::write(&sigf, &sig).at(&sigf)?;
        gpgv(&keyrings, &sigf, Some(&data), &rel_url, tmp.path())?;
        Ok((String::from_utf8_lossy(&body).into_owned(), rel_url))
    }

    /// The keyring files that may sign `repo`, dearmored into `tmp` when
    /// ASCII-armored.
    fn keyrings(&self, repo: &Repository, tmp: &Path) -> Result<Vec<PathBuf>> {
        let files: Vec<PathBuf> = match &repo.signed_by {
            SignedBy::Keyrings(k) => k.clone(),
            SignedBy::Inline(text) => {
                let p = tmp.join("inline-key.asc");
                std::fs::write(&p, text).at(&p)?;
                vec![p]
            }
            SignedBy::Default => {
                let mut v = Vec::new();
                let main = self.apt_dir.join("trusted.gpg");
                if main.is_file() {
                    v.push(main);
                }
                let d = self.apt_dir.join("trusted.gpg.d");
                if let Ok(rd) = std::fs::read_dir(&d) {
                    let mut more: Vec<PathBuf> = rd
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| {
                            matches!(p.extension().and_then(|e| e.to_str()), Some("gpg" | "asc"))
                        })
                        .collect();
                    more.sort();
                    v.extend(more);
                }
                v
            }
        };
        if files.is_empty() {
            return Err(Error::invalid(
                "repository",
                repo.label(),
                format!(
                    "no trusted keyring to check its signature: {} has no trusted.gpg or trusted.gpg.d/; name the repository's keyring with signed-by (declared at {})",
                    self.apt_dir.display(),
                    repo.origin
                ),
            ));
        }
        let mut out = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let bytes = std::fs::read(f).map_err(|e| {
                Error::invalid(
                    "repository",
                    repo.label(),
                    format!(
                        "cannot read its keyring {}: {e} (signed-by, declared at {})",
                        f.display(),
                        repo.origin
                    ),
                )
            })?;
            if bytes.starts_with(b"-----BEGIN PGP") {
                let bin = dearmor(&bytes).ok_or_else(|| {
                    Error::invalid("keyring", f.display().to_string(), "bad ASCII armor")
                })?;
                let p = tmp.join(format!("keyring-{i}.gpg"));
                std::fs::write(&p, bin).at(&p)?;
                out.push(p);
            } else {
                out.push(std::path::absolute(f).at(f)?);
            }
        }
        Ok(out)
    }

    /// Makes sure the file listed in `release` is in the cache, checked
    /// against its SHA256 and size; returns its digest.
    pub fn fetch_index(&self, release: &Release, f: &ReleaseFile) -> Result<Digest> {
        if self.cas.has_blob(&f.sha256) {
            return Ok(f.sha256.clone());
        }
        let urls = release.urls(f);
        let mut last_missing = String::new();
        for url in &urls {
            let what = format!(
                "{url} (listed in {} with SHA256 {})",
                release.repo.dist_url("InRelease"),
                f.sha256.hex()
            );
            match self.download(url, &f.sha256, f.size, &what)? {
                true => return Ok(f.sha256.clone()),
                false => last_missing = url.clone(),
            }
        }
        Err(Error::NotFound {
            what: format!("index {}", f.path),
            location: last_missing,
            hint: " although the Release file lists it; the mirror may be syncing: retry later"
                .into(),
        })
    }

    /// Makes sure a pool file (a .deb) is in the cache, checked against the
    /// SHA256 and size its Packages index gives.
    pub fn fetch_file(&self, url: &str, sha256: &Digest, size: u64, what: &str) -> Result<()> {
        if self.cas.has_blob(sha256) {
            // Used: `store gc` keeps downloads by when they were last used.
            let p = self.cas.root().join("blobs/sha256").join(sha256.hex());
            let _ = std::fs::File::options()
                .write(true)
                .open(&p)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            return Ok(());
        }
        if !self.download(url, sha256, size, &format!("{what} from {url}"))? {
            return Err(Error::NotFound {
                what: what.to_string(),
                location: url.to_string(),
                hint: " although the Packages index lists it; refresh the indexes with strata build --refresh".into(),
            });
        }
        Ok(())
    }

    /// Streams `url` into the cache as `sha256`; false on 404. A download
    /// cut short (or stalled) is fetched again, as the retry policy allows.
    fn download(&self, url: &str, sha256: &Digest, size: u64, what: &str) -> Result<bool> {
        self.policy.run(|_| {
            let r = match self.open_url(url) {
                Ok(Some(r)) => r,
                Ok(None) => return Step::Done(Ok(false)),
                Err(e) => return Step::Done(Err(e)),
            };
            // One byte more than expected is enough to tell it is too long.
            let r = r.take(size + 1);
            Step::Done(match self.cas.put_verified(r, sha256, Some(size), what) {
                Ok(()) => Ok(true),
                Err(e @ Error::Io { .. }) => return Step::Retry(Err(e), None),
                Err(Error::DigestMismatch {
                    what,
                    expected,
                    actual,
                }) => Err(mismatch(&what, format!("its SHA256 is {actual}"), expected)),
                Err(Error::SizeMismatch {
                    what,
                    expected,
                    actual,
                }) => Err(mismatch(
                    &what,
                    format!(
                        "it is {actual}{} bytes",
                        if actual > expected { "+" } else { "" }
                    ),
                    format!("{expected} bytes"),
                )),
                Err(e) => Err(e),
            })
        })
    }

    /// A small document, `None` on 404, refusing more than `max` bytes.
    fn get_small(&self, url: &str, max: u64) -> Result<Option<Vec<u8>>> {
        self.policy.run(|_| {
            let r = match self.open_url(url) {
                Ok(Some(r)) => r,
                other => return Step::Done(other.map(|_| None)),
            };
            let mut buf = Vec::new();
            if let Err(e) = r.take(max + 1).read_to_end(&mut buf) {
                return Step::Retry(Err(fetch_error(url, e.to_string())), None);
            }
            if buf.len() as u64 > max {
                return Step::Done(Err(fetch_error(
                    url,
                    format!("it is larger than {max} bytes"),
                )));
            }
            Step::Done(Ok(Some(buf)))
        })
    }

    /// Opens `url` (`http(s)://` or `file:`); `None` when it does not exist.
    fn open_url(&self, url: &str) -> Result<Option<Box<dyn Read + Send>>> {
        if let Some(path) = url.strip_prefix("file:") {
            let path = format!("/{}", path.trim_start_matches('/'));
            return match std::fs::File::open(&path) {
                Ok(f) => Ok(Some(Box::new(f))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(path, e)),
            };
        }
        // Connection errors, stalls and 5xx are retried by the policy; any
        // other answer is final.
        let http = self.http()?;
        let resp = self
            .policy
            .send(&host_of(url), &format!("GET {url}"), || Ok(http.get(url)))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(Error::Connect {
                host: host_of(url),
                detail: format!("GET {url} answered {status}"),
            });
        }
        Ok(Some(Box::new(resp)))
    }
}

fn mismatch(what: &str, got: String, expected: impl std::fmt::Display) -> Error {
    Error::invalid(
        "download",
        what,
        format!(
            "{got} but {expected} was expected; nothing was cached. The mirror may be mid-sync or the file was altered: retry later, or refresh the indexes with strata build --refresh"
        ),
    )
}

fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or(url)
        .to_string()
}

fn fetch_error(url: &str, detail: String) -> Error {
    Error::Connect {
        host: host_of(url),
        detail: format!("GET {url}: {detail}"),
    }
}

/// Checks what the Release file says of itself: not expired (Valid-Until).
fn check_release(r: &Release, location: &str) -> Result<()> {
    if let Some(until) = r.fields.get("Valid-Until")
        && let Some(t) = parse_rfc2822(until)
    {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if now > t {
            return Err(Error::invalid(
                "Release file",
                location,
                format!(
                    "it expired on {until} (Valid-Until): the mirror is stale or replays old indexes; use an up-to-date mirror"
                ),
            ));
        }
    }
    if !r.repo.is_flat() {
        let names = [r.fields.get("Suite"), r.fields.get("Codename")];
        if names.iter().all(Option::is_none) {
            return Ok(());
        }
        if !names.contains(&Some(r.repo.suite.as_str())) {
            return Err(Error::invalid(
                "Release file",
                location,
                format!(
                    "it is for suite {:?} (codename {:?}), not {:?}; check the suite name",
                    names[0].unwrap_or("?"),
                    names[1].unwrap_or("?"),
                    r.repo.suite
                ),
            ));
        }
    }
    Ok(())
}

/// Parses `Sat, 30 Nov 2024 12:00:00 UTC` into seconds since 1970.
pub fn parse_rfc2822(s: &str) -> Option<i64> {
    let w: Vec<&str> = s.split_whitespace().collect();
    let w = if w.first()?.ends_with(',') {
        &w[1..]
    } else {
        &w[..]
    };
    let [day, mon, year, time, ..] = w[..] else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| *x == mon)? as i64 + 1;
    let d: i64 = day.parse().ok()?;
    let y: i64 = year.parse().ok()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [hh, mm, ss] = t[..] else { return None };
    // Days from civil (Howard Hinnant).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + hh * 3600 + mm * 60 + ss)
}

/// Runs gpgv on `sig` (clearsigned when `data` is `None`, else detached
/// over `data`) and returns the signed text. Errors say whether the
/// signature is bad or the key missing.
fn gpgv(
    keyrings: &[PathBuf],
    sig: &Path,
    data: Option<&Path>,
    url: &str,
    tmp: &Path,
) -> Result<String> {
    let out_path = tmp.join("verified");
    let mut cmd = Command::new("gpgv");
    cmd.arg("--homedir").arg(tmp).args(["--status-fd", "1"]);
    for k in keyrings {
        cmd.arg("--keyring").arg(k);
    }
    if data.is_none() {
        cmd.arg("--output").arg(&out_path);
    }
    cmd.arg(sig);
    if let Some(d) = data {
        cmd.arg(d);
    }
    let out = cmd.output().map_err(|e| {
        Error::Unsupported(format!(
            "cannot run gpgv to check the signature of {url}: {e}; install it (apt-get install gpgv)"
        ))
    })?;
    let status = String::from_utf8_lossy(&out.stdout);
    let has = |tag: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("[GNUPG:] {tag}")).map(str::trim))
    };
    let keys = keyrings
        .iter()
        .map(|k| k.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(rest) = has("BADSIG") {
        return Err(Error::invalid(
            "signature",
            url,
            format!(
                "BAD signature (key {}): the file was altered or is corrupt; do not use this mirror until it is fixed",
                rest.split_whitespace().next().unwrap_or("?")
            ),
        ));
    }
    if let Some(rest) = has("NO_PUBKEY") {
        return Err(Error::invalid(
            "signature",
            url,
            format!(
                "it is signed by key {rest}, which is not in the trusted keyring(s) {keys}; add the repository's key: signed_by = \"/path/to/keyring.gpg\" in [[source.deb.repositories]] (Signed-By in apt sources)"
            ),
        ));
    }
    let valid = has("VALIDSIG").is_some() && out.status.success();
    if !valid {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(Error::invalid(
            "signature",
            url,
            format!(
                "gpgv did not accept it with keyring(s) {keys}: {}",
                why.trim().replace('\n', "; ")
            ),
        ));
    }
    match data {
        Some(_) => Ok(String::new()),
        None => {
            let text = std::fs::read(&out_path).at(&out_path)?;
            Ok(String::from_utf8_lossy(&text).into_owned())
        }
    }
}

/// Decodes an ASCII-armored OpenPGP block to binary.
pub fn dearmor(text: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let text = std::str::from_utf8(text).ok()?;
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim);
    // Several blocks may follow each other.
    while lines.any(|l| l.starts_with("-----BEGIN PGP")) {
        // Armor headers end at the first blank line.
        let mut body = String::new();
        let mut in_headers = true;
        for l in lines.by_ref() {
            if l.starts_with("-----END PGP") {
                break;
            }
            if in_headers {
                if l.is_empty() {
                    in_headers = false;
                } else if !l.contains(':') {
                    in_headers = false;
                    body.push_str(l);
                }
                continue;
            }
            if l.starts_with('=') {
                continue; // CRC-24 line
            }
            body.push_str(l);
        }
        out.extend(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .ok()?,
        );
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2822_dates() {
        assert_eq!(parse_rfc2822("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_rfc2822("Sat, 10 Jun 2023 08:53:33 UTC"),
            Some(1686387213)
        );
        assert_eq!(parse_rfc2822("nonsense"), None);
    }

    #[test]
    fn dearmor_round_trip() {
        use base64::Engine;
        let bin = b"\x99\x01\x0dkey bytes here";
        let b64 = base64::engine::general_purpose::STANDARD.encode(bin);
        let armored = format!(
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: x\n\n{b64}\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n"
        );
        assert_eq!(dearmor(armored.as_bytes()).unwrap(), bin);
        assert!(dearmor(b"not armored").is_none());
    }
}
