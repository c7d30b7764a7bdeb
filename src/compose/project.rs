//! The project format: `strata.toml` at the root and one
//! `layers/NAME/layer.toml` per layer. Parsing is strict: an unknown key is
//! an error naming the file, line and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// `strata.toml`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    /// `[project]`.
    pub project: ProjectSection,
    /// `[defaults]`.
    #[serde(default)]
    pub defaults: Defaults,
    /// `[images.NAME]`.
    #[serde(default)]
    pub images: BTreeMap<String, ImageSpec>,
    /// `[profiles]`: named groups of images.
    #[serde(default)]
    pub profiles: BTreeMap<String, Vec<String>>,
}

/// `[project]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    /// Project name.
    pub name: String,
}

/// `[defaults]`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Layer compression (`gzip[:LEVEL]`, `zstd[:LEVEL]`, `none`).
    pub compression: Option<String>,
    /// Seconds since 1970 for every mtime and `created` (overridden by the
    /// SOURCE_DATE_EPOCH environment variable when set).
    pub source_date_epoch: Option<u64>,
    /// Registry prefix for pushes (`HOST[:PORT]/NAMESPACE`).
    pub registry: Option<String>,
    /// The shared build cache: a registry repository (`docker://HOST/REPO`).
    pub cache: Option<String>,
    /// Tag patterns (`{version}`, `{git_sha}`, `{timestamp}`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Platforms every image is built for (`linux/amd64`, `linux/arm64`,
    /// …); two or more make each image an index. Default: the host's.
    #[serde(default)]
    pub platforms: Vec<String>,
}

/// What a composed image is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// Adds every layer's `[runtime] layers`, transitively.
    #[default]
    Runtime,
    /// Adds every layer's `[requires] layers`, transitively.
    Builder,
}

/// How file conflicts between layers are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictPolicy {
    /// A conflict fails the check.
    Error,
    /// A conflict is reported.
    Warn,
    /// Conflicts are allowed silently.
    Allow,
}

/// `[images.NAME]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// `scratch` or a reference in any transport.
    #[serde(default = "scratch")]
    pub base: String,
    /// The top layers wanted (`name` or `name@version`).
    pub layers: Vec<String>,
    /// runtime or builder.
    #[serde(default)]
    pub kind: ImageKind,
    /// Platform (`os/arch[/variant]`), default the host's.
    pub platform: Option<String>,
    /// Platforms (overrides `[defaults] platforms` and `platform`); two or
    /// more make the image an index with a manifest per platform.
    pub platforms: Option<Vec<String>>,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Cmd.
    pub cmd: Option<Vec<String>>,
    /// Environment (merged after the layers' env).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Exposed ports.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Volumes.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Labels (merged after the layers' labels).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Tags to write (patterns: `{project}`, `{image}`, `{version}` (the
    /// first top layer's version), `{git_sha}`, `{timestamp}`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Moving tags (e.g. `base-stable`) pointed at every new build and never
    /// pruned; same patterns.
    #[serde(default)]
    pub stable_tags: Vec<String>,
    /// Manifest annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Conflict policy (default: error for runtime images, warn for builders).
    pub conflicts: Option<ConflictPolicy>,
    /// Allowed conflicts, as `layer:/path` (the named layer wins).
    #[serde(default)]
    pub overrides: Vec<String>,
    /// `[[images.NAME.test]]`: checks run in the composed image.
    #[serde(default, rename = "test")]
    pub tests: Vec<TestDef>,
}

fn scratch() -> String {
    "scratch".into()
}

impl ImageSpec {
    /// The effective conflict policy.
    pub fn conflict_policy(&self) -> ConflictPolicy {
        self.conflicts.unwrap_or(match self.kind {
            ImageKind::Runtime => ConflictPolicy::Error,
            ImageKind::Builder => ConflictPolicy::Warn,
        })
    }
}

/// `layer.toml`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LayerFile {
    /// `[layer]`.
    pub layer: LayerSection,
    /// `[provides]`.
    #[serde(default)]
    pub provides: Provides,
    /// `[requires]`: layers needed beneath it to build it.
    #[serde(default)]
    pub requires: Deps,
    /// `[runtime]`: layers needed beneath it to run it.
    #[serde(default)]
    pub runtime: Deps,
    /// `[aliases]`: shell alias → command in the image.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// `[env]`: entries merged into the image config in layer order.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `[labels]`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `[source]`.
    #[serde(default)]
    pub source: Source,
    /// `[[test]]`: checks run over this layer and its `[runtime]` layers.
    #[serde(default, rename = "test")]
    pub tests: Vec<TestDef>,
}

/// A `[[test]]` of a layer or `[[images.NAME.test]]` of an image.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestDef {
    /// The command: a string runs with `/bin/sh -c`, an array is the argv.
    pub command: Command,
    /// Expected exit status (default 0).
    #[serde(default)]
    pub status: i32,
    /// A substring the output (stdout and stderr) must contain.
    pub contains: Option<String>,
    /// A regular expression the output must match.
    pub matches: Option<String>,
    /// Seconds the test may run (default 300).
    pub timeout: Option<u64>,
}

/// `[layer]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSection {
    /// Name; must equal the directory name.
    pub name: String,
    /// Version (bump it to record a deliberate change).
    #[serde(default)]
    pub version: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether a build warns when the layer's bytes change and its version
    /// does not (default true; false for a layer that changes on every
    /// commit, such as an app).
    #[serde(default = "yes")]
    pub warn_unbumped: bool,
}

/// `[provides]`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Provides {
    /// Executables that must exist under one of `paths`.
    #[serde(default)]
    pub binaries: Vec<String>,
    /// Libraries provided.
    #[serde(default)]
    pub libraries: Vec<String>,
    /// Directories the binaries live in.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// `[requires]` / `[runtime]`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Deps {
    /// Layer names (`name` or `name@version`).
    #[serde(default)]
    pub layers: Vec<String>,
}

/// `[source]`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `[[source.copy]]`.
    #[serde(default)]
    pub copy: Vec<CopySource>,
    /// `[source.tar]`.
    pub tar: Option<TarSource>,
    /// `[source.image]`.
    pub image: Option<ImageSource>,
    /// `[source.deb]`.
    pub deb: Option<DebSource>,
    /// `[source.run]`: what commands write, run over the `[requires]` stack.
    pub run: Option<RunSource>,
}

/// `[source.run]`: a build step. Its commands run in a sandbox over the
/// layers it requires (each with its `[runtime]` layers); what they write
/// is the layer.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunSource {
    /// Commands, in order: a string runs with `/bin/sh -c`, an array is the
    /// argv itself.
    pub commands: Vec<Command>,
    /// Working directory inside the sandbox (default `/`).
    pub workdir: Option<String>,
    /// User: a name or uid, optionally `:group` (resolved in the layers
    /// beneath); default root.
    pub user: Option<String>,
    /// Environment, over the lower layers' `[env]`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `none` (default: only loopback) or `host`.
    #[serde(default)]
    pub network: NetworkMode,
    /// Where the commands run: `target` (default), the platform being
    /// built, or `build`, the build machine's, over its own build of the
    /// layers beneath (a cross-compiler writing the target's binaries).
    #[serde(default, skip_serializing_if = "StepPlatform::is_target")]
    pub platform: StepPlatform,
    /// Keep only these absolute paths of what the commands wrote.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Glob patterns (absolute, `**` crosses directories) of written paths
    /// to leave out, besides the default noise (/tmp, /run, apt caches).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Whether the default noise is left out (true unless set to false).
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub default_excludes: bool,
    /// Extended attributes kept besides `security.capability`: names or
    /// globs (`user.*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<String>,
    /// Seconds each command may run.
    pub timeout: Option<u64>,
    /// `[[source.run.inputs]]`: project files mounted read-only.
    #[serde(default)]
    pub inputs: Vec<RunInput>,
    /// `[[source.run.caches]]`: directories kept across builds.
    #[serde(default)]
    pub caches: Vec<RunCache>,
    /// `[[source.run.secrets]]`: host values the commands may read.
    #[serde(default)]
    pub secrets: Vec<RunSecret>,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// `[[source.run.caches]]`: a directory kept under the store across builds
/// (never in the layer or its key).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunCache {
    /// Absolute path inside the sandbox.
    pub target: String,
    /// Cache id (default: the target); steps naming the same id share it.
    pub id: Option<String>,
    /// `shared` (default), `locked` or `private`, as BuildKit defines them.
    #[serde(default)]
    pub sharing: crate::sandbox::mounts::Sharing,
    /// Owner of a new cache directory.
    #[serde(default)]
    pub uid: u32,
    /// Group of a new cache directory.
    #[serde(default)]
    pub gid: u32,
}

/// `[[source.run.secrets]]`: a host value for the commands, never stored.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunSecret {
    /// Name (the file is /run/secrets/ID unless `target` or `as_env`).
    pub id: String,
    /// Host environment variable holding the value.
    pub env: Option<String>,
    /// Host file holding the value (absolute, or relative to the layer).
    pub file: Option<String>,
    /// Absolute path of the file inside the sandbox.
    pub target: Option<String>,
    /// Give the value as this environment variable instead of a file.
    pub as_env: Option<String>,
}

/// A build-step command.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Command {
    /// Run with `/bin/sh -c`.
    Shell(String),
    /// The argv.
    Argv(Vec<String>),
}

impl Command {
    /// The argv it runs.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            Command::Argv(a) => a.clone(),
        }
    }

    /// As written, for messages.
    pub fn shown(&self) -> String {
        match self {
            Command::Shell(s) => s.clone(),
            Command::Argv(a) => a.join(" "),
        }
    }
}

/// Network access of a build step.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A fresh network namespace with only loopback.
    #[default]
    None,
    /// The host's network (what it downloads is not part of the key).
    Host,
}

/// The platform a build step runs on (BuildKit's `$TARGETPLATFORM` and
/// `$BUILDPLATFORM`).
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StepPlatform {
    /// The platform being built (under qemu-user when it is foreign).
    #[default]
    Target,
    /// The build machine's, natively, whatever the platform being built.
    Build,
}

impl StepPlatform {
    fn is_target(&self) -> bool {
        *self == StepPlatform::Target
    }
}

/// `[[source.run.inputs]]`: project files mounted read-only in the sandbox.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// Path relative to the layer directory; must stay inside the project.
    pub from: String,
    /// Absolute path inside the sandbox.
    pub to: String,
    /// Glob patterns (relative to `from`) to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// `[source.deb]`: Debian packages, resolved against the apt repositories.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DebSource {
    /// Packages (`name` or `name=version`); their dependencies are added
    /// unless a layer beneath has them.
    pub packages: Vec<String>,
    /// Use only the machine's apt entries of this suite and, with
    /// `updates` (the default), of its `-updates` and `-security` pockets.
    pub suite: Option<String>,
    /// With `suite`: also its `SUITE-updates` and `SUITE-security`
    /// entries (default true; false takes the release pocket alone).
    #[serde(default = "yes")]
    pub updates: bool,
    /// Use only these components of the machine's apt entries.
    pub components: Option<Vec<String>>,
    /// Debian architecture (default: the host's, e.g. amd64).
    pub architecture: Option<String>,
    /// Repositories to use instead of the machine's apt sources.
    #[serde(default)]
    pub repositories: Vec<DebRepository>,
    /// One layer per package, in dependency order.
    #[serde(default)]
    pub one_layer_per_package: bool,
    /// Run the packages' `preinst` and `postinst` in the sandbox over the
    /// layers beneath (as `dpkg --configure` would), capturing what they
    /// write as one more blob of this layer. Off by default: the layer's
    /// key then depends on the layers beneath, and `runc` is needed.
    #[serde(default)]
    pub configure: bool,
}

/// `[[source.deb.repositories]]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DebRepository {
    /// `http://`, `https://` or `file:` URI.
    pub uri: String,
    /// Suite (or a flat repository's path ending in `/`).
    pub suite: String,
    /// Components (none for a flat repository).
    #[serde(default)]
    pub components: Vec<String>,
    /// Keyring file (relative to the layer directory, or absolute) whose
    /// keys may sign the Release file; apt's trusted keyrings when absent.
    pub signed_by: Option<String>,
}

/// `[[source.copy]]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CopySource {
    /// Path relative to the layer directory; must stay inside the project.
    pub from: String,
    /// Absolute destination in the image.
    pub to: String,
    /// Permission bits for regular files: an octal integer (`0o755`) or
    /// string (`"0755"`), at most `0o7777`.
    #[serde(default, deserialize_with = "de_mode")]
    pub mode: Option<u32>,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// Glob patterns (relative to `from`) to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The platforms this entry is copied for (default: every platform);
    /// e.g. a `target/x86_64-unknown-linux-gnu/release/app` entry for
    /// linux/amd64 beside an aarch64 one for linux/arm64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
}

impl CopySource {
    /// Whether this entry is copied for `platform`.
    pub fn applies_to(&self, platform: &crate::spec::Platform) -> bool {
        self.platforms.is_empty()
            || self
                .platforms
                .iter()
                .any(|p| crate::spec::Platform::parse(p).is_ok_and(|p| p.matches(platform)))
    }
}

/// `[source.tar]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TarSource {
    /// Tarball path relative to the layer directory.
    pub path: String,
}

/// `[source.image]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSource {
    /// The image, in any transport.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Layers by index (0 is the base).
    #[serde(default)]
    pub indexes: Vec<usize>,
    /// Layers by digest.
    #[serde(default)]
    pub digests: Vec<String>,
    /// Compress layers stored uncompressed (as `docker save` writes them)
    /// with the project's compression; the diff_id stays (default true).
    #[serde(default)]
    pub recompress: Option<bool>,
}

/// A loaded layer: its file and where it lives.
#[derive(Debug, Clone)]
pub struct LayerDef {
    /// The parsed layer.toml.
    pub file: LayerFile,
    /// The layer directory.
    pub dir: PathBuf,
    /// Project-relative path of its layer.toml.
    pub rel: String,
}

impl LayerDef {
    /// `name@version`, or `name` when it has no version.
    pub fn label(&self) -> String {
        match &self.file.layer.version {
            Some(v) => format!("{}@{v}", self.file.layer.name),
            None => self.file.layer.name.clone(),
        }
    }
}

pub use super::platforms::parse_platform;

impl ImageSpec {
    /// The platform the image is for (the host's when not given).
    pub fn platform(&self) -> Result<crate::spec::Platform> {
        match &self.platform {
            Some(p) => crate::spec::Platform::parse(p),
            None => Ok(crate::spec::Platform::host()),
        }
    }
}

/// A loaded project.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project root.
    pub root: PathBuf,
    /// strata.toml.
    pub file: ProjectFile,
    /// Layers by name.
    pub layers: BTreeMap<String, LayerDef>,
}

/// A file mode: an integer (TOML's `0o755`), or a string of octal digits
/// (`"0755"`, `"755"`, `"0o755"`); at most `0o7777`.
fn de_mode<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    use serde::de::Error as _;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Text(String),
    }
    let v = match Raw::deserialize(d)? {
        Raw::Int(n) => n,
        Raw::Text(t) => {
            let digits = t.strip_prefix("0o").unwrap_or(&t);
            i64::from_str_radix(digits, 8).map_err(|_| {
                D::Error::custom(format!("mode {t:?} is not an octal number like \"0755\""))
            })?
        }
    };
    if !(0..=0o7777).contains(&v) {
        return Err(D::Error::custom(format!(
            "mode {v:#o} is more than the permission bits allow (0o7777)"
        )));
    }
    Ok(Some(v as u32))
}

/// A `mode = DIGITS` line whose digits are all octal, written without
/// `0o`: TOML reads it as decimal (755 is 0o1363), which is never meant.
fn decimal_mode_line(text: &str) -> Option<(usize, String)> {
    text.lines().enumerate().find_map(|(i, l)| {
        let rest = l
            .trim_start()
            .strip_prefix("mode")?
            .trim_start()
            .strip_prefix('=')?;
        let lit = rest.split('#').next()?.trim();
        (lit.len() >= 3 && lit.bytes().all(|b| (b'0'..=b'7').contains(&b)) && !lit.starts_with('0'))
            .then(|| (i + 1, lit.to_string()))
    })
}

/// Parses TOML strictly, turning the error into one that names the file,
/// line and key.
fn parse_toml<T: for<'de> Deserialize<'de>>(path: &Path, rel: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    if let Some((line, lit)) = decimal_mode_line(&text) {
        let n: u32 = lit.parse().unwrap_or(0);
        return Err(Error::invalid(
            "project file",
            format!("{rel} line {line}"),
            format!(
                "mode = {lit} is a decimal number in TOML ({n:#o}); write mode = 0o{lit} or mode = \"0{lit}\""
            ),
        ));
    }
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .map(|l| format!(" line {l}"))
            .unwrap_or_default();
        Error::invalid(
            "project file",
            format!("{rel}{line}"),
            e.message().to_string(),
        )
    })
}

impl Project {
    /// The base image reference of image `name` (relative paths are relative
    /// to the project root), or `None` for scratch.
    pub fn base_ref(&self, name: &str) -> Result<Option<crate::transport::ImageRef>> {
        let base = &self.file.images[name].base;
        if base == "scratch" {
            return Ok(None);
        }
        crate::transport::ImageRef::parse(base)
            .map(|r| Some(r.relative_to(&self.root)))
            .map_err(|e| {
                Error::invalid(
                    "image",
                    format!("strata.toml key images.{name}.base"),
                    e.to_string(),
                )
            })
    }

    /// Loads `root/strata.toml` and every `root/layers/*/layer.toml`.
    pub fn load(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let file: ProjectFile = parse_toml(&root.join("strata.toml"), "strata.toml")?;
        let mut layers = BTreeMap::new();
        let dir = root.join("layers");
        let mut names: Vec<_> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(|e| Error::io(&dir, e))?
                .into_iter()
                .filter(|e| e.path().join("layer.toml").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        names.sort();
        for dirname in names {
            let rel = format!("layers/{dirname}/layer.toml");
            let lf: LayerFile = parse_toml(&root.join(&rel), &rel)?;
            if lf.layer.name != dirname {
                return Err(Error::invalid(
                    "layer",
                    format!("{rel} key layer.name"),
                    format!(
                        "the name {:?} differs from its directory {dirname:?}; rename one of them",
                        lf.layer.name
                    ),
                ));
            }
            layers.insert(
                dirname.clone(),
                LayerDef {
                    file: lf,
                    dir: root.join("layers").join(&dirname),
                    rel,
                },
            );
        }
        let project = Project { root, file, layers };
        project.check_sources()?;
        for (name, spec) in &project.file.images {
            spec.platforms(name, &project.file.defaults)?;
        }
        Ok(project)
    }
}
