//! A multi-platform image pushed by a machine whose layers stay in the
//! registry cache: every blob is mounted from the cache's repository, as
//! for a single-platform image, and none is downloaded.

mod common;

use std::path::PathBuf;

use common::apt::host_arch;
use common::registry::{Auth, Registry};
use common::{Env, build_json, write};
use serde_json::Value;

/// Two platforms (per-platform files and a shared one), pushing to
/// `HOST/NAMESPACE` with the registry cache in `HOST/team/cache`.
fn project(env: &Env, host: &str, namespace: &str) -> PathBuf {
    let root = env.path("mp");
    let other = if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    for arch in [host_arch().as_str(), other] {
        write(
            &root,
            &format!("layers/bin/files/{arch}/tool"),
            &format!("tool for {arch}\n"),
        );
    }
    write(&root, "layers/doc/files/README", "shared\n");
    write(
        &root,
        "layers/bin/layer.toml",
        "[layer]\nname = \"bin\"\n\n[[source.copy]]\nfrom = \"files/{arch}\"\nto = \"/usr/bin\"\n",
    );
    write(
        &root,
        "layers/doc/layer.toml",
        "[layer]\nname = \"doc\"\n\n[[source.copy]]\nfrom = \"files\"\nto = \"/usr/share/doc/mp\"\n",
    );
    write(
        &root,
        "strata.toml",
        &format!(
            "[project]\nname = \"mp\"\n\n[defaults]\nsource_date_epoch = 1700000000\nplatforms = [\"linux/{}\", \"linux/{other}\"]\nregistry = \"{host}/{namespace}\"\ncache = \"docker://{host}/team/cache\"\n\n[images.app]\nlayers = [\"bin\", \"doc\"]\ntags = [\"mp/app:1\"]\n",
            host_arch()
        ),
    );
    root
}

/// The blob digests of the doc layer in a build report.
fn first_doc(report: &Value) -> Vec<String> {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["name"] == "doc")
        .flat_map(|l| l["digests"].as_array().unwrap().clone())
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_push_only_index_mounts_its_layers_from_the_registry_cache() {
    let reg = Registry::start(Auth::None, false);
    let a = Env::new();
    let first = build_json(&a, &project(&a, &reg.host(), "team"), &["--push"]);
    let blobs: Vec<String> = first["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["digests"].as_array().unwrap().clone())
        .map(|d| d.as_str().unwrap().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(blobs.len(), 3, "{first}");

    // B changes the shared layer and pushes to another repository: the
    // platforms' own layers come from the cache, the new one is recorded
    // there, and all three are mounted from it, not uploaded again.
    let b = Env::new();
    let pb = project(&b, &reg.host(), "elsewhere");
    write(&pb, "layers/doc/files/README", "changed on B\n");
    let second = build_json(&b, &pb, &["--push"]);
    let image = &second["images"][0];
    assert_eq!(image["stored"], false, "{second}");
    assert_eq!(image["push"]["mounted"], blobs.len(), "{second}");
    for d in blobs.iter().filter(|d| !first_doc(&first).contains(d)) {
        let blob = b
            .store()
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        assert!(!blob.exists(), "layer {d} was downloaded");
    }
    // What B pushed is whole: a third store pulls every platform.
    let c = Env::new();
    c.ok(&["copy", "--all", &reg.r("elsewhere/mp/app:1"), "mp/app:1"]);
    let other = if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let ls = c.ok(&["ls", "--platform", &format!("linux/{other}"), "mp/app:1"]);
    assert!(
        ls.contains("usr/bin/tool") && ls.contains("usr/share/doc/mp/README"),
        "{ls}"
    );
}
