//! Project mistakes that used to pass silently, and store reports.

mod common;

use common::{Env, write};

/// A one-layer project copying `files/` with the given `[[source.copy]]`
/// extra line; image `img`, tags as given.
fn project(env: &Env, copy_extra: &str, images: &str) -> std::path::PathBuf {
    let root = env.path("proj");
    write(&root, "layers/x/files/run.sh", "#!/bin/sh\necho hi\n");
    write(
        &root,
        "layers/x/layer.toml",
        &format!(
            "[layer]\nname = \"x\"\n\n[[source.copy]]\nfrom = \"files\"\nto = \"/opt\"\n{copy_extra}\n"
        ),
    );
    write(
        &root,
        "strata.toml",
        &format!("[project]\nname = \"m\"\n\n{images}"),
    );
    root
}

const ONE: &str = "[images.img]\nlayers = [\"x\"]\n";

#[test]
fn modes_are_octal_and_bounded() {
    for (line, why) in [
        ("mode = 755", "mode = 755 is a decimal number"),
        ("mode = 99999999", "0o7777"),
        ("mode = \"0999\"", "not an octal number"),
        ("mode = 0o17777", "0o7777"),
    ] {
        let env = Env::new();
        let root = project(&env, line, ONE);
        let err = env.fails(&["check", "-C", root.to_str().unwrap()]);
        assert!(
            err.contains("layers/x/layer.toml") && err.contains(why),
            "{line}: {err}"
        );
    }
    for line in ["mode = 0o755", "mode = \"0755\"", "mode = \"755\""] {
        let env = Env::new();
        let root = project(&env, line, ONE);
        env.ok(&["build", "-C", root.to_str().unwrap()]);
        let ls = env.ok(&["ls", "m/img:latest"]);
        assert!(
            ls.lines()
                .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with("/opt/run.sh")),
            "{line}: {ls}"
        );
    }
}

#[test]
fn two_images_with_one_tag_are_an_error_in_check_and_build() {
    let env = Env::new();
    let images = "[images.a]\nlayers = [\"x\"]\ntags = [\"m/app:1\"]\n\n[images.b]\nlayers = [\"x\"]\ntags = [\"m/app:1\"]\n";
    let root = project(&env, "", images);
    for cmd in ["check", "build"] {
        let err = env.fails(&[cmd, "-C", root.to_str().unwrap()]);
        assert!(
            err.contains("images a and b both write the tag m/app:1"),
            "{cmd}: {err}"
        );
    }
    assert!(
        env.fails(&["inspect", "m/app:1"]).contains("m/app"),
        "nothing tagged"
    );
}

#[test]
fn check_validates_tag_syntax() {
    let env = Env::new();
    let root = project(
        &env,
        "",
        "[images.img]\nlayers = [\"x\"]\ntags = [\"m/app:-bad\"]\n",
    );
    let err = env.fails(&["check", "-C", root.to_str().unwrap()]);
    assert!(
        err.contains("images.img.tags") && err.contains("-bad"),
        "{err}"
    );
}

#[test]
fn fsck_reports_leftover_temp_files_with_size_and_age() {
    let env = Env::new();
    env.busybox_image("img:1", "hi");
    std::fs::write(env.store().join("blobs/.tmp-crashed"), vec![0u8; 3000]).unwrap();
    let out = env.ok(&["store", "fsck"]);
    assert!(
        out.contains("temp: blobs/.tmp-crashed (2.9 KiB") && out.contains("store gc removes it"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["store", "fsck", "--json"])).unwrap();
    assert_eq!(v["temp"][0][0], "blobs/.tmp-crashed");
    assert_eq!(v["temp"][0][1], 3000);
}

#[test]
fn names_strata_would_refuse_to_read_are_refused_when_written() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), "x").unwrap();
    let err = env.fails(&[
        "new",
        "--add",
        &format!("{}:/d", src.display()),
        "--tag",
        "t:1",
    ]);
    assert!(
        err.contains("not valid UTF-8") && err.contains("bad"),
        "{err}"
    );
    assert!(env.fails(&["inspect", "t:1"]).contains("t:1"));
}

/// A fresh clone where two layers' inputs are not made yet: images that do
/// not need them build, graph and env work, and a command that needs them
/// names every missing input at once. A source that would climb out of the
/// project is still refused on load, existing or not.
#[test]
fn a_missing_input_blocks_only_the_images_that_need_it() {
    let env = Env::new();
    let root = project(
        &env,
        "",
        "[images.img]\nlayers = [\"x\"]\n\n[images.full]\nlayers = [\"x\", \"gen\", \"dist\"]\n",
    );
    write(
        &root,
        "layers/gen/layer.toml",
        "[layer]\nname = \"gen\"\n\n[[source.copy]]\nfrom = \"out/generated\"\nto = \"/gen\"\n",
    );
    write(
        &root,
        "layers/dist/layer.toml",
        "[layer]\nname = \"dist\"\n\n[source.tar]\npath = \"dist.tar\"\n",
    );
    let p = root.to_str().unwrap();
    env.ok(&["build", "-C", p, "img"]);
    env.ok(&["plan", "-C", p, "img"]);
    env.ok(&["check", "-C", p, "img"]);
    let graph = env.ok(&["graph", "-C", p]);
    assert!(graph.contains("gen") && graph.contains("dist"), "{graph}");
    env.ok(&["env", "-C", p, "img"]);
    for cmd in [
        vec!["build", "-C", p, "full"],
        vec!["plan", "-C", p, "full"],
        vec!["check", "-C", p],
        vec!["build", "-C", p],
    ] {
        let err = env.fails(&cmd);
        assert!(
            err.contains("2 input(s)")
                && err.contains("layers/gen/layer.toml key source.copy.from: \"out/generated\"")
                && err.contains("layers/dist/layer.toml key source.tar.path: \"dist.tar\""),
            "{cmd:?}: {err}"
        );
    }
    assert!(env.fails(&["inspect", "m/full:latest"]).contains("full"));
    // Made: now it builds.
    write(&root, "layers/gen/out/generated/a", "a");
    common::run(
        std::process::Command::new("tar")
            .arg("-cf")
            .arg(root.join("layers/dist/dist.tar"))
            .arg("-C")
            .arg(root.join("layers/x"))
            .arg("files"),
    );
    env.ok(&["build", "-C", p, "full"]);
    env.ok(&["inspect", "m/full:latest"]);
    // Climbing out of the project is refused on load, missing or not.
    write(
        &root,
        "layers/gen/layer.toml",
        "[layer]\nname = \"gen\"\n\n[[source.copy]]\nfrom = \"nothere/../../../../etc\"\nto = \"/gen\"\n",
    );
    let err = env.fails(&["graph", "-C", p]);
    assert!(
        err.contains("layers/gen/layer.toml key source.copy.from"),
        "{err}"
    );
}

/// An image's layers follow the graph, ties broken by the order
/// `images.NAME.layers` and each layer's lists give, not by name.
#[test]
fn layer_order_follows_the_listed_order_where_the_graph_leaves_it_open() {
    let env = Env::new();
    let root = project(
        &env,
        "",
        "[images.img]\nlayers = [\"zeta\", \"alpha\"]\n\n[images.rev]\nlayers = [\"alpha\", \"zeta\"]\n\n[images.tool]\nlayers = [\"mid\"]\nkind = \"builder\"\n",
    );
    for (name, needs) in [("zeta", "x"), ("alpha", "x"), ("mid", "zeta")] {
        write(
            &root,
            &format!("layers/{name}/layer.toml"),
            &format!(
                "[layer]\nname = \"{name}\"\n\n[requires]\nlayers = [\"{needs}\", \"alpha\"]\n\n[runtime]\nlayers = [\"{needs}\"]\n"
            ),
        );
    }
    // alpha may not need itself.
    write(
        &root,
        "layers/alpha/layer.toml",
        "[layer]\nname = \"alpha\"\n\n[runtime]\nlayers = [\"x\"]\n",
    );
    let graph = env.ok(&["graph", "-C", root.to_str().unwrap()]);
    for line in [
        "image img (Runtime): x → zeta → alpha",
        "image rev (Runtime): x → alpha → zeta",
        // mid needs zeta then alpha; zeta needs x then alpha.
        "image tool (Builder): x → alpha → zeta → mid",
    ] {
        assert!(graph.contains(line), "{line}\n{graph}");
    }
}
