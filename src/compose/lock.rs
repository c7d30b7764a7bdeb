//! `strata.lock`: committed with the project, it pins every `layer@version`
//! to its diff_ids and digests. `strata build` records them (warning when a
//! layer's bytes change without a version bump); `strata build --locked`
//! fails, before anything is written, naming the layer whose bytes differ.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// One pinned layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// Layer name.
    pub name: String,
    /// Layer version ("" when the layer has none).
    pub version: String,
    /// diff_ids of its blobs (one, or several for `source.image`).
    pub diff_ids: Vec<Digest>,
    /// Compressed digests of its blobs.
    pub digests: Vec<Digest>,
    /// The platform it was built for, in a multi-platform build (each
    /// platform is pinned on its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl Pin {
    /// Its key in the lock: the name, with the platform when it has one.
    fn key(&self) -> String {
        match &self.platform {
            Some(p) => format!("{} {p}", self.name),
            None => self.name.clone(),
        }
    }

    /// `name@version`, with the platform when it has one.
    fn label(&self) -> String {
        match &self.platform {
            Some(p) => format!("{}@{} ({p})", self.name, self.version),
            None => format!("{}@{}", self.name, self.version),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    #[serde(default)]
    layer: Vec<Pin>,
}

/// The lock of a project.
#[derive(Debug, Default, Clone)]
pub struct Lock {
    pins: BTreeMap<String, Pin>,
}

impl Lock {
    /// Reads `root/strata.lock` (empty when absent).
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join("strata.lock");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lock::default()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let f: LockFile = toml::from_str(&text)
            .map_err(|e| Error::invalid("lock file", "strata.lock", e.message().to_string()))?;
        Ok(Lock {
            pins: f.layer.into_iter().map(|p| (p.key(), p)).collect(),
        })
    }

    /// The pin of layer `name`.
    pub fn get(&self, name: &str) -> Option<&Pin> {
        self.pins.get(name)
    }

    /// Records a pin; returns a warning when the bytes changed while the
    /// version stayed the same.
    pub fn record(&mut self, pin: Pin) -> Option<String> {
        let warning = self.pins.get(&pin.key()).and_then(|old| {
            // Unversioned layers are expected to change freely.
            if pin.version.is_empty() || old.version != pin.version || old.digests == pin.digests {
                return None;
            }
            Some(if old.diff_ids == pin.diff_ids {
                format!(
                    "layer {}: same content, new compressed bytes (the compression or strata's compressor changed); strata.lock records the new digests",
                    pin.label()
                )
            } else {
                format!(
                    "layer {} changed bytes without a version bump; bump its version to record a deliberate change",
                    pin.label()
                )
            })
        });
        self.pins.insert(pin.key(), pin);
        warning
    }

    /// Keeps only the named layers.
    pub fn retain(&mut self, names: &[&str]) {
        self.pins.retain(|_, p| names.contains(&p.name.as_str()));
    }

    /// Checks `pin` against the lock (for `--locked`).
    pub fn verify(&self, pin: &Pin) -> Result<()> {
        let at = format!("strata.lock key layer.{}", pin.name);
        match self.pins.get(&pin.key()) {
            None => Err(Error::invalid(
                "lock",
                at,
                format!(
                    "layer {} is not in strata.lock; run strata build without --locked to record it",
                    pin.label()
                ),
            )),
            Some(old) if old.version != pin.version => Err(Error::invalid(
                "lock",
                at,
                format!(
                    "strata.lock pins {}, the project has version {}; run strata build without --locked",
                    old.label(),
                    pin.version
                ),
            )),
            Some(old) if old.diff_ids == pin.diff_ids && old.digests != pin.digests => {
                Err(Error::invalid(
                    "lock",
                    at,
                    format!(
                        "layer {} has the content strata.lock pins, but its compressed bytes would differ (digest {} → {}): the compression or strata's compressor changed; run strata build without --locked to record the new digests",
                        pin.label(),
                        first(&old.digests),
                        first(&pin.digests)
                    ),
                ))
            }
            Some(old) if old.diff_ids != pin.diff_ids => Err(Error::invalid(
                "lock",
                at,
                format!(
                    "the bytes of layer {} would differ from strata.lock (diff_id {} → {}); bump its version if the change is deliberate",
                    pin.label(),
                    first(&old.diff_ids),
                    first(&pin.diff_ids)
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Writes `root/strata.lock` atomically (when its content changed).
    pub fn save(&self, root: &Path) -> Result<()> {
        let f = LockFile {
            layer: self.pins.values().cloned().collect(),
        };
        let body = toml::to_string(&f)
            .map_err(|e| Error::Unsupported(format!("cannot write strata.lock: {e}")))?;
        let text = format!(
            "# strata.lock: written by `strata build`; commit it. `strata build --locked` fails on drift.\n\n{body}"
        );
        let path = root.join("strata.lock");
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".strata.lock.")
            .tempfile_in(root)
            .map_err(|e| Error::io(root, e))?;
        std::io::Write::write_all(&mut tmp, text.as_bytes())
            .map_err(|e| Error::io(tmp.path(), e))?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(())
    }
}

fn first(ds: &[Digest]) -> String {
    ds.first().map(|d| d.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(diff: &[u8], blob: &[u8]) -> Pin {
        Pin {
            name: "app".into(),
            version: "1".into(),
            diff_ids: vec![Digest::of(diff)],
            digests: vec![Digest::of(blob)],
            platform: None,
        }
    }

    #[test]
    fn new_compressed_bytes_of_the_same_content_are_told_apart() {
        let mut lock = Lock::default();
        assert_eq!(lock.record(pin(b"tar", b"gz3")), None);
        let w = lock.record(pin(b"tar", b"gz2")).unwrap();
        assert!(w.contains("same content, new compressed bytes"), "{w}");
        let w = lock.record(pin(b"tar2", b"gz")).unwrap();
        assert!(w.contains("without a version bump"), "{w}");
        let err = lock
            .verify(&pin(b"tar2", b"other"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("compressed bytes would differ"), "{err}");
        let err = lock.verify(&pin(b"tar3", b"gz")).unwrap_err().to_string();
        assert!(err.contains("bump its version"), "{err}");
        assert!(lock.verify(&pin(b"tar2", b"gz")).is_ok());
    }
}
