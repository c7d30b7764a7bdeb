//! Cache mounts and secrets.
//!
//! A cache mount is a directory kept under the store
//! (`STORE/.strata/cache-mounts/ID`) and mounted read-write in the sandbox:
//! it persists across builds and is never part of a layer or a key. Its
//! `sharing` is BuildKit's: `shared` lets concurrent steps use it at once,
//! `locked` makes them take turns (an exclusive lock), `private` gives a
//! step that finds it in use a fresh, throwaway directory.
//!
//! A secret is a value from the host (an environment variable or a file),
//! shown to the commands as a read-only file or an environment variable,
//! and never written to a layer, a key, a log or a message.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// BuildKit's sharing modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// Used by concurrent steps at once.
    #[default]
    Shared,
    /// One step at a time; others wait.
    Locked,
    /// A step that finds it in use gets a fresh directory of its own.
    Private,
}

/// Where cache mounts live.
pub fn caches_dir(store_root: &Path) -> PathBuf {
    store_root.join(".strata/cache-mounts")
}

/// The directory name of cache `id`: its characters that are safe in a
/// file name, and a short digest so two ids never share one.
pub fn cache_dir_name(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    let d = crate::digest::Digest::of(id.as_bytes());
    format!("{safe}-{}", &d.hex()[..12])
}

/// A cache directory in use; its lock (if any) is released on drop, a
/// private fallback directory removed.
pub struct CacheMount {
    /// The host directory to mount.
    pub path: PathBuf,
    _lock: Option<File>,
    _private: Option<tempfile::TempDir>,
}

/// Takes cache `id` with `sharing`, creating it owned by `uid:gid` with
/// `mode` the first time.
pub fn take_cache(
    store_root: &Path,
    id: &str,
    sharing: Sharing,
    uid: u32,
    gid: u32,
    mode: u32,
) -> Result<CacheMount> {
    let dir = caches_dir(store_root);
    fs::create_dir_all(&dir).at(&dir)?;
    let path = dir.join(cache_dir_name(id));
    if !path.exists() {
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-cache-")
            .tempdir_in(&dir)
            .at(&dir)?;
        let made = tmp.path().join("d");
        fs::create_dir(&made).at(&made)?;
        prepare(&made, uid, gid, mode)?;
        // Another build may have made it first: theirs is as good.
        if fs::rename(&made, &path).is_err() && !path.is_dir() {
            return Err(Error::io(&path, std::io::Error::last_os_error()));
        }
    }
    let lock_path = dir.join(format!("{}.lock", cache_dir_name(id)));
    let lock = || -> Result<File> {
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&lock_path)
            .at(&lock_path)
    };
    match sharing {
        Sharing::Shared => Ok(CacheMount {
            path,
            _lock: None,
            _private: None,
        }),
        Sharing::Locked => {
            let f = lock()?;
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(Error::io(&lock_path, std::io::Error::last_os_error()));
            }
            Ok(CacheMount {
                path,
                _lock: Some(f),
                _private: None,
            })
        }
        Sharing::Private => {
            let f = lock()?;
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(CacheMount {
                    path,
                    _lock: Some(f),
                    _private: None,
                });
            }
            let tmp = tempfile::Builder::new()
                .prefix(".tmp-private-")
                .tempdir_in(&dir)
                .at(&dir)?;
            prepare(tmp.path(), uid, gid, mode)?;
            Ok(CacheMount {
                path: tmp.path().to_path_buf(),
                _lock: None,
                _private: Some(tmp),
            })
        }
    }
}

fn prepare(p: &Path, uid: u32, gid: u32, mode: u32) -> Result<()> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).at(p)?;
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL");
    if unsafe { libc::chown(c.as_ptr(), uid, gid) } != 0 {
        return Err(Error::io(p, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The cache mounts in the store: (directory name, bytes).
pub fn list_caches(store_root: &Path) -> Result<Vec<(String, u64)>> {
    let dir = caches_dir(store_root);
    let Ok(rd) = fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.at(&dir)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".lock") || !e.path().is_dir() {
            continue;
        }
        out.push((name, du(&e.path())));
    }
    out.sort();
    Ok(out)
}

fn du(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// Removes cache `id` (every cache when `None`); returns how many went.
/// A locked cache in use is waited for.
pub fn clear_caches(store_root: &Path, id: Option<&str>) -> Result<usize> {
    let dir = caches_dir(store_root);
    let names: Vec<String> = match id {
        Some(id) => vec![cache_dir_name(id)],
        None => list_caches(store_root)?
            .into_iter()
            .map(|(n, _)| n)
            .collect(),
    };
    let mut n = 0;
    for name in names {
        let p = dir.join(&name);
        if p.is_dir() {
            fs::remove_dir_all(&p).at(&p)?;
            let _ = fs::remove_file(dir.join(format!("{name}.lock")));
            n += 1;
        }
    }
    Ok(n)
}

/// Where a secret's value comes from.
#[derive(Clone, Debug)]
pub enum SecretSource {
    /// A host environment variable.
    Env(String),
    /// A host file.
    File(PathBuf),
}

/// Reads a secret's value; an error names the secret and its source,
/// never the value.
pub fn read_secret(id: &str, source: &SecretSource) -> Result<Vec<u8>> {
    match source {
        SecretSource::Env(var) => std::env::var_os(var)
            .map(|v| v.into_encoded_bytes())
            .ok_or_else(|| {
                Error::bad_input(
                    format!("secret {id}"),
                    format!("the environment variable {var} is not set; set it before the build"),
                )
            }),
        SecretSource::File(p) => fs::read(p).map_err(|e| {
            Error::bad_input(
                format!("secret {id}"),
                format!("cannot read {}: {e}", p.display()),
            )
        }),
    }
}

/// Writes secret values as read-only files in `dir` for bind mounting.
pub fn secret_file(dir: &Path, n: usize, value: &[u8]) -> Result<PathBuf> {
    let p = dir.join(format!("secret-{n}"));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&p)
        .at(&p)?;
    std::io::Write::write_all(&mut f, value).at(&p)?;
    Ok(p)
}

/// Replaces every secret value in `line` with `***`.
pub fn redact(line: &str, secrets: &[Vec<u8>]) -> String {
    let mut out = line.to_string();
    for s in secrets {
        if let Ok(s) = std::str::from_utf8(s) {
            let s = s.trim_end_matches('\n');
            if !s.is_empty() {
                out = out.replace(s, "***");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_names_are_safe_and_distinct() {
        let a = cache_dir_name("cargo/registry");
        let b = cache_dir_name("cargo_registry");
        assert!(a.starts_with("cargo_registry-") && b.starts_with("cargo_registry-"));
        assert_ne!(a, b);
        assert!(!cache_dir_name("../../etc").contains('/'));
    }

    #[test]
    fn secrets_are_redacted() {
        let s = vec![b"hunter2\n".to_vec()];
        assert_eq!(redact("token=hunter2 ok", &s), "token=*** ok");
        assert_eq!(redact("nothing", &s), "nothing");
    }

    #[test]
    fn private_caches_in_use_get_a_directory_of_their_own() {
        let root = tempfile::tempdir().unwrap();
        let a = take_cache(root.path(), "x", Sharing::Private, 0, 0, 0o755).unwrap();
        let b = take_cache(root.path(), "x", Sharing::Private, 0, 0, 0o755).unwrap();
        assert_ne!(a.path, b.path);
        drop(a);
        let c = take_cache(root.path(), "x", Sharing::Private, 0, 0, 0o755).unwrap();
        assert_eq!(c.path, caches_dir(root.path()).join(cache_dir_name("x")));
        assert_eq!(list_caches(root.path()).unwrap().len(), 1);
    }
}
