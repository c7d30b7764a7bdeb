//! The layer graph: references, cycles, deterministic order, and which
//! layers an image is composed of.
//!
//! Edges point from a layer to the layers it needs beneath it: its
//! `[requires]` (to build) and `[runtime]` (to run) layers. A `runtime`
//! image follows `runtime` edges from its top layers; a `builder` image
//! follows both (a build environment must also run what it builds with).
//! Order is topological, dependencies first, ties broken by name.

use std::collections::{BTreeMap, BTreeSet};

use super::project::{ImageKind, LayerDef, Project};
use crate::error::{Error, Result};

/// Resolves a `name[@version]` reference made in `location`.
pub fn resolve<'p>(
    project: &'p Project,
    reference: &str,
    location: &str,
) -> Result<(&'p str, &'p LayerDef)> {
    let (name, pin) = match reference.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (reference, None),
    };
    let Some((key, def)) = project.layers.get_key_value(name) else {
        let hint = match did_you_mean(name, project.layers.keys().map(String::as_str)) {
            Some(s) => format!(" (did you mean {s:?}?)"),
            None if project.layers.is_empty() => {
                " (the project has no layers/NAME/layer.toml)".into()
            }
            None => format!(
                " (layers: {})",
                project
                    .layers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(Error::NotFound {
            what: format!("layer {name:?}"),
            location: location.to_string(),
            hint,
        });
    };
    if let Some(v) = pin
        && def.file.layer.version.as_deref() != Some(v)
    {
        return Err(Error::invalid(
            "layer reference",
            location,
            format!(
                "{reference} pins version {v}, but {} says {}",
                def.rel,
                def.file.layer.version.as_deref().unwrap_or("no version")
            ),
        ));
    }
    Ok((key.as_str(), def))
}

/// The closest name within edit distance 2, if any.
pub fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= 2.max(name.len() / 4) || c.starts_with(name) || name.starts_with(c))
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The graph of a project, checked: every reference resolves and there is
/// no cycle.
pub struct Graph<'p> {
    project: &'p Project,
    /// layer → (requires, runtime), resolved names.
    edges: BTreeMap<&'p str, (Vec<&'p str>, Vec<&'p str>)>,
    order: Vec<&'p str>,
}

impl<'p> Graph<'p> {
    /// The project this graph is of.
    pub fn project(&self) -> &'p Project {
        self.project
    }

    /// Resolves every reference and orders the layers.
    pub fn new(project: &'p Project) -> Result<Self> {
        let mut edges = BTreeMap::new();
        for (name, def) in &project.layers {
            let mut req = Vec::new();
            for r in &def.file.requires.layers {
                req.push(resolve(project, r, &format!("{} key requires.layers", def.rel))?.0);
            }
            let mut run = Vec::new();
            for r in &def.file.runtime.layers {
                run.push(resolve(project, r, &format!("{} key runtime.layers", def.rel))?.0);
            }
            edges.insert(name.as_str(), (req, run));
        }
        let mut g = Graph {
            project,
            edges,
            order: Vec::new(),
        };
        g.order = g.topo()?;
        Ok(g)
    }

    fn deps(&self, n: &str) -> impl Iterator<Item = &'p str> + '_ {
        let (a, b) = &self.edges[n];
        a.iter().chain(b.iter()).copied()
    }

    fn topo(&self) -> Result<Vec<&'p str>> {
        // Kahn's algorithm over "needs" edges, smallest name first.
        let mut needed_by: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut pending: BTreeMap<&str, usize> = BTreeMap::new();
        for &n in self.edges.keys() {
            let deps: BTreeSet<&str> = self.deps(n).collect();
            pending.insert(n, deps.len());
            for d in deps {
                needed_by.entry(d).or_default().insert(n);
            }
        }
        let mut ready: BTreeSet<&str> = pending
            .iter()
            .filter(|(_, c)| **c == 0)
            .map(|(n, _)| *n)
            .collect();
        let mut order = Vec::new();
        while let Some(n) = ready.pop_first() {
            order.push(n);
            for &m in needed_by.get(n).into_iter().flatten() {
                let c = pending.get_mut(m).expect("known");
                *c -= 1;
                if *c == 0 {
                    ready.insert(m);
                }
            }
        }
        if order.len() < self.edges.len() {
            let placed: BTreeSet<&str> = order.iter().copied().collect();
            let start = self
                .edges
                .keys()
                .find(|n| !placed.contains(*n))
                .expect("some node left");
            return Err(Error::invalid(
                "layer graph",
                "layers/*/layer.toml",
                format!("dependency cycle: {}", self.cycle_from(start, &placed)),
            ));
        }
        Ok(order)
    }

    /// Walks unplaced dependencies from `start` until a node repeats.
    fn cycle_from(&self, start: &'p str, placed: &BTreeSet<&str>) -> String {
        let mut path = vec![start];
        let mut cur = start;
        loop {
            let next = self
                .deps(cur)
                .filter(|d| !placed.contains(d))
                .min()
                .expect("an unplaced node has an unplaced dependency");
            if let Some(i) = path.iter().position(|p| *p == next) {
                let mut cycle: Vec<&str> = path[i..].to_vec();
                cycle.push(next);
                return cycle.join(" -> ");
            }
            path.push(next);
            cur = next;
        }
    }

    /// Every layer, dependencies first.
    pub fn order(&self) -> &[&'p str] {
        &self.order
    }

    /// The layers grouped in dependency waves: a layer's wave is one more
    /// than the deepest of its dependencies'; wave 0 needs nothing.
    pub fn waves(&self) -> Vec<Vec<&'p str>> {
        let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
        for &n in &self.order {
            let d = self.deps(n).map(|d| depth[d] + 1).max().unwrap_or(0);
            depth.insert(n, d);
        }
        let mut waves: Vec<Vec<&'p str>> = Vec::new();
        for &n in &self.order {
            let d = depth[n];
            if waves.len() <= d {
                waves.resize(d + 1, Vec::new());
            }
            waves[d].push(n);
        }
        waves
    }

    /// The direct (requires, runtime) dependencies of a layer.
    pub fn edges(&self, layer: &str) -> (&[&'p str], &[&'p str]) {
        let (a, b) = &self.edges[layer];
        (a, b)
    }

    /// The layers a build step of `layer` runs over, base first: its
    /// `[requires]` layers, each with its `[runtime]` layers, transitively.
    pub fn build_stack(&self, layer: &str) -> Vec<&'p str> {
        self.runtime_closure(self.edges[layer].0.clone())
    }

    /// The layers `layer` runs something over, base first: a build step's
    /// [`build_stack`](Self::build_stack); for a deb layer with `configure`,
    /// its `[requires]` and `[runtime]` layers with their `[runtime]`
    /// layers (where its packages' dependencies are); empty otherwise.
    pub fn run_stack(&self, layer: &str) -> Vec<&'p str> {
        use super::source::RunsOver;
        match super::source::of(&self.project.layers[layer]).runs_over() {
            RunsOver::BuildStack => self.build_stack(layer),
            RunsOver::Closure => {
                let (r, t) = &self.edges[layer];
                self.runtime_closure(r.iter().chain(t).copied().collect())
            }
            RunsOver::Nothing => Vec::new(),
        }
    }

    /// What a test of `layer` runs over, base first: its `[runtime]`
    /// layers, transitively, and the layer itself.
    pub fn runtime_stack(&self, layer: &'p str) -> Vec<&'p str> {
        self.runtime_closure(vec![layer])
    }

    /// `start` and the `[runtime]` layers of each, transitively, in graph
    /// order.
    fn runtime_closure(&self, start: Vec<&'p str>) -> Vec<&'p str> {
        let mut want: BTreeSet<&str> = BTreeSet::new();
        let mut stack = start;
        while let Some(n) = stack.pop() {
            if want.insert(n) {
                stack.extend(self.edges[n].1.iter().copied());
            }
        }
        self.order
            .iter()
            .copied()
            .filter(|n| want.contains(n))
            .collect()
    }

    /// `layers` and everything their build steps (and deb layers'
    /// maintainer scripts) run over, transitively:
    /// what a build of them must key and build, dependencies first.
    pub fn with_step_stacks(&self, layers: &[&'p str]) -> Vec<&'p str> {
        self.with_step_stacks_but(layers, |_| false)
    }

    /// [`with_step_stacks`](Self::with_step_stacks), but not what the
    /// layers `apart` picks run over (build steps that run over the build
    /// machine's own build of their stacks).
    pub fn with_step_stacks_but(
        &self,
        layers: &[&'p str],
        apart: impl Fn(&str) -> bool,
    ) -> Vec<&'p str> {
        let mut want: BTreeSet<&str> = layers.iter().copied().collect();
        let mut todo: Vec<&'p str> = layers.to_vec();
        while let Some(n) = todo.pop() {
            if apart(n) {
                continue;
            }
            for s in self.run_stack(n) {
                if want.insert(s) {
                    todo.push(s);
                }
            }
        }
        self.order
            .iter()
            .copied()
            .filter(|n| want.contains(n))
            .collect()
    }

    /// The layers of image `name`, base first.
    pub fn image_layers(&self, name: &str) -> Result<Vec<&'p str>> {
        let spec = self
            .project
            .file
            .images
            .get(name)
            .ok_or_else(|| Error::NotFound {
                what: format!("image {name:?}"),
                location: "strata.toml".into(),
                hint: match did_you_mean(name, self.project.file.images.keys().map(String::as_str))
                {
                    Some(s) => format!(" (did you mean {s:?}?)"),
                    None => format!(
                        " (images: {})",
                        self.project
                            .file
                            .images
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            })?;
        // Depth first from the listed layers in their listed order, each
        // layer after what it needs ([requires] for builders, then
        // [runtime], in the order layer.toml lists them): the listed order
        // breaks every tie the graph leaves open.
        let mut out = Vec::new();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for r in &spec.layers {
            let (n, _) = resolve(
                self.project,
                r,
                &format!("strata.toml key images.{name}.layers"),
            )?;
            self.visit(n, spec.kind, &mut seen, &mut out);
        }
        Ok(out)
    }

    /// Adds `n` to `out` after the layers it needs (post-order; the graph
    /// has no cycle, checked when it was made).
    fn visit(
        &self,
        n: &'p str,
        kind: ImageKind,
        seen: &mut BTreeSet<&'p str>,
        out: &mut Vec<&'p str>,
    ) {
        if !seen.insert(n) {
            return;
        }
        let (req, run) = &self.edges[n];
        let deps = match kind {
            ImageKind::Builder => req.iter().chain(run.iter()),
            ImageKind::Runtime => [].iter().chain(run.iter()),
        };
        for d in deps {
            self.visit(d, kind, seen, out);
        }
        out.push(n);
    }

    /// A text tree of what needs what, from the layers nothing needs.
    pub fn tree(&self) -> String {
        let needed: BTreeSet<&str> = self.edges.keys().flat_map(|n| self.deps(n)).collect();
        let mut out = String::new();
        for root in self.edges.keys().filter(|n| !needed.contains(*n)) {
            self.tree_node(root, "", "", true, true, &mut out);
        }
        out
    }

    fn tree_node(
        &self,
        n: &'p str,
        label: &str,
        prefix: &str,
        last: bool,
        top: bool,
        out: &mut String,
    ) {
        let name = self.project.layers[n].label();
        if top {
            out.push_str(&format!("{name}\n"));
        } else {
            out.push_str(&format!(
                "{prefix}{}{name} ({label})\n",
                if last { "└── " } else { "├── " }
            ));
        }
        let (req, run) = &self.edges[n];
        // One line per dependency, labelled with how it is needed.
        let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for d in req {
            children.entry(d).or_default().push("requires");
        }
        for d in run {
            children.entry(d).or_default().push("runtime");
        }
        let child_prefix = if top {
            String::new()
        } else {
            format!("{prefix}{}", if last { "    " } else { "│   " })
        };
        let count = children.len();
        for (i, (c, kinds)) in children.into_iter().enumerate() {
            self.tree_node(
                c,
                &kinds.join(", "),
                &child_prefix,
                i + 1 == count,
                false,
                out,
            );
        }
    }

    /// Graphviz: solid edges for requires, dashed for runtime.
    pub fn dot(&self) -> String {
        let mut out = String::from("digraph layers {\n  rankdir=BT;\n");
        for n in &self.order {
            out.push_str(&format!("  \"{n}\";\n"));
        }
        for (n, (req, run)) in &self.edges {
            for d in req {
                out.push_str(&format!("  \"{n}\" -> \"{d}\" [label=\"requires\"];\n"));
            }
            for d in run {
                out.push_str(&format!(
                    "  \"{n}\" -> \"{d}\" [label=\"runtime\", style=dashed];\n"
                ));
            }
        }
        for (name, spec) in &self.project.file.images {
            out.push_str(&format!("  \"image:{name}\" [shape=box];\n"));
            for l in &spec.layers {
                let l = l.split('@').next().unwrap_or(l);
                out.push_str(&format!("  \"image:{name}\" -> \"{l}\";\n"));
            }
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let names = ["git", "debian-base", "ca-certificates"];
        assert_eq!(did_you_mean("gti", names.iter().copied()), Some("git"));
        assert_eq!(
            did_you_mean("debian", names.iter().copied()),
            Some("debian-base")
        );
        assert_eq!(did_you_mean("zzzzzz", names.iter().copied()), None);
    }
}
