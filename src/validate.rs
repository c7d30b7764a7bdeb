//! Recomputes every digest, diff_id and size of an image.

use std::io::{self, Read};

use serde::Serialize;

use crate::digest::{Digest, HashingReader};
use crate::error::Result;
use crate::image::Image;
use crate::layer::decompress;
use crate::media;
use crate::spec::Manifest;

/// The result of checking one layer.
#[derive(Debug, Serialize)]
pub struct LayerCheck {
    /// Digest the manifest claims.
    pub digest: Digest,
    /// Digest recomputed from the bytes.
    pub actual_digest: Option<Digest>,
    /// Size the manifest claims.
    pub size: u64,
    /// Size counted.
    pub actual_size: Option<u64>,
    /// diff_id the config claims.
    pub diff_id: Digest,
    /// diff_id recomputed by decompressing.
    pub actual_diff_id: Option<Digest>,
}

/// What [`validate`] found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The manifest digest.
    pub manifest_digest: Digest,
    /// Per-layer results.
    pub layers: Vec<LayerCheck>,
    /// Everything that is wrong, one sentence each.
    pub problems: Vec<String>,
}

impl Report {
    /// True when every check passed.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks `image`: config digest and size, diff_id count, and for every
/// layer its compressed digest and size, its compression against its media
/// type, and its diff_id.
pub fn validate(image: &dyn Image) -> Result<Report> {
    let raw = image.raw_manifest()?;
    let manifest_digest = Digest::of(&raw);
    let m = Manifest::parse(&raw, &image.location())?;
    let mut problems = Vec::new();
    if !media::is_manifest(m.media_type()) {
        problems.push(format!(
            "manifest media type {} is not an image manifest",
            m.media_type()
        ));
    }
    let config = image.raw_config()?;
    if Digest::of(&config) != m.config.digest {
        problems.push(format!(
            "config digest is {} but the manifest says {}",
            Digest::of(&config),
            m.config.digest
        ));
    }
    if config.len() as u64 != m.config.size {
        problems.push(format!(
            "config is {} bytes but the manifest says {}",
            config.len(),
            m.config.size
        ));
    }
    let cfg = image.config()?;
    let diff_ids = cfg.diff_ids()?;
    if diff_ids.len() != m.layers.len() {
        problems.push(format!(
            "{} layers but {} diff_ids",
            m.layers.len(),
            diff_ids.len()
        ));
    }
    let mut layers = Vec::new();
    for (i, layer) in image.layers()?.iter().enumerate() {
        let d = layer.descriptor();
        let mut check = LayerCheck {
            digest: d.digest.clone(),
            actual_digest: None,
            size: d.size,
            actual_size: None,
            diff_id: layer.diff_id(),
            actual_diff_id: None,
        };
        match recompute(layer.open()?, &format!("layer {}", d.digest)) {
            Ok(Recomputed {
                digest,
                size,
                diff_id,
                magic,
                unsafe_entry,
            }) => {
                if let Some(why) = unsafe_entry {
                    problems.push(format!("layer {i}: {why}"));
                }
                if digest != d.digest {
                    problems.push(format!(
                        "layer {i}: content hashes to {digest}, manifest says {}",
                        d.digest
                    ));
                }
                if size != d.size {
                    problems.push(format!(
                        "layer {i} ({}): {size} bytes, manifest says {}",
                        d.digest, d.size
                    ));
                }
                if diff_id != check.diff_id {
                    problems.push(format!(
                        "layer {i} ({}): diff_id is {diff_id}, config says {}",
                        d.digest, check.diff_id
                    ));
                }
                let declared = media::layer_compression(&d.media_type).map(|c| c.media_type());
                if declared != Some(magic) {
                    problems.push(format!(
                        "layer {i} ({}): media type {} but the content is {}",
                        d.digest, d.media_type, magic
                    ));
                }
                check.actual_digest = Some(digest);
                check.actual_size = Some(size);
                check.actual_diff_id = Some(diff_id);
            }
            Err(e) => problems.push(format!(
                "layer {i} ({}): {}",
                d.digest,
                crate::Error::from_pipeline("layer", e)
            )),
        }
        layers.push(check);
    }
    Ok(Report {
        manifest_digest,
        layers,
        problems,
    })
}

/// What one pass over a layer blob found.
struct Recomputed {
    digest: Digest,
    size: u64,
    diff_id: Digest,
    magic: &'static str,
    /// The first entry [`crate::tarsafe::LayerPolicy`] refuses, if any.
    unsafe_entry: Option<String>,
}

/// Hashes the compressed stream and, in the same pass, the decompressed
/// one, reading its entries through the layer policy.
fn recompute(r: Box<dyn Read + Send>, label: &str) -> io::Result<Recomputed> {
    let mut hashing = HashingReader::new(r);
    let (diff_id, magic, unsafe_entry) = {
        let mut peek = io::BufReader::new(&mut hashing);
        let magic = crate::layer::sniff(io::BufRead::fill_buf(&mut peek)?).media_type();
        let mut dec = HashingReader::new(decompress(&mut peek)?);
        let unsafe_entry =
            match crate::tarsafe::for_each_entry(std::path::Path::new(label), &mut dec, |_, _| {
                Ok(())
            }) {
                Ok(()) => None,
                Err(e @ crate::Error::UnsafePath { .. }) => Some(e.to_string()),
                Err(crate::Error::Io { source, .. }) => return Err(source),
                Err(e) => Some(e.to_string()),
            };
        // The rest of an archive that was refused still counts.
        io::copy(&mut dec, &mut io::sink())?;
        let (diff_id, _) = dec.finish();
        // Whatever the decoder left unread still counts for the digest.
        io::copy(&mut peek, &mut io::sink())?;
        (diff_id, magic, unsafe_entry)
    };
    let (digest, size) = hashing.finish();
    Ok(Recomputed {
        digest,
        size,
        diff_id,
        magic,
        unsafe_entry,
    })
}
