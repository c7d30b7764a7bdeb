//! examples/b00t, the reference layered project: Debian-package tool
//! layers from the machine's configured archive, an app compiled by a
//! build step over the builder stack, a slim runtime image, layer and image
//! tests. Skipped, saying so, when the archive does not answer.

mod common;

use std::path::Path;

use common::{Env, note, run};

unsafe extern "C" {
    fn geteuid() -> u32;
}

#[test]
fn the_b00t_example_builds_tests_and_runs_everywhere() {
    const CHECK: &str = "examples/b00t from the configured Debian archive";
    if unsafe { geteuid() } != 0 || !common::have("runc") {
        note(CHECK, "SKIPPED (build steps need root and runc)");
        return;
    }
    let env = Env::new();
    let root = env.path("b00t");
    run(std::process::Command::new("cp")
        .arg("-r")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/b00t"))
        .arg(&root));
    let _ = std::fs::remove_dir_all(root.join("app/target"));
    let out = env
        .cmd(&["build", "-C", root.to_str().unwrap(), "--test", "--json"])
        .output()
        .unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("cannot reach") || err.contains("configures no deb repository") {
            note(CHECK, "SKIPPED (the archive did not answer)");
            return;
        }
        panic!("build failed: {err}");
    }
    note(CHECK, "RAN");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tests = report["tests"].as_array().unwrap();
    assert!(
        tests.len() >= 5 && tests.iter().all(|t| t["passed"] == true),
        "{report}"
    );
    // The runtime image holds the binary, not what built it.
    let ls = env.ok(&["ls", "b00t/runtime:latest"]);
    assert!(ls.contains(" /usr/local/bin/app\n"), "app missing");
    for absent in [
        " /usr/bin/gcc",
        " /usr/bin/cargo",
        " /usr/bin/rustc",
        " /usr/include/openssl/",
    ] {
        assert!(!ls.contains(absent), "{absent} is in the runtime image");
    }
    let builder = env.ok(&["ls", "b00t/builder:latest"]);
    assert!(builder.contains(" /usr/bin/cargo") && builder.contains(" /usr/include/openssl/ssl.h"));
    // build-essential's maintainer scripts ran (configure = true): gcc's
    // postinst registered the `cc` alternative, which cargo linked with.
    assert!(
        builder.contains(" /usr/bin/cc -> /etc/alternatives/cc")
            && builder.contains(" /etc/alternatives/cc -> /usr/bin/gcc"),
        "no cc alternative in the builder"
    );
    let cc = env.ok(&["run", "b00t/builder:latest", "--", "cc", "--version"]);
    assert!(cc.starts_with("cc (Debian"), "{cc}");
    // The scripts ran with dpkg's database as after an install, and strata
    // left its scratch files out of the layer.
    assert!(
        !builder.contains(" /usr/sbin/policy-rc.d"),
        "policy-rc.d shipped"
    );
    assert!(builder.contains(" /var/lib/dpkg/info/gcc.postinst"));
    let expect = |stdout: &str| {
        assert!(
            stdout.starts_with("b00t app, linked with OpenSSL 3."),
            "{stdout}"
        );
    };
    expect(&env.ok(&["run", "b00t/runtime:latest"]));
    let cargo = env.ok(&["run", "b00t/builder:latest", "--", "cargo", "--version"]);
    assert!(cargo.starts_with("cargo "), "{cargo}");
    if common::have("umoci") {
        let (ok, stdout, stderr) = common::runc_run(&env, "b00t/runtime:latest");
        assert!(ok, "{stderr}");
        expect(&stdout);
        note("examples/b00t runtime image under runc", "RAN");
    }
    if common::docker_engine() {
        expect(&common::DockerImage::load(&env, "b00t/runtime:latest").run());
        note("examples/b00t runtime image under docker", "RAN");
    } else {
        note(
            "examples/b00t runtime image under docker",
            "SKIPPED (no Docker engine)",
        );
    }
    // Reproducible: a second fresh store, another checkout path, the same
    // app layer.
    let other = Env::new();
    let root2 = other.path("somewhere/else/b00t");
    std::fs::create_dir_all(root2.parent().unwrap()).unwrap();
    run(std::process::Command::new("cp")
        .arg("-r")
        .arg(&root)
        .arg(&root2));
    let digests = |e: &Env, r: &Path| -> Vec<(String, serde_json::Value)> {
        let v: serde_json::Value =
            serde_json::from_str(&e.ok(&["build", "-C", r.to_str().unwrap(), "--json", "runtime"]))
                .unwrap();
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["name"] == "app" || l["name"] == "build-essential")
            .map(|l| {
                (
                    l["name"].as_str().unwrap().to_string(),
                    l["digests"].clone(),
                )
            })
            .collect()
    };
    let first = digests(&env, &root);
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(
        first
            .iter()
            .find(|(n, _)| n == "build-essential")
            .unwrap()
            .1
            .as_array()
            .unwrap()
            .len(),
        2,
        "build-essential: its packages and what their scripts wrote"
    );
    assert_eq!(
        first,
        digests(&other, &root2),
        "the app layer and build-essential's scripts layer are reproducible"
    );
}
