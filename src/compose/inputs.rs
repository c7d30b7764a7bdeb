//! A project's inputs: the project files its layers read, which must stay
//! inside the project and (for the layers a build needs) exist.

use std::path::{Path, PathBuf};

use super::project::{LayerDef, Project};
use crate::error::{Error, Result};

impl Project {
    /// Every input of `layers` that does not exist, all at once: an error
    /// naming each layer.toml key and path, or Ok when all exist.
    /// Paths with `{arch}` (`{os}`, `{variant}`) are those of `platform`.
    pub fn check_inputs<'a>(
        &self,
        layers: impl IntoIterator<Item = &'a str>,
        platform: &crate::spec::Platform,
    ) -> Result<()> {
        let mut missing = Vec::new();
        for name in layers {
            let Some(def) = self.layers.get(name) else {
                continue;
            };
            for (key, p) in def.input_paths(Some(platform)) {
                let expanded = super::platforms::expand_path(p, platform);
                let full = def.dir.join(&expanded);
                if std::fs::symlink_metadata(&full).is_err() {
                    let on = if expanded != p {
                        format!(" for {platform}")
                    } else {
                        String::new()
                    };
                    missing.push(format!(
                        "  {} key {key}: {p:?}{on} ({})",
                        def.rel,
                        full.strip_prefix(&self.root).unwrap_or(&full).display()
                    ));
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::invalid(
            "project",
            self.root.display().to_string(),
            format!(
                "{} input(s) of the layers asked for do not exist:\n{}\ncreate them, or leave out the images that need these layers",
                missing.len(),
                missing.join("\n")
            ),
        ))
    }

    /// Copy and tar sources must stay inside the project; destinations must
    /// be absolute; every layer has exactly one kind of source (or none).
    pub(super) fn check_sources(&self) -> Result<()> {
        let root = self
            .root
            .canonicalize()
            .map_err(|e| Error::io(&self.root, e))?;
        for (name, def) in &self.layers {
            let s = &def.file.source;
            let kinds = usize::from(!s.copy.is_empty())
                + usize::from(s.tar.is_some())
                + usize::from(s.image.is_some())
                + usize::from(s.deb.is_some())
                + usize::from(s.run.is_some());
            if kinds > 1 {
                return Err(Error::invalid(
                    "layer",
                    format!("{} key source", def.rel),
                    format!(
                        "layer {name} has more than one of source.copy, source.tar, source.image, source.deb, source.run; use one"
                    ),
                ));
            }
            if let Some(r) = &s.run {
                super::step::check_definition(def, r)?;
            }
            for (key, p) in def.input_paths(None) {
                // A missing input is reported when its layer is planned or
                // built (Project::check_inputs), not here: one layer whose
                // input is not made yet must not block the project. A
                // per-platform path ({arch}) is checked as written: its
                // placeholders cannot climb out.
                let canon = resolve_within(&def.dir.join(p)).map_err(|e| {
                    Error::invalid(
                        "layer",
                        format!("{} key {key}", def.rel),
                        format!("{p:?}: {e}"),
                    )
                })?;
                if !canon.starts_with(&root) {
                    return Err(Error::invalid(
                        "layer",
                        format!("{} key {key}", def.rel),
                        format!(
                            "{p:?} resolves to {}, outside the project {}",
                            canon.display(),
                            root.display()
                        ),
                    ));
                }
            }
            if let Some(d) = &s.deb
                && d.packages.is_empty()
            {
                return Err(Error::invalid(
                    "layer",
                    format!("{} key source.deb.packages", def.rel),
                    "name at least one package",
                ));
            }
            for c in &s.copy {
                for p in &c.platforms {
                    super::platforms::parse_platform(p, "source.copy.platforms").map_err(|e| {
                        Error::invalid(
                            "layer",
                            format!("{} key source.copy.platforms", def.rel),
                            e.to_string(),
                        )
                    })?;
                }
                crate::layer::normalize_dest(&c.to).map_err(|e| {
                    Error::invalid(
                        "layer",
                        format!("{} key source.copy.to", def.rel),
                        e.to_string(),
                    )
                })?;
            }
        }
        Ok(())
    }
}

impl LayerDef {
    /// The project paths this layer's source reads, with the layer.toml
    /// key each comes from: for `platform` (its copy entries only), or every
    /// one as written.
    pub fn input_paths(
        &self,
        platform: Option<&crate::spec::Platform>,
    ) -> Vec<(&'static str, &str)> {
        let s = &self.file.source;
        let mut paths: Vec<(&'static str, &str)> = s
            .copy
            .iter()
            .filter(|c| platform.is_none_or(|p| c.applies_to(p)))
            .map(|c| ("source.copy.from", c.from.as_str()))
            .collect();
        if let Some(t) = &s.tar {
            paths.push(("source.tar.path", t.path.as_str()));
        }
        if let Some(r) = &s.run {
            paths.extend(
                r.inputs
                    .iter()
                    .map(|i| ("source.run.inputs.from", i.from.as_str())),
            );
        }
        paths
    }
}

/// `path` with its symlinks resolved; for a path that does not exist
/// (yet), its nearest existing ancestor resolved and the rest appended,
/// which may not climb with `..`.
fn resolve_within(path: &Path) -> std::io::Result<PathBuf> {
    match path.canonicalize() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        other => return other,
    }
    let mut rest = Vec::new();
    let mut base = path;
    while let Some(parent) = base.parent() {
        rest.push(base.file_name().map(|n| n.to_os_string()));
        base = parent;
        if base.exists() {
            break;
        }
    }
    let mut out = base.canonicalize()?;
    for part in rest.into_iter().rev() {
        match part {
            Some(n) => out.push(n),
            None => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "does not exist and climbs with '..'",
                ));
            }
        }
    }
    Ok(out)
}
