//! The registry transport, one layer per concern as go-containerregistry's
//! is:
//!
//! * [`ping`](ping.rs) (`GET /v2/`) learns, once per host, whether it
//!   speaks HTTPS (plain HTTP only for loopback hosts or hosts listed as
//!   insecure) and which challenge it sends (none, Basic, Bearer);
//! * [`auth`] answers the challenge (Basic credentials, or a Bearer token
//!   for the accumulated scopes, cached until expiry and refreshed once on a
//!   401) and is the one place that decides where credentials go: only to
//!   the registry's own origin;
//! * [`retry`] is the one retry policy: bounded attempts with backoff,
//!   `Retry-After`, and the stall timeout;
//! * [`envelope`] decodes `{"errors":[…]}` into typed codes.
//!
//! Every request goes through [`Client::send`] or [`Client::send_streamed`];
//! both pass it through `auth::authorize` on every hop, redirects included
//! (the client follows redirects itself, GET and HEAD only, never from
//! HTTPS to plain HTTP).

pub mod auth;
pub mod envelope;
mod ping;
pub mod retry;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client as Http, Request, RequestBuilder, Response};
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, StatusCode, Url};

use self::auth::{Challenge, authorize};
use self::retry::{Answered, Failure, RetryPolicy, Step, classify};
use super::credentials::{Credential, Secret};
use super::reference::is_loopback;
use crate::error::{Error, Result};

/// How a [`Client`] behaves.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Hosts (`host[:port]`) that may be reached over plain HTTP besides
    /// loopback ones.
    pub insecure: Vec<String>,
    /// Extra CA certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Credentials given directly, by host; they take precedence over the
    /// auth files.
    pub credentials: HashMap<String, Credential>,
    /// Retries, backoff and the stall timeout.
    pub retry: RetryPolicy,
    /// Upload in chunks of this size (bytes) instead of one PUT.
    pub chunk_size: Option<u64>,
    /// Blobs transferred in parallel.
    pub jobs: usize,
    /// Where blobs were seen, to mount instead of uploading.
    pub blob_locations: Option<crate::registry::locations::BlobLocations>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: Vec::new(),
            ca_file: None,
            credentials: HashMap::new(),
            retry: RetryPolicy::default(),
            chunk_size: None,
            jobs: 4,
            blob_locations: None,
        }
    }
}

#[derive(Debug)]
struct HostState {
    base: String,
    challenge: Challenge,
    scopes: BTreeSet<String>,
    token: Option<(Secret, Instant, BTreeSet<String>)>,
}

type Streaming = (reqwest::Client, tokio::runtime::Runtime);

/// A registry client shared by all transfers (it is `Send + Sync`).
pub struct Client {
    http: Http,
    opts: ClientOptions,
    policy: RetryPolicy,
    hosts: Mutex<HashMap<String, HostState>>,
    /// Held while a token is fetched, so parallel transfers that all lack
    /// one fetch it once (see `auth::authorization`).
    token_fetch: Mutex<()>,
    streaming: OnceLock<std::result::Result<Streaming, String>>,
}

/// A response to a streamed upload, read completely (uploads answer with
/// headers and at most a small error body).
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Final URL, to resolve a relative Location.
    pub url: Url,
    /// Body (at most 64 KiB kept).
    pub body: String,
}

impl Answered for Answer {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn header_map(&self) -> &HeaderMap {
        &self.headers
    }
}

impl Answer {
    /// [`envelope::check`] for a streamed answer.
    pub fn check(self, host: &str, what: &str) -> Result<Answer> {
        if self.status.is_success() {
            return Ok(self);
        }
        Err(envelope::registry_error(
            host,
            what,
            self.status.as_u16(),
            &self.body,
        ))
    }
}

/// Bytes per chunk handed to the HTTP stack when streaming an upload.
const STREAM_CHUNK: usize = 1 << 20;
/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 10;

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("insecure", &self.opts.insecure)
            .finish_non_exhaustive()
    }
}

fn user_agent() -> &'static str {
    concat!("strata/", env!("CARGO_PKG_VERSION"))
}

/// The blocking client for `policy`, with the stall timeout as its
/// timeout: the blocking client applies it to the wait for the answer's
/// headers and afresh to each `read` of the body, so it bounds a silence,
/// never a long transfer. With `follow_redirects` false, strata follows
/// redirects itself (see `Client::execute`).
pub fn blocking_client(
    policy: &RetryPolicy,
    ca: Option<reqwest::Certificate>,
    follow_redirects: bool,
) -> Result<Http> {
    let mut b = Http::builder()
        .user_agent(user_agent())
        .connect_timeout(policy.stall)
        .timeout(policy.stall)
        .tcp_keepalive(Duration::from_secs(30));
    if !follow_redirects {
        b = b.redirect(reqwest::redirect::Policy::none());
    }
    if let Some(cert) = ca {
        b = b.add_root_certificate(cert);
    }
    b.build()
        .map_err(|e| Error::Unsupported(format!("cannot build the HTTP client: {e}")))
}

impl Client {
    /// A client with `opts`.
    pub fn new(opts: ClientOptions) -> Result<Self> {
        let http = blocking_client(&opts.retry, load_ca(&opts)?, false)?;
        Ok(Client {
            http,
            policy: opts.retry,
            opts,
            hosts: Mutex::new(HashMap::new()),
            token_fetch: Mutex::new(()),
            streaming: OnceLock::new(),
        })
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    fn allow_http(&self, host: &str) -> bool {
        allow_http(&self.opts.insecure, host)
    }

    fn add_scopes(&self, host: &str, scope: &str) {
        let mut hosts = self.hosts.lock().expect("lock");
        let st = hosts.get_mut(host).expect("pinged");
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            st.scopes.insert(s.to_string());
        }
    }

    /// Sends a request built by `build` (called again for each attempt, so
    /// bodies can be re-opened) to `host`, authorized for `scope`
    /// (`repository:NAME:pull[,push]`). `auth_key` names the credential.
    /// Returns the response whatever its status (a final 401 or 403 is
    /// [`Error::Unauthorized`]); see [`envelope::check`].
    pub fn send(
        &self,
        host: &str,
        auth_key: &str,
        scope: &str,
        what: &str,
        build: impl Fn(&Http, &str) -> Result<RequestBuilder>,
    ) -> Result<Response> {
        let base = self.base(host)?;
        self.add_scopes(host, scope);
        let mut refreshed = false;
        loop {
            let auth = self.authorization(host, auth_key)?;
            let resp = self.policy.run(|_| {
                let req = match build(&self.http, &base).and_then(|b| {
                    b.build()
                        .map_err(|e| Error::invalid("request", host, e.to_string()))
                }) {
                    Ok(r) => r,
                    Err(e) => return Step::Done(Err(e)),
                };
                classify(self.execute(&base, req, auth.as_ref())).into_result(
                    host,
                    what,
                    &self.policy,
                )
            })?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                self.refresh(host, auth_key, resp.headers(), auth.as_ref())?;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(self.denied(host, auth_key, what, status));
            }
            return Ok(resp);
        }
    }

    /// Executes `req`, authorized for the registry at `base` on every hop,
    /// following redirects of GET and HEAD requests (at most 10, never from
    /// HTTPS to plain HTTP).
    fn execute(
        &self,
        base: &str,
        mut req: Request,
        auth: Option<&Secret>,
    ) -> std::result::Result<Response, Failure> {
        let follow = matches!(*req.method(), Method::GET | Method::HEAD);
        for _ in 0..=MAX_REDIRECTS {
            let url = req.url().clone();
            authorize(req.headers_mut(), &url, base, auth);
            let next = follow.then(|| req.try_clone()).flatten();
            let resp = self.http.execute(req)?;
            let Some(mut next) = next.filter(|_| resp.status().is_redirection()) else {
                return Ok(resp);
            };
            let Some(to) = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l).ok())
            else {
                return Ok(resp);
            };
            if url.scheme() == "https" && to.scheme() == "http" {
                return Err(Failure::Refused(format!(
                    "refused redirect from https to plain http ({to})"
                )));
            }
            *next.url_mut() = to;
            req = next;
        }
        Err(Failure::Refused(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// The async client and runtime used to stream upload bodies in large
    /// chunks (the blocking client pumps readers 8 KiB at a time).
    fn streaming(&self) -> Result<&Streaming> {
        self.streaming
            .get_or_init(|| {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("strata-upload")
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                // No read timeout here: the stall watchdog in `upload`
                // measures progress of the body and of the answer.
                let mut b = reqwest::Client::builder()
                    .user_agent(user_agent())
                    .connect_timeout(self.policy.stall)
                    .tcp_keepalive(Duration::from_secs(30))
                    .redirect(reqwest::redirect::Policy::none());
                if let Some(cert) = load_ca(&self.opts).map_err(|e| e.to_string())? {
                    b = b.add_root_certificate(cert);
                }
                Ok((b.build().map_err(|e| e.to_string())?, rt))
            })
            .as_ref()
            .map_err(|e| Error::Unsupported(format!("cannot build the upload client: {e}")))
    }

    /// Sends `method url` with a body streamed from `open()` (`size` bytes)
    /// in 1 MiB chunks, authorized for `scope`, with the same 401-refresh,
    /// retry and credential rules as [`Client::send`]; each attempt re-opens
    /// the body. An attempt in which no byte moves for the stall timeout
    /// (the registry stops reading, or does not answer) is abandoned.
    #[allow(clippy::too_many_arguments)]
    pub fn send_streamed(
        &self,
        host: &str,
        auth_key: &str,
        scope: &str,
        what: &str,
        method: Method,
        url: Url,
        headers: HeaderMap,
        size: u64,
        open: &(dyn Fn() -> Result<Box<dyn std::io::Read + Send>> + Sync),
    ) -> Result<Answer> {
        let base = self.base(host)?;
        self.add_scopes(host, scope);
        let mut refreshed = false;
        loop {
            let auth = self.authorization(host, auth_key)?;
            let answer = self.policy.run(|_| {
                let reader = match open() {
                    Ok(r) => r,
                    Err(e) => return Step::Done(Err(e)),
                };
                let mut headers = headers.clone();
                authorize(&mut headers, &url, &base, auth.as_ref());
                let outcome = self.upload(method.clone(), url.clone(), headers, size, reader);
                classify(outcome).into_result(host, what, &self.policy)
            })?;
            if answer.status == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                self.refresh(host, auth_key, &answer.headers, auth.as_ref())?;
                continue;
            }
            if answer.status == StatusCode::UNAUTHORIZED || answer.status == StatusCode::FORBIDDEN {
                return Err(self.denied(host, auth_key, what, answer.status));
            }
            return Ok(answer);
        }
    }

    /// One streamed request, watched: it fails with [`Failure::Stalled`]
    /// when neither the body nor the answer moves for the stall timeout.
    fn upload(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        size: u64,
        mut reader: Box<dyn std::io::Read + Send>,
    ) -> std::result::Result<Answer, Failure> {
        let (client, rt) = self
            .streaming()
            .map_err(|e| Failure::Refused(e.to_string()))?;
        let started = Instant::now();
        let moved = Arc::new(AtomicU64::new(0));
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        let pump = std::thread::spawn(move || pump(&mut *reader, size, &tx));
        let stream =
            futures_util::stream::unfold((rx, Arc::clone(&moved)), move |(mut rx, m)| async move {
                let item = rx.recv().await?;
                m.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                Some((item, (rx, m)))
            });
        let req = client
            .request(method, url)
            .headers(headers)
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream));
        let stall = self.policy.stall;
        let outcome = rt.block_on(async {
            let exchange = async {
                let resp = req.send().await?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let url = resp.url().clone();
                let body = resp.text().await.unwrap_or_default();
                Ok::<_, Failure>(Answer {
                    status,
                    headers,
                    url,
                    body: body
                        .chars()
                        .take(envelope::MAX_ERROR_BODY as usize)
                        .collect(),
                })
            };
            let watchdog = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let last = Duration::from_millis(moved.load(Ordering::Relaxed));
                    if started.elapsed().saturating_sub(last) > stall {
                        return Err(Failure::Stalled);
                    }
                }
            };
            futures_util::pin_mut!(exchange, watchdog);
            match futures_util::future::select(exchange, watchdog).await {
                futures_util::future::Either::Left((r, _)) => r,
                futures_util::future::Either::Right((r, _)) => r,
            }
        });
        // The pump ends once the body is dropped (its channel closes).
        let _ = pump.join();
        outcome
    }
}

/// Reads `size` bytes of `reader` into 1 MiB chunks for the upload stream.
fn pump(
    reader: &mut dyn std::io::Read,
    size: u64,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
) {
    let mut left = size;
    while left > 0 {
        let mut buf = vec![0u8; STREAM_CHUNK.min(left as usize)];
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
        if filled == 0 {
            return;
        }
        buf.truncate(filled);
        left -= filled as u64;
        if tx.blocking_send(Ok(bytes::Bytes::from(buf))).is_err() {
            return;
        }
    }
}

/// Plain HTTP is allowed for loopback hosts and hosts listed as insecure.
pub(super) fn allow_http(insecure: &[String], host: &str) -> bool {
    is_loopback(host) || insecure.iter().any(|h| h == host)
}

fn load_ca(opts: &ClientOptions) -> Result<Option<reqwest::Certificate>> {
    let Some(ca) = &opts.ca_file else {
        return Ok(None);
    };
    let pem = std::fs::read(ca).map_err(|e| Error::io(ca, e))?;
    reqwest::Certificate::from_pem(&pem)
        .map(Some)
        .map_err(|e| Error::invalid("CA certificate", ca.display().to_string(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_listed_hosts() {
        let insecure = vec!["registry.lan:5000".to_string()];
        assert!(allow_http(&insecure, "127.0.0.1:5000"));
        assert!(allow_http(&insecure, "localhost"));
        assert!(allow_http(&insecure, "registry.lan:5000"));
        assert!(
            !allow_http(&insecure, "registry.lan"),
            "the port is part of the host"
        );
        assert!(!allow_http(&insecure, "registry.example.com"));
        assert!(!allow_http(&insecure, "127.example.com:5000"));
    }
}
