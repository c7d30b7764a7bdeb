//! Where registry credentials come from, and the types that keep them out
//! of logs.
//!
//! Lookup order: `REGISTRY_AUTH_FILE` (podman's auth.json), then
//! `$XDG_RUNTIME_DIR/containers/auth.json`, then docker's config.json
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), each with its
//! `auths`, `credHelpers` and `credsStore`.

use std::fmt;
use std::path::PathBuf;

use base64::Engine as _;

use crate::error::{Error, Result};

/// A secret string: its Debug and Display print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; use only to put it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Credentials for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// Username and password (or personal access token).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// An identity (refresh) token for the token service.
    IdentityToken(Secret),
}

impl Credential {
    /// The `Authorization: Basic` value.
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            )),
            Credential::IdentityToken(_) => None,
        }
    }
}

/// The files credentials are looked up in, in order.
pub fn auth_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p).join("containers/auth.json"));
    }
    out.push(docker_config_path());
    out
}

/// docker's config.json: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
pub fn docker_config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker/config.json")
        }
    }
}

/// Looks up the credential for `key` (a registry host, or Docker Hub's
/// legacy key). Returns `None` when none is configured anywhere.
pub fn lookup(key: &str) -> Result<Option<Credential>> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    for path in auth_files() {
        let Ok(f) = std::fs::File::open(&path) else {
            continue;
        };
        match docker_credential::get_credential_from_reader(std::io::BufReader::new(f), key) {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                return Ok(Some(Credential::Basic {
                    username,
                    password: Secret::new(password),
                }));
            }
            Ok(DockerCredential::IdentityToken(t)) => {
                return Ok(Some(Credential::IdentityToken(Secret::new(t))));
            }
            Err(E::NoCredentialConfigured) => continue,
            Err(e) => {
                return Err(Error::bad_input(
                    format!("credentials for {key} in {}", path.display()),
                    format!("{e}; fix or remove the entry (strata logout {key})"),
                ));
            }
        }
    }
    Ok(None)
}

/// Stores `cred` for `key` in the auth file strata writes to
/// (`REGISTRY_AUTH_FILE` when set, else docker's config.json), replacing the
/// file atomically with mode 0600. Returns the file written.
pub fn store(key: &str, username: &str, password: &Secret) -> Result<PathBuf> {
    edit_auth_file(|auths| {
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{username}:{}", password.expose()));
        auths.insert(key.to_string(), serde_json::json!({ "auth": auth }));
        true
    })
}

/// Removes the credential for `key`; returns the file and whether it existed.
pub fn remove(key: &str) -> Result<(PathBuf, bool)> {
    let mut existed = false;
    let path = edit_auth_file(|auths| {
        existed = auths.remove(key).is_some();
        existed
    })?;
    Ok((path, existed))
}

fn edit_auth_file(
    f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>) -> bool,
) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("REGISTRY_AUTH_FILE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(docker_config_path);
    let mut doc: serde_json::Value = match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::invalid("auth file", path.display().to_string(), e.to_string()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let obj = doc.as_object_mut().ok_or_else(|| {
        Error::invalid("auth file", path.display().to_string(), "not a JSON object")
    })?;
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    let auths = auths.as_object_mut().ok_or_else(|| {
        Error::invalid(
            "auth file",
            path.display().to_string(),
            "\"auths\" is not an object",
        )
    })?;
    if !f(auths) {
        return Ok(path);
    }
    let dir = path
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".auth.json.tmp-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    tmp.write_all(&serde_json::to_vec_pretty(&doc).expect("serializes"))
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let c = Credential::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.basic_header().unwrap(), "Basic dTpodW50ZXIy");
    }
}
