//! What the README promises about the command line, each tested where it
//! is promised: `--add SRC:DEST:UID:GID`, `--compression` from the command
//! line and strata.toml, `docker-archive:FILE:@N`, `{git_sha}`, files that
//! change while they are read, where the store is, and the demo script.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{BUSYBOX, Env, note, run};
use serde_json::Value;

fn inspect(env: &Env, r: &str) -> Value {
    serde_json::from_str(&env.ok(&["inspect", "--json", r])).unwrap()
}

#[test]
fn add_takes_an_owner_for_what_it_adds() {
    let env = Env::new();
    let f = env.path("f");
    fs::write(&f, "owned\n").unwrap();
    env.ok(&[
        "new",
        "--add",
        &format!("{}:/x/f:1000:2000", f.display()),
        "--add",
        &format!("{}:/y/f", f.display()),
        "--tag",
        "own:1",
    ]);
    let listing = env.ok(&["ls", "own:1"]);
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} in {listing}"))
            .to_string()
    };
    assert!(line(" /x/f").contains(" 1000/2000 "), "{listing}");
    assert!(line(" /y/f").contains(" 0/0 "), "{listing}");
    let err = env.fails(&[
        "new",
        "--add",
        &format!("{}:/x/f:root:0", f.display()),
        "--tag",
        "own:2",
    ]);
    assert!(err.contains("root"), "{err}");
}

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// `--compression` on the command line: the media type follows, the
/// diff_id does not move, and a zstd image runs under runc and docker.
#[test]
fn compression_from_the_command_line() {
    let env = Env::new();
    let mut diff_ids = Vec::new();
    for (algo, media) in [
        ("gzip", GZIP),
        ("gzip:9", GZIP),
        ("zstd", ZSTD),
        ("zstd:19", ZSTD),
        ("none", TAR),
    ] {
        let tag = format!("c:{}", algo.replace(':', "-"));
        let ep = serde_json::to_string(&[BUSYBOX, "echo", "compressed"]).unwrap();
        env.ok(&[
            "new",
            "--compression",
            algo,
            "--add",
            &format!("{BUSYBOX}:{BUSYBOX}"),
            "--entrypoint",
            &ep,
            "--tag",
            &tag,
        ]);
        let v = inspect(&env, &tag);
        assert_eq!(v["layers"][0]["mediaType"], media, "{algo}: {v}");
        diff_ids.push((
            algo,
            v["layers"][0]["digest"].clone(),
            v["config"]["rootfs"]["diff_ids"][0].clone(),
        ));
        env.ok(&["validate", &tag]);
    }
    assert!(diff_ids.iter().all(|(_, _, d)| *d == diff_ids[0].2));
    assert_ne!(diff_ids[0].1, diff_ids[1].1, "gzip:9 is other bytes");
    assert_ne!(diff_ids[2].1, diff_ids[3].1, "zstd:19 is other bytes");
    let err = env.fails(&["new", "--compression", "lz4", "--tag", "c:x"]);
    assert!(err.contains("lz4"), "{err}");

    // umoci 0.4 cannot unpack zstd layers; strata run unpacks them itself
    // and runs the image under runc.
    if common::have("runc") && unsafe { libc::geteuid() } == 0 {
        assert_eq!(env.ok(&["run", "c:zstd"]).trim(), "compressed");
        note("zstd image under strata run (runc)", "RAN");
    } else {
        note(
            "zstd image under strata run (runc)",
            "SKIPPED (needs root and runc)",
        );
    }
    if common::docker_engine() {
        let out = common::DockerImage::load(&env, "c:zstd").run();
        assert_eq!(out.trim(), "compressed");
        note("zstd image under docker", "RAN");
    } else {
        note("zstd image under docker", "SKIPPED (no Docker engine)");
    }
}

/// `compression` in strata.toml's `[defaults]`.
#[test]
fn compression_from_strata_toml() {
    let env = Env::new();
    let root = env.path("p");
    fs::create_dir_all(root.join("layers/base/rootfs/bin")).unwrap();
    fs::copy(BUSYBOX, root.join("layers/base/rootfs/bin/busybox")).unwrap();
    common::write(
        &root,
        "strata.toml",
        "[project]\nname = \"z\"\n\n[defaults]\ncompression = \"zstd\"\n\n[images.img]\nlayers = [\"base\"]\ntags = [\"z/img:latest\"]\n",
    );
    common::write(
        &root,
        "layers/base/layer.toml",
        "[layer]\nname = \"base\"\n\n[[source.copy]]\nfrom = \"rootfs\"\nto = \"/\"\n",
    );
    let p = root.to_str().unwrap();
    env.ok(&["build", "-C", p]);
    assert_eq!(
        inspect(&env, "z/img:latest")["layers"][0]["mediaType"],
        ZSTD
    );
    common::replace(&root, "strata.toml", "\"zstd\"", "\"gzip:9\"");
    env.ok(&["build", "-C", p]);
    assert_eq!(
        inspect(&env, "z/img:latest")["layers"][0]["mediaType"],
        GZIP
    );
    common::replace(&root, "strata.toml", "\"gzip:9\"", "\"zip\"");
    let err = env.fails(&["build", "-C", p]);
    assert!(err.contains("strata.toml") && err.contains("zip"), "{err}");
}

/// `docker-archive:FILE:@N` picks the N-th image of an archive that holds
/// several (as `docker save a b` writes).
#[test]
fn docker_archive_at_n_picks_an_image() {
    let env = Env::new();
    env.busybox_image("one:1", "one");
    env.busybox_image("two:1", "two");
    let merged = env.path("merged");
    let mut entries: Vec<Value> = Vec::new();
    for name in ["one", "two"] {
        let tar = env.path(&format!("{name}.tar"));
        env.ok(&[
            "copy",
            &format!("{name}:1"),
            &format!("docker-archive:{}:{name}:1", tar.display()),
        ]);
        let dir = env.path(name);
        fs::create_dir_all(&dir).unwrap();
        run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&dir));
        let m: Vec<Value> =
            serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        entries.extend(m);
        run(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", dir.display()))
            .arg(&merged));
    }
    fs::write(
        merged.join("manifest.json"),
        serde_json::to_vec(&entries).unwrap(),
    )
    .unwrap();
    let tar = env.path("both.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&merged)
        .arg("."));
    let cmd_of = |r: &str| inspect(&env, r)["config"]["config"]["Entrypoint"][2].clone();
    let t = tar.display();
    assert_eq!(cmd_of(&format!("docker-archive:{t}:@0")), "one");
    assert_eq!(cmd_of(&format!("docker-archive:{t}:@1")), "two");
    assert_eq!(cmd_of(&format!("docker-archive:{t}:two:1")), "two");
    let err = env.fails(&["inspect", &format!("docker-archive:{t}:@2")]);
    assert!(err.contains("@2") || err.contains("2 images"), "{err}");
}

/// `{git_sha}` in a tag pattern is the commit's 12-digit short hash; outside
/// a repository it is an error naming the pattern.
#[test]
fn git_sha_in_a_tag_pattern() {
    let env = Env::new();
    let root = env.path("g");
    fs::create_dir_all(root.join("layers/base/rootfs")).unwrap();
    fs::write(root.join("layers/base/rootfs/file"), "x").unwrap();
    common::write(
        &root,
        "strata.toml",
        "[project]\nname = \"g\"\n\n[images.img]\nlayers = [\"base\"]\ntags = [\"g/img:{git_sha}\"]\n",
    );
    common::write(
        &root,
        "layers/base/layer.toml",
        "[layer]\nname = \"base\"\n\n[[source.copy]]\nfrom = \"rootfs\"\nto = \"/\"\n",
    );
    let p = root.to_str().unwrap();
    let err = env.fails(&["build", "-C", p]);
    assert!(err.contains("{git_sha}") && err.contains("git"), "{err}");
    let git = |args: &[&str]| {
        run(Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(&root))
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "one"]);
    let sha = git(&["rev-parse", "HEAD"]);
    env.ok(&["build", "-C", p]);
    env.ok(&["inspect", &format!("g/img:{}", &sha.trim()[..12])]);
}

/// A file whose size on disk is not what its stat said (sysfs files say
/// 4096 and hold a few bytes) fails the build naming it, as a file that
/// shrinks while read does; so does one whose mtime moves while it is read
/// with the same content.
#[test]
fn a_file_that_shrinks_or_whose_mtime_moves_while_read_fails() {
    let env = Env::new();
    let sys = "/sys/devices/system/cpu/online";
    assert_eq!(fs::metadata(sys).unwrap().len(), 4096, "a sysfs attribute");
    env.ok(&["store", "path"]);
    let before = common::files_under(&env.store());
    let err = env.fails(&["new", "--add", &format!("{sys}:/online"), "--tag", "t"]);
    assert!(err.contains(sys) && err.contains("shrank"), "{err}");
    assert_eq!(common::files_under(&env.store()), before);

    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let path = src.join("data");
    fs::write(&path, vec![b'x'; 64 << 20]).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (started, touching) = std::sync::mpsc::channel();
    let toucher = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            let f = fs::File::options().write(true).open(&path).unwrap();
            let mut first = true;
            while first || !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.set_modified(std::time::SystemTime::now()).unwrap();
                if first {
                    started.send(()).unwrap();
                    first = false;
                }
                std::thread::yield_now();
            }
        })
    };
    touching.recv().unwrap();
    let out = env.strata(&[
        "new",
        "--compression",
        "none",
        "--add",
        &format!("{}:/data", path.display()),
        "--tag",
        "t",
    ]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    toucher.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("data") && err.contains("changed while it was being read"),
        "{err}"
    );
    assert_eq!(common::files_under(&env.store()), before);
}

/// The store: `--store DIR`, else `$STRATA_STORE`, else
/// `$XDG_DATA_HOME/strata/store`, else `~/.local/share/strata/store`, else
/// an error saying what to set.
#[test]
fn where_the_store_is() {
    let env = Env::new();
    let path_with = |args: &[&str], vars: &[(&str, &Path)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.args(args)
            .args(["store", "path"])
            .env_remove("STRATA_STORE")
            .env_remove("XDG_DATA_HOME")
            .env_remove("HOME");
        for (k, v) in vars {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (flag, var, xdg, home) = (
        env.path("flag"),
        env.path("var"),
        env.path("xdg"),
        env.path("home"),
    );
    let all = [
        ("STRATA_STORE", var.as_path()),
        ("XDG_DATA_HOME", xdg.as_path()),
        ("HOME", home.as_path()),
    ];
    let flag_arg = flag.to_str().unwrap();
    let shown = |p: &Path| p.display().to_string();
    assert_eq!(path_with(&["--store", flag_arg], &all).1, shown(&flag));
    assert_eq!(path_with(&[], &all).1, shown(&var));
    assert_eq!(
        path_with(&[], &all[1..]).1,
        shown(&xdg.join("strata/store"))
    );
    assert_eq!(
        path_with(&[], &all[2..]).1,
        shown(&home.join(".local/share/strata/store"))
    );
    let (ok, _, err) = path_with(&[], &[]);
    assert!(!ok && err.contains("--store"), "{err}");
}

/// scripts/demo.sh, as a user runs it (with this build of strata, in a
/// temp directory, and its own Docker tag).
#[test]
fn the_demo_script_runs() {
    if !common::have("umoci") || !common::have("runc") {
        note("scripts/demo.sh", "SKIPPED (no umoci or runc)");
        return;
    }
    let env = Env::new();
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh"))
        .env("STRATA", env!("CARGO_BIN_EXE_strata"))
        .env("OUT", env.path("out"))
        .env("STRATA_STORE", env.store())
        .env(
            "DEMO_TAG",
            env.dir
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_lowercase(),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("== using {}\n", env!("CARGO_BIN_EXE_strata"))),
        "the binary given, not one cargo builds: {stdout}"
    );
    assert!(stdout.contains("hello from strata: "), "{stdout}");
    assert!(stdout.contains("licenses: "), "{stdout}");
    assert!(
        stdout.contains("tagged example/runtime:latest") || stdout.contains("cached"),
        "{stdout}"
    );
    note("scripts/demo.sh", "RAN");
}

/// Rewrites the image tagged `tag` in OCI layout `layout`: `edit` changes
/// its manifest and config; both are stored again under their new digests
/// and the tag moved to the new manifest.
fn doctor(layout: &Path, tag: &str, edit: impl FnOnce(&mut Value, &mut Value)) {
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let put = |bytes: &[u8]| {
        let d = strata::Digest::of(bytes);
        fs::write(layout.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        (d.to_string(), bytes.len())
    };
    let mut index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let mut m: Value =
        serde_json::from_slice(&fs::read(blob(entry["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    let mut c: Value =
        serde_json::from_slice(&fs::read(blob(m["config"]["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    let (old_cd, old_cs) = (m["config"]["digest"].clone(), m["config"]["size"].clone());
    edit(&mut m, &mut c);
    let (cd, cs) = put(&serde_json::to_vec(&c).unwrap());
    // Only a config the edit did not point elsewhere follows its new bytes.
    if m["config"]["digest"] == old_cd && m["config"]["size"] == old_cs {
        m["config"]["digest"] = cd.into();
        m["config"]["size"] = cs.into();
    }
    let (md, ms) = put(&serde_json::to_vec(&m).unwrap());
    entry["digest"] = md.into();
    entry["size"] = ms.into();
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

/// `strata validate` fails, naming what is wrong, for each thing it checks.
#[test]
fn validate_names_what_is_wrong() {
    type Edit = fn(&mut Value, &mut Value);
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        (
            "config size",
            |m, _| m["config"]["size"] = (m["config"]["size"].as_u64().unwrap() + 1).into(),
            &["config", "bytes"],
        ),
        (
            "diff_id",
            |_, c| c["rootfs"]["diff_ids"][0] = format!("sha256:{}", "ab".repeat(32)).into(),
            &["diff_id", "abababab"],
        ),
        (
            "layer size",
            |m, _| m["layers"][0]["size"] = (m["layers"][0]["size"].as_u64().unwrap() - 1).into(),
            &["layer", "bytes"],
        ),
        (
            "layer media type",
            |m, _| m["layers"][0]["mediaType"] = ZSTD.into(),
            &["media type", ZSTD, "gzip"],
        ),
        (
            "diff_id count",
            |_, c| {
                let extra = format!("sha256:{}", "cd".repeat(32));
                c["rootfs"]["diff_ids"]
                    .as_array_mut()
                    .unwrap()
                    .push(extra.into())
            },
            &["1 layers", "2 diff_ids"],
        ),
        (
            "config digest",
            |m, _| m["config"]["digest"] = format!("sha256:{}", "ef".repeat(32)).into(),
            &["efefefef"],
        ),
    ];
    let env = Env::new();
    env.busybox_image("v:1", "valid");
    for (what, edit, want) in cases {
        let layout = env.path(&format!("layout-{}", what.replace(' ', "-")));
        let r = format!("oci:{}:v", layout.display());
        env.ok(&["copy", "v:1", &r]);
        env.ok(&["validate", &r]);
        doctor(&layout, "v", edit);
        let out = env.strata(&["validate", &r]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{what}: validate must fail: {text}");
        for w in want {
            assert!(text.contains(w), "{what}: {w:?} not in: {text}");
        }
    }
}
