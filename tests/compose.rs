//! Projects: strata.toml + layers/*/layer.toml, the graph, and `check`.

mod common;

unsafe extern "C" {
    fn geteuid() -> u32;
}

use std::fs;
use std::path::Path;

use common::{BUSYBOX, Env, example_project, replace, write};

/// base (busybox) ← tool (requires base, runtime base) ← app (requires
/// tool, runtime base); a runtime and a builder image of app.
fn project(env: &Env) -> std::path::PathBuf {
    let root = env.path("proj");
    common::images::busybox_rootfs(&root.join("layers/base/rootfs"));
    write(
        &root,
        "layers/base/layer.toml",
        r#"
[layer]
name = "base"
version = "1.0"
description = "busybox"

[provides]
binaries = ["sh", "busybox"]
paths = ["/bin"]

[[source.copy]]
from = "rootfs"
to = "/"
"#,
    );
    write(&root, "layers/tool/files/tool", "#!/bin/sh\necho tool\n");
    fs::set_permissions(
        root.join("layers/tool/files/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    write(
        &root,
        "layers/tool/layer.toml",
        r#"
[layer]
name = "tool"
version = "2.43"

[provides]
binaries = ["tool"]
paths = ["/usr/bin"]

[requires]
layers = ["base"]

[runtime]
layers = ["base"]

[aliases]
tool = "tool"

[[source.copy]]
from = "files"
to = "/usr/bin"
"#,
    );
    write(&root, "layers/app/src/app.sh", "#!/bin/sh\necho app\n");
    write(
        &root,
        "layers/app/layer.toml",
        r#"
[layer]
name = "app"
version = "0.1"

[requires]
layers = ["tool@2.43"]

[runtime]
layers = ["base"]

[env]
APP_MODE = "prod"

[[source.copy]]
from = "src"
to = "/srv"
mode = 0o755
"#,
    );
    write(
        &root,
        "strata.toml",
        r#"
[project]
name = "demo"

[defaults]
compression = "gzip"

[images.runtime]
layers = ["app"]
kind = "runtime"
entrypoint = ["/bin/sh", "/srv/app.sh"]

[images.builder]
layers = ["app"]
kind = "builder"

[profiles]
prod = ["runtime"]
"#,
    );
    root
}

#[test]
fn graph_orders_layers_and_composes_images_by_kind() {
    let env = Env::new();
    let root = project(&env);
    let p = root.to_str().unwrap();
    let out = env.ok(&["graph", "-C", p]);
    assert!(out.contains("image runtime (Runtime): base → app"), "{out}");
    assert!(
        out.contains("image builder (Builder): base → tool → app"),
        "{out}"
    );
    assert!(out.starts_with("app@0.1\n"), "{out}");
    assert!(
        out.contains("└── base@1.0") && out.contains("tool@2.43"),
        "{out}"
    );
    let dot = env.ok(&["graph", "-C", p, "--dot"]);
    assert!(
        dot.starts_with("digraph layers {")
            && dot.contains("\"app\" -> \"tool\" [label=\"requires\"]"),
        "{dot}"
    );
    assert!(
        dot.contains("\"app\" -> \"base\" [label=\"runtime\", style=dashed]"),
        "{dot}"
    );
    let ok = env.ok(&["check", "-C", p]);
    assert!(ok.contains("ok: 2 image(s) checked"), "{ok}");
}

#[test]
fn a_cycle_is_printed_whole() {
    let env = Env::new();
    let root = project(&env);
    replace(
        &root,
        "layers/base/layer.toml",
        "[provides]",
        "[requires]\nlayers = [\"app\"]\n\n[provides]",
    );
    let err = env.fails(&["graph", "-C", root.to_str().unwrap()]);
    assert!(
        err.contains("dependency cycle: ") && err.contains("app -> ") && err.contains("base"),
        "{err}"
    );
    let cycle = err.split("dependency cycle: ").nth(1).unwrap().trim();
    let names: Vec<&str> = cycle.split(" -> ").collect();
    assert_eq!(names.first(), names.last(), "the cycle closes: {cycle}");
}

#[test]
fn an_unknown_layer_gets_a_did_you_mean() {
    let env = Env::new();
    let root = project(&env);
    replace(&root, "layers/app/layer.toml", "\"tool@2.43\"", "\"tol\"");
    let err = env.fails(&["graph", "-C", root.to_str().unwrap()]);
    assert!(
        err.contains("layer \"tol\" not found in layers/app/layer.toml key requires.layers")
            && err.contains("did you mean \"tool\"?"),
        "{err}"
    );
}

#[test]
fn unknown_keys_name_the_file_line_and_key() {
    let env = Env::new();
    let root = project(&env);
    replace(&root, "layers/tool/layer.toml", "[aliases]", "[aliases]\n");
    replace(
        &root,
        "layers/tool/layer.toml",
        "version = \"2.43\"",
        "version = \"2.43\"\nflavour = \"x\"",
    );
    let err = env.fails(&["check", "-C", root.to_str().unwrap()]);
    assert!(
        err.contains("layers/tool/layer.toml line 5") && err.contains("flavour"),
        "{err}"
    );
    let env2 = Env::new();
    let root2 = project(&env2);
    replace(
        &root2,
        "strata.toml",
        "kind = \"builder\"",
        "kind = \"builder\"\nentrypont = [\"x\"]",
    );
    let err = env2.fails(&["check", "-C", root2.to_str().unwrap()]);
    assert!(
        err.contains("strata.toml line") && err.contains("entrypont"),
        "{err}"
    );
}

#[test]
fn a_name_that_differs_from_its_directory_is_refused() {
    let env = Env::new();
    let root = project(&env);
    replace(
        &root,
        "layers/tool/layer.toml",
        "name = \"tool\"",
        "name = \"tools\"",
    );
    let err = env.fails(&["graph", "-C", root.to_str().unwrap()]);
    assert!(
        err.contains("layers/tool/layer.toml key layer.name") && err.contains("\"tools\""),
        "{err}"
    );
}

#[test]
fn a_version_pin_must_match() {
    let env = Env::new();
    let root = project(&env);
    replace(&root, "layers/app/layer.toml", "tool@2.43", "tool@2.44");
    let err = env.fails(&["graph", "-C", root.to_str().unwrap()]);
    assert!(
        err.contains("tool@2.44 pins version 2.44") && err.contains("2.43"),
        "{err}"
    );
}

#[test]
fn a_copy_source_outside_the_project_is_refused() {
    let env = Env::new();
    let root = project(&env);
    fs::create_dir_all(env.path("outside")).unwrap();
    replace(
        &root,
        "layers/app/layer.toml",
        "from = \"src\"",
        "from = \"../../../outside\"",
    );
    let err = env.fails(&["check", "-C", root.to_str().unwrap()]);
    assert!(
        err.contains("layers/app/layer.toml key source.copy.from")
            && err.contains("outside the project"),
        "{err}"
    );
}

#[test]
fn conflicts_follow_the_image_policy() {
    let env = Env::new();
    let root = project(&env);
    let p = root.to_str().unwrap();
    // app also ships /bin/busybox: a conflict with base.
    fs::create_dir_all(root.join("layers/app/bin")).unwrap();
    fs::write(root.join("layers/app/bin/busybox"), "not really").unwrap();
    // Executable: base's sh -> busybox must still resolve to a program.
    fs::set_permissions(
        root.join("layers/app/bin/busybox"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    replace(
        &root,
        "layers/app/layer.toml",
        "[[source.copy]]",
        "[[source.copy]]\nfrom = \"bin\"\nto = \"/bin\"\n\n[[source.copy]]",
    );
    let err = env.fails(&["check", "-C", p, "runtime"]);
    assert!(
        err.contains("/bin/busybox is in layers base and app; app wins"),
        "{err}"
    );
    assert!(err.contains("overrides = [\"app:/bin/busybox\"]"), "{err}");
    // The builder image warns by default.
    let out = env.strata(&["check", "-C", p, "builder"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: image builder: /bin/busybox"));
    // An override allows it.
    replace(
        &root,
        "strata.toml",
        "kind = \"runtime\"",
        "kind = \"runtime\"\noverrides = [\"app:/bin/busybox\"]",
    );
    env.ok(&["check", "-C", p, "runtime"]);
}

#[test]
fn a_file_versus_directory_clash_is_an_error_unless_named_in_overrides() {
    let env = Env::new();
    let root = project(&env);
    write(&root, "layers/app/clash/sh/x", "x");
    replace(
        &root,
        "layers/app/layer.toml",
        "[[source.copy]]",
        "[[source.copy]]\nfrom = \"clash\"\nto = \"/bin\"\n\n[[source.copy]]",
    );
    replace(
        &root,
        "strata.toml",
        "kind = \"runtime\"",
        "kind = \"runtime\"\nconflicts = \"allow\"",
    );
    let err = env.fails(&["check", "-C", root.to_str().unwrap(), "runtime"]);
    assert!(
        err.contains("/bin/sh is a directory in one of base and app")
            && err.contains("file-vs-directory"),
        "{err}"
    );
    // Whatever the policy; only naming the path allows it (a layer that
    // replaces a directory with a file, or the reverse, on purpose).
    replace(
        &root,
        "strata.toml",
        "conflicts = \"allow\"",
        "conflicts = \"allow\"\noverrides = [\"app:/bin/sh\"]",
    );
    // The clash is allowed; what base declares it provides is still
    // checked in the image as it ends up.
    let err = env.fails(&["check", "-C", root.to_str().unwrap(), "runtime"]);
    assert!(
        !err.contains("file-vs-directory")
            && err.contains(
                "layers/base/layer.toml key provides.binaries: \"sh\" is not an executable file"
            ),
        "{err}"
    );
}

#[test]
fn a_missing_declared_binary_is_an_error() {
    let env = Env::new();
    let root = project(&env);
    replace(
        &root,
        "layers/tool/layer.toml",
        "binaries = [\"tool\"]",
        "binaries = [\"tool\", \"tool-helper\"]",
    );
    let err = env.fails(&["check", "-C", root.to_str().unwrap(), "builder"]);
    assert!(err.contains("layers/tool/layer.toml key provides.binaries: \"tool-helper\" is not an executable file under /usr/bin"), "{err}");
    // Present but not executable is no better.
    let env2 = Env::new();
    let root2 = project(&env2);
    fs::set_permissions(
        root2.join("layers/tool/files/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let err = env2.fails(&["check", "-C", root2.to_str().unwrap(), "builder"]);
    assert!(err.contains("\"tool\" is not an executable"), "{err}");
}

#[test]
fn a_source_image_index_out_of_range_is_refused() {
    let env = Env::new();
    let root = project(&env);
    env.busybox_image("donor:1", "hi");
    let layout = env.path("donor");
    env.ok(&["copy", "donor:1", &format!("oci:{}:d", layout.display())]);
    write(
        &root,
        "layers/extra/layer.toml",
        &format!(
            r#"
[layer]
name = "extra"

[source.image]
ref = "oci:{}:d"
indexes = [3]
"#,
            layout.display()
        ),
    );
    replace(
        &root,
        "strata.toml",
        "layers = [\"app\"]\nkind = \"runtime\"",
        "layers = [\"app\", \"extra\"]\nkind = \"runtime\"",
    );
    let err = env.fails(&["check", "-C", root.to_str().unwrap(), "runtime"]);
    assert!(
        err.contains("layers/extra/layer.toml key source.image.indexes")
            && err.contains("index 3 is out of range")
            && err.contains("has 1 layers"),
        "{err}"
    );
    // Index 0 is fine, and its files are checked like any other layer's.
    replace(
        &root,
        "layers/extra/layer.toml",
        "indexes = [3]",
        "indexes = [0]",
    );
    let err = env.fails(&["check", "-C", root.to_str().unwrap(), "runtime"]);
    assert!(
        err.contains("/bin/busybox is in layers base and extra"),
        "{err}"
    );
    assert!(!err.contains("key source.image:"), "same platform: {err}");
    // A layer of an image of another platform is an error naming both.
    let arm = env.path("arm");
    env.ok(&[
        "new",
        "--platform",
        "linux/arm64",
        "--add",
        &format!("{}:/x", root.join("layers/base/layer.toml").display()),
        "--tag",
        "armdonor:1",
    ]);
    env.ok(&["copy", "armdonor:1", &format!("oci:{}:d", arm.display())]);
    replace(
        &root,
        "layers/extra/layer.toml",
        &format!("oci:{}:d", layout.display()),
        &format!("oci:{}:d", arm.display()),
    );
    let err = env.fails(&["check", "-C", root.to_str().unwrap(), "runtime"]);
    assert!(
        err.contains("layers/extra/layer.toml key source.image: layer extra comes from")
            && err.contains("which is linux/arm64, but image runtime is for linux/"),
        "{err}"
    );
    let err = env.fails(&["build", "-C", root.to_str().unwrap(), "runtime"]);
    assert!(err.contains("which is linux/arm64"), "{err}");
}

#[test]
fn an_unknown_image_gets_a_did_you_mean() {
    let env = Env::new();
    let root = project(&env);
    let err = env.fails(&["check", "-C", root.to_str().unwrap(), "runtim"]);
    assert!(
        err.contains("image \"runtim\" not found") && err.contains("did you mean \"runtime\"?"),
        "{err}"
    );
}

fn build_json(env: &Env, root: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["build", "-C", root.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&env.ok(&args)).unwrap()
}

fn statuses(report: &serde_json::Value) -> Vec<(String, String)> {
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

fn image_digest(report: &serde_json::Value, name: &str) -> String {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn build_reuses_unchanged_layers_and_rebuilds_only_what_changed() {
    let env = Env::new();
    let root = project(&env);
    common::backdate(&root);
    let first = build_json(&env, &root, &[]);
    assert_eq!(
        statuses(&first),
        [
            ("base".into(), "built".into()),
            ("tool".into(), "built".into()),
            ("app".into(), "built".into())
        ]
    );
    // No-op: everything cached, same digests, no file re-read.
    let again = build_json(&env, &root, &[]);
    assert!(
        statuses(&again).iter().all(|(_, s)| s == "cached"),
        "{again}"
    );
    assert_eq!(again["cache_hit_rate"], 1.0);
    assert_eq!(
        again["files_hashed"], 0,
        "the stat cache answers for unchanged files"
    );
    assert_eq!(
        image_digest(&first, "runtime"),
        image_digest(&again, "runtime")
    );
    assert_eq!(
        image_digest(&first, "builder"),
        image_digest(&again, "builder")
    );
    // The remembered stat fingerprints answer without the per-file cache.
    fs::remove_dir_all(env.store().join(".strata/stat")).unwrap();
    let again = build_json(&env, &root, &[]);
    assert!(
        statuses(&again).iter().all(|(_, s)| s == "cached"),
        "{again}"
    );
    assert_eq!(again["files_hashed"], 0, "{again}");
    assert_eq!(
        image_digest(&first, "runtime"),
        image_digest(&again, "runtime")
    );

    // A one-line change to the app: only app is rebuilt.
    fs::write(
        root.join("layers/app/src/app.sh"),
        "#!/bin/sh\necho app v2\n",
    )
    .unwrap();
    let changed = build_json(&env, &root, &[]);
    assert_eq!(
        statuses(&changed),
        [
            ("base".into(), "cached".into()),
            ("tool".into(), "cached".into()),
            ("app".into(), "built".into())
        ]
    );
    assert_ne!(
        image_digest(&first, "runtime"),
        image_digest(&changed, "runtime")
    );

    // A change to a lower layer does not rebuild the layers above it.
    fs::write(root.join("layers/base/rootfs/motd"), "hello\n").unwrap();
    let lower = build_json(&env, &root, &[]);
    assert_eq!(
        statuses(&lower),
        [
            ("base".into(), "built".into()),
            ("tool".into(), "cached".into()),
            ("app".into(), "cached".into())
        ]
    );
    let app_layer = |r: &serde_json::Value| r["layers"][2]["digests"][0].clone();
    assert_eq!(app_layer(&changed), app_layer(&lower));
}

/// Now as `{timestamp}` writes it: `YYYYMMDD-HHMMSS`, UTC.
fn wall_clock_stamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    strata::image::rfc3339(now)
        .replace([':', '-'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string()
}

/// `{env:NAME}` takes a CI variable (unset: an error naming it, nothing
/// tagged); `{content}` changes only when the image's content does; `strata
/// env` shows tags expanded.
#[test]
fn tag_placeholders_from_the_environment_and_the_content() {
    let env = Env::new();
    let root = project(&env);
    let p = root.to_str().unwrap();
    replace(
        &root,
        "strata.toml",
        "kind = \"builder\"",
        "kind = \"builder\"\ntags = [\"demo/builder:pr-{env:PR_NUMBER}\", \"demo/builder:c-{content}\"]",
    );
    replace(
        &root,
        "strata.toml",
        "kind = \"runtime\"",
        "kind = \"runtime\"\ntags = [\"demo/runtime:c-{content}\"]",
    );
    let out = env
        .cmd(&["build", "-C", p])
        .env_remove("PR_NUMBER")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("PR_NUMBER") && err.contains("not set"),
        "{err}"
    );
    assert!(
        env.fails(&["inspect", "demo/runtime:latest"])
            .contains("not found")
    );
    let build = || {
        let out = env
            .cmd(&["build", "-C", p, "--json"])
            .env("PR_NUMBER", "42")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let tags_of = |image: &str| -> Vec<String> {
            v["images"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == image)
                .unwrap()["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect()
        };
        (tags_of("builder"), tags_of("runtime"))
    };
    let (b1, r1) = build();
    assert_eq!(b1[0], "demo/builder:pr-42");
    let content = b1[1].strip_prefix("demo/builder:c-").unwrap();
    assert!(
        content.len() == 12 && content.chars().all(|c| c.is_ascii_hexdigit()),
        "{b1:?}"
    );
    assert_ne!(
        b1[1].trim_start_matches("demo/builder:"),
        r1[0].trim_start_matches("demo/runtime:")
    );
    // Nothing changed: the same content tags.
    assert_eq!(build(), (b1.clone(), r1.clone()));
    // The tool is in the builder only: its content tag moves, the runtime's not.
    replace(&root, "layers/tool/files/tool", "echo tool", "echo tool 2");
    let (b2, r2) = build();
    assert_ne!(b2[1], b1[1]);
    assert_eq!(r2, r1);
    // strata env names the image by an expanded tag.
    let script = env
        .cmd(&["env", "-C", p, "builder", "--engine", "docker"])
        .env("PR_NUMBER", "42")
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&script.stdout);
    assert!(
        script.contains("demo/builder:pr-42") && !script.contains("{env:"),
        "{script}"
    );
}

/// A file rewritten in the same timestamp tick as the build that read it
/// (same size, same mtime) is still seen as changed: files modified within
/// two seconds of a build (or later) are never trusted from the stat cache.
/// The file's mtime is put an hour ahead, so the test does not depend on
/// how soon after the write the build starts.
#[test]
fn a_file_rewritten_in_the_same_tick_as_a_build_is_still_rebuilt() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let root = project(&env);
    common::backdate(&root);
    build_json(&env, &root, &[]);
    let app = root.join("layers/app/src/app.sh");
    fs::write(&app, "#!/bin/sh\necho app 2\n").unwrap();
    let ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let stamp = format!("@{ahead}.123456789");
    common::run(
        std::process::Command::new("touch")
            .args(["-d", &stamp])
            .arg(&app),
    );
    let m = fs::metadata(&app).unwrap();
    let built = build_json(&env, &root, &[]);
    assert_eq!(statuses(&built)[2], ("app".into(), "built".into()));
    // Same size, and the mtime put back to the very same nanosecond.
    fs::write(&app, "#!/bin/sh\necho app 3\n").unwrap();
    common::run(
        std::process::Command::new("touch")
            .args(["-d", &stamp])
            .arg(&app),
    );
    assert_eq!(fs::metadata(&app).unwrap().mtime_nsec(), m.mtime_nsec());
    let again = build_json(&env, &root, &[]);
    assert_eq!(
        statuses(&again)[2],
        ("app".into(), "built".into()),
        "{again}"
    );
    let app_layer = |r: &serde_json::Value| r["layers"][2]["digests"][0].clone();
    assert_ne!(
        app_layer(&built),
        app_layer(&again),
        "new content, new layer"
    );
}

#[test]
fn built_images_carry_the_audit_trail_and_layer_env_and_run() {
    let env = Env::new();
    let root = project(&env);
    replace(
        &root,
        "layers/tool/layer.toml",
        "[aliases]",
        "[env]\nPATH = \"/usr/bin:/bin\"\n\n[aliases]",
    );
    replace(
        &root,
        "layers/app/layer.toml",
        "APP_MODE = \"prod\"",
        "APP_MODE = \"prod\"\nPATH = \"/srv:$PATH\"",
    );
    replace(
        &root,
        "strata.toml",
        "kind = \"builder\"",
        "kind = \"builder\"\ntags = [\"demo/builder:dev\", \"{project}-{image}:{timestamp}\"]",
    );
    let before = wall_clock_stamp();
    let report = build_json(&env, &root, &[]);
    let after = wall_clock_stamp();
    let tags: Vec<String> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| {
            i["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
        })
        .collect();
    // {timestamp} is the build's wall clock (UTC, sortable); the image's
    // own created time stays the epoch.
    let stamped = tags
        .iter()
        .find_map(|t| t.strip_prefix("demo-builder:"))
        .unwrap_or_else(|| panic!("{tags:?}"));
    assert!(
        tags.contains(&"demo/builder:dev".to_string())
            && before.as_str() <= stamped
            && stamped <= after.as_str(),
        "{before} <= {stamped} <= {after}: {tags:?}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "--json", "demo/builder:dev"])).unwrap();
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    let a = &layers[2]["annotations"];
    assert_eq!(a["dev.strata.layer.name"], "app");
    assert_eq!(a["dev.strata.layer.version"], "0.1");
    assert_eq!(a["dev.strata.layer.source"], "copy:layers/app/src");
    let env_list = v["config"]["config"]["Env"].as_array().unwrap();
    assert!(
        env_list.contains(&serde_json::json!("PATH=/srv:/usr/bin:/bin")),
        "{env_list:?}"
    );
    assert!(
        env_list.contains(&serde_json::json!("APP_MODE=prod")),
        "{env_list:?}"
    );
    let text = env.ok(&["inspect", "demo/builder:dev"]);
    assert!(
        text.contains("dev.strata.layer.source=copy:layers/base/rootfs"),
        "{text}"
    );

    // The runtime image runs: base's busybox runs app.sh.
    if common::have("umoci") && common::have("runc") {
        let (ok, out, err) = common::runc_run(&env, "demo/runtime:latest");
        assert!(ok, "{err}");
        assert_eq!(out.trim(), "app");
        common::note("project runtime image under runc", "RAN");
    }
}

#[test]
fn a_tarball_layer_is_checked_and_used_as_is() {
    let env = Env::new();
    let root = project(&env);
    let data = root.join("layers/extra/data");
    fs::create_dir_all(data.join("opt/extra")).unwrap();
    fs::write(data.join("opt/extra/file"), "from a tarball").unwrap();
    common::run(
        std::process::Command::new("tar")
            .args(["-czf", "extra.tar.gz", "-C", "data", "opt"])
            .current_dir(root.join("layers/extra")),
    );
    write(
        &root,
        "layers/extra/layer.toml",
        "[layer]\nname = \"extra\"\n\n[source.tar]\npath = \"extra.tar.gz\"\n",
    );
    replace(
        &root,
        "strata.toml",
        "layers = [\"app\"]\nkind = \"runtime\"",
        "layers = [\"app\", \"extra\"]\nkind = \"runtime\"",
    );
    build_json(&env, &root, &["runtime"]);
    assert!(
        env.ok(&["ls", "demo/runtime:latest"])
            .contains("/opt/extra/file")
    );
    // A hostile tarball is refused and nothing is tagged.
    let evil = env.path("evil.tar");
    {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_size(0);
        h.set_cksum();
        let mut bytes = h.as_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 1024]);
        fs::write(&evil, bytes).unwrap();
    }
    fs::copy(&evil, root.join("layers/extra/extra.tar.gz")).unwrap();
    let before = env.ok(&["store", "ls"]);
    let err = env.fails(&["build", "-C", root.to_str().unwrap(), "runtime"]);
    assert!(
        err.contains("unsafe path") && err.contains("../escape"),
        "{err}"
    );
    assert_eq!(env.ok(&["store", "ls"]), before);
}

fn plan_json(env: &Env, root: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["plan", "-C", root.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&env.ok(&args)).unwrap()
}

#[test]
fn plan_says_what_would_be_built_and_why_without_building() {
    let env = Env::new();
    let root = project(&env);
    let p = plan_json(&env, &root, &[]);
    assert!(
        p["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["action"] == "build" && l["reasons"][0] == "never built in this store"),
        "{p}"
    );
    assert!(
        !env.store().join("blobs/sha256").exists()
            || common::files_under(&env.store().join("blobs/sha256")).is_empty(),
        "plan builds nothing"
    );
    build_json(&env, &root, &[]);
    let p = plan_json(&env, &root, &[]);
    assert!(
        p["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["action"] == "reuse"),
        "{p}"
    );
    assert!(
        p["images"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["action"] == "reuse"),
        "{p}"
    );
    fs::write(
        root.join("layers/app/src/app.sh"),
        "#!/bin/sh\necho changed\n",
    )
    .unwrap();
    fs::write(root.join("layers/app/src/new.txt"), "new").unwrap();
    let p = plan_json(&env, &root, &[]);
    let app = p["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "app")
        .unwrap();
    assert_eq!(app["action"], "build");
    let reasons: Vec<&str> = app["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"changed /srv/app.sh") && reasons.contains(&"added /srv/new.txt"),
        "{reasons:?}"
    );
    let runtime = p["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "runtime")
        .unwrap();
    assert_eq!(runtime["action"], "compose");
    assert_eq!(runtime["changed_layers"], serde_json::json!(["app"]));
    let text = env.ok(&["plan", "-C", root.to_str().unwrap()]);
    assert!(
        text.contains("layer app@0.1") && text.contains("changed /srv/app.sh"),
        "{text}"
    );
}

#[test]
fn plan_since_maps_git_changes_to_layers_and_images() {
    let env = Env::new();
    let root = project(&env);
    let git = |args: &[&str]| {
        common::run(
            std::process::Command::new("git")
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@e",
                    "-c",
                    "commit.gpgsign=false",
                ])
                .args(args)
                .current_dir(&root),
        )
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "init"]);
    let p = plan_json(&env, &root, &["--since", "HEAD"]);
    assert_eq!(p["since"]["layers"], serde_json::json!([]));
    assert_eq!(p["since"]["images"], serde_json::json!([]));
    fs::write(
        root.join("layers/tool/files/tool"),
        "#!/bin/sh\necho tool v2\n",
    )
    .unwrap();
    let p = plan_json(&env, &root, &["--since", "HEAD"]);
    assert_eq!(
        p["since"]["paths"],
        serde_json::json!(["layers/tool/files/tool"])
    );
    assert_eq!(p["since"]["layers"], serde_json::json!(["tool"]));
    assert_eq!(
        p["since"]["images"],
        serde_json::json!(["builder"]),
        "only the builder contains tool"
    );
    fs::write(root.join("layers/base/rootfs/new-file"), "x").unwrap();
    let p = plan_json(&env, &root, &["--since", "HEAD"]);
    assert_eq!(
        p["since"]["images"],
        serde_json::json!(["builder", "runtime"]),
        "untracked files count"
    );
    // A build step's inputs outside its directory belong to it too.
    fs::create_dir_all(root.join("layers/compile")).unwrap();
    fs::write(
        root.join("layers/compile/layer.toml"),
        "[layer]\nname = \"compile\"\n\n[requires]\nlayers = [\"base\"]\n\n[source.run]\ncommands = [\"true\"]\n\n[[source.run.inputs]]\nfrom = \"../../src\"\nto = \"/src\"\n",
    )
    .unwrap();
    fs::create_dir_all(root.join("src")).unwrap();
    fs::write(root.join("src/main.c"), "int main(void) { return 0; }\n").unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-qm", "a step"]);
    fs::write(root.join("src/main.c"), "int main(void) { return 1; }\n").unwrap();
    let p = plan_json(&env, &root, &["--since", "HEAD"]);
    assert_eq!(p["since"]["paths"], serde_json::json!(["src/main.c"]));
    assert_eq!(
        p["since"]["layers"],
        serde_json::json!(["compile"]),
        "a step owns its inputs"
    );
    let err = env.fails(&[
        "plan",
        "-C",
        root.to_str().unwrap(),
        "--since",
        "no-such-rev",
    ]);
    assert!(
        err.contains("--since") && err.contains("no-such-rev"),
        "{err}"
    );
}

#[test]
fn the_lock_pins_bytes_and_locked_builds_fail_on_drift_without_writing() {
    let env = Env::new();
    let root = project(&env);
    let p = root.to_str().unwrap();
    build_json(&env, &root, &[]);
    let lock = fs::read_to_string(root.join("strata.lock")).unwrap();
    for l in [
        "name = \"app\"",
        "name = \"tool\"",
        "name = \"base\"",
        "version = \"2.43\"",
        "diff_ids = [\"sha256:",
    ] {
        assert!(lock.contains(l), "{lock}");
    }
    env.ok(&["build", "-C", p, "--locked"]);

    // Drift without a version bump: --locked refuses and writes nothing.
    fs::write(
        root.join("layers/app/src/app.sh"),
        "#!/bin/sh\necho drift\n",
    )
    .unwrap();
    let blobs_before = common::files_under(&env.store().join("blobs"));
    let tags_before = env.ok(&["store", "ls"]);
    let err = env.fails(&["build", "-C", p, "--locked"]);
    assert!(
        err.contains("strata.lock key layer.app") && err.contains("app@0.1 would differ"),
        "{err}"
    );
    assert_eq!(
        common::files_under(&env.store().join("blobs")),
        blobs_before,
        "nothing written to the store"
    );
    assert_eq!(env.ok(&["store", "ls"]), tags_before);
    assert_eq!(
        fs::read_to_string(root.join("strata.lock")).unwrap(),
        lock,
        "the lock is left alone"
    );

    // A plain build records it, with a warning about the missing bump.
    let out = env.strata(&["build", "-C", p]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("app@0.1 changed bytes without a version bump")
    );
    env.ok(&["build", "-C", p, "--locked"]);

    // A version bump is a deliberate change: --locked wants it recorded.
    replace(
        &root,
        "layers/app/layer.toml",
        "version = \"0.1\"",
        "version = \"0.2\"",
    );
    let err = env.fails(&["build", "-C", p, "--locked"]);
    assert!(
        err.contains("strata.lock pins app@0.1") && err.contains("0.2"),
        "{err}"
    );
    let out = env.strata(&["build", "-C", p]);
    assert!(
        out.status.success()
            && !String::from_utf8_lossy(&out.stderr).contains("without a version bump")
    );
    assert!(
        fs::read_to_string(root.join("strata.lock"))
            .unwrap()
            .contains("version = \"0.2\"")
    );
    // An app that changes on every commit turns the warning off; the lock
    // still records its bytes.
    replace(
        &root,
        "layers/app/layer.toml",
        "version = \"0.2\"",
        "version = \"0.2\"\nwarn_unbumped = false",
    );
    fs::write(root.join("layers/app/src/app.sh"), "#!/bin/sh\necho v3\n").unwrap();
    let before = fs::read_to_string(root.join("strata.lock")).unwrap();
    let out = env.strata(&["build", "-C", p]);
    assert!(
        out.status.success()
            && !String::from_utf8_lossy(&out.stderr).contains("without a version bump"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        fs::read_to_string(root.join("strata.lock")).unwrap(),
        before
    );
}

#[test]
fn the_example_project_builds_and_its_runtime_image_runs() {
    let env = Env::new();
    let root = example_project(&env);
    let p = root.to_str().unwrap();
    env.ok(&["check", "-C", p]);
    let report = build_json(&env, &root, &[]);
    let runtime: Vec<&str> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "runtime")
        .unwrap()["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(runtime[0], "example/runtime:latest");
    let stamp = runtime[1].strip_prefix("example/runtime:").unwrap();
    assert!(
        stamp.len() == 15 && stamp.as_bytes()[8] == b'-' && stamp > "20261201-000000",
        "the build's wall clock: {runtime:?}"
    );
    let again = build_json(&env, &root, &[]);
    assert_eq!(again["cache_hit_rate"], 1.0);
    // The image layer came from another image, unchanged.
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "--json", "example/runtime:latest"])).unwrap();
    let names: Vec<&str> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["annotations"]["dev.strata.layer.name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["base", "greet", "licenses", "app"],
        "count is a build-time tool only"
    );
    assert!(
        v["layers"][2]["annotations"]["dev.strata.layer.source"]
            .as_str()
            .unwrap()
            .starts_with("image:oci-archive:licenses.oci.tar:licenses@sha256:")
    );
    // The audit trail names the manifest the reference resolved to, then
    // the layer.
    let source = v["layers"][2]["annotations"]["dev.strata.layer.source"]
        .as_str()
        .unwrap();
    let manifest = serde_json::from_str::<serde_json::Value>(&env.ok(&[
        "inspect",
        "--json",
        &format!(
            "oci-archive:{}:licenses",
            root.join("layers/licenses/licenses.oci.tar").display()
        ),
    ]))
    .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        source,
        format!(
            "image:oci-archive:licenses.oci.tar:licenses@{manifest} layer {}",
            v["layers"][2]["digest"].as_str().unwrap()
        )
    );
    let expected = "hello, strata\nlicenses: LICENSE NOTICE";
    if common::have("umoci") && common::have("runc") {
        let (ok, out, err) = common::runc_run(&env, "example/runtime:latest");
        assert!(ok, "{err}");
        assert_eq!(out.trim(), expected);
        common::note("examples/project runtime image under runc", "RAN");
    }
    if common::docker_engine() {
        let out = common::DockerImage::load(&env, "example/runtime:latest").run();
        assert_eq!(out.trim(), expected);
        common::note("examples/project runtime image under docker", "RAN");
    } else {
        common::note(
            "examples/project runtime image under docker",
            "SKIPPED (no Docker engine answers)",
        );
    }
}

#[test]
fn env_defines_aliases_that_run_tools_from_the_image() {
    let env = Env::new();
    let root = example_project(&env);
    let p = root.to_str().unwrap();
    let script = env.ok(&["env", "-C", p, "builder", "--engine", "docker"]);
    assert!(
        script.contains("greet() {") && script.contains("count() {"),
        "{script}"
    );
    assert!(
        script.contains(r#"-v "$PWD:$PWD" -w "$PWD" -u "$(command id -u):$(command id -g)""#),
        "{script}"
    );
    assert!(script.contains("if [ -t 0 ]; then set -- -it"), "{script}");
    let runtime = env.ok(&["env", "-C", p, "runtime", "--engine", "podman"]);
    assert!(
        runtime.contains("podman run --rm")
            && runtime.contains("greet() {")
            && !runtime.contains("count() {"),
        "count is not in the runtime image: {runtime}"
    );
    let layer = env.ok(&["env", "-C", p, "count"]);
    assert!(
        layer.contains("count() {") && !layer.contains("greet() {"),
        "{layer}"
    );
    let err = env.fails(&["env", "-C", p, "buildr"]);
    assert!(err.contains("did you mean \"builder\"?"), "{err}");
    if !common::docker_engine() {
        common::note(
            "strata env functions under docker",
            "SKIPPED (no Docker engine answers)",
        );
        return;
    }
    env.ok(&["build", "-C", p, "builder"]);
    // Under a name of its own, not the project's shared tag.
    let name = common::DockerImage::name_for(&env);
    assert!(script.contains("example/builder:latest"), "{script}");
    let script = script.replace("example/builder:latest", &name);
    let script_path = env.path("env.sh");
    fs::write(&script_path, &script).unwrap();
    // Not loaded yet: the function says so (before docker would look for it
    // on Docker Hub) and gives the command that loads it.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(". {} && greet you", script_path.display()))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains(&format!("{name} is not in docker's images")),
        "{err}"
    );
    // The offered command loads it (through the engine's API).
    let offered = format!("strata copy {name} docker-daemon:{name}");
    assert!(err.contains(&offered), "{err}");
    let _image = common::DockerImage::named(&name);
    env.ok(&["tag", "example/builder:latest", &name]);
    env.ok(&["copy", &name, &format!("docker-daemon:{name}")]);
    let work = env.path("work");
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("a"), "").unwrap();
    fs::write(work.join("b"), "").unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". {} && greet you && count *",
            script_path.display()
        ))
        .current_dir(&work)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, you\n2\n");
    common::note("strata env functions under docker", "RAN");
}

#[test]
fn env_falls_back_to_strata_run_without_docker_or_podman() {
    let env = Env::new();
    let root = example_project(&env);
    let p = root.to_str().unwrap();
    // Neither docker nor podman on PATH: the functions call strata run,
    // this strata with this store.
    let empty = env.path("empty-path");
    fs::create_dir_all(&empty).unwrap();
    let out = env
        .cmd(&["env", "-C", p, "builder"])
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = String::from_utf8(out.stdout).unwrap();
    let store = env.store();
    assert!(
        script.contains(&format!("--store '{}' run \"$@\"", store.display()))
            && script.contains(env!("CARGO_BIN_EXE_strata"))
            && !script.contains("docker run")
            && script.contains("'example/builder:latest' -- "),
        "{script}"
    );
    if unsafe { geteuid() } != 0 || !common::have("runc") {
        common::note(
            "strata env functions under strata run",
            "SKIPPED (needs root and runc)",
        );
        return;
    }
    env.ok(&["build", "-C", p, "builder"]);
    let script_path = env.path("env.sh");
    fs::write(&script_path, &script).unwrap();
    let work = env.path("work");
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("a"), "").unwrap();
    fs::write(work.join("b"), "").unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". {} && greet you && count *",
            script_path.display()
        ))
        .current_dir(&work)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, you\n2\n");
    common::note("strata env functions under strata run", "RAN");
}

#[test]
fn build_push_sends_every_tag_and_moves_stable_tags() {
    let reg = common::registry::Registry::start(common::registry::Auth::None, false);
    let env = Env::new();
    let root = example_project(&env);
    replace(
        &root,
        "strata.toml",
        "source_date_epoch = 1700000000",
        &format!(
            "source_date_epoch = 1700000000\nregistry = \"{}/team\"",
            reg.host()
        ),
    );
    replace(
        &root,
        "strata.toml",
        "tags = [\"example/runtime:latest\", \"example/runtime:{timestamp}\"]",
        "tags = [\"example/runtime:{version}\"]\nstable_tags = [\"example/runtime:runtime-stable\"]",
    );
    let report = build_json(&env, &root, &["runtime", "--push"]);
    let pushed: Vec<&str> = report["images"][0]["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        pushed,
        [
            reg.r("team/example/runtime:0.1"),
            reg.r("team/example/runtime:runtime-stable")
        ]
    );
    let digest = report["images"][0]["digest"].as_str().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_str(&env.ok(&[
        "inspect",
        "--json",
        &reg.r("team/example/runtime:runtime-stable"),
    ]))
    .unwrap();
    assert_eq!(v["digest"], digest.as_str());
    // A new version: the stable tag moves, the old version tag stays.
    fs::write(root.join("layers/app/src/app.sh"), "#!/bin/sh\necho v2\n").unwrap();
    replace(
        &root,
        "layers/app/layer.toml",
        "version = \"0.1\"",
        "version = \"0.2\"",
    );
    // What the push moved: every blob the first time (4 layers and the
    // config), with their bytes.
    let push = &report["images"][0]["push"];
    let size = report["images"][0]["size"].as_u64().unwrap();
    assert_eq!(push["pushed"], 5, "{push}");
    assert_eq!(
        (push["skipped"].as_u64(), push["mounted"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(push["bytes"].as_u64().unwrap() > size, "{push} vs {size}");
    let report2 = build_json(&env, &root, &["runtime", "--push"]);
    let digest2 = report2["images"][0]["digest"].as_str().unwrap().to_string();
    assert_ne!(digest, digest2);
    // The second: the new app layer and config; the three others are there.
    let push = &report2["images"][0]["push"];
    assert_eq!(
        (push["pushed"].as_u64(), push["skipped"].as_u64()),
        (Some(2), Some(3)),
        "{push}"
    );
    let text = env.ok(&["build", "-C", root.to_str().unwrap(), "runtime", "--push"]);
    assert!(
        text.contains("pushed 0 blob(s), 0 B; 5 already there, 0 mounted: "),
        "{text}"
    );
    let stable: serde_json::Value = serde_json::from_str(&env.ok(&[
        "inspect",
        "--json",
        &reg.r("team/example/runtime:runtime-stable"),
    ]))
    .unwrap();
    assert_eq!(stable["digest"], digest2.as_str());
    let tags = env.ok(&["tags", &reg.r("team/example/runtime")]);
    assert_eq!(
        tags.lines().collect::<Vec<_>>(),
        ["0.1", "0.2", "runtime-stable", "strata.push-times"]
    );
    // Without a registry in strata.toml, --push says what to add.
    let env2 = Env::new();
    let root2 = example_project(&env2);
    let err = env2.fails(&["build", "-C", root2.to_str().unwrap(), "runtime", "--push"]);
    assert!(err.contains("[defaults] registry"), "{err}");
}

#[test]
fn layers_are_grouped_in_dependency_waves() {
    let project = strata::compose::Project::load(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/project"),
    )
    .unwrap();
    let graph = strata::compose::Graph::new(&project).unwrap();
    assert_eq!(
        graph.waves(),
        vec![
            vec!["base", "licenses"],
            vec!["count", "greet"],
            vec!["app"]
        ]
    );
}

#[test]
fn build_runs_the_checks_first_and_writes_nothing_on_failure() {
    let env = Env::new();
    let root = project(&env);
    let p = root.to_str().unwrap();
    env.ok(&["store", "path"]);
    let before = common::files_under(&env.store());
    // A conflict under the runtime image's error policy.
    fs::create_dir_all(root.join("layers/app/bin")).unwrap();
    fs::write(root.join("layers/app/bin/busybox"), "not really").unwrap();
    replace(
        &root,
        "layers/app/layer.toml",
        "[[source.copy]]",
        "[[source.copy]]\nfrom = \"bin\"\nto = \"/bin\"\n\n[[source.copy]]",
    );
    let err = env.fails(&["build", "-C", p, "runtime"]);
    assert!(
        err.contains("strata.toml [images.runtime]")
            && err.contains("/bin/busybox is in layers base and app"),
        "{err}"
    );
    let written: Vec<_> = common::files_under(&env.store())
        .into_iter()
        .filter(|f| {
            !before.contains(f)
                && (f.starts_with(env.store().join("blobs")) || f.ends_with("index.json"))
        })
        .collect();
    assert!(written.is_empty(), "nothing may be built: {written:?}");
    assert_eq!(env.ok(&["store", "ls"]), "");
    assert!(!root.join("strata.lock").exists());
    // A missing declared binary.
    fs::remove_dir_all(root.join("layers/app/bin")).unwrap();
    replace(
        &root,
        "layers/app/layer.toml",
        "[[source.copy]]\nfrom = \"bin\"\nto = \"/bin\"\n\n",
        "",
    );
    replace(
        &root,
        "layers/tool/layer.toml",
        "binaries = [\"tool\"]",
        "binaries = [\"tool\", \"missing\"]",
    );
    let err = env.fails(&["build", "-C", p, "builder"]);
    assert!(err.contains("\"missing\" is not an executable"), "{err}");
    assert_eq!(env.ok(&["store", "ls"]), "");
}

#[test]
fn a_base_for_another_platform_is_refused() {
    let env = Env::new();
    let root = project(&env);
    let other = if strata::spec::Platform::host().architecture == "arm64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    env.ok(&[
        "new",
        "--platform",
        other,
        "--add",
        &format!("{BUSYBOX}:/bin/busybox"),
        "--tag",
        "foreign:1",
    ]);
    env.ok(&[
        "copy",
        "foreign:1",
        &format!("oci:{}:f", root.join("base-layout").display()),
    ]);
    replace(
        &root,
        "strata.toml",
        "kind = \"runtime\"",
        "kind = \"runtime\"\nbase = \"oci:base-layout:f\"",
    );
    let err = env.fails(&["check", "-C", root.to_str().unwrap(), "runtime"]);
    assert!(
        err.contains(&format!("base oci:base-layout:f is {other}")),
        "{err}"
    );
    let err = env.fails(&["build", "-C", root.to_str().unwrap(), "runtime"]);
    assert!(err.contains(other), "{err}");
}

#[test]
fn profiles_and_output_select_and_export_images() {
    let env = Env::new();
    let root = project(&env);
    let p = root.to_str().unwrap();
    let out = env.path("runtime.tar");
    let report = build_json(
        &env,
        &root,
        &[
            "--profile",
            "prod",
            "--output",
            &format!("oci-archive:{}:rt", out.display()),
        ],
    );
    let names: Vec<&str> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["runtime"]);
    let v: serde_json::Value = serde_json::from_str(&env.ok(&[
        "inspect",
        "--json",
        &format!("oci-archive:{}:rt", out.display()),
    ]))
    .unwrap();
    assert_eq!(v["digest"], report["images"][0]["digest"]);
    let err = env.fails(&["build", "-C", p, "--profile", "prd"]);
    assert!(err.contains("profile \"prd\" not found"), "{err}");
    let err = env.fails(&["build", "-C", p, "--output", "oci:x"]);
    assert!(err.contains("exactly one image"), "{err}");
}

#[test]
fn a_no_op_build_rewrites_neither_the_index_nor_the_sboms() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let root = example_project(&env);
    // A {timestamp} tag names each build, so a build a second later writes
    // a new tag on purpose: this no-op has tags that do not move.
    replace(
        &root,
        "strata.toml",
        "\"example/runtime:{timestamp}\"",
        "\"example/runtime:{content}\"",
    );
    let p = root.to_str().unwrap();
    env.ok(&["build", "-C", p]);
    let sbom = env.ok(&["sbom", "example/runtime:latest"]);
    let index = env.store().join("index.json");
    let before = fs::metadata(&index).unwrap();
    env.ok(&["build", "-C", p]);
    let after = fs::metadata(&index).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec(), before.mtime()),
        (after.ino(), after.mtime_nsec(), after.mtime()),
        "index.json was rewritten by a no-op build"
    );
    assert_eq!(env.ok(&["sbom", "example/runtime:latest"]), sbom);
}
