//! `strata store ...`.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Subcommand;

use super::Ctx;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// List the store's tags.
    Ls,
    /// Re-hash every blob; report each one that is corrupt or missing.
    Fsck {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove blobs that no tag reaches.
    Gc {
        /// Only report what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Keep unreferenced blobs younger than this many seconds (a build
        /// running at the same time may be about to tag them).
        #[arg(long, default_value_t = 600, value_name = "SECONDS")]
        grace: u64,
    },
    /// Remove a tag (blobs stay until gc).
    Rm {
        /// NAME[:TAG].
        name: String,
    },
    /// Print the store's location.
    Path,
    /// List build-step cache mounts (with --clear, remove them).
    Caches {
        /// Remove the cache with this id (every cache with --clear alone).
        id: Option<String>,
        /// Remove instead of listing.
        #[arg(long)]
        clear: bool,
    },
}

pub fn run(ctx: &Ctx, c: StoreCommand) -> Result<()> {
    let store = ctx.store()?;
    match c {
        StoreCommand::Ls => {
            for (name, d) in store.tags()? {
                println!("{name}\t{}\t{}", d.digest, d.size);
            }
        }
        StoreCommand::Path => println!("{}", store.root().display()),
        StoreCommand::Caches { id, clear } => {
            use strata::sandbox::mounts;
            if clear {
                let n = mounts::clear_caches(store.root(), id.as_deref())?;
                if n == 0 && id.is_some() {
                    bail!(
                        "no cache mount {:?} in {}",
                        id.unwrap_or_default(),
                        store.root().display()
                    );
                }
                println!("removed {n} cache mounts");
            } else {
                if id.is_some() {
                    bail!("give --clear to remove a cache; listing takes no id");
                }
                for (name, bytes) in mounts::list_caches(store.root())? {
                    println!("{name}\t{}", super::human(bytes));
                }
            }
        }
        StoreCommand::Fsck { json } => {
            let r = store.fsck()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for (d, actual) in &r.corrupt {
                    println!("corrupt: blob {d} hashes to {actual}");
                }
                for (d, by) in &r.missing {
                    println!("missing: blob {d} (referenced by {by})");
                }
                for s in &r.stray {
                    println!("stray: blobs/sha256/{s} is not named by a digest");
                }
                for (p, bytes, age) in &r.temp {
                    println!(
                        "temp: {p} ({}, {age} s old) is left from a write that did not finish; store gc removes it",
                        super::human(*bytes)
                    );
                }
                println!(
                    "{} blobs checked, {} corrupt, {} missing",
                    r.checked,
                    r.corrupt.len(),
                    r.missing.len()
                );
            }
            if !r.is_clean() {
                bail!(
                    "store {} has problems; remove corrupt blobs and re-create the images that need them",
                    store.root().display()
                );
            }
        }
        StoreCommand::Gc { dry_run, grace } => {
            let r = store.gc(Duration::from_secs(grace), dry_run)?;
            let verb = if dry_run { "would remove" } else { "removed" };
            println!(
                "{verb} {} blobs ({} bytes); {} reachable kept, {} recent kept",
                r.removed.len(),
                r.freed_bytes,
                r.kept,
                r.recent
            );
            if r.records_removed > 0 {
                println!(
                    "{verb} {} of strata's records ({}): cache entries of removed layers, listings, logs, old markers and Debian downloads",
                    r.records_removed,
                    super::human(r.records_bytes)
                );
            }
            if r.snapshots_removed + r.work_removed > 0 {
                println!(
                    "{verb} {} unpacked layers and {} unfinished step work directories",
                    r.snapshots_removed, r.work_removed
                );
            }
        }
        StoreCommand::Rm { name } => {
            let name = strata::reference::normalize_name(&name)?;
            if !store.remove_tag(&name)? {
                bail!("no tag {name} in {}", store.root().display());
            }
        }
    }
    Ok(())
}
