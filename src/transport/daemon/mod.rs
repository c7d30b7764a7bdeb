//! `docker-daemon:NAME[:TAG]` — images in a Docker Engine, read and written
//! through its API on the unix socket (as skopeo's transport of that name).
//!
//! Writing streams a docker-archive into `POST /images/load` and leaves out
//! the layers the engine already has: its loader looks each layer up by
//! chain ID and opens the layer's file only when the chain is missing
//! (checked on this engine by tests/daemon.rs). Which chains the engine has
//! is read from its images' root filesystems. Should a load without those
//! files fail anyway, strata loads again with every layer. An image whose
//! config the engine already holds (same image ID) is only tagged.
//!
//! gzip layers are sent as they are (the loader decompresses them); others
//! (zstd, which engines before 23.0 cannot read) are sent uncompressed.
//!
//! Reading saves the image (`GET /images/NAME/get`) into an unlinked temp
//! file beside the store and reads it as a docker-archive.

pub mod engine;
mod http;

use std::collections::BTreeSet;
use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::time::Instant;

pub use engine::Engine;
use engine::{chain_ids, not_in_engine};

use super::archive_writer::ArchiveWriter;
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use crate::image::{Image, ManifestImage};
use crate::layer::{Layer, uncompressed};
use crate::media;
use crate::spec::Manifest;
use crate::tarsafe::ArchiveIndex;

/// What loading an image into the engine did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadReport {
    /// The engine's image ID (the config digest).
    pub image_id: String,
    /// The names it was tagged with.
    pub tags: Vec<String>,
    /// Layers sent to the engine.
    pub layers_sent: usize,
    /// Layers the engine already had (not sent).
    pub layers_present: usize,
    /// Bytes of the archive sent.
    pub bytes_sent: u64,
    /// The engine had the whole image: it was only tagged.
    pub tagged_only: bool,
    /// A load without the engine's layers failed and was redone in full.
    pub full_load_fallback: bool,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// One line saying what a load sent, for reports.
pub fn describe_load(l: &LoadReport) -> String {
    if l.tagged_only {
        return format!("already there, tagged {}", l.tags.join(" "));
    }
    format!(
        "{} layer(s) sent ({:.1} MB), {} already there{}: {}",
        l.layers_sent,
        l.bytes_sent as f64 / 1e6,
        l.layers_present,
        if l.full_load_fallback {
            " (a partial load failed; loaded in full)"
        } else {
            ""
        },
        l.tags.join(" ")
    )
}

/// Loads `image` into `engine` under each of `names` (`NAME:TAG`).
pub fn load(engine: &Engine, image: &dyn Image, names: &[String]) -> Result<LoadReport> {
    let started = Instant::now();
    let raw_manifest = image.raw_manifest()?;
    let m = Manifest::parse(&raw_manifest, &image.location())?;
    let config = crate::image::checked_config(image, &m)?;
    let id = m.config.digest.to_string();
    let mut report = LoadReport {
        image_id: id.clone(),
        tags: names.to_vec(),
        ..Default::default()
    };
    let layers = image.layers()?;
    if engine.inspect(&id)?.is_some() {
        for n in names {
            engine.tag(&id, n)?;
        }
        report.tagged_only = true;
        report.layers_present = layers.len();
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id()).collect();
    let have = present_prefix(engine, &chain_ids(&diff_ids))?;
    let send = |skip: usize, report: &mut LoadReport| -> Result<()> {
        let mut sent = 0;
        let mut bytes = 0;
        engine.load(&mut |w: &mut dyn Write| {
            let mut counted = Counted { inner: w, n: 0 };
            sent = write_archive(&mut counted, &config, &m, &layers, skip, names)?;
            bytes = counted.n;
            Ok(())
        })?;
        report.layers_sent = sent;
        report.layers_present = layers.len() - sent;
        report.bytes_sent = bytes;
        Ok(())
    };
    if let Err(e) = send(have, &mut report) {
        if have == 0 || matches!(e, Error::Connect { .. }) {
            return Err(e);
        }
        report.full_load_fallback = true;
        send(0, &mut report)?;
    }
    match engine.inspect(&id)? {
        Some(i) if names.iter().all(|n| has_tag(&i, n)) => {}
        _ => {
            return Err(Error::invalid(
                "Docker Engine load",
                format!("image {id}"),
                "the engine answered but does not list the image under its names",
            ));
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn has_tag(i: &engine::Inspect, name: &str) -> bool {
    let (repo, tag) = engine::split_tag(name);
    let full = format!("{repo}:{tag}");
    i.repo_tags.iter().flatten().any(|t| {
        *t == full || *t == format!("docker.io/{full}") || *t == format!("docker.io/library/{full}")
    })
}

/// How many of `chains` (bottom first) the engine already has: the longest
/// prefix whose last chain ID is the chain of some image's layers.
fn present_prefix(engine: &Engine, chains: &[Digest]) -> Result<usize> {
    let ours: BTreeSet<&Digest> = chains.iter().collect();
    let mut best = 0;
    for id in engine.image_ids()? {
        // An image removed since the listing is skipped.
        let Some(i) = engine.inspect(&id)? else {
            continue;
        };
        let diffs: Vec<Digest> = i
            .root_fs
            .layers
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        for c in chain_ids(&diffs) {
            if ours.contains(&c) {
                let at = chains.iter().position(|x| *x == c).expect("in ours") + 1;
                best = best.max(at);
            }
        }
        if best == chains.len() {
            break;
        }
    }
    Ok(best)
}

/// Writes the docker-archive of the image, leaving out the files of its
/// first `skip` layers; returns how many layer files it wrote.
fn write_archive(
    w: &mut dyn Write,
    config: &[u8],
    m: &Manifest,
    layers: &[std::sync::Arc<dyn Layer>],
    skip: usize,
    names: &[String],
) -> Result<usize> {
    let config_name = format!("{}.json", m.config.digest.hex());
    put(w, &config_name, config.len() as u64, &mut &config[..])?;
    let mut written = BTreeSet::new();
    let mut layer_names = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let d = layer.descriptor();
        let diff_id = layer.diff_id();
        let gzip =
            d.media_type == media::OCI_LAYER_GZIP || d.media_type == media::DOCKER_LAYER_GZIP;
        let name = if gzip {
            format!("{}.tar.gz", d.digest.hex())
        } else {
            format!("{}.tar", diff_id.hex())
        };
        if i >= skip && written.insert(name.clone()) {
            if gzip
                || d.media_type == media::OCI_LAYER_TAR
                || d.media_type == media::DOCKER_LAYER_TAR
            {
                put(w, &name, d.size, &mut layer.open()?)?;
            } else {
                put_uncompressed(w, &name, layer.as_ref())?;
            }
        }
        layer_names.push(name);
    }
    let entry = serde_json::json!([{
        "Config": config_name,
        "RepoTags": names,
        "Layers": layer_names,
    }]);
    let bytes = serde_json::to_vec(&entry).expect("serializes");
    put(w, "manifest.json", bytes.len() as u64, &mut &bytes[..])?;
    w.write_all(&[0u8; 1024]).map_err(pipe)?;
    Ok(written.len())
}

/// A layer decompressed: counted once, then streamed and checked against
/// its diff_id.
fn put_uncompressed(w: &mut dyn Write, name: &str, layer: &dyn Layer) -> Result<()> {
    let size = io::copy(&mut uncompressed(layer)?, &mut io::sink())
        .map_err(|e| Error::from_pipeline(name, e))?;
    let mut hashed = HashingReader::new(uncompressed(layer)?);
    put(w, name, size, &mut hashed)?;
    let (actual, _) = hashed.finish();
    if actual != layer.diff_id() {
        return Err(Error::DigestMismatch {
            what: format!("uncompressed layer {}", layer.descriptor().digest),
            expected: layer.diff_id().to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

fn pipe(e: io::Error) -> Error {
    Error::from_pipeline("the docker-archive sent to the engine", e)
}

/// One tar entry of `size` bytes from `r`.
fn put(w: &mut dyn Write, name: &str, size: u64, r: &mut dyn Read) -> Result<()> {
    let h = ArchiveWriter::header(name, size, false)?;
    w.write_all(h.as_bytes()).map_err(pipe)?;
    let n = io::copy(&mut r.take(size), w).map_err(|e| Error::from_pipeline(name, e))?;
    if n != size {
        return Err(Error::SizeMismatch {
            what: name.to_string(),
            expected: size,
            actual: n,
        });
    }
    // Read to the end so a verifying reader checks its digest.
    let mut rest = [0u8; 1];
    if r.read(&mut rest)
        .map_err(|e| Error::from_pipeline(name, e))?
        != 0
    {
        return Err(Error::SizeMismatch {
            what: name.to_string(),
            expected: size,
            actual: size + 1,
        });
    }
    let pad = (512 - size % 512) % 512;
    w.write_all(&[0u8; 512][..pad as usize]).map_err(pipe)
}

struct Counted<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads image `name` (a reference or an image ID) out of the engine: saved
/// into an unlinked temp file in `tmp_dir`, then read as a docker-archive.
pub fn open(engine: &Engine, name: &str, tmp_dir: &Path) -> Result<ManifestImage> {
    let info = engine.inspect(name)?.ok_or_else(|| not_in_engine(name))?;
    let mut file = tempfile::tempfile_in(tmp_dir).map_err(|e| Error::io(tmp_dir, e))?;
    {
        let mut w = io::BufWriter::with_capacity(1 << 20, &mut file);
        engine.save(&info.id, &mut w)?;
        w.flush().map_err(|e| Error::io(tmp_dir, e))?;
    }
    file.rewind().map_err(|e| Error::io(tmp_dir, e))?;
    let label = format!("docker-daemon:{name}");
    let index = ArchiveIndex::from_file(file, Path::new(&label))?;
    super::docker_archive::from_index(index, &super::docker_archive::Selector::Only)
}
