//! SBOMs: an SPDX 2.3 JSON document per image listing every Debian package
//! with its name, version, architecture and the layer it came from, plus
//! every layer and its source; stored as an OCI artifact whose `subject`
//! is the image, so registries' referrers API (or the tag-schema fallback)
//! finds it.

use std::io::Read;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::digest::Digest;
use crate::error::Result;
use crate::image::Image;
use crate::layer::{Layer, StoreLayer};
use crate::spec::Descriptor;
use crate::store::Store;

/// Media type (and artifact type) of an SPDX JSON document.
pub const SPDX_JSON: &str = "application/spdx+json";
/// The empty config of artifacts (`{}`).
pub const EMPTY_JSON: &str = "application/vnd.oci.empty.v1+json";

/// A layer of the image, as the SBOM lists it.
#[derive(Clone, Debug)]
pub struct SbomLayer {
    /// The project layer's name (or `base`).
    pub name: String,
    /// Its version.
    pub version: Option<String>,
    /// Its description (layer.toml `[layer] description`).
    pub description: Option<String>,
    /// The layer blob's digest.
    pub digest: Digest,
    /// Where it came from (the `dev.strata.layer.source` annotation).
    pub source: String,
}

/// A package in the image.
#[derive(Clone, Debug)]
pub struct SbomPackage {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Debian architecture.
    pub arch: String,
    /// Index into the document's layers of the layer it is in.
    pub layer: usize,
    /// Where the .deb was downloaded from.
    pub download: String,
    /// SHA256 of the .deb.
    pub sha256: Digest,
}

fn spdx_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The SPDX 2.3 JSON document of image `name` (manifest `digest`), created
/// at `created` (seconds since 1970, the build's epoch: same inputs, same
/// bytes).
pub fn spdx(
    name: &str,
    digest: &Digest,
    created: u64,
    layers: &[SbomLayer],
    packages: &[SbomPackage],
) -> Vec<u8> {
    let image_id = "SPDXRef-Image".to_string();
    let mut pkgs = vec![json!({
        "SPDXID": image_id,
        "name": name,
        "versionInfo": digest.to_string(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": digest.hex()}],
    })];
    let mut rels = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": image_id,
    })];
    for (i, l) in layers.iter().enumerate() {
        let id = format!("SPDXRef-Layer-{i}");
        let mut p = json!({
            "SPDXID": id,
            "name": l.name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "checksums": [{"algorithm": "SHA256", "checksumValue": l.digest.hex()}],
            "sourceInfo": l.source,
            "comment": format!("layer {i} of the image, blob {}", l.digest),
        });
        if let Some(v) = &l.version {
            p["versionInfo"] = Value::String(v.clone());
        }
        if let Some(d) = &l.description {
            p["description"] = Value::String(d.clone());
        }
        pkgs.push(p);
        rels.push(json!({
            "spdxElementId": image_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    for p in packages {
        let id = spdx_id(&format!(
            "SPDXRef-Package-deb-{}-{}-{}",
            p.name, p.layer, p.arch
        ));
        let purl = format!(
            "pkg:deb/debian/{}@{}?arch={}",
            p.name,
            p.version.replace(':', "%3A").replace('+', "%2B"),
            p.arch
        );
        pkgs.push(json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": p.download,
            "filesAnalyzed": false,
            "checksums": [{"algorithm": "SHA256", "checksumValue": p.sha256.hex()}],
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl,
            }],
            "comment": format!("architecture {}; layer {} ({})", p.arch, layers[p.layer].name, layers[p.layer].digest),
        }));
        rels.push(json!({
            "spdxElementId": format!("SPDXRef-Layer-{}", p.layer),
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    let doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": format!("https://spdx.org/spdxdocs/strata-{}-{}", spdx_id(name), digest.hex()),
        "creationInfo": {
            "created": crate::image::rfc3339(created),
            "creators": [concat!("Tool: strata-", env!("CARGO_PKG_VERSION"))],
        },
        "packages": pkgs,
        "relationships": rels,
    });
    crate::json::to_canonical(&doc)
}

/// The annotation of an SBOM artifact naming the digest of what its
/// document was made from (see [`inputs_key`]).
pub const INPUTS_ANNOTATION: &str = "dev.strata.sbom.inputs";

/// A digest of everything [`spdx`] reads (and of strata's version, which
/// the document names): the same key, the same document.
pub fn inputs_key(
    name: &str,
    digest: &Digest,
    created: u64,
    layers: &[SbomLayer],
    packages: &[SbomPackage],
) -> Digest {
    let mut h = crate::digest::Hasher::new();
    let mut put = |s: &[u8]| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s);
    };
    put(concat!("strata-sbom-", env!("CARGO_PKG_VERSION")).as_bytes());
    put(name.as_bytes());
    put(digest.to_string().as_bytes());
    put(&created.to_le_bytes());
    for l in layers {
        put(l.name.as_bytes());
        put(l.version.as_deref().unwrap_or("\0").as_bytes());
        put(l.description.as_deref().unwrap_or("\0").as_bytes());
        put(l.digest.to_string().as_bytes());
        put(l.source.as_bytes());
    }
    for p in packages {
        for f in [&p.name, &p.version, &p.arch, &p.download] {
            put(f.as_bytes());
        }
        put(&(p.layer as u64).to_le_bytes());
        put(p.sha256.to_string().as_bytes());
    }
    h.finish()
}

/// An artifact manifest in a store: an empty config, one blob, a subject.
pub struct Artifact {
    store: Store,
    manifest: Vec<u8>,
    blob: Descriptor,
}

impl Artifact {
    /// Writes `bytes` (of `media_type`) into `store` as an artifact whose
    /// subject is `subject`; returns it (not yet tagged).
    pub fn write(
        store: &Store,
        subject: &Descriptor,
        media_type: &str,
        bytes: &[u8],
        created: u64,
        inputs: Option<&Digest>,
    ) -> Result<Self> {
        let empty = store.put_bytes(b"{}")?;
        let blob_digest = store.put_bytes(bytes)?;
        let blob = Descriptor::new(media_type, blob_digest, bytes.len() as u64);
        let mut subj = Descriptor::new(
            subject.media_type.clone(),
            subject.digest.clone(),
            subject.size,
        );
        subj.annotations.clear();
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": crate::media::OCI_MANIFEST,
            "artifactType": media_type,
            "config": Descriptor::new(EMPTY_JSON, empty, 2),
            "layers": [blob],
            "subject": subj,
            "annotations": {"org.opencontainers.image.created": crate::image::rfc3339(created)},
        });
        if let Some(i) = inputs {
            manifest["annotations"][INPUTS_ANNOTATION] = Value::String(i.to_string());
        }
        let manifest = crate::json::to_canonical(&manifest);
        store.put_bytes(&manifest)?;
        Ok(Artifact {
            store: store.clone(),
            manifest,
            blob,
        })
    }

    /// The artifact store tag `tag` points at, when it was made from
    /// `inputs` (so it need not be made again).
    pub fn find(store: &Store, tag: &str, inputs: &Digest) -> Result<Option<Self>> {
        Ok(Self::open(store, tag)?.filter(|a| {
            serde_json::from_slice::<Value>(&a.manifest).is_ok_and(|v| {
                v["annotations"][INPUTS_ANNOTATION].as_str() == Some(inputs.to_string().as_str())
            })
        }))
    }

    /// The artifact store tag `tag` points at, if it is one whose blob the
    /// store has.
    pub fn open(store: &Store, tag: &str) -> Result<Option<Self>> {
        let Ok(desc) = store.resolve(tag) else {
            return Ok(None);
        };
        let mut manifest = Vec::new();
        let r = store.open_blob(&desc.digest, Some(desc.size));
        let Ok(r) = r else { return Ok(None) };
        std::io::Read::read_to_end(&mut std::io::Read::take(r, 1 << 20), &mut manifest)
            .map_err(|e| crate::Error::from_pipeline(store.blob_path(&desc.digest), e))?;
        let Ok(v) = serde_json::from_slice::<Value>(&manifest) else {
            return Ok(None);
        };
        let Ok(blob) = serde_json::from_value::<Descriptor>(v["layers"][0].clone()) else {
            return Ok(None);
        };
        if !store.has_blob(&blob.digest) {
            return Ok(None);
        }
        Ok(Some(Artifact {
            store: store.clone(),
            manifest,
            blob,
        }))
    }

    /// The store tag of the artifact of `subject` in repository `repo`:
    /// `REPO:sha256-HEX.spdx`.
    pub fn tag(repo: &str, subject: &Digest) -> String {
        format!("{repo}:sha256-{}.spdx", subject.hex())
    }

    /// A descriptor of the manifest with its artifact type, as referrers
    /// indexes list it.
    pub fn referrer_descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(
            crate::media::OCI_MANIFEST,
            Digest::of(&self.manifest),
            self.manifest.len() as u64,
        );
        d.artifact_type = Some(self.blob.media_type.clone());
        d
    }

    /// The artifact's blob (the SBOM).
    pub fn open_blob(&self) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(
            self.store
                .open_blob(&self.blob.digest, Some(self.blob.size))?,
        ))
    }
}

impl Image for Artifact {
    fn raw_manifest(&self) -> Result<Vec<u8>> {
        Ok(self.manifest.clone())
    }
    fn raw_config(&self) -> Result<Vec<u8>> {
        Ok(b"{}".to_vec())
    }
    fn layers(&self) -> Result<Vec<Arc<dyn Layer>>> {
        Ok(vec![Arc::new(StoreLayer::new(
            self.store.clone(),
            self.blob.clone(),
            self.blob.digest.clone(),
        ))])
    }
    fn location(&self) -> String {
        format!("artifact {}", Digest::of(&self.manifest))
    }
}
