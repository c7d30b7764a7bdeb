//! `configure = true` in `[source.deb]`: the packages' maintainer scripts
//! run in the sandbox, as debootstrap's second stage and
//! `dpkg --configure` run them, and what they write is one more blob of the
//! deb layer.
//!
//! The sandbox's root is the layers the packages' dependencies are in (the
//! deb layer's `[requires]` and `[runtime]` stacks) and the layer's own
//! package blobs. There, in the packages' dependency order, every
//! `preinst install` runs, then every `postinst configure`, then
//! `ldconfig` where the stack has it (libc-bin's trigger). The scripts see
//! dpkg's database as after an install: `/var/lib/dpkg/status` made of the
//! `status.d` entries beneath and of this layer, and each package's
//! control members in `/var/lib/dpkg/info`. A `policy-rc.d` keeps services
//! from starting, the network is off, `DEBIAN_FRONTEND=noninteractive`.
//!
//! The capture is a build step's (mtimes clamped to the epoch, the default
//! excludes) and leaves out dpkg's scratch files (`status`, locks,
//! triggers); the per-image dpkg status layer still lists the packages.
//! The blob's key covers the packages' key and the keys of the layers
//! beneath, in order.

use std::io::Write;
use std::sync::Arc;

use super::debsrc::Resolution;
use crate::deb::repo::DebCache;
use crate::digest::{Digest, Hasher};
use crate::error::{Error, IoContext, Result};
use crate::layer::{Layer, LayerBuilder, StoreLayer};
use crate::sandbox::capture::{CaptureSpec, capture};
use crate::sandbox::{BindMount, Network, Output, RunSpec};
use crate::store::Store;

/// Version of how maintainer scripts are run and captured; part of the
/// keys of configured deb layers.
pub const CONFIGURE_FORMAT: u32 = 2;

/// Where the packages' control members are mounted (read-only) before the
/// driver copies them into `/var/lib/dpkg/info`.
const INFO_MOUNT: &str = "/run/strata-dpkg-info";

/// dpkg's scratch files, never captured.
const DPKG_SCRATCH: &[&str] = &[
    "var/lib/dpkg/status",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/lock",
    "var/lib/dpkg/lock-frontend",
    "var/lib/dpkg/triggers",
    "var/lib/dpkg/updates",
    "var/cache/debconf/*-old",
    "usr/sbin/policy-rc.d",
];

/// The script that runs in the sandbox: `$@` are the packages in
/// dependency order.
const DRIVER: &str = r#"set -u
info=/var/lib/dpkg/info
mkdir -p "$info" /var/lib/dpkg/updates /var/lib/dpkg/triggers /usr/sbin
for f in /run/strata-dpkg-info/*; do [ -e "$f" ] && cp -p "$f" "$info/"; done
# dpkg's database as after an install: what is beneath and these packages.
[ -e /var/lib/dpkg/status ] || : > /var/lib/dpkg/status
for f in /var/lib/dpkg/status.d/*; do
  case "$f" in *.md5sums) ;; *) [ -f "$f" ] && { cat "$f"; echo; } ;; esac
done >> /var/lib/dpkg/status
made_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  made_policy=1
fi
step() {
  p=$1; s=$2; shift 2
  f="$info/$p.$s"
  [ -e "$f" ] || return 0
  echo "strata: $p $s $*"
  DPKG_MAINTSCRIPT_PACKAGE=$p DPKG_MAINTSCRIPT_NAME=$s "$f" "$@" </dev/null
  st=$?
  if [ "$st" != 0 ]; then
    echo "strata: $p $s $* failed with exit status $st"
    exit "$st"
  fi
}
for p in "$@"; do step "$p" preinst install; done
for p in "$@"; do step "$p" postinst configure; done
if command -v ldconfig >/dev/null 2>&1; then ldconfig || exit $?; fi
[ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
exit 0
"#;

/// The key of a configured deb layer's script blob (and of the layer):
/// the packages' key and the keys of the layers beneath, in order.
pub fn key(data: &Digest, below: &[(&str, Digest)]) -> Digest {
    let mut h = Hasher::new();
    super::source::put(
        &mut h,
        format!("strata-deb-configure-format-{CONFIGURE_FORMAT}").as_bytes(),
    );
    super::source::put(&mut h, data.hex().as_bytes());
    for (name, k) in below {
        super::source::put(&mut h, name.as_bytes());
        super::source::put(&mut h, k.hex().as_bytes());
    }
    h.finish()
}

/// What running the scripts needs besides the resolution.
pub struct ConfigureContext<'a> {
    /// The layer's name.
    pub name: &'a str,
    /// Its layer.toml, relative to the project (for messages).
    pub rel: &'a str,
    /// The layer's key (names its log).
    pub key: &'a Digest,
    /// The store.
    pub store: &'a Store,
    /// The layers beneath and the layer's own package blobs, base first.
    pub lowers: Vec<Arc<dyn Layer>>,
    /// SOURCE_DATE_EPOCH and the mtime clamp.
    pub epoch: u64,
    /// The layer writer (compression, threads, annotations).
    pub builder: LayerBuilder,
    /// Where the scripts' output goes.
    pub echo: &'a super::echo::Echo,
}

/// Runs the maintainer scripts of `res`'s packages and captures what they
/// write. `None` when no package has a `preinst` or `postinst`.
pub fn configure(res: &Resolution, cx: &ConfigureContext<'_>) -> Result<Option<StoreLayer>> {
    let cache = DebCache::new(cx.store)?;
    super::debsrc::fetch_all(&cache, &res.packages, &Default::default())?;
    let work = crate::sandbox::work_dir(cx.store.root())?;
    let staged = tempfile::Builder::new()
        .prefix(".tmp-dpkg-info-")
        .tempdir_in(&work)
        .at(&work)?;
    let mut any_script = false;
    for p in &res.packages {
        let control = crate::deb::layer::read_control(&cache, p)?;
        any_script |= control
            .scripts
            .iter()
            .any(|s| s == "preinst" || s == "postinst");
        for (member, mode, bytes) in &control.info {
            let path = staged.path().join(format!("{}.{member}", p.name));
            std::fs::write(&path, bytes).at(&path)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).at(&path)?;
            crate::sandbox::rootfs::set_mtime(&path, cx.epoch as i64)?;
        }
    }
    if !any_script {
        return Ok(None);
    }
    let guard = crate::sandbox::interrupt::Guard::install();
    let stopped = || Error::Interrupted {
        what: format!("the maintainer scripts of layer {}", cx.name),
    };
    let who = format!(
        "the maintainer scripts of layer {} ({}, configure = true)",
        cx.name, cx.rel
    );
    let (snaps, mut mounted) = super::step::mount_for(cx.store, &cx.lowers, &who)?;
    let (log_file, mut log) = super::step::create_log(cx.store, cx.key)?;
    let line = |l: &str| cx.echo.line(l);
    let mut args = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        DRIVER.to_string(),
        "strata-configure".to_string(),
    ];
    args.extend(res.packages.iter().map(|p| p.name.clone()));
    let _ = writeln!(log, "$ configure {}", args[4..].join(" "));
    let spec = RunSpec {
        args,
        env: env(&res.arch, cx.epoch),
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        network: Network::None,
        mounts: vec![BindMount {
            source: staged.path().to_path_buf(),
            target: INFO_MOUNT.into(),
            readonly: true,
        }],
        timeout: None,
        terminal: false,
    };
    let outcome = mounted
        .run(
            &spec,
            &mut Output {
                log: &mut log,
                line: &line,
                redact: &[],
            },
        )
        .map_err(|e| match e {
            Error::Interrupted { .. } => stopped(),
            e => e,
        })?;
    if outcome.status != 0 {
        let what = outcome
            .tail
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("strata: ").map(str::to_string))
            .filter(|w| w.contains(" failed with exit status "))
            .unwrap_or_else(|| {
                format!(
                    "the maintainer scripts' driver failed with exit status {}",
                    outcome.status
                )
            });
        return Err(Error::invalid(
            "maintainer scripts",
            format!("layer {} ({})", cx.name, cx.rel),
            format!(
                "{what}; the last lines:\n{}\nthe whole log is {}; \
                 leave configure out of [source.deb] to build the layer without its scripts",
                super::step::indented(&outcome.tail),
                log_file.display()
            ),
        ));
    }
    if guard.interrupted() {
        return Err(stopped());
    }
    mounted.unmount()?;
    // The default excludes apply too (default_excludes).
    let spec = CaptureSpec {
        epoch: cx.epoch,
        outputs: Vec::new(),
        excludes: DPKG_SCRATCH.iter().map(|s| s.to_string()).collect(),
        stubs: mounted.stubs(),
        lowers: snaps,
        default_excludes: true,
        xattrs: Vec::new(),
    };
    capture(&mounted.upper(), &spec, &cx.builder, cx.store)
        .map(Some)
        .map_err(|e| match e {
            Error::Invalid { what, detail, .. } if what == "build step" => Error::invalid(
                "maintainer scripts",
                format!("layer {} ({})", cx.name, cx.rel),
                detail,
            ),
            e => e,
        })
}

/// The scripts' environment: fixed, as dpkg sets it for maintainer scripts.
fn env(arch: &str, epoch: u64) -> Vec<String> {
    let mut env = vec![
        format!("PATH={}", super::step::DEFAULT_PATH),
        "LANG=C.UTF-8".into(),
        "TZ=UTC".into(),
        format!("SOURCE_DATE_EPOCH={epoch}"),
        "HOME=/root".into(),
        "DEBIAN_FRONTEND=noninteractive".into(),
        "DEBCONF_NONINTERACTIVE_SEEN=true".into(),
        "DPKG_ADMINDIR=/var/lib/dpkg".into(),
        "DPKG_ROOT=".into(),
        format!("DPKG_MAINTSCRIPT_ARCH={arch}"),
        "DPKG_RUNNING_VERSION=1.21.22".into(),
        "DPKG_FRONTEND_LOCKED=1".into(),
    ];
    env.sort();
    env
}
