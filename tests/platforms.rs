//! Multi-platform projects: `platforms` builds each image once per platform
//! into an OCI index; deb layers resolve each architecture's packages from
//! the same sources; copy layers are one blob shared by every platform.

mod common;

use std::fs;
use std::path::PathBuf;

use common::apt::{Pkg, Repo, host_arch, other_arch};
use common::{
    BUSYBOX, Env, Schemas, build_json as build, plan_json, platform_layer, replace, write,
};
use serde_json::Value;

/// The architecture that is not the host's (of amd64 and arm64).
/// A repository with `tool` for the host's architecture and the other one
/// (different files), and `shared` for all.
fn repo(env: &Env) -> Repo {
    let mut r = Repo::new(env.dir.path());
    let other = other_arch();
    r.extra_arches = vec![other.clone()];
    r.add(&Pkg {
        name: "tool",
        version: "1.0",
        arch: "any",
        fields: &[("Depends", "shared")],
        files: &[
            ("/usr/bin/tool", "#!/bin/sh\necho host build\n", 0o755),
            ("/usr/bin/tool-extra", "#!/bin/sh\n", 0o755),
        ],
    });
    r.add(&Pkg {
        name: "tool",
        version: "1.0",
        arch: &other,
        fields: &[("Depends", "shared")],
        files: &[("/usr/bin/tool", "#!/bin/sh\necho other build\n", 0o755)],
    });
    r.add(&Pkg {
        name: "shared",
        version: "2.0",
        arch: "all",
        fields: &[],
        files: &[("/usr/share/shared.txt", "same everywhere\n", 0o644)],
    });
    r.publish();
    r
}

fn platform(arch: &str) -> String {
    format!("linux/{arch}")
}

fn project(env: &Env, r: &Repo) -> PathBuf {
    let root = env.path("proj");
    let bin = root.join("layers/base/rootfs/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
    write(
        &root,
        "layers/base/layer.toml",
        "[layer]\nname = \"base\"\n\n[[source.copy]]\nfrom = \"rootfs\"\nto = \"/\"\n",
    );
    write(
        &root,
        "layers/pkgs/layer.toml",
        &format!(
            "[layer]\nname = \"pkgs\"\nversion = \"1\"\n\n[runtime]\nlayers = [\"base\"]\n\n[source.deb]\npackages = [\"tool\"]\n\n{}",
            r.toml(&r.keyring)
        ),
    );
    write(
        &root,
        "strata.toml",
        &format!(
            "[project]\nname = \"mp\"\n\n[defaults]\nplatforms = [\"{}\", \"{}\"]\n\n[images.app]\nlayers = [\"pkgs\"]\nentrypoint = [\"/usr/bin/tool\"]\n",
            platform(&host_arch()),
            platform(&other_arch())
        ),
    );
    root
}

fn layer<'a>(report: &'a Value, name: &str, arch: &str) -> &'a Value {
    platform_layer(report, name, &platform(arch))
}

#[test]
fn a_project_with_two_platforms_builds_an_index_with_shared_copy_layers() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r);
    let (host, other) = (host_arch(), other_arch());
    let report = build(&env, &root, &[]);
    let image = &report["images"][0];
    let platforms = image["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2, "{report}");
    assert_eq!(platforms[0]["platform"], platform(&host).as_str());
    assert_eq!(platforms[1]["platform"], platform(&other).as_str());
    // The copy layer is one blob for both; the deb layer differs.
    assert_eq!(
        layer(&report, "base", &host)["digests"],
        layer(&report, "base", &other)["digests"]
    );
    assert_ne!(
        layer(&report, "pkgs", &host)["digests"],
        layer(&report, "pkgs", &other)["digests"]
    );

    // The store tag is the index; it validates, and each platform's config
    // names its architecture.
    let digest = image["digest"].as_str().unwrap();
    let layout = env.path("layout");
    env.ok(&[
        "copy",
        "--all",
        "mp/app:latest",
        &format!("oci:{}:1", layout.display()),
    ]);
    let read = |d: &str| -> Value {
        let hex = d.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let schemas = Schemas::new();
    let index = read(digest);
    schemas.check("image-index-schema.json", &index, "index");
    for (m, arch) in index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .zip([&host, &other])
    {
        let manifest = read(m["digest"].as_str().unwrap());
        schemas.check("image-manifest-schema.json", &manifest, "manifest");
        let config = read(manifest["config"]["digest"].as_str().unwrap());
        assert_eq!(config["architecture"], arch.as_str());
    }
    // The other platform's image has the other build of the package.
    let ls = env.ok(&["ls", "--platform", &platform(&other), "mp/app:latest"]);
    assert!(ls.contains("usr/bin/tool"), "{ls}");
    let ls_json = env.ok(&[
        "inspect",
        "--json",
        "--platform",
        &platform(&other),
        "mp/app:latest",
    ]);
    assert!(ls_json.contains(&format!("\"{other}\"")), "{ls_json}");

    // Again: nothing is built, the same index.
    let again = build(&env, &root, &[]);
    assert_eq!(again["images"][0]["digest"], digest);
    assert!(
        again["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["status"] == "cached"),
        "{again}"
    );
    // The lock pins each platform's layers.
    let lock = fs::read_to_string(root.join("strata.lock")).unwrap();
    for arch in [&host, &other] {
        assert!(
            lock.contains(&format!("platform = \"linux/{arch}\"")),
            "{lock}"
        );
    }
    // --platform narrows the build: the index holds that platform.
    let narrowed = build(&env, &root, &["--platform", &platform(&other)]);
    let ps = narrowed["images"][0]["platforms"].as_array().unwrap();
    assert_eq!(ps.len(), 1, "{narrowed}");
    assert_eq!(ps[0]["digest"], platforms[1]["digest"]);
}

#[test]
fn bad_platforms_are_refused_naming_the_key_or_the_platform() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r);
    let p = root.to_str().unwrap();
    replace(
        &root,
        "strata.toml",
        "platforms = [\"",
        "platforms = [\"linux/sparc\", \"",
    );
    let err = env.fails(&["build", "-C", p]);
    assert!(
        err.contains("strata.toml key defaults.platforms")
            && err.contains("unknown platform \"linux/sparc\"")
            && err.contains("linux/arm64"),
        "{err}"
    );
    replace(&root, "strata.toml", "\"linux/sparc\", ", "");
    let err = env.fails(&["build", "-C", p, "--platform", "linux/s390x"]);
    assert!(err.contains("none of which --platform names"), "{err}");
    // A package the other architecture's index lacks: the error names it.
    replace(
        &root,
        "layers/pkgs/layer.toml",
        "[\"tool\"]",
        "[\"tool\", \"hostonly\"]",
    );
    let mut r2 = r;
    r2.add(&Pkg {
        name: "hostonly",
        version: "1",
        arch: "any",
        fields: &[],
        files: &[("/usr/bin/hostonly", "x\n", 0o755)],
    });
    r2.publish();
    let err = env.fails(&["build", "-C", p]);
    assert!(err.contains("hostonly"), "{err}");
    assert!(err.contains(&other_arch()), "{err}");
    assert!(env.fails(&["inspect", "mp/app:latest"]).contains("mp/app"));
}

/// check looks at each platform on its own: a declared binary only the
/// host's package has is an error for the other platform, named; the build
/// fails the same way and tags nothing.
#[test]
fn check_finds_a_binary_missing_on_one_platform() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r);
    let p = root.to_str().unwrap();
    let ok = env.ok(&["check", "-C", p]);
    assert!(ok.contains("ok: 1 image(s) checked"), "{ok}");
    replace(
        &root,
        "layers/pkgs/layer.toml",
        "[source.deb]",
        "[provides]\nbinaries = [\"tool-extra\"]\npaths = [\"/usr/bin\"]\n\n[source.deb]",
    );
    let other = platform(&other_arch());
    let err = env.fails(&["check", "-C", p]);
    // Named for the platform that lacks it, with the one that has it.
    let line = err
        .lines()
        .find(|l| l.contains("tool-extra"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.starts_with(&format!("error: image app ({other}):"))
            && line.ends_with(&format!("(not so on {})", platform(&host_arch()))),
        "{err}"
    );
    assert!(
        !err.contains(&format!("image app ({}):", platform(&host_arch()))),
        "{err}"
    );
    // Narrowed to the host's platform, it passes.
    env.ok(&["check", "-C", p, "--platform", &platform(&host_arch())]);
    let err = env.fails(&["build", "-C", p]);
    assert!(err.contains("tool-extra"), "{err}");
    assert!(env.fails(&["inspect", "mp/app:latest"]).contains("mp/app"));
}

/// build --push sends every platform's manifest, then the index under the
/// image's tag; the index read back is the one built.
#[test]
fn build_push_sends_the_index() {
    let reg = common::registry::Registry::start(common::registry::Auth::None, false);
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r);
    replace(
        &root,
        "strata.toml",
        "[defaults]\n",
        &format!("[defaults]\nregistry = \"{}/team\"\n", reg.host()),
    );
    let report = build(&env, &root, &["--push"]);
    let image = &report["images"][0];
    assert_eq!(
        image["pushed"][0],
        reg.r("team/mp/app:latest").as_str(),
        "{report}"
    );
    let back = Env::new();
    let digest = back.ok(&["copy", "--all", &reg.r("team/mp/app:latest"), "x:1"]);
    assert_eq!(digest.trim(), image["digest"].as_str().unwrap());
    let raw = common::run(std::process::Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &reg.r("team/mp/app:latest"),
    ]));
    let index: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");

    // With --attach-sbom each platform's manifest gets its own SBOM (here
    // by the referrers tag schema: docker-registry has no referrers API).
    let again = build(&env, &root, &["--push", "--attach-sbom"]);
    let tags = env.ok(&["tags", &reg.r("team/mp/app")]);
    for p in again["images"][0]["platforms"].as_array().unwrap() {
        let hex = p["digest"].as_str().unwrap().trim_start_matches("sha256:");
        assert!(tags.contains(&format!("sha256-{hex}")), "{tags}");
    }
}

/// plan lists each platform's layers, marks the ones every platform shares,
/// and `build --layer NAME --platform P` builds that layer for P alone.
#[test]
fn plan_is_per_platform_and_says_what_is_shared() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r);
    let p = root.to_str().unwrap();
    let (host, other) = (platform(&host_arch()), platform(&other_arch()));
    let plan = plan_json(&env, &root, &[]);
    let find = |name: &str, on: &str| platform_layer(&plan, name, on).clone();
    for on in [&host, &other] {
        assert_eq!(find("base", on)["shared"], true, "{plan}");
        assert!(find("pkgs", on)["shared"].is_null(), "{plan}");
        assert_eq!(find("pkgs", on)["action"], "build");
    }
    assert_eq!(plan["images"].as_array().unwrap().len(), 2, "{plan}");
    let text = env.ok(&["plan", "-C", p]);
    assert!(
        text.contains(&format!("base [{other}]")) && text.contains("shared by platforms"),
        "{text}"
    );
    let only = env.ok(&["plan", "-C", p, "--platform", &other, "--json"]);
    assert!(!only.contains(&format!("\"{host}\"")), "{only}");

    let built = build(&env, &root, &["--layer", "pkgs", "--platform", &other]);
    let layers = built["layers"].as_array().unwrap();
    assert!(
        !layers.is_empty() && layers.iter().all(|l| l["platform"] == other.as_str()),
        "{built}"
    );
    let plan = plan_json(&env, &root, &[]);
    let find = |name: &str, on: &str| platform_layer(&plan, name, on).clone();
    assert_eq!(find("pkgs", &other)["action"], "reuse", "{plan}");
    assert_eq!(find("pkgs", &host)["action"], "build", "{plan}");
}

/// A build step for a platform this machine cannot run (no binfmt_misc
/// handler) fails naming the layer and what to install; nothing is tagged.
#[test]
fn a_foreign_build_step_without_binfmt_says_what_to_install() {
    // An architecture the host does not run natively and the kernel has
    // no handler for (CI registers only the other platform's).
    let Some(other) = common::images::unregistered_arch() else {
        common::note(
            "foreign build step without binfmt",
            "SKIPPED (every candidate architecture has a binfmt_misc handler)",
        );
        return;
    };
    if !common::have("runc") {
        common::note("foreign build step without binfmt", "SKIPPED (no runc)");
        return;
    }
    common::note("foreign build step without binfmt", "RAN");
    let env = Env::new();
    let root = env.path("steps");
    common::images::busybox_rootfs(&root.join("layers/base/rootfs"));
    write(
        &root,
        "layers/base/layer.toml",
        "[layer]\nname = \"base\"\n\n[[source.copy]]\nfrom = \"rootfs\"\nto = \"/\"\n",
    );
    write(
        &root,
        "layers/app/layer.toml",
        "[layer]\nname = \"app\"\n\n[requires]\nlayers = [\"base\"]\n\n[runtime]\nlayers = [\"base\"]\n\n[source.run]\ncommands = [\"mkdir -p /out && echo hi > /out/x\"]\noutputs = [\"/out\"]\n",
    );
    write(
        &root,
        "strata.toml",
        &format!(
            "[project]\nname = \"fs\"\n\n[defaults]\nplatforms = [\"linux/{}\", \"linux/{other}\"]\n\n[images.app]\nlayers = [\"app\"]\n",
            host_arch()
        ),
    );
    let err = env.fails(&["build", "-C", root.to_str().unwrap()]);
    assert!(
        err.contains("layer app")
            && err.contains(&format!("commands for linux/{other} cannot run"))
            && err.contains("qemu-user-static")
            && err.contains("cross-compile"),
        "{err}"
    );
    assert!(env.fails(&["inspect", "fs/app:latest"]).contains("fs/app"));
}

/// A base image (or a [source.image] layer's image) that is an index
/// without one of the project's platforms: the error names the platform and
/// the ones it has; nothing is tagged.
#[test]
fn an_index_without_a_platform_is_refused_naming_it() {
    let env = Env::new();
    let f = env.path("a.txt");
    fs::write(&f, "a\n").unwrap();
    let host = platform(&host_arch());
    let other = platform(&other_arch());
    env.ok(&[
        "new",
        "--platform",
        &host,
        "--add",
        &format!("{}:/a.txt", f.display()),
        "--tag",
        "one:host",
    ]);
    env.ok(&["index", "base:multi", "one:host"]);
    let root = env.path("p");
    write(
        &root,
        "layers/app/layer.toml",
        "[layer]\nname = \"app\"\n\n[[source.copy]]\nfrom = \"f\"\nto = \"/f\"\n",
    );
    write(&root, "layers/app/f/x", "x\n");
    write(
        &root,
        "strata.toml",
        &format!(
            "[project]\nname = \"bi\"\n\n[defaults]\nplatforms = [\"{host}\", \"{other}\"]\n\n[images.app]\nbase = \"base:multi\"\nlayers = [\"app\"]\n"
        ),
    );
    let p = root.to_str().unwrap();
    let err = env.fails(&["build", "-C", p]);
    assert!(
        err.contains(&format!("platform {other}")) && err.contains(&format!("available: {host}")),
        "{err}"
    );
    assert!(env.fails(&["inspect", "bi/app:latest"]).contains("bi/app"));
    // The same image as a [source.image] layer.
    replace(&root, "strata.toml", "base = \"base:multi\"\n", "");
    write(
        &root,
        "layers/app/layer.toml",
        "[layer]\nname = \"app\"\n\n[source.image]\nref = \"base:multi\"\nindexes = [0]\n",
    );
    let err = env.fails(&["build", "-C", p]);
    assert!(
        err.contains(&format!("platform {other}")) && err.contains(&format!("available: {host}")),
        "{err}"
    );
    // Narrowed to the platform the index has, it builds.
    build(&env, &root, &["--platform", &host]);
}

/// `from = "dist/{arch}"`: a copy layer per platform from each
/// architecture's files; a path missing for one platform is an error naming
/// it.
#[test]
fn per_platform_copy_paths() {
    let env = Env::new();
    let root = env.path("pp");
    let (host, other) = (host_arch(), other_arch());
    write(
        &root,
        &format!("layers/app/dist/{host}/app"),
        "host binary\n",
    );
    write(
        &root,
        "layers/app/layer.toml",
        "[layer]\nname = \"app\"\n\n[[source.copy]]\nfrom = \"dist/{arch}\"\nto = \"/opt/app\"\n",
    );
    write(
        &root,
        "strata.toml",
        &format!(
            "[project]\nname = \"pp\"\n\n[defaults]\nplatforms = [\"linux/{host}\", \"linux/{other}\"]\n\n[images.app]\nlayers = [\"app\"]\n"
        ),
    );
    let p = root.to_str().unwrap();
    let err = env.fails(&["build", "-C", p]);
    assert!(
        err.contains("source.copy.from: \"dist/{arch}\" for linux/")
            && err.contains(&format!("layers/app/dist/{other}")),
        "{err}"
    );
    write(
        &root,
        &format!("layers/app/dist/{other}/app"),
        "other binary, longer\n",
    );
    let report = build(&env, &root, &[]);
    assert_ne!(
        layer(&report, "app", &host)["digests"],
        layer(&report, "app", &other)["digests"]
    );
    let ls = env.ok(&[
        "ls",
        "--json",
        "--platform",
        &platform(&other),
        "pp/app:latest",
    ]);
    assert!(ls.contains("opt/app/app"), "{ls}");
    let plan: Value = plan_json(&env, &root, &[]);
    assert!(
        plan["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["shared"].is_null()),
        "{plan}"
    );
    // A rebuild is explained by what that platform was last built from,
    // not by the other platform's inputs.
    write(&root, &format!("layers/app/dist/{host}/extra"), "more\n");
    let plan = plan_json(&env, &root, &[]);
    let app = |arch: &str| layer(&plan, "app", arch).clone();
    assert_eq!(app(&host)["action"], "build", "{plan}");
    assert_eq!(
        app(&host)["reasons"],
        serde_json::json!(["added /opt/app/extra"]),
        "{plan}"
    );
    assert_eq!(app(&other)["action"], "reuse", "{plan}");
    // A tarball per platform the same way.
    for arch in [&host, &other] {
        let dir = env.path(&format!("t-{arch}"));
        write(&dir, "etc/arch", &format!("{arch}\n"));
        fs::create_dir_all(root.join("layers/data")).unwrap();
        common::run(
            std::process::Command::new("tar")
                .arg("-cf")
                .arg(root.join(format!("layers/data/{arch}.tar")))
                .arg("-C")
                .arg(&dir)
                .arg("etc"),
        );
    }
    write(
        &root,
        "layers/data/layer.toml",
        "[layer]\nname = \"data\"\n\n[source.tar]\npath = \"{arch}.tar\"\n",
    );
    replace(
        &root,
        "strata.toml",
        "layers = [\"app\"]",
        "layers = [\"app\", \"data\"]",
    );
    let report = build(&env, &root, &[]);
    assert_ne!(
        layer(&report, "data", &host)["digests"],
        layer(&report, "data", &other)["digests"]
    );
}

/// With a registry cache, a fresh machine pushes a multi-platform image
/// without downloading a layer blob: each platform's image is composed from
/// the records and pushed by mount; the index is the one machine A pushed.
#[test]
fn a_fresh_machine_pushes_the_index_from_the_cache_without_layer_bytes() {
    let reg = common::registry::Registry::start(common::registry::Auth::None, false);
    let (host, other) = (host_arch(), other_arch());
    let make = |env: &Env| {
        let root = env.path("pc");
        write(
            &root,
            &format!("layers/app/dist/{host}/app"),
            &"h".repeat(200_000),
        );
        write(
            &root,
            &format!("layers/app/dist/{other}/app"),
            &"o".repeat(200_000),
        );
        write(
            &root,
            "layers/app/layer.toml",
            "[layer]\nname = \"app\"\n\n[[source.copy]]\nfrom = \"dist/{arch}\"\nto = \"/opt/app\"\n",
        );
        write(
            &root,
            "strata.toml",
            &format!(
                "[project]\nname = \"pc\"\n\n[defaults]\nsource_date_epoch = 1700000000\nregistry = \"{h}/team\"\ncache = \"docker://{h}/team/cache\"\nplatforms = [\"linux/{host}\", \"linux/{other}\"]\n\n[images.app]\nlayers = [\"app\"]\n",
                h = reg.host()
            ),
        );
        common::backdate(&root);
        root
    };
    let a = Env::new();
    let first = build(&a, &make(&a), &["--push"]);
    let b = Env::new();
    let second = build(&b, &make(&b), &["--push"]);
    assert_eq!(second["images"][0]["digest"], first["images"][0]["digest"]);
    assert_eq!(second["images"][0]["stored"], false, "{second}");
    assert!(
        second["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["status"] == "remote"),
        "{second}"
    );
    let down = second["cache"]["bytes_downloaded"].as_u64().unwrap();
    assert!(down < 100_000, "no layer blob downloaded: {second}");
}

/// `platforms` per image: that image is an index, the others stay single
/// manifests. An image naming the host's platform alone is the same image,
/// byte for byte, as one naming none; and a project without platforms
/// gives the digest it gave before multi-platform builds existed.
#[test]
fn per_image_platforms_leave_single_platform_images_as_they_were() {
    let env = Env::new();
    let root = env.path("pi");
    write(&root, "layers/data/files/hello.txt", "hello\n");
    fs::set_permissions(
        root.join("layers/data/files/hello.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    write(
        &root,
        "layers/data/layer.toml",
        "[layer]\nname = \"data\"\n\n[[source.copy]]\nfrom = \"files\"\nto = \"/srv\"\n",
    );
    let (host, other) = (host_arch(), other_arch());
    let toml = |single_platform: &str| {
        format!(
            "[project]\nname = \"pi\"\n\n[defaults]\nsource_date_epoch = 1700000000\n\n[images.single]\nlayers = [\"data\"]\n{single_platform}\n[images.multi]\nlayers = [\"data\"]\nplatforms = [\"linux/{host}\", \"linux/{other}\"]\n"
        )
    };
    write(&root, "strata.toml", &toml("platform = \"linux/amd64\"\n"));
    let report = build(&env, &root, &[]);
    let image = |r: &Value, name: &str| -> Value {
        r["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {r}"))
            .clone()
    };
    let single = image(&report, "single");
    let multi = image(&report, "multi");
    assert!(
        single["platforms"].as_array().is_none_or(Vec::is_empty),
        "{report}"
    );
    assert_eq!(
        multi["platforms"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    let inspect: Value =
        serde_json::from_str(&env.ok(&["inspect", "--json", "pi/single:latest"])).unwrap();
    assert!(inspect["index"].is_null(), "{inspect}");
    // The digest strata gave this project before multi-platform builds
    // (built with commit 1162ce8).
    assert_eq!(
        single["digest"], "sha256:b2719811d3347cc4086fa575d1b60677448f0c72a812dfdf6d74e15040f897a2",
        "a project without platforms must keep its digests"
    );
    // Naming one platform changes nothing.
    write(
        &root,
        "strata.toml",
        &toml("platforms = [\"linux/amd64\"]\n"),
    );
    let again = build(&env, &root, &[]);
    assert_eq!(
        image(&again, "single")["digest"],
        single["digest"],
        "{again}"
    );
}
