//! `strata check` lists the version-bump warning the next build would give
//! (inputs changed since the last build, same version in strata.lock), as it
//! lists every other warning a build gives only when it builds the layer.

mod common;

use common::Env;

#[test]
fn check_lists_a_pending_unbumped_change_until_it_is_built() {
    let env = Env::new();
    let root = common::example_project(&env);
    let p = root.to_str().unwrap();
    env.ok(&["build", "-C", p]);
    let unbumped = "app@0.1: its inputs changed since it was last built";
    let out = env.strata(&["check", "-C", p]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains(unbumped));

    std::fs::write(root.join("layers/app/src/app.sh"), "#!/bin/sh\necho v2\n").unwrap();
    let out = env.strata(&["check", "-C", p, "--json"]);
    assert!(out.status.success());
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hits: Vec<&serde_json::Value> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["message"].as_str().unwrap().contains(unbumped))
        .collect();
    // Said once, for the first image that has the layer, as a warning.
    assert_eq!(hits.len(), 1, "{findings}");
    assert_eq!(hits[0]["level"], "warning");
    assert!(
        hits[0]["message"]
            .as_str()
            .unwrap()
            .contains("layers/app/layer.toml"),
        "{findings}"
    );

    // The build gives its own warning; after it, nothing is pending.
    let out = env.strata(&["build", "-C", p]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("app@0.1 changed bytes without a version bump")
    );
    let out = env.strata(&["check", "-C", p]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains(unbumped));

    // Opted out: not listed.
    common::replace(
        &root,
        "layers/app/layer.toml",
        "version = \"0.1\"",
        "version = \"0.1\"\nwarn_unbumped = false",
    );
    env.ok(&["build", "-C", p]);
    std::fs::write(root.join("layers/app/src/app.sh"), "#!/bin/sh\necho v3\n").unwrap();
    let out = env.strata(&["check", "-C", p]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains(unbumped));

    // A store that never built the layer (a fresh clone) says nothing.
    common::replace(
        &root,
        "layers/app/layer.toml",
        "\nwarn_unbumped = false",
        "",
    );
    let fresh = Env::new();
    let out = fresh.strata(&["check", "-C", p]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains(unbumped));
    // ... while this store, which built v2, does.
    let out = env.strata(&["check", "-C", p]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(unbumped));
}
