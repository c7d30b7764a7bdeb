//! The few Docker Engine API calls the `docker-daemon:` transport makes:
//! inspect an image, list images, tag, load a docker-archive, save one.
//! Unversioned paths: the engine answers in its own API version, and these
//! calls have kept their shape since API 1.24.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::http::{self, Body, engine_io};
use crate::digest::Digest;
use crate::error::{Error, Result};

/// Largest JSON answer read from the engine (an image list of thousands).
const MAX_JSON: u64 = 32 << 20;
/// Largest single progress message of a load.
const MAX_MESSAGE: u64 = 1 << 20;

/// A Docker Engine reached through its unix socket.
#[derive(Clone, Debug)]
pub struct Engine {
    socket: PathBuf,
    /// Stall timeout of every read and write.
    pub timeout: Duration,
}

/// What the engine knows of one image.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspect {
    /// The image ID: its config's digest.
    pub id: String,
    /// Its tags.
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// Its layers' diff_ids.
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
}

/// An image's root filesystem as the engine reports it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    /// diff_ids, bottom first.
    #[serde(default)]
    pub layers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Summary {
    id: String,
}

/// One message of a load's JSON stream.
#[derive(Deserialize, Default)]
struct Message {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

impl Engine {
    /// The engine `DOCKER_HOST` names (`unix://PATH`), else
    /// `/var/run/docker.sock`.
    pub fn from_env() -> Result<Engine> {
        let socket = match std::env::var("DOCKER_HOST") {
            Ok(h) if !h.is_empty() => match h.strip_prefix("unix://") {
                Some(p) => PathBuf::from(p),
                None => {
                    return Err(Error::Unsupported(format!(
                        "DOCKER_HOST={h}: the docker-daemon: transport reaches the engine through a unix socket (unix:///PATH) only"
                    )));
                }
            },
            _ => PathBuf::from("/var/run/docker.sock"),
        };
        Ok(Engine::at(&socket))
    }

    /// The engine listening on `socket`.
    pub fn at(socket: &Path) -> Engine {
        Engine {
            socket: socket.to_path_buf(),
            timeout: Duration::from_secs(120),
        }
    }

    fn call(&self, method: &str, target: &str, body: Body<'_>) -> Result<http::Response> {
        let ct = matches!(body, Body::Stream(_)).then_some("application/x-tar");
        http::request(&self.socket, self.timeout, method, target, ct, body)
    }

    fn failed(&self, what: &str, r: http::Response) -> Error {
        let status = r.status;
        let body = r.read_bounded(MAX_MESSAGE, what).unwrap_or_default();
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        Error::Registry {
            host: "docker-daemon".into(),
            what: what.to_string(),
            status,
            codes: Vec::new(),
            detail: msg,
        }
    }

    /// Checks that the engine answers.
    pub fn ping(&self) -> Result<()> {
        let r = self.call("GET", "/_ping", Body::Empty)?;
        if r.status != 200 {
            return Err(self.failed("ping", r));
        }
        Ok(())
    }

    /// The engine's record of `name` (a reference or an image ID), or None
    /// when it has no such image.
    pub fn inspect(&self, name: &str) -> Result<Option<Inspect>> {
        let what = format!("inspect {name}");
        let r = self.call(
            "GET",
            &format!("/images/{}/json", encode(name)),
            Body::Empty,
        )?;
        match r.status {
            200 => {
                let body = r.read_bounded(MAX_JSON, &what)?;
                serde_json::from_slice(&body)
                    .map(Some)
                    .map_err(|e| Error::invalid("Docker Engine response", &what, e.to_string()))
            }
            404 => Ok(None),
            _ => Err(self.failed(&what, r)),
        }
    }

    /// The IDs of every image the engine holds.
    pub fn image_ids(&self) -> Result<Vec<String>> {
        let what = "list images";
        let r = self.call("GET", "/images/json?all=1", Body::Empty)?;
        if r.status != 200 {
            return Err(self.failed(what, r));
        }
        let body = r.read_bounded(MAX_JSON, what)?;
        let list: Vec<Summary> = serde_json::from_slice(&body)
            .map_err(|e| Error::invalid("Docker Engine response", what, e.to_string()))?;
        Ok(list.into_iter().map(|s| s.id).collect())
    }

    /// Tags image `id` as `name` (`REPO:TAG`).
    pub fn tag(&self, id: &str, name: &str) -> Result<()> {
        let (repo, tag) = split_tag(name);
        let what = format!("tag {id} as {name}");
        let r = self.call(
            "POST",
            &format!(
                "/images/{}/tag?repo={}&tag={}",
                encode(id),
                encode(repo),
                encode(tag)
            ),
            Body::Empty,
        )?;
        if r.status / 100 != 2 {
            return Err(self.failed(&what, r));
        }
        Ok(())
    }

    /// Loads the docker-archive `write` streams; returns the engine's
    /// messages ("Loaded image: …"). An error the engine reports in its
    /// message stream fails the call.
    pub fn load(&self, write: &mut dyn FnMut(&mut dyn Write) -> Result<()>) -> Result<Vec<String>> {
        let what = "load";
        // Not quiet: the engine then sends progress while it registers each
        // layer, so a long layer never looks like a stalled engine.
        let r = self.call("POST", "/images/load?quiet=0", Body::Stream(write))?;
        if r.status != 200 {
            return Err(self.failed(what, r));
        }
        let mut out = Vec::new();
        let mut lines = std::io::BufReader::new(r.body);
        loop {
            let mut line = Vec::new();
            let n =
                std::io::BufRead::read_until(&mut (&mut lines).take(MAX_MESSAGE), b'\n', &mut line)
                    .map_err(|e| engine_io(what, e))?;
            if n == 0 {
                break;
            }
            if line.trim_ascii().is_empty() {
                continue;
            }
            let m: Message = serde_json::from_slice(&line)
                .map_err(|e| Error::invalid("Docker Engine response", what, e.to_string()))?;
            if let Some(e) = m.error {
                return Err(Error::Registry {
                    host: "docker-daemon".into(),
                    what: what.into(),
                    status: 200,
                    codes: Vec::new(),
                    detail: e,
                });
            }
            if let Some(s) = m.stream {
                let s = s.trim();
                if !s.is_empty() {
                    out.push(s.to_string());
                }
            }
        }
        Ok(out)
    }

    /// Streams `docker save NAME` into `out`; returns the bytes written.
    pub fn save(&self, name: &str, out: &mut dyn Write) -> Result<u64> {
        let what = format!("save {name}");
        let r = self.call("GET", &format!("/images/{}/get", encode(name)), Body::Empty)?;
        if r.status == 404 {
            return Err(not_in_engine(name));
        }
        if r.status != 200 {
            return Err(self.failed(&what, r));
        }
        let mut body = r.body;
        std::io::copy(&mut body as &mut dyn Read, out).map_err(|e| engine_io(&what, e))
    }
}

/// The error for an image the engine lacks.
pub fn not_in_engine(name: &str) -> Error {
    Error::NotFound {
        what: format!("image {name:?}"),
        location: "the Docker Engine".into(),
        hint: " (docker images lists what it has)".into(),
    }
}

/// `REPO:TAG` split at the tag (a `:` after the last `/`).
pub fn split_tag(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (name, "latest"),
    }
}

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The chain IDs of a list of diff_ids: the first is its diff_id, each next
/// one `sha256(PREVIOUS + " " + DIFF_ID)` (image-spec config.md).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let b: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::of(format!("{a} {b}").as_bytes()));
        assert_eq!(split_tag("host:5000/a/b:v1"), ("host:5000/a/b", "v1"));
        assert_eq!(split_tag("host:5000/a/b"), ("host:5000/a/b", "latest"));
        assert_eq!(encode("a/b:c"), "a%2Fb%3Ac");
    }
}
