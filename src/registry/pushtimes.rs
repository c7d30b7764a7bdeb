//! When each tag of a repository was pushed, for retention by push time.
//!
//! The distribution API does not say when a tag was pushed, and strata's
//! images are reproducible (their `created` is the epoch), so strata keeps
//! a small record in the repository itself: the tag `strata.push-times`
//! names an OCI artifact manifest (artifactType
//! `application/vnd.dev.strata.push-times.v1`, the empty config and layer)
//! whose annotations `dev.strata.pushed.TAG` hold each tag's push time in
//! Unix seconds. Every strata push updates it (read, add, write: two jobs
//! pushing at once may lose one entry, which then falls back to the next
//! source of a push time; see [`super::prune`]). It holds the newest
//! [`MAX_ENTRIES`] tags. No digest depends on it.

use std::collections::BTreeMap;

use super::api::Repo;
use super::{Client, RegistryRef};
use crate::digest::Digest;
use crate::error::{Error, Result};

/// The tag of the record.
pub const TAG: &str = "strata.push-times";
/// Its artifact type.
pub const ARTIFACT_TYPE: &str = "application/vnd.dev.strata.push-times.v1";
const PREFIX: &str = "dev.strata.pushed.";
/// Entries kept (newest first); ~60 bytes each, far below the manifest cap.
pub const MAX_ENTRIES: usize = 5000;
const EMPTY: &[u8] = b"{}";
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// The push times on record for `repo`'s tags (empty when there is none,
/// or when the tag holds something else).
pub fn read(client: &Client, repo: &RegistryRef) -> Result<BTreeMap<String, u64>> {
    let api = Repo::new(client, repo);
    let m = match api.get_manifest(TAG) {
        Ok(m) => m,
        Err(Error::NotFound { .. }) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap_or_default();
    if v["artifactType"] != ARTIFACT_TYPE {
        return Ok(BTreeMap::new());
    }
    Ok(v["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, t)| {
            let tag = k.strip_prefix(PREFIX)?;
            Some((tag.to_string(), t.as_str()?.parse().ok()?))
        })
        .collect())
}

/// The record's manifest for `times`, newest [`MAX_ENTRIES`] kept.
fn manifest(times: &BTreeMap<String, u64>) -> Vec<u8> {
    let mut newest: Vec<(&String, &u64)> = times.iter().collect();
    newest.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    newest.truncate(MAX_ENTRIES);
    let empty = serde_json::json!({
        "mediaType": EMPTY_TYPE,
        "digest": Digest::of(EMPTY).to_string(),
        "size": EMPTY.len(),
    });
    let annotations: serde_json::Map<String, serde_json::Value> = newest
        .into_iter()
        .map(|(tag, t)| (format!("{PREFIX}{tag}"), t.to_string().into()))
        .collect();
    crate::json::to_canonical(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::media::OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": empty,
        "layers": [empty],
        "annotations": annotations,
    }))
}

/// Records that `tags` of `repo` were pushed at `now` (Unix seconds).
pub fn record(client: &Client, repo: &RegistryRef, tags: &[String], now: u64) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let mut times = read(client, repo)?;
    for t in tags {
        times.insert(t.clone(), now);
    }
    let api = Repo::new(client, repo);
    let d = Digest::of(EMPTY);
    if api.blob_size(&d)?.is_none() {
        let (location, _) = api.start_upload()?;
        api.upload_monolithic(&location, &d, EMPTY.len() as u64, &|_| {
            Ok(Box::new(std::io::Cursor::new(EMPTY)))
        })?;
    }
    api.put_manifest(TAG, &manifest(&times), crate::media::OCI_MANIFEST)
}

/// Now, in Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_keeps_the_newest_and_is_a_valid_manifest() {
        let times: BTreeMap<String, u64> = (0..(MAX_ENTRIES as u64 + 10))
            .map(|i| (format!("t{i}"), 1_000 + i))
            .collect();
        let bytes = manifest(&times);
        let m = crate::spec::Manifest::parse(&bytes, "record").unwrap();
        assert_eq!(m.layers.len(), 1);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let ann = v["annotations"].as_object().unwrap();
        assert_eq!(ann.len(), MAX_ENTRIES);
        assert!(!ann.contains_key("dev.strata.pushed.t0"), "the oldest went");
        let newest = format!("dev.strata.pushed.t{}", MAX_ENTRIES + 9);
        assert_eq!(ann[&newest], (1_000 + MAX_ENTRIES as u64 + 9).to_string());
        assert!(bytes.len() < 4 << 20);
    }
}
