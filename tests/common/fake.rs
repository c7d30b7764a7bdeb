//! An in-process fake registry, only for faults the real one cannot
//! produce (error bursts, dropped connections, wrong bytes, 202 mounts,
//! cross-host redirects, endless bodies, 416 chunks), and for the
//! referrers API, which docker-registry (distribution 2.8) does not have.
//! Everything else is tested against docker-registry.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Faults to inject.
#[derive(Default, Clone)]
pub struct Faults {
    /// Statuses to answer (in order) before serving manifest GETs normally.
    pub manifest_errors: Vec<u16>,
    /// Drop the connection half-way through the first GET of this blob.
    pub drop_blob_once: Option<String>,
    /// Serve these bytes instead of the real blob with this digest.
    pub wrong_bytes: Option<(String, Vec<u8>)>,
    /// Answer mounts with 202 and an upload location.
    pub mount_202: bool,
    /// Answer mounts with this error status (and an error envelope).
    pub mount_error: Option<u16>,
    /// The Retry-After sent with `manifest_errors` ("0" when unset).
    pub retry_after: Option<String>,
    /// Redirect blob GETs to this base URL (another host).
    pub redirect_blobs_to: Option<String>,
    /// Stream an endless manifest body.
    pub endless_manifest: bool,
    /// Answer the second PATCH of each upload with 416, once.
    pub patch_416_once: bool,
    /// Require this Authorization header on /v2/ requests (Basic).
    pub require_auth: Option<String>,
    /// Answer every /v2/ request that has no Bearer token with a 401
    /// challenge naming this token realm.
    pub bearer_realm: Option<String>,
    /// Serve manifests with this Content-Type instead of their own.
    pub manifest_content_type: Option<String>,
    /// Announce this OCI-Chunk-Min-Length when an upload starts.
    pub chunk_min: Option<u64>,
    /// Refuse a PUT that carries the whole blob (413), as registries with a
    /// request size limit do.
    pub refuse_monolithic: bool,
    /// Offer the referrers API (`GET /v2/REPO/referrers/DIGEST`).
    pub referrers_api: bool,
    /// Hand uploads to this base URL (another host) in the POST's Location.
    pub upload_location_to: Option<String>,
    /// Send half of what the next N GETs of this blob ask for, then go
    /// silent with the connection open.
    pub stall_blob: Option<(String, usize)>,
    /// Send half of every manifest, then go silent.
    pub stall_manifest: bool,
    /// Read PATCH and PUT bodies, then never answer.
    pub stall_uploads: bool,
    /// Answer each blob PUT only after this long, counting how many are
    /// answered at once (`Inner::max_in_flight`).
    pub slow_puts: Option<std::time::Duration>,
    /// Answer every PATCH with the Range of the first chunk (no progress).
    pub stuck_range: bool,
    /// Take this many blob uploads, then answer 500 to every other one
    /// (a push interrupted after the Nth upload, deterministically).
    pub uploads_before_failing: Option<usize>,
}

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub range: Option<String>,
    pub body_len: usize,
    /// When the request arrived.
    pub at: std::time::Instant,
}

#[derive(Default)]
pub struct Inner {
    pub faults: Faults,
    pub blobs: HashMap<String, Vec<u8>>,
    pub manifests: HashMap<String, (String, Vec<u8>)>,
    pub uploads: HashMap<String, Vec<u8>>,
    pub patches: HashMap<String, usize>,
    pub seen: Vec<Seen>,
    /// (repository, digest) pairs a HEAD finds: blobs are per repository.
    pub linked: std::collections::HashSet<(String, String)>,
    pub dropped: bool,
    pub sent_416: bool,
    /// Blob uploads completed.
    pub uploads_done: usize,
    next_upload: usize,
    /// Blob PUTs being answered now, and the most there ever were at once
    /// (with `slow_puts`).
    in_flight: usize,
    pub max_in_flight: usize,
}

#[derive(Clone)]
pub struct Fake {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<Inner>>,
    _rt: Arc<tokio::runtime::Runtime>,
}

impl Fake {
    /// Starts a fake on 127.0.0.1, port chosen freely.
    pub fn start(faults: Faults) -> Self {
        Self::start_on(faults, "127.0.0.1")
    }

    /// Starts a fake on address `ip` of this machine (another host than
    /// 127.0.0.1 when it is, say, 127.0.0.2), port chosen freely.
    pub fn start_on(faults: Faults, ip: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(Inner {
            faults,
            ..Default::default()
        }));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(format!("{ip}:0")))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        rt.spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Fake {
            addr,
            state,
            _rt: Arc::new(rt),
        }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Starts a fake speaking HTTPS with `cert`/`key` (PEM files).
    pub fn start_tls(faults: Faults, cert: &std::path::Path, key: &std::path::Path) -> Self {
        use rustls_pki_types::pem::PemObject;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(Inner {
            faults,
            ..Default::default()
        }));
        let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = TlsListener {
            inner: listener,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        rt.spawn(async move {
            axum::serve(tls, app).await.unwrap();
        });
        Fake {
            addr,
            state,
            _rt: Arc::new(rt),
        }
    }

    /// Loads every blob and tagged manifest of an OCI layout into repo `repo`.
    pub fn load_layout(&self, layout: &std::path::Path, repo: &str) {
        let mut st = self.state.lock().unwrap();
        for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            let d = format!("sha256:{}", e.file_name().to_string_lossy());
            st.linked.insert((repo.to_string(), d.clone()));
            st.blobs.insert(d, std::fs::read(e.path()).unwrap());
        }
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        for m in index["manifests"].as_array().unwrap() {
            let digest = m["digest"].as_str().unwrap().to_string();
            let mt = m["mediaType"].as_str().unwrap().to_string();
            let bytes = st.blobs[&digest].clone();
            if let Some(tag) = m["annotations"]["org.opencontainers.image.ref.name"].as_str() {
                st.manifests
                    .insert(format!("{repo}:{tag}"), (mt.clone(), bytes.clone()));
            }
            st.manifests.insert(format!("{repo}:{digest}"), (mt, bytes));
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

/// Half of `bytes`, then silence with the connection left open.
fn half_then_silence(bytes: &[u8], content_type: Option<&str>) -> Response {
    use futures_util::StreamExt;
    let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(half)])
        .chain(futures_util::stream::pending());
    let mut b = Response::builder().header(header::CONTENT_LENGTH, bytes.len());
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.body(Body::from_stream(stream)).unwrap()
}

/// A store image loaded into `fake` as `src/img:1`; returns (env, image
/// digest, layer digest).
pub fn setup(fake: &Fake) -> (super::Env, String, String) {
    let env = super::Env::new();
    let digest = env.busybox_image("img:1", "hi");
    let layout = env.path("layout");
    env.ok(&["copy", "img:1", &format!("oci:{}:1", layout.display())]);
    fake.load_layout(&layout, "src/img");
    let layer = env.first_layer("img:1");
    (env, digest, layer)
}

/// `docker://FAKE/path`.
pub fn r(fake: &Fake, path: &str) -> String {
    format!("docker://{}/{path}", fake.host())
}

fn status(code: u16) -> Response {
    StatusCode::from_u16(code).unwrap().into_response()
}

fn sha256(b: &[u8]) -> String {
    strata::Digest::of(b).to_string()
}

async fn handle(State(state): State<Arc<Mutex<Inner>>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 256 << 20)
        .await
        .unwrap_or_default();
    let q: HashMap<String, String> = url_pairs(&query);
    let stall_upload = {
        let mut st = state.lock().unwrap();
        st.seen.push(Seen {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            authorization: headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_string()),
            range: headers
                .get(header::RANGE)
                .map(|v| v.to_str().unwrap().to_string()),
            body_len: body.len(),
            at: std::time::Instant::now(),
        });
        st.faults.stall_uploads
            && (method == Method::PATCH || method == Method::PUT)
            && path.contains("/blobs/uploads/")
    };
    if stall_upload {
        // Body read and recorded, never answered.
        std::future::pending::<()>().await;
    }
    let slow = state.lock().unwrap().faults.slow_puts;
    if let Some(delay) = slow.filter(|_| method == Method::PUT && path.contains("/blobs/uploads/"))
    {
        {
            let mut st = state.lock().unwrap();
            st.in_flight += 1;
            st.max_in_flight = st.max_in_flight.max(st.in_flight);
        }
        tokio::time::sleep(delay).await;
        state.lock().unwrap().in_flight -= 1;
    }
    let mut st = state.lock().unwrap();
    // Blob content served after a cross-host redirect.
    if let Some(d) = path.strip_prefix("/redirected/") {
        return match st.blobs.get(d) {
            Some(b) => b.clone().into_response(),
            None => status(404),
        };
    }
    if let Some(want) = &st.faults.require_auth
        && headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(want.as_str())
    {
        return Response::builder()
            .status(401)
            .header(header::WWW_AUTHENTICATE, "Basic realm=\"fake\"")
            .body(Body::empty())
            .unwrap();
    }
    if let Some(realm) = &st.faults.bearer_realm
        && path.starts_with("/v2/")
        && !headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer "))
    {
        return Response::builder()
            .status(401)
            .header(
                header::WWW_AUTHENTICATE,
                format!("Bearer realm=\"{realm}\",service=\"fake\""),
            )
            .body(Body::empty())
            .unwrap();
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return status(404);
    };
    if rest.is_empty() {
        return status(200);
    }
    let (repo, op, arg) = split(rest);
    match (method.clone(), op) {
        (Method::GET | Method::HEAD, "manifests") => {
            if !st.faults.manifest_errors.is_empty() {
                let code = st.faults.manifest_errors.remove(0);
                let after = st.faults.retry_after.clone();
                return Response::builder()
                    .status(code)
                    .header(header::RETRY_AFTER, after.as_deref().unwrap_or("0"))
                    .body(Body::empty())
                    .unwrap();
            }
            if st.faults.endless_manifest {
                let stream = futures_util::stream::iter(
                    (0..100_000)
                        .map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 64 * 1024]))),
                );
                return Response::builder()
                    .header(
                        header::CONTENT_TYPE,
                        "application/vnd.oci.image.manifest.v1+json",
                    )
                    .body(Body::from_stream(stream))
                    .unwrap();
            }
            match st.manifests.get(&format!("{repo}:{arg}")) {
                Some((mt, bytes)) if st.faults.stall_manifest && method == Method::GET => {
                    half_then_silence(bytes, Some(mt))
                }
                Some((mt, bytes)) => Response::builder()
                    .header(
                        header::CONTENT_TYPE,
                        st.faults.manifest_content_type.as_deref().unwrap_or(mt),
                    )
                    .header("docker-content-digest", sha256(bytes))
                    .header(header::CONTENT_LENGTH, bytes.len())
                    .body(if method == Method::HEAD {
                        Body::empty()
                    } else {
                        Body::from(bytes.clone())
                    })
                    .unwrap(),
                None => status(404),
            }
        }
        (Method::GET, "referrers") if st.faults.referrers_api => {
            let mut refs = Vec::new();
            for (key, (mt, bytes)) in &st.manifests {
                let Some(digest) = key.strip_prefix(&format!("{repo}:")) else {
                    continue;
                };
                let m: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
                if digest.starts_with("sha256:") && m["subject"]["digest"] == arg {
                    refs.push(serde_json::json!({
                        "mediaType": mt,
                        "digest": digest,
                        "size": bytes.len(),
                        "artifactType": m["artifactType"],
                    }));
                }
            }
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": refs,
            });
            Response::builder()
                .header(
                    header::CONTENT_TYPE,
                    "application/vnd.oci.image.index.v1+json",
                )
                .body(Body::from(serde_json::to_vec(&index).unwrap()))
                .unwrap()
        }
        (Method::PUT, "manifests") => {
            let mt = headers
                .get(header::CONTENT_TYPE)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            st.manifests
                .insert(format!("{repo}:{arg}"), (mt, body.to_vec()));
            status(201)
        }
        (Method::HEAD, "blobs") => match st.blobs.get(arg) {
            Some(b) if st.linked.contains(&(repo.to_string(), arg.to_string())) => {
                Response::builder()
                    .header(header::CONTENT_LENGTH, b.len())
                    .body(Body::empty())
                    .unwrap()
            }
            _ => status(404),
        },
        (Method::GET, "blobs") => {
            let Some(real) = st.blobs.get(arg).cloned() else {
                return status(404);
            };
            if let Some(to) = &st.faults.redirect_blobs_to {
                return Response::builder()
                    .status(307)
                    .header(header::LOCATION, format!("{to}/redirected/{arg}"))
                    .body(Body::empty())
                    .unwrap();
            }
            let bytes = match &st.faults.wrong_bytes {
                Some((d, b)) if d == arg => b.clone(),
                _ => real,
            };
            if let Some((d, n)) = &mut st.faults.stall_blob
                && d == arg
                && *n > 0
            {
                *n -= 1;
                let start: usize = headers
                    .get(header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .map(|r| r.trim_start_matches("bytes=").trim_end_matches('-'))
                    .map_or(0, |s| s.parse().unwrap());
                let mut resp = half_then_silence(&bytes[start..], None);
                if start > 0 {
                    *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                }
                return resp;
            }
            if let Some(r) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
                let start: usize = r
                    .trim_start_matches("bytes=")
                    .trim_end_matches('-')
                    .parse()
                    .unwrap();
                return Response::builder()
                    .status(206)
                    .header(header::CONTENT_LENGTH, bytes.len() - start)
                    .header(
                        header::CONTENT_RANGE,
                        format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len()),
                    )
                    .body(Body::from(bytes[start..].to_vec()))
                    .unwrap();
            }
            if st.faults.drop_blob_once.as_deref() == Some(arg) && !st.dropped {
                st.dropped = true;
                let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
                let stream = futures_util::stream::iter(vec![
                    Ok::<_, std::io::Error>(half),
                    Err(std::io::Error::other("connection dropped by the fake")),
                ]);
                return Response::builder()
                    .header(header::CONTENT_LENGTH, bytes.len())
                    .body(Body::from_stream(stream))
                    .unwrap();
            }
            Response::builder()
                .header(header::CONTENT_LENGTH, bytes.len())
                .body(Body::from(bytes))
                .unwrap()
        }
        (Method::POST, "blobs") => {
            if let (Some(_), Some(code)) = (q.get("mount"), st.faults.mount_error) {
                return Response::builder()
                    .status(code)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(
                        r#"{"errors":[{"code":"DENIED","message":"mounts are not allowed here"}]}"#,
                    ))
                    .unwrap();
            }
            if let Some(d) = q.get("mount")
                && !st.faults.mount_202
                && st.blobs.contains_key(d)
            {
                st.linked.insert((repo.to_string(), d.clone()));
                return Response::builder()
                    .status(201)
                    .header(header::LOCATION, format!("/v2/{repo}/blobs/{d}"))
                    .body(Body::empty())
                    .unwrap();
            }
            st.next_upload += 1;
            let id = format!("u{}", st.next_upload);
            st.uploads.insert(id.clone(), Vec::new());
            let min = st.faults.chunk_min.unwrap_or(0).to_string();
            let elsewhere = st.faults.upload_location_to.clone().unwrap_or_default();
            Response::builder()
                .status(202)
                .header("oci-chunk-min-length", min)
                .header(
                    header::LOCATION,
                    format!("{elsewhere}/v2/{repo}/blobs/uploads/{id}?state=fake"),
                )
                .header(header::RANGE, "0-0")
                .body(Body::empty())
                .unwrap()
        }
        (Method::PATCH, "uploads") => {
            let n = {
                let c = st.patches.entry(arg.to_string()).or_default();
                *c += 1;
                *c
            };
            if st.faults.patch_416_once && n == 2 && !st.sent_416 {
                st.sent_416 = true;
                return status(416);
            }
            let range = headers
                .get(header::CONTENT_RANGE)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let start: usize = range.split('-').next().unwrap().parse().unwrap();
            let stuck = st.faults.stuck_range;
            // A storage host handed the upload knows no upload ids.
            let up = st.uploads.entry(arg.to_string()).or_default();
            if start != up.len() && !stuck {
                return status(416);
            }
            if !stuck || up.is_empty() {
                up.extend_from_slice(&body);
            }
            let end = up.len();
            Response::builder()
                .status(202)
                .header(
                    header::LOCATION,
                    format!("/v2/{repo}/blobs/uploads/{arg}?state=fake"),
                )
                .header(header::RANGE, format!("0-{}", end - 1))
                .body(Body::empty())
                .unwrap()
        }
        (Method::GET, "uploads") => {
            let len = st.uploads.get(arg).map(|u| u.len()).unwrap_or(0);
            Response::builder()
                .status(204)
                .header(header::RANGE, format!("0-{}", len.saturating_sub(1)))
                .header(
                    header::LOCATION,
                    format!("/v2/{repo}/blobs/uploads/{arg}?state=fake"),
                )
                .body(Body::empty())
                .unwrap()
        }
        (Method::PUT, "uploads") => {
            if st
                .faults
                .uploads_before_failing
                .is_some_and(|n| st.uploads_done >= n)
            {
                return status(500);
            }
            if st.faults.refuse_monolithic && !body.is_empty() {
                st.uploads.remove(arg);
                return Response::builder()
                    .status(413)
                    .body(Body::from(
                        r#"{"errors":[{"code":"SIZE_INVALID","message":"request too large"}]}"#,
                    ))
                    .unwrap();
            }
            let mut up = st.uploads.remove(arg).unwrap_or_default();
            up.extend_from_slice(&body);
            let want = q.get("digest").cloned().unwrap_or_default();
            if sha256(&up) != want {
                return Response::builder()
                    .status(400)
                    .body(Body::from(r#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}"#))
                    .unwrap();
            }
            st.linked.insert((repo.to_string(), want.clone()));
            st.blobs.insert(want.clone(), up);
            st.uploads_done += 1;
            Response::builder()
                .status(201)
                .header(header::LOCATION, format!("/v2/{repo}/blobs/{want}"))
                .body(Body::empty())
                .unwrap()
        }
        _ => status(405),
    }
}

/// Splits `REPO/manifests/REF`, `REPO/blobs/DIGEST`, `REPO/blobs/uploads/[ID]`.
fn split(rest: &str) -> (&str, &str, &str) {
    if let Some(i) = rest.find("/blobs/uploads") {
        let id = rest[i + "/blobs/uploads".len()..].trim_start_matches('/');
        let op = if id.is_empty() { "blobs" } else { "uploads" };
        return (&rest[..i], op, id);
    }
    for op in ["manifests", "blobs", "tags", "referrers"] {
        if let Some(i) = rest.find(&format!("/{op}/")) {
            return (&rest[..i], op, &rest[i + op.len() + 2..]);
        }
    }
    (rest, "", "")
}

fn url_pairs(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3A", ":")))
        .collect()
}

struct TlsListener {
    inner: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.inner.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
