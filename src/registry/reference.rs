//! `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]` references.

use std::fmt;

use oci_spec::distribution::Reference;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Docker Hub's API host.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The key Docker Hub credentials are stored under in docker's config.json.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A parsed registry reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRef {
    /// The registry as written (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// Repository path (`library/alpine`).
    pub repository: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Digest, if any.
    pub digest: Option<Digest>,
}

impl RegistryRef {
    /// Parses the part after `docker://`. Docker Hub short names are
    /// normalized: `alpine` → `docker.io/library/alpine:latest`.
    pub fn parse(s: &str) -> Result<Self> {
        let err = |reason: String| Error::InvalidReference {
            input: format!("docker://{s}"),
            reason,
        };
        if s.is_empty() {
            return Err(err(
                "empty; expected docker://HOST[:PORT]/REPO[:TAG|@DIGEST]".into(),
            ));
        }
        let r: Reference = s.parse().map_err(|e| err(format!("{e}")))?;
        // oci-spec is lenient about case; the distribution grammar is not.
        crate::reference::parse_name(&format!("{}/{}", r.registry(), r.repository())).map_err(
            |_| {
                err(format!(
                    "repository {:?} must be lowercase path components",
                    r.repository()
                ))
            },
        )?;
        let digest = r.digest().map(|d| d.parse::<Digest>()).transpose()?;
        let tag = match (r.tag(), &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        if let Some(t) = &tag {
            crate::reference::validate_tag(t, s)?;
        }
        Ok(RegistryRef {
            registry: r.registry().to_string(),
            repository: r.repository().to_string(),
            tag,
            digest,
        })
    }

    /// The host (and port) to send API requests to.
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The key credentials for this registry are stored under.
    pub fn auth_key(&self) -> &str {
        if self.registry == "docker.io" {
            DOCKER_HUB_AUTH_KEY
        } else {
            &self.registry
        }
    }

    /// The tag or digest to request a manifest by.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same repository at another tag.
    pub fn with_tag(&self, tag: &str) -> Self {
        RegistryRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The repository itself, with neither tag nor digest.
    pub fn repository_only(&self) -> Self {
        RegistryRef {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "docker://{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// True for hosts on the loopback interface, where plain HTTP is allowed:
/// an IPv4 literal in 127.0.0.0/8, `::1`, or `localhost`, each with or
/// without a port. Nothing else: `127.example.com` is a name like any other.
pub fn is_loopback(host: &str) -> bool {
    let h = match host.strip_prefix('[') {
        // [v6] or [v6]:port
        Some(rest) => match rest.split_once(']') {
            Some((ip, tail)) if tail.is_empty() || is_port(tail.strip_prefix(':')) => ip,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((h, port)) if !h.contains(':') => {
                if !is_port(Some(port)) {
                    return false;
                }
                h
            }
            // A bare IPv6 literal has colons of its own.
            Some(_) => host,
            None => host,
        },
    };
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match h.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(std::net::IpAddr::V6(v6)) => v6.is_loopback(),
        Err(_) => false,
    }
}

fn is_port(p: Option<&str>) -> bool {
    p.is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_docker_hub() {
        let r = RegistryRef::parse("alpine").unwrap();
        assert_eq!(r.to_string(), "docker://docker.io/library/alpine:latest");
        assert_eq!(r.api_host(), DOCKER_HUB_API);
        let r = RegistryRef::parse("localhost:5000/a/b:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("localhost:5000", "a/b", Some("v1"))
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = RegistryRef::parse(&format!("127.0.0.1:1/x@{d}")).unwrap();
        assert_eq!(r.reference(), d);
        assert!(RegistryRef::parse("UPPER/case").is_err());
        assert!(RegistryRef::parse("x@sha256:abc").is_err());
    }

    #[test]
    fn loopback_is_only_127_slash_8_ipv6_one_and_localhost() {
        for yes in [
            "localhost",
            "localhost:5000",
            "LOCALHOST:5000",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.1.2.3:1",
            "127.255.255.254",
            "[::1]:5000",
            "[::1]",
            "::1",
        ] {
            assert!(is_loopback(yes), "{yes} is loopback");
        }
        for no in [
            "127.example.com",
            "127.example.com:5000",
            "127.0.0.1.example.com",
            "127.0.0.1.nip.io:5000",
            "localhost.example.com",
            "mylocalhost",
            "128.0.0.1",
            "10.0.0.1:5000",
            "0.0.0.0",
            "[::2]:5000",
            "[::1]x",
            "127.0.0.1:",
            "127.0.0.1:abc",
            "127.0.0.1:5000:1",
            "registry.example.com",
            "",
        ] {
            assert!(!is_loopback(no), "{no} is not loopback");
        }
    }
}
