//! A registry repository as the shared build cache: machine A builds,
//! records and pushes; machine B (an empty store, another HOME) rebuilds only
//! what changed and moves no bytes of the unchanged layers.

mod common;

use std::path::PathBuf;

use common::registry::{Auth, Registry};
use common::{Env, Schemas, build_json as build};
use serde_json::Value;

fn project(env: &Env, reg: &Registry) -> PathBuf {
    common::cache_project(env, &reg.host())
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_fresh_machine_rebuilds_only_what_changed_and_moves_no_unchanged_bytes() {
    let reg = Registry::start(Auth::None, false);
    let a = Env::new();
    let pa = project(&a, &reg);
    let first = build(&a, &pa, &["--push"]);
    let cache = &first["cache"];
    assert_eq!(cache["recorded"], 5, "{first}");
    assert_eq!(cache["hits"], 0, "{first}");
    // A second build on A records nothing again and asks nothing of the
    // registry for its layers.
    let again = build(&a, &pa, &[]);
    assert_eq!(again["cache"]["recorded"], 0, "{again}");

    // The records are OCI artifact manifests the image-spec schema accepts.
    let tags = a.ok(&["tags", &reg.r("team/cache")]);
    let record_tag = tags
        .lines()
        .find(|t| t.starts_with("app."))
        .unwrap_or_else(|| panic!("{tags}"))
        .to_string();
    let raw = common::run(std::process::Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("{}:{record_tag}", reg.r("team/cache")),
    ]));
    let m: Value = serde_json::from_str(&raw).unwrap();
    Schemas::new().check("image-manifest-schema.json", &m, "cache record");
    assert_eq!(
        m["artifactType"],
        "application/vnd.strata.layer-record.v1+json"
    );
    assert_eq!(m["annotations"]["dev.strata.layer.name"], "app");

    // Machine B: an empty store, the same checkout, one line changed.
    let b = Env::new();
    let pb = project(&b, &reg);
    common::replace(
        &pb,
        "layers/app/src/app.sh",
        "greet strata\n",
        "greet strata\necho on B\n",
    );
    let trace = b.path("trace.json");
    let report = build(&b, &pb, &["--push", "--trace", trace.to_str().unwrap()]);
    let st = statuses(&report);
    // The trace: a complete event per span, where the time went.
    let t: Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let names: Vec<&str> = t["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|e| {
            assert_eq!(e["ph"], "X", "{e}");
            assert!(
                e["ts"].is_u64() && e["dur"].is_u64() && e["tid"].is_u64(),
                "{e}"
            );
        })
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for want in [
        "strata build",
        "key app",
        "lookup app",
        "build app",
        "record app",
        "key base",
        "lookup base",
        "assemble runtime",
        "push runtime",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    for (name, status) in &st {
        let want = if name == "app" { "built" } else { "remote" };
        assert_eq!(status, want, "{name}: {report}");
    }
    let c = &report["cache"];
    assert_eq!(c["hits"], 4, "{report}");
    assert_eq!(c["recorded"], 1, "{report}");
    // Records and listings only: no layer blob came down.
    assert!(
        c["bytes_downloaded"].as_u64().unwrap() < 200_000,
        "{report}"
    );
    let base = first["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "base")
        .unwrap()["digests"][0]
        .as_str()
        .unwrap()
        .to_string();
    let blob = b
        .store()
        .join("blobs/sha256")
        .join(base.trim_start_matches("sha256:"));
    assert!(!blob.exists(), "the base layer was downloaded");
    // Pushed, not tagged in B's store; every unchanged layer mounted or
    // already there, only the app's blob (and configs) uploaded.
    for img in report["images"].as_array().unwrap() {
        assert_eq!(img["stored"], false, "{img}");
        let push = &img["push"];
        assert!(push["pushed"].as_u64().unwrap() <= 2, "{img}");
    }
    // What B pushed runs, read back by a third store.
    let c3 = Env::new();
    c3.ok(&["copy", &reg.r("team/example/runtime:latest"), "rt:1"]);
    let out = c3.ok(&["run", "rt:1"]);
    assert!(out.contains("on B"), "{out}");

    // B without --push needs the bytes for its store tags: downloaded now.
    let local = build(&b, &pb, &[]);
    assert!(
        local["images"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["stored"] == true)
    );
    assert!(blob.exists());
}

#[test]
fn a_registry_base_stays_in_the_registry_when_pushing_and_outputs_include_it() {
    let reg = Registry::start(Auth::None, false);
    let a = Env::new();
    let pa = project(&a, &reg);
    build(&a, &pa, &["runtime"]);
    a.ok(&["copy", "example/runtime:latest", &reg.r("team/base:1")]);
    let base_layers: Vec<String> =
        serde_json::from_str::<Value>(&a.ok(&["inspect", "--json", "example/runtime:latest"]))
            .unwrap()["manifest"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect();

    // A fresh machine builds an image on that base and pushes it.
    let b = Env::new();
    let p = b.path("onbase");
    common::write(&p, "layers/extra/files/extra.txt", "extra\n");
    common::write(
        &p,
        "layers/extra/layer.toml",
        "[layer]\nname = \"extra\"\n[[source.copy]]\nfrom = \"files\"\nto = \"/srv\"\n",
    );
    common::write(
        &p,
        "strata.toml",
        &format!(
            "[project]\nname = \"onbase\"\n[defaults]\nregistry = \"{}/team\"\n[images.app]\nbase = \"{}\"\nlayers = [\"extra\"]\n",
            reg.host(),
            reg.r("team/base:1")
        ),
    );
    let r = build(&b, &p, &["--push"]);
    let img = &r["images"][0];
    assert_eq!(img["stored"], false, "{r}");
    assert_eq!(img["push"]["mounted"], base_layers.len(), "{r}");
    for d in &base_layers {
        let blob = b
            .store()
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        assert!(!blob.exists(), "base layer {d} was downloaded");
    }
    // An archive output holds the base's layers too and loads on its own.
    let out = b.path("app.tar");
    build(
        &b,
        &p,
        &[
            "--push",
            "--output",
            &format!("oci-archive:{}:app", out.display()),
        ],
    );
    let c = Env::new();
    c.ok(&[
        "copy",
        &format!("oci-archive:{}:app", out.display()),
        "app:1",
    ]);
    c.ok(&["validate", "app:1"]);
    // The base's entrypoint runs its app; the new layer's file is there.
    assert!(c.ok(&["run", "app:1"]).contains("hello, strata"));
    assert!(c.ok(&["ls", "app:1"]).contains("srv/extra.txt"));
}

#[test]
fn cache_prune_keeps_the_newest_records_of_each_layer() {
    let reg = Registry::start(Auth::None, false);
    let a = Env::new();
    let pa = project(&a, &reg);
    build(&a, &pa, &["runtime"]);
    for i in 1..=3 {
        // Push times are in seconds: one change per second.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(
            pa.join("layers/app/src/app.sh"),
            format!("#!/bin/sh\necho v{i}\n"),
        )
        .unwrap();
        build(&a, &pa, &["runtime"]);
    }
    let cache = reg.r("team/cache");
    let records = |prefix: &str| -> Vec<String> {
        a.ok(&["tags", &cache])
            .lines()
            .filter(|t| t.starts_with(prefix))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(records("app.").len(), 4);
    let dry: Value =
        serde_json::from_str(&a.ok(&["cache", "prune", &cache, "--keep", "2", "--json"])).unwrap();
    let deleting: Vec<&Value> = dry
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["action"] == "delete")
        .collect();
    assert_eq!(deleting.len(), 2, "{dry}");
    // Ranked by the push times the builds recorded, not by name.
    assert!(
        dry.as_array()
            .unwrap()
            .iter()
            .all(|f| f["pushed_from"] == "record"),
        "{dry}"
    );
    assert!(
        deleting
            .iter()
            .all(|f| f["tag"].as_str().unwrap().starts_with("app."))
    );
    assert_eq!(records("app.").len(), 4, "a dry run deletes nothing");
    a.ok(&["cache", "prune", &cache, "--keep", "2", "--yes"]);
    assert_eq!(records("app.").len(), 2);
    for l in ["base.", "greet.", "licenses."] {
        assert_eq!(records(l).len(), 1, "{l}");
    }
    // The newest record is among those kept: a fresh machine hits it.
    let b = Env::new();
    let pb = project(&b, &reg);
    std::fs::write(pb.join("layers/app/src/app.sh"), "#!/bin/sh\necho v3\n").unwrap();
    let r = build(&b, &pb, &["runtime"]);
    assert!(statuses(&r).iter().all(|(_, s)| s == "remote"), "{r}");
}

#[test]
fn a_second_repository_gets_every_blob_by_mount_and_a_stale_location_costs_nothing() {
    let reg = Registry::start(Auth::None, false);
    let a = Env::new();
    let pa = project(&a, &reg);
    build(&a, &pa, &["runtime", "--no-cache"]);
    let push = |to: &str| -> Value {
        serde_json::from_str::<Value>(&a.ok(&[
            "copy",
            "--json",
            "example/runtime:latest",
            &reg.r(to),
        ]))
        .unwrap()["push"]
            .clone()
    };
    let first = push("one/app:1");
    assert!(first["pushed"].as_u64().unwrap() >= 5, "{first}");
    // The store remembers where the blobs went: the next repository mounts.
    let second = push("two/app:1");
    assert_eq!(second["pushed"], 0, "{second}");
    assert_eq!(second["mounted"], first["pushed"], "{second}");
    // A location that is no longer true: the mount is refused, the blob
    // uploaded, the push succeeds.
    let locs = a.store().join(".strata/blob-locations");
    for f in common::files_under(&locs) {
        std::fs::write(&f, "gone/away\n").unwrap();
    }
    let third = push("three/app:1");
    assert_eq!(third["pushed"], first["pushed"], "{third}");
    let c = Env::new();
    c.ok(&["copy", &reg.r("three/app:1"), "x:1"]);
    c.ok(&["validate", "x:1"]);
}
