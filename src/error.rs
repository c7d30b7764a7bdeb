//! Typed errors of the strata library. Every variant names the file, key,
//! digest or reference it is about and, where it helps, what to do next.

use std::path::{Path, PathBuf};

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named file or directory.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A source path given by the user does not exist.
    #[error("source path {} does not exist; check the path given to --add", path.display())]
    MissingSource {
        /// The missing path.
        path: PathBuf,
    },

    /// A digest string is malformed.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest {
        /// The string as given.
        input: String,
        /// Why it was refused.
        reason: String,
    },

    /// Content did not hash to the digest it is addressed by.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being read (blob, layer, file).
        what: String,
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },

    /// Content had a different size than its descriptor says.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was being read.
        what: String,
        /// The size it should have.
        expected: u64,
        /// The size it has.
        actual: u64,
    },

    /// A file changed while strata was reading it into a layer.
    #[error("{} changed while it was being read ({detail}); retry once it is no longer being written", path.display())]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// What changed.
        detail: String,
    },

    /// A reference, tag or transport string could not be parsed.
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference {
        /// The string as given.
        input: String,
        /// Why it was refused.
        reason: String,
    },

    /// A tar archive contains a path that would escape its root.
    #[error("unsafe path {entry:?} in {}: {reason}", archive.display())]
    UnsafePath {
        /// The archive or layer.
        archive: PathBuf,
        /// The offending entry name.
        entry: String,
        /// Why it is unsafe.
        reason: String,
    },

    /// Something named was not found.
    #[error("{what} not found in {location}{hint}")]
    NotFound {
        /// What was looked for.
        what: String,
        /// Where it was looked for.
        location: String,
        /// A hint such as the list of available names (may be empty).
        hint: String,
    },

    /// Malformed content: a manifest, config, index or archive that does not
    /// follow its format.
    #[error("invalid {what} in {location}: {detail}")]
    Invalid {
        /// What kind of document.
        what: String,
        /// Where it came from.
        location: String,
        /// What is wrong.
        detail: String,
    },

    /// A user-supplied value (flag, config key) is not acceptable.
    #[error("invalid {key}: {detail}")]
    BadInput {
        /// The flag or key.
        key: String,
        /// What is wrong and what to do.
        detail: String,
    },

    /// A registry answered with an error.
    #[error("registry {host}: {what} failed with status {status}: {detail}")]
    Registry {
        /// The registry host.
        host: String,
        /// The operation.
        what: String,
        /// HTTP status.
        status: u16,
        /// The error codes of the registry's envelope (empty when it sent
        /// none).
        codes: Vec<crate::registry::http::envelope::ErrorCode>,
        /// The registry's error codes and messages.
        detail: String,
    },

    /// A registry could not be reached.
    #[error("cannot reach registry {host}: {detail}")]
    Connect {
        /// The registry host.
        host: String,
        /// What failed.
        detail: String,
    },

    /// A registry refused our credentials (or we had none).
    #[error("registry {host} denied {what}: {detail}")]
    Unauthorized {
        /// The registry host.
        host: String,
        /// The operation.
        what: String,
        /// Where credentials were looked for and what to do.
        detail: String,
    },

    /// strata was asked to stop (SIGINT or SIGTERM) and cleaned up.
    #[error("interrupted: {what} was stopped and its work removed; nothing was stored or tagged")]
    Interrupted {
        /// What was running.
        what: String,
    },

    /// A feature that this build of strata does not support.
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(
        what: impl Into<String>,
        location: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            what: what.into(),
            location: location.into(),
            detail: detail.into(),
        }
    }

    /// [`Error::Registry`] for a failure strata found itself (no error
    /// envelope, so no codes).
    pub fn registry(
        host: impl Into<String>,
        what: impl Into<String>,
        status: u16,
        detail: impl Into<String>,
    ) -> Self {
        Error::Registry {
            host: host.into(),
            what: what.into(),
            status,
            codes: Vec::new(),
            detail: detail.into(),
        }
    }

    /// Shorthand for [`Error::BadInput`].
    pub fn bad_input(key: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::BadInput {
            key: key.into(),
            detail: detail.into(),
        }
    }

    /// Converts an I/O error raised inside a streaming pipeline back into a
    /// typed error when one was smuggled through it (see [`Error::into_io`]).
    pub fn from_pipeline(path: impl AsRef<Path>, e: std::io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let inner = e.into_inner().expect("checked above");
            return *inner.downcast::<Error>().expect("checked above");
        }
        Error::io(path, e)
    }

    /// Wraps this error in an `io::Error` so it can travel through `Read`
    /// and `Write` implementations; [`Error::from_pipeline`] unwraps it.
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }
}

/// Extension to attach a path to `io::Result`s.
pub trait IoContext<T> {
    /// Attaches `path` to the error.
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::from_pipeline(path, e))
    }
}
