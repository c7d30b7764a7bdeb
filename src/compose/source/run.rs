//! `[source.run]`: a build step (see [`crate::compose::step`] for how it
//! runs and is captured).

use std::sync::Arc;

use super::{
    BuildCx, Content, Inputs, KeyCx, LayerSource, Made, RunsOver, entry_fingerprint, finish,
    key_slot, put,
};
use crate::compose::debsrc::DebPlanner;
use crate::compose::echo::Echo;
use crate::compose::project::{LayerDef, NetworkMode, RunSource, StepPlatform};
use crate::compose::step;
use crate::digest::{Digest, Hasher};
use crate::error::Result;
use crate::layer::collect;
use crate::transport::Context;

/// A build-step layer.
pub(super) struct Run<'a>(pub(super) &'a RunSource);

impl LayerSource for Run<'_> {
    /// The step format, the platform, the keys beneath in order and the
    /// content of the inputs (the definition is in the common prefix).
    fn key(
        &self,
        def: &LayerDef,
        cx: &mut KeyCx<'_, '_>,
        mut h: Hasher,
        mut inputs: Inputs,
    ) -> Result<(Digest, Option<Inputs>)> {
        put(
            &mut h,
            format!("strata-step-format-{}", step::STEP_FORMAT).as_bytes(),
        );
        // The platform it runs for: the host's, or the one of this pass of
        // a multi-platform build.
        let platform = cx.ctx.platform.to_string();
        put(&mut h, platform.as_bytes());
        inputs
            .settings
            .push_str(&format!(", step format {}, {platform}", step::STEP_FORMAT));
        // A step on the build machine: which machine that is (the keys
        // beneath are of its own build of the stack).
        if self.0.platform == StepPlatform::Build {
            let build = step::Platforms::of(self.0, &cx.ctx.platform).build;
            put(&mut h, format!("build-platform {build}").as_bytes());
            inputs.settings.push_str(&format!(", run on {build}"));
        }
        for (name, key) in cx.below {
            put(&mut h, name.as_bytes());
            put(&mut h, key.hex().as_bytes());
            inputs
                .files
                .insert(format!("layer {name} beneath"), key.to_string());
        }
        let slot = key_slot(def);
        for e in collect(&step::input_mappings(def, self.0)?, false)? {
            put(&mut h, &e.path);
            put(&mut h, &e.mode.to_le_bytes());
            let fingerprint = entry_fingerprint(cx.stat, &slot, &e)?;
            put(&mut h, fingerprint.as_bytes());
            inputs.files.insert(
                format!("input /{}", String::from_utf8_lossy(&e.path)),
                format!("{fingerprint} {:o}", e.mode),
            );
        }
        Ok(finish(h, inputs, cx))
    }

    fn build(&self, def: &LayerDef, cx: BuildCx<'_>) -> Result<Made> {
        if let Some(layers) = self.cached(def, &cx) {
            return Ok(Made::cached(layers));
        }
        let platforms = step::Platforms::of(self.0, &cx.ctx.platform);
        crate::sandbox::foreign::check_platform(&platforms.build).map_err(|e| {
            crate::error::Error::invalid("build step", format!("layer {}", cx.name), e.to_string())
        })?;
        let builder = cx.builder(def, format!("run:layers/{}/layer.toml", cx.name));
        let echo = Echo::new(cx.name, cx.echo);
        let scx = step::StepContext {
            name: cx.name,
            key: cx.key,
            store: &cx.ctx.store,
            lowers: cx.below.layers.clone(),
            lower_env: cx.below.env.clone(),
            epoch: cx.settings.epoch,
            platforms,
            builder,
            echo: &echo,
        };
        cx.progress().phase("running", None);
        let layer = step::build(def, self.0, &scx)?;
        cx.remember(cx.key, &layer)?;
        Ok(Made {
            output: echo.into_lines(),
            log: Some(step::log_path(&cx.ctx.store, cx.key)),
            ..Made::built(Arc::new(layer))
        })
    }

    /// Not known before the commands run.
    fn contents(
        &self,
        _def: &LayerDef,
        _ctx: &Context,
        _deb: &DebPlanner<'_>,
        _visit: &mut dyn FnMut(Content<'_>) -> Result<()>,
    ) -> Result<bool> {
        Ok(false)
    }

    fn runs_over(&self) -> RunsOver {
        RunsOver::BuildStack
    }

    fn reads(&self) -> Vec<&str> {
        self.0.inputs.iter().map(|i| i.from.as_str()).collect()
    }

    /// What a step with network access downloads is not in its key.
    fn plan_warnings(&self, def: &LayerDef) -> Vec<String> {
        if self.0.network != NetworkMode::Host {
            return Vec::new();
        }
        vec![format!(
            "the build step of {} has network access: what it downloads is not part of its key (pin versions in its commands)",
            def.file.layer.name
        )]
    }
}
