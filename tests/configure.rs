//! `configure = true` in `[source.deb]`: maintainer scripts run in the
//! sandbox over the layers beneath, and what they write is one more blob
//! of the deb layer. Against a local signed apt repository on loopback.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::apt::{Pkg, Repo};
use common::{BUSYBOX, Env, have, note, replace, write};

unsafe extern "C" {
    fn geteuid() -> u32;
}

const POSTINST: &str = "#!/bin/sh\nset -e\nmkdir -p /etc\n\
echo \"$1 $DPKG_MAINTSCRIPT_PACKAGE $DPKG_MAINTSCRIPT_NAME\" > /etc/greeter.conf\n\
mkdir -p /var/lib/greeter\n\
grep -c '^Package: greeter$' /var/lib/dpkg/status > /var/lib/greeter/status-count\n\
command -v adduser >/dev/null || true\n";

/// A repository with `greeter` (a preinst and a postinst that write files
/// and read dpkg's status) and `failing` (a postinst that exits 3).
fn repo(env: &Env) -> Repo {
    let mut r = Repo::new(env.dir.path());
    r.add(&Pkg {
        name: "greeter",
        version: "1.0",
        arch: "any",
        fields: &[],
        files: &[
            (
                "/usr/bin/greeter",
                "#!/bin/sh\ncat /etc/greeter.conf\n",
                0o755,
            ),
            (
                "/DEBIAN/preinst",
                "#!/bin/sh\nmkdir -p /etc\necho \"$1\" > /etc/preinst.arg\n",
                0o755,
            ),
            ("/DEBIAN/postinst", POSTINST, 0o755),
        ],
    });
    r.add(&Pkg {
        name: "failing",
        version: "1.0",
        arch: "any",
        fields: &[],
        files: &[
            ("/usr/share/failing/x", "x\n", 0o644),
            (
                "/DEBIAN/postinst",
                "#!/bin/sh\necho boom from failing\nexit 3\n",
                0o755,
            ),
        ],
    });
    r.publish();
    r
}

/// A busybox base and a deb layer `pkgs` over it asking for `package`,
/// with `configure` as given.
fn project(env: &Env, r: &Repo, package: &str, configure: bool) -> PathBuf {
    let root = env.path("proj");
    let _ = fs::remove_dir_all(&root);
    let bin = root.join("layers/base/rootfs/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
    for applet in ["sh", "cat", "mkdir", "cp", "chmod", "rm", "grep"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    write(
        &root,
        "layers/base/layer.toml",
        "[layer]\nname = \"base\"\nversion = \"1\"\n\n[[source.copy]]\nfrom = \"rootfs\"\nto = \"/\"\n",
    );
    write(
        &root,
        "layers/pkgs/layer.toml",
        &format!(
            "[layer]\nname = \"pkgs\"\nversion = \"1\"\n\n[runtime]\nlayers = [\"base\"]\n\n\
             [source.deb]\npackages = [\"{package}\"]\nconfigure = {configure}\n\n{}",
            r.toml(&r.keyring)
        ),
    );
    write(
        &root,
        "strata.toml",
        "[project]\nname = \"conftest\"\n\n[images.app]\nlayers = [\"pkgs\"]\n",
    );
    root
}

fn build(env: &Env, root: &Path) -> (serde_json::Value, String) {
    let out = env.strata(&["build", "-C", root.to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

fn pkgs(report: &serde_json::Value) -> serde_json::Value {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "pkgs")
        .unwrap()
        .clone()
}

fn can_run(check: &str) -> bool {
    if unsafe { geteuid() } != 0 || !have("runc") || !have("dpkg-deb") {
        note(
            check,
            "SKIPPED (maintainer scripts need root, runc and dpkg-deb)",
        );
        return false;
    }
    note(check, "RAN");
    true
}

#[test]
fn maintainer_scripts_run_and_are_captured_as_one_more_blob() {
    if !can_run("deb layer maintainer scripts (configure = true)") {
        return;
    }
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, "greeter", true);
    let (report, _) = build(&env, &root);
    let layer = pkgs(&report);
    let digests = layer["digests"].as_array().unwrap().clone();
    assert_eq!(
        digests.len(),
        2,
        "packages, then what the scripts wrote: {layer}"
    );
    let ls = env.ok(&["ls", "conftest/app:latest"]);
    for present in [
        " /etc/greeter.conf\n",
        " /etc/preinst.arg\n",
        " /var/lib/greeter/status-count\n",
        " /var/lib/dpkg/info/greeter.postinst\n",
    ] {
        assert!(ls.contains(present), "{present} missing:\n{ls}");
    }
    // dpkg's scratch files and the policy-rc.d stay out of the layer.
    for absent in [
        " /var/lib/dpkg/status\n",
        " /usr/sbin/policy-rc.d\n",
        " /run/",
    ] {
        assert!(!ls.contains(absent), "{absent} captured:\n{ls}");
    }
    let run = |cmd: &str| env.ok(&["run", "conftest/app:latest", "--", "sh", "-c", cmd]);
    assert_eq!(run("cat /etc/greeter.conf"), "configure greeter postinst\n");
    assert_eq!(run("cat /etc/preinst.arg"), "install\n");
    // The postinst saw the package in dpkg's status.
    assert_eq!(run("cat /var/lib/greeter/status-count"), "1\n");

    // A no-op rebuild runs nothing.
    let (again, _) = build(&env, &root);
    assert_eq!(pkgs(&again)["status"], "cached");
    assert_eq!(pkgs(&again)["digests"], layer["digests"]);
    // strata.lock holds both blobs, and --locked finds them in the cache.
    env.ok(&["build", "-C", root.to_str().unwrap(), "--locked"]);

    // A change beneath reruns the scripts (the packages' blob is reused).
    fs::write(root.join("layers/base/rootfs/marker"), "new\n").unwrap();
    let (changed, _) = build(&env, &root);
    let after = pkgs(&changed);
    assert_eq!(after["status"], "built", "{after}");
    assert_eq!(
        after["digests"][0], digests[0],
        "the packages' blob is reused"
    );
    // The scripts write the same bytes: the same blob comes out again.
    assert_eq!(after["digests"][1], digests[1]);
    assert_ne!(
        after["key"], layer["key"],
        "the key covers the layers beneath"
    );

    // A second store gives the same blobs.
    let other = Env::new();
    let root2 = other.path("elsewhere/proj");
    fs::create_dir_all(root2.parent().unwrap()).unwrap();
    common::run(
        std::process::Command::new("cp")
            .arg("-r")
            .arg(&root)
            .arg(&root2),
    );
    let (second, _) = build(&other, &root2);
    assert_eq!(pkgs(&second)["digests"], after["digests"]);
}

#[test]
fn without_configure_the_warning_names_each_package_and_what_is_missing() {
    if !can_run("deb layer maintainer script warnings") {
        return;
    }
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, "greeter", false);
    let (report, _) = build(&env, &root);
    assert_eq!(pkgs(&report)["digests"].as_array().unwrap().len(), 1);
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("maintainer scripts did not run (configure = true in [source.deb] runs them)")
            && warnings.contains("package greeter: its postinst and preinst did not run; likely missing: system users or groups"),
        "{warnings}"
    );
    let ls = env.ok(&["ls", "conftest/app:latest"]);
    assert!(!ls.contains(" /etc/greeter.conf\n"), "{ls}");
    // Not said again when the layer comes from the cache; check says it
    // every time.
    let (again, _) = build(&env, &root);
    assert_eq!(pkgs(&again)["status"], "cached");
    assert!(
        !again["warnings"].to_string().contains("did not run"),
        "{}",
        again["warnings"]
    );
    for _ in 0..2 {
        let out = env.strata(&["check", "-C", root.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains("warning: image ")
                && err.contains("package greeter: its postinst and preinst did not run"),
            "{err}"
        );
    }
    // Turning configure on runs them.
    replace(
        &root,
        "layers/pkgs/layer.toml",
        "configure = false",
        "configure = true",
    );
    let (on, _) = build(&env, &root);
    assert_eq!(pkgs(&on)["digests"].as_array().unwrap().len(), 2);
    assert!(
        !on["warnings"].to_string().contains("did not run"),
        "{}",
        on["warnings"]
    );
}

#[test]
fn a_failing_postinst_names_the_package_and_tags_nothing() {
    if !can_run("deb layer maintainer script failure") {
        return;
    }
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, "failing", true);
    let err = env.fails(&["build", "-C", root.to_str().unwrap()]);
    for want in [
        "layer pkgs",
        "layers/pkgs/layer.toml",
        "failing postinst configure failed with exit status 3",
        "boom from failing",
        "the whole log is",
    ] {
        assert!(err.contains(want), "{want:?} not in:\n{err}");
    }
    let ls = env.strata(&["ls", "conftest/app:latest"]);
    assert!(!ls.status.success(), "the image was tagged");
    // Nothing is left mounted or staged.
    let run = env.store().join(".strata/run");
    let left: Vec<_> = fs::read_dir(&run)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", run.display());
}
