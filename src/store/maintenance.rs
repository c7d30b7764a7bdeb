//! `fsck` and `gc` for a store.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::time::{Duration, SystemTime};

use super::Store;
use crate::digest::{Digest, hash_reader};
use crate::error::{IoContext, Result};
use crate::media;
use crate::spec::{Index, MAX_MANIFEST_SIZE, Manifest};

/// What `fsck` found.
#[derive(Debug, Default, serde::Serialize)]
pub struct FsckReport {
    /// Blobs re-hashed.
    pub checked: usize,
    /// Blobs whose content does not hash to their name: (name, actual).
    pub corrupt: Vec<(Digest, Digest)>,
    /// Blobs referenced from a tag but absent: (digest, what references it).
    pub missing: Vec<(Digest, String)>,
    /// Files under blobs/sha256 whose name is not a digest.
    pub stray: Vec<String>,
    /// Temp files of writes that did not finish (a crash, kill -9):
    /// (path relative to the store, bytes, age in seconds). Not a problem:
    /// `store gc` removes them after its grace period.
    pub temp: Vec<(String, u64, u64)>,
}

impl FsckReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty() && self.stray.is_empty()
    }
}

/// What `gc` removed (or would remove on a dry run).
#[derive(Debug, Default, serde::Serialize)]
pub struct GcReport {
    /// Blobs reachable from a tag.
    pub kept: usize,
    /// Blobs removed.
    pub removed: Vec<Digest>,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Unreachable blobs left alone because they are newer than the grace period.
    pub recent: usize,
    /// Unpacked layers (build-step snapshots) of no tagged image, removed.
    pub snapshots_removed: usize,
    /// Work directories of build steps that did not finish, removed.
    pub work_removed: usize,
    /// strata's own records (layer cache entries, file listings, step
    /// logs, check and test markers, old Debian downloads) removed.
    pub records_removed: usize,
    /// Bytes those records took.
    pub records_bytes: u64,
}

/// Debian downloads unused for this long are removed by gc (a download is
/// "used" whenever a build finds it in the cache).
pub const DEB_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Check and test markers (empty files) older than this are removed by gc.
pub const MARKER_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

impl Store {
    /// Re-hashes every blob and checks every blob a tag reaches is present.
    pub fn fsck(&self) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        let dir = self.root.join("blobs/sha256");
        let mut names: Vec<String> = Vec::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        for name in names {
            let Ok(d) = Digest::from_hex(&name) else {
                report.stray.push(name);
                continue;
            };
            let path = dir.join(&name);
            let (actual, _) = hash_reader(fs::File::open(&path).at(&path)?).at(&path)?;
            report.checked += 1;
            if actual != d {
                report.corrupt.push((d, actual));
            }
        }
        let refs = self.reachable(true)?;
        for (d, by) in refs {
            if !self.has_blob(&d) {
                report.missing.push((d, by));
            }
        }
        let now = SystemTime::now();
        let blobs = self.root.join("blobs");
        for entry in fs::read_dir(&blobs).at(&blobs)? {
            let entry = entry.at(&blobs)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let (true, Ok(m)) = (name.starts_with(".tmp-"), entry.metadata()) {
                let age = m
                    .modified()
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .map_or(0, |d| d.as_secs());
                report.temp.push((format!("blobs/{name}"), m.len(), age));
            }
        }
        report.temp.sort();
        Ok(report)
    }

    /// Removes blobs no tag reaches. Blobs and temp files newer than `grace`
    /// are kept: a concurrent build may be about to tag them.
    pub fn gc(&self, grace: Duration, dry_run: bool) -> Result<GcReport> {
        let _lock = self.lock()?;
        let reach = self.reachable(false)?;
        let mut report = GcReport {
            kept: reach.len(),
            ..Default::default()
        };
        let now = SystemTime::now();
        let is_old = |m: &fs::Metadata| {
            m.modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= grace)
        };
        let dir = self.root.join("blobs/sha256");
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .at(&dir)?
            .collect::<std::io::Result<_>>()
            .at(&dir)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(d) = Digest::from_hex(&name) else {
                continue;
            };
            if reach.contains_key(&d) {
                continue;
            }
            let meta = entry.metadata().at(entry.path())?;
            if !is_old(&meta) {
                report.recent += 1;
                continue;
            }
            report.freed_bytes += meta.len();
            if !dry_run {
                fs::remove_file(entry.path()).at(entry.path())?;
            }
            report.removed.push(d);
        }
        // Stale temp files of interrupted writes.
        let blobs = self.root.join("blobs");
        for entry in fs::read_dir(&blobs).at(&blobs)? {
            let entry = entry.at(&blobs)?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-")
                && entry.metadata().is_ok_and(|m| is_old(&m))
                && !dry_run
            {
                let _ = fs::remove_file(entry.path());
            }
        }
        self.gc_sandbox(&reach, &is_old, dry_run, &mut report)?;
        self.gc_records(&is_old, dry_run, &mut report)?;
        Ok(report)
    }

    /// Removes strata's records that nothing needs any more:
    /// * layer cache entries whose blob is gone (after the blob gc) — and
    ///   the file listing and step log under the same key;
    /// * listings and logs of keys with no cache entry, past the grace;
    /// * check and test markers older than [`MARKER_MAX_AGE`];
    /// * Debian downloads unused for [`DEB_MAX_AGE`].
    ///
    /// Per-layer records (inputs, stat caches, remembered keys) are one per
    /// layer or layer directory and stay; cache mounts stay.
    fn gc_records(
        &self,
        is_old: &dyn Fn(&fs::Metadata) -> bool,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<()> {
        let aux = self.root.join(".strata");
        // On a dry run the blobs are still there: count them as gone.
        let removed: BTreeSet<Digest> = report.removed.iter().cloned().collect();
        let drop_file = |p: &std::path::Path, report: &mut GcReport| -> Result<()> {
            if let Ok(m) = fs::symlink_metadata(p) {
                report.records_removed += 1;
                report.records_bytes += m.len();
                if !dry_run {
                    fs::remove_file(p).at(p)?;
                }
            }
            Ok(())
        };
        let files = |dir: &std::path::Path| -> Vec<fs::DirEntry> {
            fs::read_dir(dir)
                .map(|r| r.flatten().filter(|e| e.path().is_file()).collect())
                .unwrap_or_default()
        };
        let mut live: BTreeSet<String> = BTreeSet::new();
        for e in files(&aux.join("layers")) {
            let name = e.file_name().to_string_lossy().into_owned();
            let blob = fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["descriptor"]["digest"].as_str().map(str::to_string))
                .and_then(|d| d.parse::<Digest>().ok());
            match blob {
                Some(d) if self.has_blob(&d) && !removed.contains(&d) => {
                    live.insert(name);
                }
                _ if e.metadata().is_ok_and(|m| is_old(&m)) => drop_file(&e.path(), report)?,
                _ => {
                    live.insert(name);
                }
            }
        }
        for (dir, suffix) in [("listings", ""), ("logs", ".log"), ("scripts", "")] {
            for e in files(&aux.join(dir)) {
                let name = e.file_name().to_string_lossy().into_owned();
                let key = name.strip_suffix(suffix).unwrap_or(&name);
                if !live.contains(key) && e.metadata().is_ok_and(|m| is_old(&m)) {
                    drop_file(&e.path(), report)?;
                }
            }
        }
        let now = SystemTime::now();
        let older = |m: &fs::Metadata, age: Duration| {
            m.modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|a| a >= age)
        };
        for dir in ["checks", "tests"] {
            for e in files(&aux.join(dir)) {
                if e.metadata()
                    .is_ok_and(|m| older(&m, MARKER_MAX_AGE) && is_old(&m))
                {
                    drop_file(&e.path(), report)?;
                }
            }
        }
        for e in files(&aux.join("deb/blobs/sha256")) {
            if e.metadata()
                .is_ok_and(|m| older(&m, DEB_MAX_AGE) && is_old(&m))
            {
                drop_file(&e.path(), report)?;
            }
        }
        Ok(())
    }

    /// Snapshots whose diff_id no reachable image config lists, and step
    /// work directories a killed build left (their overlay unmounted first),
    /// both older than the grace period. Cache mounts stay.
    fn gc_sandbox(
        &self,
        reach: &BTreeMap<Digest, String>,
        is_old: &dyn Fn(&fs::Metadata) -> bool,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<()> {
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        for d in reach.keys() {
            let Ok(bytes) = self.read_blob(d, crate::spec::MAX_CONFIG_SIZE) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            for id in v["rootfs"]["diff_ids"].as_array().into_iter().flatten() {
                if let Some(h) = id.as_str().and_then(|s| s.strip_prefix("sha256:")) {
                    wanted.insert(h.to_string());
                }
            }
        }
        let snaps = crate::sandbox::rootfs::snapshots_dir(&self.root);
        for entry in fs::read_dir(&snaps).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let keep = wanted.contains(&name) && !name.starts_with('.');
            if keep || !entry.metadata().is_ok_and(|m| is_old(&m)) {
                continue;
            }
            report.snapshots_removed += 1;
            if !dry_run {
                fs::remove_dir_all(entry.path()).at(entry.path())?;
            }
        }
        // Not work_dir(): gc creates nothing.
        let work = self.root.join(".strata/run");
        for entry in fs::read_dir(&work).into_iter().flatten().flatten() {
            if !entry.file_name().to_string_lossy().starts_with(".tmp-")
                || !entry.metadata().is_ok_and(|m| is_old(&m))
            {
                continue;
            }
            report.work_removed += 1;
            if !dry_run {
                let merged = entry.path().join("merged");
                if let Ok(c) = std::ffi::CString::new(merged.as_os_str().as_encoded_bytes()) {
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
                fs::remove_dir_all(entry.path()).at(entry.path())?;
            }
        }
        Ok(())
    }

    /// Every digest reachable from index.json, with what references it.
    /// With `tolerant`, missing or unreadable manifests are recorded rather
    /// than failing (fsck wants to list them all).
    fn reachable(&self, tolerant: bool) -> Result<BTreeMap<Digest, String>> {
        let index = self.index()?;
        let mut seen: BTreeMap<Digest, String> = BTreeMap::new();
        let mut stack: Vec<(crate::spec::Descriptor, String)> = index
            .manifests
            .iter()
            .map(|d| (d.clone(), "index.json".to_string()))
            .collect();
        let mut visited = BTreeSet::new();
        while let Some((desc, by)) = stack.pop() {
            seen.entry(desc.digest.clone()).or_insert(by);
            if !visited.insert(desc.digest.clone()) {
                continue;
            }
            let is_manifest = media::is_manifest(&desc.media_type);
            let is_index = media::is_index(&desc.media_type);
            if !is_manifest && !is_index {
                continue;
            }
            let bytes = match self.read_blob(&desc.digest, MAX_MANIFEST_SIZE) {
                Ok(b) => b,
                Err(_) if tolerant => continue,
                Err(e) => return Err(e),
            };
            let loc = format!("manifest {}", desc.digest);
            if is_manifest {
                let m = Manifest::parse(&bytes, &loc)?;
                stack.push((m.config, loc.clone()));
                for l in m.layers {
                    stack.push((l, loc.clone()));
                }
            } else {
                let i = Index::parse(&bytes, &loc)?;
                for m in i.manifests {
                    stack.push((m, loc.clone()));
                }
            }
        }
        Ok(seen)
    }
}
