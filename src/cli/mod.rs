//! Command-line interface.

mod build;
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
    /// List the files of each layer of an image.
    Ls(show::LsArgs),
    /// Recompute every digest, diff_id and size of an image.
    Validate(show::ValidateArgs),
    /// Point a store tag at an image.
    Tag(show::TagArgs),
    /// Manage the content store.
    #[command(subcommand)]
    Store(storecmd::StoreCommand),
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    let store_path = match cli.store {
        Some(p) => p,
        None => Store::default_path()?,
    };
    let ctx = Ctx { store_path };
    match cli.command {
        Command::New(a) => build::new(&ctx, *a),
        Command::Copy(a) => show::copy(&ctx, a),
        Command::Inspect(a) => show::inspect(&ctx, a),
        Command::Ls(a) => show::ls(&ctx, a),
        Command::Validate(a) => show::validate(&ctx, a),
        Command::Tag(a) => show::tag(&ctx, a),
        Command::Store(c) => storecmd::run(&ctx, c),
    }
}

/// What every command needs.
pub struct Ctx {
    store_path: PathBuf,
}

impl Ctx {
    /// Opens (creating if needed) the store.
    pub fn store(&self) -> Result<Store> {
        Ok(Store::open_or_create(&self.store_path)?)
    }
}

/// Parses `--platform` or returns the host's.
pub fn platform(p: &Option<String>) -> Result<strata::spec::Platform> {
    Ok(match p {
        Some(s) => strata::spec::Platform::parse(s)?,
        None => strata::spec::Platform::host(),
    })
}
