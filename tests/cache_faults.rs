//! The registry cache when things go wrong: an unreachable cache, refused
//! writes, records that cannot be trusted (a missing blob, a listing with
//! the wrong digest, another layer's record under a key, a newer format), a
//! write that was interrupted. Each is a miss or a warning, never an error,
//! and never trusted.

mod common;

use std::path::Path;
use std::process::Command;

use common::registry::{Auth, Registry};
use common::{Env, run};
use serde_json::Value;

fn build_json(env: &Env, p: &Path, args: &[&str], extra_env: &[(&str, &Path)]) -> (Value, String) {
    let mut all = vec!["build", "-C", p.to_str().unwrap(), "--json"];
    all.extend(args);
    let mut c = env.cmd(&all);
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    (serde_json::from_slice(&out.stdout).unwrap(), err)
}

fn layer<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no layer {name}: {report}"))
}

fn warnings(report: &Value) -> Vec<String> {
    serde_json::from_value(report["warnings"].clone()).unwrap()
}

#[test]
fn an_unreachable_cache_is_one_warning_and_the_build_goes_on() {
    let env = Env::new();
    let p = common::example_project(&env);
    let (report, _) = build_json(
        &env,
        &p,
        &["--cache", "docker://127.0.0.1:1/team/cache"],
        &[],
    );
    let w: Vec<String> = warnings(&report)
        .into_iter()
        .filter(|w| w.contains("cache"))
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("127.0.0.1:1") && w[0].contains("unreachable"),
        "{w:?}"
    );
    assert_eq!(layer(&report, "app")["status"], "built");
    assert!(
        report["images"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["stored"] == true)
    );
    // A bad cache reference is an error before anything is built.
    let err = env.fails(&["build", "-C", p.to_str().unwrap(), "--cache", "oci:/tmp/x"]);
    assert!(err.contains("docker://HOST[:PORT]/REPOSITORY"), "{err}");
}

/// The data file of blob `digest` in the registry's storage.
fn blob_data(reg: &Registry, digest: &str) -> std::path::PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    reg.dir
        .path()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

fn skopeo_raw(reference: &str) -> Value {
    serde_json::from_str(&run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        reference,
    ])))
    .unwrap()
}

#[test]
fn untrusted_records_are_misses_with_a_warning() {
    let reg = Registry::start(Auth::None, false);
    let a = Env::new();
    let pa = common::cache_project(&a, &reg.host());
    let (first, _) = build_json(&a, &pa, &[], &[]);
    assert_eq!(first["cache"]["recorded"], 5, "{first}");
    let cache = reg.r("team/cache");
    let tag = |name: &str| {
        let key = layer(&first, name)["key"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        format!("{name}.{key}")
    };
    // base: its listing blob is damaged in the registry's storage.
    let m = skopeo_raw(&format!("{cache}:{}", tag("base")));
    let listing = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["mediaType"] == "application/vnd.strata.listing.v2+zstd")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let data = blob_data(&reg, &listing);
    let len = std::fs::metadata(&data).unwrap().len() as usize;
    std::fs::write(&data, vec![b'x'; len]).unwrap();
    // greet: its layer blob is gone from the registry.
    let greet_blob = layer(&first, "greet")["digests"][0]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_dir_all(blob_data(&reg, &greet_blob).parent().unwrap()).unwrap();
    // licenses: base's record copied under licenses' key.
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("{cache}:{}", tag("base")),
        &format!("{cache}:{}", tag("licenses")),
    ]));
    // app: a record a newer strata wrote (format 99), as an OCI layout
    // copied in by skopeo.
    newer_record(&a, &reg, &first, &tag("app"));
    // count: a write interrupted before its manifest (blobs, no tag).
    a.ok(&["delete", &format!("{cache}:{}", tag("count"))]);

    let b = Env::new();
    let pb = common::cache_project(&b, &reg.host());
    let (report, _) = build_json(&b, &pb, &["builder"], &[]);
    for name in ["base", "greet", "count", "app"] {
        assert_eq!(layer(&report, name)["status"], "built", "{name}: {report}");
    }
    assert_eq!(layer(&report, "licenses")["status"], "imported", "{report}");
    let w = warnings(&report);
    let says = |what: &str, needle: &str| {
        assert!(
            w.iter()
                .any(|x| x.contains(&tag(what)) && x.contains(needle)),
            "{what}: {needle}: {w:?}"
        )
    };
    says("base", "digest");
    says("greet", "missing from the registry");
    says("licenses", "refused");
    says("app", "newer strata");
    assert!(!w.iter().any(|x| x.contains(&tag("count"))), "{w:?}");
    // The image B built is whole: every layer in its store.
    b.ok(&["validate", "example/builder:latest"]);
    // The interrupted record was written again by B.
    assert!(b.ok(&["tags", &cache]).contains(&tag("count")));
}

/// Pushes, under `tag`, a record like app's but of record format 99.
fn newer_record(a: &Env, reg: &Registry, first: &Value, tag: &str) {
    let app = layer(first, "app");
    let digest = app["digests"][0].as_str().unwrap().to_string();
    let dir = a.path("newer");
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let d = format!("{:x}", sha2_of(bytes));
        std::fs::write(blobs.join(&d), bytes).unwrap();
        (format!("sha256:{d}"), bytes.len())
    };
    let hex = digest.trim_start_matches("sha256:");
    let layer_bytes = std::fs::read(a.store().join("blobs/sha256").join(hex)).unwrap();
    let (ld, ls) = put(&layer_bytes);
    let record = serde_json::json!({
        "format": 99, "key": app["key"], "layer": "app",
        "blobs": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}],
        "diff_ids": [ld], "future": true,
    });
    let (cd, cs) = put(record.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.strata.layer-record.v1+json",
        "config": {"mediaType": "application/vnd.strata.layer-record.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}],
    });
    let (md, ms) = put(manifest.to_string().as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "r"}}]}).to_string(),
    )
    .unwrap();
    run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:r", dir.display()),
        &format!("{}:{tag}", reg.r("team/cache")),
    ]));
}

fn sha2_of(bytes: &[u8]) -> impl std::fmt::LowerHex {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
}

#[test]
fn a_job_without_write_access_reads_the_cache_and_writes_nothing() {
    let env = Env::new();
    let token_dir = env.path("token");
    std::fs::create_dir_all(&token_dir).unwrap();
    let tokens = common::token::TokenServer::start(&token_dir, "ci", "ci-pw", "r");
    tokens.log.lock().unwrap().anonymous_pull = true;
    let reg = Registry::start(
        Auth::Token {
            realm: tokens.realm(),
            cert: tokens.cert.clone(),
        },
        false,
    );
    let auth = env.path("auth.json");
    common::write_auth_file(&auth, &reg.host(), "ci", "ci-pw");
    let a = Env::new();
    let pa = common::cache_project(&a, &reg.host());
    let (first, _) = build_json(&a, &pa, &[], &[("REGISTRY_AUTH_FILE", &auth)]);
    assert_eq!(first["cache"]["recorded"], 5, "{first}");

    // A fork's job: no credentials. It reads the cache; its one write is
    // refused, said once, and the cache is read-only from then on.
    let b = Env::new();
    let pb = common::cache_project(&b, &reg.host());
    common::replace(
        &pb,
        "layers/app/src/app.sh",
        "greet strata\n",
        "greet strata\necho fork\n",
    );
    let (report, _) = build_json(&b, &pb, &[], &[]);
    assert_eq!(report["cache"]["hits"], 4, "{report}");
    assert_eq!(report["cache"]["recorded"], 0, "{report}");
    assert_eq!(report["cache"]["writable"], false, "{report}");
    let w: Vec<String> = warnings(&report)
        .into_iter()
        .filter(|w| w.contains("refused a write"))
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(layer(&report, "app")["status"], "built");

    // --cache-read-only with write credentials: nothing written, no warning.
    let c = Env::new();
    let pc = common::cache_project(&c, &reg.host());
    common::replace(
        &pc,
        "layers/app/src/app.sh",
        "greet strata\n",
        "greet strata\necho ro\n",
    );
    let (report, _) = build_json(
        &c,
        &pc,
        &["--cache-read-only"],
        &[("REGISTRY_AUTH_FILE", &auth)],
    );
    assert_eq!(report["cache"]["recorded"], 0, "{report}");
    assert_eq!(report["cache"]["hits"], 4, "{report}");
    assert!(
        warnings(&report).iter().all(|w| !w.contains("cache")),
        "{report}"
    );
    let tags = env
        .cmd(&["tags", &reg.r("team/cache")])
        .env("REGISTRY_AUTH_FILE", &auth)
        .output()
        .unwrap();
    let app_tags = String::from_utf8_lossy(&tags.stdout)
        .lines()
        .filter(|t| t.starts_with("app."))
        .count();
    assert_eq!(app_tags, 1, "only A's app record");
}
