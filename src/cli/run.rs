//! `strata run`: an image from any transport, run in the build sandbox.

use anyhow::{Result, bail};
use clap::Args;
use strata::sandbox::{BindMount, Network, RunSpec, Sandbox};
use strata::transport::{self, ImageRef};

use super::Ctx;

#[derive(Args)]
#[command(after_help = "\
The image runs daemonless, as root on the host, in fresh mount, pid, ipc and
uts namespaces over an overlay of its layers (unpacked once per layer under
the store); what it writes is thrown away when it ends. Its exit status is
strata's. With no command after --, the image's Entrypoint and Cmd run.

Examples:
  strata run demo/runtime:latest
  strata run demo/builder:latest --mount .:/build -- make -C /build
  strata run oci:./layout:1 --env RUST_LOG=debug --network none -- app --version")]
pub struct RunArgs {
    /// Image to run (store name, oci:, oci-archive:, docker-archive:, docker://).
    image: String,
    /// Bind-mount a host path: SRC:DST[:ro] (repeatable).
    #[arg(long = "mount", short = 'v', value_name = "SRC:DST[:ro]")]
    mounts: Vec<String>,
    /// Set an environment variable KEY=VALUE (repeatable; over the image's).
    #[arg(long, short = 'e', value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory (default: the image's, else /).
    #[arg(long, short = 'w', value_name = "DIR")]
    workdir: Option<String>,
    /// User: name or uid[:gid] (default: the image's, else root).
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// Replace the image's Entrypoint: words separated by spaces, or "" for
    /// none.
    #[arg(long, value_name = "ARGV")]
    entrypoint: Option<String>,
    /// host (default: the host's network) or none (only loopback).
    #[arg(long, default_value = "host", value_name = "MODE")]
    network: String,
    /// Platform to pick from a multi-platform image.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// The command (replaces the image's Cmd; its Entrypoint stays).
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// The command to run: Entrypoint + (CMD given, else Cmd).
fn argv(
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    given: &[String],
) -> Vec<String> {
    let mut args = entrypoint.unwrap_or_default();
    if given.is_empty() {
        args.extend(cmd.unwrap_or_default());
    } else {
        args.extend(given.iter().cloned());
    }
    args
}

fn parse_mount(m: &str) -> Result<BindMount> {
    let parts: Vec<&str> = m.split(':').collect();
    let (src, dst, readonly) = match parts.as_slice() {
        [s, d] => (*s, *d, false),
        [s, d, "ro"] => (*s, *d, true),
        [s, d, "rw"] => (*s, *d, false),
        _ => bail!("--mount {m:?}: expected SRC:DST[:ro]"),
    };
    if !dst.starts_with('/') {
        bail!("--mount {m:?}: the destination {dst:?} must be an absolute path");
    }
    let source =
        std::fs::canonicalize(src).map_err(|e| anyhow::anyhow!("--mount {m:?}: {src}: {e}"))?;
    Ok(BindMount {
        source,
        target: dst.to_string(),
        readonly,
    })
}

pub fn run(ctx: &Ctx, a: RunArgs) -> Result<()> {
    let network = match a.network.as_str() {
        "host" => Network::Host,
        "none" => Network::None,
        other => bail!("--network {other:?}: use host or none"),
    };
    let mounts = a
        .mounts
        .iter()
        .map(|m| parse_mount(m))
        .collect::<Result<Vec<_>>>()?;
    for e in &a.env {
        if !e.contains('=') {
            bail!("--env {e:?}: expected KEY=VALUE");
        }
    }
    let t = ctx.transport(&a.platform)?;
    let r = ImageRef::parse(&a.image)?;
    let image = transport::open(&r, &t)?;
    let cfg = image.config()?;
    let entrypoint = match &a.entrypoint {
        Some(e) => Some(e.split_whitespace().map(str::to_string).collect()),
        None => cfg.entrypoint(),
    };
    let args = argv(entrypoint, cfg.cmd(), &a.command);
    if args.is_empty() {
        bail!(
            "{} has no Entrypoint or Cmd: give the command after --",
            a.image
        );
    }
    let sandbox = Sandbox::new(t.store.root())?;
    let snaps = sandbox.snapshots(&image.layers()?)?;
    let mounted = sandbox.mount(&snaps)?;
    let user = a
        .user
        .clone()
        .or_else(|| cfg.field("User").map(str::to_string));
    let (uid, gid, home) = match user.as_deref().filter(|u| !u.is_empty()) {
        Some(u) => strata::sandbox::resolve_user(&mounted.rootfs(), u)?,
        None => (0, 0, "/root".to_string()),
    };
    let mut env = cfg.env();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={}", strata::compose::step::DEFAULT_PATH));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    for e in &a.env {
        let key = e.split('=').next().unwrap_or_default();
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    let cwd = a
        .workdir
        .clone()
        .or_else(|| cfg.field("WorkingDir").map(str::to_string))
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let cwd_dir = mounted.rootfs().join(cwd.trim_start_matches('/'));
    std::fs::create_dir_all(&cwd_dir)?;
    let terminal = unsafe { libc::isatty(0) == 1 && libc::isatty(1) == 1 };
    let spec = RunSpec {
        args,
        env,
        cwd,
        uid,
        gid,
        network,
        mounts,
        terminal,
        ..Default::default()
    };
    let status = mounted.run_attached(&spec)?;
    drop(mounted);
    if status != 0 {
        std::process::exit(status);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_replaces_cmd_and_keeps_the_entrypoint() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            argv(Some(s(&["/e"])), Some(s(&["c"])), &[]),
            s(&["/e", "c"])
        );
        assert_eq!(
            argv(Some(s(&["/e"])), Some(s(&["c"])), &s(&["x"])),
            s(&["/e", "x"])
        );
        assert_eq!(argv(None, Some(s(&["c"])), &s(&["x", "y"])), s(&["x", "y"]));
        assert!(argv(None, None, &[]).is_empty());
    }
}
