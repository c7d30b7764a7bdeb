//! Layers imported from `docker save` archives, whose layers are stored
//! uncompressed: recompressed with the project's compression (same
//! diff_id) unless `recompress = false`, once.

mod common;

use common::Env;
use serde_json::Value;

fn inspect(env: &Env, image: &str) -> Value {
    serde_json::from_str(&env.ok(&["inspect", "--json", image])).unwrap()
}

/// A project with one image of one layer, the bottom layer of `archive`.
fn project(env: &Env, archive: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let p = env.path("imports");
    std::fs::create_dir_all(p.join("layers/vendor")).unwrap();
    std::fs::write(
        p.join("strata.toml"),
        "[project]\nname = \"imports\"\n[defaults]\ncompression = \"gzip\"\n[images.app]\nlayers = [\"vendor\"]\n",
    )
    .unwrap();
    std::fs::write(
        p.join("layers/vendor/layer.toml"),
        format!(
            "[layer]\nname = \"vendor\"\n[source.image]\nref = \"docker-archive:{}:saved:1\"\nindexes = [0]\n{extra}",
            archive.display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn uncompressed_layers_of_a_docker_save_archive_are_recompressed_once() {
    let env = Env::new();
    let ex = common::example_project(&env);
    env.ok(&["build", "-C", ex.to_str().unwrap(), "runtime"]);
    let archive = env.path("saved.tar");
    env.ok(&[
        "copy",
        "example/runtime:latest",
        &format!("docker-archive:{}:saved:1", archive.display()),
    ]);
    let saved = inspect(
        &env,
        &format!("docker-archive:{}:saved:1", archive.display()),
    );
    let raw = &saved["manifest"]["layers"][0];
    assert_eq!(
        raw["mediaType"], "application/vnd.oci.image.layer.v1.tar",
        "{saved}"
    );
    let diff_id = saved["config"]["rootfs"]["diff_ids"][0].clone();

    let p = project(&env, &archive, "");
    let report: Value =
        serde_json::from_str(&env.ok(&["build", "-C", p.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(report["layers"][0]["status"], "imported", "{report}");
    let app = inspect(&env, "imports/app:latest");
    let layer = &app["manifest"]["layers"][0];
    assert_eq!(
        layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
        "{app}"
    );
    assert!(
        layer["size"].as_u64() < raw["size"].as_u64(),
        "{layer} vs {raw}"
    );
    assert_eq!(app["config"]["rootfs"]["diff_ids"][0], diff_id);
    // The audit trail names the layer as it was in the archive.
    let source = layer["annotations"]["dev.strata.layer.source"]
        .as_str()
        .unwrap_or_default();
    assert!(source.contains(raw["digest"].as_str().unwrap()), "{layer}");
    // It runs: the bytes are the same tar.
    let out = env.ok(&[
        "run",
        "imports/app:latest",
        "--",
        "/bin/busybox",
        "echo",
        "ok",
    ]);
    assert_eq!(out.trim(), "ok");

    // The next build takes the recompressed blob from the cache.
    let again: Value =
        serde_json::from_str(&env.ok(&["build", "-C", p.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(again["layers"][0]["status"], "cached", "{again}");
    assert_eq!(again["images"][0]["digest"], report["images"][0]["digest"]);

    // recompress = false keeps the archive's blob.
    let p = project(&env, &archive, "recompress = false\n");
    env.ok(&["build", "-C", p.to_str().unwrap()]);
    let app = inspect(&env, "imports/app:latest");
    assert_eq!(
        app["manifest"]["layers"][0]["digest"], raw["digest"],
        "{app}"
    );
    assert_eq!(app["manifest"]["layers"][0]["mediaType"], raw["mediaType"]);
}
