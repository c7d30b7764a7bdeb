//! Tag patterns of images: `{project}`, `{image}`, `{version}`,
//! `{timestamp}`, `{git_sha}`, expanded and checked.

use std::collections::BTreeMap;

use super::project::Project;
use crate::error::{Error, Result};

fn expand_tag(pattern: &str, project: &Project, image: &str, epoch: u64) -> Result<String> {
    let mut t = pattern
        .replace("{project}", &project.file.project.name)
        .replace("{image}", image);
    if t.contains("{version}") {
        let spec = &project.file.images[image];
        let top = spec
            .layers
            .first()
            .map(|l| l.split('@').next().unwrap_or(l));
        let version = top
            .and_then(|l| project.layers.get(l))
            .and_then(|d| d.file.layer.version.clone())
            .ok_or_else(|| {
                Error::invalid(
                    "tag",
                    format!("strata.toml images.{image}.tags {pattern:?}"),
                    "{version} needs a version in the image's first layer",
                )
            })?;
        t = t.replace("{version}", &version);
    }
    if t.contains("{timestamp}") {
        let stamp = crate::image::rfc3339(epoch)
            .replace([':', '-'], "")
            .replace('T', "-");
        t = t.replace("{timestamp}", stamp.trim_end_matches('Z'));
    }
    if t.contains("{git_sha}") {
        let out = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(&project.root)
            .output()
            .map_err(|e| {
                Error::bad_input("tag pattern {git_sha}", format!("cannot run git: {e}"))
            })?;
        if !out.status.success() {
            return Err(Error::bad_input(
                "tag pattern {git_sha}",
                format!(
                    "{} is not in a git repository with commits",
                    project.root.display()
                ),
            ));
        }
        t = t.replace("{git_sha}", String::from_utf8_lossy(&out.stdout).trim());
    }
    crate::reference::normalize_name(&t).map_err(|e| {
        Error::invalid(
            "tag",
            format!("strata.toml images.{image}.tags {pattern:?}"),
            e.to_string(),
        )
    })
}

/// The tags image `name` gets: its `tags` (or `{project}/{image}:latest`)
/// and `stable_tags`, expanded and checked.
pub fn image_tags(project: &Project, name: &str, epoch: u64) -> Result<Vec<String>> {
    let spec = &project.file.images[name];
    let mut patterns = if spec.tags.is_empty() {
        vec!["{project}/{image}:latest".to_string()]
    } else {
        spec.tags.clone()
    };
    patterns.extend(spec.stable_tags.iter().cloned());
    patterns
        .iter()
        .map(|p| expand_tag(p, project, name, epoch))
        .collect()
}

/// Two images of the project that would write the same tag are an error
/// (the later would silently take it from the earlier). The `selected`
/// images' tags must expand; another image whose patterns cannot expand
/// here (e.g. `{git_sha}` outside git) is left out of the comparison.
pub fn check_tag_clashes(project: &Project, selected: &[String], epoch: u64) -> Result<()> {
    let mut owner: BTreeMap<String, &str> = BTreeMap::new();
    for name in project.file.images.keys() {
        let tags = match image_tags(project, name, epoch) {
            Ok(t) => t,
            Err(e) if selected.contains(name) => return Err(e),
            Err(_) => continue,
        };
        for t in tags {
            match owner.get(&t) {
                Some(other) if *other != name.as_str() => {
                    return Err(Error::invalid(
                        "tag",
                        "strata.toml",
                        format!(
                            "images {other} and {name} both write the tag {t}; give each image its own tags"
                        ),
                    ));
                }
                Some(_) => {
                    return Err(Error::invalid(
                        "tag",
                        format!("strata.toml images.{name}"),
                        format!("the tag {t} is given twice"),
                    ));
                }
                None => {
                    owner.insert(t, name);
                }
            }
        }
    }
    Ok(())
}
