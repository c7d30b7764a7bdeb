//! `docker-archive:FILE[:NAME:TAG]` — the `docker save` / `docker load`
//! format: `manifest.json`, a config JSON and uncompressed layer tars.
//!
//! Written archives hold uncompressed layers named `<diff_id hex>.tar`
//! (what `docker save` and skopeo write), so `docker load`, `podman load`
//! and `skopeo copy docker-archive:` all read them. Read archives may hold
//! gzip or zstd layers too; they keep their bytes when copied.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::archive_writer::ArchiveWriter;
use crate::digest::{Digest, HashingReader, VerifyingReader, hash_reader};
use crate::error::{Error, Result};
use crate::image::{BlobSource, Image, ImageConfig, ManifestImage};
use crate::layer::uncompressed;
use crate::media;
use crate::spec::{Descriptor, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Manifest};
use crate::tarsafe::ArchiveIndex;

/// One entry of manifest.json.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Blobs of a docker-archive, addressed by digest.
struct DockerBlobs {
    index: ArchiveIndex,
    paths: HashMap<Digest, String>,
}

impl BlobSource for DockerBlobs {
    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>> {
        let path = self
            .paths
            .get(&desc.digest)
            .ok_or_else(|| Error::NotFound {
                what: format!("blob {}", desc.digest),
                location: self.location(),
                hint: String::new(),
            })?;
        Ok(Box::new(VerifyingReader::new(
            self.index.entry(path)?,
            desc.digest.clone(),
            Some(desc.size),
            format!("{path} in {}", self.location()),
        )))
    }
    fn location(&self) -> String {
        self.index.path().display().to_string()
    }
}

/// Which image of a docker-archive to read.
#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    /// The only image.
    Only,
    /// The image carrying this `NAME:TAG` in RepoTags.
    Name(String),
    /// The N-th image (`@N`).
    Index(usize),
}

/// Opens an image of a docker-archive. Layers are hashed once to learn
/// their digests; uncompressed layers are checked against the config's
/// diff_ids on the way.
pub fn open(path: &Path, sel: &Selector) -> Result<ManifestImage> {
    from_index(ArchiveIndex::open(path)?, sel)
}

/// Opens an image of an already scanned docker-archive.
pub fn from_index(index: ArchiveIndex, sel: &Selector) -> Result<ManifestImage> {
    let path = &index.path().to_path_buf();
    let loc = format!("{}:manifest.json", path.display());
    let entries: Vec<Entry> =
        serde_json::from_slice(&index.read("manifest.json", MAX_MANIFEST_SIZE)?)
            .map_err(|e| Error::invalid("docker-archive manifest", &loc, e.to_string()))?;
    let entry = match sel {
        Selector::Only if entries.len() == 1 => &entries[0],
        Selector::Only => {
            return Err(Error::bad_input(
                "reference",
                format!(
                    "{} holds {} images; name one with :NAME:TAG or :@N",
                    path.display(),
                    entries.len()
                ),
            ));
        }
        Selector::Index(i) => entries.get(*i).ok_or_else(|| Error::NotFound {
            what: format!("image @{i}"),
            location: path.display().to_string(),
            hint: format!(" (it holds {} images)", entries.len()),
        })?,
        Selector::Name(n) => entries
            .iter()
            .find(|e| e.repo_tags.iter().flatten().any(|t| t == n))
            .ok_or_else(|| Error::NotFound {
                what: format!("image {n:?}"),
                location: path.display().to_string(),
                hint: format!(
                    " (tags: {})",
                    entries
                        .iter()
                        .flat_map(|e| e.repo_tags.iter().flatten())
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?,
    };
    let raw_config = index.read(&entry.config, MAX_CONFIG_SIZE)?;
    let config = ImageConfig::parse(&raw_config, &format!("{}:{}", path.display(), entry.config))?;
    let diff_ids = config.diff_ids()?;
    if diff_ids.len() != entry.layers.len() {
        return Err(Error::invalid(
            "docker-archive manifest",
            &loc,
            format!(
                "{} layers listed but the config has {} diff_ids",
                entry.layers.len(),
                diff_ids.len()
            ),
        ));
    }
    let config_digest = Digest::of(&raw_config);
    let mut paths = HashMap::new();
    paths.insert(config_digest.clone(), entry.config.clone());
    let mut layers = Vec::new();
    for (layer_path, diff_id) in entry.layers.iter().zip(&diff_ids) {
        let mut r = BufReader::new(index.entry(layer_path)?);
        let mt = crate::layer::sniff(r.fill_buf().map_err(|e| Error::io(path, e))?).media_type();
        let (digest, size) = hash_reader(r).map_err(|e| Error::io(path, e))?;
        if mt == media::OCI_LAYER_TAR && digest != *diff_id {
            return Err(Error::DigestMismatch {
                what: format!(
                    "layer {layer_path} in {} (against the config's diff_id)",
                    path.display()
                ),
                expected: diff_id.to_string(),
                actual: digest.to_string(),
            });
        }
        paths.insert(digest.clone(), layer_path.clone());
        layers.push(Descriptor::new(mt, digest, size));
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(media::OCI_CONFIG, config_digest, raw_config.len() as u64),
        layers,
        subject: None,
        annotations: BTreeMap::new(),
        extra: BTreeMap::new(),
    };
    let source = Arc::new(DockerBlobs { index, paths }) as Arc<dyn BlobSource>;
    let raw = manifest.to_bytes(&path.display().to_string())?;
    ManifestImage::from_manifest(source, raw)
}

/// Writes `image` as a docker-archive at `path`, tagged `name` (`NAME:TAG`).
pub fn write(image: &dyn Image, path: &Path, name: Option<&str>) -> Result<Digest> {
    let raw_manifest = image.raw_manifest()?;
    let m = Manifest::parse(&raw_manifest, &image.location())?;
    let config = crate::image::checked_config(image, &m)?;
    let mut w = ArchiveWriter::create(path)?;
    let config_name = format!("{}.json", m.config.digest.hex());
    w.add_bytes(&config_name, &config)?;
    let mut layer_names = Vec::new();
    let mut written = std::collections::BTreeSet::new();
    for layer in image.layers()? {
        let diff_id = layer.diff_id();
        let name = format!("{}.tar", diff_id.hex());
        if written.insert(diff_id.clone()) {
            // Decompress while writing and check the diff_id on the way.
            let mut hashed = HashingReader::new(uncompressed(layer.as_ref())?);
            w.add_stream(&name, &mut hashed).map_err(|e| match e {
                Error::Io { source, .. }
                    if matches!(
                        source.kind(),
                        std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
                    ) =>
                {
                    Error::invalid(
                        "layer",
                        format!("{} of {}", layer.descriptor().digest, image.location()),
                        format!("{source}; the blob is damaged, run `strata store fsck`"),
                    )
                }
                e => e,
            })?;
            let (actual, _) = hashed.finish();
            if actual != diff_id {
                return Err(Error::DigestMismatch {
                    what: format!(
                        "uncompressed layer {} of {}",
                        layer.descriptor().digest,
                        image.location()
                    ),
                    expected: diff_id.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        layer_names.push(name);
    }
    let entry = Entry {
        config: config_name,
        repo_tags: name.map(|n| vec![n.to_string()]),
        layers: layer_names.clone(),
    };
    w.add_bytes(
        "manifest.json",
        &serde_json::to_vec(&[entry]).expect("serializes"),
    )?;
    if let Some(n) = name {
        let (repo, tag) = n.rsplit_once(':').unwrap_or((n, "latest"));
        let top = layer_names
            .last()
            .map(|l| l.trim_end_matches(".tar").to_string())
            .unwrap_or_default();
        let repos = serde_json::json!({ repo: { tag: top } });
        w.add_bytes("repositories", &crate::json::to_canonical(&repos))?;
    }
    w.commit()?;
    Ok(Digest::of(&raw_manifest))
}
