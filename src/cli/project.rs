//! `strata graph` and `strata check`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use strata::compose::{Graph, Project, check};

use super::Ctx;

#[derive(Args)]
#[command(after_help = "\
Prints what needs what: every layer with the layers it requires (to build)
and needs at runtime, then each image's layers in build order, base first.

Examples:
  strata graph
  strata graph --dot | dot -Tsvg > layers.svg")]
pub struct GraphArgs {
    /// Project directory (with strata.toml).
    #[arg(long, short = 'C', default_value = ".", value_name = "DIR")]
    project: PathBuf,
    /// Print Graphviz dot instead of a text tree.
    #[arg(long)]
    dot: bool,
}

pub fn graph(_ctx: &Ctx, a: GraphArgs) -> Result<()> {
    let project = Project::load(&a.project)?;
    let g = Graph::new(&project)?;
    if a.dot {
        print!("{}", g.dot());
        return Ok(());
    }
    print!("{}", g.tree());
    for name in project.file.images.keys() {
        let layers = g.image_layers(name)?;
        println!(
            "image {name} ({:?}): {}",
            project.file.images[name].kind,
            layers.join(" → ")
        );
    }
    Ok(())
}

#[derive(Args)]
#[command(after_help = "\
Checks without building: the layer graph (references, versions, cycles),
file conflicts between composed layers (per the image's conflict policy and
overrides), file-vs-directory clashes, that every provides.binaries entry is
an executable under provides.paths, and that the base matches the platform.")]
pub struct CheckArgs {
    /// Project directory (with strata.toml).
    #[arg(long, short = 'C', default_value = ".", value_name = "DIR")]
    project: PathBuf,
    /// Images to check (default: all).
    images: Vec<String>,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
}

pub fn check(ctx: &Ctx, a: CheckArgs) -> Result<()> {
    let project = Project::load(&a.project)?;
    let g = Graph::new(&project)?;
    let names: Vec<String> = if a.images.is_empty() {
        project.file.images.keys().cloned().collect()
    } else {
        a.images.clone()
    };
    let t = ctx.transport(&None)?;
    let mut findings = Vec::new();
    for name in &names {
        g.image_layers(name)?;
        findings.extend(check::check_image(&project, &g, name, &t)?);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            eprintln!("{}: image {}: {}", f.level, f.image, f.message);
        }
    }
    let errors = findings.iter().filter(|f| f.level == "error").count();
    if errors > 0 {
        bail!("{errors} problem(s) in {}", names.join(", "));
    }
    if !a.json {
        println!(
            "ok: {} image(s) checked, {} warning(s)",
            names.len(),
            findings.len()
        );
    }
    Ok(())
}
