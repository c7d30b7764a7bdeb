//! A fake Docker Engine on a unix socket, for the one fault the real engine
//! will not produce on demand: a load without the layers it has failing
//! anyway. It claims to hold an image with the given diff_ids, fails the
//! first load that leaves layer files out, and accepts the next one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

#[derive(Default)]
pub struct Seen {
    /// For each load: the layer files its archive held.
    pub loads: Vec<BTreeSet<String>>,
    /// The image the last accepted load carried: (config digest, RepoTags).
    pub loaded: Option<(String, Vec<String>)>,
}

struct Cfg {
    /// diff_ids of the image the fake claims to hold.
    held: Vec<String>,
    seen: Mutex<Seen>,
}

pub struct FakeEngine {
    pub socket: PathBuf,
    cfg: Arc<Cfg>,
    _rt: tokio::runtime::Runtime,
}

impl FakeEngine {
    /// Listens on `dir/docker.sock`, claiming one image with `held` layers.
    pub fn start(dir: &Path, held: Vec<String>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let socket = dir.join("docker.sock");
        let listener = rt
            .block_on(async { tokio::net::UnixListener::bind(&socket) })
            .unwrap();
        let cfg = Arc::new(Cfg {
            held,
            seen: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&cfg));
        rt.spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeEngine {
            socket,
            cfg,
            _rt: rt,
        }
    }

    pub fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.cfg.seen.lock().unwrap()
    }
}

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

async fn handle(State(cfg): State<Arc<Cfg>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if path == "/_ping" {
        return json(StatusCode::OK, serde_json::json!("OK"));
    }
    if path == "/images/json" {
        return json(StatusCode::OK, serde_json::json!([{"Id": "sha256:held"}]));
    }
    if path == "/images/load" {
        let body = to_bytes(req.into_body(), 1 << 30).await.unwrap();
        let mut files = BTreeSet::new();
        let (mut config, mut tags) = (String::new(), Vec::new());
        let mut ar = tar::Archive::new(&body[..]);
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            if name == "manifest.json" {
                let m: serde_json::Value = serde_json::from_reader(&mut e).unwrap();
                config = format!(
                    "sha256:{}",
                    m[0]["Config"].as_str().unwrap().trim_end_matches(".json")
                );
                tags = serde_json::from_value(m[0]["RepoTags"].clone()).unwrap();
            } else if name.contains(".tar") {
                files.insert(name);
            }
        }
        let mut seen = cfg.seen.lock().unwrap();
        let partial = seen.loads.is_empty();
        seen.loads.push(files);
        let msg = if partial {
            serde_json::json!({"errorDetail": {"message": "open /var/lib/docker/tmp/x/l.tar.gz: no such file or directory"}, "error": "open /var/lib/docker/tmp/x/l.tar.gz: no such file or directory"})
        } else {
            seen.loaded = Some((config, tags.clone()));
            serde_json::json!({"stream": format!("Loaded image: {}\n", tags[0])})
        };
        return json(StatusCode::OK, msg);
    }
    if let Some(name) = path
        .strip_prefix("/images/")
        .and_then(|p| p.strip_suffix("/json"))
    {
        let name = name.replace("%3A", ":");
        if name == "sha256:held" {
            return json(
                StatusCode::OK,
                serde_json::json!({"Id": "sha256:held", "RepoTags": [], "RootFS": {"Type": "layers", "Layers": cfg.held}}),
            );
        }
        let seen = cfg.seen.lock().unwrap();
        if let Some((id, tags)) = &seen.loaded
            && *id == name
        {
            return json(
                StatusCode::OK,
                serde_json::json!({"Id": id, "RepoTags": tags, "RootFS": {"Type": "layers", "Layers": []}}),
            );
        }
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"message": format!("No such image: {name}")}),
        );
    }
    json(
        StatusCode::NOT_FOUND,
        serde_json::json!({"message": "page not found"}),
    )
}
