//! OCI descriptor, manifest and index documents.
//!
//! These are small serde types rather than oci-spec's builders so that
//! digests are parsed strictly (a malformed digest fails at parse time with a
//! clear message) and unknown fields survive a read–write round trip.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::media;

/// Annotation holding a tag in an OCI layout's index.json.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Alternate locations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Platform (in indexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Fields strata does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Descriptor {
    /// A descriptor with no annotations.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: None,
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
            extra: BTreeMap::new(),
        }
    }
}

/// An OCI platform.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// CPU architecture (GOARCH spelling: amd64, arm64, ...).
    pub architecture: String,
    /// Operating system (linux).
    pub os: String,
    /// OS version.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features.
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant (v7, v8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the machine strata runs on.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            architecture: arch.into(),
            os: "linux".into(),
            os_version: None,
            os_features: None,
            variant: if arch == "arm64" {
                Some("v8".into())
            } else {
                None
            },
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(Error::bad_input(
                "--platform",
                format!("{s:?} is not of the form os/arch[/variant], e.g. linux/amd64"),
            ));
        }
        Ok(Platform {
            os: parts[0].into(),
            architecture: parts[1].into(),
            variant: parts.get(2).map(|v| v.to_string()),
            os_version: None,
            os_features: None,
        })
    }

    /// True when `other` (from an index or config) satisfies this platform.
    /// A missing variant on either side matches any variant.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// Manifest media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layers, base first.
    pub layers: Vec<Descriptor>,
    /// Subject (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields strata does not model.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The error for a manifest or index document, naming its digest.
fn doc_error(kind: &str, bytes: &[u8], location: &str, detail: impl std::fmt::Display) -> Error {
    Error::invalid(
        kind,
        location,
        format!("{} (document {})", detail, Digest::of(bytes)),
    )
}

/// What a document's own fields say it is: refuses one that carries both
/// an image manifest's fields (`config`, `layers`) and an index's
/// (`manifests`), the ambiguity behind CVE-2021-41190, and one whose
/// `mediaType` names the other kind.
fn check_kind(
    kind: &str,
    bytes: &[u8],
    location: &str,
    media_type: Option<&str>,
    own: fn(&str) -> bool,
    foreign_fields: &[&str],
    extra: &BTreeMap<String, Value>,
) -> Result<()> {
    if let Some(f) = foreign_fields.iter().find(|f| extra.contains_key(**f)) {
        return Err(doc_error(
            kind,
            bytes,
            location,
            format!(
                "it has both image-manifest and index fields (`{f}` too): an ambiguous document, refused"
            ),
        ));
    }
    if let Some(mt) = media_type
        && (media::is_manifest(mt) || media::is_index(mt))
        && !own(mt)
    {
        return Err(doc_error(
            kind,
            bytes,
            location,
            format!("its mediaType is {mt}, which is not an {kind}"),
        ));
    }
    Ok(())
}

impl Manifest {
    /// Parses and checks a manifest document.
    pub fn parse(bytes: &[u8], location: &str) -> Result<Self> {
        const KIND: &str = "image manifest";
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| doc_error(KIND, bytes, location, e))?;
        if m.schema_version != 2 {
            return Err(doc_error(
                KIND,
                bytes,
                location,
                format!("schemaVersion is {}, expected 2", m.schema_version),
            ));
        }
        check_kind(
            KIND,
            bytes,
            location,
            m.media_type.as_deref(),
            media::is_manifest,
            &["manifests"],
            &m.extra,
        )?;
        Ok(m)
    }

    /// The canonical bytes of this manifest, refusing one over
    /// [`MAX_MANIFEST_SIZE`] (registries and strata's own readers refuse
    /// them): strata writes nothing it would not read back.
    pub fn to_bytes(&self, what: &str) -> Result<Vec<u8>> {
        let bytes = crate::json::to_canonical(self);
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(Error::invalid(
                "image manifest",
                what,
                format!(
                    "with {} layers it would be {} bytes, over the {MAX_MANIFEST_SIZE}-byte limit that registries and strata accept; squash layers",
                    self.layers.len(),
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    /// The manifest's media type (OCI when absent).
    pub fn media_type(&self) -> &str {
        self.media_type.as_deref().unwrap_or(media::OCI_MANIFEST)
    }
}

/// An image index or Docker manifest list.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// Index media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Referenced manifests.
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields strata does not model.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.into()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
            extra: BTreeMap::new(),
        }
    }
}

impl Index {
    /// Parses and checks an index document.
    pub fn parse(bytes: &[u8], location: &str) -> Result<Self> {
        const KIND: &str = "image index";
        let i: Index =
            serde_json::from_slice(bytes).map_err(|e| doc_error(KIND, bytes, location, e))?;
        if i.schema_version != 2 {
            return Err(doc_error(
                KIND,
                bytes,
                location,
                format!("schemaVersion is {}, expected 2", i.schema_version),
            ));
        }
        check_kind(
            KIND,
            bytes,
            location,
            i.media_type.as_deref(),
            media::is_index,
            &["layers", "config"],
            &i.extra,
        )?;
        Ok(i)
    }

    /// Descriptors carrying a ref.name annotation, as (name, descriptor).
    pub fn tags(&self) -> impl Iterator<Item = (&str, &Descriptor)> {
        self.manifests
            .iter()
            .filter_map(|d| d.annotations.get(REF_NAME).map(|n| (n.as_str(), d)))
    }
}

/// Largest manifest or index strata reads (4 MiB, as registries cap it).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// Largest image config strata reads.
pub const MAX_CONFIG_SIZE: u64 = 16 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(layers: usize) -> Manifest {
        let d = Descriptor::new(media::OCI_LAYER_GZIP, Digest::of(b"x"), 1);
        Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(media::OCI_CONFIG, Digest::of(b"c"), 1),
            layers: vec![d; layers],
            subject: None,
            annotations: BTreeMap::new(),
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn strata_writes_no_manifest_it_would_refuse_to_read() {
        let ok = manifest(10).to_bytes("x").unwrap();
        Manifest::parse(&ok, "x").unwrap();
        let e = manifest(40_000)
            .to_bytes("archive.tar")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("archive.tar") && e.contains("40000 layers") && e.contains("4194304"),
            "{e}"
        );
    }

    #[test]
    fn ambiguous_documents_are_refused_naming_their_digest() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&manifest(1).to_bytes("x").unwrap()).unwrap();
        v["manifests"] = serde_json::json!([]);
        let bytes = serde_json::to_vec(&v).unwrap();
        let e = Manifest::parse(&bytes, "here").unwrap_err().to_string();
        assert!(
            e.contains("ambiguous") && e.contains(&Digest::of(&bytes).to_string()),
            "{e}"
        );
        let e = Index::parse(&bytes, "here").unwrap_err().to_string();
        assert!(e.contains("ambiguous"), "{e}");
    }
}
