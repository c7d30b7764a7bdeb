//! Writing images to a registry.
//!
//! Order: blobs (in parallel, skipping those the registry has, mounting
//! those another repository of the same registry has), then the config,
//! then the manifest by digest, then each tag. A push that fails part-way
//! leaves no tag pointing at missing content, and running it again skips
//! every blob that finished.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::api::{Mount, Repo};
use super::http::Client;
use super::reference::RegistryRef;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::layer::Layer;
use crate::spec::{Descriptor, Manifest};

/// Chunk size when a registry refuses a monolithic upload.
const DEFAULT_CHUNK: u64 = 8 << 20;

/// What happened to one blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobOutcome {
    /// Transferred (uploaded, or downloaded into a store).
    Pushed,
    /// The registry already had it.
    Skipped,
    /// Linked from another repository.
    Mounted,
}

/// Progress events, for callers that show their own progress.
#[derive(Clone, Debug)]
pub enum Progress {
    /// A blob transfer starts.
    Start {
        /// Blob digest.
        digest: Digest,
        /// Blob size.
        size: u64,
    },
    /// Bytes of a blob were sent.
    Bytes {
        /// Blob digest.
        digest: Digest,
        /// Bytes sent so far for this blob.
        sent: u64,
    },
    /// A blob is done.
    Done {
        /// Blob digest.
        digest: Digest,
        /// What happened.
        outcome: BlobOutcome,
    },
}

/// A progress callback (shared with the HTTP client's body threads).
pub type ProgressFn = std::sync::Arc<dyn Fn(&Progress) + Send + Sync>;

/// The summary of a push.
#[derive(Debug, Default, Serialize)]
pub struct PushReport {
    /// The manifest digest.
    pub digest: Option<Digest>,
    /// Blobs uploaded.
    pub pushed: usize,
    /// Blobs the registry had.
    pub skipped: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Blob bytes uploaded.
    pub bytes: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Tags written.
    pub tags: Vec<String>,
    /// What went wrong without failing the push (the push-times record).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Counts the bytes of one blob read through it: into an optional running
/// total, and as [`Progress::Bytes`] events.
pub(crate) struct ProgressReader<R> {
    pub(crate) inner: R,
    pub(crate) sent: u64,
    pub(crate) digest: Digest,
    pub(crate) total: Option<Arc<AtomicU64>>,
    pub(crate) progress: Option<ProgressFn>,
}

impl<R: std::io::Read> std::io::Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent += n as u64;
        if let Some(t) = &self.total {
            t.fetch_add(n as u64, Ordering::Relaxed);
        }
        if let Some(p) = &self.progress {
            p(&Progress::Bytes {
                digest: self.digest.clone(),
                sent: self.sent,
            });
        }
        Ok(n)
    }
}

/// A blob to push: a layer, or the config bytes.
enum Item<'a> {
    Layer(&'a dyn Layer),
    Bytes(&'a [u8], Box<Descriptor>),
}

impl Item<'_> {
    fn desc(&self) -> Descriptor {
        match self {
            Item::Layer(l) => l.descriptor(),
            Item::Bytes(_, d) => (**d).clone(),
        }
    }
}

/// Pushes `image` to `target`'s repository, then tags it with `target`'s
/// tag and every tag in `extra_tags`. `mount_from` lists repositories of the
/// same registry to try mounting blobs from.
pub fn push(
    client: &Client,
    image: &dyn Image,
    target: &RegistryRef,
    extra_tags: &[String],
    mount_from: &[String],
    progress: Option<ProgressFn>,
) -> Result<PushReport> {
    push_with(
        client, image, target, extra_tags, mount_from, progress, true,
    )
}

/// [`push`], recording the tags' push times only when `record_times` (a
/// caller pushing many manifests records them once, together).
pub fn push_with(
    client: &Client,
    image: &dyn Image,
    target: &RegistryRef,
    extra_tags: &[String],
    mount_from: &[String],
    progress: Option<ProgressFn>,
    record_times: bool,
) -> Result<PushReport> {
    let started = Instant::now();
    let repo = Repo::new(client, target);
    let raw = image.raw_manifest()?;
    let manifest = Manifest::parse(&raw, &image.location())?;
    let config = image.raw_config()?;
    let layers = image.layers()?;
    // The config comes from where the layers come from, when that is a registry.
    let image_source = layers.iter().find_map(|l| l.mount_source());
    let mut items: Vec<Item> = layers.iter().map(|l| Item::Layer(l.as_ref())).collect();
    items.push(Item::Bytes(&config, Box::new(manifest.config.clone())));
    // One entry per digest.
    let mut seen = std::collections::BTreeSet::new();
    items.retain(|i| seen.insert(i.desc().digest));

    let total = Arc::new(AtomicU64::new(0));
    let outcomes = Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..client.options().jobs.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    if first_error.lock().expect("lock").is_some() {
                        break;
                    }
                    match push_blob(
                        &repo,
                        item,
                        &image_source,
                        mount_from,
                        &total,
                        progress.as_ref(),
                    ) {
                        Ok(o) => outcomes.lock().expect("lock").push(o),
                        Err(e) => {
                            first_error.lock().expect("lock").get_or_insert(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("lock") {
        return Err(e);
    }
    let outcomes = outcomes.into_inner().expect("lock");
    let digest = Digest::of(&raw);
    let (tags, warnings) = put_manifest_and_tags(
        client,
        target,
        extra_tags,
        &raw,
        manifest.media_type(),
        record_times,
    )?;
    Ok(PushReport {
        digest: Some(digest),
        pushed: outcomes
            .iter()
            .filter(|o| **o == BlobOutcome::Pushed)
            .count(),
        skipped: outcomes
            .iter()
            .filter(|o| **o == BlobOutcome::Skipped)
            .count(),
        mounted: outcomes
            .iter()
            .filter(|o| **o == BlobOutcome::Mounted)
            .count(),
        bytes: total.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        tags,
        warnings,
    })
}

fn push_blob(
    repo: &Repo<'_>,
    item: &Item<'_>,
    image_source: &Option<(String, String)>,
    mount_from: &[String],
    total: &Arc<AtomicU64>,
    progress: Option<&ProgressFn>,
) -> Result<BlobOutcome> {
    let desc = item.desc();
    let done = |outcome| {
        if let Some(l) = &repo.client.options().blob_locations {
            l.add(repo.r.api_host(), &desc.digest, &repo.r.repository);
        }
        if let Some(p) = progress {
            p(&Progress::Done {
                digest: desc.digest.clone(),
                outcome,
            });
        }
        Ok(outcome)
    };
    if repo.blob_size(&desc.digest)?.is_some() {
        return done(BlobOutcome::Skipped);
    }
    let mut location = None;
    let own_source = match item {
        Item::Layer(l) => l.mount_source(),
        Item::Bytes(..) => image_source.clone(),
    }
    .filter(|(host, _)| host == repo.r.api_host())
    .map(|(_, repo)| repo);
    let locations = repo.client.options().blob_locations.clone();
    let known = locations
        .as_ref()
        .map(|l| l.get(repo.r.api_host(), &desc.digest))
        .unwrap_or_default();
    let mut tried = std::collections::BTreeSet::new();
    for from in own_source
        .iter()
        .chain(mount_from)
        .chain(&known)
        .filter(|f| **f != repo.r.repository && tried.insert((*f).clone()))
    {
        match repo.mount(&desc.digest, from) {
            Ok(Mount::Mounted) => return done(BlobOutcome::Mounted),
            Ok(Mount::Upload(loc)) => {
                location = Some((loc, None));
                break;
            }
            // A failed mount is not fatal: fall back to uploading.
            Err(_) => continue,
        }
    }
    let (location, min_chunk) = match location {
        Some(l) => l,
        None => repo.start_upload()?,
    };
    if let Some(p) = progress {
        p(&Progress::Start {
            digest: desc.digest.clone(),
            size: desc.size,
        });
    }
    let open = |skip: u64| -> Result<Box<dyn std::io::Read + Send>> {
        let mut inner: Box<dyn std::io::Read + Send> = match item {
            // The registry checks the digest of what it receives.
            Item::Layer(l) => l.open_for_push()?,
            Item::Bytes(b, _) => Box::new(std::io::Cursor::new(b.to_vec())),
        };
        // A later chunk starts past what earlier chunks sent: skipped
        // here, below the counting reader.
        std::io::copy(
            &mut std::io::Read::take(&mut inner, skip),
            &mut std::io::sink(),
        )
        .map_err(|e| Error::from_pipeline("blob", e))?;
        Ok(Box::new(ProgressReader {
            inner,
            sent: 0,
            digest: desc.digest.clone(),
            total: Some(Arc::clone(total)),
            progress: progress.cloned(),
        }))
    };
    let chunk = repo
        .client
        .options()
        .chunk_size
        .map(|c| c.max(min_chunk.unwrap_or(0)));
    match chunk {
        Some(c) if c < desc.size => {
            repo.upload_chunked(&location, &desc.digest, desc.size, c, &open)?
        }
        _ => match repo.upload_monolithic(&location, &desc.digest, desc.size, &open) {
            // A registry that will not take the blob in one request (413
            // too large, 405 not allowed) gets it in chunks.
            Err(Error::Registry {
                status: 413 | 405, ..
            }) => {
                let (location, min) = repo.start_upload()?;
                let c = DEFAULT_CHUNK.max(min.unwrap_or(0));
                repo.upload_chunked(&location, &desc.digest, desc.size, c, &open)?;
            }
            other => other?,
        },
    }
    done(BlobOutcome::Pushed)
}

/// Pushes every image of `index` by digest (blobs, config, manifest; no
/// tag), then the index by digest, then tags the index with `target`'s tag
/// and `extra_tags`: an interrupted push never leaves a tag on an index
/// whose manifests are missing. The report sums the images' blobs.
pub fn push_index(
    client: &Client,
    index: &dyn crate::image::ImageIndex,
    target: &RegistryRef,
    extra_tags: &[String],
    mount_from: &[String],
    progress: Option<ProgressFn>,
) -> Result<PushReport> {
    let started = Instant::now();
    let untagged = target.repository_only();
    let mut report = PushReport::default();
    for (_, image) in index.images()? {
        let r = push_with(
            client,
            image.as_ref(),
            &untagged,
            &[],
            mount_from,
            progress.clone(),
            false,
        )?;
        report.pushed += r.pushed;
        report.skipped += r.skipped;
        report.mounted += r.mounted;
        report.bytes += r.bytes;
    }
    let raw = index.raw_index()?;
    let desc = index.descriptor()?;
    let (tags, warnings) =
        put_manifest_and_tags(client, target, extra_tags, &raw, &desc.media_type, true)?;
    report.warnings = warnings;
    report.digest = Some(desc.digest);
    report.tags = tags;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Puts the manifest (or index) `raw` by digest, then under `target`'s tag
/// and `extra_tags`; with `record_times`, records when the tags were pushed
/// (for retention: the API does not say). Returns the tags and the
/// warnings (a push-times record that could not be written).
fn put_manifest_and_tags(
    client: &Client,
    target: &RegistryRef,
    extra_tags: &[String],
    raw: &[u8],
    media_type: &str,
    record_times: bool,
) -> Result<(Vec<String>, Vec<String>)> {
    let repo = Repo::new(client, target);
    repo.put_manifest(&Digest::of(raw).to_string(), raw, media_type)?;
    let mut tags: Vec<String> = target.tag.iter().cloned().collect();
    tags.extend(extra_tags.iter().cloned());
    for t in &tags {
        repo.put_manifest(t, raw, media_type)?;
    }
    let mut warnings = Vec::new();
    if record_times
        && let Err(e) = super::pushtimes::record(
            client,
            &target.repository_only(),
            &tags,
            super::pushtimes::now(),
        )
    {
        warnings.push(format!(
            "the push time of {} was not recorded in {} ({e}); strata prune falls back to the tag names",
            tags.join(", "),
            super::pushtimes::TAG
        ));
    }
    Ok((tags, warnings))
}
