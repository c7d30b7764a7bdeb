//! examples/debian (debian-base = the minbase set, ca-certificates, git)
//! from the machine's configured Debian archive, for linux/amd64 and
//! linux/arm64: one index; the host's image runs under runc and docker;
//! the other architecture's binaries are ELF for it (and run under qemu
//! where binfmt_misc has it registered); pushed to a registry and pulled
//! back with skopeo --all, the digests are the same.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::apt::host_arch;
use common::images::file_in_image;
use common::registry::{Auth, Registry};
use common::{Env, Schemas, have, note, replace, run, runc_run};
use serde_json::Value;

const CHECK: &str = "examples/debian from the configured Debian archive";

/// The ELF machine of `usr/bin/git` in the image `reference` for
/// `platform`.
fn git_elf_machine(env: &Env, reference: &str, platform: &str) -> u16 {
    let git = file_in_image(env, reference, platform, "usr/bin/git").expect("usr/bin/git");
    assert_eq!(&git[..4], b"\x7fELF", "usr/bin/git is not ELF");
    u16::from_le_bytes([git[18], git[19]])
}

/// A build step over debian-base runs for both platforms, the other one
/// under qemu-user: each sees its own machine and Debian architecture.
fn foreign_step(env: &Env, root: &Path, other: &str) {
    fs::create_dir_all(root.join("layers/arch")).unwrap();
    fs::write(
        root.join("layers/arch/layer.toml"),
        "[layer]\nname = \"arch\"\n\n[requires]\nlayers = [\"debian-base\"]\n\n[runtime]\nlayers = [\"debian-base\"]\n\n[source.run]\ncommands = [\"mkdir -p /out && uname -m > /out/arch && dpkg --print-architecture >> /out/arch\"]\noutputs = [\"/out\"]\n",
    )
    .unwrap();
    let toml = root.join("strata.toml");
    let mut text = fs::read_to_string(&toml).unwrap();
    text.push_str("\n[images.arch]\nlayers = [\"arch\"]\nkind = \"runtime\"\ntags = [\"debian/arch:latest\"]\n");
    fs::write(&toml, text).unwrap();
    env.ok(&["build", "-C", root.to_str().unwrap(), "arch"]);
    for (arch, machine) in [
        (host_arch(), std::env::consts::ARCH),
        (
            other.to_string(),
            if other == "arm64" {
                "aarch64"
            } else {
                "x86_64"
            },
        ),
    ] {
        let seen = file_in_image(
            env,
            "debian/arch:latest",
            &format!("linux/{arch}"),
            "out/arch",
        )
        .expect("out/arch in the step's layer");
        assert_eq!(
            String::from_utf8(seen).unwrap(),
            format!("{machine}\n{arch}\n"),
            "linux/{arch}"
        );
    }
    note("a build step for the other platform under qemu-user", "RAN");
}

fn elf_machine_of(arch: &str) -> u16 {
    match arch {
        "amd64" => 62,
        "arm64" => 183,
        other => panic!("no ELF machine for {other}"),
    }
}

#[test]
fn debian_example_for_two_platforms_from_the_configured_archive() {
    let env = Env::new();
    let root = common::copy_example(&env, "debian", "debian");
    replace(
        &root,
        "strata.toml",
        "entrypoint = [\"/usr/bin/git\"]\ncmd = [\"--version\"]",
        "entrypoint = [\"/bin/sh\", \"-c\", \"echo ok; git --version; dpkg -l | grep -c ^ii; awk 'BEGIN{print 7*6}'; id -un; grep -c BEGIN /etc/ssl/certs/ca-certificates.crt\"]",
    );
    let out = env.strata(&["build", "-C", root.to_str().unwrap(), "--json"]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("cannot reach") || err.contains("configures no deb repository") {
            note(CHECK, "SKIPPED (the archive did not answer)");
            return;
        }
        panic!("build failed: {err}");
    }
    note(CHECK, "RAN");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let image = &report["images"][0];
    let platforms = image["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2, "{report}");
    let host = format!("linux/{}", host_arch());
    let mine = platforms
        .iter()
        .find(|p| p["platform"] == host.as_str())
        .unwrap_or_else(|| panic!("no {host} in {report}"));
    let n = mine["packages"].as_u64().unwrap();
    assert!(n > 80, "{report}");

    // The index and each platform's manifest validate; every binary is ELF
    // for its platform.
    let layout = env.path("layout");
    env.ok(&[
        "copy",
        "--all",
        "debian/git:latest",
        &format!("oci:{}:1", layout.display()),
    ]);
    let read = |d: &str| -> Value {
        serde_json::from_slice(
            &fs::read(
                layout
                    .join("blobs/sha256")
                    .join(d.trim_start_matches("sha256:")),
            )
            .unwrap(),
        )
        .unwrap()
    };
    let schemas = Schemas::new();
    let index = read(image["digest"].as_str().unwrap());
    schemas.check("image-index-schema.json", &index, "index");
    for m in index["manifests"].as_array().unwrap() {
        schemas.check(
            "image-manifest-schema.json",
            &read(m["digest"].as_str().unwrap()),
            "manifest",
        );
    }
    for arch in ["amd64", "arm64"] {
        assert_eq!(
            git_elf_machine(&env, "debian/git:latest", &format!("linux/{arch}")),
            elf_machine_of(arch),
            "{arch}"
        );
    }

    let ls = env.ok(&["ls", "debian/git:latest"]);
    for want in [
        "usr/bin/git",
        "bin -> usr/bin",
        "var/lib/dpkg/status.d/git\n",
        "var/lib/dpkg/status.d/git.md5sums",
        "var/lib/dpkg/info/git.list",
        "var/lib/dpkg/status\n",
    ] {
        assert!(ls.contains(want), "missing {want}");
    }
    let expect = |stdout: &str| {
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines[0], "ok", "{stdout}");
        assert!(lines[1].starts_with("git version "), "{stdout}");
        assert_eq!(
            lines[2].parse::<u64>().unwrap(),
            n,
            "dpkg -l lists every package"
        );
        // What strata writes in place of mawk's, base-passwd's and
        // ca-certificates' maintainer scripts.
        assert_eq!(lines[3], "42", "awk: {stdout}");
        assert_eq!(lines[4], "root", "/etc/passwd: {stdout}");
        assert!(
            lines[5].parse::<u64>().unwrap() > 100,
            "CA bundle: {stdout}"
        );
    };
    if have("umoci") && have("runc") {
        // The host's platform of the index.
        let (ok, stdout, stderr) = runc_run(&env, "debian/git:latest");
        assert!(ok, "{stderr}");
        expect(&stdout);
        note("examples/debian under runc", "RAN");
    }
    if common::docker_engine() {
        // docker-archive holds the host's platform, as docker save does.
        expect(&common::DockerImage::load(&env, "debian/git:latest").run());
        note("examples/debian under docker", "RAN");
    } else {
        note(
            "examples/debian under docker",
            "SKIPPED (no Docker engine answers)",
        );
    }
    let other = if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let qemu = match other {
        "arm64" => "qemu-aarch64",
        _ => "qemu-x86_64",
    };
    if Path::new(&format!("/proc/sys/fs/binfmt_misc/{qemu}")).exists() && have("umoci") {
        let layout = env.path("other-layout");
        env.ok(&[
            "copy",
            "--platform",
            &format!("linux/{other}"),
            "debian/git:latest",
            &format!("oci:{}:o", layout.display()),
        ]);
        let (ok, stdout, stderr) = runc_run(&env, &format!("oci:{}:o", layout.display()));
        assert!(ok, "{stderr}");
        assert!(
            stdout
                .lines()
                .nth(1)
                .unwrap_or("")
                .starts_with("git version "),
            "{stdout}"
        );
        note("examples/debian's other platform under qemu-user", "RAN");
        foreign_step(&env, &root, other);
    } else {
        note(
            "examples/debian's other platform under qemu-user",
            "SKIPPED (binfmt_misc has no qemu handler registered)",
        );
        note(
            "a build step for the other platform under qemu-user",
            "SKIPPED (binfmt_misc has no qemu handler registered)",
        );
    }

    // Pushed whole and pulled back by skopeo --all: the same digests.
    let reg = Registry::start(Auth::None, false);
    let target = reg.r("team/git:1");
    let pushed = env.ok(&["copy", "--all", "debian/git:latest", &target]);
    assert_eq!(pushed.trim(), image["digest"].as_str().unwrap());
    if have("skopeo") {
        let dir = env.path("skopeo-all");
        run(Command::new("skopeo").args([
            "copy",
            "--all",
            "--src-tls-verify=false",
            &target,
            &format!("oci:{}:1", dir.display()),
        ]));
        let back: Value =
            serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
        assert_eq!(back["manifests"][0]["digest"], image["digest"]);
        for m in index["manifests"].as_array().unwrap() {
            let hex = m["digest"].as_str().unwrap().trim_start_matches("sha256:");
            assert!(dir.join("blobs/sha256").join(hex).is_file(), "{m}");
        }
        note("examples/debian index pulled back by skopeo --all", "RAN");
    }
}
