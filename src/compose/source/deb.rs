//! `[source.deb]`: Debian packages, resolved by the
//! [`DebPlanner`](crate::compose::debsrc::DebPlanner); with `configure`,
//! their maintainer scripts run over the layers beneath.

use std::path::PathBuf;
use std::sync::Arc;

use super::{BuildCx, Content, Inputs, KeyCx, LayerSource, Made, RunsOver, Settings, Status};
use super::{key_prefix, put};
use crate::compose::configure;
use crate::compose::debsrc::{self, DebPlanner, Resolution};
use crate::compose::echo::Echo;
use crate::compose::project::{DebSource, LayerDef};
use crate::digest::{Digest, Hasher};
use crate::error::Result;
use crate::layer::Layer;
use crate::transport::Context;

/// A deb layer.
pub(super) struct Deb<'a>(pub(super) &'a DebSource);

impl Deb<'_> {
    /// The cache keys of its package blobs: the data key, or one per
    /// package with `one_layer_per_package`.
    fn blob_keys(&self, data_key: &Digest, res: &Resolution) -> Vec<Digest> {
        if !self.0.one_layer_per_package {
            return vec![data_key.clone()];
        }
        (0..res.packages.len())
            .map(|i| Digest::of(format!("{data_key} package {i}").as_bytes()))
            .collect()
    }

    /// The package blobs from the cache, when all are there.
    fn cached_data(&self, cx: &BuildCx<'_>, data_key: &Digest) -> Option<Vec<Arc<dyn Layer>>> {
        let res = cx.deb.as_ref()?;
        self.blob_keys(data_key, res)
            .iter()
            .map(|k| cx.cache.get(k).map(|c| cx.layer(c)))
            .collect()
    }

    /// The package blobs, from the cache or built now.
    fn data(
        &self,
        def: &LayerDef,
        cx: &BuildCx<'_>,
        res: &Resolution,
        data_key: &Digest,
    ) -> Result<(Vec<Arc<dyn Layer>>, Status)> {
        if let Some(layers) = self.cached_data(cx, data_key) {
            return Ok((layers, Status::Cached));
        }
        let d = self.0;
        let make = |g: &[crate::deb::resolve::Selected]| {
            let what = if d.one_layer_per_package {
                g.iter().map(|p| p.label()).collect::<Vec<_>>().join(",")
            } else {
                d.packages.join(",")
            };
            cx.builder(def, format!("deb:{what}"))
                .progress(cx.progress(), "unpacking and compressing")
        };
        let built = debsrc::build(cx.ctx, res, d.one_layer_per_package, make, &cx.progress())?;
        debsrc::record_script_warnings(cx.ctx, res)?;
        let mut out: Vec<Arc<dyn Layer>> = Vec::new();
        for (l, k) in built.into_iter().zip(self.blob_keys(data_key, res)) {
            cx.remember(&k, &l)?;
            out.push(Arc::new(l));
        }
        Ok((out, Status::Built))
    }
}

impl LayerSource for Deb<'_> {
    /// The packages (name, version, architecture, digest), the merged-/usr
    /// layout; with `configure`, also the keys of the layers beneath.
    fn key(
        &self,
        def: &LayerDef,
        cx: &mut KeyCx<'_, '_>,
        _h: Hasher,
        mut inputs: Inputs,
    ) -> Result<(Digest, Option<Inputs>)> {
        let res = cx.deb.resolve(&def.file.layer.name)?;
        for p in &res.packages {
            inputs.files.insert(
                format!("package {}", p.name),
                format!("{} {}", p.version, p.sha256),
            );
        }
        let data = data_key(def, cx.settings, &res);
        if !self.0.configure {
            let record = (cx.want_record)(&data).then_some(inputs);
            return Ok((data, record));
        }
        let key = configure::key(&data, cx.below);
        inputs.settings.push_str(&format!(
            ", configure format {}",
            configure::CONFIGURE_FORMAT
        ));
        for (name, k) in cx.below {
            inputs
                .files
                .insert(format!("layer {name} beneath"), k.to_string());
        }
        let record = (cx.want_record)(&key).then_some(inputs);
        Ok((key, record))
    }

    /// The package blobs (one, or one per package), then, with
    /// `configure`, what their maintainer scripts wrote. Each is taken from
    /// the cache when there.
    fn build(&self, def: &LayerDef, cx: BuildCx<'_>) -> Result<Made> {
        let res = cx
            .deb
            .clone()
            .expect("deb layers are resolved before they build");
        let data_key = data_key(def, cx.settings, &res);
        let (mut layers, mut status) = self.data(def, &cx, &res, &data_key)?;
        if !self.0.configure {
            // Said when the layer is built; `check` says it every time.
            let warnings = match status {
                Status::Cached => Vec::new(),
                _ => unconfigured(cx.ctx, cx.name, &res),
            };
            return Ok(Made {
                layers,
                status,
                warnings,
                ..Made::cached(Vec::new())
            });
        }
        // A layer whose packages have no scripts records its last package
        // blob under the key: nothing to add.
        let last = layers.last().map(|l| l.descriptor().digest);
        if let Some(c) = cx.cache.get(cx.key) {
            if Some(&c.descriptor.digest) != last.as_ref() {
                layers.push(cx.layer(c));
            }
            return Ok(Made {
                layers,
                status,
                ..Made::cached(Vec::new())
            });
        }
        let echo = Echo::new(cx.name, cx.echo);
        let mut lowers = cx.below.layers.clone();
        lowers.extend(layers.iter().cloned());
        let ccx = configure::ConfigureContext {
            name: cx.name,
            rel: &def.rel,
            key: cx.key,
            store: &cx.ctx.store,
            lowers,
            epoch: cx.settings.epoch,
            builder: cx.builder(def, format!("deb-configure:{}", self.0.packages.join(","))),
            echo: &echo,
        };
        status = Status::Built;
        cx.progress().phase("running maintainer scripts", None);
        let added: Option<Arc<dyn Layer>> = match configure::configure(&res, &ccx)? {
            Some(l) => Some(Arc::new(l)),
            None => layers.last().cloned(),
        };
        if let Some(l) = added {
            cx.remember(cx.key, l.as_ref())?;
            if Some(l.descriptor().digest) != last {
                layers.push(l);
            }
        }
        let log = crate::compose::step::log_path(&cx.ctx.store, cx.key);
        Ok(Made {
            layers,
            status,
            warnings: Vec::new(),
            output: echo.into_lines(),
            log: log.is_file().then_some(log),
        })
    }

    fn check_warnings(
        &self,
        _def: &LayerDef,
        name: &str,
        deb: &DebPlanner<'_>,
        _settings: Settings,
    ) -> Result<Vec<String>> {
        if self.0.configure {
            return Ok(Vec::new());
        }
        let res = deb.resolve(name)?;
        Ok(unconfigured(deb.context(), name, &res))
    }

    fn cached(&self, def: &LayerDef, cx: &BuildCx<'_>) -> Option<Vec<Arc<dyn Layer>>> {
        let data_key = data_key(def, cx.settings, cx.deb.as_ref()?);
        let mut layers = self.cached_data(cx, &data_key)?;
        if self.0.configure {
            let c = cx.cache.get(cx.key)?;
            if layers.last().map(|l| l.descriptor().digest) != Some(c.descriptor.digest.clone()) {
                layers.push(cx.layer(c));
            }
        }
        Some(layers)
    }

    fn contents(
        &self,
        def: &LayerDef,
        ctx: &Context,
        deb: &DebPlanner<'_>,
        visit: &mut dyn FnMut(Content<'_>) -> Result<()>,
    ) -> Result<bool> {
        let res = deb.resolve(&def.file.layer.name)?;
        let label = PathBuf::from(format!("deb layer {}", def.file.layer.name));
        debsrc::list(ctx, &res, |r| visit(Content::Tar(r, &label)))?;
        Ok(true)
    }

    fn runs_over(&self) -> RunsOver {
        if self.0.configure {
            RunsOver::Closure
        } else {
            RunsOver::Nothing
        }
    }

    fn resolution(&self, name: &str, deb: &DebPlanner<'_>) -> Result<Option<Arc<Resolution>>> {
        deb.resolve(name).map(Some)
    }

    fn suites(&self, def: &LayerDef) -> Result<Vec<String>> {
        Ok(debsrc::repositories(def, self.0)?
            .iter()
            .map(|r| format!("{} {}", r.uri, r.suite))
            .collect())
    }

    fn packages(&self, name: &str, deb: &DebPlanner<'_>) -> Result<Vec<String>> {
        Ok(deb
            .resolve(name)?
            .packages
            .iter()
            .map(|p| p.label())
            .collect())
    }
}

/// The key of a deb layer's packages (its data blobs): the key of the
/// whole layer unless its maintainer scripts run, which then also depends
/// on the layers beneath.
pub(super) fn data_key(def: &LayerDef, s: Settings, res: &Resolution) -> Digest {
    let mut h = Hasher::new();
    key_prefix(&mut h, def, s);
    put(
        &mut h,
        format!("deb-layer-format-{}", crate::deb::layer::FORMAT).as_bytes(),
    );
    put(&mut h, res.arch.as_bytes());
    put(&mut h, &[u8::from(res.merged_usr), u8::from(res.usr_links)]);
    for p in &res.packages {
        put(&mut h, p.name.as_bytes());
        put(&mut h, p.version.as_bytes());
        put(&mut h, p.arch.as_bytes());
        put(&mut h, p.sha256.hex().as_bytes());
    }
    h.finish()
}

/// The warning for a layer whose packages' maintainer scripts do not run.
fn unconfigured(ctx: &Context, name: &str, res: &Resolution) -> Vec<String> {
    debsrc::script_warnings(ctx, res)
        .map(|w| {
            format!(
                "layer {name}: maintainer scripts did not run (configure = true in [source.deb] runs them): {}",
                w.join("; ")
            )
        })
        .into_iter()
        .collect()
}
