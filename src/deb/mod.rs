//! Layers from Debian packages, with no container and no daemon.
//!
//! * [`sources`] — the machine's apt sources (one-line and deb822 formats);
//! * [`repo`] — the repository client: InRelease checked with `gpgv`,
//!   Packages indexes and .deb files checked against their SHA256, cached
//!   content-addressed so rebuilds work offline;
//! * [`index`] and [`resolve`] — Packages indexes and deterministic
//!   dependency resolution that leaves out what the layers beneath have;
//! * [`debfile`] and [`layer`] — .deb reading and streaming each package's
//!   data.tar into a layer, with dpkg status entries;
//! * [`version`] and [`control`] — Debian versions and deb822 data.

pub mod control;
pub mod debfile;
pub mod index;
pub mod layer;
pub mod repo;
pub mod resolve;
pub mod sources;
pub mod version;

use std::io::{self, BufReader, Read};

/// A reader that decompresses `r` according to the file `name`'s extension
/// (`.xz`, `.gz`, `.zst`, or none), as in .deb members and indexes.
pub fn decompress<'a>(
    r: impl Read + Send + 'a,
    name: &str,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    let br = BufReader::with_capacity(1 << 20, r);
    Ok(if name.ends_with(".xz") {
        Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(br))
    } else if name.ends_with(".gz") {
        Box::new(flate2::bufread::MultiGzDecoder::new(br))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::with_buffer(br)?)
    } else if name.ends_with(".tar")
        || !name.contains(".tar.") && !name.contains('.')
        || name == "Packages"
    {
        Box::new(br)
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name}: unsupported compression (strata reads xz, gzip, zstd or none)"),
        ));
    })
}
