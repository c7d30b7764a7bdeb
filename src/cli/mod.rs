//! Command-line interface.

mod build;
mod index;
mod progress;
mod project;
mod registry;
mod run;
mod show;
mod storecmd;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use strata::store::Store;

/// Build OCI images with no daemon: deterministic layers from files, images
/// in OCI layouts, oci-archives and docker-archives.
#[derive(Parser)]
#[command(name = "strata", version, propagate_version = true)]
pub struct Cli {
    /// Content store directory (an OCI image layout). Default:
    /// $XDG_DATA_HOME/strata/store or ~/.local/share/strata/store.
    #[arg(long, global = true, env = "STRATA_STORE", value_name = "DIR")]
    store: Option<PathBuf>,

    /// A registry (HOST[:PORT]) that may be reached over plain HTTP; loopback
    /// hosts always may. Repeatable; also STRATA_INSECURE_REGISTRIES=a,b.
    #[arg(
        long = "insecure-registry",
        global = true,
        value_name = "HOST",
        env = "STRATA_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure: Vec<String>,

    /// Extra CA certificate (PEM) to trust for registries.
    #[arg(long, global = true, value_name = "FILE", env = "STRATA_CA_FILE")]
    ca_file: Option<PathBuf>,

    /// Blobs transferred in parallel with a registry.
    #[arg(long, global = true, default_value_t = 4, value_name = "N")]
    jobs: usize,

    /// Upload blobs in chunks of this many bytes instead of one request
    /// (the registry's OCI-Chunk-Min-Length is honoured).
    #[arg(long, global = true, value_name = "BYTES")]
    chunk_size: Option<u64>,

    /// Seconds without a byte moving before a registry or repository
    /// connection counts as stalled; it is then retried (downloads resume
    /// where they stopped) and finally fails naming the host.
    #[arg(
        long,
        global = true,
        default_value_t = 30.0,
        value_name = "SECONDS",
        env = "STRATA_STALL_TIMEOUT"
    )]
    stall_timeout: f64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from files (and optionally a base image) into the store.
    New(Box<build::NewArgs>),
    /// Copy an image between transports (store name, oci:, oci-archive:, docker-archive:).
    Copy(show::CopyArgs),
    /// Show an image's manifest, config and layers.
    Inspect(show::InspectArgs),
    /// Make a multi-platform image (an OCI index) from single-platform images.
    Index(index::IndexArgs),
    /// List the files of each layer of an image.
    Ls(show::LsArgs),
    /// Recompute every digest, diff_id and size of an image.
    Validate(show::ValidateArgs),
    /// Point a store tag at an image.
    Tag(show::TagArgs),
    /// Store credentials for a registry (checked against it first).
    Login(registry::LoginArgs),
    /// Remove stored credentials for a registry.
    Logout(registry::LogoutArgs),
    /// List a registry repository's tags.
    Tags(registry::TagsArgs),
    /// Delete a manifest (by tag or digest) from a registry.
    Delete(registry::DeleteArgs),
    /// Apply a tag retention policy to a registry repository (dry run by default).
    Prune(registry::PruneArgs),
    /// Build a project's images: only changed layers are rebuilt.
    Build(project::BuildArgs),
    /// Say what a build would make or reuse, and why, without building.
    Plan(project::PlanArgs),
    /// Print an env.sh with the image's (or layer's) aliases as shell functions.
    Env(project::EnvArgs),
    /// Show the layer graph of a project (text tree or --dot).
    Graph(project::GraphArgs),
    /// Check a project's images without building (graph, conflicts, binaries, platform).
    Check(project::CheckArgs),
    /// Print the SPDX SBOM that strata build stored for an image.
    Sbom(project::SbomArgs),
    /// Run the layers' and images' tests in the sandbox.
    Test(project::TestArgs),
    /// Run an image in the sandbox (daemonless `docker run --rm`).
    Run(run::RunArgs),
    /// Manage the content store.
    #[command(subcommand)]
    Store(storecmd::StoreCommand),
    /// Manage a registry build cache.
    #[command(subcommand)]
    Cache(registry::CacheCommand),
}

fn stall_timeout(secs: f64) -> Result<std::time::Duration> {
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        anyhow::bail!(
            "--stall-timeout must be a number of seconds above 0 and at most 86400, not {secs}"
        );
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// The global flags that only matter where a registry is reached.
const REGISTRY_FLAGS: &[&str] = &["insecure", "ca_file", "jobs", "chunk_size", "stall_timeout"];

/// Commands that never reach a registry, and the global flags their
/// `--help` leaves out (they are still accepted, as globals are anywhere).
const NO_REGISTRY: &[(&[&str], &[&str])] = &[
    (&["graph"], REGISTRY_FLAGS),
    (&["sbom"], REGISTRY_FLAGS),
    (&["store"], REGISTRY_FLAGS),
    (&["store", "fsck"], REGISTRY_FLAGS),
    (&["store", "gc"], REGISTRY_FLAGS),
    (&["store", "ls"], REGISTRY_FLAGS),
    (&["store", "rm"], REGISTRY_FLAGS),
    (&["store", "caches"], REGISTRY_FLAGS),
    (&["tag"], REGISTRY_FLAGS),
    // env reads base images and Debian indexes only to expand {content};
    // it never moves blobs.
    (&["env"], &["jobs", "chunk_size"]),
    (&["login"], &["jobs", "chunk_size"]),
    (&["logout"], REGISTRY_FLAGS),
];

/// The command line definition, with registry flags hidden from the help
/// of the commands that never reach a registry.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    for (path, flags) in NO_REGISTRY {
        // A subcommand that has its own copy of a global flag does not get
        // the root's: give it a hidden copy (still global, so still parsed
        // anywhere on the line and read from the root's matches).
        let hidden: Vec<clap::Arg> = cmd
            .get_arguments()
            .filter(|a| flags.contains(&a.get_id().as_str()))
            .map(|a| a.clone().hide(true))
            .collect();
        cmd = add_to(cmd, path, hidden);
    }
    cmd
}

fn add_to(cmd: clap::Command, path: &[&str], args: Vec<clap::Arg>) -> clap::Command {
    match path {
        [] => cmd.args(args),
        [first, rest @ ..] => cmd.mut_subcommand(*first, |sub| add_to(sub, rest, args)),
    }
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    use clap::FromArgMatches;
    let cli = Cli::from_arg_matches(&command().get_matches())?;
    let store_path = match cli.store {
        Some(p) => p,
        None => Store::default_path()?,
    };
    let registry = strata::registry::ClientOptions {
        insecure: cli.insecure.into_iter().filter(|h| !h.is_empty()).collect(),
        ca_file: cli.ca_file,
        jobs: cli.jobs.max(1),
        chunk_size: cli.chunk_size,
        retry: strata::registry::RetryPolicy {
            stall: stall_timeout(cli.stall_timeout)?,
            ..Default::default()
        },
        ..Default::default()
    };
    let ctx = Ctx {
        store_path,
        registry,
    };
    match cli.command {
        Command::New(a) => build::new(&ctx, *a),
        Command::Copy(a) => show::copy(&ctx, a),
        Command::Index(a) => index::index(&ctx, a),
        Command::Inspect(a) => show::inspect(&ctx, a),
        Command::Ls(a) => show::ls(&ctx, a),
        Command::Validate(a) => show::validate(&ctx, a),
        Command::Tag(a) => show::tag(&ctx, a),
        Command::Login(a) => registry::login(&ctx, a),
        Command::Logout(a) => registry::logout(&ctx, a),
        Command::Tags(a) => registry::tags(&ctx, a),
        Command::Delete(a) => registry::delete(&ctx, a),
        Command::Prune(a) => registry::prune(&ctx, a),
        Command::Cache(registry::CacheCommand::Prune(a)) => registry::cache_prune(&ctx, a),
        Command::Build(a) => project::build(&ctx, a),
        Command::Plan(a) => project::plan(&ctx, a),
        Command::Env(a) => project::env(&ctx, a),
        Command::Graph(a) => project::graph(&ctx, a),
        Command::Check(a) => project::check(&ctx, a),
        Command::Sbom(a) => project::sbom(&ctx, a),
        Command::Run(a) => run::run(&ctx, a),
        Command::Test(a) => project::test(&ctx, a),
        Command::Store(c) => storecmd::run(&ctx, c),
    }
}

/// What every command needs.
pub struct Ctx {
    store_path: PathBuf,
    registry: strata::registry::ClientOptions,
}

impl Ctx {
    /// Opens (creating if needed) the store.
    pub fn store(&self) -> Result<Store> {
        Ok(Store::open_or_create(&self.store_path)?)
    }

    /// A transport context for `platform` (the host's when `None`), with
    /// progress bars on stderr when it is a terminal.
    pub fn transport(&self, platform: &Option<String>) -> Result<strata::transport::Context> {
        let mut t = strata::transport::Context::new(self.store()?);
        t.platform = self::platform(platform)?;
        t.registry = self.registry.clone();
        t.progress = progress::registry_bars();
        Ok(t)
    }
}

/// Parses `--platform` or returns the host's.
pub fn platform(p: &Option<String>) -> Result<strata::spec::Platform> {
    Ok(match p {
        Some(s) => strata::spec::Platform::parse(s)?,
        None => strata::spec::Platform::host(),
    })
}

/// A byte count for people: `512 B`, `1.5 MiB`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
