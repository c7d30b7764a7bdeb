//! Shared helpers for strata's integration tests.
#![allow(dead_code)]

pub mod apt;
pub mod engine;
pub mod fake;
pub mod images;
pub mod registry;
pub mod token;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BUSYBOX: &str = "/bin/busybox";

/// A temp dir with a store inside.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Env {
            dir: tempfile::Builder::new()
                .prefix("strata-test-")
                .tempdir()
                .unwrap(),
        }
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn store(&self) -> PathBuf {
        self.path("store")
    }
    /// `strata ARGS` with this env's store, and credentials isolated in
    /// this env (docker config dir, no podman auth file).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.args(args)
            .env("STRATA_STORE", self.store())
            .env("DOCKER_CONFIG", self.path("docker-config"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("STRATA_INSECURE_REGISTRIES")
            .env_remove("SOURCE_DATE_EPOCH");
        c
    }

    /// The digest of the first layer of store image `image`.
    pub fn first_layer(&self, image: &str) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&["inspect", "--json", image])).unwrap();
        v["layers"][0]["digest"].as_str().unwrap().to_string()
    }

    /// Runs `strata ARGS` (see [`Env::cmd`]).
    pub fn strata(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    /// Runs strata and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.strata(args);
        assert!(
            out.status.success(),
            "strata {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    /// Runs strata and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.strata(args);
        assert!(
            !out.status.success(),
            "strata {args:?} should have failed; stdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }
    /// Builds the busybox "hello" image into the store under `tag`.
    pub fn busybox_image(&self, tag: &str, line: &str) -> String {
        let ep = serde_json::to_string(&[BUSYBOX, "echo", line]).unwrap();
        self.ok(&[
            "new",
            "--add",
            &format!("{BUSYBOX}:{BUSYBOX}"),
            "--entrypoint",
            &ep,
            "--tag",
            tag,
        ])
        .trim()
        .to_string()
    }
}

/// Writes `root/rel`, creating its directory.
pub fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// A copy of `examples/NAME` at `env.path(to)` (cp -a), for a test to
/// change.
pub fn copy_example(env: &Env, name: &str, to: &str) -> PathBuf {
    let dst = env.path(to);
    run(Command::new("cp")
        .arg("-a")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(name),
        )
        .arg(&dst));
    dst
}

/// A copy of examples/project with busybox staged, as the demo does.
pub fn example_project(env: &Env) -> PathBuf {
    let dst = copy_example(env, "project", "example");
    fs::copy(BUSYBOX, dst.join("layers/base/rootfs/bin/busybox")).unwrap();
    dst
}

/// The example project pushing to `HOST/team`, with its registry cache in
/// `HOST/team/cache`.
pub fn cache_project(env: &Env, host: &str) -> PathBuf {
    let p = example_project(env);
    replace(
        &p,
        "strata.toml",
        "[defaults]\n",
        &format!(
            "[defaults]\nregistry = \"{host}/team\"\ncache = \"docker://{host}/team/cache\"\n"
        ),
    );
    p
}

/// `strata build -C root --json ARGS`, which must succeed; its report.
pub fn build_json(env: &Env, root: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["build", "-C", root.to_str().unwrap(), "--json"];
    all.extend(args);
    let out = env.strata(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `strata plan -C root --json ARGS`, which must succeed; its plan.
pub fn plan_json(env: &Env, root: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["plan", "-C", root.to_str().unwrap(), "--json"];
    all.extend(args);
    serde_json::from_str(&env.ok(&all)).unwrap()
}

/// The entry of layer `name` for `platform` in a build report or a plan
/// (a multi-platform one lists a layer once per platform).
pub fn platform_layer<'a>(
    report: &'a serde_json::Value,
    name: &str,
    platform: &str,
) -> &'a serde_json::Value {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name && l["platform"] == platform)
        .unwrap_or_else(|| panic!("no {name} for {platform} in {report}"))
}

/// The status of layer `name` in a build report.
pub fn layer_status(report: &serde_json::Value, name: &str) -> String {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("{report}"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Replaces the first `from` in `root/rel` by `to`, asserting it is there.
pub fn replace(root: &Path, rel: &str, from: &str, to: &str) {
    let p = root.join(rel);
    let text = fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{rel} lacks {from:?}");
    fs::write(p, text.replacen(from, to, 1)).unwrap();
}

/// Files under `dir` (recursively), for "nothing was left behind" checks.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Whether a tool is on PATH. When it is missing and STRATA_REQUIRE_TOOLS=1
/// (the test script sets it after installing them), the test fails.
pub fn have(tool: &str) -> bool {
    let found = on_path(tool);
    if !found && std::env::var("STRATA_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{tool} is required (STRATA_REQUIRE_TOOLS=1) but not installed");
    }
    found
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

/// Whether build steps can run here (root and runc); records the check as
/// run, or as skipped saying why.
pub fn can_run_steps(check: &str) -> bool {
    if unsafe { geteuid() } != 0 || !have("runc") {
        note(check, "SKIPPED (build steps need root and runc)");
        return false;
    }
    note(check, "RAN");
    true
}

/// Whether a tool is on PATH, whatever the strict mode says.
fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether a Docker engine answers. No engine (or no docker CLI) is the one
/// skip the strict mode allows: the test script does not start a daemon.
pub fn docker_engine() -> bool {
    on_path("docker")
        && Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
}

/// Records that an external check ran or was skipped; the test script
/// prints this log at the end of the run.
pub fn note(check: &str, outcome: &str) {
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("external-checks.log");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    writeln!(f, "{outcome}: {check}").unwrap();
    eprintln!("{outcome}: {check}");
}

/// Runs a command, asserting success; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sets every mtime under `root` an hour back: files as they are in a
/// checkout, not written in the same second as the build (which strata
/// re-reads every time, as git does "racily clean" files).
pub fn backdate(root: &Path) {
    run(Command::new("find").arg(root).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        "1 hour ago",
        "{}",
        "+",
    ]));
}

/// A tree exercising every entry kind, with fixed content and modes.
pub fn make_tree(root: &Path) {
    let w = |p: &str, content: &[u8], mode: u32| {
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };
    fs::create_dir_all(root).unwrap();
    w("bin/tool", b"#!/bin/sh\necho tool\n", 0o755);
    w("bin/suid", b"setuid", 0o4755);
    w("bin/sgid", b"setgid", 0o2755);
    w("etc/config", b"key = value\n", 0o644);
    let long_dir = "d".repeat(120);
    let long_name = format!("{}/{}", long_dir, "f".repeat(110));
    w(&long_name, b"long name", 0o644);
    let very_long = format!("{}/{}", "x".repeat(200), "y".repeat(150));
    w(&very_long, b"very long name", 0o600);
    // ~3 MiB of compressible, non-trivial data: several gzip blocks.
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 27) as u8 + b'a')
        .collect();
    w("data/big.bin", &big, 0o644);
    fs::create_dir_all(root.join("empty/dir")).unwrap();
    symlink("../etc/config", root.join("bin/config-link")).unwrap();
    symlink(format!("/{}", "t".repeat(150)), root.join("bin/long-link")).unwrap();
    fs::hard_link(root.join("bin/tool"), root.join("bin/tool-hardlink")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    for d in [
        "",
        "bin",
        "etc",
        "data",
        "empty",
        "empty/dir",
        &long_dir,
        &"x".repeat(200),
    ] {
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    // Inputs owned by someone other than root, so a check that layers are
    // written 0:0 can fail when the tests run as root.
    if unsafe { libc::geteuid() } == 0 {
        for p in files_and_dirs_under(root) {
            std::os::unix::fs::lchown(&p, Some(1234), Some(5678)).unwrap();
        }
        // chown clears setuid and setgid: set them again.
        fs::set_permissions(root.join("bin/suid"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::set_permissions(root.join("bin/sgid"), fs::Permissions::from_mode(0o2755)).unwrap();
    }
}

/// Every path under `root` (itself included), symlinks not followed.
fn files_and_dirs_under(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                out.push(e.unwrap().path());
            }
        }
        i += 1;
    }
    out
}

/// Validates OCI documents against the image-spec JSON schemas
/// (../shared/oci-image-spec-schema, or the vendored copy in tests/).
pub struct Schemas {
    dir: PathBuf,
}

impl Schemas {
    pub fn new() -> Self {
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/oci-image-spec-schema");
        let vendored = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oci-image-spec-schema");
        let dir = if shared.join("image-manifest-schema.json").exists() {
            shared
        } else {
            vendored
        };
        Schemas { dir }
    }

    /// Asserts `doc` validates against `schema_file`.
    pub fn check(&self, schema_file: &str, doc: &serde_json::Value, what: &str) {
        let schema: serde_json::Value =
            serde_json::from_slice(&fs::read(self.dir.join(schema_file)).unwrap()).unwrap();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .with_retriever(LocalSchemas(self.dir.clone()))
            .build(&schema)
            .unwrap_or_else(|e| panic!("schema {schema_file}: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(doc)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} does not validate against {schema_file}: {errors:#?}\n{doc:#}"
        );
    }
}

/// Serves `…/NAME.json` references from the local schema directory, whatever
/// base URI a nested `id` gave them.
struct LocalSchemas(PathBuf);

impl jsonschema::Retrieve for LocalSchemas {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let path = uri.path().as_str();
        let name = path.rsplit('/').next().unwrap_or_default();
        let file = self.0.join(name);
        Ok(serde_json::from_slice(
            &fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?,
        )?)
    }
}

/// Runs store image `reference` the way a user would without docker:
/// `strata copy` to an OCI layout, `umoci unpack`, `runc run` (as root) with
/// `process.terminal=false`. Returns (success, stdout, stderr).
pub fn runc_run(env: &Env, reference: &str) -> (bool, String, String) {
    let layout = env.path("runc-layout");
    let bundle = env.path("runc-bundle");
    let _ = fs::remove_dir_all(&bundle);
    env.ok(&["copy", reference, &format!("oci:{}:run", layout.display())]);
    run(Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:run", layout.display())])
        .arg(&bundle));
    let cfg = bundle.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&fs::read(&cfg).unwrap()).unwrap();
    c["process"]["terminal"] = serde_json::Value::Bool(false);
    fs::write(&cfg, serde_json::to_vec(&c).unwrap()).unwrap();
    // Unique on the machine: the Env's temp directory name is.
    let id = format!(
        "strata-test-{}",
        env.dir.path().file_name().unwrap().to_string_lossy()
    );
    let out = Command::new("runc")
        .args(["run", "-b"])
        .arg(&bundle)
        .arg(&id)
        .output()
        .unwrap();
    let _ = Command::new("runc").args(["delete", "-f", &id]).output();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The base64 of `user:password`, as auth files and Basic headers hold it.
pub fn basic_b64(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// Writes a podman-style auth file at `path` with credentials for `host`.
pub fn write_auth_file(path: &Path, host: &str, user: &str, password: &str) {
    let b64 = basic_b64(user, password);
    fs::write(
        path,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{b64}"}}}}}}"#),
    )
    .unwrap();
}

/// A store image loaded into the shared Docker engine under a name no other
/// test or test run on this machine uses; removed from the engine on drop.
pub struct DockerImage {
    pub name: String,
}

impl DockerImage {
    /// `strata copy` of store image `reference` to a docker-archive, then
    /// `docker load`.
    pub fn load(env: &Env, reference: &str) -> Self {
        let name = Self::name_for(env);
        let tar = env.path("docker-load.tar");
        env.ok(&[
            "copy",
            reference,
            &format!("docker-archive:{}:{name}", tar.display()),
        ]);
        run(Command::new("docker").arg("load").arg("-i").arg(&tar));
        let _ = fs::remove_file(&tar);
        DockerImage { name }
    }

    /// An image loaded some other way, removed from the engine on drop.
    pub fn named(name: &str) -> Self {
        DockerImage {
            name: name.to_string(),
        }
    }

    /// The name [`DockerImage::load`] gives images of `env`.
    pub fn name_for(env: &Env) -> String {
        let unique = env.dir.path().file_name().unwrap().to_string_lossy();
        format!("strata-test/image:{}", unique.to_lowercase())
    }

    /// `docker run --rm` of the image, asserting success; returns stdout.
    pub fn run(&self) -> String {
        self.run_cmd(&[])
    }

    /// `docker run --rm IMAGE ARGS`, asserting success; returns stdout.
    pub fn run_cmd(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .args(["run", "--rm", &self.name])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for DockerImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.name])
            .output();
    }
}
