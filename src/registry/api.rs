//! Distribution API operations on one repository.

use std::io::Read;

use reqwest::StatusCode;
use reqwest::blocking::Response;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};

use super::http::Client;
use super::http::envelope::check;
use super::http::retry::{Step, body_error};
use super::reference::RegistryRef;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::media;
use crate::spec::MAX_MANIFEST_SIZE;

/// 416 answers to a chunk that strata resumes from before it gives up.
const MAX_CHUNK_RESUMES: u64 = 5;

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Opens a blob's content for (re-)reading from the given offset (the
/// bytes before it are skipped, not counted as sent).
pub type Opener<'a> = dyn Fn(u64) -> Result<Box<dyn Read + Send>> + Sync + 'a;

/// A repository on a registry, with the client to reach it.
#[derive(Clone, Copy)]
pub struct Repo<'a> {
    /// The client.
    pub client: &'a Client,
    /// The reference (registry and repository are used).
    pub r: &'a RegistryRef,
}

/// A manifest as fetched.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
}

/// What a mount attempt did.
pub enum Mount {
    /// The registry linked the blob: nothing to upload.
    Mounted,
    /// The registry started an upload instead (202): upload to this location.
    Upload(String),
}

impl<'a> Repo<'a> {
    /// A repository handle.
    pub fn new(client: &'a Client, r: &'a RegistryRef) -> Self {
        Repo { client, r }
    }

    fn host(&self) -> &str {
        self.r.api_host()
    }

    fn scope(&self, push: bool) -> String {
        format!(
            "repository:{}:{}",
            self.r.repository,
            if push { "pull,push" } else { "pull" }
        )
    }

    fn url(&self, base: &str, tail: &str) -> String {
        format!("{base}/v2/{}/{tail}", self.r.repository)
    }

    fn send(
        &self,
        push: bool,
        what: &str,
        build: impl Fn(&reqwest::blocking::Client, &str) -> Result<reqwest::blocking::RequestBuilder>,
    ) -> Result<Response> {
        self.client.send(
            self.host(),
            self.r.auth_key(),
            &self.scope(push),
            what,
            build,
        )
    }

    /// Fetches a manifest or index by tag or digest (at most 4 MiB),
    /// checking Content-Type against mediaType and the digest when the
    /// reference is one.
    /// A body that stalls or is cut short is fetched again, as the retry
    /// policy allows.
    pub fn get_manifest(&self, reference: &str) -> Result<FetchedManifest> {
        self.client
            .policy()
            .run(|_| match self.get_manifest_once(reference) {
                Ok(done) => Step::Done(done),
                Err(body) => Step::Retry(Err(body), None),
            })
    }

    /// One GET of a manifest: `Err` is a body that could not be read (worth
    /// another try), `Ok` anything final.
    fn get_manifest_once(&self, reference: &str) -> Result<Result<FetchedManifest>, Error> {
        let what = format!("GET manifest {}:{reference}", self.r.repository);
        let resp = self
            .send(false, &what, |h, base| {
                Ok(h.get(self.url(base, &format!("manifests/{reference}")))
                    .header(ACCEPT, MANIFEST_ACCEPT))
            })
            .and_then(|r| self.manifest_answer(r, reference, &what));
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let header_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.parse::<Digest>().ok());
        let bytes = match self.read_document(resp, &what) {
            Ok(b) => b,
            Err(e @ Error::Connect { .. }) => return Err(e),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.checked_manifest(bytes, reference, &what, header_type, header_digest))
    }

    /// A manifest answer that is a success of acceptable length.
    fn manifest_answer(&self, resp: Response, reference: &str, what: &str) -> Result<Response> {
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::NotFound {
                what: format!("manifest {reference}"),
                location: format!("{}/{}", self.r.registry, self.r.repository),
                hint: String::new(),
            });
        }
        let resp = check(resp, self.host(), what)?;
        if let Some(len) = resp.content_length()
            && len > MAX_MANIFEST_SIZE
        {
            return Err(Error::invalid(
                "manifest",
                what,
                format!("Content-Length {len} is over the {MAX_MANIFEST_SIZE}-byte limit"),
            ));
        }
        Ok(resp)
    }

    /// Checks fetched manifest bytes against the reference, the
    /// Docker-Content-Digest header and the Content-Type.
    fn checked_manifest(
        &self,
        bytes: Vec<u8>,
        reference: &str,
        what: &str,
        header_type: Option<String>,
        header_digest: Option<Digest>,
    ) -> Result<FetchedManifest> {
        let digest = Digest::of(&bytes);
        if let Ok(want) = reference.parse::<Digest>()
            && want != digest
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest from {}", self.r),
                expected: want.to_string(),
                actual: digest.to_string(),
            });
        }
        if let Some(h) = header_digest
            && h != digest
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest from {} (Docker-Content-Digest)", self.r),
                expected: h.to_string(),
                actual: digest.to_string(),
            });
        }
        let doc = serde_json::from_slice::<serde_json::Value>(&bytes)
            .map_err(|e| Error::invalid("manifest", what, format!("{e} (document {digest})")))?;
        let body_type = doc
            .get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string);
        let has = |k: &str| doc.get(k).is_some();
        if has("manifests") && (has("layers") || has("config")) {
            return Err(Error::invalid(
                "manifest",
                what,
                format!(
                    "document {digest} has both image-manifest fields and `manifests`: an ambiguous document, refused"
                ),
            ));
        }
        let media_type = match (&body_type, &header_type) {
            (Some(b), Some(h)) if (media::is_manifest(h) || media::is_index(h)) && b != h => {
                return Err(Error::invalid(
                    "manifest",
                    what,
                    format!("Content-Type {h} disagrees with the mediaType {b} in the body"),
                ));
            }
            // A generic Content-Type (application/json): the body says.
            (Some(b), _) => b.clone(),
            (None, Some(h)) if media::is_manifest(h) || media::is_index(h) => h.clone(),
            // Neither says: the document's own fields do.
            (None, _) if has("manifests") => media::OCI_INDEX.to_string(),
            (None, _) => media::OCI_MANIFEST.to_string(),
        };
        if (has("manifests") && media::is_manifest(&media_type))
            || ((has("layers") || has("config")) && media::is_index(&media_type))
        {
            return Err(Error::invalid(
                "manifest",
                what,
                format!("document {digest} is served as {media_type} but its fields say otherwise"),
            ));
        }
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Reads a manifest or index body, refusing more than
    /// `MAX_MANIFEST_SIZE` bytes.
    fn read_document(&self, resp: Response, what: &str) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        resp.take(MAX_MANIFEST_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| body_error(self.host(), what, &e, self.client.policy()))?;
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(Error::invalid(
                "manifest",
                what,
                format!("the body is over the {MAX_MANIFEST_SIZE}-byte limit"),
            ));
        }
        Ok(bytes)
    }

    /// Uploads a manifest under `reference` (a tag or its digest).
    pub fn put_manifest(&self, reference: &str, bytes: &[u8], media_type: &str) -> Result<()> {
        let what = format!("PUT manifest {}:{reference}", self.r.repository);
        let resp = self.send(true, &what, |h, base| {
            Ok(h.put(self.url(base, &format!("manifests/{reference}")))
                .header(CONTENT_TYPE, media_type)
                .body(bytes.to_vec()))
        })?;
        check(resp, self.host(), &what).map(|_| ())
    }

    /// The referrers API (`GET /v2/NAME/referrers/DIGEST`): `Some(index)`
    /// when the registry offers it, `None` when it answers 404 (then
    /// clients use the tag schema, `sha256-HEX`).
    pub fn referrers(&self, subject: &Digest) -> Result<Option<Vec<u8>>> {
        let what = format!("GET referrers {}@{subject}", self.r.repository);
        let resp = self.send(false, &what, |h, base| {
            Ok(h.get(self.url(base, &format!("referrers/{subject}")))
                .header(ACCEPT, crate::media::OCI_INDEX))
        })?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = check(resp, self.host(), &what)?;
        self.read_document(resp, &what).map(Some)
    }

    /// The digest a tag points at (HEAD), or `None` when it does not exist.
    pub fn head_manifest(&self, reference: &str) -> Result<Option<Digest>> {
        let what = format!("HEAD manifest {}:{reference}", self.r.repository);
        let resp = self.send(false, &what, |h, base| {
            Ok(h.head(self.url(base, &format!("manifests/{reference}")))
                .header(ACCEPT, MANIFEST_ACCEPT))
        })?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = check(resp, self.host(), &what)?;
        match resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            Some(d) => Ok(Some(d.parse()?)),
            None => Ok(Some(self.get_manifest(reference)?.digest)),
        }
    }

    /// Deletes a manifest by digest.
    pub fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        let what = format!("DELETE manifest {}@{digest}", self.r.repository);
        let resp = self.send(true, &what, |h, base| {
            Ok(h.delete(self.url(base, &format!("manifests/{digest}"))))
        })?;
        check(resp, self.host(), &what).map(|_| ())
    }

    /// Lists the repository's tags, following `Link` pagination.
    pub fn list_tags(&self) -> Result<Vec<String>> {
        self.list_tags_paged(1000)
    }

    /// Lists the tags asking for `page` tags per request.
    pub fn list_tags_paged(&self, page: usize) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut next: Option<String> = Some(format!("list?n={page}"));
        let mut pages = 0;
        while let Some(tail) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(Error::invalid(
                    "tag list",
                    self.r.to_string(),
                    "more than 10000 pages",
                ));
            }
            let what = format!("GET tags of {}", self.r.repository);
            // A Link is resolved like a browser would; one to another
            // origin is followed without credentials.
            let resp = self.send(false, &what, |h, base| {
                let first = reqwest::Url::parse(&self.url(base, "tags/list"))
                    .map_err(|e| Error::invalid("tag list", self.host(), e.to_string()))?;
                let url = first.join(&tail).map_err(|e| {
                    Error::invalid("tag list Link", self.host(), format!("{tail:?}: {e}"))
                })?;
                Ok(h.get(url))
            })?;
            let resp = check(resp, self.host(), &what)?;
            next = resp
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_next_link);
            let body: serde_json::Value = serde_json::from_reader(resp.take(16 << 20))
                .map_err(|e| Error::invalid("tag list", self.r.to_string(), e.to_string()))?;
            if let Some(tags) = body.get("tags").and_then(|t| t.as_array()) {
                out.extend(tags.iter().filter_map(|t| t.as_str().map(str::to_string)));
            }
        }
        Ok(out)
    }

    /// The size of a blob when the registry has it (HEAD).
    pub fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let what = format!("HEAD blob {digest}");
        let resp = self.send(false, &what, |h, base| {
            Ok(h.head(self.url(base, &format!("blobs/{digest}"))))
        })?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = check(resp, self.host(), &what)?;
        Ok(Some(
            resp.headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        ))
    }

    /// Streams a blob, starting at byte `offset`.
    pub fn get_blob(&self, digest: &Digest, offset: u64) -> Result<Response> {
        let what = format!("GET blob {digest}");
        let resp = self.send(false, &what, |h, base| {
            let mut r = h.get(self.url(base, &format!("blobs/{digest}")));
            if offset > 0 {
                r = r.header(reqwest::header::RANGE, format!("bytes={offset}-"));
            }
            Ok(r)
        })?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::NotFound {
                what: format!("blob {digest}"),
                location: format!("{}/{}", self.r.registry, self.r.repository),
                hint: String::new(),
            });
        }
        let resp = check(resp, self.host(), &what)?;
        if offset > 0 && resp.status() != StatusCode::PARTIAL_CONTENT {
            return Err(Error::registry(
                self.host(),
                what,
                resp.status().as_u16(),
                "the registry ignored the Range request",
            ));
        }
        Ok(resp)
    }

    /// Asks the registry to link `digest` from repository `from`.
    pub fn mount(&self, digest: &Digest, from: &str) -> Result<Mount> {
        let what = format!("mount {digest} from {from}");
        let scope = format!("{} repository:{from}:pull", self.scope(true));
        let resp = self
            .client
            .send(self.host(), self.r.auth_key(), &scope, &what, |h, base| {
                Ok(h.post(self.url(base, "blobs/uploads/"))
                    .query(&[("mount", digest.to_string()), ("from", from.to_string())])
                    .header(CONTENT_LENGTH, "0"))
            })?;
        match resp.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Upload(self.location(&resp, &what)?)),
            _ => Err(check(resp, self.host(), &what)
                .err()
                .unwrap_or_else(|| Error::registry(self.host(), what, 0, "unexpected answer"))),
        }
    }

    /// Starts an upload; returns its location and the registry's minimum
    /// chunk length (OCI-Chunk-Min-Length), if any.
    pub fn start_upload(&self) -> Result<(String, Option<u64>)> {
        let what = format!("start upload to {}", self.r.repository);
        let resp = self.send(true, &what, |h, base| {
            Ok(h.post(self.url(base, "blobs/uploads/"))
                .header(CONTENT_LENGTH, "0"))
        })?;
        let resp = check(resp, self.host(), &what)?;
        let min = resp
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Ok((self.location(&resp, &what)?, min))
    }

    fn location(&self, resp: &Response, what: &str) -> Result<String> {
        location_of(resp.headers(), resp.url(), resp.status(), self.host(), what)
    }

    fn upload_headers() -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            "application/octet-stream".parse().expect("valid"),
        );
        h
    }

    /// Uploads a whole blob in one PUT.
    pub fn upload_monolithic(
        &self,
        location: &str,
        digest: &Digest,
        size: u64,
        open: &Opener<'_>,
    ) -> Result<()> {
        let what = format!("upload {digest}");
        let mut url = reqwest::Url::parse(location)
            .map_err(|e| Error::invalid("upload location", self.host(), e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        self.client
            .send_streamed(
                self.host(),
                self.r.auth_key(),
                &self.scope(true),
                &what,
                reqwest::Method::PUT,
                url,
                Self::upload_headers(),
                size,
                &|| open(0),
            )?
            .check(self.host(), &what)
            .map(|_| ())
    }

    /// Uploads a blob in PATCH chunks of `chunk` bytes (at least the
    /// registry's minimum), resuming from the registry's upload status after
    /// a 416, then closes the upload with a PUT. Every round must move the
    /// upload forward, and the rounds are bounded: a registry whose Range
    /// does not advance (or runs ahead of what was sent) fails the upload,
    /// naming the blob and the Range it answered.
    pub fn upload_chunked(
        &self,
        location: &str,
        digest: &Digest,
        size: u64,
        chunk: u64,
        open: &Opener<'_>,
    ) -> Result<()> {
        let what = format!("chunked upload {digest}");
        let chunk = chunk.max(1);
        let mut location = location.to_string();
        let mut offset = 0u64;
        let mut resumes = 0;
        let max_rounds = size.div_ceil(chunk) + MAX_CHUNK_RESUMES;
        let mut rounds = 0;
        let stuck = |detail: String| Error::registry(self.host(), what.as_str(), 202, detail);
        while offset < size {
            rounds += 1;
            if rounds > max_rounds {
                return Err(stuck(format!(
                    "the upload did not finish in {max_rounds} rounds ({offset} of {size} bytes taken)"
                )));
            }
            let len = chunk.min(size - offset);
            let start = offset;
            let url = reqwest::Url::parse(&location)
                .map_err(|e| Error::invalid("upload location", self.host(), e.to_string()))?;
            let mut headers = Self::upload_headers();
            headers.insert(
                CONTENT_RANGE,
                format!("{start}-{}", start + len - 1)
                    .parse()
                    .expect("valid"),
            );
            let part = || -> Result<Box<dyn Read + Send>> { Ok(Box::new(open(start)?.take(len))) };
            let answer = self.client.send_streamed(
                self.host(),
                self.r.auth_key(),
                &self.scope(true),
                &what,
                reqwest::Method::PATCH,
                url,
                headers,
                len,
                &part,
            )?;
            if answer.status == StatusCode::RANGE_NOT_SATISFIABLE {
                resumes += 1;
                if resumes > MAX_CHUNK_RESUMES {
                    return Err(Error::registry(
                        self.host(),
                        what,
                        416,
                        "the registry keeps refusing the chunk range",
                    ));
                }
                offset = self.upload_status(&location)?;
                if offset > size {
                    return Err(stuck(format!(
                        "the upload status says {offset} bytes were taken of a {size}-byte blob"
                    )));
                }
                continue;
            }
            let answer = answer.check(self.host(), &what)?;
            location = location_of(
                &answer.headers,
                &answer.url,
                answer.status,
                self.host(),
                &what,
            )?;
            let range = answer
                .headers
                .get(reqwest::header::RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_string();
            offset = match range_end(&answer.headers) {
                Some(end) => end + 1,
                None => start + len,
            };
            if offset <= start || offset > start + len {
                return Err(stuck(format!(
                    "after bytes {start}-{} it answered Range {range}: the upload {}",
                    start + len - 1,
                    if offset <= start {
                        "does not advance"
                    } else {
                        "claims more than was sent"
                    }
                )));
            }
        }
        let resp = self.send(true, &what, |h, _| {
            let mut url = reqwest::Url::parse(&location)
                .map_err(|e| Error::invalid("upload location", self.host(), e.to_string()))?;
            url.query_pairs_mut()
                .append_pair("digest", &digest.to_string());
            Ok(h.put(url).header(CONTENT_LENGTH, "0"))
        })?;
        check(resp, self.host(), &what).map(|_| ())
    }

    /// How many bytes of an upload the registry holds (GET upload status).
    fn upload_status(&self, location: &str) -> Result<u64> {
        let what = "upload status".to_string();
        let resp = self.send(true, &what, |h, _| Ok(h.get(location)))?;
        let resp = check(resp, self.host(), &what)?;
        Ok(range_end(resp.headers()).map_or(0, |e| e + 1))
    }
}

/// The `Location` of an answer, resolved against the URL it came from (it
/// may point at another host; the client sends no credentials there).
fn location_of(
    headers: &reqwest::header::HeaderMap,
    url: &reqwest::Url,
    status: StatusCode,
    host: &str,
    what: &str,
) -> Result<String> {
    let loc = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Error::registry(
                host,
                what,
                status.as_u16(),
                "no Location header in the answer",
            )
        })?;
    url.join(loc)
        .map(|u| u.to_string())
        .map_err(|e| Error::invalid("upload location", host, format!("{loc:?}: {e}")))
}

fn range_end(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let v = headers.get(reqwest::header::RANGE)?.to_str().ok()?;
    let (_, end) = v.trim_start_matches("bytes=").split_once('-')?;
    end.trim().parse().ok()
}

/// Extracts the `rel="next"` target of a Link header.
fn parse_next_link(v: &str) -> Option<String> {
    v.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        if !params.contains("rel=\"next\"") && !params.contains("rel=next") {
            return None;
        }
        Some(
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn link_header() {
        assert_eq!(
            super::parse_next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(super::parse_next_link(r#"<x>; rel="prev""#), None);
    }
}
