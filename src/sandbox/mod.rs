//! The build sandbox: commands run by an OCI runtime over a stack of
//! layers, their writes collected in an overlay upper directory.
//!
//! It knows layers and a runtime, not projects (as BuildKit's executor
//! sits beside its solver): [`rootfs`] keeps unpacked layers by diff_id,
//! [`runc`] writes the runtime spec, [`capture`] turns an upper directory
//! into layer entries. Build steps, `strata run` and tests use it.
//!
//! What needs root: mounting overlay and running the runtime with new
//! namespaces. strata does not run rootless yet.

pub mod canon;
pub mod capture;
mod copyfs;
pub mod foreign;
pub(crate) mod interrupt;
pub mod mounts;
pub mod rootfs;
pub mod runc;

use std::collections::VecDeque;
use std::ffi::CString;
use std::io::{BufRead, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};
use crate::layer::Layer;

/// Network access of a sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Network {
    /// A fresh network namespace with only loopback.
    #[default]
    None,
    /// The host's network.
    Host,
}

/// A host path bind-mounted into the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    /// Host path.
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: String,
    /// Mounted read-only.
    pub readonly: bool,
}

/// One command to run.
#[derive(Clone, Debug, Default)]
pub struct RunSpec {
    /// argv.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    /// Working directory (absolute).
    pub cwd: String,
    /// User.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Network access.
    pub network: Network,
    /// Bind mounts.
    pub mounts: Vec<BindMount>,
    /// Kill the command after this long.
    pub timeout: Option<Duration>,
    /// Give the command the caller's terminal (only with
    /// [`Mounted::run_attached`]).
    pub terminal: bool,
}

/// How a command ended.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status (128 + signal when killed).
    pub status: i32,
    /// The last lines it printed (stdout and stderr), at most 20.
    pub tail: Vec<String>,
    /// Whether the timeout killed it.
    pub timed_out: bool,
}

/// Where a sandbox's output goes: each line, to the log file and (prefixed)
/// to the caller.
pub struct Output<'a> {
    /// The full log.
    pub log: &'a mut (dyn Write + Send),
    /// Each line as it comes (e.g. to the terminal with a prefix).
    pub line: &'a (dyn Fn(&str) + Sync),
    /// Values (secrets) replaced by `***` in every line before it goes
    /// anywhere.
    pub redact: &'a [Vec<u8>],
}

/// The runtime and the place for snapshots and work directories.
pub struct Sandbox {
    runtime: PathBuf,
    store_root: PathBuf,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Where sandboxes keep their work directories (overlay upper and work
/// directories, bundles, staged inputs, secrets): `STORE/.strata/run`,
/// created when missing.
pub fn work_dir(store_root: &Path) -> Result<PathBuf> {
    let dir = store_root.join(".strata/run");
    std::fs::create_dir_all(&dir).at(&dir)?;
    Ok(dir)
}

impl Sandbox {
    /// A sandbox using the runtime on PATH (`runc`, else `crun`), keeping
    /// snapshots and work directories under `store_root/.strata`.
    pub fn new(store_root: &Path) -> Result<Self> {
        let runtime = runc::find_runtime().ok_or_else(|| {
            Error::Unsupported(
                "no OCI runtime found: build steps and `strata run` need runc (Debian package runc) or crun on PATH".into(),
            )
        })?;
        Ok(Sandbox {
            runtime,
            store_root: store_root.to_path_buf(),
        })
    }

    /// Unpacks (or finds) the snapshots of `layers`, base first.
    pub fn snapshots(&self, layers: &[Arc<dyn Layer>]) -> Result<Vec<PathBuf>> {
        layers
            .iter()
            .map(|l| rootfs::snapshot(&self.store_root, l.as_ref()))
            .collect()
    }

    /// Mounts an overlay of `lowers` (base first) with a fresh upper
    /// directory; the commands run in it.
    pub fn mount(&self, lowers: &[PathBuf]) -> Result<Mounted> {
        let dir = work_dir(&self.store_root)?;
        let work = tempfile::Builder::new()
            .prefix(".tmp-run-")
            .tempdir_in(&dir)
            .at(&dir)?;
        let w = work.path();
        for d in ["upper", "work", "merged", "bundle", "state", "tmp"] {
            std::fs::create_dir(w.join(d)).at(w.join(d))?;
        }
        // /tmp of the commands: one directory for all of them (a step's
        // commands share it, as a RUN's do), never part of the capture.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(w.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .at(w.join("tmp"))?;
        // An empty stack still needs one lower directory.
        let empty = w.join("empty");
        std::fs::create_dir(&empty).at(&empty)?;
        let mut lower: Vec<String> = lowers
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect();
        if lower.is_empty() {
            lower.push(empty.display().to_string());
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            w.join("upper").display(),
            w.join("work").display()
        );
        if opts.len() >= 4000 {
            return Err(Error::Unsupported(format!(
                "{} layers are too many to stack in one overlay mount",
                lowers.len()
            )));
        }
        let merged = w.join("merged");
        let mode = RootfsMode::from_env()?;
        let overlay = match mode {
            RootfsMode::Copy => Err(std::io::Error::from_raw_os_error(libc::ENODEV)),
            _ => mount_overlay(&merged, &opts),
        };
        let copied = match overlay {
            Ok(()) => None,
            Err(e) if mode == RootfsMode::Overlay || unsafe { libc::geteuid() } != 0 => {
                return Err(Error::Unsupported(format!(
                    "cannot mount an overlay filesystem at {} ({e}); build steps need root and a kernel with overlayfs (or {ROOTFS_ENV}=copy)",
                    merged.display()
                )));
            }
            Err(e) => {
                if mode == RootfsMode::Auto {
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| {
                        eprintln!(
                            "warning: overlayfs cannot be mounted here ({e}): the sandbox copies the layers into a plain directory and compares it afterwards, which is slower and uses as much disk as the layers"
                        )
                    });
                }
                Some(copyfs::copy_stack(lowers, &merged).map_err(|e| no_space(e, &dir))?)
            }
        };
        Ok(Mounted {
            mounted: copied.is_none(),
            copied,
            work,
            runtime: self.runtime.clone(),
            stubs: Mutex::new(std::collections::BTreeSet::new()),
        })
    }
}

/// The environment variable that picks the sandbox's root filesystem:
/// `overlay`, `copy`, or unset (overlay where it mounts, else a copy).
pub const ROOTFS_ENV: &str = "STRATA_SANDBOX_ROOTFS";

/// How the sandbox makes its root filesystem.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RootfsMode {
    /// Overlay, else a copy (said once).
    Auto,
    /// Overlay only.
    Overlay,
    /// Always a copy.
    Copy,
}

impl RootfsMode {
    fn from_env() -> Result<Self> {
        match std::env::var(ROOTFS_ENV).as_deref() {
            Err(_) | Ok("") => Ok(RootfsMode::Auto),
            Ok("overlay") => Ok(RootfsMode::Overlay),
            Ok("copy") => Ok(RootfsMode::Copy),
            Ok(other) => Err(Error::bad_input(
                ROOTFS_ENV,
                format!("{other:?} is not overlay or copy"),
            )),
        }
    }
}

fn mount_overlay(merged: &Path, opts: &str) -> std::io::Result<()> {
    let c = |s: &str| CString::new(s).expect("no NUL");
    let target = CString::new(merged.as_os_str().as_bytes()).expect("no NUL");
    let rc = unsafe {
        libc::mount(
            c("overlay").as_ptr(),
            target.as_ptr(),
            c("overlay").as_ptr(),
            0,
            c(opts).as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A failed copy of the root filesystem: out of space says so, naming
/// where the copy goes.
fn no_space(e: Error, dir: &Path) -> Error {
    match &e {
        Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
            Error::Unsupported(format!(
                "overlayfs cannot be mounted here and there is no space in {} for a copy of the layers' root filesystem ({e}); free space there, or run where overlayfs mounts",
                dir.display()
            ))
        }
        _ => e,
    }
}

/// A mounted overlay stack; unmounted (and its directories removed) on drop.
pub struct Mounted {
    work: tempfile::TempDir,
    mounted: bool,
    /// With a copied root filesystem: its stamps, until the upper
    /// directory is made from them.
    copied: Option<copyfs::Stamps>,
    runtime: PathBuf,
    /// Every mount target of the runs so far (relative paths).
    stubs: Mutex<std::collections::BTreeSet<String>>,
}

impl Mounted {
    /// The merged root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.work.path().join("merged")
    }

    /// What the commands wrote (valid after [`Mounted::unmount`] too).
    pub fn upper(&self) -> PathBuf {
        self.work.path().join("upper")
    }

    /// The mount targets of the runs so far, relative: where the runtime
    /// may have made a stub that the capture must drop.
    pub fn stubs(&self) -> Vec<String> {
        self.stubs.lock().expect("lock").iter().cloned().collect()
    }

    /// Writes the runtime spec for `spec` (recording its mount targets as
    /// stubs) and returns the `runc run` command for it and the container id.
    fn container(&self, spec: &RunSpec) -> Result<(Command, String)> {
        let w = self.work.path();
        let bundle = w.join("bundle");
        let config = runc::config(spec, &self.rootfs(), &w.join("tmp"));
        if let Some(mounts) = config["mounts"].as_array() {
            let mut stubs = self.stubs.lock().expect("lock");
            for m in mounts {
                if let Some(d) = m["destination"].as_str() {
                    stubs.insert(d.trim_start_matches('/').to_string());
                }
            }
        }
        let path = bundle.join("config.json");
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&config).expect("serializes"),
        )
        .at(&path)?;
        let id = format!(
            "strata-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = self.runtime(&["run", "--bundle"]);
        c.arg(&bundle).arg(&id);
        Ok((c, id))
    }

    /// The runtime with this stack's state directory and `args`.
    fn runtime(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.runtime);
        c.arg("--root")
            .arg(self.work.path().join("state"))
            .args(args);
        c
    }

    /// Runs `spec` in the stack, streaming its output to `out`.
    pub fn run(&self, spec: &RunSpec, out: &mut Output<'_>) -> Result<Outcome> {
        let (mut run, id) = self.container(spec)?;
        let mut child = run
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(&self.runtime, e))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let readers: Vec<_> = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        .map(|r| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(r).split(b'\n') {
                    let Ok(line) = line else { break };
                    if tx
                        .send(String::from_utf8_lossy(&line).into_owned())
                        .is_err()
                    {
                        break;
                    }
                }
            })
        })
        .collect();
        drop(tx);
        let started = Instant::now();
        let mut timed_out = false;
        let guard = interrupt::Guard::install();
        let mut killed = false;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let line = mounts::redact(&line, out.redact);
                    let _ = writeln!(out.log, "{line}");
                    (out.line)(&line);
                    let mut t = tail.lock().expect("lock");
                    t.push_back(line);
                    if t.len() > 20 {
                        t.pop_front();
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            let out_of_time = spec.timeout.is_some_and(|l| started.elapsed() > l);
            if !killed && (out_of_time || guard.interrupted()) {
                killed = true;
                timed_out = out_of_time;
                let _ = self.runtime(&["kill", &id, "KILL"]).output();
            }
        }
        for r in readers {
            let _ = r.join();
        }
        let status = child.wait().map_err(|e| Error::io(&self.runtime, e))?;
        let _ = self.runtime(&["delete", "--force", &id]).output();
        let code = exit_code(status);
        if guard.interrupted() {
            return Err(Error::Interrupted {
                what: format!("`{}`", spec.args.join(" ")),
            });
        }
        let tail = tail.lock().expect("lock").iter().cloned().collect();
        Ok(Outcome {
            status: code,
            tail,
            timed_out,
        })
    }

    /// Runs `spec` with the caller's stdin, stdout and stderr (and
    /// terminal, with `spec.terminal`); returns its exit status. SIGINT and
    /// SIGTERM reach the command through the runtime, not strata.
    pub fn run_attached(&self, spec: &RunSpec) -> Result<i32> {
        let (mut run, id) = self.container(spec)?;
        let _guard = interrupt::Guard::install();
        let status = run.status().map_err(|e| Error::io(&self.runtime, e))?;
        let _ = self.runtime(&["delete", "--force", &id]).output();
        Ok(exit_code(status))
    }

    /// Unmounts the overlay (the upper directory stays until drop); with a
    /// copied root filesystem, makes the upper directory from it.
    pub fn unmount(&mut self) -> Result<()> {
        if let Some(stamps) = self.copied.take() {
            stamps.diff_into(&self.rootfs(), &self.upper())?;
        }
        if self.mounted {
            let merged = self.rootfs();
            let target = CString::new(merged.as_os_str().as_bytes()).expect("no NUL");
            if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
                return Err(Error::io(&merged, std::io::Error::last_os_error()));
            }
            self.mounted = false;
        }
        Ok(())
    }
}

/// An exit status as a shell reports it: the code, or 128 + the signal.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // Nothing to capture any more: no upper directory to make.
        self.copied = None;
        let _ = self.unmount();
    }
}

/// A user as `name`, `uid`, `uid:gid` or `name:group`, resolved in the
/// root filesystem `root` (its /etc/passwd and /etc/group): (uid, gid,
/// home).
pub fn resolve_user(root: &Path, user: &str) -> Result<(u32, u32, String)> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    let entry = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 7 && (f[0] == u || f[2] == u)).then(|| {
            (
                f[2].parse::<u32>().ok(),
                f[3].parse::<u32>().ok(),
                f[5].to_string(),
            )
        })
    });
    let uid = match (u.parse::<u32>(), &entry) {
        (Ok(n), _) => n,
        (Err(_), Some((Some(n), _, _))) => *n,
        _ => {
            return Err(Error::NotFound {
                what: format!("user {u:?}"),
                location: "/etc/passwd of the layers beneath".into(),
                hint: " (give a uid, or add the user in a layer beneath)".into(),
            });
        }
    };
    let gid = match g {
        None => entry.as_ref().and_then(|e| e.1).unwrap_or(uid),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let group = std::fs::read_to_string(root.join("etc/group")).unwrap_or_default();
                group
                    .lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() >= 3 && f[0] == g).then(|| f[2].parse::<u32>().ok())?
                    })
                    .ok_or_else(|| Error::NotFound {
                        what: format!("group {g:?}"),
                        location: "/etc/group of the layers beneath".into(),
                        hint: String::new(),
                    })?
            }
        },
    };
    let home = entry
        .map(|e| e.2)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| if uid == 0 { "/root".into() } else { "/".into() });
    Ok((uid, gid, home))
}
