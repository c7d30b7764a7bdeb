//! The registry transport stack, as go-containerregistry layers it:
//! ping → auth → retry → error envelope.
//!
//! * **ping** (`GET /v2/`) learns, once per host, whether it speaks HTTPS
//!   (plain HTTP only for loopback hosts or hosts listed as insecure) and
//!   which challenge it sends (none, Basic, Bearer).
//! * **auth** answers the challenge: Basic credentials, or a Bearer token
//!   from the realm for the accumulated scopes (so a mount can pull from one
//!   repository and push to another with one token), cached until expiry and
//!   refreshed once on a 401.
//! * **retry** re-sends on connection errors, 408, 429 and 5xx with
//!   exponential backoff (honouring `Retry-After`).
//! * **error envelope**: a failed response's `{"errors":[…]}` body becomes
//!   [`Error::Registry`] naming the host, the operation and the codes.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};

use super::credentials::{self, Credential, Secret};
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
    /// Attempts per request, including the first.
    pub attempts: u32,
    /// First backoff delay; doubles each retry (capped at 5 s).
    pub backoff: Duration,
    /// Upload in chunks of this size (bytes) instead of one PUT.
    pub chunk_size: Option<u64>,
    /// Blobs transferred in parallel.
    pub jobs: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: Vec::new(),
            ca_file: None,
            credentials: HashMap::new(),
            attempts: 5,
            backoff: Duration::from_millis(200),
            chunk_size: None,
            jobs: 4,
        }
    }
}

#[derive(Clone, Debug)]
enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug)]
struct HostState {
    base: String,
    challenge: Challenge,
    scopes: BTreeSet<String>,
    token: Option<(Secret, Instant, BTreeSet<String>)>,
}

/// A registry client shared by all transfers (it is `Send + Sync`).
pub struct Client {
    http: Http,
    opts: ClientOptions,
    hosts: Mutex<HashMap<String, HostState>>,
    streaming: std::sync::OnceLock<Result<(reqwest::Client, tokio::runtime::Runtime), String>>,
}

/// A response to a streamed upload, read completely (uploads answer with
/// headers and at most a small error body).
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Final URL (after redirects), to resolve a relative Location.
    pub url: reqwest::Url,
    /// Body (at most 64 KiB kept).
    pub body: String,
}

impl Answer {
    /// [`check`] for a streamed answer.
    pub fn check(self, host: &str, what: &str) -> Result<Answer> {
        if self.status.is_success() {
            return Ok(self);
        }
        Err(Error::Registry {
            host: host.to_string(),
            what: what.to_string(),
            status: self.status.as_u16(),
            detail: envelope_detail(&self.body),
        })
    }
}

/// Bytes per chunk handed to the HTTP stack when streaming an upload.
const STREAM_CHUNK: usize = 1 << 20;

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("insecure", &self.opts.insecure)
            .finish_non_exhaustive()
    }
}

fn is_retryable_status(s: StatusCode) -> bool {
    s == StatusCode::REQUEST_TIMEOUT || s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

impl Client {
    /// A client with `opts`.
    pub fn new(opts: ClientOptions) -> Result<Self> {
        let ca = load_ca(&opts)?;
        let mut b = Http::builder()
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .timeout(None)
            .connect_timeout(Duration::from_secs(30))
            .tcp_keepalive(Duration::from_secs(30))
            .redirect(redirect_policy());
        if let Some(cert) = ca {
            b = b.add_root_certificate(cert);
        }
        let http = b
            .build()
            .map_err(|e| Error::Unsupported(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            opts,
            hosts: Mutex::new(HashMap::new()),
            streaming: std::sync::OnceLock::new(),
        })
    }

    /// The async client and runtime used to stream upload bodies in large
    /// chunks (the blocking client pumps readers 8 KiB at a time).
    fn streaming(&self) -> Result<&(reqwest::Client, tokio::runtime::Runtime)> {
        self.streaming
            .get_or_init(|| {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("strata-upload")
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                let mut b = reqwest::Client::builder()
                    .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
                    .connect_timeout(Duration::from_secs(30))
                    .tcp_keepalive(Duration::from_secs(30))
                    .redirect(redirect_policy());
                if let Some(cert) = load_ca(&self.opts).map_err(|e| e.to_string())? {
                    b = b.add_root_certificate(cert);
                }
                Ok((b.build().map_err(|e| e.to_string())?, rt))
            })
            .as_ref()
            .map_err(|e| Error::Unsupported(format!("cannot build the upload client: {e}")))
    }

    /// Sends `method url` with a body streamed from `open()` (`size` bytes)
    /// in 1 MiB chunks, authorized for `scope`, with the same 401-refresh
    /// and retry rules as [`Client::send`]; each attempt re-opens the body.
    #[allow(clippy::too_many_arguments)]
    pub fn send_streamed(
        &self,
        host: &str,
        auth_key: &str,
        scope: &str,
        what: &str,
        method: reqwest::Method,
        url: reqwest::Url,
        headers: HeaderMap,
        size: u64,
        open: &(dyn Fn() -> Result<Box<dyn std::io::Read + Send>> + Sync),
    ) -> Result<Answer> {
        self.base(host)?;
        {
            let mut hosts = self.hosts.lock().expect("lock");
            let st = hosts.get_mut(host).expect("pinged");
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                st.scopes.insert(s.to_string());
            }
        }
        let (client, rt) = self.streaming()?;
        let mut refreshed = false;
        let mut delay = self.opts.backoff;
        let mut attempt = 1;
        loop {
            let auth = self.authorization(host, auth_key, false)?;
            let mut reader = open()?;
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
            let pump = std::thread::spawn(move || {
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
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            let mut req = client
                .request(method.clone(), url.clone())
                .headers(headers.clone())
                .header(reqwest::header::CONTENT_LENGTH, size)
                .body(reqwest::Body::wrap_stream(stream));
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a.expose());
            }
            let outcome = rt.block_on(async {
                let resp = req.send().await?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let url = resp.url().clone();
                let body = resp.text().await.unwrap_or_default();
                Ok::<_, reqwest::Error>(Answer {
                    status,
                    headers,
                    url,
                    body: body.chars().take(64 * 1024).collect(),
                })
            });
            let _ = pump.join();
            match outcome {
                Ok(a) if a.status == StatusCode::UNAUTHORIZED && !refreshed => {
                    refreshed = true;
                    let mut hosts = self.hosts.lock().expect("lock");
                    let st = hosts.get_mut(host).expect("pinged");
                    if let Some(c) = parse_challenge(&a.headers) {
                        st.challenge = c;
                    }
                    st.token = None;
                    drop(hosts);
                    let _ = self.authorization(host, auth_key, true)?;
                }
                Ok(a) if is_retryable_status(a.status) && attempt < self.opts.attempts => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Ok(a)
                    if a.status == StatusCode::UNAUTHORIZED
                        || a.status == StatusCode::FORBIDDEN =>
                {
                    return Err(Error::Unauthorized {
                        host: host.to_string(),
                        what: what.to_string(),
                        detail: format!(
                            "status {}; run `strata login {auth_key}` with an account that may push",
                            a.status.as_u16()
                        ),
                    });
                }
                Ok(a) => return Ok(a),
                Err(e)
                    if attempt < self.opts.attempts
                        && (e.is_connect() || e.is_timeout() || e.is_request()) =>
                {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(e) => {
                    return Err(Error::Connect {
                        host: host.to_string(),
                        detail: format!("{what}: {}", error_chain(&e)),
                    });
                }
            }
        }
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// The underlying HTTP client (requests built with it carry no auth).
    pub fn http(&self) -> &Http {
        &self.http
    }

    fn allow_http(&self, host: &str) -> bool {
        allow_http(&self.opts.insecure, host)
    }

    fn credential(&self, host: &str, auth_key: &str) -> Result<Option<Credential>> {
        if let Some(c) = self
            .opts
            .credentials
            .get(host)
            .or_else(|| self.opts.credentials.get(auth_key))
        {
            return Ok(Some(c.clone()));
        }
        credentials::lookup(auth_key)
    }

    /// Pings `host` once, learning its scheme and challenge. Returns the
    /// base URL (`https://host`).
    pub fn base(&self, host: &str) -> Result<String> {
        if let Some(s) = self.hosts.lock().expect("lock").get(host) {
            return Ok(s.base.clone());
        }
        let mut last_err = None;
        let schemes: &[&str] = if self.allow_http(host) {
            &["https", "http"]
        } else {
            &["https"]
        };
        for (i, scheme) in schemes.iter().enumerate() {
            let base = format!("{scheme}://{host}");
            // Probing HTTPS on a host that may speak plain HTTP: one try, then
            // fall back; retries are for the scheme that is left.
            let attempts = if i + 1 < schemes.len() {
                1
            } else {
                self.opts.attempts
            };
            match self.with_attempts(host, "ping", attempts, || {
                Ok(self.http.get(format!("{base}/v2/")))
            }) {
                Ok(resp) => {
                    let challenge = match resp.status() {
                        s if s.is_success() => Challenge::None,
                        StatusCode::UNAUTHORIZED => {
                            parse_challenge(resp.headers()).unwrap_or(Challenge::Basic)
                        }
                        // A TLS registry answering our plain-HTTP fallback:
                        // the HTTPS failure is the real story.
                        StatusCode::BAD_REQUEST if last_err.is_some() => break,
                        s => {
                            return Err(Error::Registry {
                                host: host.to_string(),
                                what: format!("ping (GET {base}/v2/)"),
                                status: s.as_u16(),
                                detail: "not an OCI distribution registry?".into(),
                            });
                        }
                    };
                    self.hosts.lock().expect("lock").insert(
                        host.to_string(),
                        HostState {
                            base: base.clone(),
                            challenge,
                            scopes: BTreeSet::new(),
                            token: None,
                        },
                    );
                    return Ok(base);
                }
                Err(e) if last_err.is_none() => last_err = Some(e),
                Err(_) => {}
            }
        }
        let e = last_err.expect("at least one scheme tried");
        Err(if self.allow_http(host) {
            e
        } else {
            match e {
                Error::Connect { host, detail } => Error::Connect {
                    host,
                    detail: format!(
                        "{detail} (plain HTTP is only tried for loopback hosts and those given with --insecure-registry)"
                    ),
                },
                e => e,
            }
        })
    }

    /// Sends a request built by `build` (called again for each attempt, so
    /// bodies can be re-opened) to `host`, authorized for `scope`
    /// (`repository:NAME:pull[,push]`). `auth_key` names the credential.
    /// Returns the response whatever its status; see [`check`].
    pub fn send(
        &self,
        host: &str,
        auth_key: &str,
        scope: &str,
        what: &str,
        build: impl Fn(&Http, &str) -> Result<RequestBuilder>,
    ) -> Result<Response> {
        let base = self.base(host)?;
        {
            let mut hosts = self.hosts.lock().expect("lock");
            let st = hosts.get_mut(host).expect("pinged");
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                st.scopes.insert(s.to_string());
            }
        }
        let mut refreshed = false;
        loop {
            let auth = self.authorization(host, auth_key, false)?;
            let resp = self.with_retries(host, what, || {
                let mut req = match build(&self.http, &base) {
                    Ok(r) => r,
                    Err(e) => return Err(e),
                };
                if let Some(a) = &auth {
                    req = req.header(AUTHORIZATION, a.expose());
                }
                Ok(req)
            })?;
            if resp.status() == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                let mut hosts = self.hosts.lock().expect("lock");
                let st = hosts.get_mut(host).expect("pinged");
                if let Some(c) = parse_challenge(resp.headers()) {
                    st.challenge = c;
                }
                st.token = None;
                drop(hosts);
                // Ask again: a fresh token for all scopes, or credentials
                // when the first try went anonymous.
                let _ = self.authorization(host, auth_key, true)?;
                continue;
            }
            if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
                let has_cred = self.credential(host, auth_key)?.is_some();
                let looked: Vec<String> = credentials::auth_files()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                return Err(Error::Unauthorized {
                    host: host.to_string(),
                    what: what.to_string(),
                    detail: if has_cred {
                        format!(
                            "the credentials found for {auth_key} were refused (status {}); run `strata login {auth_key}`",
                            resp.status().as_u16()
                        )
                    } else {
                        format!(
                            "no credentials for {auth_key} (looked in {}); run `strata login {auth_key}`",
                            looked.join(", ")
                        )
                    },
                });
            }
            return Ok(resp);
        }
    }

    /// The Authorization value for `host`, fetching a token when needed.
    fn authorization(&self, host: &str, auth_key: &str, force: bool) -> Result<Option<Secret>> {
        let (challenge, scopes, cached) = {
            let hosts = self.hosts.lock().expect("lock");
            let st = hosts.get(host).expect("pinged");
            let cached = st
                .token
                .as_ref()
                .filter(|(_, exp, sc)| *exp > Instant::now() && st.scopes.is_subset(sc))
                .map(|(t, _, _)| t.clone());
            (st.challenge.clone(), st.scopes.clone(), cached)
        };
        match challenge {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(self
                .credential(host, auth_key)?
                .and_then(|c| c.basic_header())
                .map(Secret::new)),
            Challenge::Bearer { realm, service } => {
                if let (Some(t), false) = (cached, force) {
                    return Ok(Some(t));
                }
                let (token, ttl) =
                    self.fetch_token(host, auth_key, &realm, service.as_deref(), &scopes)?;
                let value = Secret::new(format!("Bearer {}", token.expose()));
                let mut hosts = self.hosts.lock().expect("lock");
                let st = hosts.get_mut(host).expect("pinged");
                // Renew a little before the service says it expires.
                let ttl = ttl
                    .saturating_sub(Duration::from_secs(10))
                    .max(Duration::from_secs(1));
                st.token = Some((value.clone(), Instant::now() + ttl, scopes));
                Ok(Some(value))
            }
        }
    }

    fn fetch_token(
        &self,
        host: &str,
        auth_key: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &BTreeSet<String>,
    ) -> Result<(Secret, Duration)> {
        let url = reqwest::Url::parse(realm)
            .map_err(|e| Error::invalid("token realm", host, format!("{realm:?}: {e}")))?;
        let realm_host = url.host_str().unwrap_or_default().to_string();
        let realm_hostport = match url.port() {
            Some(p) => format!("{realm_host}:{p}"),
            None => realm_host.clone(),
        };
        let cred = self.credential(host, auth_key)?;
        // Credentials go to the realm only over HTTPS, or to a loopback or
        // listed-insecure realm.
        if url.scheme() != "https" && cred.is_some() && !self.allow_http(&realm_hostport) {
            return Err(Error::Unauthorized {
                host: host.to_string(),
                what: "token request".into(),
                detail: format!(
                    "the token realm {realm} is plain HTTP; refusing to send credentials there"
                ),
            });
        }
        let resp = self.with_retries(&realm_hostport, "token request", || {
            let req = match &cred {
                Some(Credential::IdentityToken(t)) => {
                    let mut form = vec![
                        ("grant_type", "refresh_token".to_string()),
                        ("refresh_token", t.expose().to_string()),
                        ("client_id", "strata".to_string()),
                    ];
                    if let Some(s) = service {
                        form.push(("service", s.to_string()));
                    }
                    if !scopes.is_empty() {
                        form.push((
                            "scope",
                            scopes.iter().cloned().collect::<Vec<_>>().join(" "),
                        ));
                    }
                    self.http.post(url.clone()).form(&form)
                }
                other => {
                    let mut u = url.clone();
                    {
                        let mut q = u.query_pairs_mut();
                        if let Some(s) = service {
                            q.append_pair("service", s);
                        }
                        for s in scopes {
                            q.append_pair("scope", s);
                        }
                    }
                    let mut r = self.http.get(u);
                    if let Some(h) = other.as_ref().and_then(|c| c.basic_header()) {
                        r = r.header(AUTHORIZATION, h);
                    }
                    r
                }
            };
            Ok(req)
        })?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                host: host.to_string(),
                what: "token request".into(),
                detail: format!(
                    "the token service at {realm_host} refused {} (status {}); run `strata login {auth_key}`",
                    if cred.is_some() {
                        "the stored credentials"
                    } else {
                        "anonymous access"
                    },
                    resp.status().as_u16()
                ),
            });
        }
        let resp = check(resp, host, "token request")?;
        let body: serde_json::Value =
            serde_json::from_reader(std::io::Read::take(resp, 1 << 20))
                .map_err(|e| Error::invalid("token response", &realm_host, e.to_string()))?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| {
                Error::invalid(
                    "token response",
                    &realm_host,
                    "no token or access_token field",
                )
            })?;
        let ttl = body
            .get("expires_in")
            .and_then(|v| v.as_u64())
            .unwrap_or(60);
        Ok((Secret::new(token), Duration::from_secs(ttl.max(1))))
    }

    /// Sends with retries on connection errors, 408, 429 and 5xx.
    fn with_retries(
        &self,
        host: &str,
        what: &str,
        build: impl Fn() -> Result<RequestBuilder>,
    ) -> Result<Response> {
        self.with_attempts(host, what, self.opts.attempts, build)
    }

    fn with_attempts(
        &self,
        host: &str,
        what: &str,
        attempts: u32,
        build: impl Fn() -> Result<RequestBuilder>,
    ) -> Result<Response> {
        let mut delay = self.opts.backoff;
        let mut attempt = 1;
        loop {
            let outcome = build()?.send();
            let retry_after = match &outcome {
                Ok(r) if is_retryable_status(r.status()) && attempt < attempts => Some(
                    r.headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(30)))
                        .unwrap_or(delay),
                ),
                Err(e)
                    if attempt < attempts
                        && (e.is_connect() || e.is_timeout() || e.is_request()) =>
                {
                    Some(delay)
                }
                _ => None,
            };
            match (outcome, retry_after) {
                (_, Some(wait)) => {
                    std::thread::sleep(wait);
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                (Ok(r), None) => return Ok(r),
                (Err(e), None) => {
                    return Err(Error::Connect {
                        host: host.to_string(),
                        detail: format!("{what}: {}", error_chain(&e)),
                    });
                }
            }
        }
    }
}

/// Plain HTTP is allowed for loopback hosts and hosts listed as insecure.
fn allow_http(insecure: &[String], host: &str) -> bool {
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

/// Authorization is dropped by reqwest on a cross-host hop; a downgrade to
/// plain HTTP is refused outright.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt
            .previous()
            .last()
            .is_some_and(|p| p.scheme() == "https")
            && attempt.url().scheme() == "http";
        if downgrade {
            let msg = format!(
                "refused redirect from https to plain http ({})",
                attempt.url()
            );
            attempt.error(msg)
        } else if attempt.previous().len() >= 10 {
            attempt.error("more than 10 redirects")
        } else {
            attempt.follow()
        }
    })
}

/// Formats an error with its sources (reqwest hides the interesting part).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

fn parse_challenge(headers: &HeaderMap) -> Option<Challenge> {
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(v) = value.to_str() else { continue };
        let Ok(challenges) = http_auth::parse_challenges(v) else {
            continue;
        };
        for c in challenges {
            if c.scheme.eq_ignore_ascii_case("bearer") {
                let param = |k: &str| {
                    c.params
                        .iter()
                        .find(|(name, _)| name.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.to_unescaped())
                };
                if let Some(realm) = param("realm") {
                    return Some(Challenge::Bearer {
                        realm,
                        service: param("service"),
                    });
                }
            } else if c.scheme.eq_ignore_ascii_case("basic") {
                return Some(Challenge::Basic);
            }
        }
    }
    None
}

/// Turns a non-success response into [`Error::Registry`], decoding the
/// registry's error envelope. Success passes through.
pub fn check(resp: Response, host: &str, what: &str) -> Result<Response> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let mut body = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::Read::take(resp, 64 * 1024), &mut body);
    Err(Error::Registry {
        host: host.to_string(),
        what: what.to_string(),
        status,
        detail: envelope_detail(&body),
    })
}

/// The codes and messages of a registry error envelope, or the start of the
/// body when it is not one.
fn envelope_detail(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) if v.get("errors").is_some_and(|e| e.is_array()) => v["errors"]
            .as_array()
            .expect("checked")
            .iter()
            .map(|e| {
                let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("UNKNOWN");
                let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                match e.get("detail").filter(|d| !d.is_null()) {
                    Some(d) => format!("{code}: {msg} ({d})"),
                    None => format!("{code}: {msg}"),
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => body
            .chars()
            .take(300)
            .collect::<String>()
            .trim()
            .to_string(),
    }
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
    }

    #[test]
    fn error_envelopes_are_decoded() {
        let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        assert_eq!(
            envelope_detail(body),
            r#"MANIFEST_UNKNOWN: manifest unknown ({"Tag":"x"})"#
        );
        assert_eq!(envelope_detail("plain text"), "plain text");
    }
}
