//! examples/cross from the machine's configured Debian archive: a build
//! step with `platform = "build"` compiles a C program on this (amd64)
//! machine for amd64 and arm64 with Debian's cross-compiler, natively. The
//! toolchain layer is built for the build machine only; each platform's
//! image ships its own debian-base and an ELF binary for it, which runs
//! (the arm64 one under qemu-user where binfmt_misc has it registered).

mod common;

use common::apt::host_arch;
use common::images::file_in_image;
use common::{Env, Schemas, note};
use serde_json::Value;

const CHECK: &str = "examples/cross: a build-machine step cross-compiles for arm64";

/// The ELF machine field of `bytes`.
fn elf_machine(bytes: &[u8]) -> u16 {
    assert_eq!(&bytes[..4], b"\x7fELF", "not ELF");
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
fn examples_cross_compiles_for_arm64_on_the_build_machine() {
    if host_arch() != "amd64" {
        note(
            CHECK,
            "SKIPPED (the example's cross-compiler is Debian's for amd64 machines)",
        );
        return;
    }
    if !common::can_run_steps(CHECK) {
        return;
    }
    let env = Env::new();
    let root = common::copy_example(&env, "cross", "cross");
    let p = root.to_str().unwrap();
    let out = env.strata(&["build", "-C", p, "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || err.contains("cannot reach"),
        "build failed: {err}"
    );
    if !out.status.success() {
        note(CHECK, "SKIPPED (the archive did not answer)");
        return;
    }
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The toolchain is the build machine's alone; hello is built for each.
    let layers = report["layers"].as_array().unwrap();
    let of = |name: &str| -> Vec<&str> {
        layers
            .iter()
            .filter(|l| l["name"] == name)
            .map(|l| l["platform"].as_str().unwrap())
            .collect()
    };
    assert_eq!(of("cross-gcc"), ["linux/amd64"], "{report}");
    assert_eq!(of("hello"), ["linux/amd64", "linux/arm64"], "{report}");
    assert_eq!(
        of("debian-base"),
        ["linux/amd64", "linux/arm64"],
        "{report}"
    );

    let image = &report["images"][0];
    assert_eq!(image["platforms"].as_array().unwrap().len(), 2, "{report}");
    let schemas = Schemas::new();
    let blob = |d: &Value| -> Value {
        let hex = d.as_str().unwrap().trim_start_matches("sha256:");
        serde_json::from_slice(&std::fs::read(env.store().join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    let index = blob(&image["digest"]);
    schemas.check("image-index-schema.json", &index, "index");
    for m in index["manifests"].as_array().unwrap() {
        schemas.check(
            "image-manifest-schema.json",
            &blob(&m["digest"]),
            "manifest",
        );
    }
    for (arch, machine) in [("amd64", 62), ("arm64", 183)] {
        let platform = format!("linux/{arch}");
        let hello = file_in_image(&env, "cross/hello:latest", &platform, "usr/local/bin/hello")
            .expect("usr/local/bin/hello");
        assert_eq!(elf_machine(&hello), machine, "{platform}");
        // Each ships over its own platform's libc.
        let libc = format!(
            "usr/lib/{}-linux-gnu/libc.so.6",
            if arch == "amd64" { "x86_64" } else { "aarch64" }
        );
        let so = file_in_image(&env, "cross/hello:latest", &platform, &libc).expect(&libc);
        assert_eq!(elf_machine(&so), machine, "{platform} {libc}");
    }
    let ran = env.ok(&["run", "--platform", "linux/amd64", "cross/hello:latest"]);
    assert_eq!(ran.trim(), "hello from x86_64");
    if std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
        let ran = env.ok(&["run", "--platform", "linux/arm64", "cross/hello:latest"]);
        assert_eq!(ran.trim(), "hello from aarch64");
        note("examples/cross: the arm64 binary under qemu-user", "RAN");
    } else {
        note(
            "examples/cross: the arm64 binary under qemu-user",
            "SKIPPED (binfmt_misc has no qemu-aarch64 handler)",
        );
    }
    env.ok(&["check", "-C", p]);
    let again: Value = serde_json::from_str(&env.ok(&["build", "-C", p, "--json"])).unwrap();
    for l in again["layers"].as_array().unwrap() {
        assert_eq!(l["status"], "cached", "{again}");
    }
    assert_eq!(again["images"][0]["digest"], image["digest"]);
}
