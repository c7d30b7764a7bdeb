//! `[provides]` and `[defaults]` keys are enforced, not only parsed:
//! libraries where the dynamic loader looks, binaries through symlinks
//! resolved within the image, default tag patterns, descriptions in the
//! SBOM.

mod common;

use std::fs;
use std::os::unix::fs::symlink;

use common::{Env, write};

/// One layer of files with Debian's merged /usr (`/lib -> usr/lib`), a
/// versioned library and its soname link, an executable, a link to it and
/// a dangling link; `provides` as given.
fn project(env: &Env, provides: &str, strata_extra: &str) -> std::path::PathBuf {
    let root = env.path("proj");
    let files = root.join("layers/base/files");
    let triplet = format!("{}-linux-gnu", std::env::consts::ARCH);
    write(&files, &format!("usr/lib/{triplet}/libfoo.so.1.0"), "elf");
    symlink(
        "libfoo.so.1.0",
        files.join(format!("usr/lib/{triplet}/libfoo.so.1")),
    )
    .unwrap();
    symlink("usr/lib", files.join("lib")).unwrap();
    write(&files, "opt/lib/libopt.so", "elf");
    write(&files, "bin/tool", "#!/bin/sh\n");
    fs::set_permissions(
        files.join("bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    symlink("tool", files.join("bin/sh")).unwrap();
    symlink("/nowhere/tool", files.join("bin/gone")).unwrap();
    write(
        &root,
        "layers/base/layer.toml",
        &format!(
            "[layer]\nname = \"base\"\nversion = \"1.2\"\ndescription = \"a small base\"\n\n[provides]\npaths = [\"/bin\"]\n{provides}\n\n[[source.copy]]\nfrom = \"files\"\nto = \"/\"\n"
        ),
    );
    write(
        &root,
        "strata.toml",
        &format!("[project]\nname = \"pv\"\n{strata_extra}\n[images.img]\nlayers = [\"base\"]\n"),
    );
    root
}

#[test]
fn libraries_and_binaries_are_checked_through_symlinks_within_the_image() {
    let env = Env::new();
    let good =
        "binaries = [\"tool\", \"sh\"]\nlibraries = [\"libfoo.so.1\", \"/opt/lib/libopt.so\"]";
    let root = project(&env, good, "");
    let p = root.to_str().unwrap();
    env.ok(&["check", "-C", p]);
    // A dangling link is no binary; a library nowhere the loader looks is
    // missing; both name the key, the layer.toml and where it looked.
    let root = {
        let env2 = Env::new();
        let r = project(
            &env2,
            "binaries = [\"tool\", \"gone\"]\nlibraries = [\"libfoo.so.1\", \"libmissing.so.3\", \"libopt.so\"]",
            "",
        );
        let err = env2.fails(&["check", "-C", r.to_str().unwrap()]);
        assert!(
            err.contains("layers/base/layer.toml key provides.binaries: \"gone\" is not an executable file under /bin"),
            "{err}"
        );
        assert!(
            err.contains("layers/base/layer.toml key provides.libraries: \"libmissing.so.3\"")
                && err.contains("/usr/lib/")
                && err.contains("provides.libraries: \"libopt.so\""),
            "{err}"
        );
        assert!(
            !err.contains("\"tool\"") && !err.contains("\"libfoo.so.1\""),
            "{err}"
        );
        // LD_LIBRARY_PATH in a layer's env is where the loader looks too.
        common::replace(
            &r,
            "layers/base/layer.toml",
            "[provides]",
            "[env]\nLD_LIBRARY_PATH = \"/opt/lib\"\n\n[provides]",
        );
        let err = env2.fails(&["check", "-C", r.to_str().unwrap()]);
        assert!(!err.contains("\"libopt.so\""), "{err}");
        // The build checks the same, and tags nothing.
        let err = env2.fails(&["build", "-C", r.to_str().unwrap()]);
        assert!(err.contains("\"gone\""), "{err}");
        assert!(env2.fails(&["inspect", "pv/img:latest"]).contains("pv/img"));
        root
    };
    // A second check reads the cached listing (symlink targets included)
    // and agrees.
    env.ok(&["check", "-C", root.to_str().unwrap()]);
}

#[test]
fn default_tags_apply_and_descriptions_reach_the_sbom() {
    let env = Env::new();
    let root = project(
        &env,
        "binaries = [\"tool\"]",
        "\n[defaults]\ntags = [\"{project}/{image}:d-{version}\"]\n",
    );
    let p = root.to_str().unwrap();
    env.ok(&["build", "-C", p]);
    env.ok(&["inspect", "pv/img:d-1.2"]);
    assert!(
        env.fails(&["inspect", "pv/img:latest"])
            .contains("pv/img:latest")
    );
    let script = env.ok(&["env", "-C", p, "img", "--engine", "docker"]);
    assert!(script.contains("'pv/img:d-1.2'"), "{script}");
    let sbom: serde_json::Value = serde_json::from_str(&env.ok(&["sbom", "pv/img:d-1.2"])).unwrap();
    let layer = sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "base")
        .unwrap_or_else(|| panic!("{sbom}"));
    assert_eq!(layer["description"], "a small base", "{sbom}");
}
