//! `[source.run]`: build-step layers. The commands run in the sandbox over
//! the layers the step requires (with their runtime layers); what they
//! write, captured from the overlay's upper directory, is the layer.
//!
//! A step's key covers the step format version, its definition (through
//! the normalized layer.toml), the platform it runs on, the keys of the
//! layers beneath in order and the content of its inputs — so unlike a
//! copy layer, a step layer is rebuilt when a layer beneath changes. What
//! a step with `network = "host"` downloads is not part of its key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::project::{Command, LayerDef, NetworkMode, RunSource};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer::{EntryKind, Layer, LayerBuilder, Mapping, StoreLayer, collect};
use crate::sandbox::capture::{CaptureSpec, capture};
use crate::sandbox::{BindMount, Network, Output, RunSpec, Sandbox};
use crate::spec::Platform;
use crate::store::Store;

/// Version of how step layers are made; part of their keys.
pub const STEP_FORMAT: u32 = 3;

/// PATH when no layer beneath sets one (Debian's default for root).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Checks what can be checked of a step before anything runs: commands,
/// absolute paths, inputs that do not overlap.
pub fn check_definition(def: &LayerDef, r: &RunSource) -> Result<()> {
    let at = |k: &str| format!("{} key source.run.{k}", def.rel);
    let bad = |k: &str, d: String| Error::invalid("layer", at(k), d);
    if r.commands.is_empty()
        || r.commands.iter().any(|c| match c {
            Command::Shell(s) => s.trim().is_empty(),
            Command::Argv(a) => a.is_empty(),
        })
    {
        return Err(bad(
            "commands",
            "give at least one command, none empty".into(),
        ));
    }
    let abs = |k: &str, p: &str| -> Result<String> {
        if !p.starts_with('/') {
            return Err(bad(k, format!("{p:?} must be an absolute path")));
        }
        crate::layer::normalize_dest(p).map_err(|e| bad(k, e.to_string()))
    };
    if let Some(w) = &r.workdir {
        abs("workdir", w)?;
    }
    for o in &r.outputs {
        if abs("outputs", o)?.trim_matches('/').is_empty() {
            return Err(bad(
                "outputs",
                "\"/\" is every path: leave outputs out instead".into(),
            ));
        }
    }
    let mut targets: Vec<String> = Vec::new();
    for i in &r.inputs {
        let t = abs("inputs.to", &i.to)?;
        if t.trim_matches('/').is_empty() {
            return Err(bad("inputs.to", "an input cannot be mounted over /".into()));
        }
        if let Some(other) = targets.iter().find(|o| overlaps(o, &t)) {
            return Err(bad(
                "inputs.to",
                format!("/{t} overlaps the input mounted at /{other}; give inputs separate paths"),
            ));
        }
        targets.push(t);
    }
    for c in &r.caches {
        let t = abs("caches.target", &c.target)?;
        if t.trim_matches('/').is_empty() {
            return Err(bad(
                "caches.target",
                "a cache cannot be mounted over /".into(),
            ));
        }
        if let Some(other) = targets.iter().find(|o| overlaps(o, &t)) {
            return Err(bad(
                "caches.target",
                format!("/{t} overlaps /{other}, mounted already; give it a path of its own"),
            ));
        }
        targets.push(t);
    }
    for (i, s) in r.secrets.iter().enumerate() {
        if s.id.is_empty() || s.id.contains('/') || s.id.starts_with('.') {
            return Err(bad(
                "secrets.id",
                format!("{:?} must be a plain name", s.id),
            ));
        }
        if r.secrets[..i].iter().any(|o| o.id == s.id) {
            return Err(bad("secrets.id", format!("secret {} is given twice", s.id)));
        }
        if usize::from(s.env.is_some()) + usize::from(s.file.is_some()) != 1 {
            return Err(bad(
                "secrets",
                format!("secret {}: give exactly one of env or file", s.id),
            ));
        }
        if s.as_env.is_some() && s.target.is_some() {
            return Err(bad(
                "secrets",
                format!("secret {}: as_env and target exclude each other", s.id),
            ));
        }
        if s.as_env.is_none() {
            let t = abs("secrets.target", &secret_target(s))?;
            if let Some(other) = targets.iter().find(|o| overlaps(o, &t)) {
                return Err(bad(
                    "secrets.target",
                    format!("/{t} overlaps /{other}, mounted already; give it a path of its own"),
                ));
            }
            targets.push(t);
        }
    }
    if r.timeout == Some(0) {
        return Err(bad("timeout", "give a number of seconds above 0".into()));
    }
    Ok(())
}

/// Where secret `s` is mounted as a file.
fn secret_target(s: &super::project::RunSecret) -> String {
    s.target
        .clone()
        .unwrap_or_else(|| format!("/run/secrets/{}", s.id))
}

/// `a` is `b`, or one is below the other.
fn overlaps(a: &str, b: &str) -> bool {
    let under = |x: &str, y: &str| x == y || x.starts_with(&format!("{y}/"));
    under(a, b) || under(b, a)
}

/// The input mappings of a step (owner 0:0; modes kept).
pub fn input_mappings(def: &LayerDef, r: &RunSource) -> Result<Vec<Mapping>> {
    r.inputs
        .iter()
        .map(|i| Ok(Mapping::new(def.dir.join(&i.from), &i.to)?.exclude(i.exclude.clone())))
        .collect()
}

/// What a step needs from the build besides its definition.
pub struct StepContext<'a> {
    /// The layer's name.
    pub name: &'a str,
    /// Its key (names its log).
    pub key: &'a Digest,
    /// The store.
    pub store: &'a Store,
    /// The layers beneath, base first.
    pub lowers: Vec<Arc<dyn Layer>>,
    /// `KEY=VALUE` from the `[env]` of the layers beneath, in order.
    pub lower_env: Vec<(String, String)>,
    /// SOURCE_DATE_EPOCH.
    pub epoch: u64,
    /// The platform built for and the one the commands run on.
    pub platforms: Platforms,
    /// The layer writer (compression, threads, annotations).
    pub builder: LayerBuilder,
    /// Where the commands' output goes.
    pub echo: &'a super::echo::Echo,
}

/// The platforms of a build step, in its environment as BuildKit names
/// them: `TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`, `TARGETVARIANT` (what
/// is built) and `BUILDPLATFORM`, `BUILDOS`, `BUILDARCH`, `BUILDVARIANT`
/// (where the commands run: the target itself, natively or under
/// qemu-user, or the build machine for `platform = "build"`).
#[derive(Debug, Clone)]
pub struct Platforms {
    /// What is built.
    pub target: Platform,
    /// Where the commands run.
    pub build: Platform,
}

impl Platforms {
    /// For step `r` in a build for `target`.
    pub fn of(r: &RunSource, target: &Platform) -> Self {
        let build = match r.platform {
            super::project::StepPlatform::Build => Platform::host(),
            super::project::StepPlatform::Target => target.clone(),
        };
        Platforms {
            target: target.clone(),
            build,
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (prefix, p) in [("TARGET", &self.target), ("BUILD", &self.build)] {
            out.push((format!("{prefix}PLATFORM"), p.to_string()));
            out.push((format!("{prefix}OS"), p.os.clone()));
            out.push((format!("{prefix}ARCH"), p.architecture.clone()));
            out.push((
                format!("{prefix}VARIANT"),
                p.variant.clone().unwrap_or_default(),
            ));
        }
        out
    }
}

/// Where step logs are kept: `STORE/.strata/logs/KEY.log`.
pub fn log_path(store: &Store, key: &Digest) -> PathBuf {
    store
        .root()
        .join(".strata/logs")
        .join(format!("{}.log", key.hex()))
}

/// Snapshots of `lowers` and an overlay (or copy) over them, for `who`
/// (e.g. "the build step of layer app (layers/app/layer.toml)"): a missing
/// runtime, or a root filesystem that cannot be made, names it.
pub(super) fn mount_for(
    store: &Store,
    lowers: &[Arc<dyn Layer>],
    who: &str,
) -> Result<(Vec<PathBuf>, crate::sandbox::Mounted)> {
    let sandbox =
        Sandbox::new(store.root()).map_err(|e| Error::Unsupported(format!("{who}: {e}")))?;
    let snaps = sandbox.snapshots(lowers)?;
    let mounted = sandbox.mount(&snaps).map_err(|e| match e {
        Error::Unsupported(m) => Error::Unsupported(format!("{who}: {m}")),
        e => e,
    })?;
    Ok((snaps, mounted))
}

/// Creates the log of the commands run for `key` (see [`log_path`]).
pub(super) fn create_log(store: &Store, key: &Digest) -> Result<(PathBuf, std::fs::File)> {
    let path = log_path(store, key);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    let file = std::fs::File::create(&path).at(&path)?;
    Ok((path, file))
}

/// The last lines of a command's output, escaped and indented, for an
/// error message.
pub(super) fn indented(tail: &[String]) -> String {
    tail.iter()
        .map(|l| format!("  {}", crate::text::escape(l)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the step and captures its layer.
pub fn build(def: &LayerDef, r: &RunSource, cx: &StepContext<'_>) -> Result<StoreLayer> {
    // From here on SIGINT and SIGTERM stop the step and clean up.
    let guard = crate::sandbox::interrupt::Guard::install();
    let stopped = || Error::Interrupted {
        what: format!("the build step of layer {}", cx.name),
    };
    let who = format!("the build step of layer {} ({})", cx.name, def.rel);
    let (snaps, mut mounted) = mount_for(cx.store, &cx.lowers, &who)?;
    let staged = stage_inputs(def, r, cx)?;
    let rootfs = mounted.rootfs();
    let (uid, gid, home) = match &r.user {
        Some(u) => crate::sandbox::resolve_user(&rootfs, u).map_err(|e| {
            Error::invalid(
                "layer",
                format!("{} key source.run.user", def.rel),
                e.to_string(),
            )
        })?,
        None => (0, 0, "/root".to_string()),
    };
    let cwd = r.workdir.clone().unwrap_or_else(|| "/".into());
    let cwd_dir = rootfs.join(cwd.trim_start_matches('/'));
    std::fs::create_dir_all(&cwd_dir).at(&cwd_dir)?;
    let mut env = step_env(r, cx, &home);
    let mut mounts: Vec<BindMount> = staged
        .1
        .iter()
        .map(|(source, target)| BindMount {
            source: source.clone(),
            target: target.clone(),
            readonly: true,
        })
        .collect();
    // Caches: held (locked, for `locked`) until the step ends.
    let mut caches = Vec::new();
    for c in &r.caches {
        let id = c.id.clone().unwrap_or_else(|| c.target.clone());
        let m = crate::sandbox::mounts::take_cache(
            cx.store.root(),
            &id,
            c.sharing,
            c.uid,
            c.gid,
            0o755,
        )?;
        mounts.push(BindMount {
            source: m.path.clone(),
            target: c.target.clone(),
            readonly: false,
        });
        caches.push(m);
    }
    // Secrets: read now, kept in a directory that goes with the step.
    let work = crate::sandbox::work_dir(cx.store.root())?;
    let secret_dir = tempfile::Builder::new()
        .prefix(".tmp-secrets-")
        .tempdir_in(&work)
        .at(&work)?;
    let mut secret_values = Vec::new();
    for (n, s) in r.secrets.iter().enumerate() {
        let source = match (&s.env, &s.file) {
            (Some(v), _) => crate::sandbox::mounts::SecretSource::Env(v.clone()),
            (None, Some(f)) => crate::sandbox::mounts::SecretSource::File(def.dir.join(f)),
            (None, None) => unreachable!("checked at load"),
        };
        let value = crate::sandbox::mounts::read_secret(&s.id, &source).map_err(|e| {
            Error::invalid(
                "layer",
                format!("{} key source.run.secrets", def.rel),
                e.to_string(),
            )
        })?;
        match &s.as_env {
            Some(var) => {
                env.retain(|e| e.split('=').next() != Some(var.as_str()));
                env.push(format!("{var}={}", String::from_utf8_lossy(&value)));
            }
            None => mounts.push(BindMount {
                source: crate::sandbox::mounts::secret_file(secret_dir.path(), n, &value)?,
                target: secret_target(s),
                readonly: true,
            }),
        }
        secret_values.push(value);
    }
    let (log_file, mut log) = create_log(cx.store, cx.key)?;
    let name = cx.name;
    let line = |l: &str| cx.echo.line(l);
    for c in &r.commands {
        let args = c.argv();
        let _ = writeln!(
            log,
            "$ {}",
            crate::sandbox::mounts::redact(&c.shown(), &secret_values)
        );
        let spec = RunSpec {
            args,
            env: env.clone(),
            cwd: cwd.clone(),
            uid,
            gid,
            groups: Vec::new(),
            network: match r.network {
                NetworkMode::None => Network::None,
                NetworkMode::Host => Network::Host,
            },
            mounts: mounts.clone(),
            timeout: r.timeout.map(std::time::Duration::from_secs),
            terminal: false,
        };
        let outcome = mounted
            .run(
                &spec,
                &mut Output {
                    log: &mut log,
                    line: &line,
                    redact: &secret_values,
                },
            )
            .map_err(|e| match e {
                Error::Interrupted { .. } => stopped(),
                e => e,
            })?;
        if outcome.status != 0 {
            return Err(Error::invalid(
                "build step",
                format!("layer {name} ({})", def.rel),
                format!(
                    "`{}` {} (exit status {}); its last lines:\n{}\nthe whole log is {}",
                    c.shown(),
                    if outcome.timed_out {
                        "ran out of time and was killed"
                    } else {
                        "failed"
                    },
                    outcome.status,
                    indented(&outcome.tail),
                    log_file.display()
                ),
            ));
        }
    }
    if guard.interrupted() {
        return Err(stopped());
    }
    mounted.unmount()?;
    let mut stubs = mounted.stubs();
    stubs.push(cwd.trim_start_matches('/').to_string());
    let spec = CaptureSpec {
        epoch: cx.epoch,
        outputs: r
            .outputs
            .iter()
            .map(|o| o.trim_matches('/').to_string())
            .collect(),
        excludes: r
            .exclude
            .iter()
            .map(|e| e.trim_start_matches('/').to_string())
            .collect(),
        stubs,
        lowers: snaps,
        default_excludes: r.default_excludes,
        xattrs: r.xattrs.clone(),
    };
    capture(&mounted.upper(), &spec, &cx.builder, cx.store).map_err(|e| match e {
        Error::Invalid { what, detail, .. } if what == "build step" => {
            Error::invalid("build step", format!("layer {name} ({})", def.rel), detail)
        }
        e => e,
    })
}

/// The environment: fixed values for determinism, then the layers'
/// `[env]`, then the step's own (expanded over what is set so far).
fn step_env(r: &RunSource, cx: &StepContext<'_>, home: &str) -> Vec<String> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("TZ".into(), "UTC".into()),
        ("SOURCE_DATE_EPOCH".into(), cx.epoch.to_string()),
        ("HOME".into(), home.to_string()),
    ];
    env.extend(cx.platforms.env());
    // The layers' values are expanded already (in their own order).
    for (k, v) in &cx.lower_env {
        super::vars::set_env(&mut env, k, v.clone());
    }
    for (k, v) in &r.env {
        super::vars::set_env_expanded(&mut env, k, v);
    }
    env.sort();
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Staged inputs: the directory (removed on drop) and (source, target)
/// pairs to mount.
type Staged = (Option<tempfile::TempDir>, Vec<(PathBuf, String)>);

/// Copies each input into a staging directory (owners 0:0, mtimes the
/// epoch, modes kept): the commands see exactly what the key hashed, the
/// same on every checkout. Returns the directory and (source, target)
/// pairs to mount.
fn stage_inputs(def: &LayerDef, r: &RunSource, cx: &StepContext<'_>) -> Result<Staged> {
    if r.inputs.is_empty() {
        return Ok((None, Vec::new()));
    }
    let parent = crate::sandbox::work_dir(cx.store.root())?;
    let dir = tempfile::Builder::new()
        .prefix(".tmp-inputs-")
        .tempdir_in(&parent)
        .at(&parent)?;
    let mut mounts = Vec::new();
    for (i, m) in input_mappings(def, r)?.into_iter().enumerate() {
        let root = dir.path().join(i.to_string());
        std::fs::create_dir(&root).at(&root)?;
        let dest = m.dest.trim_start_matches('/').to_string();
        for e in collect(std::slice::from_ref(&m), false)? {
            let rel = String::from_utf8_lossy(&e.path).into_owned();
            let rel = rel
                .strip_prefix(&dest)
                .unwrap_or(&rel)
                .trim_start_matches('/')
                .to_string();
            let p = root.join(&rel);
            match &e.kind {
                EntryKind::Dir => std::fs::create_dir_all(&p).at(&p)?,
                EntryKind::File { source, .. } => {
                    std::fs::copy(source, &p).at(source)?;
                }
                EntryKind::Symlink(t) => {
                    use std::os::unix::ffi::OsStrExt;
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(t), &p).at(&p)?;
                }
                EntryKind::Hardlink(t) => {
                    let t = String::from_utf8_lossy(t).into_owned();
                    let t = t.strip_prefix(&dest).unwrap_or(&t).trim_start_matches('/');
                    std::fs::hard_link(root.join(t), &p).at(&p)?;
                }
            }
            if !matches!(e.kind, EntryKind::Symlink(_)) {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(e.mode)).at(&p)?;
            }
        }
        set_times(&root, cx.epoch)?;
        mounts.push((root, format!("/{dest}")));
    }
    Ok((Some(dir), mounts))
}

/// Sets every mtime under `root` (links themselves included) to `epoch`.
fn set_times(root: &Path, epoch: u64) -> Result<()> {
    let mut stack = vec![root.to_path_buf()];
    let mut all = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).at(&d)? {
            let p = e.at(&d)?.path();
            if std::fs::symlink_metadata(&p).at(&p)?.is_dir() {
                stack.push(p.clone());
            }
            all.push(p);
        }
    }
    all.push(root.to_path_buf());
    for p in all {
        crate::sandbox::rootfs::set_mtime(&p, epoch as i64)?;
    }
    Ok(())
}
