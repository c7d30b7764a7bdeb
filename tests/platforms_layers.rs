//! Multi-platform layers and what rests on them: `Architecture: all`
//! packages are one blob for every platform; an architecture the sources
//! do not carry and a version pinned where one platform lacks it are errors
//! naming the architecture; copy entries for some platforms only;
//! `--locked` checks each platform's pins; `run --platform` runs that
//! platform's image.

mod common;

use std::fs;
use std::path::PathBuf;

use common::apt::{Pkg, Repo, host_arch, other_arch};
use common::{Env, build_json as build, platform_layer, replace, write};
use serde_json::Value;

/// A repository for the host's and the other architecture: `tool` 1.0 for
/// both (different files), `tool` 2.0 for the host's only, and `docs`
/// (Architecture: all).
fn repo(env: &Env) -> Repo {
    let mut r = Repo::new(env.dir.path());
    let other = other_arch();
    r.extra_arches = vec![other.clone()];
    for (version, arch, says) in [
        ("1.0", "any", "host 1.0"),
        ("1.0", other.as_str(), "other 1.0"),
        ("2.0", "any", "host 2.0"),
    ] {
        r.add(&Pkg {
            name: "tool",
            version,
            arch,
            fields: &[],
            files: &[("/usr/bin/tool", &format!("#!/bin/sh\necho {says}\n"), 0o755)],
        });
    }
    r.add(&Pkg {
        name: "docs",
        version: "3.0",
        arch: "all",
        fields: &[],
        files: &[("/usr/share/doc/docs/README", "same everywhere\n", 0o644)],
    });
    r.publish();
    r
}

/// A busybox base and a deb layer `pkgs` of `packages`, for the host's and
/// the other platform.
fn project(env: &Env, r: &Repo, packages: &str) -> PathBuf {
    let root = env.path("proj");
    common::images::busybox_rootfs(&root.join("layers/base/rootfs"));
    write(
        &root,
        "layers/base/layer.toml",
        "[layer]\nname = \"base\"\n\n[[source.copy]]\nfrom = \"rootfs\"\nto = \"/\"\n",
    );
    write(
        &root,
        "layers/pkgs/layer.toml",
        &format!(
            "[layer]\nname = \"pkgs\"\nversion = \"1\"\n\n[runtime]\nlayers = [\"base\"]\n\n[source.deb]\npackages = {packages}\n\n{}",
            r.toml(&r.keyring)
        ),
    );
    write(
        &root,
        "strata.toml",
        &format!(
            "[project]\nname = \"pd\"\n\n[defaults]\nplatforms = [\"linux/{}\", \"linux/{}\"]\n\n[images.app]\nlayers = [\"pkgs\"]\nentrypoint = [\"/bin/sh\", \"-c\", \"tool; ls /usr/share/doc\"]\n",
            host_arch(),
            other_arch()
        ),
    );
    root
}

fn digests(report: &Value, arch: &str) -> Value {
    platform_layer(report, "pkgs", &format!("linux/{arch}"))["digests"].clone()
}

/// A deb layer made only of `Architecture: all` packages is the same bytes
/// on every platform: one blob.
#[test]
fn a_deb_layer_of_arch_all_packages_is_one_blob() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, "[\"docs\"]");
    let report = build(&env, &root, &[]);
    let (host, other) = (
        digests(&report, &host_arch()),
        digests(&report, &other_arch()),
    );
    assert_eq!(host, other, "{report}");
    // With an architecture-specific package beside it, the blobs differ.
    replace(
        &root,
        "layers/pkgs/layer.toml",
        "[\"docs\"]",
        "[\"docs\", \"tool\"]",
    );
    let report = build(&env, &root, &[]);
    assert_ne!(
        digests(&report, &host_arch()),
        digests(&report, &other_arch()),
        "{report}"
    );
}

/// A platform whose architecture the sources do not carry, and a version
/// pinned that one platform lacks: each an error naming the architecture;
/// nothing is tagged.
#[test]
fn missing_architectures_and_versions_are_named() {
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, "[\"tool=2.0\"]");
    let p = root.to_str().unwrap();
    let err = env.fails(&["build", "-C", p]);
    assert!(
        err.contains("tool") && err.contains("2.0") && err.contains(&other_arch()),
        "{err}"
    );
    assert!(env.fails(&["inspect", "pd/app:latest"]).contains("pd/app"));
    // The host's platform alone has it.
    env.ok(&[
        "build",
        "-C",
        p,
        "--platform",
        &format!("linux/{}", host_arch()),
    ]);

    let foreign = if host_arch() == "s390x" {
        "ppc64le"
    } else {
        "s390x"
    };
    replace(
        &root,
        "strata.toml",
        &format!("\"linux/{}\"]", other_arch()),
        &format!("\"linux/{foreign}\"]"),
    );
    replace(&root, "layers/pkgs/layer.toml", "tool=2.0", "tool");
    let err = env.fails(&["build", "-C", p]);
    assert!(
        err.contains(&format!("architecture {foreign}")) && err.contains("InRelease"),
        "{err}"
    );
}

/// `--locked` checks every platform's pins: a new package version for one
/// architecture fails naming its platform; the other platform alone still
/// passes.
#[test]
fn locked_checks_each_platform() {
    let env = Env::new();
    let mut r = repo(&env);
    let root = project(&env, &r, "[\"tool\"]");
    let p = root.to_str().unwrap();
    build(&env, &root, &[]);
    build(&env, &root, &["--locked"]);
    // A new tool for the other architecture only.
    let other = other_arch();
    r.add(&Pkg {
        name: "tool",
        version: "1.5",
        arch: &other,
        fields: &[],
        files: &[("/usr/bin/tool", "#!/bin/sh\necho other 1.5\n", 0o755)],
    });
    r.publish();
    let err = env.fails(&["build", "-C", p, "--locked", "--refresh"]);
    assert!(
        err.contains("strata.lock")
            && err.contains("pkgs@1")
            && err.contains(&format!("linux/{other}")),
        "{err}"
    );
    build(
        &env,
        &root,
        &[
            "--locked",
            "--refresh",
            "--platform",
            &format!("linux/{}", host_arch()),
        ],
    );
}

/// `strata run --platform` runs that platform's image of an index.
#[test]
fn run_takes_the_platform() {
    if !common::have("runc") {
        common::note("run --platform", "SKIPPED (no runc)");
        return;
    }
    common::note("run --platform", "RAN");
    let env = Env::new();
    let r = repo(&env);
    let root = project(&env, &r, "[\"tool=1.0\", \"docs\"]");
    build(&env, &root, &[]);
    let host = env.ok(&[
        "run",
        "--platform",
        &format!("linux/{}", host_arch()),
        "pd/app:latest",
    ]);
    assert!(host.contains("host 1.0") && host.contains("docs"), "{host}");
    let other = other_arch();
    let qemu = if other == "arm64" {
        "aarch64"
    } else {
        "x86_64"
    };
    let out = env.strata(&[
        "run",
        "--platform",
        &format!("linux/{other}"),
        "pd/app:latest",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    if std::path::Path::new(&format!("/proc/sys/fs/binfmt_misc/qemu-{qemu}")).exists() {
        // Its package's script runs under the host's busybox.
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("other 1.0"), "{stdout}");
    } else {
        assert!(!out.status.success());
        assert!(stderr.contains("qemu-user-static"), "{stderr}");
    }
}

/// linux/arm/v7 takes Debian's armhf packages; the index names the
/// variant.
#[test]
fn arm_v7_takes_armhf_packages_and_the_index_names_the_variant() {
    let env = Env::new();
    let mut r = Repo::new(env.dir.path());
    r.extra_arches = vec!["armhf".into()];
    for (arch, says) in [("any", "host"), ("armhf", "armhf")] {
        r.add(&Pkg {
            name: "tool",
            version: "1.0",
            arch,
            fields: &[],
            files: &[("/usr/bin/tool", &format!("#!/bin/sh\necho {says}\n"), 0o755)],
        });
    }
    r.publish();
    let root = project(&env, &r, "[\"tool\"]");
    replace(
        &root,
        "strata.toml",
        &format!("\"linux/{}\"]", other_arch()),
        "\"linux/arm/v7\"]",
    );
    let report = build(&env, &root, &[]);
    let layer = platform_layer(&report, "pkgs", "linux/arm/v7").clone();
    assert_eq!(layer["status"], "built", "{layer}");
    let layout = env.path("v7");
    env.ok(&[
        "copy",
        "--all",
        "pd/app:latest",
        &format!("oci:{}:1", layout.display()),
    ]);
    let digest = report["images"][0]["digest"].as_str().unwrap();
    let index: Value = serde_json::from_slice(
        &fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let v7 = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm")
        .unwrap_or_else(|| panic!("{index}"));
    assert_eq!(v7["platform"]["variant"], "v7", "{index}");
    // The armhf build of tool ("echo armhf", a byte longer than the
    // host's "echo host").
    assert_eq!(
        sizes(&env, "pd/app:latest", "linux/arm/v7", "/usr/bin/tool"),
        ["#!/bin/sh\necho armhf\n".len() as u64]
    );
}

/// `[[source.copy]]` entries with `platforms`: each platform's layer has
/// its own entries (paths that do not follow OCI's names, as Rust's target
/// triples); a platform no entry names is an error naming the layer; an
/// unknown platform names the key.
#[test]
fn copy_entries_for_some_platforms() {
    let env = Env::new();
    let root = env.path("ce");
    write(
        &root,
        "layers/app/target/x86_64-unknown-linux-gnu/release/app",
        "x86_64 build\n",
    );
    write(
        &root,
        "layers/app/target/aarch64-unknown-linux-gnu/release/app",
        "aarch64 build, longer\n",
    );
    write(
        &root,
        "layers/app/layer.toml",
        "[layer]\nname = \"app\"\n\n[[source.copy]]\nfrom = \"target/x86_64-unknown-linux-gnu/release/app\"\nto = \"/usr/local/bin/app\"\nplatforms = [\"linux/amd64\"]\n\n[[source.copy]]\nfrom = \"target/aarch64-unknown-linux-gnu/release/app\"\nto = \"/usr/local/bin/app\"\nplatforms = [\"linux/arm64\"]\n",
    );
    write(
        &root,
        "strata.toml",
        "[project]\nname = \"ce\"\n\n[defaults]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n[images.app]\nlayers = [\"app\"]\n",
    );
    let p = root.to_str().unwrap();
    build(&env, &root, &[]);
    for (platform, text) in [
        ("linux/amd64", "x86_64 build\n"),
        ("linux/arm64", "aarch64 build, longer\n"),
    ] {
        assert_eq!(
            sizes(&env, "ce/app:latest", platform, "/usr/local/bin/app"),
            [text.len() as u64],
            "{platform}"
        );
    }
    // The aarch64 build missing: an error for linux/arm64 only.
    fs::remove_file(root.join("layers/app/target/aarch64-unknown-linux-gnu/release/app")).unwrap();
    let err = env.fails(&["build", "-C", p]);
    assert!(
        err.contains("source.copy.from") && err.contains("aarch64-unknown-linux-gnu"),
        "{err}"
    );
    env.ok(&["build", "-C", p, "--platform", "linux/amd64"]);
    // A platform no entry names.
    replace(
        &root,
        "strata.toml",
        "\"linux/arm64\"]",
        "\"linux/riscv64\"]",
    );
    let err = env.fails(&["build", "-C", p]);
    assert!(
        err.contains("layer app has no [[source.copy]] entry for linux/riscv64"),
        "{err}"
    );
    // An unknown platform.
    replace(
        &root,
        "layers/app/layer.toml",
        "[\"linux/arm64\"]",
        "[\"linux/sparc\"]",
    );
    let err = env.fails(&["check", "-C", p]);
    assert!(
        err.contains("source.copy.platforms") && err.contains("unknown platform \"linux/sparc\""),
        "{err}"
    );
}

/// A base index and a `[source.image]` layer from an index: each platform's
/// image takes that platform's manifest.
#[test]
fn bases_and_image_layers_take_each_platform_from_an_index() {
    let env = Env::new();
    let (host, other) = (
        format!("linux/{}", host_arch()),
        format!("linux/{}", other_arch()),
    );
    for (platform, text, tag) in [(&host, "h\n", "one:host"), (&other, "other\n", "one:other")] {
        let f = env.path(&format!("{}.txt", tag.replace(':', "-")));
        fs::write(&f, text).unwrap();
        env.ok(&[
            "new",
            "--platform",
            platform,
            "--add",
            &format!("{}:/which.txt", f.display()),
            "--tag",
            tag,
        ]);
    }
    env.ok(&["index", "base:multi", "one:host", "one:other"]);
    let root = env.path("ib");
    write(
        &root,
        "layers/donor/layer.toml",
        "[layer]\nname = \"donor\"\n\n[source.image]\nref = \"base:multi\"\nindexes = [0]\n",
    );
    write(
        &root,
        "strata.toml",
        &format!(
            "[project]\nname = \"ib\"\n\n[defaults]\nplatforms = [\"{host}\", \"{other}\"]\n\n[images.app]\nbase = \"base:multi\"\nlayers = [\"donor\"]\n"
        ),
    );
    let size = |platform: &str, path: &str| sizes(&env, "ib/app:latest", platform, path);
    build(&env, &root, &[]);
    // The base's file and the donor layer's copy of it: that platform's.
    assert_eq!(size(&host, "/which.txt"), [2, 2]);
    assert_eq!(size(&other, "/which.txt"), [6, 6]);
}

/// `{content}` in an index's tag covers every platform: a change on the
/// second platform alone gives a new tag, and the old tag keeps the old
/// index.
#[test]
fn an_index_content_tag_changes_with_any_platform() {
    let env = Env::new();
    let root = env.path("ct");
    for arch in ["amd64", "arm64"] {
        write(
            &root,
            &format!("layers/app/dist/{arch}/app"),
            &format!("{arch} 1\n"),
        );
    }
    write(
        &root,
        "layers/app/layer.toml",
        "[layer]\nname = \"app\"\n\n[[source.copy]]\nfrom = \"dist/{arch}\"\nto = \"/opt\"\n",
    );
    write(
        &root,
        "strata.toml",
        "[project]\nname = \"ct\"\n\n[defaults]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n[images.app]\nlayers = [\"app\"]\ntags = [\"ct/app:c-{content}\"]\n",
    );
    let first = build(&env, &root, &[]);
    let tag1 = first["images"][0]["tags"][0].as_str().unwrap().to_string();
    let digest1 = first["images"][0]["digest"].as_str().unwrap().to_string();
    assert!(tag1.starts_with("ct/app:c-"), "{first}");
    // The same inputs: the same tag.
    let again = build(&env, &root, &[]);
    assert_eq!(again["images"][0]["tags"][0], tag1.as_str());
    // Only arm64's file changes (amd64 is the first platform).
    write(&root, "layers/app/dist/arm64/app", "arm64 2\n");
    let second = build(&env, &root, &[]);
    let tag2 = second["images"][0]["tags"][0].as_str().unwrap();
    assert_ne!(tag2, tag1, "{second}");
    assert_eq!(
        second["images"][0]["platforms"][0]["digest"], first["images"][0]["platforms"][0]["digest"],
        "amd64 unchanged"
    );
    let old: Value = serde_json::from_str(&env.ok(&["inspect", "--json", &tag1])).unwrap();
    assert_eq!(old["index"]["digest"], digest1.as_str(), "{old}");
}

/// The sizes of every entry at `path` in `image` for `platform`, as `strata
/// ls --json` lists them (a path in two layers is listed twice).
fn sizes(env: &Env, image: &str, platform: &str, path: &str) -> Vec<u64> {
    let ls = env.ok(&["ls", "--json", "--platform", platform, image]);
    ls.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["path"] == path)
        .map(|e| e["size"].as_u64().unwrap())
        .collect()
}
