//! Layers from Debian packages, against a local signed apt repository
//! served over loopback (no network), and one test against the machine's
//! configured Debian archive (skipped, and said so, when it does not answer).

mod common;

use std::fs;
use std::path::Path;

use common::apt::{Layout, Pkg, gen_key, project, repo};
use common::{Env, Schemas, files_under, have, note, replace, run, runc_run, write};

/// Sets `[defaults] registry` of the test project.
fn with_registry(root: &Path, host: &str) {
    replace(
        root,
        "strata.toml",
        "[project]\nname = \"debtest\"\n",
        &format!("[project]\nname = \"debtest\"\n\n[defaults]\nregistry = \"{host}\"\n"),
    );
}

fn build(env: &Env, root: &Path) -> std::process::Output {
    env.strata(&["build", "-C", root.to_str().unwrap(), "--json"])
}

/// Builds and asserts success; returns the JSON build report.
fn build_ok(env: &Env, root: &Path) -> serde_json::Value {
    let out = build(env, root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Layer `name`'s entry in a build report.
fn layer_report(report: &serde_json::Value, name: &str) -> serde_json::Value {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap()
        .clone()
}

fn listing(env: &Env) -> String {
    env.ok(&["ls", "debtest/app:latest"])
}

#[test]
fn deb_layer_resolves_builds_and_runs() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, &["hello"], true, &r.keyring);
    let proj = root.to_str().unwrap();
    // plan shows the resolved set, dependencies first, without building.
    let plan = env.ok(&["plan", "-C", proj]);
    assert!(
        plan.contains("3 packages: libgreet=2.0 postfix=3.0 hello=1.0-1"),
        "{plan}"
    );
    let report = build_ok(&env, &root);
    let pkgs = layer_report(&report, "pkgs");
    assert_eq!(pkgs["status"], "built");
    let ls = listing(&env);
    // Packages' files, the dpkg status entries, no exim (postfix is chosen
    // by priority); /bin stays a directory on the busybox base.
    for want in [
        "usr/bin/hello",
        "usr/lib/greet.txt",
        "etc/postfix/main.cf",
        "var/lib/dpkg/status.d/hello",
        "var/lib/dpkg/status.d/libgreet",
        "bin/hi",
        "lib/greet/extra",
    ] {
        assert!(ls.contains(want), "missing {want} in:\n{ls}");
    }
    assert!(!ls.contains("exim"), "{ls}");
    // Rebuild: the layer comes from the cache, same digest.
    let again = build(&env, &root);
    let report2: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report2["cache_hit_rate"], 1.0, "{report2}");
    assert_eq!(
        report["images"][0]["digest"],
        report2["images"][0]["digest"]
    );
    // Same bytes in a fresh store: the layer is deterministic.
    let env2 = Env::new();
    let out2 = env2.strata(&["build", "-C", proj, "--json"]);
    assert!(
        out2.status.success(),
        "{}",
        String::from_utf8_lossy(&out2.stderr)
    );
    let report3: serde_json::Value = serde_json::from_slice(&out2.stdout).unwrap();
    assert_eq!(
        report["images"][0]["digest"],
        report3["images"][0]["digest"]
    );
    // The SBOM: every package with version, architecture and layer, and
    // the layers' sources; stored as an artifact whose subject is the image.
    let sbom: serde_json::Value =
        serde_json::from_str(&env.ok(&["sbom", "debtest/app:latest"])).unwrap();
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    let pkgs = sbom["packages"].as_array().unwrap();
    let hello = pkgs.iter().find(|p| p["name"] == "hello").unwrap();
    assert_eq!(hello["versionInfo"], "1.0-1");
    let arch = common::apt::host_arch();
    assert_eq!(
        hello["externalRefs"][0]["referenceLocator"],
        format!("pkg:deb/debian/hello@1.0-1?arch={arch}")
    );
    assert!(
        hello["comment"]
            .as_str()
            .unwrap()
            .contains(&format!("architecture {arch}; layer pkgs")),
        "{hello}"
    );
    let layer = pkgs.iter().find(|p| p["name"] == "pkgs").unwrap();
    assert_eq!(layer["sourceInfo"], "deb:hello");
    assert!(
        pkgs.iter()
            .any(|p| p["sourceInfo"] == "copy:layers/base/rootfs"),
        "{sbom}"
    );
    assert_eq!(report["images"][0]["packages"], 3);
    let digest = report["images"][0]["digest"].as_str().unwrap();
    let tag = format!("debtest/app:{}.spdx", digest.replace(':', "-"));
    assert_eq!(report["images"][0]["sbom"], tag);
    let idx: serde_json::Value =
        serde_json::from_slice(&fs::read(env.store().join("index.json")).unwrap()).unwrap();
    let art = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str())
        .unwrap();
    let hex = art["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(env.store().join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    Schemas::new().check(
        "image-manifest-schema.json",
        &manifest,
        "SBOM artifact manifest",
    );
    assert_eq!(manifest["artifactType"], "application/spdx+json");
    assert_eq!(manifest["subject"]["digest"], digest);

    if have("umoci") && have("runc") {
        let (ok, stdout, stderr) = runc_run(&env, "debtest/app:latest");
        assert!(ok, "runc failed: {stderr}");
        assert_eq!(stdout, "hello from deb\nv2\n");
        note("deb layer image under runc", "RAN");
    } else {
        note("deb layer image under runc", "SKIPPED (no umoci or runc)");
    }
}

#[test]
fn deb_layers_stack_merged_usr_and_skip_what_is_beneath() {
    let env = Env::new();
    let r = repo(&env);
    // Two deb layers and no busybox: "low" has libgreet, "pkgs" needs hello.
    let root = project(&env, &r, &["hello"], false, &r.keyring);
    write(
        &root,
        "layers/low/layer.toml",
        &format!(
            "[layer]\nname = \"low\"\n\n[source.deb]\npackages = [\"libgreet\"]\n\n{}",
            r.toml(&r.keyring)
        ),
    );
    replace(
        &root,
        "layers/pkgs/layer.toml",
        "[source.deb]",
        "[runtime]\nlayers = [\"low\"]\n\n[source.deb]",
    );
    let plan = env.ok(&["plan", "-C", root.to_str().unwrap(), "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let pk = |n: &str| -> Vec<String> {
        plan["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == n)
            .unwrap()["packages"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(pk("low"), ["libgreet=2.0"]);
    // libgreet lives once, in the lower layer.
    assert_eq!(pk("pkgs"), ["postfix=3.0", "hello=1.0-1"]);
    let out = build(&env, &root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ls = listing(&env);
    // Merged /usr: the lowest deb layer carries the links, /bin and /lib
    // paths of packages land below /usr.
    assert!(ls.contains("bin -> usr/bin"), "{ls}");
    assert!(ls.contains("usr/bin/hi"), "{ls}");
    assert!(ls.contains("usr/lib/greet/extra"), "{ls}");
    assert_eq!(
        ls.matches("var/lib/dpkg/status.d/libgreet\n").count(),
        1,
        "{ls}"
    );
}

#[test]
fn one_layer_per_package() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, &["hello"], true, &r.keyring);
    replace(
        &root,
        "layers/pkgs/layer.toml",
        "[source.deb]\n",
        "[source.deb]\none_layer_per_package = true\n",
    );
    let report = build_ok(&env, &root);
    let pkgs = layer_report(&report, "pkgs");
    assert_eq!(pkgs["digests"].as_array().unwrap().len(), 3, "{pkgs}");
    let inspect = env.ok(&["inspect", "debtest/app:latest", "--json"]);
    for p in ["libgreet=2.0", "postfix=3.0", "hello=1.0-1"] {
        assert!(inspect.contains(&format!("deb:{p}")), "{p} in {inspect}");
    }
    let again = build(&env, &root);
    let report2: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report2["cache_hit_rate"], 1.0);
    // A changed image gets a new SBOM; the old image's SBOM tag goes.
    let spdx_tags = || {
        let idx = fs::read_to_string(env.store().join("index.json")).unwrap();
        idx.matches(".spdx\"").count()
    };
    assert_eq!(spdx_tags(), 1);
    replace(&root, "strata.toml", "/usr/bin/hello", "/bin/hi");
    let third = build(&env, &root);
    let report3: serde_json::Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_ne!(
        report3["images"][0]["digest"],
        report2["images"][0]["digest"]
    );
    assert_eq!(spdx_tags(), 1);
    env.ok(&["sbom", "debtest/app:latest"]);
}

/// Builds with `packages` and expects failure naming `want`, with nothing
/// written to the store.
fn fails(env: &Env, root: &Path, want: &[&str]) -> String {
    let out = build(env, root);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "should fail");
    for w in want {
        assert!(err.contains(w), "expected {w:?} in: {err}");
    }
    assert!(
        files_under(&env.store().join("blobs")).is_empty(),
        "store has blobs"
    );
    err
}

#[test]
fn bad_signature_and_missing_key() {
    let env = Env::new();
    let r = repo(&env);
    // A key that did not sign the Release.
    let other = env.path("other.gpg");
    gen_key(
        &env.path("gnupg2"),
        &other,
        "someone else <else@example.invalid>",
    );
    let root = project(&env, &r, &["hello"], true, &other);
    fails(
        &env,
        &root,
        &["not in the trusted keyring", "InRelease", "signed_by"],
    );
    assert!(!env.store().join(".strata/deb/releases").exists());
    // A Release altered after signing.
    replace(
        &r.root,
        "dists/stable/InRelease",
        "Origin: strata-test",
        "Origin: strata-evil",
    );
    let root = project(&env, &r, &["hello"], true, &r.keyring);
    fails(&env, &root, &["BAD signature", "InRelease"]);
    assert!(!env.store().join(".strata/deb/releases").exists());
}

#[test]
fn index_and_deb_hash_mismatches() {
    let env = Env::new();
    let r = repo(&env);
    let idx = r
        .root
        .join(format!("dists/stable/main/binary-{}/Packages.gz", r.arch));
    let good = fs::read(&idx).unwrap();
    fs::write(&idx, b"\x1f\x8b not the index").unwrap();
    let root = project(&env, &r, &["hello"], true, &r.keyring);
    fails(
        &env,
        &root,
        &["Packages.gz", "was expected", "nothing was cached"],
    );
    // Nothing was cached but the Release: the index is not in the deb
    // cache, and no temp file is left there.
    let cached = files_under(&env.store().join(".strata/deb/blobs"));
    let release = fs::read(r.root.join("dists/stable/Release")).unwrap();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(fs::read(&cached[0]).unwrap(), release);
    fs::write(&idx, good).unwrap();
    // A .deb swapped after the index was written.
    let hello = r.root.join(format!("pool/main/hello_1.0-1_{}.deb", r.arch));
    let lib = r
        .root
        .join(format!("pool/main/libgreet_1.0_{}.deb", r.arch));
    fs::copy(&lib, &hello).unwrap();
    fails(&env, &root, &["package hello 1.0-1", "was expected"]);
}

#[test]
fn resolution_errors() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, &["helo"], true, &r.keyring);
    fails(
        &env,
        &root,
        &[
            "layers/pkgs/layer.toml",
            "\"helo\" not found",
            "did you mean \"hello\"",
        ],
    );
    let root = project(&env, &r, &["broken"], true, &r.keyring);
    fails(
        &env,
        &root,
        &[
            "unmet dependency: broken 1.0 depends on libgreet (>= 3)",
            "chain: broken",
        ],
    );
    let root = project(&env, &r, &["postfix", "exim"], true, &r.keyring);
    fails(
        &env,
        &root,
        &["conflicting packages", "exim 4.0", "postfix"],
    );
    let root = project(&env, &r, &["evil"], true, &r.keyring);
    fails(&env, &root, &["unsafe path", "../../etc/evil", "evil 1.0"]);
}

#[test]
fn unknown_key_in_source_deb() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, &["hello"], true, &r.keyring);
    replace(
        &root,
        "layers/pkgs/layer.toml",
        "[source.deb]\n",
        "[source.deb]\npackage = \"x\"\n",
    );
    let err = env.fails(&["plan", "-C", root.to_str().unwrap()]);
    assert!(
        err.contains("layers/pkgs/layer.toml line") && err.contains("package"),
        "{err}"
    );
}

fn skopeo_raw(reference: &str) -> serde_json::Value {
    let raw = run(std::process::Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--raw",
        reference,
    ]));
    serde_json::from_str(&raw).unwrap()
}

#[test]
fn sbom_is_attached_in_a_registry_without_the_referrers_api() {
    if !have("docker-registry") || !have("skopeo") {
        note(
            "SBOM attached in docker-registry",
            "SKIPPED (no docker-registry or skopeo)",
        );
        return;
    }
    let reg = common::registry::Registry::start(common::registry::Auth::None, false);
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, &["hello"], true, &r.keyring);
    with_registry(&root, &reg.host());
    let proj = root.to_str().unwrap();
    let report = env.ok(&["build", "-C", proj, "--push", "--attach-sbom", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let digest = report["images"][0]["digest"].as_str().unwrap().to_string();
    // distribution 2.8 has no referrers API: the sha256-HEX tag index lists it.
    let fallback = format!(
        "docker://{}/debtest/app:{}",
        reg.host(),
        digest.replace(':', "-")
    );
    let index = skopeo_raw(&fallback);
    Schemas::new().check("image-index-schema.json", &index, "referrers index");
    let refs = index["manifests"].as_array().unwrap();
    assert_eq!(refs.len(), 1, "{index}");
    assert_eq!(refs[0]["artifactType"], "application/spdx+json");
    // The artifact manifest is in the registry and names the image.
    let art = skopeo_raw(&format!(
        "docker://{}/debtest/app@{}",
        reg.host(),
        refs[0]["digest"].as_str().unwrap()
    ));
    assert_eq!(art["subject"]["digest"], digest.as_str());
    // A second push leaves one entry (no duplicates).
    env.ok(&["build", "-C", proj, "--push", "--attach-sbom"]);
    let index = skopeo_raw(&fallback);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    note(
        "SBOM attached in docker-registry (tag-schema fallback)",
        "RAN",
    );
}

#[test]
fn stale_or_replayed_release_is_refused() {
    let env = Env::new();
    let mut r = repo(&env);
    // The same signed Release served as another suite: a replay.
    run(std::process::Command::new("cp")
        .arg("-r")
        .arg(r.root.join("dists/stable"))
        .arg(r.root.join("dists/other")));
    let root = project(&env, &r, &["hello"], true, &r.keyring);
    replace(
        &root,
        "layers/pkgs/layer.toml",
        "suite = \"stable\"",
        "suite = \"other\"",
    );
    fails(
        &env,
        &root,
        &[
            "dists/other/InRelease",
            "is for suite \"stable\"",
            "not \"other\"",
        ],
    );
    // An expired Release (Valid-Until in the past).
    r.release_extra = "Valid-Until: Sat, 01 Jan 2000 00:00:00 UTC\n".into();
    r.publish();
    let root = project(&env, &r, &["hello"], true, &r.keyring);
    fails(&env, &root, &["expired on Sat, 01 Jan 2000", "Valid-Until"]);
    assert!(!env.store().join(".strata/deb/releases").exists());
}

#[test]
fn rebuilds_work_offline_from_the_download_cache() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, &["hello"], true, &r.keyring);
    build_ok(&env, &root);
    // The repository is gone (every request answers 404) and the layer
    // cache is cleared: the layer is built again from cached downloads.
    fs::remove_dir_all(&r.root).unwrap();
    fs::remove_dir_all(env.store().join(".strata/layers")).unwrap();
    let report = build_ok(&env, &root);
    assert_eq!(layer_report(&report, "pkgs")["status"], "built");
    // Asking for a refresh needs the repository.
    let err = env.fails(&["build", "-C", root.to_str().unwrap(), "--refresh"]);
    assert!(err.contains("InRelease or Release"), "{err}");
}

#[test]
fn packages_in_a_lower_layers_dpkg_status_are_left_out() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, &["hello"], true, &r.keyring);
    // The busybox base also carries a dpkg status that has libgreet 2.0.
    write(
        &root,
        "layers/base/rootfs/var/lib/dpkg/status",
        &format!(
            "Package: libgreet\nStatus: install ok installed\nVersion: 2.0\nArchitecture: {}\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: all\n",
            r.arch
        ),
    );
    let plan = env.ok(&["plan", "-C", root.to_str().unwrap()]);
    assert!(
        plan.contains("2 packages: postfix=3.0 hello=1.0-1"),
        "{plan}"
    );
    // Too old beneath: the error names the layer and what to do.
    replace(
        &root,
        "layers/base/rootfs/var/lib/dpkg/status",
        "Version: 2.0",
        "Version: 1.0",
    );
    let err = env.fails(&["plan", "-C", root.to_str().unwrap()]);
    assert!(
        err.contains(
            "libgreet 1.0 is in layer base beneath, which does not meet libgreet (>= 2.0)"
        ),
        "{err}"
    );
}

/// A registry with the referrers API finds the SBOM by itself: no
/// `sha256-HEX` fallback tag is written. (docker-registry has no referrers
/// API, so this uses the in-process fake.)
#[test]
fn sbom_uses_the_referrers_api_where_the_registry_has_it() {
    let fake = common::fake::Fake::start(common::fake::Faults {
        referrers_api: true,
        ..Default::default()
    });
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, &["hello"], true, &r.keyring);
    with_registry(&root, &fake.host());
    let report = env.ok(&[
        "build",
        "-C",
        root.to_str().unwrap(),
        "--push",
        "--attach-sbom",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let digest = report["images"][0]["digest"].as_str().unwrap().to_string();
    let seen = fake.seen();
    assert!(
        seen.iter()
            .any(|s| s.method == "GET" && s.path.ends_with(&format!("/referrers/{digest}"))),
        "{seen:?}"
    );
    let fallback = format!("/manifests/{}", digest.replace(':', "-"));
    assert!(
        !seen
            .iter()
            .any(|s| s.method == "PUT" && s.path.ends_with(&fallback)),
        "no fallback tag: {seen:?}"
    );
    // The artifact itself was pushed, with the image as its subject.
    let st = fake.state.lock().unwrap();
    let with_subject = st.manifests.values().any(|(_, b)| {
        let m: serde_json::Value = serde_json::from_slice(b).unwrap_or_default();
        m["subject"]["digest"] == digest.as_str() && m["artifactType"] == "application/spdx+json"
    });
    assert!(with_subject);
}

/// Whether paths go below /usr depends on the layers beneath; when that
/// changes, the deb layer is rebuilt, not taken from the cache.
#[test]
fn a_change_of_bin_beneath_rebuilds_the_deb_layer() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, &["hello"], true, &r.keyring);
    // The base's /bin becomes a link to usr/bin (merged /usr beneath).
    let rootfs = root.join("layers/base/rootfs");
    fs::create_dir_all(rootfs.join("usr")).unwrap();
    fs::rename(rootfs.join("bin"), rootfs.join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("usr/bin", rootfs.join("bin")).unwrap();
    build_ok(&env, &root);
    let ls = listing(&env);
    assert!(ls.contains("usr/bin/hi"), "{ls}");
    // Back to a real /bin directory: paths stay as the packages name them.
    fs::remove_file(rootfs.join("bin")).unwrap();
    fs::rename(rootfs.join("usr/bin"), rootfs.join("bin")).unwrap();
    let report = build_ok(&env, &root);
    assert_eq!(layer_report(&report, "pkgs")["status"], "built", "{report}");
    let ls = listing(&env);
    let pkgs_layer = ls.rsplit("# layer").next().unwrap();
    assert!(pkgs_layer.contains(" /bin/hi"), "{ls}");
}

/// README: the Release is signed inline (InRelease) or detached (Release +
/// Release.gpg); indexes are read as xz, gzip or plain, by hash when the
/// Release offers it. Each repository below offers only the one form.
#[test]
fn detached_signatures_xz_and_by_hash_indexes() {
    for layout in [Layout::Detached, Layout::XzOnly, Layout::ByHashOnly] {
        let env = Env::new();
        let mut r = repo(&env);
        r.layout = layout;
        r.publish();
        let suite = r.root.join("dists/stable");
        let index_dir = suite.join(format!("main/binary-{}", r.arch));
        match layout {
            Layout::Detached => assert!(!suite.join("InRelease").exists()),
            Layout::XzOnly => assert!(!index_dir.join("Packages.gz").exists()),
            _ => assert!(
                !index_dir.join("Packages.gz").exists() && index_dir.join("by-hash").exists()
            ),
        }
        let root = project(&env, &r, &["hello"], true, &r.keyring);
        build_ok(&env, &root);
        assert!(listing(&env).contains("/usr/bin/hello"), "{layout:?}");
        if layout == Layout::Detached {
            // A detached signature over other bytes is refused.
            let env = Env::new();
            replace(
                &r.root,
                "dists/stable/Release",
                "Origin: strata-test",
                "Origin: strata-evil",
            );
            let root = project(&env, &r, &["hello"], true, &r.keyring);
            fails(&env, &root, &["BAD signature", "dists/stable/Release"]);
        }
    }
}

/// README: resolution follows Pre-Depends, `:native` and `:any`, refuses
/// what Breaks (as Conflicts), and two packages may ship the same file only
/// when one Replaces the other, whose copy it then overwrites.
#[test]
fn pre_depends_native_breaks_and_replaces() {
    let env = Env::new();
    let mut r = repo(&env);
    type Fields<'a> = &'a [(&'a str, &'a str)];
    type Files<'a> = &'a [(&'a str, &'a str, u32)];
    type Package<'a> = (&'a str, Fields<'a>, Files<'a>);
    let pkgs: &[Package] = &[
        (
            "early",
            &[("Pre-Depends", "libgreet (>= 2.0)")],
            &[("/usr/share/early", "e\n", 0o644)],
        ),
        (
            "native",
            &[("Depends", "libgreet:native, hello:any")],
            &[("/usr/share/native", "n\n", 0o644)],
        ),
        (
            "breaker",
            &[("Breaks", "hello (<< 2)")],
            &[("/usr/share/breaker", "b\n", 0o644)],
        ),
        ("dup-a", &[], &[("/usr/share/dup", "from a\n", 0o644)]),
        ("dup-b", &[], &[("/usr/share/dup", "from b\n", 0o644)]),
        (
            "dup-c",
            &[("Replaces", "dup-a")],
            &[("/usr/share/dup", "from c\n", 0o644)],
        ),
    ];
    for (name, fields, files) in pkgs {
        r.add(&Pkg {
            name,
            version: "1.0",
            arch: "any",
            fields,
            files,
        });
    }
    r.publish();
    let ls = |packages: &[&str]| {
        let root = project(&env, &r, packages, true, &r.keyring);
        build_ok(&env, &root);
        listing(&env)
    };
    let l = ls(&["early"]);
    assert!(
        l.contains("/usr/share/early") && l.contains("/lib/greet/extra"),
        "{l}"
    );
    let l = ls(&["native"]);
    assert!(
        l.contains("/usr/lib/greet.txt") && l.contains("/usr/bin/hello"),
        "{l}"
    );
    let root = project(&env, &r, &["breaker", "hello"], true, &r.keyring);
    let out = build(&env, &root);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("breaker") && err.contains("hello"), "{err}");
    let root = project(&env, &r, &["dup-a", "dup-b"], true, &r.keyring);
    let out = build(&env, &root);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("/usr/share/dup") && err.contains("Replaces"),
        "{err}"
    );
    ls(&["dup-a", "dup-c"]);
    assert!(listing(&env).contains("/usr/share/dup"));
    if common::have("runc") && unsafe { libc::geteuid() } == 0 {
        let out = env.ok(&[
            "run",
            "--entrypoint",
            "/bin/cat",
            "debtest/app:latest",
            "--",
            "/usr/share/dup",
        ]);
        assert_eq!(out, "from c\n", "the replacing package's copy");
    }
}

/// `strata check` after a build lists deb layers from the listings cached
/// under their keys, as build does: with every .deb gone from the
/// repository and from the download cache, it still checks, and the same.
#[test]
fn check_after_a_build_reads_no_deb() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, &["hello"], true, &r.keyring);
    replace(
        &root,
        "layers/pkgs/layer.toml",
        "[source.deb]",
        "[provides]\nbinaries = [\"hello\"]\npaths = [\"/usr/bin\"]\n\n[source.deb]",
    );
    build_ok(&env, &root);
    let p = root.to_str().unwrap();
    let before = env.ok(&["check", "-C", p, "--json"]);
    fs::remove_dir_all(r.root.join("pool")).unwrap();
    for f in files_under(&env.store().join(".strata/deb/blobs")) {
        if !fs::read(&f).unwrap().starts_with(b"Origin:") {
            fs::remove_file(f).unwrap();
        }
    }
    assert_eq!(env.ok(&["check", "-C", p, "--json"]), before);
    // A layer whose key changed is listed from its source again: here its
    // .debs are gone, and check says which.
    replace(
        &root,
        "layers/pkgs/layer.toml",
        "version = \"1\"",
        "version = \"2\"",
    );
    let err = env.fails(&["check", "-C", p]);
    assert!(
        err.contains("not found") && err.contains("pool/main/"),
        "{err}"
    );
}
