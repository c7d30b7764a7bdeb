//! The content store: concurrency, fsck, gc, corruption, bad digests.

mod common;

use std::fs;
use std::process::{Command, Stdio};

use common::{BUSYBOX, Env, files_under};

fn layer_digests(env: &Env, r: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "--json", r])).unwrap();
    v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn concurrent_processes_lose_no_tag() {
    let env = Env::new();
    let n = 8;
    let children: Vec<_> = (0..n)
        .map(|i| {
            let src = env.path(&format!("src{i}"));
            fs::create_dir_all(&src).unwrap();
            fs::write(src.join("id"), format!("image {i}")).unwrap();
            Command::new(env!("CARGO_BIN_EXE_strata"))
                .args([
                    "new",
                    "--add",
                    &format!("{}:/", src.display()),
                    "--tag",
                    &format!("img{i}:v1"),
                ])
                .env("STRATA_STORE", env.store())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tags = env.ok(&["store", "ls"]);
    for i in 0..n {
        assert!(
            tags.contains(&format!("img{i}:v1\t")),
            "tag img{i}:v1 lost:\n{tags}"
        );
    }
    assert!(env.ok(&["store", "fsck"]).contains("0 corrupt, 0 missing"));
    // No temp file survives.
    let leftovers: Vec<_> = files_under(&env.store())
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn fsck_reports_corruption_and_reads_refuse_it() {
    let env = Env::new();
    env.busybox_image("demo:1", "hi");
    let layer = layer_digests(&env, "demo:1").remove(0);
    let blob = env
        .store()
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();

    let out = env.strata(&["store", "fsck"]);
    assert!(!out.status.success(), "fsck must fail on a corrupt store");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("corrupt: blob {layer}")),
        "{stdout}"
    );

    // Copying it out refuses the bad blob: nothing under its digest, no temp
    // file, no tag. (Blobs copied before it are whole and verified, and stay.)
    let dest = env.path("out");
    let err = env.fails(&["copy", "demo:1", &format!("oci:{}:x", dest.display())]);
    assert!(
        err.contains("digest mismatch") && err.contains(&layer),
        "{err}"
    );
    let blobs_written: Vec<_> = files_under(&dest.join("blobs/sha256"));
    assert!(
        blobs_written
            .iter()
            .all(|p| !p.ends_with(layer.trim_start_matches("sha256:"))),
        "{blobs_written:?}"
    );
    let names: Vec<String> = files_under(&dest)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n == "index.json" || n == "oci-layout" || n.len() == 64),
        "only whole blobs and the layout's files: {names:?}"
    );
    assert!(
        !fs::read_to_string(dest.join("index.json"))
            .unwrap()
            .contains("\"x\""),
        "no tag for a failed copy"
    );
    let err = env.fails(&["validate", "demo:1"]);
    assert!(err.contains("failed validation"), "{err}");
    let err = env.fails(&[
        "copy",
        "demo:1",
        &format!("docker-archive:{}:a:b", env.path("d.tar").display()),
    ]);
    assert!(
        err.contains(&layer) && (err.contains("digest mismatch") || err.contains("damaged")),
        "{err}"
    );
    assert!(!env.path("d.tar").exists());
    assert!(
        files_under(env.dir.path())
            .iter()
            .all(|p| !p.to_string_lossy().contains(".strata-archive-"))
    );
}

#[test]
fn fsck_reports_missing_blobs() {
    let env = Env::new();
    env.busybox_image("demo:1", "hi");
    let layer = layer_digests(&env, "demo:1").remove(0);
    fs::remove_file(
        env.store()
            .join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:")),
    )
    .unwrap();
    let out = env.strata(&["store", "fsck"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("missing: blob {layer}")));
}

#[test]
fn gc_removes_only_unreachable_blobs() {
    let env = Env::new();
    env.busybox_image("keep:1", "kept");
    let src = env.path("other");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "only in the dropped image").unwrap();
    env.ok(&[
        "new",
        "--from",
        "keep:1",
        "--add",
        &format!("{}:/x", src.display()),
        "--tag",
        "drop:1",
    ]);
    let drop_layers = layer_digests(&env, "drop:1");
    let unique = drop_layers.last().unwrap().clone();
    let before = files_under(&env.store().join("blobs/sha256")).len();

    // Within the grace period nothing goes.
    env.ok(&["store", "rm", "drop:1"]);
    assert!(env.ok(&["store", "gc"]).contains("removed 0 blobs"));
    let out = env.ok(&["store", "gc", "--grace", "0", "--dry-run"]);
    assert!(out.contains("would remove 3 blobs"), "{out}");
    assert_eq!(files_under(&env.store().join("blobs/sha256")).len(), before);
    env.ok(&["store", "gc", "--grace", "0"]);
    let left = files_under(&env.store().join("blobs/sha256"));
    assert_eq!(
        left.len(),
        before - 3,
        "manifest, config and the unique layer go"
    );
    assert!(
        !left
            .iter()
            .any(|p| p.ends_with(unique.trim_start_matches("sha256:")))
    );
    env.ok(&["validate", "keep:1"]);
}

#[test]
fn bad_digests_and_references_are_refused_clearly() {
    let env = Env::new();
    for (arg, needle) in [
        ("app@sha256:abc", "64 hex characters"),
        (&format!("app@sha256:{}", "A".repeat(64)), "lowercase hex"),
        (&format!("app@md5:{}", "a".repeat(32)), "only sha256"),
        ("Bad/Name", "lowercase"),
        ("app:-tag", "tag"),
        ("oci:", "needs a directory"),
    ] {
        let err = env.fails(&["inspect", arg]);
        assert!(
            err.contains(needle) && err.contains("invalid"),
            "{arg}: {err}"
        );
    }
    let err = env.fails(&[
        "new",
        "--add",
        &format!("{BUSYBOX}:/bin/busybox"),
        "--tag",
        "has space",
    ]);
    assert!(err.contains("invalid reference"), "{err}");
    assert!(
        files_under(&env.store()).is_empty(),
        "a refused command must not even create the store"
    );
    let err = env.fails(&["inspect", "nothere:1"]);
    assert!(err.contains("tag \"nothere:1\" not found"), "{err}");
}

#[test]
fn digest_references_read_from_the_store() {
    let env = Env::new();
    let digest = env.busybox_image("demo:1", "hi");
    let out = env.ok(&["inspect", &format!("@{digest}")]);
    assert!(out.contains(&digest), "{out}");
    env.ok(&["tag", &format!("demo@{digest}"), "again:2"]);
    assert!(env.ok(&["store", "ls"]).contains("again:2"));
}

#[test]
fn an_index_with_a_malformed_digest_names_it() {
    let env = Env::new();
    env.busybox_image("demo:1", "hi");
    let index = env.store().join("index.json");
    let text = fs::read_to_string(&index).unwrap();
    let broken = text.replacen("sha256:", "sha256:XYZ", 1);
    fs::write(&index, broken).unwrap();
    let err = env.fails(&["inspect", "demo:1"]);
    assert!(
        err.contains("index.json") && err.contains("invalid digest"),
        "{err}"
    );
}

/// Bytes of every file under `dir`.
fn du(dir: &std::path::Path) -> u64 {
    common::files_under(dir)
        .iter()
        .map(|p| std::fs::symlink_metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

#[test]
fn rebuilding_a_changing_project_a_hundred_times_keeps_the_store_bounded() {
    let env = Env::new();
    let root = env.path("proj");
    common::write(
        &root,
        "strata.toml",
        "[project]\nname = \"g\"\n\n[images.img]\nlayers = [\"app\"]\n",
    );
    common::write(
        &root,
        "layers/app/layer.toml",
        "[layer]\nname = \"app\"\n\n[[source.copy]]\nfrom = \"files\"\nto = \"/srv\"\n",
    );
    let build = |i: usize| {
        // Incompressible-ish content of a fixed size, different each time.
        let data: String = (0..4096)
            .map(|j| char::from(b'a' + ((i * 7919 + j * 31) % 26) as u8))
            .collect();
        common::write(&root, "layers/app/files/data.txt", &data);
        common::backdate(&root);
        env.ok(&["build", "-C", root.to_str().unwrap()]);
    };
    build(0);
    env.ok(&["store", "gc", "--grace", "0"]);
    let first = du(&env.store());
    for i in 1..=100 {
        build(i);
    }
    let grown = du(&env.store());
    assert!(
        grown > first * 3,
        "the builds left garbage to collect: {first} -> {grown}"
    );
    let out = env.ok(&["store", "gc", "--grace", "0", "--dry-run"]);
    assert!(
        out.contains("would remove") && out.contains("records"),
        "{out}"
    );
    assert_eq!(du(&env.store()), grown, "a dry run removes nothing");
    let out = env.ok(&["store", "gc", "--grace", "0"]);
    let after = du(&env.store());
    assert!(
        after <= first + first / 4 + 16 * 1024,
        "store {first} bytes after one build, {after} after a hundred and gc:\n{out}"
    );
    let records = std::fs::read_dir(env.store().join(".strata/layers"))
        .unwrap()
        .count();
    assert_eq!(records, 1, "one layer cache entry left");
    env.ok(&["validate", "g/img:latest"]);
    // The next no-op build still hits.
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["build", "-C", root.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(v["layers"][0]["status"], "cached", "{v}");
}
