//! Tag retention: `strata prune docker://REPO --keep N`.
//!
//! Retention goes by when each tag was *pushed* (images are reproducible,
//! so their `created` says nothing), taken, in this order, from:
//! 1. the push-times record strata keeps in the repository
//!    ([`super::pushtimes`]);
//! 2. a timestamp in the tag itself (`YYYYMMDD-HHMMSS`, UTC, as
//!    `{timestamp}` writes it);
//! 3. nothing: then `--keep` ranks the tags by name in natural order
//!    (`tooling-10` above `tooling-5`), and `--older-than` keeps the tag and
//!    says so, never deleting what it cannot date.
//!
//! With every candidate dated, the newest `keep` stay; otherwise the `keep`
//! highest by name do. Of the others, those pushed longer ago than
//! `--older-than` (when given) go. Never deleted: stable tags (`latest`, any
//! tag ending in `stable`, and `--protect` ones), the push-times record,
//! referrers fallback indexes (`sha256-HEX`, which attach SBOMs),
//! tags not matching `--match`, and any tag whose manifest a kept tag also
//! points at (deleting a manifest deletes every tag on it). It is a dry run
//! unless told otherwise.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use super::api::Repo;
use super::http::Client;
use super::reference::RegistryRef;
use crate::digest::Digest;
use crate::error::{Error, Result};
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
    /// When it was pushed (RFC 3339), when known.
    pub pushed: Option<String>,
    /// Where that time comes from: "record", "tag" or "unknown".
    pub pushed_from: &'static str,
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
    tag == "latest"
        || tag.ends_with("stable")
        || tag == super::pushtimes::TAG
        || is_referrers_index(tag)
        || protect.iter().any(|p| p == tag)
}

/// `sha256-HEX`: the referrers fallback index of an image (its SBOM's way
/// in, on registries without the referrers API), never a build's tag.
fn is_referrers_index(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// The time in a tag that carries one as `{timestamp}` writes it
/// (`YYYYMMDD-HHMMSS`, UTC).
fn stamp_in_tag(tag: &str) -> Option<u64> {
    let b = tag.as_bytes();
    (0..b.len().saturating_sub(14)).find_map(|i| {
        let w = &b[i..i + 15];
        let digits = |r: std::ops::Range<usize>| w[r].iter().all(u8::is_ascii_digit);
        if !(digits(0..8) && w[8] == b'-' && digits(9..15)) {
            return None;
        }
        let before = i.checked_sub(1).map(|j| b[j]);
        let after = b.get(i + 15);
        if before.is_some_and(|c| c.is_ascii_digit()) || after.is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let s = std::str::from_utf8(w).ok()?;
        created_secs(&format!(
            "{}-{}-{}T{}:{}:{}Z",
            &s[0..4],
            &s[4..6],
            &s[6..8],
            &s[9..11],
            &s[11..13],
            &s[13..15]
        ))
    })
}

/// Natural order: runs of digits compare as numbers (`tooling-5` <
/// `tooling-10`), everything else as text.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(&rb) {
        let o = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then(x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if o.is_ne() {
            return o;
        }
    }
    ra.len().cmp(&rb.len()).then(a.cmp(b))
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
    let untagged = repo.repository_only();
    let record = super::pushtimes::read(client, &untagged)?;
    let mut fates = Vec::new();
    let mut candidates = Vec::new();
    for tag in api.list_tags()? {
        let digest = match api.head_manifest(&tag)? {
            Some(d) => d,
            None => continue,
        };
        let (secs, from) = match (record.get(&tag), stamp_in_tag(&tag)) {
            (Some(&t), _) => (Some(t), "record"),
            (None, Some(t)) => (Some(t), "tag"),
            (None, None) => (None, "unknown"),
        };
        let fate = TagFate {
            tag: tag.clone(),
            digest,
            pushed: secs.map(crate::image::rfc3339),
            pushed_from: from,
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
            candidates.push((secs, fate));
        }
    }
    // Newest first: by push time when every candidate has one, else by
    // name in natural order.
    let all_dated = candidates.iter().all(|(s, _)| s.is_some());
    candidates.sort_by(|(sa, a), (sb, b)| {
        let by_name = natural_cmp(&b.tag, &a.tag);
        if all_dated {
            sb.cmp(sa).then(by_name)
        } else {
            by_name
        }
    });
    let now = super::pushtimes::now();
    let ranked = if all_dated {
        "newest"
    } else {
        "highest by name (not every tag has a push time)"
    };
    let mut rest = Vec::new();
    for (i, (secs, mut f)) in candidates.into_iter().enumerate() {
        if i < opts.keep {
            f.reason = format!("among the {ranked} {}", opts.keep);
            fates.push(f);
        } else if let Some(age) = opts.older_than
            && secs.is_none_or(|c| now.saturating_sub(c) < age.as_secs())
        {
            f.reason = if secs.is_none() {
                "push time unknown (no record, no timestamp in the tag): kept".into()
            } else {
                "pushed within --older-than".into()
            };
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
            f.reason = format!("beyond the {ranked} {}", opts.keep);
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
        assert_eq!(stamp_in_tag("pr-20231114-221320"), Some(1_700_000_000));
        assert_eq!(stamp_in_tag("20231114-221320-x"), Some(1_700_000_000));
        assert_eq!(stamp_in_tag("120231114-221320"), None, "digits around");
        assert_eq!(stamp_in_tag("tooling-10"), None);
        assert!(is_stable(&format!("sha256-{}", "a".repeat(64)), &[]));
        assert!(!is_stable("sha256-abc", &[]));
        assert!(is_stable("strata.push-times", &[]));
    }

    #[test]
    fn natural_order() {
        let mut tags = vec![
            "tooling-10",
            "tooling-5",
            "tooling-2",
            "tooling-05x",
            "a",
            "tooling-9",
        ];
        tags.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            tags,
            [
                "a",
                "tooling-2",
                "tooling-5",
                "tooling-05x",
                "tooling-9",
                "tooling-10"
            ]
        );
        assert!(natural_cmp("v1.10", "v1.9").is_gt());
        assert!(natural_cmp("sha-0a1f", "sha-0a1e").is_gt());
    }
}
