//! Tag patterns of images: `{project}`, `{image}`, `{version}`,
//! `{timestamp}`, `{git_sha}`, `{env:NAME}`, `{content}`, expanded and
//! checked. Tags are not content: `{timestamp}` is the wall clock of the
//! build and changes no digest.

use std::collections::BTreeMap;

use super::graph::Graph;
use super::project::Project;
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};

/// What tag patterns expand to beyond the project itself.
#[derive(Debug, Clone, Default)]
pub struct TagVars {
    /// `{timestamp}`: the build's wall-clock time, seconds since the epoch.
    pub now: u64,
    /// `{content}` of each image whose layer keys are known.
    pub content: BTreeMap<String, String>,
}

impl TagVars {
    /// The vars of a build starting now, with no content keys yet.
    pub fn now() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        TagVars {
            now,
            content: BTreeMap::new(),
        }
    }

    /// Whether any image's tag pattern has `{content}`.
    pub fn needs_content(project: &Project) -> bool {
        project.file.images.iter().any(|(name, i)| {
            tag_patterns(project, name)
                .iter()
                .chain(&i.stable_tags)
                .any(|t| t.contains("{content}"))
        })
    }

    /// Adds `{content}` for every image of the project whose layers all
    /// have a key in `keys`.
    pub fn with_content(
        mut self,
        project: &Project,
        graph: &Graph<'_>,
        keys: &BTreeMap<&str, Digest>,
    ) -> Self {
        for (name, spec) in &project.file.images {
            let Ok(layers) = graph.image_layers(name) else {
                continue;
            };
            let mut h = Hasher::new();
            h.update(b"strata-image-content-1\0");
            h.update(&crate::json::to_canonical(spec));
            let mut known = true;
            for l in layers {
                match keys.get(l) {
                    Some(k) => {
                        h.update(l.as_bytes());
                        h.update(b"\0");
                        h.update(k.hex().as_bytes());
                    }
                    None => known = false,
                }
            }
            if known {
                self.content.insert(name.clone(), short(h));
            }
        }
        self
    }

    /// These vars with image `name`'s `{content}` over every platform of
    /// its index: `(platform, that platform's content)` in index order.
    /// `None` when a platform's content is not known.
    pub fn with_index_content<'a>(
        &self,
        name: &str,
        platforms: impl IntoIterator<Item = (String, Option<&'a String>)>,
    ) -> Option<Self> {
        let mut h = Hasher::new();
        h.update(b"strata-index-content-1\0");
        for (platform, content) in platforms {
            h.update(platform.as_bytes());
            h.update(b"\0");
            h.update(content?.as_bytes());
            h.update(b"\0");
        }
        let mut vars = self.clone();
        vars.content.insert(name.to_string(), short(h));
        Some(vars)
    }
}

/// A `{content}` value: 12 hex digits of `h`.
fn short(h: Hasher) -> String {
    h.finish().hex()[..12].to_string()
}

/// `{env:NAME}` placeholders of `t` replaced by the variables' values.
fn expand_env(mut t: String, pattern: &str, image: &str) -> Result<String> {
    while let Some(start) = t.find("{env:") {
        let Some(len) = t[start..].find('}') else {
            break;
        };
        let name = t[start + 5..start + len].to_string();
        let value = std::env::var(&name)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Error::invalid(
                    "tag",
                    format!("strata.toml images.{image}.tags {pattern:?}"),
                    format!(
                        "{{env:{name}}} needs the environment variable {name}, which is not set"
                    ),
                )
            })?;
        t.replace_range(start..start + len + 1, &value);
    }
    Ok(t)
}

fn expand_tag(pattern: &str, project: &Project, image: &str, vars: &TagVars) -> Result<String> {
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
        // UTC, sortable as text: 20261204-170512.
        let stamp = crate::image::rfc3339(vars.now)
            .replace([':', '-'], "")
            .replace('T', "-");
        t = t.replace("{timestamp}", stamp.trim_end_matches('Z'));
    }
    if t.contains("{content}") {
        let content = vars.content.get(image).ok_or_else(|| {
            Error::invalid(
                "tag",
                format!("strata.toml images.{image}.tags {pattern:?}"),
                "{content} is known only where the image's layer keys are (build, check)",
            )
        })?;
        t = t.replace("{content}", content);
    }
    t = expand_env(t, pattern, image)?;
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

/// The tag patterns of image `name`: its `tags`, else `[defaults] tags`,
/// else `{project}/{image}:latest`.
fn tag_patterns(project: &Project, name: &str) -> Vec<String> {
    let spec = &project.file.images[name];
    if !spec.tags.is_empty() {
        spec.tags.clone()
    } else if !project.file.defaults.tags.is_empty() {
        project.file.defaults.tags.clone()
    } else {
        vec!["{project}/{image}:latest".to_string()]
    }
}

/// The tags image `name` gets: its tag patterns (see `tag_patterns`) and
/// `stable_tags`, expanded and checked.
pub fn image_tags(project: &Project, name: &str, vars: &TagVars) -> Result<Vec<String>> {
    let spec = &project.file.images[name];
    let mut patterns = tag_patterns(project, name);
    patterns.extend(spec.stable_tags.iter().cloned());
    patterns
        .iter()
        .map(|p| expand_tag(p, project, name, vars))
        .collect()
}

/// The tag that names image `name` where one is shown or run (`strata
/// env`): the first of its tags whose pattern has no `{timestamp}` (a
/// timestamp names one build, not the image), else the first.
pub fn shown_tag(project: &Project, name: &str, vars: &TagVars) -> Result<String> {
    let spec = &project.file.images[name];
    let tags = tag_patterns(project, name);
    let pattern = tags
        .iter()
        .chain(&spec.stable_tags)
        .find(|p| !p.contains("{timestamp}"))
        .unwrap_or(&tags[0])
        .clone();
    expand_tag(&pattern, project, name, vars)
}

/// Two images of the project that would write the same tag are an error
/// (the later would silently take it from the earlier). The `selected`
/// images' tags must expand; another image whose patterns cannot expand
/// here (e.g. `{git_sha}` outside git) is left out of the comparison.
pub fn check_tag_clashes(project: &Project, selected: &[String], vars: &TagVars) -> Result<()> {
    let mut owner: BTreeMap<String, &str> = BTreeMap::new();
    for name in project.file.images.keys() {
        let tags = match image_tags(project, name, vars) {
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
