//! `strata check --suggest`: the layer.toml edits that fix packages shared
//! by sibling deb layers — a new layer that installs them once, beneath
//! the layers that share them, and those layers' new `[requires]` and
//! `[runtime]` lists.

use std::collections::{BTreeMap, BTreeSet};

use super::debsrc::DebPlanner;
use super::graph::Graph;
use super::project::Project;
use crate::error::Result;

/// One suggested edit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Suggestion {
    /// The project-relative file to create or change.
    pub file: String,
    /// What to write there (TOML, with a comment saying why).
    pub text: String,
}

/// The edits for every set of deb layers of `images` that install the
/// same packages (each set once, however many images have it).
pub fn shared_packages(
    project: &Project,
    graph: &Graph<'_>,
    images: &[String],
    deb: &DebPlanner<'_>,
) -> Result<Vec<Suggestion>> {
    let mut groups: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    for image in images {
        let layers = graph.image_layers(image)?;
        for (pkg, ls) in super::check::shared_packages(project, &layers, deb)? {
            groups
                .entry(ls.iter().map(|s| s.to_string()).collect())
                .or_default()
                .insert(pkg);
        }
    }
    let mut out = Vec::new();
    let mut taken: BTreeSet<String> = project.layers.keys().cloned().collect();
    for (layers, pkgs) in groups {
        let name = new_name(&pkgs, &mut taken);
        out.extend(for_group(project, &layers, &pkgs, &name));
    }
    Ok(out)
}

/// A layer name for `pkgs` that no layer has: the package's name when there
/// is one, else the first one's with `-shared`.
fn new_name(pkgs: &BTreeSet<String>, taken: &mut BTreeSet<String>) -> String {
    let first = pkgs.iter().next().expect("a group has packages");
    let base = if pkgs.len() == 1 {
        first.clone()
    } else {
        format!("{first}-shared")
    };
    let mut name = base.clone();
    let mut i = 2;
    while taken.contains(&name) {
        name = format!("{base}-{i}");
        i += 1;
    }
    taken.insert(name.clone());
    name
}

fn bare(dep: &str) -> &str {
    dep.split('@').next().unwrap_or(dep)
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The `[source.deb]` of the new layer: `first`'s (suite, repositories,
/// architecture, …) with the shared packages; a relative keyring path is
/// made relative to the new layer's directory.
fn deb_source(first: &super::project::LayerDef, pkgs: &BTreeSet<String>) -> String {
    let Some(mut deb) = first.file.source.deb.clone() else {
        return String::new();
    };
    deb.packages = pkgs.iter().cloned().collect();
    deb.one_layer_per_package = false;
    let dir = first
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for r in &mut deb.repositories {
        if let Some(k) = &r.signed_by
            && !k.starts_with('/')
        {
            r.signed_by = Some(format!("../{dir}/{k}"));
        }
    }
    #[derive(serde::Serialize)]
    struct Source {
        deb: super::project::DebSource,
    }
    #[derive(serde::Serialize)]
    struct Doc {
        source: Source,
    }
    toml::to_string(&Doc {
        source: Source { deb },
    })
    .unwrap_or_default()
}

fn for_group(
    project: &Project,
    layers: &[String],
    pkgs: &BTreeSet<String>,
    name: &str,
) -> Vec<Suggestion> {
    // Beneath the new layer: what every sharing layer requires already.
    let deps_of = |l: &str| -> BTreeSet<String> {
        let f = &project.layers[l].file;
        f.requires
            .layers
            .iter()
            .chain(&f.runtime.layers)
            .map(|d| bare(d).to_string())
            .collect()
    };
    let mut common = deps_of(&layers[0]);
    for l in &layers[1..] {
        common = common.intersection(&deps_of(l)).cloned().collect();
    }
    let common: Vec<String> = common.into_iter().collect();
    let first = &project.layers[&layers[0]];
    let source = deb_source(first, pkgs);
    let mut out = vec![Suggestion {
        file: format!("layers/{name}/layer.toml"),
        text: format!(
            "# new: installs {} once, beneath {}\n[layer]\nname = {name:?}\n\n[requires]\nlayers = {}\n\n[runtime]\nlayers = {}\n\n{source}",
            pkgs.iter().cloned().collect::<Vec<_>>().join(", "),
            layers.join(" and "),
            toml_list(&common),
            toml_list(&common),
        ),
    }];
    for l in layers {
        let f = &project.layers[l].file;
        let with = |deps: &[String]| {
            let mut v = deps.to_vec();
            v.push(name.to_string());
            toml_list(&v)
        };
        out.push(Suggestion {
            file: project.layers[l].rel.clone(),
            text: format!(
                "# {l} gets {} from {name}\n[requires]\nlayers = {}\n\n[runtime]\nlayers = {}\n",
                pkgs.iter().cloned().collect::<Vec<_>>().join(", "),
                with(&f.requires.layers),
                with(&f.runtime.layers),
            ),
        });
    }
    out
}
