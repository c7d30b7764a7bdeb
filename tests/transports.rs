//! Images written in every transport: schemas, independent readers
//! (skopeo, umoci, runc, docker), round trips, hostile archives.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{BUSYBOX, Env, Schemas, docker_engine, files_under, have, note, run};
use serde_json::Value;

fn json_file(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> Value {
    json_file(
        &layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
}

/// Validates a layout directory: oci-layout, index.json, and for every
/// manifest it names, the manifest and its config.
fn check_layout(s: &Schemas, layout: &Path) {
    s.check(
        "image-layout-schema.json",
        &json_file(&layout.join("oci-layout")),
        "oci-layout",
    );
    let index = json_file(&layout.join("index.json"));
    s.check("image-index-schema.json", &index, "index.json");
    for m in index["manifests"].as_array().unwrap() {
        let manifest = blob(layout, m["digest"].as_str().unwrap());
        s.check("image-manifest-schema.json", &manifest, "manifest");
        s.check(
            "content-descriptor.json",
            &manifest["config"],
            "config descriptor",
        );
        s.check(
            "config-schema.json",
            &blob(layout, manifest["config"]["digest"].as_str().unwrap()),
            "config",
        );
    }
}

fn extract(archive: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(into));
}

fn rich_image(env: &Env) -> String {
    let ep = serde_json::to_string(&[BUSYBOX, "echo", "hello from strata"]).unwrap();
    env.ok(&[
        "new",
        "--add",
        &format!("{BUSYBOX}:{BUSYBOX}"),
        "--entrypoint",
        &ep,
        "--cmd",
        "ignored-by-echo",
        "--env",
        "PATH=/bin",
        "--workdir",
        "/",
        "--user",
        "0:0",
        "--label",
        "org.example=1",
        "--expose",
        "8080",
        "--volume",
        "/data",
        "--stop-signal",
        "SIGTERM",
        "--source",
        "https://example.invalid/repo",
        "--revision",
        "abc123",
        "--tag",
        "demo:1",
    ])
    .trim()
    .to_string()
}

#[test]
fn every_transport_validates_against_the_image_spec_schemas() {
    let env = Env::new();
    let s = Schemas::new();
    let digest = rich_image(&env);
    check_layout(&s, &env.store());

    let layout = env.path("layout");
    assert_eq!(
        env.ok(&["copy", "demo:1", &format!("oci:{}:demo", layout.display())])
            .trim(),
        digest
    );
    check_layout(&s, &layout);

    let oci_tar = env.path("demo-oci.tar");
    assert_eq!(
        env.ok(&[
            "copy",
            "demo:1",
            &format!("oci-archive:{}:demo", oci_tar.display())
        ])
        .trim(),
        digest
    );
    let x = env.path("x-oci");
    extract(&oci_tar, &x);
    check_layout(&s, &x);

    let docker_tar = env.path("demo-docker.tar");
    env.ok(&[
        "copy",
        "demo:1",
        &format!("docker-archive:{}:demo:1", docker_tar.display()),
    ]);
    let x = env.path("x-docker");
    extract(&docker_tar, &x);
    let manifest = json_file(&x.join("manifest.json"));
    assert_eq!(manifest[0]["RepoTags"][0], "demo:1");
    let config = json_file(&x.join(manifest[0]["Config"].as_str().unwrap()));
    s.check("config-schema.json", &config, "docker-archive config");

    // Read back from every transport: same image, validated end to end.
    for r in [
        format!("oci:{}:demo", layout.display()),
        format!("oci-archive:{}:demo", oci_tar.display()),
    ] {
        let v: Value = serde_json::from_str(&env.ok(&["inspect", "--json", &r])).unwrap();
        assert_eq!(v["digest"], digest.as_str(), "{r}");
        env.ok(&["validate", &r]);
    }
    let back = env.ok(&[
        "copy",
        &format!("docker-archive:{}:demo:1", docker_tar.display()),
        "back:1",
    ]);
    env.ok(&["validate", "back:1"]);
    check_layout(&s, &env.store());
    let v: Value = serde_json::from_str(&env.ok(&["inspect", "--json", "back:1"])).unwrap();
    assert_eq!(v["digest"], back.trim());
    assert_eq!(v["config"]["config"]["Labels"]["org.example"], "1");
}

#[test]
fn config_and_annotations_are_written() {
    let env = Env::new();
    rich_image(&env);
    let v: Value = serde_json::from_str(&env.ok(&["inspect", "--json", "demo:1"])).unwrap();
    let c = &v["config"]["config"];
    assert_eq!(c["Entrypoint"][2], "hello from strata");
    assert_eq!(c["Cmd"][0], "ignored-by-echo");
    assert_eq!(c["Env"][0], "PATH=/bin");
    assert_eq!(c["WorkingDir"], "/");
    assert_eq!(c["User"], "0:0");
    assert!(c["ExposedPorts"]["8080/tcp"].is_object());
    assert!(c["Volumes"]["/data"].is_object());
    assert_eq!(c["StopSignal"], "SIGTERM");
    let a = &v["manifest"]["annotations"];
    assert_eq!(
        a["org.opencontainers.image.created"],
        "1970-01-01T00:00:00Z"
    );
    assert_eq!(
        a["org.opencontainers.image.source"],
        "https://example.invalid/repo"
    );
    assert_eq!(a["org.opencontainers.image.revision"], "abc123");
    assert_eq!(v["config"]["history"][0]["created"], "1970-01-01T00:00:00Z");
    assert!(
        v["config"]["history"][0]["created_by"]
            .as_str()
            .unwrap()
            .contains("strata new")
    );
}

#[test]
fn skopeo_reads_every_transport_with_identical_digests() {
    if !have("skopeo") {
        note("skopeo inspect/copy", "SKIPPED (skopeo not installed)");
        return;
    }
    let env = Env::new();
    let digest = rich_image(&env);
    let layout = env.path("layout");
    let oci_tar = env.path("o.tar");
    let docker_tar = env.path("d.tar");
    env.ok(&["copy", "demo:1", &format!("oci:{}:demo", layout.display())]);
    env.ok(&[
        "copy",
        "demo:1",
        &format!("oci-archive:{}:demo", oci_tar.display()),
    ]);
    env.ok(&[
        "copy",
        "demo:1",
        &format!("docker-archive:{}:demo:1", docker_tar.display()),
    ]);
    for r in [
        format!("oci:{}:demo", layout.display()),
        format!("oci-archive:{}:demo", oci_tar.display()),
        format!("oci:{}:demo:1", env.store().display()),
    ] {
        let out: Value =
            serde_json::from_str(&run(Command::new("skopeo").args(["inspect", &r]))).unwrap();
        assert_eq!(out["Digest"], digest.as_str(), "{r}");
        assert_eq!(out["Labels"]["org.example"], "1");
    }
    let out: Value = serde_json::from_str(&run(Command::new("skopeo").args([
        "inspect",
        &format!("docker-archive:{}", docker_tar.display()),
    ])))
    .unwrap();
    assert_eq!(out["Labels"]["org.example"], "1");
    // skopeo copies strata's output to a layout strata reads back bit for bit.
    let copied = env.path("skopeo-copy");
    run(Command::new("skopeo").args([
        "copy",
        &format!("oci:{}:demo", layout.display()),
        &format!("oci:{}:c", copied.display()),
    ]));
    let v: Value = serde_json::from_str(&env.ok(&[
        "inspect",
        "--json",
        &format!("oci:{}:c", copied.display()),
    ]))
    .unwrap();
    assert_eq!(v["digest"], digest.as_str(), "skopeo copy keeps the digest");
    let from_docker = env.path("skopeo-from-docker");
    run(Command::new("skopeo").args([
        "copy",
        &format!("docker-archive:{}", docker_tar.display()),
        &format!("oci:{}:d", from_docker.display()),
    ]));
    env.ok(&["validate", &format!("oci:{}:d", from_docker.display())]);
    note(
        "skopeo inspect/copy of oci, oci-archive, docker-archive",
        "RAN",
    );
}

#[test]
fn umoci_unpacks_and_runc_runs_the_image() {
    if !have("umoci") || !have("runc") {
        note(
            "umoci unpack + runc run",
            "SKIPPED (umoci or runc not installed)",
        );
        return;
    }
    let env = Env::new();
    rich_image(&env);
    let (ok, out, err) = common::runc_run(&env, "demo:1");
    if !ok {
        if unsafe { geteuid() } != 0 {
            note("runc run", &format!("SKIPPED (not root: {err})"));
            return;
        }
        panic!("runc run failed: {err}");
    }
    assert_eq!(out.trim(), "hello from strata ignored-by-echo");
    note("umoci unpack + runc run", "RAN");
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

#[test]
fn docker_loads_and_runs_the_docker_archive() {
    if !docker_engine() {
        note(
            "docker load + docker run",
            "SKIPPED (no Docker engine answers)",
        );
        return;
    }
    let env = Env::new();
    rich_image(&env);
    assert_eq!(
        common::DockerImage::load(&env, "demo:1").run().trim(),
        "hello from strata ignored-by-echo"
    );
    note("docker load + docker run", "RAN");
}

#[test]
fn builds_are_reproducible_across_directories_mtimes_and_threads() {
    let env = Env::new();
    let (a, b) = (env.path("one/app"), env.path("two/elsewhere/app"));
    common::make_tree(&a);
    common::make_tree(&b);
    run(Command::new("find").arg(&b).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        "2011-11-11 11:11:11",
        "{}",
        "+",
    ]));
    let build = |src: &Path, store: &Path, threads: &str, epoch: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "new",
                "--add",
                &format!("{}:/app", src.display()),
                "--entrypoint",
                "/app/bin/tool",
            ])
            .args(["--threads", threads, "--tag", "repro:1"])
            .env("STRATA_STORE", store)
            .env("SOURCE_DATE_EPOCH", epoch)
            .current_dir(src)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let d1 = build(&a, &env.path("store-a"), "1", "1700000000");
    let d2 = build(&b, &env.path("store-b"), "2", "1700000000");
    let d3 = build(&b, &env.path("store-c"), "8", "1700000000");
    assert_eq!(d1, d2);
    assert_eq!(d1, d3);
    let d4 = build(&a, &env.path("store-d"), "1", "1700000001");
    assert_ne!(d1, d4, "SOURCE_DATE_EPOCH is part of the bytes");
}

/// Rewrites the config of image `tag` in a layout with `edit`, fixing the
/// manifest and index digests (what another tool's image would look like).
fn edit_config(layout: &Path, tag: &str, edit: impl FnOnce(&mut Value)) {
    let put = |bytes: &[u8]| -> (String, usize) {
        let d = strata::Digest::of(bytes);
        fs::write(layout.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        (d.to_string(), bytes.len())
    };
    let index_path = layout.join("index.json");
    let mut index = json_file(&index_path);
    let entry = index["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let mut manifest = blob(layout, entry["digest"].as_str().unwrap());
    let mut config = blob(layout, manifest["config"]["digest"].as_str().unwrap());
    edit(&mut config);
    let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = cd.into();
    manifest["config"]["size"] = cs.into();
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    entry["digest"] = md.into();
    entry["size"] = ms.into();
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn a_base_config_keeps_fields_strata_does_not_model() {
    let env = Env::new();
    env.busybox_image("base:1", "base");
    let layout = env.path("layout");
    env.ok(&["copy", "base:1", &format!("oci:{}:base", layout.display())]);
    edit_config(&layout, "base", |c| {
        c["config"]["Healthcheck"] = serde_json::json!({"Test": ["CMD", "/bin/busybox", "true"], "Interval": 30000000000u64});
        c["config"]["OnBuild"] = serde_json::json!(["RUN true"]);
        c["x-vendor"] = serde_json::json!({"keep": "me"});
    });
    let base = format!("oci:{}:base", layout.display());
    let base_digest: Value = serde_json::from_str(&env.ok(&["inspect", "--json", &base])).unwrap();
    let extra = env.path("extra");
    fs::create_dir_all(&extra).unwrap();
    fs::write(extra.join("hello.txt"), "hi").unwrap();
    env.ok(&[
        "new",
        "--from",
        &base,
        "--add",
        &format!("{}:/srv", extra.display()),
        "--env",
        "A=1",
        "--tag",
        "child:1",
    ]);
    let v: Value = serde_json::from_str(&env.ok(&["inspect", "--json", "child:1"])).unwrap();
    assert_eq!(v["config"]["config"]["Healthcheck"]["Test"][2], "true");
    assert_eq!(v["config"]["config"]["OnBuild"][0], "RUN true");
    assert_eq!(v["config"]["x-vendor"]["keep"], "me");
    assert_eq!(v["config"]["config"]["Env"][0], "A=1");
    assert_eq!(v["layers"].as_array().unwrap().len(), 2);
    assert_eq!(v["config"]["history"].as_array().unwrap().len(), 2);
    let a = &v["manifest"]["annotations"];
    assert_eq!(a["org.opencontainers.image.base.name"], base.as_str());
    assert_eq!(
        a["org.opencontainers.image.base.digest"],
        base_digest["digest"]
    );
    env.ok(&["validate", "child:1"]);
}

#[test]
fn a_base_whose_blob_fails_its_digest_is_refused_and_nothing_is_written() {
    let env = Env::new();
    env.busybox_image("base:1", "base");
    let layout = env.path("layout");
    env.ok(&["copy", "base:1", &format!("oci:{}:base", layout.display())]);
    let v: Value = serde_json::from_str(&env.ok(&["inspect", "--json", "base:1"])).unwrap();
    let layer = v["layers"][0]["digest"].as_str().unwrap().to_string();
    let path = layout
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0x55;
    fs::write(&path, bytes).unwrap();

    let other = Env::new();
    other.ok(&["store", "path"]);
    let before = files_under(&other.store());
    let extra = other.path("extra");
    fs::create_dir_all(&extra).unwrap();
    fs::write(extra.join("f"), "x").unwrap();
    let err = other.fails(&[
        "new",
        "--from",
        &format!("oci:{}:base", layout.display()),
        "--add",
        &format!("{}:/x", extra.display()),
        "--tag",
        "child:1",
    ]);
    assert!(
        err.contains("digest mismatch") && err.contains(&layer),
        "{err}"
    );
    assert_eq!(
        files_under(&other.store()),
        before,
        "nothing may be written to the store"
    );
}

/// Writes a tar whose entries are given as (name, content) — names are
/// written raw, so they can be hostile.
fn raw_tar(path: &Path, entries: &[(&str, &[u8])]) {
    let mut out = Vec::new();
    for (name, content) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(content);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    fs::write(path, out).unwrap();
}

#[test]
fn hostile_archives_are_refused_and_nothing_is_written() {
    let env = Env::new();
    env.ok(&["store", "path"]);
    let before = files_under(&env.store());
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    type Case<'a> = (&'a str, Vec<(&'a str, &'a [u8])>, &'a str);
    let cases: Vec<Case> = vec![
        ("oci-archive", vec![("oci-layout", layout), ("../evil", b"x")], "../evil"),
        ("oci-archive", vec![("/etc/evil", b"x"), ("oci-layout", layout)], "/etc/evil"),
        ("docker-archive", vec![("manifest.json", br#"[{"Config":"../../etc/passwd","RepoTags":["a:b"],"Layers":[]}]"#)], "../../etc/passwd"),
        ("docker-archive", vec![("manifest.json", br#"[{"Config":"/etc/passwd","RepoTags":["a:b"],"Layers":[]}]"#)], "/etc/passwd"),
        ("docker-archive", vec![("manifest.json", br#"[{"Config":"c.json","RepoTags":["a:b"],"Layers":["x/../../l.tar"]}]"#), ("c.json", br#"{"rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#)], "x/../../l.tar"),
        ("docker-archive", vec![("a/../../b", b"x"), ("manifest.json", b"[]")], "a/../../b"),
    ];
    for (i, (transport, entries, bad)) in cases.iter().enumerate() {
        let path = env.path(&format!("hostile{i}.tar"));
        raw_tar(&path, entries);
        let err = env.fails(&["copy", &format!("{transport}:{}", path.display()), "got:1"]);
        assert!(
            err.contains("unsafe path") && err.contains(bad),
            "case {i}: {err}"
        );
        assert_eq!(
            files_under(&env.store()),
            before,
            "case {i}: nothing may be written"
        );
    }
}

#[test]
fn ls_lists_layer_files() {
    let env = Env::new();
    let src = env.path("src");
    common::make_tree(&src);
    env.ok(&[
        "new",
        "--add",
        &format!("{}:/app", src.display()),
        "--tag",
        "t:1",
    ]);
    let out = env.ok(&["ls", "t:1"]);
    assert!(
        out.contains("-rwsr-xr-x     0/0              6 /app/bin/suid"),
        "{out}"
    );
    assert!(
        out.contains("lrwxrwxrwx") && out.contains("/app/bin/config-link -> ../etc/config"),
        "{out}"
    );
    assert!(
        out.contains("drwxrwxrwt") && out.contains("/app/tmp"),
        "{out}"
    );
    let err = env.fails(&["ls", "t:1", "--layer", "3"]);
    assert!(err.contains("has 1 layers"), "{err}");
}

#[test]
fn every_command_has_help() {
    let env = Env::new();
    for cmd in [
        vec!["--help"],
        vec!["new", "--help"],
        vec!["copy", "--help"],
        vec!["inspect", "--help"],
        vec!["ls", "--help"],
        vec!["validate", "--help"],
        vec!["tag", "--help"],
        vec!["store", "--help"],
        vec!["store", "fsck", "--help"],
        vec!["store", "gc", "--help"],
        vec!["store", "ls", "--help"],
        vec!["store", "rm", "--help"],
        vec!["store", "caches", "--help"],
        vec!["login", "--help"],
        vec!["logout", "--help"],
        vec!["tags", "--help"],
        vec!["delete", "--help"],
        vec!["prune", "--help"],
        vec!["build", "--help"],
        vec!["plan", "--help"],
        vec!["env", "--help"],
        vec!["graph", "--help"],
        vec!["check", "--help"],
        vec!["sbom", "--help"],
        vec!["run", "--help"],
        vec!["test", "--help"],
    ] {
        let out = env.ok(&cmd);
        assert!(out.contains("Usage:"), "{cmd:?}: {out}");
    }
    let build = env.ok(&["build", "--help"]);
    assert!(
        build.contains("--refresh") && build.contains("--attach-sbom"),
        "{build}"
    );
    // Registry flags are in the help of commands that reach a registry
    // only, and still accepted (and validated) anywhere.
    for cmd in [["copy"], ["build"], ["tags"], ["plan"]] {
        let help = env.ok(&[cmd[0], "--help"]);
        assert!(
            help.contains("--jobs") && help.contains("--stall-timeout"),
            "{cmd:?}: {help}"
        );
    }
    for cmd in [
        vec!["graph"],
        vec!["sbom"],
        vec!["store", "gc"],
        vec!["tag"],
    ] {
        let help = env.ok(&[cmd.as_slice(), &["--help"]].concat());
        assert!(
            !help.contains("--jobs")
                && !help.contains("--stall-timeout")
                && !help.contains("--insecure-registry")
                && help.contains("--store"),
            "{cmd:?}: {help}"
        );
    }
    let help = env.ok(&["env", "--help"]);
    assert!(
        !help.contains("--jobs") && help.contains("--stall-timeout"),
        "{help}"
    );
    let err = env.fails(&["graph", "--stall-timeout", "0"]);
    assert!(err.contains("--stall-timeout must be"), "{err}");
}

#[test]
fn podman_loads_the_docker_archive() {
    if !have("podman") {
        note("podman load", "SKIPPED (podman not installed)");
        return;
    }
    let env = Env::new();
    rich_image(&env);
    let tar = env.path("d.tar");
    env.ok(&[
        "copy",
        "demo:1",
        &format!("docker-archive:{}:strata-test/demo:1", tar.display()),
    ]);
    // Private storage: no global state, nothing left behind.
    let root = env.path("podman-root");
    let runroot = env.path("podman-run");
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot)
            .args(["--storage-driver", "vfs"])
            .args(args);
        run(&mut c)
    };
    let out = podman(&["load", "-i", tar.to_str().unwrap()]);
    assert!(out.contains("strata-test/demo:1"), "{out}");
    let inspect = podman(&[
        "image",
        "inspect",
        "strata-test/demo:1",
        "--format",
        "{{json .Config.Entrypoint}} {{len .RootFS.Layers}} {{index .Config.Labels \"org.example\"}}",
    ]);
    assert_eq!(
        inspect.trim(),
        r#"["/bin/busybox","echo","hello from strata"] 1 1"#
    );
    // `podman run` needs to set RLIMIT_NOFILE, which sandboxes may forbid;
    // running is covered by the runc and docker tests.
    note("podman load + image inspect", "RAN");
    let _ = fs::remove_dir_all(&root);
}

/// `strata ls IMG | head -1`: the reader goes away; strata ends quietly with
/// the SIGPIPE status, as skopeo and coreutils do, not with an error.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    let src = env.path("many");
    fs::create_dir_all(&src).unwrap();
    // ~200 KiB of listing: more than a pipe holds, so strata must block on
    // it and see the reader close.
    for i in 0..2000 {
        fs::write(src.join(format!("file-with-a-long-name-{i:05}.txt")), "x").unwrap();
    }
    env.ok(&[
        "new",
        "--add",
        &format!("{}:/data", src.display()),
        "--tag",
        "many:1",
    ]);
    let mut child = env
        .cmd(&["ls", "many:1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("# layer 0"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "no error message");
}
