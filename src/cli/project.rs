//! `strata graph` and `strata check`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use strata::compose::{Graph, Project, build, check, env, plan};

use super::{Ctx, human};

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
an executable under provides.paths, and that the base matches the platform.
Packages that several deb layers of one image install are one finding per set
of layers, naming the layer to add beneath them; --suggest prints it and the
[requires]/[runtime] edits. Also lists the warnings a build gives only when it
builds a layer: maintainer scripts that will not run, and a change that the
next build records without a version bump.

Examples:
  strata check
  strata check runtime --json
  strata check --suggest")]
pub struct CheckArgs {
    /// Project directory (with strata.toml).
    #[arg(long, short = 'C', default_value = ".", value_name = "DIR")]
    project: PathBuf,
    /// Images to check (default: all).
    images: Vec<String>,
    /// Print the findings as JSON (with --suggest, an object: {"findings":
    /// [...], "suggestions": [{"file", "text"}]}).
    #[arg(long)]
    json: bool,
    /// Also print the layer.toml edits that fix packages installed by
    /// several deb layers: a new layer that installs them once, beneath
    /// those layers, and their new [requires] and [runtime] lists.
    #[arg(long)]
    suggest: bool,
    /// Check only these of the images' platforms (comma-separated; default:
    /// every platform each image names, each checked on its own).
    #[arg(
        long = "platform",
        value_name = "OS/ARCH[/VARIANT],...",
        value_delimiter = ','
    )]
    platforms: Vec<String>,
}

pub fn check(ctx: &Ctx, a: CheckArgs) -> Result<()> {
    let project = Project::load(&a.project)?;
    let g = Graph::new(&project)?;
    let names: Vec<String> = if a.images.is_empty() {
        project.file.images.keys().cloned().collect()
    } else {
        a.images.clone()
    };
    let narrow = parse_platforms(&a.platforms)?;
    let mut findings = Vec::new();
    let mut suggestions: Vec<strata::compose::suggest::Suggestion> = Vec::new();
    let mut checked: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (pass, images) in strata::compose::platforms::passes(&project, &names, &narrow)? {
        let mut t = ctx.transport(&None)?;
        if let Some(p) = &pass {
            t.platform = p.clone();
            for i in &images {
                checked.entry(i.clone()).or_default().push(p.to_string());
            }
        }
        let (found, suggested) = check_pass(&project, &g, &images, &t, a.suggest)?;
        findings.extend(found.into_iter().map(|mut f| {
            f.platform = pass.as_ref().map(|p| p.to_string());
            f
        }));
        for s in suggested {
            if !suggestions
                .iter()
                .any(|o| o.file == s.file && o.text == s.text)
            {
                suggestions.push(s);
            }
        }
    }
    strata::compose::check::name_platforms_without(&mut findings, &checked);
    if a.json && a.suggest {
        let out = serde_json::json!({"findings": findings, "suggestions": suggestions});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if a.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            match &f.platform {
                Some(p) => eprintln!("{}: image {} ({p}): {}", f.level, f.image, f.message),
                None => eprintln!("{}: image {}: {}", f.level, f.image, f.message),
            }
        }
        for s in &suggestions {
            println!("--- {}\n{}", s.file, s.text);
        }
        if a.suggest && suggestions.is_empty() {
            println!("no suggestions: no package is installed by two deb layers of one image");
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

#[derive(Args)]
#[command(after_help = "\
Builds the layers whose inputs changed (a layer whose cache key is in the
store is reused: no tar, no compression), composes the images and tags them
in the store (default tag: PROJECT/IMAGE:latest). Ends with a report: each
layer built or cached with time and size, the cache hit rate, each image's
size and digest and its size change since the previous build of its tag.

Examples:
  strata build
  strata build runtime --json
  strata build --profile prod --output oci-archive:out/runtime.tar:latest")]
pub struct BuildArgs {
    /// Project directory (with strata.toml).
    #[arg(long, short = 'C', default_value = ".", value_name = "DIR")]
    project: PathBuf,
    /// Images to build (default: all, or the profile's).
    images: Vec<String>,
    /// Build the images of this [profiles] entry.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Build just this layer (and what it needs) and record it in the
    /// registry cache; no image is composed unless one is named. For CI
    /// fan-out: one job per layer of `strata plan --json`'s waves, then a
    /// `strata build --push` that builds nothing.
    #[arg(long = "layer", value_name = "NAME")]
    layers: Vec<String>,
    /// Build only these of the images' platforms (comma-separated, e.g.
    /// linux/amd64,linux/arm64; default: every platform each image names).
    #[arg(
        long = "platform",
        value_name = "OS/ARCH[/VARIANT],...",
        value_delimiter = ','
    )]
    platforms: Vec<String>,
    /// Also write the (single) built image to this transport.
    #[arg(long, value_name = "REF")]
    output: Option<String>,
    /// Fail, before writing anything, when a layer's bytes would differ from
    /// strata.lock (and leave strata.lock as it is).
    #[arg(long)]
    locked: bool,
    /// Push every built image to [defaults] registry under all its tags
    /// (stable tags move to the new build).
    #[arg(long)]
    push: bool,
    /// The registry cache, docker://HOST[:PORT]/REPO (default: [defaults]
    /// cache): layers this store lacks are taken from it without their
    /// bytes, and what is built is recorded there.
    #[arg(long, value_name = "REF", conflicts_with = "no_cache")]
    cache: Option<String>,
    /// Use no registry cache, not even [defaults] cache.
    #[arg(long)]
    no_cache: bool,
    /// Read the registry cache but never write it (jobs that must not, such
    /// as pull requests from forks).
    #[arg(long)]
    cache_read_only: bool,
    /// Load every built image into the Docker Engine (DOCKER_HOST or
    /// /var/run/docker.sock) under all its tags, sending only the layers the
    /// engine lacks.
    #[arg(long)]
    load: bool,
    /// Fetch the Release files and indexes of deb layers' repositories anew
    /// (else the ones fetched before are used, as apt uses its lists).
    #[arg(long)]
    refresh: bool,
    /// With --push, attach each image's SPDX SBOM in the registry (referrers
    /// API, or the sha256-HEX tag index where the registry lacks it).
    #[arg(long, requires = "push")]
    attach_sbom: bool,
    /// Run the layers' [[test]] and the images' [[images.NAME.test]] before
    /// tagging; when one fails, nothing is tagged or pushed.
    #[arg(long)]
    test: bool,
    /// With --test, run again the tests that passed before over the same
    /// layers.
    #[arg(long, requires = "test")]
    rerun: bool,
    /// Build every build-step layer a second time, from scratch, and fail
    /// (tagging nothing) when the two differ, naming each path that differs
    /// and how (size, mode, owner, mtime, the first differing byte).
    #[arg(long)]
    check_reproducible: bool,
    /// Write the build as a Chrome trace / Perfetto JSON file: a span per
    /// layer for its key, cache lookup, build and cache record, and per
    /// image for assembly and push.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Print the report as JSON; the output of build steps and maintainer
    /// scripts goes into it (each layer's last 200 lines and its log's
    /// path) instead of stderr.
    #[arg(long)]
    json: bool,
}

pub fn build(ctx: &Ctx, a: BuildArgs) -> Result<()> {
    let project = Project::load(&a.project)?;
    let output = a
        .output
        .as_deref()
        .map(strata::transport::ImageRef::parse)
        .transpose()?;
    let sel = build::Selection {
        images: a.images.clone(),
        profile: a.profile.clone(),
        locked: a.locked,
        push: a.push,
        keep_local: a.output.is_some(),
        cache: build::CacheChoice {
            reference: a.cache.clone(),
            off: a.no_cache,
            read_only: a.cache_read_only,
        },
        load: a.load,
        layers: a.layers.clone(),
        refresh: a.refresh,
        attach_sbom: a.attach_sbom,
        test: a.test,
        rerun: a.rerun,
        tests_only: false,
        check_reproducible: a.check_reproducible,
        echo: if a.json {
            strata::compose::echo::EchoMode::Report
        } else {
            strata::compose::echo::EchoMode::Stream
        },
        platforms: parse_platforms(&a.platforms)?,
        platform_pass: false,
    };
    if output.is_some() && build::selected_images(&project, &sel)?.len() != 1 {
        bail!("--output needs exactly one image; name it (strata build IMAGE --output ...)");
    }
    let mut t = ctx.transport(&None)?;
    if !a.json {
        t.layer_progress = super::progress::layer_bars();
    }
    if a.trace.is_some() {
        strata::trace::start();
    }
    let report = {
        let _span = strata::trace::span("build", "strata build");
        build::build(&project, &t, &sel)
    };
    if let Some(path) = &a.trace {
        strata::trace::write(path)?;
    }
    let report = report?;
    if let Some(out) = &output {
        let tag = &report.images[0].tags[0];
        let image = strata::transport::open(&strata::transport::ImageRef::parse(tag)?, &t)?;
        strata::transport::write(image.as_ref(), out, &t)?;
    }
    if a.json {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for l in &report.layers {
        let v = l
            .version
            .as_deref()
            .map(|v| format!("@{v}"))
            .unwrap_or_default();
        let d = l
            .digests
            .first()
            .map(|d| d.hex()[..12].to_string())
            .unwrap_or_else(|| "-".into());
        let on = on_platform(l.platform.as_deref());
        println!(
            "layer {:<24} {:<8} {:>7.2}s {:>10}  {d}",
            format!("{}{v}{on}", l.name),
            l.status.as_str(),
            l.seconds,
            human(l.size)
        );
    }
    for i in &report.images {
        let change = match i.previous_size {
            Some(p) if p == i.size => " (unchanged size)".to_string(),
            Some(p) if i.size > p => format!(" (+{})", human(i.size - p)),
            Some(p) => format!(" (-{})", human(p - i.size)),
            None => " (new)".to_string(),
        };
        println!(
            "image {:<24} {} {:>10}{change}  {}",
            i.name,
            i.digest,
            human(i.size),
            i.tags.join(" ")
        );
        println!("      {:<24} SBOM {} ({} packages)", "", i.sbom, i.packages);
        if let Some(p) = &i.push {
            println!(
                "      {:<24} pushed {} blob(s), {}; {} already there, {} mounted: {}",
                "",
                p.pushed,
                human(p.bytes),
                p.skipped,
                p.mounted,
                i.pushed.join(" ")
            );
        }
        if !i.stored {
            println!(
                "      {:<24} not tagged in the store: layers stay in the registry cache (build without --push, or strata copy, to fetch them)",
                ""
            );
        }
        if let Some(l) = &i.load {
            println!(
                "      {:<24} loaded into docker: {}",
                "",
                strata::transport::daemon::describe_load(l)
            );
        }
    }
    if let Some(c) = &report.cache {
        println!(
            "cache {}: {} hit(s), {} miss(es), {} recorded{}; {} downloaded, {} uploaded",
            c.repository,
            c.hits,
            c.misses,
            c.recorded,
            if c.writable { "" } else { " (read-only)" },
            human(c.bytes_downloaded),
            human(c.bytes_uploaded)
        );
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let hits = report
        .layers
        .iter()
        .filter(|l| l.status == strata::compose::source::Status::Cached)
        .count();
    println!(
        "cache hit rate {:.0}% ({hits}/{} layers), {} files hashed, {:.2}s",
        report.cache_hit_rate * 100.0,
        report.layers.len(),
        report.files_hashed,
        report.seconds
    );
    Ok(())
}

#[derive(Args)]
#[command(after_help = "\
Says which layers and images a build would make or reuse, and why (which
input changed), without building. With --since REV, maps the paths git
reports changed since REV (plus untracked files) to layers and to the images
that contain them: use it instead of path filters in CI.

Examples:
  strata plan
  strata plan --since origin/main --json | jq -r '.since.images[]'")]
pub struct PlanArgs {
    /// Project directory (with strata.toml).
    #[arg(long, short = 'C', default_value = ".", value_name = "DIR")]
    project: PathBuf,
    /// Images to plan (default: all, or the profile's).
    images: Vec<String>,
    /// Plan the images of this [profiles] entry.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Map the paths changed since this git revision to layers and images.
    #[arg(long, value_name = "GIT_REV")]
    since: Option<String>,
    /// Fetch the Release files and indexes of deb layers' repositories anew.
    #[arg(long)]
    refresh: bool,
    /// The registry cache to look in, docker://HOST[:PORT]/REPO (default:
    /// [defaults] cache): layers it has are "reuse (cache)".
    #[arg(long, value_name = "REF", conflicts_with = "no_cache")]
    cache: Option<String>,
    /// Look in no registry cache.
    #[arg(long)]
    no_cache: bool,
    /// Print the plan as JSON (with "waves": the layers to build in
    /// dependency waves, for a CI matrix).
    #[arg(long)]
    json: bool,
    /// Plan only these of the images' platforms (comma-separated; default:
    /// every platform each image names, each planned on its own).
    #[arg(
        long = "platform",
        value_name = "OS/ARCH[/VARIANT],...",
        value_delimiter = ','
    )]
    platforms: Vec<String>,
}

pub fn plan(ctx: &Ctx, a: PlanArgs) -> Result<()> {
    let project = Project::load(&a.project)?;
    let sel = build::Selection {
        images: a.images.clone(),
        profile: a.profile.clone(),
        locked: false,
        push: false,
        refresh: a.refresh,
        attach_sbom: false,
        cache: build::CacheChoice {
            reference: a.cache.clone(),
            off: a.no_cache,
            read_only: true,
        },
        platforms: parse_platforms(&a.platforms)?,
        ..Default::default()
    };
    let t = ctx.transport(&None)?;
    let p = plan::plan(&project, &t, &sel, a.since.as_deref())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
        return Ok(());
    }
    for l in &p.layers {
        let v = l
            .version
            .as_deref()
            .map(|v| format!("@{v}"))
            .unwrap_or_default();
        let from = l.from.map(|f| format!(" ({f})")).unwrap_or_default();
        let on = on_platform(l.platform.as_deref());
        let shared = if l.shared {
            ", shared by platforms"
        } else {
            ""
        };
        println!(
            "layer {:<24} {}{from}{shared}",
            format!("{}{v}{on}", l.name),
            l.action
        );
        for r in &l.reasons {
            println!("    {r}");
        }
        for w in &l.warnings {
            eprintln!("warning: {w}");
        }
        if !l.suites.is_empty() {
            println!("    from: {}", l.suites.join(", "));
        }
        if !l.packages.is_empty() {
            println!(
                "    {} packages: {}",
                l.packages.len(),
                l.packages.join(" ")
            );
        }
    }
    for i in &p.images {
        let why = if i.changed_layers.is_empty() {
            String::new()
        } else {
            format!(" (layers: {})", i.changed_layers.join(", "))
        };
        let on = i
            .platform
            .as_deref()
            .map(|p| format!(" [{p}]"))
            .unwrap_or_default();
        println!("image {:<24} {}{why}", format!("{}{on}", i.name), i.action);
    }
    for (i, w) in p.waves.iter().enumerate() {
        println!("wave {}: build {}", i + 1, w.join(" "));
    }
    for w in &p.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(s) = &p.since {
        println!(
            "since {}: {} changed paths → layers [{}] → images [{}]",
            s.rev,
            s.paths.len(),
            s.layers.join(", "),
            s.images.join(", ")
        );
    }
    Ok(())
}

#[derive(Args)]
#[command(after_help = "\
Prints an env.sh that defines every alias of the image's layers (or of one
layer) as a shell function running the tool from the image, with the current
directory mounted at the same path, your uid:gid, and -it only when stdin is
a terminal. The functions call docker, else podman, whichever is installed;
with neither, strata run (daemonless, from this store; needs root for runc).

Example:
  strata env builder > env.sh && . ./env.sh && greet you")]
pub struct EnvArgs {
    /// Project directory (with strata.toml).
    #[arg(long, short = 'C', default_value = ".", value_name = "DIR")]
    project: PathBuf,
    /// An image of strata.toml, or a layer.
    target: String,
    /// Container engine the functions call (default: docker, else podman,
    /// whichever is on PATH, else strata).
    #[arg(long, value_parser = ["docker", "podman", "strata"])]
    engine: Option<String>,
}

pub fn env(ctx: &Ctx, a: EnvArgs) -> Result<()> {
    let project = Project::load(&a.project)?;
    // strata run from this strata and this store, wherever env.sh is sourced.
    let exe = std::env::current_exe().map_err(|e| strata::Error::io("the strata executable", e))?;
    let strata_cmd = format!(
        "{} --store {}",
        env::shell_quote(&exe.to_string_lossy()),
        env::shell_quote(
            &std::path::absolute(&ctx.store_path)
                .unwrap_or_else(|_| ctx.store_path.clone())
                .to_string_lossy()
        )
    );
    let engine = match a.engine.as_deref() {
        Some("podman") => env::Engine::Podman,
        Some("docker") => env::Engine::Docker,
        Some(_) => env::Engine::Strata(strata_cmd),
        None => env::Engine::detect(strata_cmd),
    };
    // Tag patterns expand as a build would expand them; {content} needs the
    // layer keys a build would use, computed only when a pattern has it.
    let g = Graph::new(&project)?;
    let mut vars = build::TagVars::now();
    if build::TagVars::needs_content(&project) {
        let t = ctx.transport(&None)?;
        let deb = strata::compose::debsrc::DebPlanner::new(&project, &g, &t, false);
        let images: Vec<String> = project.file.images.keys().cloned().collect();
        let keys = plan::image_keys(&project, &g, &deb, &images)?;
        vars = vars.with_content(&project, &g, &keys);
    }
    let script = env::env_script(&project, &a.target, engine, &vars)?;
    for w in &script.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", script.text);
    Ok(())
}

#[derive(Args)]
#[command(after_help = "\
strata build stores an SPDX 2.3 JSON SBOM for every image it composes, as
an OCI artifact whose subject is the image (store tag REPO:sha256-HEX.spdx).
It lists the layers with their sources and every Debian package with its
version, architecture and layer.

Examples:
  strata sbom debian/git:latest | jq '.packages[].name'")]
pub struct SbomArgs {
    /// The image (a store reference).
    image: String,
}

pub fn sbom(ctx: &Ctx, a: SbomArgs) -> Result<()> {
    let t = ctx.transport(&None)?;
    let image = strata::transport::open(&strata::transport::ImageRef::parse(&a.image)?, &t)?;
    let digest = image.digest()?;
    let suffix = format!(":sha256-{}.spdx", digest.hex());
    let Some((tag, desc)) = t
        .store
        .tags()?
        .into_iter()
        .find(|(n, _)| n.ends_with(&suffix))
    else {
        bail!(
            "no SBOM for {} ({digest}) in the store; strata build writes one for every image it composes",
            a.image
        );
    };
    let raw = t.store.read_blob(&desc.digest, 4 << 20)?;
    let m = strata::spec::Manifest::parse(&raw, &tag)?;
    let blob = m
        .layers
        .first()
        .ok_or_else(|| anyhow::anyhow!("SBOM artifact {tag} has no blob"))?;
    let doc = t.store.read_blob(&blob.digest, 256 << 20)?;
    std::io::Write::write_all(&mut std::io::stdout(), &doc)?;
    println!();
    Ok(())
}

#[derive(Args)]
#[command(after_help = "\
Builds what the selected images need (tagging nothing), then runs every
[[test]] of their layers, each in a sandbox holding only that layer and its
[runtime] layers, and every [[images.NAME.test]] in the composed image. A
test that passed over the same layers is not run again unless --rerun.
Exit status 1 when a test fails.

Examples:
  strata test
  strata test runtime --junit target/strata-tests.xml
  strata test --rerun --json")]
pub struct TestArgs {
    /// Project directory (with strata.toml).
    #[arg(long, short = 'C', default_value = ".", value_name = "DIR")]
    project: PathBuf,
    /// Images whose layers and selves to test, or layers to test on their
    /// own (default: every image, or the profile's).
    #[arg(value_name = "LAYER|IMAGE")]
    images: Vec<String>,
    /// Test the images of this [profiles] entry.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Run again the tests that passed before over the same layers.
    #[arg(long)]
    rerun: bool,
    /// Also write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn test(ctx: &Ctx, a: TestArgs) -> Result<()> {
    let project = Project::load(&a.project)?;
    // A name is an image of strata.toml, else a layer.
    let (images, layers): (Vec<String>, Vec<String>) = a
        .images
        .iter()
        .cloned()
        .partition(|n| project.file.images.contains_key(n) || !project.layers.contains_key(n));
    let sel = build::Selection {
        images,
        layers,
        profile: a.profile.clone(),
        rerun: a.rerun,
        tests_only: true,
        ..Default::default()
    };
    let mut t = ctx.transport(&None)?;
    if !a.json {
        t.layer_progress = super::progress::layer_bars();
    }
    let report = build::build(&project, &t, &sel)?;
    if let Some(path) = &a.junit {
        std::fs::write(path, strata::compose::layertest::junit(&report.tests))
            .map_err(|e| strata::Error::io(path, e))?;
    }
    let failed = report.tests.iter().filter(|t| !t.passed).count();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report.tests)?);
    } else {
        for r in &report.tests {
            let verdict = match (r.passed, r.cached) {
                (true, true) => "pass (remembered)",
                (true, false) => "pass",
                (false, _) => "FAIL",
            };
            println!(
                "{verdict:<18} {:<24} {}",
                r.target,
                strata::text::escape(&r.name)
            );
            if let Some(p) = &r.problem {
                println!("    {p}");
                for l in &r.output {
                    println!("    | {}", strata::text::escape(l));
                }
            }
        }
        println!("{} tests, {failed} failed", report.tests.len());
    }
    if failed > 0 {
        bail!("{failed} of {} tests failed", report.tests.len());
    }
    Ok(())
}

/// `--platform a,b`, each checked as a project platform.
fn parse_platforms(list: &[String]) -> Result<Vec<strata::spec::Platform>> {
    Ok(list
        .iter()
        .map(|p| strata::compose::project::parse_platform(p, "--platform"))
        .collect::<strata::Result<_>>()?)
}

/// One platform's check of `names` (the context's platform): findings and,
/// with `suggest`, the layer.toml edits.
fn check_pass(
    project: &Project,
    g: &Graph<'_>,
    names: &[String],
    t: &strata::transport::Context,
    suggest: bool,
) -> Result<(
    Vec<check::Finding>,
    Vec<strata::compose::suggest::Suggestion>,
)> {
    // The keys a build would use: layers whose key is unchanged are listed
    // from the listing cached under it, not walked or unpacked again.
    let deb = strata::compose::debsrc::DebPlanner::new(project, g, t, false);
    let keys = plan::image_keys(project, g, &deb, names)?;
    // Tags: each must be valid, and no two images may share one.
    let vars = build::TagVars::now().with_content(project, g, &keys);
    build::check_tag_clashes(project, names, &vars)?;
    let read = check::Listings::default();
    let mut findings = Vec::new();
    let mut said = std::collections::BTreeSet::new();
    let bumps: std::collections::BTreeMap<String, String> =
        check::bump_warnings(project, t, &keys)?
            .into_iter()
            .collect();
    for name in names {
        findings.extend(check::check_image_keyed(
            project, g, name, &deb, &keys, &read,
        )?);
        // What a build says only when it builds the layer, said here
        // every time (once per layer).
        for l in g.image_layers(name)? {
            if said.insert(l) {
                let mut messages = check::layer_warnings(project, l, &deb)?;
                messages.extend(bumps.get(l).cloned());
                findings.extend(messages.into_iter().map(|message| check::Finding {
                    level: "warning",
                    image: name.clone(),
                    message,
                    platform: None,
                }));
            }
        }
    }
    let suggestions = if suggest {
        strata::compose::suggest::shared_packages(project, g, names, &deb)?
    } else {
        Vec::new()
    };
    Ok((findings, suggestions))
}

/// ` [linux/arm64]` after a layer built for one platform of several.
fn on_platform(p: Option<&str>) -> String {
    p.map(|p| format!(" [{p}]")).unwrap_or_default()
}
