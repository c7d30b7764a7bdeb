//! Authorization: challenges, Basic credentials, Bearer tokens, and the one
//! rule of where credentials may go.
//!
//! Every request strata sends to a registry passes through [`authorize`],
//! which attaches the `Authorization` header only when the request's URL
//! has the registry's own origin (scheme, host and port). An upload
//! `Location`, a redirect, a pagination `Link` or any other URL a server
//! hands back that points elsewhere (a storage backend, another host) is
//! sent no credentials. Token realms are the one other place credentials
//! go, and only over HTTPS (or to a loopback or listed-insecure realm).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};

use super::envelope;
use super::{Client, allow_http};
use crate::error::{Error, Result};
use crate::registry::credentials::{self, Credential, Secret};

/// What a registry's `WWW-Authenticate` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// True when `url` has the origin of the registry at `base`.
pub fn same_origin(url: &Url, base: &str) -> bool {
    Url::parse(base).is_ok_and(|b| b.origin() == url.origin())
}

/// Sets or clears `Authorization` in `headers` for a request to `url` of
/// the registry at `base`: `auth` only goes to the registry's own origin.
pub fn authorize(headers: &mut HeaderMap, url: &Url, base: &str, auth: Option<&Secret>) {
    headers.remove(AUTHORIZATION);
    if let Some(a) = auth
        && same_origin(url, base)
        && let Ok(mut v) = HeaderValue::from_str(a.expose())
    {
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
}

pub(super) fn parse_challenge(headers: &HeaderMap) -> Option<Challenge> {
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(v) = value.to_str() else { continue };
        let Ok(challenges) = http_auth::parse_challenges(v) else {
            continue;
        };
        for c in challenges {
            if c.scheme.eq_ignore_ascii_case("bearer") {
                let param = |k: &str| {
                    c.params
                        .iter()
                        .find(|(name, _)| name.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.to_unescaped())
                };
                if let Some(realm) = param("realm") {
                    return Some(Challenge::Bearer {
                        realm,
                        service: param("service"),
                    });
                }
            } else if c.scheme.eq_ignore_ascii_case("basic") {
                return Some(Challenge::Basic);
            }
        }
    }
    None
}

impl Client {
    pub(super) fn credential(&self, host: &str, auth_key: &str) -> Result<Option<Credential>> {
        if let Some(c) = self
            .opts
            .credentials
            .get(host)
            .or_else(|| self.opts.credentials.get(auth_key))
        {
            return Ok(Some(c.clone()));
        }
        credentials::lookup(auth_key)
    }

    /// After a 401 to a request sent with `rejected`: learns the new
    /// challenge and forgets that token, unless a parallel transfer has
    /// already replaced it (then its replacement is used, not a third one).
    pub(super) fn refresh(
        &self,
        host: &str,
        auth_key: &str,
        headers: &HeaderMap,
        rejected: Option<&Secret>,
    ) -> Result<()> {
        {
            let mut hosts = self.hosts.lock().expect("lock");
            let st = hosts.get_mut(host).expect("pinged");
            if let Some(c) = parse_challenge(headers) {
                st.challenge = c;
            }
            let same = match (&st.token, rejected) {
                (Some((t, _, _)), Some(r)) => t.expose() == r.expose(),
                (Some(_), None) => false,
                (None, _) => true,
            };
            if same {
                st.token = None;
            }
        }
        // Ask again: a fresh token for all scopes, or credentials when the
        // first try went anonymous.
        self.authorization(host, auth_key).map(|_| ())
    }

    /// The error for a final 401 or 403, saying what to do.
    pub(super) fn denied(
        &self,
        host: &str,
        auth_key: &str,
        what: &str,
        status: StatusCode,
    ) -> Error {
        let has_cred = matches!(self.credential(host, auth_key), Ok(Some(_)));
        let looked: Vec<String> = credentials::auth_files()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        Error::Unauthorized {
            host: host.to_string(),
            what: what.to_string(),
            detail: if has_cred {
                format!(
                    "the credentials found for {auth_key} were refused (status {}); run `strata login {auth_key}` with an account that may do this",
                    status.as_u16()
                )
            } else {
                format!(
                    "no credentials for {auth_key} (looked in {}); run `strata login {auth_key}`",
                    looked.join(", ")
                )
            },
        }
    }

    /// The cached token of `host` when it is fresh and covers every scope
    /// asked for so far, with the challenge and those scopes.
    fn cached_token(&self, host: &str) -> (Challenge, BTreeSet<String>, Option<Secret>) {
        let hosts = self.hosts.lock().expect("lock");
        let st = hosts.get(host).expect("pinged");
        let cached = st
            .token
            .as_ref()
            .filter(|(_, exp, sc)| *exp > Instant::now() && st.scopes.is_subset(sc))
            .map(|(t, _, _)| t.clone());
        (st.challenge.clone(), st.scopes.clone(), cached)
    }

    /// The Authorization value for `host`, fetching a token when needed:
    /// once, however many transfers ask at the same time.
    pub(super) fn authorization(&self, host: &str, auth_key: &str) -> Result<Option<Secret>> {
        let (challenge, _, cached) = self.cached_token(host);
        match challenge {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(self
                .credential(host, auth_key)?
                .and_then(|c| c.basic_header())
                .map(Secret::new)),
            Challenge::Bearer { realm, service } => {
                if let Some(t) = cached {
                    return Ok(Some(t));
                }
                let _one_fetch = self.token_fetch.lock().expect("lock");
                // Another transfer may have fetched it while this one
                // waited (and may have asked for more scopes meanwhile).
                let (_, scopes, cached) = self.cached_token(host);
                if let Some(t) = cached {
                    return Ok(Some(t));
                }
                let (token, ttl) =
                    self.fetch_token(host, auth_key, &realm, service.as_deref(), &scopes)?;
                let value = Secret::new(format!("Bearer {}", token.expose()));
                let mut hosts = self.hosts.lock().expect("lock");
                let st = hosts.get_mut(host).expect("pinged");
                // Renew a little before the service says it expires.
                let ttl = ttl
                    .saturating_sub(Duration::from_secs(10))
                    .max(Duration::from_secs(1));
                st.token = Some((value.clone(), Instant::now() + ttl, scopes));
                Ok(Some(value))
            }
        }
    }

    fn fetch_token(
        &self,
        host: &str,
        auth_key: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &BTreeSet<String>,
    ) -> Result<(Secret, Duration)> {
        let url = Url::parse(realm)
            .map_err(|e| Error::invalid("token realm", host, format!("{realm:?}: {e}")))?;
        let realm_host = url.host_str().unwrap_or_default().to_string();
        let realm_hostport = match url.port() {
            Some(p) => format!("{realm_host}:{p}"),
            None => realm_host.clone(),
        };
        let cred = self.credential(host, auth_key)?;
        // Credentials go to the realm only over HTTPS, or to a loopback or
        // listed-insecure realm.
        if url.scheme() != "https"
            && cred.is_some()
            && !allow_http(&self.opts.insecure, &realm_hostport)
        {
            return Err(Error::Unauthorized {
                host: host.to_string(),
                what: "token request".into(),
                detail: format!(
                    "the token realm {realm} is plain HTTP; refusing to send credentials there"
                ),
            });
        }
        // The realm is its own origin: the credentials are for it. Token
        // requests follow no redirect (the client follows none), so they
        // cannot be carried on.
        let resp = self.policy.send(&realm_hostport, "token request", || {
            Ok(match &cred {
                Some(Credential::IdentityToken(t)) => {
                    let mut form = vec![
                        ("grant_type", "refresh_token".to_string()),
                        ("refresh_token", t.expose().to_string()),
                        ("client_id", "strata".to_string()),
                    ];
                    if let Some(s) = service {
                        form.push(("service", s.to_string()));
                    }
                    if !scopes.is_empty() {
                        let all: Vec<&str> = scopes.iter().map(String::as_str).collect();
                        form.push(("scope", all.join(" ")));
                    }
                    self.http.post(url.clone()).form(&form)
                }
                other => {
                    let mut u = url.clone();
                    {
                        let mut q = u.query_pairs_mut();
                        if let Some(s) = service {
                            q.append_pair("service", s);
                        }
                        for s in scopes {
                            q.append_pair("scope", s);
                        }
                    }
                    let mut r = self.http.get(u);
                    if let Some(h) = other.as_ref().and_then(|c| c.basic_header()) {
                        r = r.header(AUTHORIZATION, h);
                    }
                    r
                }
            })
        })?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                host: host.to_string(),
                what: "token request".into(),
                detail: format!(
                    "the token service at {realm_host} refused {} (status {}); run `strata login {auth_key}`",
                    if cred.is_some() {
                        "the stored credentials"
                    } else {
                        "anonymous access"
                    },
                    resp.status().as_u16()
                ),
            });
        }
        let resp = envelope::check(resp, host, "token request")?;
        let body: serde_json::Value =
            serde_json::from_reader(std::io::Read::take(resp, 1 << 20))
                .map_err(|e| Error::invalid("token response", &realm_host, e.to_string()))?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| {
                Error::invalid(
                    "token response",
                    &realm_host,
                    "no token or access_token field",
                )
            })?;
        let ttl = body
            .get("expires_in")
            .and_then(|v| v.as_u64())
            .unwrap_or(60);
        Ok((Secret::new(token), Duration::from_secs(ttl.max(1))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_only_go_to_the_registrys_own_origin() {
        let secret = Secret::new("Basic dXNlcjpwYXNz");
        let base = "http://127.0.0.1:5000";
        let with = |url: &str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, "Bearer stale".parse().unwrap());
            authorize(&mut h, &Url::parse(url).unwrap(), base, Some(&secret));
            h.get(AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let yes = Some("Basic dXNlcjpwYXNz".to_string());
        assert_eq!(with("http://127.0.0.1:5000/v2/a/blobs/uploads/x"), yes);
        for other in [
            "http://127.0.0.2:5000/v2/a/blobs/uploads/x",
            "http://127.0.0.1:5001/v2/",
            "https://127.0.0.1:5000/v2/",
            "http://localhost:5000/v2/",
            "http://storage.example.com/blob",
        ] {
            assert_eq!(with(other), None, "{other} must get no credentials");
        }
        // The default port is the same origin, written or not.
        let mut h = HeaderMap::new();
        let u = Url::parse("https://r.example.com:443/v2/").unwrap();
        authorize(&mut h, &u, "https://r.example.com", Some(&secret));
        assert!(h.contains_key(AUTHORIZATION));
    }

    #[test]
    fn challenges() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_challenge(&h), None);
        h.insert(
            WWW_AUTHENTICATE,
            r#"Bearer realm="https://auth.example.com/token",service="reg""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            parse_challenge(&h),
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("reg".into())
            })
        );
        h.insert(WWW_AUTHENTICATE, r#"Basic realm="x""#.parse().unwrap());
        assert_eq!(parse_challenge(&h), Some(Challenge::Basic));
    }
}
