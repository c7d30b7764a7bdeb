//! The distribution API's error envelope (`{"errors":[{code, message,
//! detail}]}`), decoded into typed codes so callers decide on codes, not
//! on message text.

use reqwest::blocking::Response;

use crate::error::{Error, Result};

/// The most bytes of an error body strata reads.
pub const MAX_ERROR_BODY: u64 = 64 * 1024;

/// An error code of the OCI distribution spec (and Docker's additions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// BLOB_UNKNOWN
    BlobUnknown,
    /// BLOB_UPLOAD_INVALID
    BlobUploadInvalid,
    /// BLOB_UPLOAD_UNKNOWN
    BlobUploadUnknown,
    /// DIGEST_INVALID
    DigestInvalid,
    /// MANIFEST_BLOB_UNKNOWN
    ManifestBlobUnknown,
    /// MANIFEST_INVALID
    ManifestInvalid,
    /// MANIFEST_UNKNOWN
    ManifestUnknown,
    /// NAME_INVALID
    NameInvalid,
    /// NAME_UNKNOWN
    NameUnknown,
    /// SIZE_INVALID
    SizeInvalid,
    /// UNAUTHORIZED
    Unauthorized,
    /// DENIED
    Denied,
    /// UNSUPPORTED
    Unsupported,
    /// TOOMANYREQUESTS
    TooManyRequests,
    /// Any other code, as sent.
    Other(String),
}

impl ErrorCode {
    /// Parses a code as the registry spells it.
    pub fn parse(s: &str) -> Self {
        use ErrorCode::*;
        match s {
            "BLOB_UNKNOWN" => BlobUnknown,
            "BLOB_UPLOAD_INVALID" => BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => BlobUploadUnknown,
            "DIGEST_INVALID" => DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => ManifestBlobUnknown,
            "MANIFEST_INVALID" => ManifestInvalid,
            "MANIFEST_UNKNOWN" => ManifestUnknown,
            "NAME_INVALID" => NameInvalid,
            "NAME_UNKNOWN" => NameUnknown,
            "SIZE_INVALID" => SizeInvalid,
            "UNAUTHORIZED" => Unauthorized,
            "DENIED" => Denied,
            "UNSUPPORTED" => Unsupported,
            "TOOMANYREQUESTS" => TooManyRequests,
            other => Other(other.to_string()),
        }
    }
}

/// A decoded error body: the codes, and a human summary (codes with their
/// messages, or the start of a body that is no envelope).
pub fn decode(body: &str) -> (Vec<ErrorCode>, String) {
    let v = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) if v.get("errors").is_some_and(|e| e.is_array()) => v,
        _ => {
            let start: String = body.chars().take(300).collect();
            return (Vec::new(), start.trim().to_string());
        }
    };
    let mut codes = Vec::new();
    let mut parts = Vec::new();
    for e in v["errors"].as_array().expect("checked") {
        let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("UNKNOWN");
        let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
        codes.push(ErrorCode::parse(code));
        parts.push(match e.get("detail").filter(|d| !d.is_null()) {
            Some(d) => format!("{code}: {msg} ({d})"),
            None => format!("{code}: {msg}"),
        });
    }
    (codes, parts.join("; "))
}

/// The [`Error::Registry`] for a failed answer with `body`.
pub fn registry_error(host: &str, what: &str, status: u16, body: &str) -> Error {
    let (codes, detail) = decode(body);
    Error::Registry {
        host: host.to_string(),
        what: what.to_string(),
        status,
        codes,
        detail,
    }
}

/// Turns a non-success response into [`Error::Registry`], decoding the
/// registry's error envelope (at most 64 KiB of it). Success passes through.
pub fn check(resp: Response, host: &str, what: &str) -> Result<Response> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let mut body = String::new();
    let _ =
        std::io::Read::read_to_string(&mut std::io::Read::take(resp, MAX_ERROR_BODY), &mut body);
    Err(registry_error(host, what, status, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelopes_are_decoded_into_codes() {
        let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}},{"code":"X_NEW","message":"m"}]}"#;
        let (codes, detail) = decode(body);
        assert_eq!(
            codes,
            [ErrorCode::ManifestUnknown, ErrorCode::Other("X_NEW".into())]
        );
        assert_eq!(
            detail,
            r#"MANIFEST_UNKNOWN: manifest unknown ({"Tag":"x"}); X_NEW: m"#
        );
        assert_eq!(decode("plain text"), (Vec::new(), "plain text".to_string()));
        assert_eq!(decode(r#"{"errors":"no"}"#).0, Vec::new());
    }
}
