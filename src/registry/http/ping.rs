//! Ping (`GET /v2/`), once per host: which scheme the registry speaks
//! (plain HTTP only for loopback hosts or hosts listed as insecure) and
//! which challenge it sends.

use std::collections::BTreeSet;

use reqwest::StatusCode;

use super::auth::{Challenge, parse_challenge};
use super::{Client, HostState};
use crate::error::{Error, Result};

impl Client {
    /// Pings `host` once, learning its scheme and challenge. Returns the
    /// base URL (`https://host`).
    pub fn base(&self, host: &str) -> Result<String> {
        if let Some(s) = self.hosts.lock().expect("lock").get(host) {
            return Ok(s.base.clone());
        }
        let plain = self.allow_http(host);
        let schemes: &[&str] = if plain {
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut first_err = None;
        for (i, scheme) in schemes.iter().enumerate() {
            let base = format!("{scheme}://{host}");
            // Probing HTTPS on a host that may speak plain HTTP: one try,
            // then fall back; retries are for the scheme that is left.
            let policy = if i + 1 < schemes.len() {
                self.policy.with_attempts(1)
            } else {
                self.policy
            };
            let resp = match policy.send(host, "ping", || Ok(self.http.get(format!("{base}/v2/"))))
            {
                Ok(resp) => resp,
                Err(e) => {
                    first_err.get_or_insert(e);
                    continue;
                }
            };
            let challenge = match resp.status() {
                s if s.is_success() => Challenge::None,
                StatusCode::UNAUTHORIZED => {
                    parse_challenge(resp.headers()).unwrap_or(Challenge::Basic)
                }
                // A TLS registry answering our plain-HTTP fallback: the
                // HTTPS failure is the real story.
                StatusCode::BAD_REQUEST if first_err.is_some() => break,
                s => {
                    return Err(Error::registry(
                        host.to_string(),
                        format!("ping (GET {base}/v2/)"),
                        s.as_u16(),
                        "not an OCI distribution registry?",
                    ));
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
        let e = first_err.expect("at least one scheme tried");
        Err(match e {
            Error::Connect { host, detail } if !plain => Error::Connect {
                host,
                detail: format!(
                    "{detail} (plain HTTP is only tried for loopback hosts and hosts listed as insecure)"
                ),
            },
            e => e,
        })
    }
}
