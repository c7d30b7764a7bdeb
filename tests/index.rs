//! Multi-platform images (OCI image indexes): `strata index` makes one from
//! single-platform images; `strata copy --all` writes the whole index to
//! layouts, archives and registries (manifests by digest before the tag)
//! and reads it back; formats holding one platform get one, and say so.

mod common;

use std::fs;
use std::process::Command;

use common::registry::{Auth, Registry};
use common::{Env, Schemas, have, note, run};
use serde_json::Value;

/// Two scratch images, linux/amd64 and linux/arm64 (different files), and
/// the index `multi:1` over them; returns the index digest.
fn two_platforms(env: &Env) -> String {
    for (arch, text) in [("amd64", "x86 build\n"), ("arm64", "arm build\n")] {
        let f = env.path(&format!("{arch}.txt"));
        fs::write(&f, text).unwrap();
        env.ok(&[
            "new",
            "--platform",
            &format!("linux/{arch}"),
            "--add",
            &format!("{}:/app.txt", f.display()),
            "--tag",
            &format!("single:{arch}"),
        ]);
    }
    env.ok(&["index", "multi:1", "single:amd64", "single:arm64"])
        .trim()
        .to_string()
}

fn blob(dir: &std::path::Path, digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").unwrap();
    serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

#[test]
fn an_index_goes_whole_to_layouts_and_archives_and_validates() {
    let env = Env::new();
    let digest = two_platforms(&env);
    let layout = env.path("layout");
    let out = env.ok(&[
        "copy",
        "--all",
        "multi:1",
        &format!("oci:{}:1", layout.display()),
    ]);
    assert_eq!(out.trim(), digest);
    let schemas = Schemas::new();
    let index = blob(&layout, &digest);
    schemas.check("image-index-schema.json", &index, "index");
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{index}");
    let mut arches = Vec::new();
    for m in manifests {
        arches.push(m["platform"]["architecture"].as_str().unwrap().to_string());
        assert_eq!(m["platform"]["os"], "linux");
        let manifest = blob(&layout, m["digest"].as_str().unwrap());
        schemas.check("image-manifest-schema.json", &manifest, "platform manifest");
        let config = blob(&layout, manifest["config"]["digest"].as_str().unwrap());
        schemas.check("config-schema.json", &config, "platform config");
        assert_eq!(config["architecture"], m["platform"]["architecture"]);
    }
    assert_eq!(arches, ["amd64", "arm64"]);

    // Reading it back: the same index, whole, into another store.
    let other = Env::new();
    let back = other.ok(&[
        "copy",
        "--all",
        &format!("oci:{}:1", layout.display()),
        "again:1",
    ]);
    assert_eq!(back.trim(), digest);
    // The oci-archive holds the whole index too.
    let tar = env.path("multi.tar");
    env.ok(&[
        "copy",
        "--all",
        "multi:1",
        &format!("oci-archive:{}:1", tar.display()),
    ]);
    let third = Env::new();
    let from_tar = third.ok(&[
        "copy",
        "--all",
        &format!("oci-archive:{}:1", tar.display()),
        "x:1",
    ]);
    assert_eq!(from_tar.trim(), digest);
    // inspect of one platform.
    let arm = env.ok(&["inspect", "--json", "--platform", "linux/arm64", "multi:1"]);
    let arm: Value = serde_json::from_str(&arm).unwrap();
    assert_eq!(arm["config"]["architecture"], "arm64");
    assert_eq!(arm["index"]["digest"], digest.as_str());
    let platforms: Vec<&str> = arm["index"]["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let text = env.ok(&["inspect", "multi:1"]);
    assert!(
        text.contains("(2 platforms)") && text.contains("linux/arm64"),
        "{text}"
    );

    if !have("skopeo") {
        note(
            "skopeo reads strata's index",
            "SKIPPED (skopeo not installed)",
        );
        return;
    }
    note("skopeo reads strata's index", "RAN");
    for arch in ["amd64", "arm64"] {
        let r = format!("oci:{}:1", layout.display());
        let out: Value = serde_json::from_str(&run(Command::new("skopeo").args([
            "--override-arch",
            arch,
            "inspect",
            &r,
        ])))
        .unwrap();
        assert_eq!(out["Architecture"], arch, "{out}");
    }
}

#[test]
fn an_index_is_pushed_whole_and_pulled_back_with_identical_digests() {
    let reg = Registry::start(Auth::None, false);
    let env = Env::new();
    let digest = two_platforms(&env);
    let target = reg.r("team/multi:1");
    let out = env.ok(&["copy", "--all", "--json", "multi:1", &target]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(report["push"]["tags"], serde_json::json!(["1"]));
    // Back into an empty store: every platform, the same digests.
    let other = Env::new();
    let back = other.ok(&["copy", "--all", &target, "multi:1"]);
    assert_eq!(back.trim(), digest);
    let arm = other.ok(&["inspect", "--json", "--platform", "linux/arm64", "multi:1"]);
    assert!(arm.contains("\"arm64\""), "{arm}");
    // Without --all, the host's platform only.
    let one = Env::new();
    let single = one.ok(&["copy", "--platform", "linux/arm64", &target, "one:1"]);
    assert_ne!(single.trim(), digest);

    if !have("skopeo") {
        note(
            "skopeo copy --all of strata's index",
            "SKIPPED (skopeo not installed)",
        );
        return;
    }
    note("skopeo copy --all of strata's index", "RAN");
    let dir = env.path("skopeo-layout");
    run(Command::new("skopeo").args([
        "copy",
        "--all",
        "--src-tls-verify=false",
        &target,
        &format!("oci:{}:1", dir.display()),
    ]));
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str(), "{index}");
}

#[test]
fn one_platform_formats_get_one_platform_and_say_so() {
    let env = Env::new();
    two_platforms(&env);
    let tar = env.path("d.tar");
    let out = env
        .cmd(&[
            "copy",
            "--platform",
            "linux/arm64",
            "multi:1",
            &format!("docker-archive:{}:multi:1", tar.display()),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("multi-platform image (linux/amd64, linux/arm64); copied linux/arm64 only"),
        "{stderr}"
    );
    let err = env.fails(&[
        "copy",
        "--all",
        "multi:1",
        &format!("docker-archive:{}:multi:1", tar.display()),
    ]);
    assert!(
        err.contains("holds one platform") && err.contains("--platform"),
        "{err}"
    );
}

#[test]
fn bad_indexes_are_refused_and_nothing_is_tagged() {
    let env = Env::new();
    two_platforms(&env);
    let err = env.fails(&["index", "dup:1", "single:amd64", "single:amd64"]);
    assert!(err.contains("platform linux/amd64 is given twice"), "{err}");
    let err = env.fails(&["index", "nested:1", "multi:1", "single:amd64"]);
    assert!(err.contains("already a multi-platform image"), "{err}");
    for t in ["dup:1", "nested:1"] {
        assert!(
            env.fails(&["inspect", t])
                .contains(t.split(':').next().unwrap())
        );
    }
    let err = env.fails(&[
        "copy",
        "--all",
        "--platform",
        "linux/arm64",
        "multi:1",
        "x:1",
    ]);
    assert!(err.contains("--all") && err.contains("--platform"), "{err}");
}

/// A push interrupted after the first platform's blobs leaves no tag: the
/// index is tagged only after every manifest is in the registry.
#[test]
fn an_interrupted_index_push_tags_nothing() {
    let fake = common::fake::Fake::start(common::fake::Faults {
        uploads_before_failing: Some(2),
        ..Default::default()
    });
    let env = Env::new();
    two_platforms(&env);
    let target = format!("docker://{}/team/multi:1", fake.host());
    let err = env.fails(&["copy", "--all", "multi:1", &target]);
    assert!(err.contains("500") || err.contains("upload"), "{err}");
    let st = fake.state.lock().unwrap();
    assert!(
        st.manifests.keys().all(|k| !k.ends_with(":1") && k != "1"),
        "{:?}",
        st.manifests.keys().collect::<Vec<_>>()
    );
    assert!(
        st.manifests.len() <= 1,
        "at most the first platform's manifest"
    );
}

/// An index over the manifest size cap (4 MiB, as registries cap it) is
/// refused naming its size and the cap, before it is read; nothing is
/// written.
#[test]
fn an_index_over_the_size_cap_is_refused() {
    let env = Env::new();
    let layout = env.path("big");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    // A well-formed index padded past the cap with annotations.
    let pad = "x".repeat(5 << 20);
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
        "annotations": {"pad": pad},
    })
    .to_string();
    let digest = strata::Digest::of(body.as_bytes());
    fs::write(layout.join("blobs/sha256").join(digest.hex()), &body).unwrap();
    fs::write(
        layout.join("index.json"),
        serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest.to_string(),
                "size": body.len(),
                "annotations": {"org.opencontainers.image.ref.name": "big"},
            }],
        })
        .to_string(),
    )
    .unwrap();
    let err = env.fails(&[
        "copy",
        "--all",
        &format!("oci:{}:big", layout.display()),
        "big:1",
    ]);
    assert!(
        err.contains(&format!("declares {} bytes", body.len())) && err.contains("more than the"),
        "{err}"
    );
    assert!(env.fails(&["inspect", "big:1"]).contains("big"));
}

/// An index and a manifest named by digest in the store (`@sha256:…`):
/// the index is whole with `--all`, one platform without, and the manifest
/// is itself.
#[test]
fn store_digests_name_an_index_or_a_manifest() {
    let env = Env::new();
    let digest = two_platforms(&env);
    let at = format!("@{digest}");
    let shown = env.ok(&["inspect", "--json", &at]);
    let v: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["index"]["digest"], digest.as_str(), "{shown}");
    assert_eq!(
        v["index"]["manifests"].as_array().map(Vec::len),
        Some(2),
        "{shown}"
    );
    let layout = env.path("by-digest");
    let out = env.ok(&["copy", "--all", &at, &format!("oci:{}:1", layout.display())]);
    assert_eq!(out.trim(), digest);
    let arm = blob(&layout, &digest)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let one = env.ok(&["copy", "--platform", "linux/arm64", &at, "one:1"]);
    assert_eq!(one.trim(), arm);
    let ls = env.ok(&["ls", &format!("@{arm}")]);
    assert!(ls.contains("app.txt"), "{ls}");
    let err = env.fails(&[
        "inspect",
        "@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ]);
    assert!(err.contains("manifest sha256:0000"), "{err}");
}
