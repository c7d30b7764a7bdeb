//! Build steps and the registry cache: a step layer's key comes from the
//! keys beneath, so a fresh machine takes it from the cache without
//! running it; when its input changes, it runs over the layers beneath,
//! whose bytes are downloaded then (and only then).

mod common;

use std::fs;
use std::path::PathBuf;

use common::registry::{Auth, Registry};
use common::{BUSYBOX, Env, build_json, layer_status, write};

/// base (busybox) and app, a step over base that "compiles" src/app.txt.
fn project(env: &Env, host: &str) -> PathBuf {
    let root = env.path("proj");
    common::images::busybox_rootfs(&root.join("layers/base/rootfs"));
    write(
        &root,
        "layers/base/layer.toml",
        "[layer]\nname = \"base\"\n\n[env]\nPATH = \"/bin\"\n\n[[source.copy]]\nfrom = \"rootfs\"\nto = \"/\"\n",
    );
    write(&root, "app/app.txt", "echo built 1\n");
    write(
        &root,
        "layers/app/layer.toml",
        r#"[layer]
name = "app"

[requires]
layers = ["base"]

[runtime]
layers = ["base"]

[source.run]
commands = [
  "mkdir -p /usr/local/bin",
  "echo '#!/bin/sh' > /usr/local/bin/app",
  "cat /src/app.txt >> /usr/local/bin/app && chmod 755 /usr/local/bin/app",
]
outputs = ["/usr/local/bin/app"]

[[source.run.inputs]]
from = "../../app"
to = "/src"
"#,
    );
    write(
        &root,
        "strata.toml",
        &format!(
            "[project]\nname = \"st\"\n\n[defaults]\nsource_date_epoch = 1700000000\nregistry = \"{host}/team\"\ncache = \"docker://{host}/team/cache\"\n\n[images.img]\nlayers = [\"app\"]\nentrypoint = [\"/usr/local/bin/app\"]\n"
        ),
    );
    common::backdate(&root);
    root
}

#[test]
fn a_step_layer_comes_from_the_cache_and_reruns_over_remote_layers_when_changed() {
    if !common::can_run_steps("cache: step layers from the registry cache") {
        return;
    }
    let reg = Registry::start(Auth::None, false);
    let a = Env::new();
    let pa = project(&a, &reg.host());
    let first = build_json(&a, &pa, &["--push"]);
    assert_eq!(layer_status(&first, "app"), "built", "{first}");

    // B: nothing runs, nothing of base or app is downloaded.
    let b = Env::new();
    let pb = project(&b, &reg.host());
    let second = build_json(&b, &pb, &["--push"]);
    assert_eq!(layer_status(&second, "app"), "remote", "{second}");
    assert_eq!(layer_status(&second, "base"), "remote", "{second}");
    assert_eq!(second["images"][0]["digest"], first["images"][0]["digest"]);
    let busybox = fs::metadata(BUSYBOX).unwrap().len();
    assert!(
        second["cache"]["bytes_downloaded"].as_u64().unwrap() < busybox / 4,
        "{second}"
    );

    // The step's input changes on B: it runs over base, whose bytes come
    // down now; the result is what A builds from the same change.
    write(&pb, "app/app.txt", "echo built 2\n");
    common::backdate(&pb);
    let third = build_json(&b, &pb, &["--push"]);
    assert_eq!(layer_status(&third, "app"), "built", "{third}");
    assert!(
        third["cache"]["bytes_downloaded"].as_u64().unwrap() > busybox / 4,
        "{third}"
    );
    write(&pa, "app/app.txt", "echo built 2\n");
    common::backdate(&pa);
    let on_a = build_json(&a, &pa, &["--push"]);
    assert_eq!(
        layer_status(&on_a, "app"),
        "remote",
        "B recorded it: {on_a}"
    );
    assert_eq!(on_a["images"][0]["digest"], third["images"][0]["digest"]);
}
