//! Layers: the [`Layer`] trait every backend implements, and the
//! deterministic streaming [`LayerBuilder`].

mod builder;
mod compress;
mod gzip;
mod tar;
mod tree;
mod walk;

pub use builder::{LAYER_FORMAT_VERSION, LayerBuilder, StoreLayer, source_date_epoch};
pub use compress::{Compression, Encoder, GZIP_BLOCK, encoder};
pub use tar::TarEncoder;
pub use walk::{Entry, EntryKind, Mapping, Walk, collect, glob_match, normalize_dest, walk};

use std::io::{BufRead, BufReader, Read};

use crate::digest::Digest;
use crate::error::Result;
use crate::spec::Descriptor;

/// A layer of an image, wherever it lives (store, archive, registry).
pub trait Layer: Send + Sync {
    /// The layer's descriptor: media type, digest and size of the compressed
    /// blob, and annotations.
    fn descriptor(&self) -> Descriptor;
    /// sha256 of the uncompressed tar.
    fn diff_id(&self) -> Digest;
    /// The blob as stored (compressed), verified against its digest at end
    /// of stream.
    fn open(&self) -> Result<Box<dyn Read + Send>>;
    /// The blob without strata's own digest check, for a consumer that
    /// verifies the digest itself (a registry checks every pushed blob).
    fn open_for_push(&self) -> Result<Box<dyn Read + Send>> {
        self.open()
    }
    /// For layers read from a registry: (API host, repository), so a push to
    /// the same registry can mount the blob instead of uploading it.
    fn mount_source(&self) -> Option<(String, String)> {
        None
    }
}

/// The compression a stream starting with `head` uses, by its magic number
/// (gzip, zstd, or plain).
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::gzip()
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::zstd()
    } else {
        Compression::None
    }
}

/// Opens a decompressing reader over `r`, recognising gzip and zstd by their
/// magic numbers and passing anything else through.
pub fn decompress<'a>(r: impl Read + Send + 'a) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    let mut br = BufReader::with_capacity(1 << 20, r);
    Ok(match sniff(br.fill_buf()?) {
        Compression::Gzip { .. } => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        Compression::Zstd { .. } => Box::new(zstd::stream::read::Decoder::with_buffer(br)?),
        Compression::None => Box::new(br),
    })
}

/// The uncompressed tar stream of a layer.
pub fn uncompressed<'a>(layer: &'a dyn Layer) -> Result<Box<dyn Read + Send + 'a>> {
    let what = format!("layer {}", layer.descriptor().digest);
    decompress(layer.open()?).map_err(|e| crate::Error::from_pipeline(what, e))
}
