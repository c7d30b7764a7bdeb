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

mod archive_writer;
pub mod docker_archive;
pub mod oci;
pub mod oci_archive;

pub use archive_writer::ArchiveWriter;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::reference::{normalize_name, validate_tag};
use crate::spec::Platform;
use crate::store::Store;

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
        if s.starts_with("docker://") {
            return Err(Error::Unsupported(format!(
                "{s}: registry references (docker://) are not supported by this version of strata yet"
            )));
        }
        if let Some((t, _)) = s.split_once(':')
            && matches!(t, "dir" | "docker-daemon" | "containers-storage" | "docker")
        {
            return Err(Error::Unsupported(format!(
                "{s}: transport {t:?} is not supported; use oci:, oci-archive:, docker-archive: or a store name"
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
        }
    }
}

impl std::str::FromStr for ImageRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ImageRef::parse(s)
    }
}

/// Opens the image `r` refers to. `store` is used for store names.
pub fn open(r: &ImageRef, store: &Store, platform: &Platform) -> Result<Arc<dyn Image>> {
    Ok(match r {
        ImageRef::Store(name) => Arc::new(oci::open(store, Some(name), platform)?),
        ImageRef::StoreDigest(d) => {
            if !store.has_blob(d) {
                return Err(Error::NotFound {
                    what: format!("manifest {d}"),
                    location: store.root().display().to_string(),
                    hint: String::new(),
                });
            }
            let raw = store.read_blob(d, crate::spec::MAX_MANIFEST_SIZE)?;
            let mt = serde_json::from_slice::<serde_json::Value>(&raw)
                .ok()
                .and_then(|v| {
                    v.get("mediaType")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| crate::media::OCI_MANIFEST.to_string());
            let desc = crate::spec::Descriptor::new(mt, d.clone(), raw.len() as u64);
            Arc::new(crate::image::ManifestImage::load(
                Arc::new(store.clone()) as Arc<dyn crate::image::BlobSource>,
                &desc,
                platform,
            )?)
        }
        ImageRef::Oci { dir, tag } => {
            Arc::new(oci::open(&Store::open(dir)?, tag.as_deref(), platform)?)
        }
        ImageRef::OciArchive { file, tag } => {
            Arc::new(oci_archive::open(file, tag.as_deref(), platform)?)
        }
        ImageRef::DockerArchive { file, select } => Arc::new(docker_archive::open(file, select)?),
    })
}

/// Writes `image` to `r`; returns the manifest digest.
pub fn write(image: &dyn Image, r: &ImageRef, store: &Store) -> Result<Digest> {
    match r {
        ImageRef::Store(name) => oci::write_image(image, store, Some(name)),
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
        for bad in [
            "oci:",
            "Bad:Ref",
            "oci:x:bad tag",
            "docker-archive:a.tar:@x",
            "dir:/x",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
