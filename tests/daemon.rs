//! The `docker-daemon:` transport against this machine's Docker Engine:
//! a load sends only the layers the engine lacks, an image the engine holds
//! is only tagged, images read back out, `build --load`, and bad input.

mod common;

use std::process::Command;

use common::{DockerImage, Env};
use serde_json::Value;

/// The example project with an app unique to this test run (so no other
/// test's load into the shared engine holds its top layer).
fn project(env: &Env) -> std::path::PathBuf {
    let p = common::example_project(env);
    let unique = env.dir.path().file_name().unwrap().to_string_lossy();
    common::replace(
        &p,
        "layers/app/src/app.sh",
        "greet strata\n",
        &format!("greet strata\necho run {unique}\n"),
    );
    p
}

fn engine_or_skip(check: &str) -> bool {
    if common::docker_engine() {
        return true;
    }
    common::note(check, "SKIPPED (no Docker engine answers)");
    false
}

fn load(env: &Env, src: &str, dst: &str) -> Value {
    serde_json::from_str::<Value>(&env.ok(&["copy", "--json", src, dst])).unwrap()["load"].clone()
}

fn docker(args: &[&str]) -> String {
    common::run(Command::new("docker").args(args))
}

fn inspect(env: &Env, image: &str) -> Value {
    serde_json::from_str(&env.ok(&["inspect", "--json", image])).unwrap()
}

#[test]
fn a_reload_after_a_one_layer_change_sends_one_layer() {
    if !engine_or_skip("docker-daemon: loads only new layers") {
        return;
    }
    let env = Env::new();
    let p = project(&env);
    let p = p.to_str().unwrap();
    env.ok(&["build", "-C", p, "builder"]);
    let name = DockerImage::name_for(&env);
    let image = DockerImage::named(&name);
    let first = load(
        &env,
        "example/builder:latest",
        &format!("docker-daemon:{name}"),
    );
    let layers = inspect(&env, "example/builder:latest")["layers"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        first["layers_sent"].as_u64().unwrap() + first["layers_present"].as_u64().unwrap(),
        layers as u64,
        "{first}"
    );
    assert!(first["layers_sent"].as_u64().unwrap() >= 1, "{first}");
    let out = image.run_cmd(&["/srv/app.sh"]);
    assert!(
        out.contains("hello, strata") && out.contains("run strata-test-"),
        "{out}"
    );
    // The engine's image ID is the config digest: the same image.
    let config = inspect(&env, "example/builder:latest")["manifest"]["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        docker(&["image", "inspect", "-f", "{{.Id}}", &name]).trim(),
        config
    );

    // One layer changes: only it is sent.
    common::replace(
        &std::path::PathBuf::from(p),
        "layers/app/src/app.sh",
        "greet strata\n",
        "greet strata\necho changed\n",
    );
    env.ok(&["build", "-C", p, "builder"]);
    let second = load(
        &env,
        "example/builder:latest",
        &format!("docker-daemon:{name}"),
    );
    assert_eq!(second["layers_sent"], 1, "{second}");
    assert_eq!(second["layers_present"], layers - 1, "{second}");
    assert_eq!(second["tagged_only"], false, "{second}");
    assert_eq!(second["full_load_fallback"], false, "{second}");
    assert!(
        second["bytes_sent"].as_u64().unwrap() < 64 * 1024,
        "{second}"
    );
    assert!(image.run_cmd(&["/srv/app.sh"]).contains("changed"));

    // The same image again, under another name: only tagged.
    let other = format!("{name}-again");
    let _other = DockerImage::named(&other);
    let third = load(
        &env,
        "example/builder:latest",
        &format!("docker-daemon:{other}"),
    );
    assert_eq!(third["tagged_only"], true, "{third}");
    assert_eq!(third["bytes_sent"], 0, "{third}");
    assert_eq!(
        docker(&["image", "inspect", "-f", "{{.Id}}", &other]),
        docker(&["image", "inspect", "-f", "{{.Id}}", &name])
    );
}

#[test]
fn images_read_out_of_the_engine_keep_their_config_and_diff_ids() {
    if !engine_or_skip("docker-daemon: as a source") {
        return;
    }
    let env = Env::new();
    let p = project(&env);
    env.ok(&["build", "-C", p.to_str().unwrap(), "runtime"]);
    let name = DockerImage::name_for(&env);
    let _image = DockerImage::named(&name);
    env.ok(&[
        "copy",
        "example/runtime:latest",
        &format!("docker-daemon:{name}"),
    ]);
    let id = docker(&["image", "inspect", "-f", "{{.Id}}", &name]);
    for src in [
        format!("docker-daemon:{name}"),
        format!("docker-daemon:{}", id.trim()),
    ] {
        env.ok(&["copy", &src, "back:1"]);
        let (a, b) = (
            inspect(&env, "example/runtime:latest"),
            inspect(&env, "back:1"),
        );
        assert_eq!(a["manifest"]["config"], b["manifest"]["config"], "{src}");
        assert_eq!(a["config"]["rootfs"], b["config"]["rootfs"], "{src}");
    }
    // And it runs from strata's store as it ran in docker.
    let out = env.ok(&["run", "back:1", "--", "/bin/sh", "/srv/app.sh"]);
    assert!(out.contains("hello, strata"), "{out}");
    // Nothing is left beside the store (the archive was an unlinked file).
    let left: Vec<_> = std::fs::read_dir(env.store())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn zstd_layers_are_sent_uncompressed_to_engines_that_cannot_read_them() {
    if !engine_or_skip("docker-daemon: zstd layers") {
        return;
    }
    let env = Env::new();
    let p = project(&env);
    common::replace(
        &p,
        "strata.toml",
        "compression = \"gzip\"",
        "compression = \"zstd\"",
    );
    env.ok(&["build", "-C", p.to_str().unwrap(), "runtime"]);
    let name = DockerImage::name_for(&env);
    let image = DockerImage::named(&name);
    let l = load(
        &env,
        "example/runtime:latest",
        &format!("docker-daemon:{name}"),
    );
    assert!(l["layers_sent"].as_u64().unwrap() >= 1, "{l}");
    assert!(image.run().contains("hello, strata"));
}

#[test]
fn build_load_loads_every_built_image_under_its_tags() {
    if !engine_or_skip("strata build --load") {
        return;
    }
    let env = Env::new();
    let p = project(&env);
    let unique = env
        .dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase();
    common::replace(
        &p,
        "strata.toml",
        "tags = [\"example/runtime:latest\", \"example/runtime:{timestamp}\"]",
        &format!("tags = [\"strata-test/load:{unique}\", \"strata-test/load:{unique}-b\"]"),
    );
    let _a = DockerImage::named(&format!("strata-test/load:{unique}"));
    let _b = DockerImage::named(&format!("strata-test/load:{unique}-b"));
    let report: Value = serde_json::from_str(&env.ok(&[
        "build",
        "-C",
        p.to_str().unwrap(),
        "runtime",
        "--load",
        "--json",
    ]))
    .unwrap();
    let l = &report["images"][0]["load"];
    assert_eq!(l["tags"].as_array().unwrap().len(), 2, "{report}");
    let ids = [
        docker(&[
            "image",
            "inspect",
            "-f",
            "{{.Id}}",
            &format!("strata-test/load:{unique}"),
        ]),
        docker(&[
            "image",
            "inspect",
            "-f",
            "{{.Id}}",
            &format!("strata-test/load:{unique}-b"),
        ]),
    ];
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[0].trim(), l["image_id"].as_str().unwrap());
    // A no-op build loads nothing again.
    let text = env.ok(&["build", "-C", p.to_str().unwrap(), "runtime", "--load"]);
    assert!(text.contains("loaded into docker: already there"), "{text}");
}

#[test]
fn a_failed_partial_load_is_redone_in_full() {
    let env = Env::new();
    let p = project(&env);
    env.ok(&["build", "-C", p.to_str().unwrap(), "runtime"]);
    let diff_ids: Vec<String> = serde_json::from_value(
        inspect(&env, "example/runtime:latest")["config"]["rootfs"]["diff_ids"].clone(),
    )
    .unwrap();
    // The fake claims to hold the two bottom layers.
    let fake = common::engine::FakeEngine::start(env.dir.path(), diff_ids[..2].to_vec());
    let out = env
        .cmd(&[
            "copy",
            "--json",
            "example/runtime:latest",
            "docker-daemon:x/y:1",
        ])
        .env("DOCKER_HOST", format!("unix://{}", fake.socket.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l = &serde_json::from_slice::<Value>(&out.stdout).unwrap()["load"];
    assert_eq!(l["full_load_fallback"], true, "{l}");
    assert_eq!(
        l["layers_sent"].as_u64().unwrap() as usize,
        diff_ids.len(),
        "{l}"
    );
    let seen = fake.seen();
    assert_eq!(seen.loads.len(), 2);
    assert_eq!(seen.loads[0].len(), diff_ids.len() - 2, "{:?}", seen.loads);
    assert_eq!(seen.loads[1].len(), diff_ids.len(), "{:?}", seen.loads);
    assert_eq!(seen.loaded.as_ref().unwrap().1, ["x/y:1"]);
}

#[test]
fn engine_errors_name_the_image_the_socket_or_the_setting() {
    let env = Env::new();
    let p = project(&env);
    env.ok(&["build", "-C", p.to_str().unwrap(), "runtime"]);
    let with_host = |host: &str, args: &[&str]| {
        let out = env.cmd(args).env("DOCKER_HOST", host).output().unwrap();
        assert!(!out.status.success(), "{args:?} with DOCKER_HOST={host}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = with_host(
        "tcp://127.0.0.1:2375",
        &["copy", "example/runtime:latest", "docker-daemon:a:1"],
    );
    assert!(
        err.contains("DOCKER_HOST=tcp://127.0.0.1:2375") && err.contains("unix"),
        "{err}"
    );
    let gone = env.path("no.sock");
    let err = with_host(
        &format!("unix://{}", gone.display()),
        &["copy", "example/runtime:latest", "docker-daemon:a:1"],
    );
    assert!(
        err.contains(&gone.display().to_string()) && err.contains("is dockerd running"),
        "{err}"
    );
    // build --load with no engine fails before it builds or tags anything.
    common::replace(
        &p,
        "layers/app/src/app.sh",
        "greet strata\n",
        "greet strata\necho new\n",
    );
    let before = env.ok(&["inspect", "--json", "example/runtime:latest"]);
    let err = with_host(
        &format!("unix://{}", gone.display()),
        &["build", "-C", p.to_str().unwrap(), "runtime", "--load"],
    );
    assert!(err.contains("is dockerd running"), "{err}");
    assert_eq!(
        env.ok(&["inspect", "--json", "example/runtime:latest"]),
        before
    );
    let err = env.fails(&[
        "copy",
        "example/runtime:latest",
        &format!("docker-daemon:sha256:{}", "a".repeat(64)),
    ]);
    assert!(err.contains("docker-daemon:NAME:TAG"), "{err}");
    let err = env.fails(&["copy", "docker-daemon:", "x:1"]);
    assert!(err.contains("docker-daemon: needs an image"), "{err}");
    if engine_or_skip("docker-daemon: missing image") {
        let err = env.fails(&["copy", "docker-daemon:strata-test/never-loaded:1", "x:1"]);
        assert!(
            err.contains("strata-test/never-loaded:1") && err.contains("Docker Engine"),
            "{err}"
        );
    }
}
