//! The OCI runtime: a `config.json` for one command, run with `runc` (or
//! `crun`) as a foreground container with no terminal.
//!
//! Isolation: mount, pid, ipc, uts and network namespaces (network shared
//! with the host only when asked), a fixed hostname, Docker's default
//! capability set, `/proc`, a minimal `/dev`, `/sys` read-only, a private
//! `/tmp` shared by the commands of one step, and no host path but the declared bind mounts.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Network, RunSpec};

/// Docker's default capabilities (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The hostname every sandbox gets.
pub const HOSTNAME: &str = "strata";

/// The runtime binary: `runc`, else `crun`, on PATH.
pub fn find_runtime() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["runc", "crun"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The runtime spec for `spec` over the root filesystem `rootfs`, with
/// the host directory `tmp` as its /tmp.
pub fn config(spec: &RunSpec, rootfs: &Path, tmp: &Path) -> Value {
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if spec.network == Network::None {
        namespaces.push(json!({"type": "network"}));
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/tmp", "type": "bind", "source": tmp,
               "options": ["rbind", "nosuid", "nodev", "rw"]}),
    ];
    if spec.network == Network::Host {
        for f in ["/etc/resolv.conf", "/etc/hosts"] {
            if Path::new(f).exists() {
                mounts.push(json!({"destination": f, "type": "bind", "source": f,
                                   "options": ["rbind", "ro"]}));
            }
        }
    }
    for m in &spec.mounts {
        let mut options = vec!["rbind", "nosuid", "nodev"];
        options.push(if m.readonly { "ro" } else { "rw" });
        mounts.push(json!({"destination": m.target, "type": "bind",
                           "source": m.source, "options": options}));
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": spec.terminal,
            "user": {"uid": spec.uid, "gid": spec.gid, "additionalGids": spec.groups, "umask": 18},
            "args": spec.args,
            "env": spec.env,
            "cwd": spec.cwd,
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS,
            },
            "noNewPrivileges": true,
        },
        "root": {"path": rootfs, "readonly": false},
        "hostname": HOSTNAME,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    })
}
