//! `strata login`, `logout`, `tags`, `delete`.

use std::io::Read;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use strata::registry::{Client, Credential, RegistryRef, Secret, api::Repo, credentials};
use strata::transport::ImageRef;

use super::Ctx;

#[derive(Args)]
#[command(after_help = "\
Credentials are checked against the registry, then stored in REGISTRY_AUTH_FILE
when set, else in docker's config.json ($DOCKER_CONFIG or ~/.docker), mode 0600.

Examples:
  echo \"$TOKEN\" | strata login registry.example.com -u ci --password-stdin
  strata login localhost:5000 -u admin --password-stdin < password.txt")]
pub struct LoginArgs {
    /// Registry host[:port] (docker.io for Docker Hub).
    registry: String,
    /// User name.
    #[arg(short, long)]
    username: String,
    /// Read the password from standard input (recommended).
    #[arg(long)]
    password_stdin: bool,
    /// Password (visible in the process list; prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
}

fn registry_ref(host: &str) -> Result<RegistryRef> {
    RegistryRef::parse(&format!("{host}/strata-login-check"))
        .with_context(|| format!("{host:?} is not a registry host[:port]"))
}

pub fn login(ctx: &Ctx, a: LoginArgs) -> Result<()> {
    let password = match (a.password, a.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("give the password with --password-stdin (or -p)"),
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    let r = registry_ref(&a.registry)?;
    let secret = Secret::new(password);
    let mut opts = ctx.registry.clone();
    opts.credentials.insert(
        r.auth_key().to_string(),
        Credential::Basic {
            username: a.username.clone(),
            password: secret.clone(),
        },
    );
    let client = Client::new(opts)?;
    // Any authenticated call proves the credentials; a catalog-free,
    // repository-free check is a tag list that may 404.
    match Repo::new(&client, &r).list_tags() {
        Ok(_) => {}
        Err(strata::Error::Registry { status: 404, .. }) | Err(strata::Error::NotFound { .. }) => {}
        Err(e @ strata::Error::Unauthorized { .. }) => return Err(e.into()),
        Err(strata::Error::Registry { status, .. }) if status != 401 && status != 403 => {}
        Err(e) => return Err(e.into()),
    }
    let file = credentials::store(r.auth_key(), &a.username, &secret)?;
    eprintln!(
        "Login succeeded; credentials for {} stored in {}",
        r.auth_key(),
        file.display()
    );
    Ok(())
}

#[derive(Args)]
pub struct LogoutArgs {
    /// Registry host[:port].
    registry: String,
}

pub fn logout(_ctx: &Ctx, a: LogoutArgs) -> Result<()> {
    let r = registry_ref(&a.registry)?;
    let (file, existed) = credentials::remove(r.auth_key())?;
    if !existed {
        bail!("no credentials for {} in {}", r.auth_key(), file.display());
    }
    eprintln!(
        "Removed credentials for {} from {}",
        r.auth_key(),
        file.display()
    );
    Ok(())
}

fn parse_registry(s: &str) -> Result<RegistryRef> {
    match ImageRef::parse(s)? {
        ImageRef::Registry(r) => Ok(r),
        _ => bail!("{s:?} is not a registry reference; write docker://HOST[:PORT]/REPO"),
    }
}

#[derive(Args)]
pub struct TagsArgs {
    /// docker://HOST[:PORT]/REPO
    repository: String,
    /// Print a JSON array.
    #[arg(long)]
    json: bool,
}

pub fn tags(ctx: &Ctx, a: TagsArgs) -> Result<()> {
    let r = parse_registry(&a.repository)?;
    let t = ctx.transport(&None)?;
    let client = t.client()?;
    let mut tags = Repo::new(&client, &r).list_tags()?;
    tags.sort();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&tags)?);
    } else {
        for tag in tags {
            println!("{tag}");
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct DeleteArgs {
    /// docker://HOST[:PORT]/REPO:TAG or docker://HOST[:PORT]/REPO@DIGEST
    reference: String,
}

pub fn delete(ctx: &Ctx, a: DeleteArgs) -> Result<()> {
    let r = parse_registry(&a.reference)?;
    let t = ctx.transport(&None)?;
    let client = t.client()?;
    let repo = Repo::new(&client, &r);
    let digest = match &r.digest {
        Some(d) => d.clone(),
        None => repo
            .head_manifest(&r.reference())?
            .with_context(|| format!("{r} does not exist"))?,
    };
    repo.delete_manifest(&digest)?;
    println!("{digest}");
    Ok(())
}

#[derive(Args)]
#[command(after_help = "\
Keeps the newest N tags of those matching --match, deletes the others that
were pushed longer ago than --older-than. A tag's push time comes from the
record strata writes on every push (tag strata.push-times in the
repository), else from a timestamp in the tag (YYYYMMDD-HHMMSS, as
{timestamp} writes it). When some tag has neither, --keep ranks by name in
natural order (tooling-10 above tooling-5) and --older-than keeps what it
cannot date, with a warning. Never deleted: latest, tags ending in 'stable',
--protect tags, the push-times record, referrers indexes (sha256-HEX), tags
not matching --match, and tags whose manifest a kept tag also uses.
A dry run unless --yes is given.

Example:
  strata prune docker://registry.example.com/team/app --keep 10 --match 'v*' --older-than 30d --yes")]
pub struct PruneArgs {
    /// docker://HOST[:PORT]/REPO
    repository: String,
    /// How many matching tags to keep, newest first.
    #[arg(long, value_name = "N")]
    keep: usize,
    /// Only delete tags older than this (e.g. 30d, 12h).
    #[arg(long, value_name = "DURATION")]
    older_than: Option<String>,
    /// Only consider tags matching this glob.
    #[arg(long = "match", value_name = "GLOB")]
    matching: Option<String>,
    /// A tag never to delete (repeatable).
    #[arg(long, value_name = "TAG")]
    protect: Vec<String>,
    /// Delete for real.
    #[arg(long)]
    yes: bool,
    /// Print the decisions as JSON.
    #[arg(long)]
    json: bool,
}

pub fn prune(ctx: &Ctx, a: PruneArgs) -> Result<()> {
    let r = parse_registry(&a.repository)?;
    let opts = strata::registry::prune::PruneOptions {
        keep: a.keep,
        older_than: a
            .older_than
            .as_deref()
            .map(strata::registry::prune::parse_duration)
            .transpose()?,
        matching: a.matching.clone(),
        protect: a.protect.clone(),
        dry_run: !a.yes,
    };
    let t = ctx.transport(&None)?;
    let fates = strata::registry::prune::prune(&t.client()?, &r, &opts)?;
    let undated = fates
        .iter()
        .filter(|f| f.reason.starts_with("push time unknown"))
        .count();
    if undated > 0 {
        eprintln!(
            "warning: {undated} tag(s) kept because their push time is unknown: not in the {} record strata writes on push, and no timestamp in the tag",
            strata::registry::pushtimes::TAG
        );
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&fates)?);
        return Ok(());
    }
    for f in &fates {
        println!(
            "{:<10} {:<30} {}  {}",
            f.action,
            f.tag,
            &f.digest.hex()[..12],
            f.reason
        );
    }
    if !a.yes && fates.iter().any(|f| f.action == "delete") {
        eprintln!("dry run: nothing deleted; add --yes to delete");
    }
    Ok(())
}

/// `strata cache …`.
#[derive(clap::Subcommand)]
pub enum CacheCommand {
    /// Keep the newest records of each layer in a registry cache (dry run
    /// by default).
    Prune(CachePruneArgs),
}

#[derive(Args)]
#[command(after_help = "\
A registry cache holds one record per layer key (tag NAME.KEYHEX): every
change of a layer adds one. This keeps, for each layer name, the newest N
records by the push time strata records on every push, and with
--older-than also every record pushed within that time; the others are
deleted (their blobs go at the registry's next garbage collection). A
record deleted while a build uses it is only a cache miss for that build.

Example:
  strata cache prune docker://registry.example.com/team/cache --keep 5 --older-than 14d --yes")]
pub struct CachePruneArgs {
    /// The cache, docker://HOST[:PORT]/REPO.
    cache: String,
    /// How many records to keep per layer, newest first.
    #[arg(long, value_name = "N")]
    keep: usize,
    /// Also keep every record pushed within this time (e.g. 14d, 12h).
    #[arg(long, value_name = "DURATION")]
    older_than: Option<String>,
    /// Delete for real.
    #[arg(long)]
    yes: bool,
    /// Print the decisions as JSON.
    #[arg(long)]
    json: bool,
}

pub fn cache_prune(ctx: &Ctx, a: CachePruneArgs) -> Result<()> {
    let t = ctx.transport(&None)?;
    let older = a
        .older_than
        .as_deref()
        .map(strata::registry::prune::parse_duration)
        .transpose()?;
    let fates = strata::compose::regcache::prune(&t.client()?, &a.cache, a.keep, older, !a.yes)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&fates)?);
        return Ok(());
    }
    for f in &fates {
        println!("{:<10} {}  {}", f.action, f.tag, f.reason);
    }
    if !a.yes && fates.iter().any(|f| f.action == "delete") {
        eprintln!("dry run: nothing deleted; add --yes to delete");
    }
    Ok(())
}
