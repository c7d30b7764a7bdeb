//! Build steps that run on the build machine (`[source.run] platform =
//! "build"`, BuildKit's `FROM --platform=$BUILDPLATFORM`).
//!
//! In a pass for the build machine's own platform they are ordinary steps.
//! In a pass for another platform, the layers such a step runs over are
//! keyed and built for the build machine, apart from the pass's own layers
//! (a layer such as the base can be in both, once per platform): a
//! cross-compiler runs natively and writes the target's binaries into the
//! step's outputs, with no emulation. The step's key covers the target
//! platform, the build machine's and the keys of that stack.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::build::{Built, below_from, build_waves, needed_layers, stack_keys, step_below};
use super::cache::{LayerCache, StatCache};
use super::debsrc::{DebPlanner, Resolution};
use super::echo::EchoMode;
use super::graph::Graph;
use super::project::{LayerDef, Project, StepPlatform};
use super::report::LayerReport;
use super::source::{Below, Settings};
use crate::digest::Digest;
use crate::error::Result;
use crate::spec::Platform;
use crate::transport::Context;

/// Whether layer `def` is a build step that runs on the build machine.
pub(super) fn on_build_machine(def: &LayerDef) -> bool {
    def.file
        .source
        .run
        .as_ref()
        .is_some_and(|r| r.platform == StepPlatform::Build)
}

/// Whether a pass for `platform` keys and builds such steps' stacks apart
/// (it is not the build machine's platform).
pub(super) fn apart(platform: &Platform) -> bool {
    !Platform::host().matches(platform)
}

/// The build machine's stacks of the steps of one pass that run on it.
pub(super) struct HostStacks<'p> {
    /// The build machine's context (none when no step runs apart).
    ctx: Option<Context>,
    /// The steps that run over these stacks.
    steps: BTreeSet<&'p str>,
    /// The stacks' layers (and what they run over) with their keys for
    /// the build machine.
    keys: BTreeMap<&'p str, Digest>,
    resolutions: BTreeMap<&'p str, Arc<Resolution>>,
    /// Built on first need: a pass whose steps are all cached builds none.
    built: Mutex<Option<BTreeMap<&'p str, Built>>>,
}

impl<'p> HostStacks<'p> {
    /// No step of the pass runs apart.
    pub(super) fn none() -> Self {
        HostStacks {
            ctx: None,
            steps: BTreeSet::new(),
            keys: BTreeMap::new(),
            resolutions: BTreeMap::new(),
            built: Mutex::new(None),
        }
    }

    /// For a pass in `ctx` over the `needed` layers: keys the stacks of
    /// the steps among them that run on the build machine, when `ctx` is
    /// for another platform.
    pub(super) fn key(
        project: &'p Project,
        graph: &Graph<'p>,
        ctx: &Context,
        needed: &BTreeSet<&'p str>,
        (settings, refresh): (Settings, bool),
        stat: &mut StatCache,
    ) -> Result<Self> {
        if !apart(&ctx.platform) {
            return Ok(Self::none());
        }
        let steps: BTreeSet<&'p str> = needed
            .iter()
            .copied()
            .filter(|l| on_build_machine(&project.layers[*l]))
            .collect();
        if steps.is_empty() {
            return Ok(Self::none());
        }
        let host = ctx.for_platform(Platform::host());
        // needed_layers sorts and dedups what the stacks share.
        let stacks: Vec<&'p str> = steps.iter().flat_map(|s| graph.run_stack(s)).collect();
        let wanted = needed_layers(graph, &[], &stacks, &host.platform)?;
        let planner = DebPlanner::new(project, graph, &host, refresh);
        let _span = crate::trace::span("platform", format!("{} (build machine)", host.platform));
        let mut keys = BTreeMap::new();
        let mut resolutions = BTreeMap::new();
        let keyed = super::plan::layer_keys(
            project,
            graph,
            &planner,
            stat,
            settings,
            (&wanted, &Self::none()),
            &|_, _| false,
        )?;
        for (l, key, _) in keyed {
            if let Some(r) = super::source::of(&project.layers[l]).resolution(l, &planner)? {
                resolutions.insert(l, r);
            }
            keys.insert(l, key);
        }
        Ok(HostStacks {
            ctx: Some(host),
            steps,
            keys,
            resolutions,
            built: Mutex::new(None),
        })
    }

    /// Whether `layer` runs over the build machine's stack in this pass.
    pub(super) fn holds(&self, layer: &str) -> bool {
        self.steps.contains(layer)
    }

    /// The keys of what `layer` runs over: the build machine's for a step
    /// that runs on it, else the pass's `keys`.
    pub(super) fn stack_keys(
        &self,
        graph: &Graph<'p>,
        layer: &str,
        keys: &BTreeMap<&str, Digest>,
    ) -> Vec<(&'p str, Digest)> {
        match self.holds(layer) {
            true => stack_keys(graph, layer, &self.keys),
            false => stack_keys(graph, layer, keys),
        }
    }

    /// What `layer` runs over: for a step that runs on the build machine,
    /// its stack built for it (building every such stack on first need,
    /// or taking it from `cache`); else from the pass's `built`.
    pub(super) fn below(
        &self,
        project: &Project,
        graph: &Graph<'p>,
        layer: &str,
        built: &BTreeMap<&str, Built>,
        (cache, settings, echo): (&LayerCache, Settings, EchoMode),
    ) -> Result<Below> {
        if !self.holds(layer) {
            return Ok(step_below(project, graph, layer, built));
        }
        let mut ours = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if ours.is_none() {
            let ctx = self.ctx.as_ref().expect("steps apart have a context");
            let _span = crate::trace::span("platform", format!("{} (build machine)", ctx.platform));
            let mut made = build_waves(
                project,
                graph,
                ctx,
                (&self.keys, &self.resolutions),
                settings,
                (cache, &BTreeMap::new()),
                (echo, &Self::none()),
            )?;
            for b in made.values_mut() {
                b.report.platform = Some(ctx.platform.to_string());
            }
            *ours = Some(made);
        }
        let ours = ours.as_ref().expect("built above");
        Ok(below_from(project, graph, layer, |s| &ours[s].layers))
    }

    /// The plan of the stacks' layers, for a build that runs some of the
    /// steps: each reused when this store has it, else built.
    pub(super) fn plans(
        &self,
        project: &Project,
        graph: &Graph<'p>,
        cache: &LayerCache,
    ) -> Vec<super::plan::LayerPlan> {
        let Some(ctx) = &self.ctx else {
            return Vec::new();
        };
        let steps: Vec<&str> = self.steps.iter().copied().collect();
        let order = graph.order().iter().filter(|l| self.keys.contains_key(*l));
        order
            .map(|&l| {
                let key = self.keys[l].clone();
                let def = &project.layers[l];
                let local = super::source::of(def).never_builds() || cache.get(&key).is_some();
                super::plan::LayerPlan {
                    name: l.to_string(),
                    version: def.file.layer.version.clone(),
                    action: if local { "reuse" } else { "build" },
                    from: local.then_some("local"),
                    reasons: match local {
                        true => Vec::new(),
                        false => vec![format!(
                            "the build machine's {} runs build steps {} over it",
                            ctx.platform,
                            steps.join(", ")
                        )],
                    },
                    packages: Vec::new(),
                    suites: Vec::new(),
                    warnings: Vec::new(),
                    key,
                    platform: Some(ctx.platform.to_string()),
                    shared: false,
                }
            })
            .collect()
    }

    /// What was built for the build machine, for the pass's report.
    pub(super) fn reports(&self, graph: &Graph<'p>) -> Vec<LayerReport> {
        let ours = self.built.lock().unwrap_or_else(|e| e.into_inner());
        let Some(ours) = ours.as_ref() else {
            return Vec::new();
        };
        graph
            .order()
            .iter()
            .filter_map(|l| ours.get(l))
            .map(|b| b.report.clone())
            .collect()
    }
}
