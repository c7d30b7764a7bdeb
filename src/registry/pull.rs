//! Reading images from a registry.

use std::io::{self, Read};
use std::sync::Arc;

use super::api::Repo;
use super::http::Client;
use super::reference::RegistryRef;
use crate::digest::VerifyingReader;
use crate::error::{Error, Result};
use crate::image::{BlobSource, ManifestImage, pick_platform};
use crate::media;
use crate::spec::{Descriptor, Index, Platform};
use crate::store::Store;

/// The blobs of one repository, read from a local store instead when it
/// already holds them (content-addressed, so the same bytes, and verified
/// as they are read either way).
pub struct RegistryBlobs {
    client: Arc<Client>,
    r: RegistryRef,
    local: Option<Store>,
}

impl RegistryBlobs {
    /// Blobs of `r`'s repository.
    pub fn new(client: Arc<Client>, r: RegistryRef) -> Self {
        RegistryBlobs {
            client,
            r,
            local: None,
        }
    }
    /// Blobs `local` holds are read from it, not fetched.
    pub fn with_local(mut self, local: Option<Store>) -> Self {
        self.local = local;
        self
    }
    /// The repository reference.
    pub fn reference(&self) -> &RegistryRef {
        &self.r
    }
    /// The client.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }
}

impl BlobSource for RegistryBlobs {
    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>> {
        if let Some(store) = self.local.as_ref().filter(|s| s.has_blob(&desc.digest)) {
            return Ok(Box::new(store.open_blob(&desc.digest, Some(desc.size))?));
        }
        let resp = Repo::new(&self.client, &self.r).get_blob(&desc.digest, 0)?;
        let resuming = ResumingReader {
            client: Arc::clone(&self.client),
            r: self.r.clone(),
            desc: desc.clone(),
            inner: Box::new(resp),
            offset: 0,
            resumes: 0,
        };
        let verified = VerifyingReader::new(
            resuming,
            desc.digest.clone(),
            Some(desc.size),
            format!("blob {} from {}", desc.digest, self.r),
        );
        Ok(Box::new(Remembered {
            inner: verified,
            at: self.client.options().blob_locations.clone().map(|l| {
                (
                    l,
                    self.r.api_host().to_string(),
                    self.r.repository.clone(),
                    desc.digest.clone(),
                )
            }),
        }))
    }
    fn location(&self) -> String {
        self.r.to_string()
    }
    fn mount_source(&self) -> Option<(String, String)> {
        Some((self.r.api_host().to_string(), self.r.repository.clone()))
    }
}

/// Remembers where a blob was read from once it was read whole and
/// verified (see [`crate::registry::locations`]).
struct Remembered<R> {
    inner: R,
    at: Option<(
        crate::registry::locations::BlobLocations,
        String,
        String,
        crate::digest::Digest,
    )>,
}

impl<R: Read> Read for Remembered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0
            && !buf.is_empty()
            && let Some((l, host, repo, digest)) = self.at.take()
        {
            l.add(&host, &digest, &repo);
        }
        Ok(n)
    }
}

/// Re-requests the rest of a blob with a Range request when the connection
/// drops or stalls mid-stream (as often as the retry policy allows), then
/// fails naming the registry and the blob.
struct ResumingReader {
    client: Arc<Client>,
    r: RegistryRef,
    desc: Descriptor,
    inner: Box<dyn Read + Send>,
    offset: u64,
    resumes: u32,
}

impl Read for ResumingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let policy = *self.client.policy();
        loop {
            let cause = match self.inner.read(buf) {
                Ok(0) if self.offset < self.desc.size => "the connection closed early".to_string(),
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(_) if self.offset >= self.desc.size => {
                    // Everything arrived; the verifier checks it.
                    return Ok(0);
                }
                Err(e) => crate::registry::http::retry::error_chain(&e),
            };
            self.resumes += 1;
            if self.resumes >= policy.attempts.max(1) {
                return Err(Error::Connect {
                    host: self.r.api_host().to_string(),
                    detail: format!(
                        "blob {} of {}: {cause} at byte {} of {} (gave up after {} resumes; a stall counts after {} s without data)",
                        self.desc.digest,
                        self.r,
                        self.offset,
                        self.desc.size,
                        self.resumes - 1,
                        policy.stall.as_secs_f64()
                    ),
                }
                .into_io());
            }
            std::thread::sleep(policy.delay(self.resumes));
            let resp = Repo::new(&self.client, &self.r)
                .get_blob(&self.desc.digest, self.offset)
                .map_err(Error::into_io)?;
            self.inner = Box::new(resp);
        }
    }
}

/// Opens the image `r` names, resolving an index to `platform`. Blobs
/// `local` already holds are read from it, never fetched again.
pub fn open(
    client: Arc<Client>,
    r: &RegistryRef,
    platform: &Platform,
    local: Option<Store>,
) -> Result<ManifestImage> {
    let repo = Repo::new(&client, r);
    let mut m = repo.get_manifest(&r.reference())?;
    for _ in 0..3 {
        if media::is_manifest(&m.media_type) {
            let source =
                Arc::new(RegistryBlobs::new(Arc::clone(&client), r.clone()).with_local(local))
                    as Arc<dyn BlobSource>;
            return ManifestImage::from_manifest(source, m.bytes);
        }
        if !media::is_index(&m.media_type) {
            return Err(Error::Unsupported(format!(
                "{r} is a {}, not an image manifest or index",
                m.media_type
            )));
        }
        let index = Index::parse(&m.bytes, &r.to_string())?;
        let pick = pick_platform(&index, platform, &r.to_string())?;
        m = repo.get_manifest(&pick.digest.to_string())?;
    }
    Err(Error::invalid(
        "image index",
        r.to_string(),
        "indexes nested too deeply",
    ))
}

/// The index `r` names, when it names one (`None` for a single image):
/// each image manifest is fetched by digest, each config read; layers stay
/// in the registry until read. Blobs `local` holds are read from it.
pub fn open_index(
    client: Arc<Client>,
    r: &RegistryRef,
    local: Option<Store>,
) -> Result<Option<crate::image::ManifestIndex>> {
    let repo = Repo::new(&client, r);
    let m = repo.get_manifest(&r.reference())?;
    if !media::is_index(&m.media_type) {
        return Ok(None);
    }
    let source = Arc::new(RegistryBlobs::new(Arc::clone(&client), r.clone()).with_local(local))
        as Arc<dyn BlobSource>;
    let fetch = |d: &Descriptor| -> Result<Vec<u8>> {
        let got = repo.get_manifest(&d.digest.to_string())?;
        let actual = crate::digest::Digest::of(&got.bytes);
        if actual != d.digest || got.bytes.len() as u64 != d.size {
            return Err(Error::DigestMismatch {
                what: format!("manifest {} of the index {r}", d.digest),
                expected: format!("{} ({} bytes)", d.digest, d.size),
                actual: format!("{actual} ({} bytes)", got.bytes.len()),
            });
        }
        Ok(got.bytes)
    };
    crate::image::ManifestIndex::from_index(source, m.bytes, &fetch).map(Some)
}
