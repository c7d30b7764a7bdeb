//! `strata copy`, `inspect`, `ls`, `validate`, `tag`.

use std::io::Write;

use anyhow::{Result, bail};
use clap::Args;
use strata::transport::{self, ImageRef};

use super::{Ctx, human};

#[derive(Args)]
#[command(after_help = "\
Transports: NAME[:TAG] (store), oci:DIR[:TAG], oci-archive:FILE[:TAG],
docker-archive:FILE[:NAME:TAG] (reading also :@N), docker://HOST[:PORT]/REPO[:TAG|@DIGEST],
docker-daemon:NAME[:TAG] (the Docker Engine on DOCKER_HOST=unix://PATH or
/var/run/docker.sock; reading also docker-daemon:sha256:ID). Writing to
docker-daemon: sends only the layers the engine lacks.

Examples:
  strata copy app:1.0 oci:./out/layout:1.0
  strata copy app:1.0 docker-daemon:app:1.0
  strata copy docker-daemon:debian:bookworm base:bookworm
  strata copy app:1.0 docker-archive:app.tar:app:1.0
  strata copy oci-archive:base.tar base:latest
  strata copy app:1.0 docker://registry.example.com/team/app:1.0
  strata copy docker://localhost:5000/app:1.0 app:1.0 --platform linux/arm64
  strata copy --all docker://localhost:5000/app:1.0 oci-archive:app.tar:1.0")]
pub struct CopyArgs {
    /// Image to read.
    src: String,
    /// Where to write it.
    dst: String,
    /// Platform to pick from a multi-platform source.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", conflicts_with = "all")]
    platform: Option<String>,
    /// Copy every platform of a multi-platform source (the whole index), as
    /// skopeo's --all; without it, the host's platform (or --platform).
    #[arg(long)]
    all: bool,
    /// Print a JSON summary: the digest; pushing to a registry, blobs
    /// pushed, skipped, mounted, bytes, seconds ("push"); writing into the
    /// store, blobs fetched, already present, bytes, seconds ("pull");
    /// loading into docker-daemon:, layers sent and already there, bytes,
    /// seconds ("load").
    #[arg(long)]
    json: bool,
}

pub fn copy(ctx: &Ctx, a: CopyArgs) -> Result<()> {
    let src = ImageRef::parse(&a.src)?;
    let dst = ImageRef::parse(&a.dst)?;
    let t = ctx.transport(&a.platform)?;
    let all = if a.all {
        super::index::copy_all(&src, &dst, &t)?
    } else {
        None
    };
    let written = match all {
        Some(w) => w,
        None => {
            if matches!(
                dst,
                ImageRef::DockerArchive { .. } | ImageRef::DockerDaemon(_)
            ) && let Some(note) = super::index::narrowing_note(&src, &t)?
            {
                eprintln!("note: {note}; {dst} holds one platform");
            }
            let image = transport::open(&src, &t)?;
            transport::write(image.as_ref(), &dst, &t)?
        }
    };
    for w in written.push.iter().flat_map(|p| &p.warnings) {
        eprintln!("warning: {w}");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&written)?);
    } else {
        println!("{}", written.digest);
        if let Some(p) = &written.push {
            eprintln!(
                "pushed {} blobs ({} bytes), skipped {}, mounted {} in {:.2}s",
                p.pushed, p.bytes, p.skipped, p.mounted, p.seconds
            );
        }
        if let Some(l) = &written.load {
            eprintln!(
                "loaded into docker in {:.2}s: {}",
                l.seconds,
                transport::daemon::describe_load(l)
            );
        }
        if let (Some(p), ImageRef::Registry(_)) = (&written.pull, &src) {
            eprintln!(
                "fetched {} blobs ({} bytes), {} already in the store, in {:.2}s",
                p.fetched, p.bytes, p.present, p.seconds
            );
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct InspectArgs {
    /// Image to inspect.
    reference: String,
    /// Print JSON: {digest, manifest, config, layers}.
    #[arg(long)]
    json: bool,
    /// Platform to pick from a multi-platform image.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
}

pub fn inspect(ctx: &Ctx, a: InspectArgs) -> Result<()> {
    let r = ImageRef::parse(&a.reference)?;
    let image = transport::open(&r, &ctx.transport(&a.platform)?)?;
    let manifest = image.manifest()?;
    let config = image.config()?;
    let layers = image.layers()?;
    let digest = image.digest()?;
    let index = super::index::describe(&r, &ctx.transport(&a.platform)?)?;
    if a.json {
        let layer_json: Vec<_> = layers
            .iter()
            .map(|l| {
                let d = l.descriptor();
                serde_json::json!({
                    "digest": d.digest, "size": d.size, "mediaType": d.media_type,
                    "diffID": l.diff_id(), "annotations": d.annotations,
                })
            })
            .collect();
        let out = serde_json::json!({
            "reference": r.to_string(),
            "digest": digest,
            "manifest": serde_json::from_slice::<serde_json::Value>(&image.raw_manifest()?)?,
            "config": serde_json::from_slice::<serde_json::Value>(&image.raw_config()?)?,
            "layers": layer_json,
            "index": index,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let mut o = std::io::stdout().lock();
    let total: u64 = layers.iter().map(|l| l.descriptor().size).sum();
    writeln!(o, "Reference:  {r}")?;
    if !index.is_null() {
        let i = &index;
        writeln!(
            o,
            "Index:      {} ({} platforms)",
            i["digest"].as_str().unwrap_or(""),
            i["manifests"].as_array().map_or(0, Vec::len)
        )?;
        for m in i["manifests"].as_array().into_iter().flatten() {
            writeln!(
                o,
                "  {:<20} {}",
                m["platform"].as_str().unwrap_or("?"),
                m["digest"].as_str().unwrap_or("")
            )?;
        }
        writeln!(o, "Showing:    {}", config.platform())?;
    }
    writeln!(o, "Digest:     {digest}")?;
    writeln!(o, "MediaType:  {}", manifest.media_type())?;
    writeln!(o, "Platform:   {}", config.platform())?;
    writeln!(
        o,
        "Config:     {} ({} bytes)",
        manifest.config.digest, manifest.config.size
    )?;
    writeln!(o, "Size:       {} in {} layers", human(total), layers.len())?;
    if let Some(e) = config.entrypoint() {
        writeln!(o, "Entrypoint: {}", serde_json::to_string(&e)?)?;
    }
    if let Some(c) = config.cmd() {
        writeln!(o, "Cmd:        {}", serde_json::to_string(&c)?)?;
    }
    for (k, label) in [
        ("WorkingDir", "Workdir:   "),
        ("User", "User:      "),
        ("StopSignal", "StopSignal:"),
    ] {
        if let Some(v) = config.field(k) {
            writeln!(o, "{label} {v}")?;
        }
    }
    for e in config.env() {
        writeln!(o, "Env:        {e}")?;
    }
    for p in config.keys("ExposedPorts") {
        writeln!(o, "Expose:     {p}")?;
    }
    for v in config.keys("Volumes") {
        writeln!(o, "Volume:     {v}")?;
    }
    for (k, v) in config.labels() {
        writeln!(o, "Label:      {k}={v}")?;
    }
    for (k, v) in &manifest.annotations {
        writeln!(o, "Annotation: {k}={v}")?;
    }
    writeln!(o, "Layers:")?;
    for (i, l) in layers.iter().enumerate() {
        let d = l.descriptor();
        writeln!(
            o,
            "  {i:>2}  {}  {:>10}  {}",
            d.digest,
            human(d.size),
            d.media_type
        )?;
        writeln!(o, "      diff_id {}", l.diff_id())?;
        for (k, v) in &d.annotations {
            writeln!(o, "      {k}={v}")?;
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct LsArgs {
    /// Image whose layers to list.
    reference: String,
    /// Only this layer (0 is the base).
    #[arg(long, value_name = "N")]
    layer: Option<usize>,
    /// Platform to pick from a multi-platform image.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// One JSON object per entry and line (layer, path, type, mode, uid,
    /// gid, size, link), with names exactly as stored; the human listing
    /// escapes control characters instead.
    #[arg(long)]
    json: bool,
}

/// One entry of `ls`, as a line of text or of JSON.
fn ls_line(
    json: bool,
    layer: &strata::Digest,
    name: &str,
    entry_header: &tar::Header,
    size: u64,
    link: Option<&[u8]>,
) -> String {
    let kind = entry_header.entry_type();
    let mode = entry_header.mode().unwrap_or(0);
    let (uid, gid) = (
        entry_header.uid().unwrap_or(0),
        entry_header.gid().unwrap_or(0),
    );
    if json {
        return serde_json::json!({
            "layer": layer.to_string(),
            "path": format!("/{name}"),
            "type": type_char(kind).to_string(),
            "mode": format!("{:04o}", mode & 0o7777),
            "uid": uid,
            "gid": gid,
            "size": size,
            "link": link.map(|t| String::from_utf8_lossy(t).into_owned()),
        })
        .to_string();
    }
    let link = link
        .map(|t| format!(" -> {}", strata::text::escape_bytes(t)))
        .unwrap_or_default();
    format!(
        "{} {uid:>5}/{gid:<5} {size:>10} /{}{link}",
        mode_string(kind, mode),
        strata::text::escape(name),
    )
}

/// An entry's type as `ls -l` writes it (`h` for a hardlink).
fn type_char(kind: tar::EntryType) -> char {
    match kind {
        tar::EntryType::Directory => 'd',
        tar::EntryType::Symlink => 'l',
        tar::EntryType::Link => 'h',
        _ => '-',
    }
}

fn mode_string(kind: tar::EntryType, mode: u32) -> String {
    let mut s = String::from(type_char(kind));
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (bit, c)) in bits.iter().enumerate() {
        let set = mode & bit != 0;
        let special = match i {
            2 => mode & 0o4000 != 0,
            5 => mode & 0o2000 != 0,
            8 => mode & 0o1000 != 0,
            _ => false,
        };
        s.push(match (set, special, i) {
            (true, true, 8) => 't',
            (false, true, 8) => 'T',
            (true, true, _) => 's',
            (false, true, _) => 'S',
            (true, false, _) => *c,
            _ => '-',
        });
    }
    s
}

pub fn ls(ctx: &Ctx, a: LsArgs) -> Result<()> {
    let r = ImageRef::parse(&a.reference)?;
    let image = transport::open(&r, &ctx.transport(&a.platform)?)?;
    let layers = image.layers()?;
    if let Some(n) = a.layer
        && n >= layers.len()
    {
        bail!(
            "--layer {n}: {r} has {} layers (0 to {})",
            layers.len(),
            layers.len().saturating_sub(1)
        );
    }
    let mut o = std::io::stdout().lock();
    for (i, l) in layers.iter().enumerate() {
        if a.layer.is_some_and(|n| n != i) {
            continue;
        }
        let d = l.descriptor();
        if !a.json {
            writeln!(o, "# layer {i} {}", d.digest)?;
        }
        let label = std::path::PathBuf::from(format!("layer {}", d.digest));
        // Read to the very end, through the digest, size and diff_id
        // checks, so a swapped blob fails instead of being listed.
        let mut blob = std::io::BufReader::new(strata::digest::VerifyingReader::new(
            l.open()?,
            d.digest.clone(),
            Some(d.size),
            format!("layer {} of {r}", d.digest),
        ));
        {
            let dec = strata::layer::decompress(&mut blob)
                .map_err(|e| strata::Error::from_pipeline(&label, e))?;
            let dec = strata::digest::VerifyingReader::new(
                dec,
                l.diff_id(),
                None,
                format!("uncompressed layer {} (diff_id)", d.digest),
            );
            // A write error is stdout's own (a closed pipe ends quietly):
            // kept as it is, not wrapped.
            let mut write_err = None;
            let listed = strata::tarsafe::for_each_entry(&label, dec, |name, entry| {
                let link = entry.link_name_bytes();
                let line = ls_line(
                    a.json,
                    &d.digest,
                    name,
                    entry.header(),
                    entry.size(),
                    link.as_deref(),
                );
                writeln!(o, "{line}").map_err(|e| {
                    write_err = Some(e);
                    strata::Error::Unsupported("stdout closed".into())
                })
            });
            if let Some(e) = write_err {
                return Err(e.into());
            }
            listed?;
        }
        std::io::copy(&mut blob, &mut std::io::sink())
            .map_err(|e| strata::Error::from_pipeline(&label, e))?;
    }
    Ok(())
}

#[derive(Args)]
pub struct ValidateArgs {
    /// Image to check.
    reference: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Platform to pick from a multi-platform image.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
}

pub fn validate(ctx: &Ctx, a: ValidateArgs) -> Result<()> {
    let r = ImageRef::parse(&a.reference)?;
    let image = transport::open(&r, &ctx.transport(&a.platform)?)?;
    let report = strata::validate::validate(image.as_ref())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for p in &report.problems {
            println!("problem: {p}");
        }
        println!(
            "{}: {} layers checked, {}",
            report.manifest_digest,
            report.layers.len(),
            if report.is_ok() {
                "all digests, diff_ids and sizes match".to_string()
            } else {
                format!("{} problems", report.problems.len())
            }
        );
    }
    if !report.is_ok() {
        bail!("{r} failed validation");
    }
    Ok(())
}

#[derive(Args)]
pub struct TagArgs {
    /// Image to tag (any transport).
    src: String,
    /// Store name NAME[:TAG].
    name: String,
}

pub fn tag(ctx: &Ctx, a: TagArgs) -> Result<()> {
    let src = ImageRef::parse(&a.src)?;
    let name = strata::reference::normalize_name(&a.name)?;
    let t = ctx.transport(&None)?;
    let image = transport::open(&src, &t)?;
    let digest = transport::oci::write_image(image.as_ref(), &t.store, Some(&name))?;
    println!("{digest}");
    Ok(())
}
