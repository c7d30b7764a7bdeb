//! A deb layer's `suite` takes the machine's apt entries of that suite and
//! of its update and security pockets (unless `updates = false`), and
//! `plan` says which it resolved against.

mod common;

use std::path::Path;

use common::{Env, note, replace};

fn plan_suites(env: &Env, root: &Path) -> Option<Vec<String>> {
    let out = env.strata(&["plan", "-C", root.to_str().unwrap(), "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        assert!(
            err.contains("cannot reach") || err.contains("configures no deb repository"),
            "{err}"
        );
        return None;
    }
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let layer = plan["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "ca-certificates")
        .unwrap_or_else(|| panic!("{plan}"));
    Some(
        layer["suites"]
            .as_array()
            .unwrap_or_else(|| panic!("{layer}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect(),
    )
}

#[test]
fn a_release_suite_includes_its_updates_and_security_pockets() {
    // What this machine's apt sources configure for bookworm.
    let all = strata::deb::sources::system_repositories(Path::new("/etc/apt")).unwrap();
    let want = |updates: bool| -> Vec<String> {
        let mut v: Vec<String> = all
            .iter()
            .filter(|r| {
                r.suite == "bookworm"
                    || updates && (r.suite == "bookworm-updates" || r.suite == "bookworm-security")
            })
            .map(|r| format!("{} {}", r.uri, r.suite))
            .collect();
        v.dedup();
        v
    };
    if !all.iter().any(|r| r.suite == "bookworm-security") {
        note(
            "deb suites with update pockets",
            "SKIPPED (no bookworm-security in /etc/apt)",
        );
        return;
    }
    let env = Env::new();
    let root = common::copy_example(&env, "debian", "debian");
    replace(
        &root,
        "layers/ca-certificates/layer.toml",
        "packages = [\"ca-certificates\"]",
        "packages = [\"ca-certificates\"]\nsuite = \"bookworm\"",
    );
    let Some(suites) = plan_suites(&env, &root) else {
        note(
            "deb suites with update pockets",
            "SKIPPED (the archive did not answer)",
        );
        return;
    };
    assert_eq!(suites, want(true));
    assert!(
        suites.iter().any(|s| s.ends_with(" bookworm-security")),
        "{suites:?}"
    );
    replace(
        &root,
        "layers/ca-certificates/layer.toml",
        "suite = \"bookworm\"",
        "suite = \"bookworm\"\nupdates = false",
    );
    let suites = plan_suites(&env, &root).expect("answered a moment ago");
    assert_eq!(suites, want(false));
    note("deb suites with update pockets", "RAN");
}
