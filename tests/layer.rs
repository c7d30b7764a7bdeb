//! The deterministic layer writer: entry kinds, golden digests,
//! reproducibility, and bad input.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{Env, files_under, make_tree};
use strata::layer::{Compression, Layer, LayerBuilder, Mapping, uncompressed};
use strata::store::Store;

#[derive(Debug, Clone, PartialEq)]
struct Seen {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    size: u64,
    link: Option<String>,
    content: Vec<u8>,
    /// Position in the archive.
    index: usize,
}

fn read_layer(layer: &dyn Layer) -> BTreeMap<String, Seen> {
    let mut ar = tar::Archive::new(uncompressed(layer).unwrap());
    let mut out = BTreeMap::new();
    for (index, e) in ar.entries().unwrap().enumerate() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        assert_eq!(
            h.username_bytes().unwrap_or_default(),
            b"",
            "uname must be empty"
        );
        assert_eq!(
            h.groupname_bytes().unwrap_or_default(),
            b"",
            "gname must be empty"
        );
        let kind = match h.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Regular => 'f',
            t => panic!("unexpected entry type {t:?}"),
        };
        let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8(l.into_owned()).unwrap());
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        out.insert(
            path,
            Seen {
                kind,
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
                size: e.size(),
                link,
                content,
                index,
            },
        );
    }
    out
}

fn build(src: &Path, store: &Store, c: Compression, threads: usize) -> strata::layer::StoreLayer {
    LayerBuilder::new()
        .mapping(Mapping::new(src, "/").unwrap())
        .compression(c)
        .threads(threads)
        .mtime(1_700_000_000)
        .build(store)
        .unwrap()
}

#[test]
fn every_entry_kind_is_written_with_the_header_policy() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    let store = Store::open_or_create(env.store()).unwrap();
    let layer = build(&src, &store, Compression::gzip(), 2);
    let seen = read_layer(&layer);

    let long_file = format!("{}/{}", "d".repeat(120), "f".repeat(110));
    let very_long = format!("{}/{}", "x".repeat(200), "y".repeat(150));
    assert_eq!(seen["bin/tool"].kind, 'f');
    assert_eq!(seen["bin/tool"].mode, 0o755);
    assert_eq!(seen["bin/suid"].mode, 0o4755, "setuid kept");
    assert_eq!(seen["bin/sgid"].mode, 0o2755, "setgid kept");
    assert_eq!(seen["tmp/"].mode, 0o1777, "sticky kept");
    assert_eq!(seen["empty/dir/"].kind, 'd', "empty directory kept");
    assert_eq!(seen["bin/config-link"].kind, 'l');
    assert_eq!(
        seen["bin/config-link"].link.as_deref(),
        Some("../etc/config")
    );
    let long_target = format!("/{}", "t".repeat(150));
    assert_eq!(
        seen["bin/long-link"].link.as_deref(),
        Some(long_target.as_str()),
        "long link target"
    );
    assert_eq!(
        seen["bin/tool-hardlink"].kind, 'h',
        "second name of an inode is a link entry"
    );
    assert_eq!(seen["bin/tool-hardlink"].link.as_deref(), Some("bin/tool"));
    assert_eq!(seen[&long_file].content, b"long name");
    assert_eq!(seen[&very_long].content, b"very long name");
    assert_eq!(seen[&very_long].mode, 0o600);
    assert_eq!(seen["data/big.bin"].size, 3_000_000);
    for (path, s) in &seen {
        assert_eq!(s.mtime, 1_700_000_000, "{path}: mtime is SOURCE_DATE_EPOCH");
        assert_eq!((s.uid, s.gid), (0, 0), "{path}: owner 0:0");
    }
    // In the archive: sorted by path, and every parent before its children.
    let mut order: Vec<(&String, usize)> = seen.iter().map(|(p, s)| (p, s.index)).collect();
    order.sort_by_key(|&(_, i)| i);
    let names: Vec<&str> = order.iter().map(|(p, _)| p.trim_end_matches('/')).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "archive order is path order");
    for (path, s) in &seen {
        let mut parent = Path::new(path.trim_end_matches('/')).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let dir = format!("{}/", p.display());
            assert!(seen[&dir].index < s.index, "{dir} before {path}");
            parent = p.parent();
        }
    }

    // GNU tar agrees on the long names and the link.
    let blob = store.root().join("blobs/sha256").join(layer.digest().hex());
    let listing = common::run(Command::new("tar").arg("-tvzf").arg(&blob));
    assert!(listing.contains(&very_long), "{listing}");
    assert!(
        listing.contains("bin/tool-hardlink link to bin/tool"),
        "{listing}"
    );
}

#[test]
fn owner_and_mode_overrides_apply_per_mapping() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    let store = Store::open_or_create(env.store()).unwrap();
    let layer = LayerBuilder::new()
        .mapping(
            Mapping::new(src.join("etc"), "/etc")
                .unwrap()
                .owner(1000, 1001),
        )
        .mapping(
            Mapping::new(src.join("bin/tool"), "/usr/bin/tool")
                .unwrap()
                .mode(0o700),
        )
        .build(&store)
        .unwrap();
    let seen = read_layer(&layer);
    assert_eq!(
        (seen["etc/config"].uid, seen["etc/config"].gid),
        (1000, 1001)
    );
    assert_eq!(seen["usr/bin/tool"].mode, 0o700);
    // Implied parents are plain 0755 root directories.
    assert_eq!(seen["usr/"].mode, 0o755);
    assert_eq!(seen["usr/bin/"].kind, 'd');
}

/// Golden digests: a change in the tar policy, libdeflate or libzstd that
/// alters the bytes fails here. Update only together with
/// LAYER_FORMAT_VERSION.
#[test]
fn golden_digests() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    let store = Store::open_or_create(env.store()).unwrap();
    let mut got = Vec::new();
    for c in [Compression::gzip(), Compression::zstd(), Compression::None] {
        let l = build(&src, &store, c, 3);
        got.push((
            c.to_string(),
            l.diff_id().to_string(),
            l.digest().to_string(),
        ));
    }
    let diff_id = "sha256:0cef27c0b735e0f1271c5c2e2912292ac31e1dedd0b03ca1bb9cb4ee98e26602";
    let want = [
        (
            "gzip:2",
            diff_id,
            "sha256:b529420996968c8701eb56c979cfe49c123cd2e6520c7ea9eb4ec63768e32e0e",
        ),
        (
            "zstd:3",
            diff_id,
            "sha256:f646600174d01e9f1235775c3d001a20939809b912075a5506ac647854b16a24",
        ),
        ("none", diff_id, diff_id),
    ];
    for ((c, d, g), (wc, wd, wg)) in got.iter().zip(want) {
        assert_eq!(c, wc);
        assert_eq!(d, wd, "{c}: diff_id changed");
        assert_eq!(g, wg, "{c}: blob digest changed");
    }
}

#[test]
fn bytes_do_not_depend_on_thread_count_or_location() {
    let env = Env::new();
    let (a, b) = (env.path("a/src"), env.path("b/deeper/src"));
    make_tree(&a);
    make_tree(&b);
    // Different mtimes on the second copy.
    common::run(Command::new("find").arg(&b).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        "2001-02-03 04:05:06",
        "{}",
        "+",
    ]));
    let store = Store::open_or_create(env.store()).unwrap();
    for c in [Compression::gzip(), Compression::zstd()] {
        let one = build(&a, &store, c, 1);
        let many = build(&b, &store, c, 4);
        assert_eq!(one.digest(), many.digest(), "{c}");
        assert_eq!(one.diff_id(), many.diff_id(), "{c}");
    }
}

#[test]
fn missing_source_is_an_error_naming_it_and_writes_nothing() {
    let env = Env::new();
    env.ok(&["store", "path"]);
    let before = files_under(&env.store());
    let missing = env.path("nope");
    let err = env.fails(&[
        "new",
        "--add",
        &format!("{}:/x", missing.display()),
        "--tag",
        "t",
    ]);
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(files_under(&env.store()), before);
}

#[test]
fn unreadable_file_is_an_error_naming_it_and_writes_nothing() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("ok"), b"fine").unwrap();
    fs::write(src.join("secret"), b"no").unwrap();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    let store = env.store();
    Store::open_or_create(&store).unwrap();
    let before = files_under(&store);
    // Root reads anything, so as root run strata as nobody.
    let is_root = unsafe { libc_geteuid() } == 0;
    let out = if is_root {
        common::run(
            Command::new("chown")
                .args(["-R", "65534:65534"])
                .arg(env.dir.path()),
        );
        fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_strata"))
            .args([
                "new",
                "--add",
                &format!("{}:/", src.display()),
                "--tag",
                "t",
            ])
            .env("STRATA_STORE", &store)
            .output()
            .unwrap()
    } else {
        env.strata(&[
            "new",
            "--add",
            &format!("{}:/", src.display()),
            "--tag",
            "t",
        ])
    };
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("secret") && err.contains("Permission denied"),
        "{err}"
    );
    assert_eq!(
        files_under(&store),
        before,
        "nothing may be left in the store"
    );
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[test]
fn a_file_that_grows_while_read_is_an_error_and_writes_nothing() {
    // /proc files stat as 0 bytes but have content: deterministic growth.
    let env = Env::new();
    env.ok(&["store", "path"]);
    let before = files_under(&env.store());
    let err = env.fails(&["new", "--add", "/proc/self/status:/status", "--tag", "t"]);
    assert!(
        err.contains("/proc/self/status") && err.contains("grew"),
        "{err}"
    );
    assert_eq!(files_under(&env.store()), before);
}

#[test]
fn a_file_appended_to_during_the_build_is_an_error() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let path = src.join("log");
    fs::write(&path, vec![b'x'; 64 << 20]).unwrap();
    let store = Store::open_or_create(env.store()).unwrap();
    let before = files_under(store.root());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (started, appending) = std::sync::mpsc::channel();
    let appender = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(b"more\n").unwrap();
            started.send(()).unwrap();
            // Appends until the build has ended, so the file grows while it
            // is read whatever the scheduling.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_all(b"more\n").unwrap();
                std::thread::yield_now();
            }
        })
    };
    appending.recv().unwrap();
    let r = LayerBuilder::new()
        .mapping(Mapping::new(&src, "/").unwrap())
        .compression(Compression::None)
        .build(&store);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    appender.join().unwrap();
    let err = r
        .expect_err("a growing file must fail the build")
        .to_string();
    assert!(
        err.contains("log") && err.contains("changed while it was being read"),
        "{err}"
    );
    assert_eq!(files_under(store.root()), before);
}

#[test]
fn special_files_and_bad_destinations_are_refused() {
    let env = Env::new();
    let fifo = env.path("fifo");
    common::run(Command::new("mkfifo").arg(&fifo));
    let err = env.fails(&[
        "new",
        "--add",
        &format!("{}:/fifo", fifo.display()),
        "--tag",
        "t",
    ]);
    assert!(err.contains("FIFO"), "{err}");
    let err = env.fails(&["new", "--add", "/bin/busybox:relative/path", "--tag", "t"]);
    assert!(err.contains("absolute"), "{err}");
    let err = env.fails(&["new", "--add", "/bin/busybox:/a/../b", "--tag", "t"]);
    assert!(err.contains(".."), "{err}");
}

#[test]
fn xattrs_are_recorded_only_when_asked_for() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let file = src.join("f");
    fs::write(&file, b"x").unwrap();
    let c_path = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
    let (name, value) = (c"user.strata.test", b"v1");
    // SAFETY: valid C strings and buffer.
    let rc = unsafe {
        setxattr(
            c_path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        common::note(
            "user xattrs in layers",
            "SKIPPED (the temp file system does not support user xattrs)",
        );
        return;
    }
    let store = Store::open_or_create(env.store()).unwrap();
    let pax_of = |layer: &dyn Layer| -> Vec<(String, Vec<u8>)> {
        let mut ar = tar::Archive::new(uncompressed(layer).unwrap());
        let mut out = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            if let Some(exts) = e.pax_extensions().unwrap() {
                for x in exts {
                    let x = x.unwrap();
                    out.push((x.key().unwrap().to_string(), x.value_bytes().to_vec()));
                }
            }
        }
        out
    };
    let without = LayerBuilder::new()
        .mapping(Mapping::new(&src, "/").unwrap())
        .build(&store)
        .unwrap();
    assert!(pax_of(&without).is_empty(), "xattrs are off by default");
    let with = LayerBuilder::new()
        .mapping(Mapping::new(&src, "/").unwrap())
        .xattrs(true)
        .build(&store)
        .unwrap();
    let pax = pax_of(&with);
    assert!(
        pax.contains(&("SCHILY.xattr.user.strata.test".to_string(), b"v1".to_vec())),
        "{pax:?}"
    );
}

unsafe extern "C" {
    fn setxattr(
        path: *const std::ffi::c_char,
        name: *const std::ffi::c_char,
        value: *const std::ffi::c_void,
        size: usize,
        flags: i32,
    ) -> i32;
}

/// File data is read straight into 1 MiB compression blocks, asking for
/// one byte more than is left: sizes around the block boundaries (and the
/// 512-byte tar records) must come back whole, with the same tar stream
/// (diff_id) whatever the compression or thread count.
#[test]
fn files_straddling_compression_blocks_come_back_whole() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let block = strata::layer::GZIP_BLOCK;
    let sizes = [
        0,
        1,
        511,
        512,
        block - 1024,
        block - 512,
        block - 1,
        block,
        block + 1,
        2 * block + 513,
    ];
    let mut want = BTreeMap::new();
    for (i, &n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..n).map(|j| (j * 31 + i * 7) as u8).collect();
        let name = format!("f{i:02}");
        fs::write(src.join(&name), &data).unwrap();
        want.insert(name, data);
    }
    let store = Store::open_or_create(env.store()).unwrap();
    let mut diff_ids = Vec::new();
    for (c, threads) in [
        (Compression::gzip(), 1),
        (Compression::gzip(), 3),
        (Compression::zstd(), 2),
        (Compression::None, 1),
    ] {
        let layer = build(&src, &store, c, threads);
        let seen = read_layer(&layer);
        for (name, data) in &want {
            assert_eq!(&seen[name].content, data, "{name} with {c}");
        }
        diff_ids.push(layer.diff_id());
    }
    assert!(diff_ids.windows(2).all(|w| w[0] == w[1]), "{diff_ids:?}");
}

/// Two sources clashing mid-walk (a path given twice; a destination below
/// another source's symlink) fail with the path named, after the blob
/// writer has started: its temp file must be gone and nothing tagged.
#[test]
fn sources_that_clash_fail_mid_walk_and_leave_nothing() {
    let env = Env::new();
    env.ok(&["store", "path"]);
    let before = files_under(&env.store());
    let root = env.path("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/motd"), "hi\n").unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    let tree = format!("{}:/", root.display());
    let err = env.fails(&[
        "new",
        "--add",
        &tree,
        "--add",
        "/bin/busybox:/etc/motd",
        "--tag",
        "t",
    ]);
    assert!(err.contains("/etc/motd is given twice"), "{err}");
    let err = env.fails(&[
        "new",
        "--add",
        &tree,
        "--add",
        "/bin/busybox:/bin/sh",
        "--tag",
        "t",
    ]);
    assert!(err.contains("/bin is not a directory"), "{err}");
    assert_eq!(files_under(&env.store()), before, "nothing written");
}
