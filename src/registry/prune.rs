//! Tag retention: `strata prune docker://REPO --keep N`.
//!
//! Tags are ordered newest first by their image's `created` time (then by
//! name, so timestamped tags order right when builds share an epoch). The
//! newest `keep` of the tags matching `--match` stay; of the others, those
//! older than `--older-than` (when given) go. Never deleted: stable tags
//! (`latest`, any tag ending in `stable`, and `--protect` ones), tags not
//! matching `--match`, and any tag whose manifest a kept tag also points at
//! (deleting a manifest deletes every tag on it). It is a dry run unless
//! told otherwise.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::api::Repo;
use super::http::Client;
use super::reference::RegistryRef;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::layer::glob_match;

/// Retention settings.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// How many of the matching tags to keep, newest first.
    pub keep: usize,
    /// Only delete tags whose image is older than this.
    pub older_than: Option<Duration>,
    /// Only consider tags matching this glob.
    pub matching: Option<String>,
    /// Tags never to delete, besides the stable ones.
    pub protect: Vec<String>,
    /// Report only.
    pub dry_run: bool,
}

/// One tag's fate.
#[derive(Debug, Clone, Serialize)]
pub struct TagFate {
    /// The tag.
    pub tag: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// Its image's `created`, when known.
    pub created: Option<String>,
    /// "keep", "delete", "deleted" or "protected".
    pub action: &'static str,
    /// Why.
    pub reason: String,
}

/// Parses `30d`, `12h`, `90m`, `45s`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| {
        Error::bad_input(
            "--older-than",
            format!("{s:?} is not a number with a unit (s, m, h, d, w), e.g. 30d"),
        )
    })?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" | "" => n * 86400,
        "w" => n * 7 * 86400,
        _ => {
            return Err(Error::bad_input(
                "--older-than",
                format!("unit {unit:?} in {s:?} is not one of s, m, h, d, w"),
            ));
        }
    };
    Ok(Duration::from_secs(secs))
}

fn is_stable(tag: &str, protect: &[String]) -> bool {
    tag == "latest" || tag.ends_with("stable") || protect.iter().any(|p| p == tag)
}

fn created_secs(created: &str) -> Option<u64> {
    // YYYY-MM-DDTHH:MM:SS[.frac]Z
    let b = created.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| created.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // days from civil (Howard Hinnant)
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86400 + h * 3600 + mi * 60 + s).ok()
}

/// Applies the retention policy to `repo`.
pub fn prune(
    client: &std::sync::Arc<Client>,
    repo: &RegistryRef,
    opts: &PruneOptions,
) -> Result<Vec<TagFate>> {
    let api = Repo::new(client, repo);
    let mut fates = Vec::new();
    let mut candidates = Vec::new();
    for tag in api.list_tags()? {
        let r = repo.with_tag(&tag);
        let digest = match api.head_manifest(&tag)? {
            Some(d) => d,
            None => continue,
        };
        let created = super::pull::open(
            std::sync::Arc::clone(client),
            &r,
            &crate::spec::Platform::host(),
            None,
        )
        .ok()
        .and_then(|img| img.config().ok())
        .and_then(|c| {
            c.as_json()
                .get("created")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        });
        let fate = TagFate {
            tag: tag.clone(),
            digest,
            created,
            action: "keep",
            reason: String::new(),
        };
        if is_stable(&tag, &opts.protect) {
            fates.push(TagFate {
                action: "protected",
                reason: "stable tag".into(),
                ..fate
            });
        } else if opts
            .matching
            .as_deref()
            .is_some_and(|g| !glob_match(g.as_bytes(), tag.as_bytes()))
        {
            fates.push(TagFate {
                reason: "does not match --match".into(),
                ..fate
            });
        } else {
            candidates.push(fate);
        }
    }
    candidates.sort_by(|a, b| {
        let key = |f: &TagFate| f.created.as_deref().and_then(created_secs).unwrap_or(0);
        key(b).cmp(&key(a)).then(b.tag.cmp(&a.tag))
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut rest = Vec::new();
    for (i, mut f) in candidates.into_iter().enumerate() {
        if i < opts.keep {
            f.reason = format!("among the newest {}", opts.keep);
            fates.push(f);
        } else if let Some(age) = opts.older_than
            && f.created
                .as_deref()
                .and_then(created_secs)
                .is_none_or(|c| now.saturating_sub(c) < age.as_secs())
        {
            f.reason = "not older than --older-than".into();
            fates.push(f);
        } else {
            rest.push(f);
        }
    }
    let kept: BTreeSet<Digest> = fates.iter().map(|f| f.digest.clone()).collect();
    let mut deleted: BTreeSet<Digest> = BTreeSet::new();
    for mut f in rest {
        if kept.contains(&f.digest) {
            f.reason = "a kept tag points at the same manifest".into();
        } else {
            f.action = if opts.dry_run { "delete" } else { "deleted" };
            f.reason = format!("beyond the newest {}", opts.keep);
            if !opts.dry_run && deleted.insert(f.digest.clone()) {
                api.delete_manifest(&f.digest)?;
            }
        }
        fates.push(f);
    }
    fates.sort_by(|a, b| a.tag.cmp(&b.tag));
    Ok(fates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert_eq!(
            parse_duration("12h").unwrap(),
            Duration::from_secs(12 * 3600)
        );
        assert!(parse_duration("3x").is_err());
        assert_eq!(created_secs("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(created_secs("1970-01-01T00:00:00Z"), Some(0));
    }
}
