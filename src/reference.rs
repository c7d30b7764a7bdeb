//! Names and tags: validation of store names (`name[:tag]`) and tags.

use crate::error::{Error, Result};

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str, input: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidReference {
            input: input.to_string(),
            reason: format!(
                "tag {tag:?} must be 1-128 characters of letters, digits, '_', '.', '-', not starting with '.' or '-'"
            ),
        })
    }
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+ separated by '.', '_', '__' or runs of '-'
    if c.is_empty() || !c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit()) {
        return false;
    }
    if !c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit()) {
        return false;
    }
    let bytes = c.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !(bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|ch| ch == '-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_host(h: &str) -> bool {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (h, None),
    };
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
        })
        && port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok())
}

/// Splits and checks `name[:tag]`, returning `(name, tag)` with `latest`
/// when no tag is given. The first path component may be a registry host.
pub fn parse_name(input: &str) -> Result<(String, String)> {
    let err = |reason: String| Error::InvalidReference {
        input: input.to_string(),
        reason,
    };
    if input.is_empty() {
        return Err(err("the name is empty".into()));
    }
    if input.contains('@') {
        return Err(err(
            "digest references (name@sha256:...) cannot be used as a tag name here".into(),
        ));
    }
    let last_slash = input.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match input[last_slash..].rfind(':') {
        Some(i) => (&input[..last_slash + i], &input[last_slash + i + 1..]),
        None => (input, "latest"),
    };
    validate_tag(tag, input)?;
    let comps: Vec<&str> = name.split('/').collect();
    for (i, c) in comps.iter().enumerate() {
        let host_like =
            i == 0 && comps.len() > 1 && (c.contains('.') || c.contains(':') || *c == "localhost");
        if host_like {
            if !valid_host(c) {
                return Err(err(format!("{c:?} is not a valid registry host[:port]")));
            }
        } else if !valid_component(c) {
            return Err(err(format!(
                "name component {c:?} must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
            )));
        }
    }
    if name.len() > 255 {
        return Err(err("the name is longer than 255 characters".into()));
    }
    Ok((name.to_string(), tag.to_string()))
}

/// Normalizes `name[:tag]` to `name:tag`.
pub fn normalize_name(input: &str) -> Result<String> {
    let (n, t) = parse_name(input)?;
    Ok(format!("{n}:{t}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize_name("app").unwrap(), "app:latest");
        assert_eq!(normalize_name("team/app:1.0").unwrap(), "team/app:1.0");
        assert_eq!(
            normalize_name("localhost:5000/a/b:v_1").unwrap(),
            "localhost:5000/a/b:v_1"
        );
        assert_eq!(normalize_name("my-app__x:1").unwrap(), "my-app__x:1");
        for bad in [
            "",
            "App",
            "app:",
            "app:-x",
            "a//b",
            "app:has space",
            "-app",
            "a@sha256:00",
            "app:x/y",
        ] {
            assert!(normalize_name(bad).is_err(), "{bad}");
        }
    }
}
