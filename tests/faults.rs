//! Registry faults the real registry cannot produce, against the in-process
//! fake: error bursts, a dropped connection, wrong bytes, a 202 to a mount,
//! a cross-host redirect, an endless manifest, a 416 on a chunk.

mod common;

use common::fake::{Fake, Faults, r, setup};
use common::{Env, files_under};
use serde_json::Value;

#[test]
fn bursts_of_500_and_429_are_retried() {
    let fake = Fake::start(Faults {
        manifest_errors: vec![500, 503, 429],
        ..Default::default()
    });
    let (_env, digest, _) = setup(&fake);
    let pulled = Env::new();
    assert_eq!(
        pulled.ok(&["copy", &r(&fake, "src/img:1"), "x:1"]).trim(),
        digest
    );
    let manifest_gets = fake
        .seen()
        .iter()
        .filter(|s| s.path.contains("/manifests/"))
        .count();
    assert_eq!(manifest_gets, 4, "three failures, then success");
}

#[test]
fn endless_errors_give_up_with_the_registry_named() {
    let fake = Fake::start(Faults {
        manifest_errors: vec![500; 50],
        ..Default::default()
    });
    let (_env, _, _) = setup(&fake);
    let pulled = Env::new();
    let err = pulled.fails(&["copy", &r(&fake, "src/img:1"), "x:1"]);
    assert!(err.contains(&fake.host()) && err.contains("500"), "{err}");
    assert_eq!(
        fake.seen()
            .iter()
            .filter(|s| s.path.contains("/manifests/"))
            .count(),
        5,
        "bounded attempts"
    );
}

#[test]
fn a_connection_dropped_mid_blob_resumes_with_a_range_request() {
    let fake = Fake::start(Faults::default());
    let (_env, digest, layer) = setup(&fake);
    fake.state.lock().unwrap().faults.drop_blob_once = Some(layer.clone());
    let pulled = Env::new();
    assert_eq!(
        pulled.ok(&["copy", &r(&fake, "src/img:1"), "x:1"]).trim(),
        digest
    );
    pulled.ok(&["validate", "x:1"]);
    let ranged: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path.ends_with(&layer) && s.range.is_some())
        .collect();
    assert_eq!(ranged.len(), 1, "one resume");
    assert_ne!(ranged[0].range.as_deref(), Some("bytes=0-"));
}

#[test]
fn wrong_bytes_for_a_digest_are_refused_and_nothing_is_stored() {
    let fake = Fake::start(Faults::default());
    let (_env, _, layer) = setup(&fake);
    let real_len = fake.state.lock().unwrap().blobs[&layer].len();
    fake.state.lock().unwrap().faults.wrong_bytes = Some((layer.clone(), vec![7u8; real_len]));
    let pulled = Env::new();
    pulled.ok(&["store", "path"]);
    let before = files_under(&pulled.store());
    let err = pulled.fails(&["copy", &r(&fake, "src/img:1"), "x:1"]);
    assert!(
        err.contains("digest mismatch") && err.contains(&layer),
        "{err}"
    );
    // Only the note of where the config (read whole and verified) lives
    // may be new; the layer that failed its digest is not noted.
    let after: Vec<_> = files_under(&pulled.store())
        .into_iter()
        .filter(|f| {
            !f.starts_with(pulled.store().join(".strata/blob-locations"))
                || f.ends_with(layer.trim_start_matches("sha256:"))
        })
        .collect();
    assert_eq!(after, before, "no blob, no temp file, no tag");
}

#[test]
fn a_202_answer_to_a_mount_falls_back_to_uploading() {
    mount_falls_back_to_uploading(Faults {
        mount_202: true,
        ..Default::default()
    });
}

/// A copy between two repositories of a fake with `faults` tries to mount
/// the layer, is refused one way or another, and uploads it instead.
fn mount_falls_back_to_uploading(faults: Faults) {
    let fake = Fake::start(faults);
    let (env, digest, layer) = setup(&fake);
    let v: Value = serde_json::from_str(&env.ok(&[
        "copy",
        "--json",
        &r(&fake, "src/img:1"),
        &r(&fake, "dst/img:1"),
    ]))
    .unwrap();
    assert_eq!(v["digest"], digest.as_str());
    assert_eq!(v["push"]["mounted"], 0);
    assert_eq!(v["push"]["pushed"], 2);
    let seen = fake.seen();
    let hex = layer.trim_start_matches("sha256:");
    let mount = seen
        .iter()
        .position(|s| s.method == "POST" && s.query.contains("mount=") && s.query.contains(hex))
        .expect("a mount was tried");
    // Then the layer's bytes went, whole, to the destination (the fake's
    // blob map already held them from setup, so that proves nothing).
    let len = fake.state.lock().unwrap().blobs[&layer].len();
    assert!(
        seen[mount..].iter().any(|s| s.method == "PUT"
            && s.path.contains("/dst/img/blobs/uploads/")
            && s.query.contains(hex)
            && s.body_len == len),
        "then the layer was uploaded: {seen:?}"
    );
}

#[test]
fn credentials_never_follow_a_redirect_to_another_host() {
    let other = Fake::start(Faults::default());
    let auth = format!("Basic {}", common::basic_b64("carol", "pw"));
    let fake = Fake::start(Faults {
        require_auth: Some(auth.clone()),
        ..Default::default()
    });
    let (env, digest, _layer) = setup(&fake);
    let blobs = fake.state.lock().unwrap().blobs.clone();
    other.state.lock().unwrap().blobs.extend(blobs);
    // "localhost" is another host than "127.0.0.1" (and another port, too).
    fake.state.lock().unwrap().faults.redirect_blobs_to =
        Some(format!("http://localhost:{}", other.addr.port()));
    let authfile = env.path("auth.json");
    common::write_auth_file(&authfile, &fake.host(), "carol", "pw");
    let pulled = Env::new();
    let out = pulled
        .cmd(&["copy", &r(&fake, "src/img:1"), "x:1"])
        .env("REGISTRY_AUTH_FILE", &authfile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);
    let at_other = other.seen();
    assert!(!at_other.is_empty(), "the blob came from the other host");
    assert!(
        at_other.iter().all(|s| s.authorization.is_none()),
        "credentials leaked: {at_other:?}"
    );
    assert!(
        fake.seen()
            .iter()
            .any(|s| s.authorization.as_deref() == Some(auth.as_str()))
    );
}

#[test]
fn an_endless_manifest_body_is_cut_at_4_mib() {
    let fake = Fake::start(Faults {
        endless_manifest: true,
        ..Default::default()
    });
    let env = Env::new();
    let err = env.fails(&["inspect", &r(&fake, "src/img:1")]);
    assert!(err.contains("limit") && err.contains("4194304"), "{err}");
}

#[test]
fn a_416_on_a_chunk_resumes_from_the_upload_status() {
    let fake = Fake::start(Faults {
        patch_416_once: true,
        ..Default::default()
    });
    let env = Env::new();
    let digest = env.busybox_image("img:1", "hi");
    let v: Value = serde_json::from_str(&env.ok(&[
        "copy",
        "--json",
        "--chunk-size",
        "300000",
        "img:1",
        &r(&fake, "c/img:1"),
    ]))
    .unwrap();
    assert_eq!(v["digest"], digest.as_str());
    let seen = fake.seen();
    assert!(
        seen.iter()
            .any(|s| s.method == "GET" && s.path.contains("/blobs/uploads/")),
        "upload status asked"
    );
    assert!(fake.state.lock().unwrap().sent_416);
    // The fake checked the digest of the assembled upload on PUT.
    let pulled = Env::new();
    assert_eq!(
        pulled.ok(&["copy", &r(&fake, "c/img:1"), "x:1"]).trim(),
        digest
    );
    pulled.ok(&["validate", "x:1"]);
}

#[test]
fn a_content_type_that_disagrees_with_the_media_type_is_refused() {
    let fake = Fake::start(Faults {
        manifest_content_type: Some("application/vnd.oci.image.index.v1+json".into()),
        ..Default::default()
    });
    let (_env, _, _) = setup(&fake);
    let err = Env::new().fails(&["inspect", &r(&fake, "src/img:1")]);
    assert!(
        err.contains("Content-Type") && err.contains("disagrees"),
        "{err}"
    );
}

#[test]
fn the_library_reports_progress_for_each_blob() {
    use std::sync::{Arc, Mutex};
    use strata::registry::push::{BlobOutcome, Progress, push};
    let fake = Fake::start(Faults::default());
    let env = Env::new();
    env.busybox_image("img:1", "hi");
    let store = strata::store::Store::open(env.store()).unwrap();
    let ctx = strata::transport::Context::new(store);
    let image =
        strata::transport::open(&strata::transport::ImageRef::parse("img:1").unwrap(), &ctx)
            .unwrap();
    let events: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = Arc::clone(&events);
    let client = strata::registry::Client::new(Default::default()).unwrap();
    let target = strata::registry::RegistryRef::parse(&format!("{}/p/img:1", fake.host())).unwrap();
    let report = push(
        &client,
        image.as_ref(),
        &target,
        &["extra".into()],
        &[],
        Some(Arc::new(move |p: &Progress| {
            sink.lock().unwrap().push(p.clone())
        })),
    )
    .unwrap();
    assert_eq!(report.pushed, 2);
    assert_eq!(report.tags, ["1", "extra"]);
    let events = events.lock().unwrap();
    let starts = events
        .iter()
        .filter(|e| matches!(e, Progress::Start { .. }))
        .count();
    let done = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Progress::Done {
                    outcome: BlobOutcome::Pushed,
                    ..
                }
            )
        })
        .count();
    let last_bytes = events
        .iter()
        .filter_map(|e| match e {
            Progress::Bytes { sent, .. } => Some(*sent),
            _ => None,
        })
        .max()
        .unwrap();
    assert_eq!((starts, done), (2, 2));
    assert!(last_bytes > 900_000, "byte progress reported: {last_bytes}");
    assert!(
        fake.state
            .lock()
            .unwrap()
            .manifests
            .contains_key("p/img:extra")
    );
}

#[test]
fn chunks_are_never_smaller_than_the_registry_minimum() {
    let fake = Fake::start(Faults {
        chunk_min: Some(400_000),
        ..Default::default()
    });
    let env = Env::new();
    let digest = env.busybox_image("img:1", "hi");
    env.ok(&[
        "copy",
        "--chunk-size",
        "100000",
        "img:1",
        &r(&fake, "m/img:1"),
    ]);
    let patches: Vec<usize> = fake
        .seen()
        .iter()
        .filter(|s| s.method == "PATCH")
        .map(|s| s.body_len)
        .collect();
    assert!(patches.len() >= 2, "{patches:?}");
    let (last, rest) = patches.split_last().unwrap();
    assert!(rest.iter().all(|&n| n == 400_000), "{patches:?}");
    assert!(*last <= 400_000);
    assert_eq!(
        Env::new().ok(&["copy", &r(&fake, "m/img:1"), "x:1"]).trim(),
        digest
    );
}

#[test]
fn a_redirect_from_https_to_plain_http_is_refused() {
    let env = Env::new();
    let certs = env.path("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (ca, cert, key) = common::registry::make_certs(&certs);
    let plain = Fake::start(Faults::default());
    let fake = Fake::start_tls(Faults::default(), &cert, &key);
    let (_e, _, _) = setup(&fake);
    let blobs = fake.state.lock().unwrap().blobs.clone();
    plain.state.lock().unwrap().blobs.extend(blobs);
    // With the CA the TLS fake is trusted; then blob GETs redirect to http.
    let pulled = Env::new();
    let ok = pulled.ok(&[
        "inspect",
        "--ca-file",
        ca.to_str().unwrap(),
        &r(&fake, "src/img:1"),
    ]);
    assert!(ok.contains("Digest:"), "{ok}");
    fake.state.lock().unwrap().faults.redirect_blobs_to =
        Some(format!("http://127.0.0.1:{}", plain.addr.port()));
    let err = pulled.fails(&[
        "copy",
        "--ca-file",
        ca.to_str().unwrap(),
        &r(&fake, "src/img:1"),
        "x:1",
    ]);
    assert!(
        err.contains("refused redirect from https to plain http"),
        "{err}"
    );
    assert!(
        plain.seen().is_empty(),
        "nothing may reach the plain-HTTP host: {:?}",
        plain.seen()
    );
}

#[test]
fn a_registry_refusing_monolithic_uploads_gets_chunks() {
    let fake = Fake::start(Faults {
        refuse_monolithic: true,
        ..Default::default()
    });
    let env = Env::new();
    let digest = env.busybox_image("img:1", "hi");
    let v: Value =
        serde_json::from_str(&env.ok(&["copy", "--json", "img:1", &r(&fake, "big/img:1")]))
            .unwrap();
    assert_eq!(v["digest"], digest.as_str());
    let seen = fake.seen();
    assert!(
        seen.iter().any(|s| s.method == "PATCH"),
        "fell back to chunks"
    );
    assert_eq!(
        Env::new()
            .ok(&["copy", &r(&fake, "big/img:1"), "x:1"])
            .trim(),
        digest
    );
}

#[test]
fn a_push_interrupted_after_the_second_upload_resumes_and_never_tags_missing_content() {
    // Deterministic: the registry takes two blob uploads, then fails every
    // other one (as a push killed there would leave it).
    let fake = Fake::start(Faults {
        uploads_before_failing: Some(2),
        ..Default::default()
    });
    let env = Env::new();
    // Three layers and a config: four blobs.
    let mut from: Option<String> = None;
    for i in 0..3 {
        let dir = env.path(&format!("l{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), format!("layer {i}")).unwrap();
        let mut args = vec![
            "new".to_string(),
            "--add".into(),
            format!("{}:/l{i}", dir.display()),
            "--tag".into(),
            "big:1".into(),
        ];
        if let Some(f) = &from {
            args.extend(["--from".into(), f.clone()]);
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        env.ok(&a);
        from = Some("big:1".into());
    }
    let target = r(&fake, "resume/big:1");
    let err = env.fails(&["copy", "--jobs", "1", "big:1", &target]);
    assert!(err.contains(&fake.host()) && err.contains("500"), "{err}");
    assert_eq!(fake.state.lock().unwrap().uploads_done, 2);
    assert!(
        !fake
            .seen()
            .iter()
            .any(|s| s.method == "PUT" && s.path.contains("/manifests/")),
        "no manifest, so no tag, may point at missing content"
    );
    fake.state.lock().unwrap().faults.uploads_before_failing = None;
    let v: Value =
        serde_json::from_str(&env.ok(&["copy", "--json", "--jobs", "1", "big:1", &target]))
            .unwrap();
    assert_eq!(v["push"]["skipped"], 2, "{v}");
    assert_eq!(v["push"]["pushed"], 2, "{v}");
    let pulled = Env::new();
    pulled.ok(&["copy", &target, "x:1"]);
    pulled.ok(&["validate", "x:1"]);
}

/// README: a mount that fails (here 403 DENIED) is not fatal: the blob is
/// uploaded instead.
#[test]
fn a_mount_error_falls_back_to_uploading() {
    mount_falls_back_to_uploading(Faults {
        mount_error: Some(403),
        ..Default::default()
    });
}

/// README: the host is pinged once (`GET /v2/`), however many requests
/// follow — here a pull and a push of the same host in one copy.
#[test]
fn each_host_is_pinged_once() {
    let fake = Fake::start(Faults::default());
    let (env, _, _) = setup(&fake);
    env.ok(&["copy", &r(&fake, "src/img:1"), &r(&fake, "dst/img:1")]);
    let seen = fake.seen();
    assert!(seen.len() > 5, "{seen:?}");
    assert_eq!(
        seen.iter().filter(|s| s.path == "/v2/").count(),
        1,
        "{seen:?}"
    );
}

/// README: 408 is retried like 429 and 5xx, and `Retry-After` is honoured
/// (the policy's own first backoff is 200 ms; the registry asks for 1 s).
#[test]
fn a_408_is_retried_and_retry_after_is_honoured() {
    let fake = Fake::start(Faults {
        manifest_errors: vec![408, 429],
        retry_after: Some("1".into()),
        ..Default::default()
    });
    let (_env, digest, _) = setup(&fake);
    let pulled = Env::new();
    assert_eq!(
        pulled.ok(&["copy", &r(&fake, "src/img:1"), "x:1"]).trim(),
        digest
    );
    let gets: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path.contains("/manifests/"))
        .collect();
    assert_eq!(gets.len(), 3, "408, 429, then the manifest");
    for pair in gets.windows(2) {
        let waited = pair[1].at - pair[0].at;
        assert!(
            waited >= std::time::Duration::from_secs(1),
            "Retry-After: 1 was not honoured: {waited:?}"
        );
    }
}

/// An IPv4 address of this machine that is not loopback.
fn outside_ip() -> String {
    let out = common::run(std::process::Command::new("hostname").arg("-I"));
    out.split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .expect("a non-loopback IPv4 address (hostname -I)")
        .to_string()
}

/// README: plain HTTP only for loopback hosts and those given with
/// `--insecure-registry` or `STRATA_INSECURE_REGISTRIES`.
#[test]
fn plain_http_to_a_non_loopback_host_needs_insecure_registry() {
    let fake = Fake::start_on(Faults::default(), &outside_ip());
    let (_env, digest, _) = setup(&fake);
    let env = Env::new();
    let src = r(&fake, "src/img:1");
    let err = env.fails(&["inspect", &src]);
    assert!(
        err.contains(&fake.host()) && err.contains("listed as insecure"),
        "{err}"
    );
    assert!(fake.seen().is_empty(), "nothing was sent over plain HTTP");
    let flag = env.ok(&["--insecure-registry", &fake.host(), "copy", &src, "a:1"]);
    assert_eq!(flag.trim(), digest);
    let out = env
        .cmd(&["copy", &src, "b:1"])
        .env(
            "STRATA_INSECURE_REGISTRIES",
            format!("other:5000,{}", fake.host()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);
}

/// README: a token realm gets the user's credentials only over HTTPS, or
/// when it is loopback or listed as insecure.
#[test]
fn credentials_go_to_a_plain_http_token_realm_only_when_it_is_insecure_by_choice() {
    let realm = Fake::start_on(Faults::default(), &outside_ip());
    let fake = Fake::start(Faults {
        bearer_realm: Some(format!("http://{}/token", realm.host())),
        ..Default::default()
    });
    let (env, _, _) = setup(&fake);
    let authfile = env.path("auth.json");
    common::write_auth_file(&authfile, &fake.host(), "carol", "pw");
    let target = r(&fake, "src/img:1");
    let inspect = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["inspect", target.as_str()]);
        env.cmd(&args)
            .env("REGISTRY_AUTH_FILE", &authfile)
            .output()
            .unwrap()
    };
    let out = inspect(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("plain HTTP") && err.contains(&realm.host()) && !err.contains("pw"),
        "{err}"
    );
    assert!(realm.seen().is_empty(), "the realm was not asked");
    // Listed as insecure: the credentials go there (the fake realm serves
    // no token, so the inspect still fails).
    let out = inspect(&["--insecure-registry", &realm.host()]);
    assert!(!out.status.success());
    let want = format!("Basic {}", common::basic_b64("carol", "pw"));
    let asked = realm.seen();
    assert!(
        asked
            .iter()
            .any(|s| s.path == "/token" && s.authorization.as_deref() == Some(want.as_str())),
        "{asked:?}"
    );
}

/// README: blobs move in parallel, `--jobs` at a time (default 4).
#[test]
fn jobs_bounds_the_blobs_moved_at_once() {
    let env = Env::new();
    // Four layers and a config: five blobs to push.
    let mut from: Option<String> = None;
    for i in 0..4 {
        let f = env.path(&format!("f{i}"));
        std::fs::write(&f, format!("layer {i}\n")).unwrap();
        let mut args = vec!["new".to_string()];
        if let Some(b) = &from {
            args.extend(["--from".into(), b.clone()]);
        }
        args.extend([
            "--add".into(),
            format!("{}:/f{i}", f.display()),
            "--tag".into(),
            format!("img:{i}"),
        ]);
        env.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        from = Some(format!("img:{i}"));
    }
    for (jobs, most) in [(None, 4), (Some("1"), 1), (Some("3"), 3)] {
        let fake = Fake::start(Faults {
            slow_puts: Some(std::time::Duration::from_millis(300)),
            ..Default::default()
        });
        let dest = r(&fake, "j/img:1");
        let mut args = vec!["copy", "img:3", dest.as_str()];
        if let Some(n) = jobs {
            args.splice(0..0, ["--jobs", n]);
        }
        env.ok(&args);
        let seen = fake.state.lock().unwrap().max_in_flight;
        // Never more than asked for; more than one when more are allowed
        // (each upload takes 300 ms, so parallel ones overlap).
        assert!(
            seen <= most && (most == 1 || seen >= 2),
            "--jobs {jobs:?}: {seen} uploads at once"
        );
        assert_eq!(seen == 1, most == 1, "--jobs {jobs:?}: {seen} at once");
    }
}
