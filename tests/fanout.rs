//! CI fan-out over the registry cache: `plan --json` gives the layers to
//! build in dependency waves and says which the cache has; two "machines"
//! (separate stores and HOMEs) build different layers at the same time; a
//! third assembles and pushes, building nothing and downloading no layer.

mod common;

use std::path::Path;

use common::Env;
use common::registry::{Auth, Registry};
use serde_json::Value;

fn json(env: &Env, args: &[&str]) -> Value {
    serde_json::from_str(&env.ok(args)).unwrap()
}

fn machine(reg: &Registry) -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let p = common::cache_project(&env, &reg.host());
    (env, p)
}

fn spawn(env: &Env, p: &Path, layers: &[&str]) -> std::process::Child {
    let mut args = vec!["build", "-C", p.to_str().unwrap(), "--json"];
    for l in layers {
        args.extend(["--layer", l]);
    }
    env.cmd(&args)
        .env("HOME", env.path("home"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_jobs_build_layers_and_a_third_assembles_building_nothing() {
    let reg = Registry::start(Auth::None, false);
    let (planner, pp) = machine(&reg);
    let p = pp.to_str().unwrap();
    let plan = json(&planner, &["plan", "-C", p, "--json"]);
    let waves: Vec<Vec<String>> = serde_json::from_value(plan["waves"].clone()).unwrap();
    assert_eq!(
        waves,
        [vec!["base"], vec!["count", "greet"], vec!["app"]],
        "{plan}"
    );
    assert_eq!(plan["cache"]["hits"], 0, "{plan}");

    // Two jobs at once, with overlapping needs (both build base).
    let (m1, p1) = machine(&reg);
    let (m2, p2) = machine(&reg);
    let j1 = spawn(&m1, &p1, &["greet"]);
    let j2 = spawn(&m2, &p2, &["count", "app"]);
    for (j, what) in [(j1, "job 1"), (j2, "job 2")] {
        let out = j.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(r["images"].as_array().unwrap().is_empty(), "{what}: {r}");
        assert!(r["cache"]["recorded"].as_u64().unwrap() >= 1, "{what}: {r}");
    }

    // The plan now reuses every layer from the cache.
    let plan = json(&planner, &["plan", "-C", p, "--json"]);
    for l in plan["layers"].as_array().unwrap() {
        assert_eq!(l["action"], "reuse", "{l}");
        if l["name"] != "licenses" {
            assert_eq!(l["from"], "cache", "{l}");
        }
    }
    assert!(plan["waves"].as_array().unwrap().is_empty(), "{plan}");
    let text = planner.ok(&["plan", "-C", p]);
    assert!(text.contains("reuse (cache)"), "{text}");

    // The assembling job: nothing built, no layer blob downloaded.
    let (m3, p3) = machine(&reg);
    let r = json(
        &m3,
        &["build", "-C", p3.to_str().unwrap(), "--push", "--json"],
    );
    for l in r["layers"].as_array().unwrap() {
        assert_eq!(l["status"], "remote", "{l}");
    }
    assert_eq!(r["cache"]["recorded"], 0, "{r}");
    let layer_blobs: Vec<_> = common::files_under(&m3.store().join("blobs/sha256"))
        .into_iter()
        .filter(|f| std::fs::metadata(f).unwrap().len() > 100_000)
        .collect();
    assert!(layer_blobs.is_empty(), "{layer_blobs:?}");
    for img in r["images"].as_array().unwrap() {
        assert_eq!(
            img["push"]["pushed"].as_u64().unwrap(),
            1,
            "config only: {img}"
        );
    }
    // What was pushed is whole and runs.
    let check = Env::new();
    check.ok(&["copy", &reg.r("team/example/runtime:latest"), "rt:1"]);
    check.ok(&["validate", "rt:1"]);
    assert!(check.ok(&["run", "rt:1"]).contains("hello, strata"));
}
