//! The build sandbox on its own: layers unpacked by diff_id, an overlay
//! stack, a command under runc, the upper directory captured as a layer.

mod common;

use std::fs;
use std::sync::Arc;

use common::BUSYBOX;
use strata::layer::{Compression, Layer, LayerBuilder, Mapping};
use strata::sandbox::capture::{CaptureSpec, capture};
use strata::sandbox::{Output, RunSpec, Sandbox};
use strata::store::Store;

/// Whether this machine can run the sandbox (root and runc); records a
/// skip otherwise.
fn can_run(check: &str) -> bool {
    let root = unsafe { geteuid() } == 0;
    if !root || !common::have("runc") {
        common::note(check, "SKIPPED (needs root and runc)");
        return false;
    }
    true
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

/// A busybox layer: /bin/busybox, /bin/sh -> busybox, /etc/passwd.
fn busybox_layer(dir: &std::path::Path, store: &Store) -> Arc<dyn Layer> {
    let root = dir.join("rootfs");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n",
    )
    .unwrap();
    fs::write(root.join("etc/gone"), "removed by the step").unwrap();
    Arc::new(
        LayerBuilder::new()
            .compression(Compression::gzip())
            .mtime(1_700_000_000)
            .mapping(Mapping::new(&root, "/").unwrap())
            .build(store)
            .unwrap(),
    )
}

fn sh(cmd: &str) -> RunSpec {
    RunSpec {
        args: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        ..Default::default()
    }
}

/// (path, kind) of each entry of a captured layer.
type Listing = Vec<(String, char)>;

/// Runs `cmd` over `lowers`, returning (status, lines, layer entries).
fn run_and_capture(
    store: &Store,
    lowers: &[Arc<dyn Layer>],
    cmd: &str,
) -> (i32, Vec<String>, Option<Listing>) {
    let sandbox = Sandbox::new(store.root()).unwrap();
    let snaps = sandbox.snapshots(lowers).unwrap();
    let mut mounted = sandbox.mount(&snaps).unwrap();
    let mut log = Vec::new();
    let lines = std::sync::Mutex::new(Vec::new());
    let line = |l: &str| lines.lock().unwrap().push(l.to_string());
    let outcome = mounted
        .run(
            &sh(cmd),
            &mut Output {
                log: &mut log,
                line: &line,
                redact: &[],
            },
        )
        .unwrap();
    mounted.unmount().unwrap();
    let spec = CaptureSpec {
        epoch: 1_700_000_000,
        stubs: mounted.stubs(),
        lowers: snaps,
        ..Default::default()
    };
    let lb = LayerBuilder::new()
        .compression(Compression::gzip())
        .mtime(1_700_000_000);
    let entries = capture(&mounted.upper(), &spec, &lb, store)
        .ok()
        .map(|layer| {
            let mut out = Vec::new();
            let mut ar = tar::Archive::new(strata::layer::uncompressed(&layer).unwrap());
            for e in ar.entries().unwrap() {
                let e = e.unwrap();
                let t = match e.header().entry_type() {
                    tar::EntryType::Directory => 'd',
                    tar::EntryType::Symlink => 'l',
                    tar::EntryType::Link => 'h',
                    _ => 'f',
                };
                out.push((e.path().unwrap().display().to_string(), t));
            }
            out
        });
    let lines = lines.into_inner().unwrap();
    (outcome.status, lines, entries)
}

#[test]
fn a_command_runs_over_the_layers_and_its_writes_become_a_layer() {
    if !can_run("sandbox: run and capture") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let base = busybox_layer(dir.path(), &store);
    let (status, lines, entries) = run_and_capture(
        &store,
        &[Arc::clone(&base)],
        "echo hello > /hello.txt; mkdir -p /opt/x; echo y > /opt/x/y; rm /etc/gone; echo tmp > /tmp/t; hostname; id -u; echo done",
    );
    assert_eq!(status, 0, "{lines:?}");
    assert_eq!(lines, ["strata", "0", "done"]);
    let entries = entries.expect("a layer");
    assert_eq!(
        entries,
        [
            ("etc/".to_string(), 'd'),
            ("etc/.wh.gone".to_string(), 'f'),
            ("hello.txt".to_string(), 'f'),
            ("opt/".to_string(), 'd'),
            ("opt/x/".to_string(), 'd'),
            ("opt/x/y".to_string(), 'f'),
        ],
        "whiteout for the removed file, no /tmp, no mount stubs"
    );
    // The snapshot is kept by diff_id and reused.
    let snap = strata::sandbox::rootfs::snapshots_dir(store.root()).join(base.diff_id().hex());
    assert!(snap.join("bin/busybox").is_file());
    common::note("sandbox: run and capture", "RAN");
}

#[test]
fn the_sandbox_has_no_network_and_no_host_paths() {
    if !can_run("sandbox: isolation") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let base = busybox_layer(dir.path(), &store);
    let (status, lines, _) = run_and_capture(
        &store,
        &[base],
        &format!(
            "ls /sys/class/net; test -e {} && echo host-visible; touch /sys/x 2>/dev/null || echo sys-ro; echo end",
            dir.path().display()
        ),
    );
    assert_eq!(status, 0, "{lines:?}");
    assert_eq!(lines, ["lo", "sys-ro", "end"]);
}

#[test]
fn a_failing_command_reports_its_status_and_output() {
    if !can_run("sandbox: failure") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let base = busybox_layer(dir.path(), &store);
    let (status, lines, _) = run_and_capture(&store, &[base], "echo before; exit 7");
    assert_eq!((status, lines), (7, vec!["before".to_string()]));
}

#[test]
fn users_resolve_in_the_lower_rootfs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1001::/home/bob:/bin/sh\n",
    )
    .unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
    use strata::sandbox::resolve_user;
    assert_eq!(
        resolve_user(root, "bob").unwrap(),
        (1000, 1001, "/home/bob".into())
    );
    assert_eq!(
        resolve_user(root, "bob:staff").unwrap(),
        (1000, 50, "/home/bob".into())
    );
    assert_eq!(resolve_user(root, "0").unwrap(), (0, 0, "/root".into()));
    assert_eq!(resolve_user(root, "1234:5").unwrap(), (1234, 5, "/".into()));
    let e = resolve_user(root, "alice").unwrap_err().to_string();
    assert!(e.contains("alice") && e.contains("/etc/passwd"), "{e}");
    let e = resolve_user(root, "bob:nogroup").unwrap_err().to_string();
    assert!(e.contains("nogroup"), "{e}");
}
