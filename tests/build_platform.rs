//! Build steps that run on the build machine (`[source.run] platform =
//! "build"`): in the pass for another platform they run natively over the
//! build machine's own build of their stack, with TARGET* and BUILD* set,
//! so a cross-compiler writes the target's files with no emulation. The
//! image for the other platform still gets that platform's layers.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::apt::host_arch;
use common::images::{busybox_rootfs, file_in_image, unregistered_arch};
use common::{Env, build_json, plan_json, platform_layer, write};
use serde_json::Value;

/// A project for the host's platform and `other`: a base whose root is
/// per platform (busybox for the host, no shell at all for `other`), and
/// a step on the build machine writing what it saw.
fn project(env: &Env, other: &str) -> PathBuf {
    let root = env.path("cross");
    let host = host_arch();
    busybox_rootfs(&root.join(format!("layers/base/rootfs/{host}")));
    write(
        &root,
        &format!("layers/base/rootfs/{other}/etc/which"),
        "foreign\n",
    );
    write(
        &root,
        "layers/base/layer.toml",
        "[layer]\nname = \"base\"\n\n[[source.copy]]\nfrom = \"rootfs/{arch}\"\nto = \"/\"\n",
    );
    write(
        &root,
        "layers/cross/layer.toml",
        "[layer]\nname = \"cross\"\n\n[requires]\nlayers = [\"base\"]\n\n[runtime]\nlayers = [\"base\"]\n\n[source.run]\nplatform = \"build\"\ncommands = [\"mkdir -p /out && echo \\\"$TARGETPLATFORM $TARGETARCH $TARGETVARIANT. on $(uname -m) $BUILDPLATFORM $BUILDARCH\\\" > /out/info\"]\noutputs = [\"/out\"]\n",
    );
    write(
        &root,
        "strata.toml",
        &format!(
            "[project]\nname = \"xc\"\n\n[defaults]\nplatforms = [\"linux/{host}\", \"linux/{other}\"]\n\n[images.app]\nlayers = [\"cross\"]\nkind = \"runtime\"\ntags = [\"xc/app:latest\"]\n"
        ),
    );
    root
}

fn info(env: &Env, platform: &str) -> String {
    let bytes = file_in_image(env, "xc/app:latest", platform, "out/info").expect("out/info");
    String::from_utf8(bytes).unwrap()
}

/// The other platform: one the kernel cannot run at all when there is one,
/// so that nothing can have been emulated.
fn other_platform() -> String {
    match unregistered_arch() {
        Some(a) => a.to_string(),
        None if host_arch() == "amd64" => "arm64".into(),
        None => "amd64".into(),
    }
}

#[test]
fn a_step_on_the_build_machine_runs_natively_for_another_platform() {
    if !common::can_run_steps("a build step on the build machine for another platform") {
        return;
    }
    let env = Env::new();
    let other = other_platform();
    let host = host_arch();
    let (hp, op) = (format!("linux/{host}"), format!("linux/{other}"));
    let root = project(&env, &other);
    let first = build_json(&env, &root, &[]);
    let machine = std::env::consts::ARCH;
    // The commands ran on this machine for both; each platform's image
    // holds what was written for it.
    assert_eq!(
        info(&env, &op),
        format!("{op} {other} . on {machine} {hp} {host}\n")
    );
    assert_eq!(
        info(&env, &hp),
        format!("{hp} {host} . on {machine} {hp} {host}\n")
    );
    // The other platform's image has its own base, not the one the step
    // ran over.
    assert_eq!(
        file_in_image(&env, "xc/app:latest", &op, "etc/which").as_deref(),
        Some(&b"foreign\n"[..])
    );
    assert!(file_in_image(&env, "xc/app:latest", &op, "bin/busybox").is_none());
    assert!(file_in_image(&env, "xc/app:latest", &hp, "etc/which").is_none());
    assert_eq!(
        platform_layer(&first, "cross", &op)["status"],
        "built",
        "{first}"
    );
    assert_eq!(
        platform_layer(&first, "base", &op)["status"],
        "built",
        "{first}"
    );
    // The build machine's base is listed once.
    let bases = first["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["name"] == "base" && l["platform"] == hp.as_str())
        .count();
    assert_eq!(bases, 1, "{first}");

    // Again: nothing is built.
    let again = build_json(&env, &root, &[]);
    for l in again["layers"].as_array().unwrap() {
        assert_eq!(l["status"], "cached", "{again}");
    }

    let p = root.to_str().unwrap();
    // Run twice, over the build machine's stack, the step gives the same
    // bytes for each platform.
    env.ok(&["build", "-C", p, "--check-reproducible"]);

    // The other platform's base is not what the step runs over: changing
    // it rebuilds that base only.
    write(
        &root,
        &format!("layers/base/rootfs/{other}/etc/which"),
        "changed\n",
    );
    let plan: Value = plan_json(&env, &root, &[]);
    assert_eq!(
        platform_layer(&plan, "base", &op)["action"],
        "build",
        "{plan}"
    );
    assert_eq!(
        platform_layer(&plan, "cross", &op)["action"],
        "reuse",
        "{plan}"
    );
    let changed = build_json(&env, &root, &[]);
    assert_eq!(
        platform_layer(&changed, "base", &op)["status"],
        "built",
        "{changed}"
    );
    assert_eq!(
        platform_layer(&changed, "cross", &op)["status"],
        "cached",
        "{changed}"
    );
    assert_eq!(
        platform_layer(&changed, "cross", &hp)["status"],
        "cached",
        "{changed}"
    );

    // The build machine's base is: changing it rebuilds the step for both.
    write(
        &root,
        &format!("layers/base/rootfs/{host}/etc/motd"),
        "hi\n",
    );
    let plan: Value = plan_json(&env, &root, &[]);
    assert_eq!(
        platform_layer(&plan, "cross", &op)["action"],
        "build",
        "{plan}"
    );
    assert_eq!(
        platform_layer(&plan, "cross", &hp)["action"],
        "build",
        "{plan}"
    );
    let moved = build_json(&env, &root, &[]);
    assert_eq!(
        platform_layer(&moved, "cross", &op)["status"],
        "built",
        "{moved}"
    );
    assert_eq!(
        platform_layer(&moved, "cross", &hp)["status"],
        "built",
        "{moved}"
    );
    env.ok(&["check", "-C", p]);
}

/// Narrowed to the other platform alone, the build machine's stack is
/// built for the step (and said so in the report and the plan); the
/// step's key is the one the two-platform build gives it.
#[test]
fn the_build_machines_stack_is_built_when_only_the_other_platform_is() {
    if !common::can_run_steps("a build step on the build machine, other platform only") {
        return;
    }
    let env = Env::new();
    let other = other_platform();
    let (hp, op) = (format!("linux/{}", host_arch()), format!("linux/{other}"));
    let root = project(&env, &other);
    let p = root.to_str().unwrap();
    let plan = plan_json(&env, &root, &["--platform", &op]);
    let base = platform_layer(&plan, "base", &hp);
    assert_eq!(base["action"], "build", "{plan}");
    assert!(
        base["reasons"][0]
            .as_str()
            .unwrap()
            .contains("runs build steps cross over it"),
        "{plan}"
    );
    let planned = platform_layer(&plan, "cross", &op)["key"].clone();
    let one = build_json(&env, &root, &["--platform", &op]);
    assert_eq!(
        platform_layer(&one, "base", &hp)["status"],
        "built",
        "{one}"
    );
    assert_eq!(platform_layer(&one, "cross", &op)["key"], planned, "{one}");
    assert!(info(&env, &op).starts_with(&format!("{op} {other} ")));
    let both = build_json(&env, &root, &[]);
    assert_eq!(
        platform_layer(&both, "cross", &op)["key"],
        planned,
        "{both}"
    );
    assert_eq!(
        platform_layer(&both, "cross", &op)["status"],
        "cached",
        "{both}"
    );
    // --locked in a store that has nothing: every layer is built again to
    // compare with strata.lock, the step over the build machine's stack.
    let fresh = env.path("fresh-store");
    let locked = env.ok(&[
        "build",
        "-C",
        p,
        "--locked",
        "--json",
        "--store",
        fresh.to_str().unwrap(),
    ]);
    let locked: Value = serde_json::from_str(&locked).unwrap();
    assert_eq!(
        platform_layer(&locked, "cross", &op)["key"],
        planned,
        "{locked}"
    );
    assert_eq!(
        locked["images"][0]["digest"], both["images"][0]["digest"],
        "{locked}"
    );
}

/// A step platform strata does not know is an error naming the file, the
/// line and the values it takes.
#[test]
fn an_unknown_step_platform_is_refused_naming_the_key() {
    let env = Env::new();
    let root = project(&env, &other_platform());
    let toml = Path::new(&root).join("layers/cross/layer.toml");
    let text = fs::read_to_string(&toml).unwrap();
    fs::write(
        &toml,
        text.replace("platform = \"build\"", "platform = \"host\""),
    )
    .unwrap();
    let err = env.fails(&["build", "-C", root.to_str().unwrap()]);
    assert!(
        err.contains("layers/cross/layer.toml line 11")
            && err.contains("`host`, expected `target` or `build`"),
        "{err}"
    );
    assert!(env.fails(&["inspect", "xc/app:latest"]).contains("xc/app"));
}

/// A fresh machine with the registry cache takes the step from it and
/// neither builds nor downloads the build machine's stack for it.
#[test]
fn a_cached_step_needs_no_stack_on_a_fresh_machine() {
    if !common::can_run_steps("a build step on the build machine from the registry cache") {
        return;
    }
    let reg = common::registry::Registry::start(common::registry::Auth::None, false);
    let cache = format!("docker://{}/team/cache", reg.host());
    let other = other_platform();
    let (hp, op) = (format!("linux/{}", host_arch()), format!("linux/{other}"));
    let a = Env::new();
    let first = build_json(&a, &project(&a, &other), &["--cache", &cache]);
    let b = Env::new();
    let pb = project(&b, &other);
    // The plan says so: the step comes from the cache, its stack is not
    // in the plan.
    let plan = plan_json(&b, &pb, &["--cache", &cache, "--platform", &op]);
    assert_eq!(
        platform_layer(&plan, "cross", &op)["from"],
        "cache",
        "{plan}"
    );
    let planned_host = plan["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["platform"] == hp.as_str())
        .count();
    assert_eq!(planned_host, 0, "{plan}");
    let second = build_json(&b, &pb, &["--cache", &cache, "--platform", &op]);
    assert_eq!(
        platform_layer(&second, "cross", &op)["status"],
        "remote",
        "{second}"
    );
    assert_eq!(
        platform_layer(&second, "cross", &op)["key"],
        platform_layer(&first, "cross", &op)["key"]
    );
    let host_layers: Vec<&Value> = second["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["platform"] == hp.as_str())
        .collect();
    assert!(host_layers.is_empty(), "{second}");
    assert!(info(&b, &op).starts_with(&format!("{op} {other} ")));
}
