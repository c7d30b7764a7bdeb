//! The registry client against a real docker-registry (distribution 2.8):
//! push, pull, skip, mount, chunked uploads, auth, TLS, tags, delete, and
//! an interrupted push.

mod common;

use std::process::{Command, Stdio};

use common::registry::{Auth, Registry};
use common::{Env, have, note, run};
use serde_json::Value;

fn push_json(env: &Env, src: &str, dst: &str, extra: &[&str]) -> Value {
    let mut args = vec!["copy", "--json", src, dst];
    args.extend_from_slice(extra);
    serde_json::from_str(&env.ok(&args)).unwrap()
}

fn skopeo_digest(reference: &str, extra: &[&str]) -> String {
    let out = run(Command::new("skopeo")
        .arg("inspect")
        .args(extra)
        .arg(reference));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

/// An image with three layers of some weight, for transfer tests.
fn layered_image(env: &Env, tag: &str, mb: usize) -> String {
    let mut from: Option<String> = None;
    let mut digest = String::new();
    for i in 0..3 {
        let dir = env.path(&format!("layer-{}-{i}", tag.replace(':', "_")));
        std::fs::create_dir_all(&dir).unwrap();
        // Incompressible content so sizes are real.
        let mut x: u64 = 0x9e3779b97f4a7c15 ^ (i as u64) ^ tag.len() as u64;
        let data: Vec<u8> = (0..mb << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(dir.join("blob.bin"), data).unwrap();
        let mut args = vec![
            "new".to_string(),
            "--add".into(),
            format!("{}:/l{i}", dir.display()),
            "--tag".into(),
            tag.into(),
        ];
        if let Some(f) = &from {
            args.extend(["--from".into(), f.clone()]);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        digest = env.ok(&argv).trim().to_string();
        from = Some(tag.to_string());
    }
    digest
}

#[test]
fn strata_pushes_and_skopeo_reads_the_same_digest() {
    let reg = Registry::start(Auth::None, false);
    let env = Env::new();
    let digest = env.busybox_image("demo:1", "hi");
    let v = push_json(&env, "demo:1", &reg.r("team/demo:1"), &[]);
    assert_eq!(v["digest"], digest.as_str());
    assert_eq!(v["push"]["pushed"], 2);
    if have("skopeo") {
        assert_eq!(
            skopeo_digest(&reg.r("team/demo:1"), &["--tls-verify=false"]),
            digest
        );
        let out = env.path("skopeo-out");
        run(Command::new("skopeo").args([
            "copy",
            "--src-tls-verify=false",
            &reg.r("team/demo:1"),
            &format!("oci:{}:x", out.display()),
        ]));
        let v: Value = serde_json::from_str(&env.ok(&[
            "inspect",
            "--json",
            &format!("oci:{}:x", out.display()),
        ]))
        .unwrap();
        assert_eq!(v["digest"], digest.as_str(), "skopeo copy keeps the digest");
        note("skopeo reads strata's push", "RAN");
    }
    // inspect, ls and validate read straight from the registry.
    let v: Value =
        serde_json::from_str(&env.ok(&["inspect", "--json", &reg.r("team/demo:1")])).unwrap();
    assert_eq!(v["digest"], digest.as_str());
    assert!(
        env.ok(&["ls", &reg.r("team/demo:1")])
            .contains("/bin/busybox")
    );
    env.ok(&["validate", &reg.r("team/demo:1")]);
}

#[test]
fn skopeo_pushes_and_strata_pulls_the_same_digest() {
    if !have("skopeo") {
        note(
            "skopeo push + strata pull",
            "SKIPPED (skopeo not installed)",
        );
        return;
    }
    let reg = Registry::start(Auth::None, false);
    let env = Env::new();
    let digest = env.busybox_image("demo:1", "hi");
    let layout = env.path("layout");
    env.ok(&["copy", "demo:1", &format!("oci:{}:d", layout.display())]);
    run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:d", layout.display()),
        &reg.r("from/skopeo:1"),
    ]));
    let pulled = Env::new();
    let got = pulled.ok(&["copy", &reg.r("from/skopeo:1"), "pulled:1"]);
    assert_eq!(got.trim(), digest);
    pulled.ok(&["validate", "pulled:1"]);
    // A second pull fetches no blob: every blob is already in the store.
    // Observed at the registry, as its access log.
    let blob_gets = |reqs: &[String]| {
        reqs.iter()
            .filter(|l| l.contains("\"GET /v2/from/skopeo/blobs/"))
            .count()
    };
    let first = blob_gets(&reg.requests());
    assert!(
        first >= 2,
        "the first pull fetched the config and the layer"
    );
    pulled.ok(&["copy", &reg.r("from/skopeo:1"), "pulled:2"]);
    let reqs = reg.requests();
    assert_eq!(blob_gets(&reqs), first, "{reqs:#?}");
    assert!(
        reqs.iter()
            .filter(|l| l.contains("\"GET /v2/from/skopeo/manifests/1"))
            .count()
            >= 2,
        "the second pull did ask for the manifest: {reqs:#?}"
    );
    note("skopeo push + strata pull", "RAN");
}

#[test]
fn a_second_push_uploads_nothing_and_a_mount_uploads_no_bytes() {
    let reg = Registry::start(Auth::None, false);
    let env = Env::new();
    layered_image(&env, "big:1", 2);
    let first = push_json(&env, "big:1", &reg.r("a/big:1"), &[]);
    assert_eq!(first["push"]["pushed"], 4, "3 layers and the config");
    assert!(first["push"]["bytes"].as_u64().unwrap() > 6 << 20);
    let again = push_json(&env, "big:1", &reg.r("a/big:1"), &[]);
    assert_eq!(again["push"]["pushed"], 0);
    assert_eq!(again["push"]["skipped"], 4);
    assert_eq!(again["push"]["bytes"], 0);
    // Registry to registry, same host, other repository: every blob mounts.
    let mounted = push_json(&env, &reg.r("a/big:1"), &reg.r("b/big:2"), &[]);
    assert_eq!(mounted["push"]["mounted"], 4, "{mounted}");
    assert_eq!(mounted["push"]["bytes"], 0);
    assert_eq!(mounted["digest"], first["digest"]);
    env.ok(&["validate", &reg.r("b/big:2")]);
}

#[test]
fn chunked_uploads_are_read_back_intact() {
    let reg = Registry::start(Auth::None, false);
    let env = Env::new();
    let digest = layered_image(&env, "big:1", 3);
    let v = push_json(
        &env,
        "big:1",
        &reg.r("chunked/big:1"),
        &["--chunk-size", "1000000"],
    );
    assert_eq!(v["push"]["pushed"], 4);
    // Bytes sent are the blobs' sizes, not the chunks' offsets summed.
    let inspect: Value = serde_json::from_str(&env.ok(&["inspect", "--json", "big:1"])).unwrap();
    let sizes: u64 = inspect["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum::<u64>()
        + inspect["manifest"]["config"]["size"].as_u64().unwrap();
    assert!(sizes > 2_000_000, "several chunks per layer: {sizes}");
    assert_eq!(v["push"]["bytes"], sizes, "{v}");
    let pulled = Env::new();
    assert_eq!(
        pulled.ok(&["copy", &reg.r("chunked/big:1"), "x:1"]).trim(),
        digest
    );
    pulled.ok(&["validate", "x:1"]);
    // copy --json from a registry reports what it fetched: everything
    // into a fresh store, nothing the second time.
    let again = Env::new();
    let v = push_json(&again, &reg.r("chunked/big:1"), "y:1", &[]);
    assert_eq!(v["pull"]["fetched"], 4, "{v}");
    assert_eq!(v["pull"]["present"], 0, "{v}");
    assert_eq!(v["pull"]["bytes"], sizes, "{v}");
    assert!(v.get("push").is_none(), "{v}");
    let v = push_json(&again, &reg.r("chunked/big:1"), "y:2", &[]);
    assert_eq!(
        (
            v["pull"]["fetched"].as_u64(),
            v["pull"]["present"].as_u64(),
            v["pull"]["bytes"].as_u64()
        ),
        (Some(0), Some(4), Some(0)),
        "{v}"
    );
}

#[test]
fn tags_are_listed_and_deleted() {
    let reg = Registry::start(Auth::None, false);
    let env = Env::new();
    env.busybox_image("demo:1", "hi");
    for t in ["v1", "v2", "v3", "stable"] {
        env.ok(&["copy", "demo:1", &reg.r(&format!("t/demo:{t}"))]);
    }
    let tags = env.ok(&["tags", &reg.r("t/demo")]);
    // strata.push-times: when each tag was pushed, for prune.
    assert_eq!(
        tags.lines().collect::<Vec<_>>(),
        ["stable", "strata.push-times", "v1", "v2", "v3"]
    );
    // Pagination: the library follows Link headers page by page.
    let client = strata::registry::Client::new(Default::default()).unwrap();
    let r = strata::registry::RegistryRef::parse(&format!("{}/t/demo", reg.host())).unwrap();
    let mut paged = strata::registry::api::Repo::new(&client, &r)
        .list_tags_paged(2)
        .unwrap();
    paged.sort();
    assert_eq!(paged, ["stable", "strata.push-times", "v1", "v2", "v3"]);
    let digest = env.ok(&["delete", &reg.r("t/demo:v1")]);
    assert!(digest.trim().starts_with("sha256:"));
    let err = env.fails(&["inspect", &reg.r("t/demo:v2")]);
    assert!(
        err.contains("not found"),
        "deleting the manifest removes every tag of it: {err}"
    );
}

#[test]
fn htpasswd_auth_login_push_and_clear_errors() {
    let reg = Registry::start(
        Auth::Htpasswd {
            user: "alice",
            password: "s3cret-pw",
        },
        false,
    );
    let env = Env::new();
    env.busybox_image("demo:1", "hi");
    let err = env.fails(&["copy", "demo:1", &reg.r("private/demo:1")]);
    assert!(
        err.contains(&reg.host()) && err.contains("strata login") && err.contains("docker-config"),
        "{err}"
    );

    let login = |pw: &str| {
        let mut c = env.cmd(&["login", &reg.host(), "-u", "alice", "--password-stdin"]);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{pw}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let bad = login("wrong");
    assert!(!bad.status.success());
    let bad_err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        bad_err.contains("refused") && !bad_err.contains("wrong"),
        "{bad_err}"
    );
    assert!(
        !env.path("docker-config/config.json").exists(),
        "a refused login stores nothing"
    );
    let good = login("s3cret-pw");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let stored = std::fs::read_to_string(env.path("docker-config/config.json")).unwrap();
    assert!(stored.contains(&reg.host()));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.path("docker-config/config.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let v = push_json(&env, "demo:1", &reg.r("private/demo:1"), &[]);
    assert_eq!(v["push"]["pushed"], 2);
    if have("skopeo") {
        let d = skopeo_digest(
            &reg.r("private/demo:1"),
            &["--tls-verify=false", "--creds", "alice:s3cret-pw"],
        );
        assert_eq!(d, v["digest"].as_str().unwrap());
    }
    env.ok(&["logout", &reg.host()]);
    let err = env.fails(&["inspect", &reg.r("private/demo:1")]);
    assert!(err.contains("no credentials"), "{err}");
}

#[test]
fn podman_style_auth_file_is_used() {
    let reg = Registry::start(
        Auth::Htpasswd {
            user: "bob",
            password: "pw-for-bob",
        },
        false,
    );
    let env = Env::new();
    env.busybox_image("demo:1", "hi");
    let auth = env.path("auth.json");
    common::write_auth_file(&auth, &reg.host(), "bob", "pw-for-bob");
    let out = env
        .cmd(&["copy", "demo:1", &reg.r("p/demo:1")])
        .env("REGISTRY_AUTH_FILE", &auth)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tls_with_a_custom_ca() {
    let reg = Registry::start(Auth::None, true);
    let env = Env::new();
    let digest = env.busybox_image("demo:1", "hi");
    let ca = reg.ca.clone().unwrap();
    let v = push_json(
        &env,
        "demo:1",
        &reg.r("tls/demo:1"),
        &["--ca-file", ca.to_str().unwrap()],
    );
    assert_eq!(v["digest"], digest.as_str());
    let pulled = Env::new();
    let got = pulled.ok(&[
        "copy",
        "--ca-file",
        ca.to_str().unwrap(),
        &reg.r("tls/demo:1"),
        "x:1",
    ]);
    assert_eq!(got.trim(), digest);
    // Without the CA the certificate is refused (and plain HTTP gets nowhere).
    let err = pulled.fails(&["inspect", &reg.r("tls/demo:1")]);
    assert!(err.contains(&reg.host()), "{err}");
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("HTTPS"),
        "{err}"
    );
    if have("skopeo") {
        let certs = env.path("skopeo-certs");
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
        let d = skopeo_digest(
            &reg.r("tls/demo:1"),
            &["--cert-dir", certs.to_str().unwrap(), "--tls-verify=true"],
        );
        assert_eq!(d, digest);
    }
}

#[test]
fn token_auth_with_scopes_accumulated_for_mounts_and_refresh_tokens() {
    let env = Env::new();
    let token_dir = env.path("token");
    std::fs::create_dir_all(&token_dir).unwrap();
    let tokens = common::token::TokenServer::start(&token_dir, "dave", "dave-pw", "refresh-xyz");
    let reg = Registry::start(
        Auth::Token {
            realm: tokens.realm(),
            cert: tokens.cert.clone(),
        },
        false,
    );
    let digest = env.busybox_image("demo:1", "hi");

    // Anonymous: the token grants nothing, and the error says where we looked.
    let err = env.fails(&["copy", "demo:1", &reg.r("tok/a:1")]);
    assert!(
        err.contains(&reg.host()) && err.contains("strata login"),
        "{err}"
    );

    let auth = env.path("auth.json");
    common::write_auth_file(&auth, &reg.host(), "dave", "dave-pw");
    let with_auth = |args: &[&str]| {
        let out = env
            .cmd(args)
            .env("REGISTRY_AUTH_FILE", &auth)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let v: Value =
        serde_json::from_str(&with_auth(&["copy", "--json", "demo:1", &reg.r("tok/a:1")])).unwrap();
    assert_eq!(v["digest"], digest.as_str());
    // A mount needs pull on the source and push on the target in one token.
    let v: Value = serde_json::from_str(&with_auth(&[
        "copy",
        "--json",
        &reg.r("tok/a:1"),
        &reg.r("tok/b:1"),
    ]))
    .unwrap();
    assert_eq!(v["push"]["mounted"], 2, "{v}");
    let scopes = tokens.log.lock().unwrap().scopes.clone();
    assert!(
        scopes
            .iter()
            .any(|s| s.contains(&"repository:tok/a:pull".to_string())
                && s.contains(&"repository:tok/b:pull,push".to_string())),
        "{scopes:?}"
    );
    if have("skopeo") {
        assert_eq!(
            skopeo_digest(
                &reg.r("tok/b:1"),
                &["--tls-verify=false", "--creds", "dave:dave-pw"]
            ),
            digest
        );
    }

    // An identity (refresh) token is exchanged with the OAuth2 refresh grant.
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"refresh-xyz"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let pulled = with_auth(&["copy", &reg.r("tok/b:1"), "pulled:1"]);
    assert_eq!(pulled.trim(), digest);
    assert!(
        tokens
            .log
            .lock()
            .unwrap()
            .grants
            .iter()
            .any(|g| g == "refresh_token")
    );
}

/// README: Bearer tokens are cached until expiry (one token serves a whole
/// push or pull) and refreshed once on a 401, never in a loop.
#[test]
fn tokens_are_cached_and_refreshed_once_on_a_401() {
    let env = Env::new();
    let token_dir = env.path("token");
    std::fs::create_dir_all(&token_dir).unwrap();
    let tokens = common::token::TokenServer::start(&token_dir, "dave", "dave-pw", "r");
    let reg = Registry::start(
        Auth::Token {
            realm: tokens.realm(),
            cert: tokens.cert.clone(),
        },
        false,
    );
    layered_image(&env, "big:1", 2);
    let auth = env.path("auth.json");
    common::write_auth_file(&auth, &reg.host(), "dave", "dave-pw");
    let run = |args: &[&str]| {
        env.cmd(args)
            .env("REGISTRY_AUTH_FILE", &auth)
            .output()
            .unwrap()
    };
    let grants = || tokens.log.lock().unwrap().grants.len();
    let out = run(&["copy", "big:1", &reg.r("tok/c:1")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One token per scope set: pull (the HEADs), then pull+push (uploads).
    let scopes = tokens.log.lock().unwrap().scopes.clone();
    assert_eq!(
        grants(),
        2,
        "4 blobs and a manifest in parallel: {scopes:?}"
    );
    let pulled = env.path("pulled");
    let layout = |tag: &str| format!("oci:{}:{tag}", pulled.display());
    let out = run(&["copy", &reg.r("tok/c:1"), &layout("a")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(grants(), 3, "one token for the whole pull");
    // A token the registry refuses is replaced once.
    tokens.log.lock().unwrap().expired_next = 1;
    let out = run(&["copy", &reg.r("tok/c:1"), &layout("b")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(grants(), 5, "the refused token, then one refresh");
    // Only once: a second refusal is an error, not a loop.
    tokens.log.lock().unwrap().expired_next = 100;
    let out = run(&["copy", &reg.r("tok/c:1"), &layout("c")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&reg.host()) && err.contains("401"), "{err}");
    assert_eq!(grants(), 7, "one refresh per request at most");
}

#[test]
fn the_platform_is_picked_from_a_multi_platform_index() {
    if !have("skopeo") {
        note(
            "multi-platform index via skopeo --all",
            "SKIPPED (skopeo not installed)",
        );
        return;
    }
    let reg = Registry::start(Auth::None, false);
    let env = Env::new();
    // Two single-platform images, then an index over both in one layout.
    let mut descs = Vec::new();
    for (arch, line) in [("amd64", "on amd64"), ("arm64", "on arm64")] {
        let ep = serde_json::to_string(&["/bin/busybox", "echo", line]).unwrap();
        let d = env.ok(&[
            "new",
            "--platform",
            &format!("linux/{arch}"),
            "--add",
            "/bin/busybox:/bin/busybox",
            "--entrypoint",
            &ep,
            "--tag",
            &format!("multi:{arch}"),
        ]);
        let layout = env.path("layout");
        env.ok(&[
            "copy",
            &format!("multi:{arch}"),
            &format!("oci:{}:{arch}", layout.display()),
        ]);
        let size = std::fs::metadata(
            layout
                .join("blobs/sha256")
                .join(d.trim().trim_start_matches("sha256:")),
        )
        .unwrap()
        .len();
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d.trim(), "size": size,
            "platform": {"os": "linux", "architecture": arch}
        }));
    }
    let layout = env.path("layout");
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descs});
    let bytes = serde_json::to_vec(&index).unwrap();
    let digest = strata::Digest::of(&bytes);
    std::fs::write(layout.join("blobs/sha256").join(digest.hex()), &bytes).unwrap();
    let mut top: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    top["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest.to_string(), "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}
    }));
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    run(Command::new("skopeo").args([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &reg.r("multi/img:1"),
    ]));

    let arch_of = |platform: Option<&str>| -> String {
        let mut args = vec!["inspect", "--json"];
        if let Some(p) = platform {
            args.extend(["--platform", p]);
        }
        let r = reg.r("multi/img:1");
        args.push(&r);
        let v: Value = serde_json::from_str(&env.ok(&args)).unwrap();
        v["config"]["architecture"].as_str().unwrap().to_string()
    };
    assert_eq!(arch_of(Some("linux/arm64")), "arm64");
    assert_eq!(arch_of(Some("linux/amd64")), "amd64");
    assert_eq!(arch_of(None), strata::spec::Platform::host().architecture);
    let err = env.fails(&[
        "inspect",
        "--platform",
        "linux/s390x",
        &reg.r("multi/img:1"),
    ]);
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
    // The same selection works from a local layout.
    let v: Value = serde_json::from_str(&env.ok(&[
        "inspect",
        "--json",
        "--platform",
        "linux/arm64",
        &format!("oci:{}:multi", layout.display()),
    ]))
    .unwrap();
    assert_eq!(v["config"]["architecture"], "arm64");

    // README: Docker schema2 manifests and manifest lists are read on pull.
    run(Command::new("skopeo").args([
        "copy",
        "--all",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &reg.r("multi/docker:1"),
    ]));
    let raw: Value = serde_json::from_str(&run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &reg.r("multi/docker:1"),
    ])))
    .unwrap();
    assert_eq!(
        raw["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json",
        "skopeo wrote a Docker manifest list"
    );
    let pulled = env.ok(&[
        "copy",
        "--platform",
        "linux/arm64",
        &reg.r("multi/docker:1"),
        "docker-list:arm64",
    ]);
    let arm64 = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap();
    assert_eq!(
        pulled.trim(),
        arm64["digest"],
        "the schema2 manifest, as it was"
    );
    let v: Value =
        serde_json::from_str(&env.ok(&["inspect", "--json", "docker-list:arm64"])).unwrap();
    assert_eq!(v["config"]["architecture"], "arm64");
    env.ok(&["validate", "docker-list:arm64"]);
}

#[test]
fn credential_helpers_from_docker_config_are_used() {
    let reg = Registry::start(
        Auth::Htpasswd {
            user: "erin",
            password: "helper-pw",
        },
        false,
    );
    let env = Env::new();
    env.busybox_image("demo:1", "hi");
    // A docker credential helper: `docker-credential-NAME get` reads the
    // server on stdin and prints {"Username","Secret"}.
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = env.path("helper.log");
    let helper = format!(
        "#!/bin/sh\nread server\necho \"$1 $server\" >> {}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"erin\",\"Secret\":\"helper-pw\"}}' \"$server\"\n",
        log.display()
    );
    for name in [
        "docker-credential-strata-test",
        "docker-credential-strata-store",
    ] {
        let p = bin.join(name);
        std::fs::write(&p, &helper).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    std::fs::create_dir_all(env.path("docker-config")).unwrap();
    for config in [
        format!(r#"{{"credHelpers":{{"{}":"strata-test"}}}}"#, reg.host()),
        r#"{"credsStore":"strata-store"}"#.to_string(),
    ] {
        std::fs::write(env.path("docker-config/config.json"), &config).unwrap();
        let out = env
            .cmd(&["copy", "demo:1", &reg.r("helper/demo:1")])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.contains(&format!("get {}", reg.host())), "{calls}");
}

/// Retention by push time (issue 11, item 1): reproducible images all say
/// they were created at the epoch, so strata records push times; without a
/// record, a timestamp in the tag, else natural order and never deleting
/// what cannot be dated.
#[test]
fn prune_goes_by_push_time_then_the_tag_then_natural_order() {
    let reg = Registry::start(Auth::None, false);
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let push = |tag: &str| {
        std::fs::write(src.join("t"), tag).unwrap();
        env.ok(&[
            "new",
            "--add",
            &format!("{}:/t", src.display()),
            "--tag",
            "t:1",
        ]);
        env.ok(&["copy", "t:1", &reg.r(&format!("r/tooling:{tag}"))]);
    };
    for tag in [
        "tooling-2",
        "tooling-3",
        "tooling-4",
        "tooling-5",
        "tooling-10",
    ] {
        push(tag);
    }
    let prune = |args: &[&str]| -> (Vec<(String, String)>, String) {
        let repo = reg.r("r/tooling");
        let mut all = vec!["prune", "--json"];
        all.extend_from_slice(args);
        all.push(&repo);
        let out = env.strata(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let fates = v
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["tag"].as_str().unwrap().to_string(),
                    f["action"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        (fates, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let action = |fates: &[(String, String)], tag: &str| {
        fates
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, a)| a.clone())
            .unwrap()
    };
    let (f, _) = prune(&["--keep", "3", "--match", "tooling-*", "--yes"]);
    for (tag, want) in [
        ("tooling-10", "keep"),
        ("tooling-5", "keep"),
        ("tooling-4", "keep"),
        ("tooling-3", "deleted"),
        ("tooling-2", "deleted"),
        ("strata.push-times", "protected"),
    ] {
        assert_eq!(action(&f, tag), want, "{tag}: {f:?}");
    }
    // Pushed seconds ago: --older-than 7d deletes none of them.
    push("pr-17");
    push("pr-18");
    let (f, _) = prune(&[
        "--keep",
        "0",
        "--match",
        "pr-*",
        "--older-than",
        "7d",
        "--yes",
    ]);
    assert_eq!(action(&f, "pr-17"), "keep");
    assert_eq!(action(&f, "pr-18"), "keep");
    // Without the record: a timestamp in the tag dates it; what cannot be
    // dated is kept, with a warning.
    push("nightly-20200101-000000");
    env.ok(&["delete", &reg.r("r/tooling:strata.push-times")]);
    let (f, err) = prune(&["--keep", "0", "--older-than", "7d", "--yes"]);
    assert_eq!(action(&f, "nightly-20200101-000000"), "deleted", "{f:?}");
    assert_eq!(action(&f, "pr-17"), "keep");
    assert!(err.contains("push time is unknown"), "{err}");
}

#[test]
fn prune_keeps_the_newest_stable_and_shared_tags() {
    let reg = Registry::start(Auth::None, false);
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for (i, epoch) in [(1, "100"), (2, "200"), (3, "300"), (4, "400")] {
        std::fs::write(src.join("version"), format!("{i}")).unwrap();
        let out = env
            .cmd(&[
                "new",
                "--add",
                &format!("{}:/v", src.display()),
                "--tag",
                &format!("app:v{i}"),
            ])
            .env("SOURCE_DATE_EPOCH", epoch)
            .output()
            .unwrap();
        assert!(out.status.success());
        env.ok(&["copy", &format!("app:v{i}"), &reg.r(&format!("p/app:v{i}"))]);
    }
    env.ok(&["copy", "app:v1", &reg.r("p/app:release-stable")]);
    env.ok(&["copy", "app:v2", &reg.r("p/app:keepme")]);
    let fates = |extra: &[&str]| -> Vec<(String, String)> {
        let mut args = vec!["prune", "--json", "--keep", "1", "--match", "v*"];
        let repo = reg.r("p/app");
        args.push(&repo);
        args.extend_from_slice(extra);
        let v: Value = serde_json::from_str(&env.ok(&args)).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["tag"].as_str().unwrap().to_string(),
                    f["action"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let dry = fates(&[]);
    assert_eq!(
        dry,
        [
            ("keepme".into(), "keep".into()),
            ("release-stable".into(), "protected".into()),
            ("strata.push-times".into(), "protected".into()),
            ("v1".into(), "keep".into()),
            ("v2".into(), "keep".into()),
            ("v3".into(), "delete".into()),
            ("v4".into(), "keep".into()),
        ]
    );
    assert!(
        env.ok(&["tags", &reg.r("p/app")]).contains("v3"),
        "a dry run deletes nothing"
    );
    let real = fates(&["--yes"]);
    assert!(
        real.contains(&("v3".to_string(), "deleted".to_string())),
        "{real:?}"
    );
    let left = env.ok(&["tags", &reg.r("p/app")]);
    assert_eq!(
        left.lines().collect::<Vec<_>>(),
        [
            "keepme",
            "release-stable",
            "strata.push-times",
            "v1",
            "v2",
            "v4"
        ]
    );
    // --older-than spares the young: pushed seconds ago, whatever the
    // images' created time (1970) says.
    let young: Value = serde_json::from_str(&env.ok(&[
        "prune",
        "--json",
        "--keep",
        "0",
        "--match",
        "v*",
        "--older-than",
        "1d",
        &reg.r("p/app"),
    ]))
    .unwrap();
    assert!(
        young
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["action"] != "delete"),
        "{young}"
    );
}

#[test]
fn a_corrupt_store_blob_is_refused_by_the_registry_and_nothing_is_tagged() {
    let reg = Registry::start(Auth::None, false);
    let env = Env::new();
    env.busybox_image("demo:1", "hi");
    let v: Value = serde_json::from_str(&env.ok(&["inspect", "--json", "demo:1"])).unwrap();
    let layer = v["layers"][0]["digest"].as_str().unwrap().to_string();
    let blob = env
        .store()
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let err = env.fails(&["copy", "demo:1", &reg.r("bad/demo:1")]);
    assert!(err.contains("DIGEST_INVALID"), "{err}");
    let err = env.fails(&["inspect", &reg.r("bad/demo:1")]);
    assert!(err.contains("not found"), "{err}");
}
