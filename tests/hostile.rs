//! Hostile registries (the fake on 127.0.0.x): where credentials go when a
//! server hands out URLs on other hosts, stalls mid-body, and upload
//! rounds that make no progress.

mod common;

use common::fake::{Fake, Faults, r, setup};
use common::{Env, files_under};

/// `store`'s files whose name marks a temp file.
fn temp_files(store: &std::path::Path) -> Vec<std::path::PathBuf> {
    files_under(store)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with(".tmp") || n.contains(".tmp-")
        })
        .collect()
}

/// Pushes `img:1` to `fake` (which wants Basic `carol:pw`) with `extra`
/// flags; uploads are handed to `other`. Returns what `other` saw.
fn push_with_uploads_elsewhere(extra: &[&str]) -> (Vec<common::fake::Seen>, String) {
    let other = Fake::start_on(Faults::default(), "127.0.0.2");
    let auth = format!("Basic {}", common::basic_b64("carol", "pw"));
    let fake = Fake::start(Faults {
        require_auth: Some(auth.clone()),
        upload_location_to: Some(format!("http://{}", other.host())),
        ..Default::default()
    });
    let env = Env::new();
    let digest = env.busybox_image("img:1", "hi");
    let authfile = env.path("auth.json");
    common::write_auth_file(&authfile, &fake.host(), "carol", "pw");
    let mut args = vec!["copy"];
    args.extend_from_slice(extra);
    let dest = r(&fake, "dst/img:1");
    args.extend(["img:1", dest.as_str()]);
    let out = env
        .cmd(&args)
        .env("REGISTRY_AUTH_FILE", &authfile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);
    assert!(
        fake.seen()
            .iter()
            .any(|s| s.method == "PUT" && s.authorization.as_deref() == Some(auth.as_str())),
        "the manifest PUT to the registry itself carries the credentials"
    );
    (other.seen(), auth)
}

#[test]
fn credentials_never_go_to_an_upload_location_on_another_host() {
    let (at_other, _) = push_with_uploads_elsewhere(&[]);
    assert!(
        at_other.iter().any(|s| s.method == "PUT" && s.body_len > 0),
        "the blobs went to the other host: {at_other:?}"
    );
    assert!(
        at_other.iter().all(|s| s.authorization.is_none()),
        "credentials leaked to the upload host: {at_other:?}"
    );
}

#[test]
fn credentials_never_go_to_an_upload_location_on_another_host_in_chunks() {
    let (at_other, _) = push_with_uploads_elsewhere(&["--chunk-size", "300000"]);
    assert!(
        at_other.iter().filter(|s| s.method == "PATCH").count() >= 2,
        "chunks went to the other host: {at_other:?}"
    );
    assert!(
        at_other.iter().all(|s| s.authorization.is_none()),
        "credentials leaked to the upload host: {at_other:?}"
    );
}

#[test]
fn a_blob_that_stalls_mid_stream_resumes_where_it_stopped() {
    let fake = Fake::start(Faults::default());
    let (_env, digest, layer) = setup(&fake);
    fake.state.lock().unwrap().faults.stall_blob = Some((layer.clone(), 1));
    let pulled = Env::new();
    let out = pulled.ok(&[
        "--stall-timeout",
        "1",
        "copy",
        &r(&fake, "src/img:1"),
        "x:1",
    ]);
    assert_eq!(out.trim(), digest);
    let ranged: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path.ends_with(&layer) && s.range.is_some())
        .collect();
    assert_eq!(ranged.len(), 1, "one resume with a Range request");
    pulled.ok(&["validate", "x:1"]);
}

#[test]
fn a_blob_that_always_stalls_fails_naming_host_and_blob_and_leaves_no_temp_file() {
    let fake = Fake::start(Faults::default());
    let (_env, _, layer) = setup(&fake);
    fake.state.lock().unwrap().faults.stall_blob = Some((layer.clone(), usize::MAX));
    let pulled = Env::new();
    let err = pulled.fails(&[
        "--stall-timeout",
        "1",
        "copy",
        &r(&fake, "src/img:1"),
        "x:1",
    ]);
    assert!(
        err.contains(&fake.host()) && err.contains(&layer) && err.contains("stall"),
        "{err}"
    );
    let gets = fake
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.path.ends_with(&layer))
        .count();
    assert_eq!(
        gets, 5,
        "the first GET and four resumes (the default 5 attempts)"
    );
    assert_eq!(
        temp_files(&pulled.store()),
        Vec::<std::path::PathBuf>::new()
    );
    assert!(
        pulled.fails(&["inspect", "x:1"]).contains("x:1"),
        "nothing tagged"
    );
}

/// A pull from `fake` into a new store whose layer download stalls, once
/// its temp file is there: (the store's env, the strata process, the
/// image digest, the layer digest).
fn stalled_pull(fake: &Fake) -> (Env, std::process::Child, String, String) {
    let (_env, digest, layer) = setup(fake);
    fake.state.lock().unwrap().faults.stall_blob = Some((layer.clone(), usize::MAX));
    let pulled = Env::new();
    let child = pulled
        .cmd(&[
            "--stall-timeout",
            "60",
            "copy",
            &r(fake, "src/img:1"),
            "x:1",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (polling, with a deadline) until the layer's download has begun
    // and its temp file is in blobs/: a temp file elsewhere in the store
    // may be a small record's, renamed into place a moment later (the
    // layer's half sits in the writer's buffer, so its size tells nothing).
    let layer_path = format!("/blobs/{layer}");
    let blobs = pulled.store().join("blobs");
    let stalled = || {
        fake.seen()
            .iter()
            .any(|s| s.method == "GET" && s.path.ends_with(&layer_path))
            && temp_files(&pulled.store())
                .iter()
                .any(|p| p.parent() == Some(blobs.as_path()))
    };
    let started = std::time::Instant::now();
    while !stalled() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no download started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (pulled, child, digest, layer)
}

#[test]
fn sigint_during_a_pull_removes_the_temp_file_and_exits_130() {
    let fake = Fake::start(Faults::default());
    let (pulled, mut child, _, _) = stalled_pull(&fake);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert_eq!(
        temp_files(&pulled.store()),
        Vec::<std::path::PathBuf>::new()
    );
    assert!(pulled.fails(&["inspect", "x:1"]).contains("x:1"));
}

/// Crash safety: strata killed with SIGKILL mid-download (nothing of it
/// can run) leaves only a temp file, never a blob under its digest or a
/// tag; fsck reports the temp file and stays green, gc removes it, and the
/// pull then succeeds.
#[test]
fn sigkill_mid_write_leaves_a_temp_file_that_fsck_reports_and_gc_removes() {
    let fake = Fake::start(Faults::default());
    let (pulled, mut child, digest, layer) = stalled_pull(&fake);
    child.kill().unwrap();
    child.wait().unwrap();
    let left = temp_files(&pulled.store());
    assert_eq!(left.len(), 1, "{left:?}");
    let blob = pulled
        .store()
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    assert!(!blob.exists(), "no partial blob under its digest");
    assert!(pulled.fails(&["inspect", "x:1"]).contains("x:1"));
    let fsck = pulled.ok(&["store", "fsck"]);
    assert!(
        fsck.contains("temp: ") && fsck.contains("did not finish"),
        "{fsck}"
    );
    pulled.ok(&["store", "gc", "--grace", "0"]);
    assert_eq!(
        temp_files(&pulled.store()),
        Vec::<std::path::PathBuf>::new()
    );
    let fsck = pulled.ok(&["store", "fsck"]);
    assert!(!fsck.contains("temp: "), "{fsck}");
    fake.state.lock().unwrap().faults.stall_blob = None;
    assert_eq!(
        pulled.ok(&["copy", &r(&fake, "src/img:1"), "x:1"]).trim(),
        digest
    );
    pulled.ok(&["validate", "x:1"]);
}

#[test]
fn a_manifest_that_stalls_fails_naming_the_host() {
    let fake = Fake::start(Faults::default());
    let (_env, _, _) = setup(&fake);
    fake.state.lock().unwrap().faults.stall_manifest = true;
    let pulled = Env::new();
    let err = pulled.fails(&["--stall-timeout", "1", "inspect", &r(&fake, "src/img:1")]);
    assert!(err.contains(&fake.host()), "{err}");
    assert!(err.contains("manifest") && err.contains("stall"), "{err}");
    let gets = fake
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.path.contains("/manifests/"))
        .count();
    assert_eq!(gets, 5, "the manifest is fetched again after each stall");
}

#[test]
fn an_upload_the_registry_never_answers_fails_naming_the_host() {
    let fake = Fake::start(Faults {
        stall_uploads: true,
        ..Default::default()
    });
    let env = Env::new();
    env.busybox_image("img:1", "hi");
    let err = env.fails(&[
        "--stall-timeout",
        "1",
        "copy",
        "img:1",
        &r(&fake, "dst/img:1"),
    ]);
    assert!(
        err.contains(&fake.host()) && err.contains("stall timeout"),
        "{err}"
    );
    let mut puts = std::collections::BTreeMap::new();
    for s in fake.seen() {
        if s.method == "PUT" && s.path.contains("/uploads/") {
            *puts.entry(s.path).or_insert(0) += 1;
        }
    }
    assert!(!puts.is_empty());
    assert!(
        puts.values().all(|&n| n == 5),
        "each upload abandoned after the stall, 5 attempts: {puts:?}"
    );
}

#[test]
fn chunk_rounds_whose_range_does_not_advance_fail_naming_the_blob() {
    let fake = Fake::start(Faults {
        stuck_range: true,
        ..Default::default()
    });
    let env = Env::new();
    env.busybox_image("img:1", "hi");
    let layer = env.first_layer("img:1");
    let err = env.fails(&[
        "copy",
        "--chunk-size",
        "100000",
        "img:1",
        &r(&fake, "dst/img:1"),
    ]);
    assert!(
        err.contains(&layer) && err.contains("does not advance") && err.contains("0-99999"),
        "{err}"
    );
    let patches = fake.seen().iter().filter(|s| s.method == "PATCH").count();
    assert_eq!(patches, 2, "it stops at the first round without progress");
}

/// Rewrites the manifest that `layout`'s index.json points at with `edit`,
/// storing the new bytes as a blob and pointing the index at it. Returns the
/// new manifest digest.
fn edit_layout_manifest(
    layout: &std::path::Path,
    edit: impl FnOnce(&mut serde_json::Value),
) -> String {
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let old = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&old)).unwrap()).unwrap();
    edit(&mut m);
    let bytes = serde_json::to_vec(&m).unwrap();
    let digest = strata::Digest::of(&bytes).to_string();
    std::fs::write(blob(&digest), &bytes).unwrap();
    index["manifests"][0]["digest"] = digest.clone().into();
    index["manifests"][0]["size"] = bytes.len().into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    digest
}

fn ambiguous(m: &mut serde_json::Value) {
    m["manifests"] = serde_json::json!([]);
}

#[test]
fn a_document_with_both_layers_and_manifests_is_refused_from_a_layout() {
    let env = Env::new();
    env.busybox_image("img:1", "hi");
    let layout = env.path("layout");
    env.ok(&["copy", "img:1", &format!("oci:{}:1", layout.display())]);
    let digest = edit_layout_manifest(&layout, ambiguous);
    let src = format!("oci:{}:1", layout.display());
    for args in [
        vec!["copy", src.as_str(), "x:1"],
        vec!["inspect", src.as_str()],
        vec!["validate", src.as_str()],
    ] {
        let err = env.fails(&args);
        assert!(
            err.contains("ambiguous") && err.contains(&digest),
            "{args:?}: {err}"
        );
    }
    assert!(
        env.fails(&["inspect", "x:1"]).contains("x:1"),
        "nothing tagged"
    );
}

#[test]
fn a_document_with_both_layers_and_manifests_is_refused_from_a_registry() {
    let fake = Fake::start(Faults::default());
    let env = Env::new();
    env.busybox_image("img:1", "hi");
    let layout = env.path("layout");
    env.ok(&["copy", "img:1", &format!("oci:{}:1", layout.display())]);
    let digest = edit_layout_manifest(&layout, ambiguous);
    fake.load_layout(&layout, "src/img");
    // As an image manifest, and with a generic Content-Type.
    for ct in [None, Some("application/json")] {
        fake.state.lock().unwrap().faults.manifest_content_type = ct.map(str::to_string);
        let err = env.fails(&["copy", &r(&fake, "src/img:1"), "x:1"]);
        assert!(
            err.contains("ambiguous") && err.contains(&digest),
            "{ct:?}: {err}"
        );
    }
}

#[test]
fn a_generic_content_type_is_checked_against_the_body() {
    let fake = Fake::start(Faults::default());
    let env = Env::new();
    let digest = env.busybox_image("img:1", "hi");
    let layout = env.path("layout");
    env.ok(&["copy", "img:1", &format!("oci:{}:1", layout.display())]);
    // No mediaType in the body, served as application/json: the fields
    // say it is an image manifest, and it is read as one.
    let edited = edit_layout_manifest(&layout, |m| {
        m.as_object_mut().unwrap().remove("mediaType");
    });
    fake.load_layout(&layout, "src/img");
    fake.state.lock().unwrap().faults.manifest_content_type = Some("application/json".into());
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "--json", &r(&fake, "src/img:1")])).unwrap();
    assert_eq!(v["digest"], edited.as_str(), "{v}");
    assert_ne!(edited, digest);
    // A body whose mediaType says index while its fields are a manifest's.
    let layout2 = env.path("layout2");
    env.ok(&["copy", "img:1", &format!("oci:{}:1", layout2.display())]);
    let lying = edit_layout_manifest(&layout2, |m| {
        m["mediaType"] = "application/vnd.oci.image.index.v1+json".into();
    });
    fake.load_layout(&layout2, "src/lying");
    let err = env.fails(&["inspect", &r(&fake, "src/lying:1")]);
    assert!(err.contains(&lying), "{err}");
}

/// One tar entry written raw: (name, type, link target, content).
type RawEntry<'a> = (&'a [u8], tar::EntryType, Option<&'a str>, &'a [u8]);

/// A tar of `entries`, names and link targets written as given.
fn tar_of(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, content) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_size(content.len() as u64);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_entry_type(*kind);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(content);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// An OCI layout at `dir` holding one image (tag 1) with one uncompressed
/// layer `layer`, made by hand as another tool might. Returns the layer
/// digest.
fn layout_with_layer(dir: &std::path::Path, layer: &[u8]) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = strata::Digest::of(b).to_string();
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), b).unwrap();
        d
    };
    let layer_digest = put(layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "config": {}
    });
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}]
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": put(&manifest), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "1"}}]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    layer_digest
}

use tar::EntryType as T;

/// Layers that would write outside their root when unpacked, each with
/// the entry that must be named.
fn escaping_layers() -> Vec<(Vec<u8>, &'static str)> {
    vec![
        (
            tar_of(&[
                (b"a", T::Symlink, Some("/"), b""),
                (b"a/f", T::Regular, None, b"x"),
            ]),
            "a/f",
        ),
        (
            tar_of(&[
                (b"d/", T::Directory, None, b""),
                (b"d/up", T::Symlink, Some(".."), b""),
                (b"d/up2", T::Symlink, Some("up/.."), b""),
                (b"d/up2/etc/passwd", T::Regular, None, b"x"),
            ]),
            "d/up2/etc/passwd",
        ),
        (
            tar_of(&[
                (b"l", T::Symlink, Some("/etc"), b""),
                (b"h", T::Link, Some("l/passwd"), b""),
            ]),
            "h",
        ),
        (tar_of(&[(b"h", T::Link, Some("nowhere"), b"")]), "h"),
        (tar_of(&[(b"../x", T::Regular, None, b"x")]), "../x"),
        (tar_of(&[(b"/etc/x", T::Regular, None, b"x")]), "/etc/x"),
    ]
}

#[test]
fn layers_that_escape_through_links_are_refused_by_ls_and_reported_by_validate() {
    let env = Env::new();
    for (i, (layer, entry)) in escaping_layers().into_iter().enumerate() {
        let dir = env.path(&format!("layout{i}"));
        let digest = layout_with_layer(&dir, &layer);
        let src = format!("oci:{}:1", dir.display());
        let err = env.fails(&["ls", &src]);
        assert!(
            err.contains("unsafe path") && err.contains(entry) && err.contains(&digest),
            "case {i} ls: {err}"
        );
        let out = env.strata(&["validate", &src]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "case {i}: validate must fail: {text}"
        );
        assert!(
            text.contains("unsafe path") && text.contains(entry),
            "case {i} validate: {text}"
        );
    }
}

/// A one-layer project whose layer is `[source.tar]` of `layer.tar`.
fn tar_project(env: &Env) -> std::path::PathBuf {
    let root = env.path("proj");
    common::write(
        &root,
        "strata.toml",
        "[project]\nname = \"t\"\n\n[images.img]\nlayers = [\"x\"]\n",
    );
    common::write(
        &root,
        "layers/x/layer.toml",
        "[layer]\nname = \"x\"\n\n[source.tar]\npath = \"layer.tar\"\n",
    );
    root
}

#[test]
fn tarball_sources_that_escape_through_links_are_refused() {
    let env = Env::new();
    let root = tar_project(&env);
    let tarball = root.join("layers/x/layer.tar");
    for (i, (layer, entry)) in escaping_layers().into_iter().enumerate() {
        std::fs::write(&tarball, &layer).unwrap();
        let before = files_under(&env.store().join("blobs"));
        let err = env.fails(&["build", "-C", root.to_str().unwrap(), "img"]);
        assert!(
            err.contains("unsafe path") && err.contains(entry) && err.contains("layer.tar"),
            "case {i}: {err}"
        );
        assert_eq!(
            files_under(&env.store().join("blobs")),
            before,
            "case {i}: no blob written"
        );
        assert!(
            temp_files(&env.store()).is_empty(),
            "case {i}: no temp file"
        );
    }
    // What is fine stays fine: a link replaced by a directory, hardlinks to
    // earlier entries, symlinks pointing anywhere.
    let ok = tar_of(&[
        (b"a", T::Symlink, Some("/"), b""),
        (b"a/", T::Directory, None, b""),
        (b"a/f", T::Regular, None, b"x"),
        (b"a/g", T::Link, Some("a/f"), b""),
        (b"etc/", T::Directory, None, b""),
        (
            b"etc/localtime",
            T::Symlink,
            Some("/usr/share/zoneinfo/UTC"),
            b"",
        ),
    ]);
    std::fs::write(&tarball, ok).unwrap();
    env.ok(&["build", "-C", root.to_str().unwrap(), "img"]);
    env.ok(&["validate", "t/img:latest"]);
}

#[test]
fn ls_verifies_what_it_lists() {
    let env = Env::new();
    env.busybox_image("a:1", "a");
    let layer = env.first_layer("a:1");
    // Another valid gzip layer put in place of a:1's layer blob.
    let other = env.path("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("f"), "other").unwrap();
    env.ok(&[
        "new",
        "--add",
        &format!("{}:/x", other.display()),
        "--tag",
        "b:1",
    ]);
    let b_layer = env.first_layer("b:1");
    let blob = |d: &str| {
        env.store()
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    std::fs::copy(blob(&b_layer), blob(&layer)).unwrap();
    let out = env.strata(&["ls", "a:1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a swapped blob must not list cleanly"
    );
    assert!(err.contains("mismatch") && err.contains(&layer), "{err}");
}

#[test]
fn ls_escapes_names_that_would_forge_lines_or_reach_the_terminal() {
    let env = Env::new();
    let dir = env.path("layout");
    let layer = tar_of(&[
        (
            b"a\n-rwsr-xr-x     0/0              1 /fake",
            T::Regular,
            None,
            b"x",
        ),
        (b"b\x1b[2Jc", T::Regular, None, b"x"),
        (b"l", T::Symlink, Some("x\ny"), b""),
    ]);
    layout_with_layer(&dir, &layer);
    let out = env.ok(&["ls", &format!("oci:{}:1", dir.display())]);
    assert!(!out.lines().any(|l| l.starts_with("-rwsr-xr-x")), "{out}");
    assert!(out.contains("/a\\n-rwsr-xr-x"), "{out}");
    assert!(
        !out.contains('\x1b') && out.contains("/b\\u{1b}[2Jc"),
        "{out}"
    );
    assert!(out.contains("/l -> x\\ny"), "{out}");
    // --json: one object per entry and line, names exactly as stored.
    let json = env.ok(&["ls", "--json", &format!("oci:{}:1", dir.display())]);
    let entries: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let paths: Vec<&str> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/a\n-rwsr-xr-x     0/0              1 /fake",
            "/b\x1b[2Jc",
            "/l"
        ],
        "{json}"
    );
    assert_eq!(entries[2]["link"], "x\ny");
    assert_eq!(entries[2]["type"], "l");
    assert_eq!(
        (entries[0]["mode"].as_str(), entries[0]["size"].as_u64()),
        (Some("0644"), Some(1))
    );
}

/// A layer whose first entry carries the local PAX records `records`
/// (written raw), then a regular file `f` of 3 bytes.
fn layer_with_pax(records: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeaders/f").unwrap();
    h.set_entry_type(T::XHeader);
    h.set_size(records.len() as u64);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(records);
    out.resize(out.len().div_ceil(512) * 512, 0);
    let mut h = tar::Header::new_ustar();
    h.set_path("f").unwrap();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(b"abc");
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[test]
fn malformed_pax_records_are_refused_as_go_refuses_them() {
    let env = Env::new();
    let umoci = common::have("umoci");
    let cases: [(&[u8], &str); 6] = [
        (b"99 path=f\n", "does not fit"),
        (b"10 pathxf\n", "without '='"),
        (b"x1 path=f\n", "not a number"),
        (b"11 size=-1\n", "negative"),
        (b"29 size=99999999999999999999\n", "64-bit"),
        (b"9 path=f\n\n", "without a length"),
    ];
    for (i, (records, why)) in cases.iter().enumerate() {
        let dir = env.path(&format!("pax{i}"));
        let digest = layout_with_layer(&dir, &layer_with_pax(records));
        let src = format!("oci:{}:1", dir.display());
        let err = env.fails(&["ls", &src]);
        assert!(
            err.contains("invalid tar header") && err.contains(why) && err.contains(&digest),
            "case {i}: {err}"
        );
        let out = env.strata(&["validate", &src]);
        assert!(!out.status.success(), "case {i}: validate must fail");
        if umoci {
            // Go's archive/tar (umoci) refuses the same bytes.
            let bundle = env.path(&format!("bundle{i}"));
            let out = std::process::Command::new("umoci")
                .args(["unpack", "--image", &format!("{}:1", dir.display())])
                .arg(&bundle)
                .output()
                .unwrap();
            assert!(
                !out.status.success(),
                "case {i}: umoci unpacked what strata refuses"
            );
        }
    }
    // A well-formed PAX header passes both.
    let dir = env.path("pax-ok");
    layout_with_layer(&dir, &layer_with_pax(b"9 path=f\n"));
    let src = format!("oci:{}:1", dir.display());
    assert!(env.ok(&["ls", &src]).contains(" /f"));
    env.ok(&["validate", &src]);
    if umoci {
        let bundle = env.path("bundle-ok");
        let out = std::process::Command::new("umoci")
            .args(["unpack", "--image", &format!("{}:1", dir.display())])
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(bundle.join("rootfs/f")).unwrap(), b"abc");
        common::note("umoci agrees on PAX records", "RAN");
    } else {
        common::note(
            "umoci agrees on PAX records",
            "SKIPPED (umoci not installed)",
        );
    }
    // A tarball source with a malformed record is refused too.
    let root = tar_project(&env);
    std::fs::write(
        root.join("layers/x/layer.tar"),
        layer_with_pax(b"11 size=-1\n"),
    )
    .unwrap();
    let err = env.fails(&["build", "-C", root.to_str().unwrap(), "img"]);
    assert!(
        err.contains("negative") && err.contains("layer.tar"),
        "{err}"
    );
}

/// A docker-archive of `img:1` re-packed with its first layer moved behind
/// a symlink `link/layer.tar -> TARGET` (as `docker save` links repeated
/// layers), the manifest naming the link.
fn archive_with_linked_layer(
    env: &Env,
    dir: &str,
    target: impl Fn(&str) -> String,
) -> std::path::PathBuf {
    let archive = env.path(&format!("{dir}.tar"));
    env.ok(&[
        "copy",
        "img:1",
        &format!("docker-archive:{}:img:1", archive.display()),
    ]);
    let x = env.path(dir);
    std::fs::create_dir_all(&x).unwrap();
    common::run(
        std::process::Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&x),
    );
    let mpath = x.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    let layer = m[0]["Layers"][0].as_str().unwrap().to_string();
    std::fs::create_dir_all(x.join("link")).unwrap();
    std::os::unix::fs::symlink(target(&layer), x.join("link/layer.tar")).unwrap();
    m[0]["Layers"][0] = "link/layer.tar".into();
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    let out = env.path(&format!("{dir}-linked.tar"));
    common::run(
        std::process::Command::new("tar")
            .arg("-cf")
            .arg(&out)
            .arg("-C")
            .arg(&x)
            .arg("."),
    );
    out
}

#[test]
fn docker_archives_whose_layer_is_a_symlink_are_read_safely() {
    let env = Env::new();
    env.busybox_image("img:1", "hi");
    let ok = archive_with_linked_layer(&env, "a", |layer| format!("../{layer}"));
    let got = Env::new();
    let plain = env.path("a.tar");
    let digest = got.ok(&[
        "copy",
        &format!("docker-archive:{}", plain.display()),
        "p:1",
    ]);
    let digest = digest.trim();
    assert_eq!(
        got.ok(&["copy", &format!("docker-archive:{}", ok.display()), "x:1"])
            .trim(),
        digest,
        "the same image through the link"
    );
    got.ok(&["validate", "x:1"]);
    let evil = archive_with_linked_layer(&env, "b", |_| "../../../etc/passwd".into());
    let err = got.fails(&["copy", &format!("docker-archive:{}", evil.display()), "y:1"]);
    assert!(
        err.contains("unsafe path") && err.contains("outside the archive"),
        "{err}"
    );
    let abs = archive_with_linked_layer(&env, "c", |_| "/etc/passwd".into());
    let err = got.fails(&["copy", &format!("docker-archive:{}", abs.display()), "z:1"]);
    assert!(
        err.contains("unsafe path") && err.contains("absolute"),
        "{err}"
    );
}
