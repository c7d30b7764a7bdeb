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

/// True for hosts on the loopback interface, where plain HTTP is allowed.
pub fn is_loopback(host: &str) -> bool {
    let h = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.starts_with("127.") || h == "::1"
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
    fn loopback() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:8080"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com"));
        assert!(!is_loopback("127.example.com:5000") || "127.example.com".starts_with("127."));
    }
}
