//! Transports: where images are read from and written to, named as skopeo
//! names them.
//!
//! | form | meaning |
//! |---|---|
//! | `NAME[:TAG]` | a tag in the store |
//! | `[NAME]@sha256:HEX` | a manifest in the store, by digest |
//! | `oci:DIR[:TAG]` | an OCI image-layout directory |
//! | `oci-archive:FILE[:TAG]` | an OCI layout in a tar file |
//! | `docker-archive:FILE[:NAME:TAG \| :@N]` | `docker save` format |
//! | `docker-daemon:NAME[:TAG]` | an image in the Docker Engine (reading also takes `docker-daemon:sha256:ID`) |

mod archive_writer;
pub mod daemon;
pub mod docker_archive;
pub mod oci;
pub mod oci_archive;

pub use archive_writer::ArchiveWriter;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{Image, ImageIndex};
use crate::reference::{normalize_name, validate_tag};
use crate::registry::push::{ProgressFn, PushReport};
use crate::registry::{Client, ClientOptions, RegistryRef};
use crate::spec::Platform;
use crate::store::Store;

/// What reading and writing images needs: the store (for store names), the
/// platform to pick from indexes, and registry settings (the client is made
/// on first use).
pub struct Context {
    /// The content store.
    pub store: Store,
    /// Platform picked from multi-platform images.
    pub platform: Platform,
    /// Registry client settings.
    pub registry: ClientOptions,
    /// Progress callback for registry transfers.
    pub progress: Option<ProgressFn>,
    /// Progress callback for the layers a build makes.
    pub layer_progress: Option<crate::progress::ProgressFn>,
    client: OnceLock<Arc<Client>>,
}

impl Context {
    /// A context with default registry settings and the host platform.
    pub fn new(store: Store) -> Self {
        Context {
            store,
            platform: Platform::host(),
            registry: ClientOptions::default(),
            progress: None,
            layer_progress: None,
            client: OnceLock::new(),
        }
    }

    /// The same context for another platform (the registry client is
    /// shared).
    pub fn for_platform(&self, platform: Platform) -> Context {
        let client = OnceLock::new();
        if let Some(c) = self.client.get() {
            let _ = client.set(Arc::clone(c));
        }
        Context {
            store: self.store.clone(),
            platform,
            registry: self.registry.clone(),
            progress: self.progress.clone(),
            layer_progress: self.layer_progress.clone(),
            client,
        }
    }

    /// The registry client.
    pub fn client(&self) -> Result<Arc<Client>> {
        if let Some(c) = self.client.get() {
            return Ok(Arc::clone(c));
        }
        let mut options = self.registry.clone();
        if options.blob_locations.is_none() {
            options.blob_locations = Some(crate::registry::locations::BlobLocations::new(
                self.store.root(),
            ));
        }
        let c = Arc::new(Client::new(options)?);
        Ok(Arc::clone(self.client.get_or_init(|| c)))
    }
}

/// What writing an image did.
#[derive(Debug, serde::Serialize)]
pub struct Written {
    /// The manifest digest.
    pub digest: Digest,
    /// For registry destinations, the push summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<PushReport>,
    /// For a store destination, what reading the image fetched (blobs the
    /// store already had are not read again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullReport>,
    /// For a docker-daemon destination, what the load sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<daemon::LoadReport>,
}

/// What writing an image into the store fetched from its source.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PullReport {
    /// Blobs (layers and config) fetched.
    pub fetched: usize,
    /// Blobs the store already had.
    pub present: usize,
    /// Bytes of the blobs fetched.
    pub bytes: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// The image's blobs (layers, then config) the store has and lacks.
fn blobs_present(image: &dyn Image, store: &Store) -> Result<Vec<(u64, bool)>> {
    let mut out: Vec<(u64, bool)> = image
        .layers()?
        .iter()
        .map(|l| {
            let d = l.descriptor();
            (d.size, store.has_blob(&d.digest))
        })
        .collect();
    let config = image.manifest()?.config;
    out.push((config.size, store.has_blob(&config.digest)));
    Ok(out)
}

/// A parsed image reference in one of the transports.
#[derive(Clone, Debug, PartialEq)]
pub enum ImageRef {
    /// A tag in the store, normalized to `name:tag`.
    Store(String),
    /// A manifest in the store by digest: `[NAME]@sha256:<hex>`.
    StoreDigest(Digest),
    /// `oci:DIR[:TAG]`.
    Oci {
        /// Layout directory.
        dir: PathBuf,
        /// Tag (ref.name).
        tag: Option<String>,
    },
    /// `oci-archive:FILE[:TAG]`.
    OciArchive {
        /// Archive file.
        file: PathBuf,
        /// Tag (ref.name).
        tag: Option<String>,
    },
    /// `docker-archive:FILE[:NAME:TAG|:@N]`.
    DockerArchive {
        /// Archive file.
        file: PathBuf,
        /// Which image.
        select: docker_archive::Selector,
    },
    /// `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`.
    Registry(RegistryRef),
    /// `docker-daemon:NAME:TAG` (normalized) or `docker-daemon:sha256:ID`.
    DockerDaemon(String),
}

fn split_path(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (rest, None),
    }
}

fn layout_tag(tag: Option<&str>, input: &str) -> Result<Option<String>> {
    match tag {
        None => Ok(None),
        Some(t) => {
            // A ref.name is a tag or a full reference.
            if validate_tag(t, input).is_err() {
                normalize_name(t).map_err(|_| Error::InvalidReference {
                    input: input.to_string(),
                    reason: format!("{t:?} is neither a tag nor an image name"),
                })?;
            }
            Ok(Some(t.to_string()))
        }
    }
}

impl ImageRef {
    /// Parses a reference string.
    pub fn parse(s: &str) -> Result<Self> {
        let err = |reason: &str| Error::InvalidReference {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = split_path(rest);
            if dir.is_empty() {
                return Err(err("oci: needs a directory, e.g. oci:./layout:tag"));
            }
            return Ok(ImageRef::Oci {
                dir: dir.into(),
                tag: layout_tag(tag, s)?,
            });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag) = split_path(rest);
            if file.is_empty() {
                return Err(err(
                    "oci-archive: needs a file, e.g. oci-archive:image.tar:tag",
                ));
            }
            return Ok(ImageRef::OciArchive {
                file: file.into(),
                tag: layout_tag(tag, s)?,
            });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, name) = split_path(rest);
            if file.is_empty() {
                return Err(err(
                    "docker-archive: needs a file, e.g. docker-archive:image.tar:name:tag",
                ));
            }
            let select = match name {
                None => docker_archive::Selector::Only,
                Some(n) if n.starts_with('@') => docker_archive::Selector::Index(
                    n[1..]
                        .parse()
                        .map_err(|_| err("@N must be a number, e.g. docker-archive:x.tar:@0"))?,
                ),
                Some(n) => docker_archive::Selector::Name(normalize_name(n)?),
            };
            return Ok(ImageRef::DockerArchive {
                file: file.into(),
                select,
            });
        }
        if let Some(rest) = s.strip_prefix("docker://") {
            return Ok(ImageRef::Registry(RegistryRef::parse(rest)?));
        }
        if let Some(rest) = s.strip_prefix("docker-daemon:") {
            if rest.starts_with("sha256:") {
                let d: Digest = rest.parse()?;
                return Ok(ImageRef::DockerDaemon(d.to_string()));
            }
            if rest.is_empty() {
                return Err(err(
                    "docker-daemon: needs an image, e.g. docker-daemon:app:latest",
                ));
            }
            return Ok(ImageRef::DockerDaemon(normalize_name(rest)?));
        }
        if let Some((t, _)) = s.split_once(':')
            && matches!(t, "dir" | "containers-storage" | "docker")
        {
            return Err(Error::Unsupported(format!(
                "{s}: transport {t:?} is not supported; use oci:, oci-archive:, docker-archive:, docker-daemon:, docker:// or a store name"
            )));
        }
        if let Some((name, digest)) = s.split_once('@') {
            if !name.is_empty() {
                crate::reference::parse_name(name)?;
            }
            return Ok(ImageRef::StoreDigest(digest.parse()?));
        }
        Ok(ImageRef::Store(normalize_name(s)?))
    }

    /// The same reference with a relative file path made relative to `base`
    /// (for references written in project files).
    pub fn relative_to(self, base: &std::path::Path) -> Self {
        let fix = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        match self {
            ImageRef::Oci { dir, tag } => ImageRef::Oci { dir: fix(dir), tag },
            ImageRef::OciArchive { file, tag } => ImageRef::OciArchive {
                file: fix(file),
                tag,
            },
            ImageRef::DockerArchive { file, select } => ImageRef::DockerArchive {
                file: fix(file),
                select,
            },
            other => other,
        }
    }

    /// The tag or name this reference would give an image written to it.
    pub fn name(&self) -> Option<String> {
        match self {
            ImageRef::Store(n) => Some(n.clone()),
            ImageRef::StoreDigest(_) => None,
            ImageRef::Oci { tag, .. } | ImageRef::OciArchive { tag, .. } => tag.clone(),
            ImageRef::DockerArchive { select, .. } => match select {
                docker_archive::Selector::Name(n) => Some(n.clone()),
                _ => None,
            },
            ImageRef::Registry(r) => Some(r.to_string()),
            ImageRef::DockerDaemon(n) => (!n.starts_with("sha256:")).then(|| n.clone()),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |t: &Option<String>| t.as_ref().map(|t| format!(":{t}")).unwrap_or_default();
        match self {
            ImageRef::Store(n) => write!(f, "{n}"),
            ImageRef::StoreDigest(d) => write!(f, "@{d}"),
            ImageRef::Oci { dir, tag } => write!(f, "oci:{}{}", dir.display(), opt(tag)),
            ImageRef::OciArchive { file, tag } => {
                write!(f, "oci-archive:{}{}", file.display(), opt(tag))
            }
            ImageRef::DockerArchive { file, select } => {
                write!(f, "docker-archive:{}", file.display())?;
                match select {
                    docker_archive::Selector::Only => Ok(()),
                    docker_archive::Selector::Name(n) => write!(f, ":{n}"),
                    docker_archive::Selector::Index(i) => write!(f, ":@{i}"),
                }
            }
            ImageRef::Registry(r) => write!(f, "{r}"),
            ImageRef::DockerDaemon(n) => write!(f, "docker-daemon:{n}"),
        }
    }
}

impl std::str::FromStr for ImageRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ImageRef::parse(s)
    }
}

/// Opens the image `r` refers to.
pub fn open(r: &ImageRef, ctx: &Context) -> Result<Arc<dyn Image>> {
    let (store, platform) = (&ctx.store, &ctx.platform);
    Ok(match r {
        ImageRef::Store(name) => Arc::new(oci::open(store, Some(name), platform)?),
        ImageRef::StoreDigest(d) => Arc::new(crate::image::ManifestImage::load(
            Arc::new(store.clone()) as Arc<dyn crate::image::BlobSource>,
            &store_descriptor(store, d)?,
            platform,
        )?),
        ImageRef::Oci { dir, tag } => {
            Arc::new(oci::open(&Store::open(dir)?, tag.as_deref(), platform)?)
        }
        ImageRef::OciArchive { file, tag } => {
            Arc::new(oci_archive::open(file, tag.as_deref(), platform)?)
        }
        ImageRef::DockerArchive { file, select } => Arc::new(docker_archive::open(file, select)?),
        ImageRef::Registry(rr) => Arc::new(crate::registry::pull::open(
            ctx.client()?,
            rr,
            platform,
            Some(ctx.store.clone()),
        )?),
        ImageRef::DockerDaemon(name) => Arc::new(daemon::open(
            &daemon::Engine::from_env()?,
            name,
            ctx.store.root(),
        )?),
    })
}

/// Writes `image` to `r`; returns the manifest digest.
pub fn write(image: &dyn Image, r: &ImageRef, ctx: &Context) -> Result<Written> {
    let store = &ctx.store;
    let into_store = matches!(r, ImageRef::Store(_) | ImageRef::StoreDigest(_));
    let before = into_store
        .then(|| blobs_present(image, store))
        .transpose()?;
    let started = std::time::Instant::now();
    let digest = match r {
        ImageRef::Store(name) => {
            oci::write_image_with(image, store, Some(name), ctx.progress.as_ref())
        }
        ImageRef::StoreDigest(d) => {
            let written = oci::write_image(image, store, None)?;
            if written != *d {
                return Err(Error::DigestMismatch {
                    what: "image written to a digest reference".into(),
                    expected: d.to_string(),
                    actual: written.to_string(),
                });
            }
            Ok(written)
        }
        ImageRef::Oci { dir, tag } => {
            oci::write_image(image, &Store::open_or_create(dir)?, tag.as_deref())
        }
        ImageRef::OciArchive { file, tag } => oci_archive::write(image, file, tag.as_deref()),
        ImageRef::DockerArchive { file, select } => {
            let name = match select {
                docker_archive::Selector::Name(n) => Some(n.as_str()),
                docker_archive::Selector::Only => None,
                docker_archive::Selector::Index(_) => {
                    return Err(Error::bad_input(
                        "destination",
                        "@N selects an image to read; to write, give docker-archive:FILE[:NAME:TAG]",
                    ));
                }
            };
            docker_archive::write(image, file, name)
        }
        ImageRef::Registry(rr) => {
            let client = ctx.client()?;
            let report =
                crate::registry::push::push(&client, image, rr, &[], &[], ctx.progress.clone())?;
            return Ok(Written {
                digest: report.digest.clone().expect("set by push"),
                push: Some(report),
                pull: None,
                load: None,
            });
        }
        ImageRef::DockerDaemon(name) => {
            if name.starts_with("sha256:") {
                return Err(Error::bad_input(
                    "destination",
                    "an image ID names an image to read; to write, give docker-daemon:NAME:TAG",
                ));
            }
            let report = daemon::load(
                &daemon::Engine::from_env()?,
                image,
                std::slice::from_ref(name),
            )?;
            return Ok(Written {
                digest: Digest::of(&image.raw_manifest()?),
                push: None,
                pull: None,
                load: Some(report),
            });
        }
    }?;
    let pull = before.map(|blobs| {
        let mut p = PullReport {
            seconds: started.elapsed().as_secs_f64(),
            ..Default::default()
        };
        for (size, had) in blobs {
            if had {
                p.present += 1;
            } else {
                p.fetched += 1;
                p.bytes += size;
            }
        }
        p
    });
    Ok(Written {
        digest,
        push: None,
        pull,
        load: None,
    })
}

/// The descriptor of the manifest or index `d` in `store`: its media type
/// is the document's `mediaType`, else an index when it has `manifests`,
/// else an OCI manifest.
fn store_descriptor(store: &Store, d: &crate::digest::Digest) -> Result<crate::spec::Descriptor> {
    if !store.has_blob(d) {
        return Err(Error::NotFound {
            what: format!("manifest {d}"),
            location: store.root().display().to_string(),
            hint: String::new(),
        });
    }
    let raw = store.read_blob(d, crate::spec::MAX_MANIFEST_SIZE)?;
    let doc = serde_json::from_slice::<serde_json::Value>(&raw).ok();
    let declared = doc
        .as_ref()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string));
    let media_type = declared.unwrap_or_else(|| {
        let index = doc
            .as_ref()
            .and_then(|v| v.get("manifests"))
            .is_some_and(|m| m.is_array());
        match index {
            true => crate::media::OCI_INDEX,
            false => crate::media::OCI_MANIFEST,
        }
        .to_string()
    });
    Ok(crate::spec::Descriptor::new(
        media_type,
        d.clone(),
        raw.len() as u64,
    ))
}

fn is_index_type(media_type: &str) -> bool {
    media_type == crate::media::OCI_INDEX || media_type == crate::media::DOCKER_MANIFEST_LIST
}

/// The image index `r` refers to, when it refers to one (`None` for a
/// single image, and for docker-archive and docker-daemon, which hold
/// single images).
pub fn open_index(r: &ImageRef, ctx: &Context) -> Result<Option<Arc<dyn ImageIndex>>> {
    let boxed =
        |i: Option<crate::image::ManifestIndex>| i.map(|i| Arc::new(i) as Arc<dyn ImageIndex>);
    Ok(match r {
        ImageRef::Store(name) => boxed(oci::open_index(&ctx.store, Some(name))?),
        ImageRef::StoreDigest(d) => {
            let desc = store_descriptor(&ctx.store, d)?;
            if !is_index_type(&desc.media_type) {
                return Ok(None);
            }
            boxed(Some(crate::image::ManifestIndex::load(
                Arc::new(ctx.store.clone()) as Arc<dyn crate::image::BlobSource>,
                &desc,
            )?))
        }
        ImageRef::Oci { dir, tag } => boxed(oci::open_index(&Store::open(dir)?, tag.as_deref())?),
        ImageRef::OciArchive { file, tag } => boxed(oci_archive::open_index(file, tag.as_deref())?),
        ImageRef::Registry(rr) => boxed(crate::registry::pull::open_index(
            ctx.client()?,
            rr,
            Some(ctx.store.clone()),
        )?),
        ImageRef::DockerArchive { .. } | ImageRef::DockerDaemon(_) => None,
    })
}

/// Writes every platform of `index` to `r`: the store, a layout or an
/// oci-archive hold the whole index; a registry gets each manifest by
/// digest, then the index under the tag. docker-archive and docker-daemon
/// hold one platform: pick it with [`open`] instead.
pub fn write_index(index: &dyn ImageIndex, r: &ImageRef, ctx: &Context) -> Result<Written> {
    let written = |digest| Written {
        digest,
        push: None,
        pull: None,
        load: None,
    };
    match r {
        ImageRef::Store(name) => Ok(written(oci::write_index(index, &ctx.store, Some(name))?)),
        ImageRef::StoreDigest(d) => {
            let got = oci::write_index(index, &ctx.store, None)?;
            if got != *d {
                return Err(Error::DigestMismatch {
                    what: "index written to a digest reference".into(),
                    expected: d.to_string(),
                    actual: got.to_string(),
                });
            }
            Ok(written(got))
        }
        ImageRef::Oci { dir, tag } => Ok(written(oci::write_index(
            index,
            &Store::open_or_create(dir)?,
            tag.as_deref(),
        )?)),
        ImageRef::OciArchive { file, tag } => Ok(written(oci_archive::write_index(
            index,
            file,
            tag.as_deref(),
        )?)),
        ImageRef::Registry(rr) => {
            let client = ctx.client()?;
            let report = crate::registry::push::push_index(
                &client,
                index,
                rr,
                &[],
                &[],
                ctx.progress.clone(),
            )?;
            Ok(Written {
                digest: report.digest.clone().expect("set by push"),
                push: Some(report),
                pull: None,
                load: None,
            })
        }
        ImageRef::DockerArchive { .. } | ImageRef::DockerDaemon(_) => Err(Error::Unsupported(
            format!("{r} holds one platform of an image, not an index; pick one with --platform"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transports() {
        assert_eq!(
            ImageRef::parse("app").unwrap(),
            ImageRef::Store("app:latest".into())
        );
        assert_eq!(
            ImageRef::parse("oci:/tmp/x:v1").unwrap(),
            ImageRef::Oci {
                dir: "/tmp/x".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            ImageRef::parse("docker-archive:a.tar:app:1").unwrap(),
            ImageRef::DockerArchive {
                file: "a.tar".into(),
                select: docker_archive::Selector::Name("app:1".into())
            }
        );
        assert_eq!(
            ImageRef::parse("docker-daemon:app").unwrap(),
            ImageRef::DockerDaemon("app:latest".into())
        );
        for bad in [
            "oci:",
            "Bad:Ref",
            "oci:x:bad tag",
            "docker-archive:a.tar:@x",
            "docker-daemon:",
            "docker-daemon:Bad:Ref",
            "dir:/x",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
