//! `strata index` and the multi-platform side of `strata copy`.

use anyhow::{Result, bail};
use clap::Args;
use strata::image::{ImageIndex, IndexBuilder, platform_of};
use strata::transport::{self, ImageRef};

use super::Ctx;

#[derive(Args)]
#[command(after_help = "\
Each image goes into the index for the platform its config names (os,
architecture, variant); a platform given twice is an error. The index is
tagged in the store only after every image is stored.

Examples:
  strata new --platform linux/arm64 --add ./arm64/app:/app --tag app:arm64
  strata new --platform linux/amd64 --add ./amd64/app:/app --tag app:amd64
  strata index app:1.0 app:amd64 app:arm64
  strata copy --all app:1.0 docker://registry.example.com/team/app:1.0")]
pub struct IndexArgs {
    /// Store tag of the index to write (NAME[:TAG]).
    tag: String,
    /// Single-platform images to put in it (any transport).
    #[arg(required = true)]
    images: Vec<String>,
    /// Print {digest, manifests: [{platform, digest, size}]} as JSON.
    #[arg(long)]
    json: bool,
}

/// Makes a multi-platform image in the store from single-platform images.
pub fn index(ctx: &Ctx, a: IndexArgs) -> Result<()> {
    let t = ctx.transport(&None)?;
    let mut b = IndexBuilder::new();
    for r in &a.images {
        let r = ImageRef::parse(r)?;
        if transport::open_index(&r, &t)?.is_some() {
            bail!("{r} is already a multi-platform image; give single-platform images");
        }
        let image = transport::open(&r, &t)?;
        b.add(platform_of(image.as_ref())?, image);
    }
    let built = b.build()?;
    let dst = ImageRef::parse(&a.tag)?;
    if !matches!(dst, ImageRef::Store(_)) {
        bail!("{dst}: give a store tag (NAME[:TAG]); strata copy --all writes it elsewhere");
    }
    let written = transport::write_index(&built, &dst, &t)?;
    if a.json {
        let manifests = manifests(&built)?;
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"digest": written.digest, "manifests": manifests})
            )?
        );
    } else {
        println!("{}", written.digest);
    }
    Ok(())
}

/// `strata copy --all`: every platform of an index. `Ok(None)` when the
/// source is a single image (copied as one).
pub fn copy_all(
    src: &ImageRef,
    dst: &ImageRef,
    t: &transport::Context,
) -> Result<Option<transport::Written>> {
    let Some(index) = transport::open_index(src, t)? else {
        return Ok(None);
    };
    if matches!(
        dst,
        ImageRef::DockerArchive { .. } | ImageRef::DockerDaemon(_)
    ) {
        bail!(
            "{dst} holds one platform; {src} has {}: copy one with --platform instead of --all",
            platforms(index.as_ref())?
        );
    }
    Ok(Some(transport::write_index(index.as_ref(), dst, t)?))
}

/// When copying one platform of an index into a format that holds one,
/// what to say (the platforms left out).
pub fn narrowing_note(src: &ImageRef, t: &transport::Context) -> Result<Option<String>> {
    let Some(index) = transport::open_index(src, t)? else {
        return Ok(None);
    };
    Ok(Some(format!(
        "{src} is a multi-platform image ({}); copied {} only",
        platforms(index.as_ref())?,
        t.platform
    )))
}

fn platforms(index: &dyn ImageIndex) -> Result<String> {
    Ok(index
        .images()?
        .iter()
        .filter_map(|(d, _)| d.platform.as_ref().map(|p| p.to_string()))
        .collect::<Vec<_>>()
        .join(", "))
}

/// For `inspect`: the index `r` names, as {digest, manifests: [{platform,
/// digest, size}]}, or null for a single image.
pub fn describe(r: &ImageRef, t: &transport::Context) -> Result<serde_json::Value> {
    let Some(index) = transport::open_index(r, t)? else {
        return Ok(serde_json::Value::Null);
    };
    let manifests = manifests(index.as_ref())?;
    Ok(serde_json::json!({"digest": index.digest()?, "manifests": manifests}))
}

/// An index's manifests as `[{platform, digest, size}]`.
fn manifests(index: &dyn ImageIndex) -> Result<Vec<serde_json::Value>> {
    Ok(index
        .images()?
        .iter()
        .map(|(d, _)| {
            serde_json::json!({
                "platform": d.platform.as_ref().map(|p| p.to_string()),
                "digest": d.digest,
                "size": d.size,
            })
        })
        .collect())
}
