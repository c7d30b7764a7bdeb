//! Deb layers in the registry cache: their records carry the packages'
//! dpkg status paragraphs, so a fresh machine writes the image's dpkg
//! database without downloading a single .deb.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::apt::{Pkg, Repo, project, repo};
use common::registry::{Auth, Registry};
use common::{Env, build_json, layer_status, replace};
use serde_json::Value;

/// The test repository plus dpkg itself (so images get a dpkg database
/// layer) and a package whose postinst installs an alternative.
fn deb_repo(env: &Env) -> Repo {
    let mut r = repo(env);
    r.add(&Pkg {
        name: "dpkg",
        version: "1.21",
        arch: "any",
        fields: &[],
        files: &[("/usr/bin/dpkg", "#!/bin/sh\n", 0o755)],
    });
    r.add(&Pkg {
        name: "alty",
        version: "1.0",
        arch: "all",
        fields: &[],
        files: &[
            ("/usr/bin/alty.real", "#!/bin/sh\necho alty\n", 0o755),
            (
                "/DEBIAN/postinst",
                "#!/bin/sh\nupdate-alternatives --install /usr/bin/alty alty /usr/bin/alty.real 10\n",
                0o755,
            ),
        ],
    });
    r.publish();
    r
}

fn deb_cache_project(env: &Env, r: &Repo, host: &str) -> PathBuf {
    let root = project(env, r, &["hello", "dpkg", "alty"], true, &r.keyring);
    replace(
        &root,
        "strata.toml",
        "[project]\nname = \"debtest\"\n",
        &format!(
            "[project]\nname = \"debtest\"\n\n[defaults]\nregistry = \"{host}/team\"\ncache = \"docker://{host}/team/cache\"\n"
        ),
    );
    replace(
        &root,
        "strata.toml",
        "layers = [\"pkgs\"]",
        "layers = [\"base\", \"pkgs\"]",
    );
    root
}

#[test]
fn a_fresh_machine_writes_the_dpkg_database_of_cached_deb_layers_without_debs() {
    let reg = Registry::start(Auth::None, false);
    let a = Env::new();
    let r = deb_repo(&a);
    let pa = deb_cache_project(&a, &r, &reg.host());
    let first = build_json(&a, &pa, &["--push"]);
    assert_eq!(layer_status(&first, "pkgs"), "built", "{first}");
    // The image has its dpkg database layer (what B must write too).
    let image = first["images"][0]["pushed"][0].as_str().unwrap();
    let inspect = a.ok(&["inspect", "--json", image]);
    assert!(
        inspect.contains("dpkg-status:/var/lib/dpkg/status"),
        "{inspect}"
    );

    // The deb layer's record lists its packages with their status.
    let tags = a.ok(&["tags", &reg.r("team/cache")]);
    let tag = tags
        .lines()
        .find(|t| t.starts_with("pkgs."))
        .unwrap_or_else(|| panic!("{tags}"));
    let raw = common::run(std::process::Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("{}:{tag}", reg.r("team/cache")),
    ]));
    let m: Value = serde_json::from_str(&raw).unwrap();
    assert!(
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["mediaType"] == "application/vnd.strata.deb-packages.v1+zstd"),
        "{m}"
    );

    // Machine B: the packages' .debs are gone from the archive (its
    // indexes remain), so B can only succeed without downloading one.
    for e in fs::read_dir(r.root.join("pool/main")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "deb") {
            fs::remove_file(p).unwrap();
        }
    }
    let b = Env::new();
    let pb = deb_cache_project(&b, &r, &reg.host());
    let second = build_json(&b, &pb, &["--push"]);
    assert_eq!(layer_status(&second, "pkgs"), "remote", "{second}");
    assert_eq!(
        second["images"][0]["digest"], first["images"][0]["digest"],
        "same image, same dpkg database: {second}"
    );
    // A said what the scripts that did not run likely leave out (read
    // from the .debs); check on B says the same (from the record).
    let said = first["warnings"].to_string();
    assert!(said.contains("/usr/bin/alty (alternative)"), "{said}");
    let out = b.strata(&["check", "-C", pb.to_str().unwrap()]);
    let check = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{check}");
    assert!(
        check.contains(
            "package alty: its postinst did not run; likely missing: /usr/bin/alty (alternative)"
        ),
        "{check}"
    );
    let debs = common::files_under(&b.store().join(".strata/deb"))
        .into_iter()
        .filter(|p| fs::read(p).unwrap().starts_with(b"!<arch>\n"))
        .count();
    assert_eq!(debs, 0, "no .deb was downloaded");
}

/// A record whose package list would slip a second paragraph into the
/// image's dpkg database is not used: a miss with a warning naming it.
#[test]
fn a_package_list_with_a_smuggled_paragraph_is_a_miss() {
    let reg = Registry::start(Auth::None, false);
    let a = Env::new();
    let r = deb_repo(&a);
    let pa = deb_cache_project(&a, &r, &reg.host());
    build_json(&a, &pa, &["--push"]);
    // Rewrite every package fact on A so its next record is poisoned,
    // then record again into a fresh cache repository.
    let facts = a.store().join(".strata/deb/facts");
    for e in fs::read_dir(&facts).unwrap() {
        let p = e.unwrap().path();
        let v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        let poisoned = format!(
            "{}\nPackage: rootkit\nStatus: install ok installed\nVersion: 1\n",
            v["status"].as_str().unwrap()
        );
        fs::write(
            &p,
            serde_json::to_vec(&serde_json::json!({"status": poisoned})).unwrap(),
        )
        .unwrap();
    }
    replace(&pa, "strata.toml", "team/cache", "team/cache2");
    fs::remove_dir_all(a.store().join(".strata/cache-records")).unwrap();
    build_json(&a, &pa, &["--push"]);

    let b = Env::new();
    let pb = deb_cache_project(&b, &r, &reg.host());
    replace(&pb, "strata.toml", "team/cache", "team/cache2");
    let out = b.strata(&["build", "-C", pb.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(layer_status(&report, "pkgs"), "built", "{report}");
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("record pkgs.") && warnings.contains("not one paragraph of that package"),
        "{warnings}"
    );
    let facts = common::files_under(&b.store().join(".strata/deb/facts"));
    for f in facts {
        let text = fs::read_to_string(&f).unwrap();
        assert!(!text.contains("rootkit"), "{text}");
    }
}

/// A deb layer of one blob per package is one record holding every blob;
/// a fresh machine uses it whole.
#[test]
fn a_layer_of_several_blobs_is_one_record() {
    let reg = Registry::start(Auth::None, false);
    let a = Env::new();
    let r = deb_repo(&a);
    let per_package = |root: &Path| {
        replace(
            root,
            "layers/pkgs/layer.toml",
            "[source.deb]\n",
            "[source.deb]\none_layer_per_package = true\n",
        )
    };
    let pa = deb_cache_project(&a, &r, &reg.host());
    per_package(&pa);
    let first = build_json(&a, &pa, &["--push"]);
    let digests = |rep: &Value| {
        rep["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == "pkgs")
            .unwrap()["digests"]
            .clone()
    };
    let blobs = digests(&first);
    assert!(blobs.as_array().unwrap().len() > 2, "{first}");
    let tags = a.ok(&["tags", &reg.r("team/cache")]);
    assert_eq!(
        tags.lines().filter(|t| t.starts_with("pkgs.")).count(),
        1,
        "{tags}"
    );

    let b = Env::new();
    let pb = deb_cache_project(&b, &r, &reg.host());
    per_package(&pb);
    let second = build_json(&b, &pb, &["--push"]);
    assert_eq!(layer_status(&second, "pkgs"), "remote", "{second}");
    assert_eq!(digests(&second), blobs);
    assert_eq!(second["images"][0]["digest"], first["images"][0]["digest"]);
}
