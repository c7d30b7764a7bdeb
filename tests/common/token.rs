//! A token service for docker-registry's token auth: checks Basic
//! credentials (or a refresh token), and signs RS256 JWTs with a key whose
//! self-signed certificate the registry trusts (`rootcertbundle`), naming it
//! in the `x5c` header.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

pub const SERVICE: &str = "strata-test-registry";
pub const ISSUER: &str = "strata-test-issuer";

#[derive(Default)]
pub struct Log {
    /// The scopes of every token request, as sent.
    pub scopes: Vec<Vec<String>>,
    /// Grant types seen (GET basic → "basic"/"anonymous", POST → grant_type).
    pub grants: Vec<String>,
    /// Issue this many tokens that have already expired (while saying
    /// `expires_in: 300`), as a token revoked or expired early looks.
    pub expired_next: usize,
    /// Anonymous callers get pull access (writes still need credentials),
    /// as a public repository that only CI may push to.
    pub anonymous_pull: bool,
}

struct Cfg {
    dir: PathBuf,
    user: String,
    password: String,
    refresh_token: String,
    x5c: String,
    log: Arc<Mutex<Log>>,
}

pub struct TokenServer {
    pub addr: SocketAddr,
    /// PEM certificate to put in the registry's rootcertbundle.
    pub cert: PathBuf,
    pub log: Arc<Mutex<Log>>,
    _rt: tokio::runtime::Runtime,
}

impl TokenServer {
    pub fn start(dir: &Path, user: &str, password: &str, refresh_token: &str) -> Self {
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "token.key",
                "-out",
                "token.pem",
                "-days",
                "2",
                "-subj",
                "/CN=strata token signer",
            ])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = Command::new("openssl")
            .args(["x509", "-in", "token.pem", "-outform", "DER"])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(der.status.success());
        let log = Arc::new(Mutex::new(Log::default()));
        let cfg = Arc::new(Cfg {
            dir: dir.to_path_buf(),
            user: user.into(),
            password: password.into(),
            refresh_token: refresh_token.into(),
            x5c: base64::engine::general_purpose::STANDARD.encode(&der.stdout),
            log: Arc::clone(&log),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(handle).with_state(cfg);
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        TokenServer {
            addr,
            cert: dir.join("token.pem"),
            log,
            _rt: rt,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.addr.port())
    }
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn sign(cfg: &Cfg, access: serde_json::Value, sub: &str, expired: bool) -> String {
    let mut now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if expired {
        now -= 3600;
    }
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [cfg.x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": sub, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{}", rand_suffix()), "access": access,
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", "token.key"])
        .current_dir(&cfg.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    format!("{input}.{}", b64url(&out.stdout))
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish()
}

fn access_for(scopes: &[String]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = scopes
        .iter()
        .flat_map(|s| s.split(' '))
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (t, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({"type": t, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    serde_json::Value::Array(list)
}

async fn handle(State(cfg): State<Arc<Cfg>>, req: Request) -> Response {
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or_default().to_string();
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let pairs = |s: &str| -> Vec<(String, String)> {
        s.split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), percent_decode(v)))
            .collect()
    };
    let (params, grant) = if method == axum::http::Method::POST {
        let p = pairs(&String::from_utf8_lossy(&body));
        let g = p
            .iter()
            .find(|(k, _)| k == "grant_type")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        (p, g)
    } else {
        (
            pairs(&query),
            if auth.is_some() {
                "basic".into()
            } else {
                "anonymous".into()
            },
        )
    };
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    {
        let mut log = cfg.log.lock().unwrap();
        log.scopes.push(scopes.clone());
        log.grants.push(grant.clone());
    }
    let ok = match grant.as_str() {
        "basic" => {
            let want = format!("Basic {}", super::basic_b64(&cfg.user, &cfg.password));
            auth.as_deref() == Some(want.as_str())
        }
        "refresh_token" => params
            .iter()
            .any(|(k, v)| k == "refresh_token" && *v == cfg.refresh_token),
        _ => false,
    };
    if grant == "basic" && !ok {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // Anonymous callers get a token that grants nothing (or only pull).
    let anonymous_pull = cfg.log.lock().unwrap().anonymous_pull;
    let access = if ok {
        access_for(&scopes)
    } else if anonymous_pull {
        let pulls: Vec<String> = scopes
            .iter()
            .flat_map(|s| s.split(' '))
            .filter_map(|s| {
                let (head, _) = s.rsplit_once(':')?;
                Some(format!("{head}:pull"))
            })
            .collect();
        access_for(&pulls)
    } else {
        serde_json::json!([])
    };
    let expired = {
        let mut log = cfg.log.lock().unwrap();
        let e = log.expired_next > 0;
        log.expired_next = log.expired_next.saturating_sub(1);
        e
    };
    let cfg2 = Arc::clone(&cfg);
    let token = tokio::task::spawn_blocking(move || sign(&cfg2, access, "tester", expired))
        .await
        .unwrap();
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300});
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
