//! Assembles a project image from its built layers: the base, each layer
//! with its env and labels, the dpkg status layer, the image's own config.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::build::Built;
use super::cache::LayerCache;
use super::debsrc::Resolution;
use super::project::Project;
use super::vars::expand;
use crate::error::Result;
use crate::image::ImageBuilder;
use crate::layer::Compression;
use crate::transport::{self, Context};

/// Composes image `name` from its built layers: base, layers in order
/// with their env and labels, the dpkg status layer, the image's own
/// config. Nothing is tagged.
#[allow(clippy::too_many_arguments)]
pub(super) fn compose_image(
    project: &Project,
    ctx: &Context,
    name: &str,
    layers: &[&str],
    built: &BTreeMap<&str, Built>,
    resolutions: &BTreeMap<&str, Arc<Resolution>>,
    cache: &LayerCache,
    compression: Compression,
    epoch: u64,
    fetch_base: bool,
) -> Result<ImageBuilder> {
    let spec = &project.file.images[name];
    let base = match project.base_ref(name)? {
        None => None,
        Some(r) => Some(transport::open(&r, ctx)?),
    };
    let mut image = match &base {
        None => ImageBuilder::scratch(spec.platform_in(&project.file.defaults, &ctx.platform)?),
        Some(base) => {
            if fetch_base {
                transport::oci::copy_layers(base.as_ref(), &ctx.store)?;
            }
            ImageBuilder::from_base(base.as_ref(), &spec.base)?
        }
    };
    image.created(epoch);
    for l in layers {
        let def = &project.layers[*l];
        for layer in &built[l].layers {
            image.append_layer(
                Arc::clone(layer),
                &format!("strata build: layer {}", def.label()),
            );
        }
        let cfg = image.config_mut();
        for (k, v) in &def.file.env {
            let value = expand(v, &cfg.env());
            cfg.set_env(k, &value);
        }
        for (k, v) in &def.file.labels {
            cfg.set_label(k, v);
        }
    }
    let debs: Vec<&Resolution> = layers
        .iter()
        .filter_map(|l| resolutions.get(l).map(|r| r.as_ref()))
        .collect();
    if !debs.is_empty()
        && let Some(status) =
            super::debsrc::status_layer(ctx, cache, base.as_deref(), &debs, compression, epoch)?
    {
        image.append_layer(
            Arc::new(status),
            "strata build: dpkg database (/var/lib/dpkg/status)",
        );
    }
    let cfg = image.config_mut();
    for (k, v) in &spec.env {
        let value = expand(v, &cfg.env());
        cfg.set_env(k, &value);
    }
    if let Some(e) = &spec.entrypoint {
        cfg.set_entrypoint(e.clone());
    }
    if let Some(c) = &spec.cmd {
        cfg.set_cmd(c.clone());
    }
    if let Some(w) = &spec.workdir {
        cfg.set_workdir(w);
    }
    if let Some(u) = &spec.user {
        cfg.set_user(u);
    }
    for p in &spec.ports {
        cfg.add_exposed_port(p)?;
    }
    for v in &spec.volumes {
        cfg.add_volume(v)?;
    }
    for (k, v) in &spec.labels {
        cfg.set_label(k, v);
    }
    for (k, v) in &spec.annotations {
        image.annotate(k, v);
    }
    Ok(image)
}
