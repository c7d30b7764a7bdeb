//! `strata new`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use strata::image::{ImageBuilder, annotations};
use strata::layer::{Compression, Layer, LayerBuilder, Mapping};
use strata::transport::{self, ImageRef};

use super::Ctx;

#[derive(Args)]
#[command(after_help = "\
Examples:
  strata new --add ./rootfs --entrypoint /bin/app --tag app:1.0
  strata new --from base:latest --add ./app:/usr/local/bin/app --env RUST_LOG=info --tag app
  strata new --add /bin/busybox:/bin/busybox --entrypoint '[\"/bin/busybox\",\"echo\",\"hi\"]' --tag demo

Layers are deterministic: entries are sorted, every mtime is SOURCE_DATE_EPOCH
(0 when unset), owners are 0:0 unless given, and the bytes do not depend on
--threads. Running it twice on the same inputs prints the same digest.")]
pub struct NewArgs {
    /// Base image (store name, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG]).
    #[arg(long, value_name = "REF")]
    from: Option<String>,
    /// Add a file or directory: SRC[:DEST[:UID:GID]]. A directory's contents go
    /// under DEST (default /); a file goes to DEST (default /NAME). Repeatable; all
    /// additions form one layer.
    #[arg(long = "add", value_name = "SRC[:DEST[:UID:GID]]")]
    add: Vec<String>,
    /// Entrypoint: a JSON array, or words separated by spaces.
    #[arg(long, value_name = "ARGV")]
    entrypoint: Option<String>,
    /// Default arguments: a JSON array, or words separated by spaces.
    #[arg(long, value_name = "ARGV")]
    cmd: Option<String>,
    /// Environment variable KEY=VALUE (repeatable; replaces the base's value).
    #[arg(long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory.
    #[arg(long, value_name = "DIR")]
    workdir: Option<String>,
    /// User (name, UID or UID:GID).
    #[arg(long)]
    user: Option<String>,
    /// Label KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Exposed port PORT[/tcp|udp|sctp] (repeatable).
    #[arg(long, value_name = "PORT")]
    expose: Vec<String>,
    /// Volume path (repeatable).
    #[arg(long, value_name = "PATH")]
    volume: Vec<String>,
    /// Stop signal, e.g. SIGTERM.
    #[arg(long, value_name = "SIGNAL")]
    stop_signal: Option<String>,
    /// Manifest annotation KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    annotation: Vec<String>,
    /// Source repository URL (org.opencontainers.image.source).
    #[arg(long, value_name = "URL")]
    source: Option<String>,
    /// Source revision (org.opencontainers.image.revision).
    #[arg(long, value_name = "REV")]
    revision: Option<String>,
    /// Layer compression: gzip[:LEVEL], zstd[:LEVEL] or none.
    #[arg(long, default_value = "gzip", value_name = "ALGO")]
    compression: String,
    /// Compression threads (default: all cores). The bytes do not change.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Record extended attributes of added files.
    #[arg(long)]
    xattrs: bool,
    /// Platform of a scratch image, or the one to pick from a multi-platform base.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Store tag to write (NAME[:TAG]; TAG defaults to latest).
    #[arg(long, value_name = "NAME")]
    tag: Option<String>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_argv(s: &str, flag: &str) -> Result<Vec<String>> {
    if s.trim_start().starts_with('[') {
        serde_json::from_str(s)
            .with_context(|| format!("{flag}: {s:?} is not a JSON array of strings"))
    } else {
        Ok(s.split_whitespace().map(str::to_string).collect())
    }
}

fn parse_kv<'a>(s: &'a str, flag: &str) -> Result<(&'a str, &'a str)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => bail!("{flag}: {s:?} is not KEY=VALUE"),
    }
}

/// Parses `SRC[:DEST[:UID:GID]]`.
fn parse_add(s: &str) -> Result<Mapping> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dest, owner) = match parts.as_slice() {
        [src] => (*src, None, None),
        [src, dest] => (*src, Some(*dest), None),
        [src, dest, uid, gid] => (*src, Some(*dest), Some((*uid, *gid))),
        _ => bail!("--add {s:?}: expected SRC[:DEST[:UID:GID]]"),
    };
    if src.is_empty() {
        bail!("--add {s:?}: the source path is empty");
    }
    let src_path = PathBuf::from(src);
    let dest = match dest {
        Some(d) => d.to_string(),
        None if src_path.is_dir() => "/".to_string(),
        None => format!(
            "/{}",
            src_path
                .file_name()
                .with_context(|| format!("--add {s:?}: give a destination"))?
                .to_string_lossy()
        ),
    };
    let mut m = Mapping::new(src_path, &dest)?;
    if let Some((uid, gid)) = owner {
        let uid: u32 = uid
            .parse()
            .with_context(|| format!("--add {s:?}: UID {uid:?} is not a number"))?;
        let gid: u32 = gid
            .parse()
            .with_context(|| format!("--add {s:?}: GID {gid:?} is not a number"))?;
        m = m.owner(uid, gid);
    }
    Ok(m)
}

pub fn new(ctx: &Ctx, a: NewArgs) -> Result<()> {
    let started = Instant::now();
    // Check everything the user typed before touching the store.
    let compression = Compression::parse(&a.compression)?;
    let tag = a
        .tag
        .as_deref()
        .map(strata::reference::normalize_name)
        .transpose()?;
    let mappings = a
        .add
        .iter()
        .map(|s| parse_add(s))
        .collect::<Result<Vec<_>>>()?;
    let from = a.from.as_deref().map(ImageRef::parse).transpose()?;
    let entrypoint = a
        .entrypoint
        .as_deref()
        .map(|s| parse_argv(s, "--entrypoint"))
        .transpose()?;
    let cmd = a
        .cmd
        .as_deref()
        .map(|s| parse_argv(s, "--cmd"))
        .transpose()?;
    let envs = a
        .env
        .iter()
        .map(|s| parse_kv(s, "--env"))
        .collect::<Result<Vec<_>>>()?;
    let labels = a
        .label
        .iter()
        .map(|s| parse_kv(s, "--label"))
        .collect::<Result<Vec<_>>>()?;
    let annots = a
        .annotation
        .iter()
        .map(|s| parse_kv(s, "--annotation"))
        .collect::<Result<Vec<_>>>()?;
    let platform = super::platform(&a.platform)?;
    let epoch = strata::layer::source_date_epoch()?;
    if mappings.is_empty() && from.is_none() {
        bail!("nothing to build: give --add SRC[:DEST] and/or --from REF");
    }

    let t = ctx.transport(&a.platform)?;
    let store = t.store.clone();
    let mut image = match &from {
        Some(r) => {
            let base = transport::open(r, &t)?;
            let base_platform = base.config()?.platform();
            if a.platform.is_some() && !platform.matches(&base_platform) {
                bail!("base image {r} is {base_platform}, not the requested {platform}");
            }
            // Verify and import the base's layers before building anything,
            // so a damaged base leaves nothing of this build behind.
            transport::oci::copy_layers(base.as_ref(), &store)?;
            ImageBuilder::from_base(base.as_ref(), &r.to_string())?
        }
        None => ImageBuilder::scratch(platform),
    };
    image.created(epoch);

    let mut layer_summary = None;
    if !mappings.is_empty() {
        let mut lb = LayerBuilder::new()
            .compression(compression)
            .xattrs(a.xattrs)
            .mtime(epoch);
        if let Some(t) = a.threads {
            lb = lb.threads(t);
        }
        for m in &mappings {
            lb = lb.mapping(m.clone());
        }
        let layer = lb.build(&store)?;
        // Only image-side paths: a host path would make the config (and
        // so the digest) depend on where the sources were checked out.
        let dests: Vec<String> = mappings.iter().map(|m| format!("/{}", m.dest)).collect();
        layer_summary = Some((layer.descriptor(), layer.diff_id()));
        image.append_layer(
            Arc::new(layer),
            &format!("strata new: add {}", dests.join(" ")),
        );
    }
    let cfg = image.config_mut();
    if let Some(e) = entrypoint {
        cfg.set_entrypoint(e);
    }
    if let Some(c) = cmd {
        cfg.set_cmd(c);
    }
    for (k, v) in envs {
        cfg.set_env(k, v);
    }
    if let Some(w) = &a.workdir {
        cfg.set_workdir(w);
    }
    if let Some(u) = &a.user {
        cfg.set_user(u);
    }
    for (k, v) in labels {
        cfg.set_label(k, v);
    }
    for p in &a.expose {
        cfg.add_exposed_port(p)?;
    }
    for v in &a.volume {
        cfg.add_volume(v)?;
    }
    if let Some(s) = &a.stop_signal {
        cfg.set_stop_signal(s);
    }
    if let Some(s) = &a.source {
        image.annotate(annotations::SOURCE, s);
    }
    if let Some(r) = &a.revision {
        image.annotate(annotations::REVISION, r);
    }
    for (k, v) in annots {
        image.annotate(k, v);
    }
    let digest = image.write_to_store(&store, tag.as_deref())?;
    if a.json {
        let layer = layer_summary.map(|(d, diff_id)| {
            serde_json::json!({"digest": d.digest, "size": d.size, "mediaType": d.media_type, "diffID": diff_id})
        });
        let out = serde_json::json!({
            "digest": digest,
            "tag": tag,
            "store": store.root(),
            "layer": layer,
            "seconds": started.elapsed().as_secs_f64(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{digest}");
        if let Some(t) = tag {
            eprintln!("tagged {t} in {}", store.root().display());
        }
    }
    Ok(())
}
