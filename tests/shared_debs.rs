//! Sibling deb layers that install the same packages: `check` says so once
//! per set of layers, with the dependency that fixes it, and `check
//! --suggest` writes that fix out (applied here, it clears the finding).

mod common;

use common::apt::{project, repo};
use common::{Env, replace, write};

/// Sibling deb layers that each install the same package: check says so
/// once per package, with the dependency that fixes it, instead of one
/// conflict per file; the suggested layer beneath them fixes it.
#[test]
fn a_package_in_sibling_deb_layers_is_one_finding_with_the_fix() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, &["hello"], false, &r.keyring);
    write(
        &root,
        "layers/other/layer.toml",
        &format!(
            "[layer]\nname = \"other\"\n\n[source.deb]\npackages = [\"libgreet\"]\n\n{}",
            r.toml(&r.keyring)
        ),
    );
    replace(
        &root,
        "strata.toml",
        "layers = [\"pkgs\"]",
        "layers = [\"pkgs\", \"other\"]",
    );
    let p = root.to_str().unwrap();
    let err = env.fails(&["check", "-C", p]);
    assert!(
        err.contains("layers pkgs, other each install libgreet (")
            && err.contains("conflicting file(s)); install it once, beneath them: a layer with [source.deb] packages = [\"libgreet\"] that pkgs and other require"),
        "{err}"
    );
    assert_eq!(err.matches("each install").count(), 1, "{err}");
    assert!(!err.contains("/usr/lib/greet.txt is in layers"), "{err}");
    // The fix it suggests: libgreet once, in a layer both stand on.
    write(
        &root,
        "layers/greetlib/layer.toml",
        &format!(
            "[layer]\nname = \"greetlib\"\n\n[source.deb]\npackages = [\"libgreet\"]\n\n{}",
            r.toml(&r.keyring)
        ),
    );
    replace(
        &root,
        "layers/other/layer.toml",
        "packages = [\"libgreet\"]",
        "packages = [\"postfix\"]",
    );
    for l in ["pkgs", "other"] {
        replace(
            &root,
            &format!("layers/{l}/layer.toml"),
            "[source.deb]",
            "[requires]\nlayers = [\"greetlib\"]\n\n[runtime]\nlayers = [\"greetlib\"]\n\n[source.deb]",
        );
    }
    let err = env.fails(&["check", "-C", p]);
    assert!(!err.contains("libgreet"), "{err}");
    assert!(
        err.contains("each install postfix"),
        "now postfix is shared: {err}"
    );
}

#[test]
fn check_suggest_writes_the_layer_that_fixes_a_shared_package() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, &["hello"], false, &r.keyring);
    write(
        &root,
        "layers/other/layer.toml",
        &format!(
            "[layer]\nname = \"other\"\n\n[source.deb]\npackages = [\"libgreet\"]\n\n{}",
            r.toml(&r.keyring)
        ),
    );
    replace(
        &root,
        "strata.toml",
        "layers = [\"pkgs\"]",
        "layers = [\"pkgs\", \"other\"]",
    );
    let p = root.to_str().unwrap();
    let out = env.strata(&["check", "-C", p, "--suggest", "--json"]);
    assert!(!out.status.success(), "the conflict is still an error");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = v["suggestions"].as_array().unwrap();
    let files: Vec<&str> = s.iter().map(|x| x["file"].as_str().unwrap()).collect();
    assert_eq!(
        files,
        [
            "layers/libgreet/layer.toml",
            "layers/pkgs/layer.toml",
            "layers/other/layer.toml"
        ],
        "{v}"
    );
    assert!(v["findings"].as_array().unwrap().iter().any(|f| {
        f["message"]
            .as_str()
            .unwrap()
            .contains("each install libgreet")
    }));
    // Applied as printed: the new layer verbatim, the [requires] and
    // [runtime] sections into each sharing layer (they have none yet).
    write(&root, files[0], s[0]["text"].as_str().unwrap());
    let new_layer: toml::Value = toml::from_str(s[0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        new_layer["source"]["deb"]["packages"],
        toml::Value::Array(vec!["libgreet".into()])
    );
    for (i, l) in ["pkgs", "other"].iter().enumerate() {
        let text = s[i + 1]["text"].as_str().unwrap();
        let edit: toml::Value = toml::from_str(text).unwrap();
        assert_eq!(
            edit["requires"]["layers"],
            toml::Value::Array(vec!["libgreet".into()])
        );
        replace(
            &root,
            &format!("layers/{l}/layer.toml"),
            "[source.deb]",
            &format!("{text}\n[source.deb]"),
        );
    }
    let out = env.strata(&["check", "-C", p, "--suggest"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("each install"), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no suggestions"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // And the image builds with libgreet once, beneath both.
    env.ok(&["build", "-C", p]);
}
