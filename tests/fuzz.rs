//! Property tests of the readers that take hostile bytes: layer tars
//! (plain, gzip, zstd), PAX records, manifests, indexes and configs,
//! docker-archive manifest.json, and the Debian control, relation, version,
//! date and sources parsers. A bounded number of cases runs in the suite
//! (`PROPTEST_CASES` raises it for a longer run by hand; see fuzz/ for
//! cargo-fuzz targets). Invariants: no panic; reads bounded; what is
//! accepted obeys the rules it was accepted under, lists the same twice, and
//! (for tars) umoci, a Go reader, unpacks it with the same files.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::Config;

/// `default_cases` cases (or `PROPTEST_CASES`), from a fixed seed (or
/// `PROPTEST_SEED`), so a run in the suite is the same on every machine and
/// a failure is reproduced by running it again.
fn config(default_cases: u32) -> Config {
    let var = |k: &str| std::env::var(k).ok().and_then(|s| s.parse().ok());
    Config {
        cases: var("PROPTEST_CASES").map_or(default_cases, |n: u64| n as u32),
        rng_seed: proptest::test_runner::RngSeed::Fixed(
            var("PROPTEST_SEED").unwrap_or(0x5354_5241),
        ),
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------- tars

#[derive(Debug, Clone)]
enum Ent {
    File(String, Vec<u8>),
    Dir(String),
    Sym(String, String),
    /// A hardlink to an earlier entry (by index, modulo), or to `.1` when
    /// there is none or the flag says so.
    Hard(String, usize, bool, String),
}

/// Entry names: mostly plain, sometimes hostile (`..`, absolute, empty
/// parts, `.`), so that both accepted and refused layers come up.
fn name() -> impl Strategy<Value = String> {
    let plain = prop::collection::vec(
        prop::sample::select(vec!["a", "b", "c d", "é", "x.y"]),
        1..4,
    )
    .prop_map(|parts| parts.join("/"));
    let hostile = (
        any::<bool>(),
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "..", ".", "c d", "é", "a/b", ""]),
            1..4,
        ),
    )
        .prop_map(|(abs, parts)| {
            let n = parts.join("/");
            if abs { format!("/{n}") } else { n }
        });
    prop_oneof![6 => plain, 1 => hostile]
}

fn ent() -> impl Strategy<Value = Ent> {
    prop_oneof![
        (name(), prop::collection::vec(any::<u8>(), 0..600)).prop_map(|(n, d)| Ent::File(n, d)),
        name().prop_map(Ent::Dir),
        (name(), name()).prop_map(|(n, t)| Ent::Sym(n, t)),
        (name(), any::<usize>(), prop::bool::weighted(0.2), name())
            .prop_map(|(n, i, stray, t)| Ent::Hard(n, i, stray, t)),
    ]
}

/// A ustar header written by hand, so names the tar crate would refuse
/// (`..`, absolute) can be tried.
fn header(name: &str, kind: u8, size: usize, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, len: usize, b: &[u8]| {
        let n = b.len().min(len);
        h[at..at + n].copy_from_slice(&b[..n]);
    };
    put(&mut h, 0, 100, name.as_bytes());
    put(
        &mut h,
        100,
        8,
        if kind == b'5' {
            b"0000755\0"
        } else {
            b"0000644\0"
        },
    );
    put(&mut h, 108, 8, b"0000000\0");
    put(&mut h, 116, 8, b"0000000\0");
    put(&mut h, 124, 12, format!("{size:011o}\0").as_bytes());
    put(&mut h, 136, 12, b"00000000000\0");
    h[156] = kind;
    put(&mut h, 157, 100, link.as_bytes());
    put(&mut h, 257, 8, b"ustar\x0000");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h, 148, 8, format!("{sum:06o}\0 ").as_bytes());
    h
}

fn build_tar(entries: &[Ent]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for e in entries {
        let (name, kind, data, link): (&str, u8, &[u8], &str) = match e {
            Ent::File(n, d) => (n, b'0', d, ""),
            Ent::Dir(n) => (n, b'5', &[], ""),
            Ent::Sym(n, t) => (n, b'2', &[], t),
            Ent::Hard(n, i, stray, t) => {
                let target = match names.len() {
                    0 => t.as_str(),
                    _ if *stray => t.as_str(),
                    k => names[i % k],
                };
                (n, b'1', &[], target)
            }
        };
        names.push(name);
        out.extend_from_slice(&header(name, kind, data.len(), link));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Byte flips at positions taken modulo the length, then a cut.
fn mutate(mut bytes: Vec<u8>, flips: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    if !bytes.is_empty() {
        for &(at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
    }
    if let Some(c) = cut {
        let n = bytes.len();
        bytes.truncate(c % (n + 1));
    }
    bytes
}

#[derive(Debug, Clone, PartialEq)]
struct Listed {
    kind: char,
    size: u64,
    link: Option<String>,
}

/// strata's listing of an uncompressed layer, or its error.
fn list(bytes: &[u8]) -> Result<Vec<(String, Listed)>, String> {
    let mut out = Vec::new();
    strata::tarsafe::for_each_entry(Path::new("fuzz.tar"), bytes, |name, e| {
        let kind = match e.header().entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Regular | tar::EntryType::Continuous => 'f',
            _ => '?',
        };
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        out.push((
            name.to_string(),
            Listed {
                kind,
                size: e.size(),
                link,
            },
        ));
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(out)
}

/// `a/./b//` as `a/b`.
fn normal(name: &str) -> String {
    name.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// The rules an accepted layer obeys (tarsafe's policy, restated).
fn check_accepted(listing: &[(String, Listed)]) -> Result<(), TestCaseError> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut symlinks: BTreeSet<String> = BTreeSet::new();
    for (name, l) in listing {
        prop_assert!(!name.starts_with('/'), "absolute name {name:?} accepted");
        let clean = &normal(name);
        prop_assert!(
            !clean.split('/').any(|c| c == ".."),
            "name with .. accepted: {name:?}"
        );
        let mut prefix = String::new();
        for part in clean.split('/') {
            if !prefix.is_empty() {
                prop_assert!(
                    !symlinks.contains(&prefix),
                    "{name:?} passes through the symlink {prefix:?}"
                );
                prefix.push('/');
            }
            prefix.push_str(part);
        }
        if l.kind == 'h' {
            let target = l.link.as_deref().unwrap_or_default();
            let t = normal(target);
            prop_assert!(
                seen.contains(&t),
                "hardlink {name:?} to {target:?}, not an earlier entry"
            );
        }
        if l.kind == 'l' {
            symlinks.insert(clean.to_string());
        } else {
            symlinks.remove(clean);
        }
        seen.insert(clean.to_string());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    /// Hand-made and damaged tars: never a panic; what is accepted obeys
    /// the policy and lists the same again.
    #[test]
    fn tar_reader(
        entries in prop::collection::vec(ent(), 0..8),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in prop::option::weighted(0.2, any::<usize>()),
    ) {
        let bytes = mutate(build_tar(&entries), &flips, cut);
        if let Ok(listing) = list(&bytes) {
            check_accepted(&listing)?;
            prop_assert_eq!(list(&bytes).unwrap(), listing);
        }
    }

    /// Damaged gzip and zstd streams: decompression errors or ends, with
    /// the output bounded, and the tar reader after it never panics.
    #[test]
    fn compressed_tar_reader(
        entries in prop::collection::vec(ent(), 0..6),
        zstd in any::<bool>(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        cut in prop::option::of(any::<usize>()),
    ) {
        let tar = build_tar(&entries);
        let packed = if zstd {
            zstd::stream::encode_all(&tar[..], 3).unwrap()
        } else {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&tar).unwrap();
            gz.finish().unwrap()
        };
        let packed = mutate(packed, &flips, cut);
        if let Ok(r) = strata::layer::decompress(&packed[..]) {
            let mut out = Vec::new();
            // A damaged stream may claim more; 64 MiB is far past any case.
            let read = r.take(64 << 20).read_to_end(&mut out);
            if read.is_ok() {
                let _ = list(&out);
            }
        }
    }

    /// PAX records: a malformed one is an error, never a panic; an accepted
    /// set re-reads as records whose lengths are exact.
    #[test]
    fn pax_records(records in prop::collection::vec(
        (prop::sample::select(vec!["path", "linkpath", "size", "mtime", "uid", "SCHILY.xattr.user.a", ""]),
         "[ -~]{0,12}",
         -2i64..3),
        0..4,
    ), raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = Vec::new();
        for (k, v, skew) in &records {
            let body = format!(" {k}={v}\n");
            let mut len = body.len() + 1;
            while len.to_string().len() + body.len() != len {
                len += 1;
            }
            let claimed = (len as i64 + skew).max(0);
            bytes.extend_from_slice(format!("{claimed}{body}").as_bytes());
        }
        if let Ok(size) = strata::tarsafe::parse_pax(&bytes) {
            // Accepted: every record's length is exact and has a '='.
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let sp = rest.iter().position(|&b| b == b' ').unwrap();
                let n: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
                prop_assert!(n <= rest.len() && rest[n - 1] == b'\n');
                prop_assert!(rest[sp..n].contains(&b'='));
                rest = &rest[n..];
            }
            if let Some(s) = size {
                prop_assert!(s <= i64::MAX as u64);
            }
        }
        let _ = strata::tarsafe::parse_pax(&raw);
    }
}

// ------------------------------------------------- documents and parsers

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:../../x",
            "",
        ])
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "schemaVersion",
                    "mediaType",
                    "config",
                    "layers",
                    "manifests",
                    "digest",
                    "size",
                    "platform",
                    "architecture",
                    "os",
                    "rootfs",
                    "diff_ids",
                    "type",
                    "annotations",
                    "subject",
                    "urls",
                ]),
                inner,
                0..6,
            )
            .prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #![proptest_config(config(512))]

    /// Manifests, indexes and configs: no panic on any bytes, and an
    /// accepted manifest is never also an index (nor the other way round).
    #[test]
    fn oci_documents(doc in json_value(), raw in prop::collection::vec(any::<u8>(), 0..200)) {
        let bytes = serde_json::to_vec(&doc).unwrap();
        for b in [&bytes, &raw] {
            if strata::spec::Manifest::parse(b, "fuzz").is_ok() {
                prop_assert!(doc.get("manifests").is_none() || !std::ptr::eq(b, &bytes));
            }
            if strata::spec::Index::parse(b, "fuzz").is_ok() && std::ptr::eq(b, &bytes) {
                prop_assert!(doc.get("layers").is_none() && doc.get("config").is_none());
            }
            let _ = strata::image::ImageConfig::parse(b, "fuzz");
        }
    }

    /// Debian control text, relations, versions, dates and sources.
    #[test]
    fn debian_parsers(
        text in "([A-Za-z-]{1,8}:[ -~]{0,16}\n( [ -~]{0,8}\n)?\n?){0,6}",
        rel in "([a-z0-9+.-]{1,6}(:(any|native|amd64))?( \\((<<|<=|=|>=|>>) [0-9a-z.:~+-]{1,6}\\))?( \\[[a-z0-9 !-]{0,8}\\])?( \\| )?(, )?){0,4}",
        versions in prop::collection::vec("[0-9]{0,2}:?[0-9a-z.+~-]{0,6}(-[0-9a-z.+~]{0,4})?", 3),
        date in "[ -~]{0,40}",
    ) {
        let _ = strata::deb::control::parse_all(&text, true);
        if let Ok(r) = strata::deb::control::parse_relations(&rel) {
            let again = strata::deb::control::format_relations(&r);
            prop_assert_eq!(strata::deb::control::parse_relations(&again), Ok(r));
        }
        let parsed: Vec<_> = versions
            .iter()
            .filter_map(|v| strata::deb::version::Version::parse(v).ok())
            .collect();
        for a in &parsed {
            for b in &parsed {
                prop_assert_eq!(a.cmp(b), b.cmp(a).reverse());
                for c in &parsed {
                    if a <= b && b <= c {
                        prop_assert!(a <= c);
                    }
                }
            }
        }
        let _ = strata::deb::repo::parse_rfc2822(&date);
        let _ = strata::deb::sources::parse_list(&text, "fuzz.list");
        let _ = strata::deb::sources::parse_sources(&text, "fuzz.sources");
    }

    /// docker-archive manifest.json: any JSON, no panic.
    #[test]
    fn docker_archive_manifest(doc in json_value()) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.tar");
        let body = serde_json::to_vec(&serde_json::json!([doc])).unwrap();
        let mut b = tar::Builder::new(std::fs::File::create(&file).unwrap());
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "manifest.json", &body[..]).unwrap();
        b.finish().unwrap();
        drop(b);
        for sel in [
            strata::transport::docker_archive::Selector::Only,
            strata::transport::docker_archive::Selector::Index(0),
            strata::transport::docker_archive::Selector::Name("a:b".into()),
        ] {
            let _ = strata::transport::docker_archive::open(&file, &sel);
        }
    }
}

// -------------------------------------------- a Go reader agrees (umoci)

/// Writes an OCI layout whose one image has `layer` (uncompressed) as its
/// only layer.
fn layout_with_layer(dir: &Path, layer: &[u8]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = strata::Digest::of(b);
        std::fs::write(blobs.join(d.hex()), b).unwrap();
        (d.to_string(), b.len())
    };
    let (ld, ls) = put(layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": [ld]},
    });
    let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}],
    });
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
                       "annotations": {"org.opencontainers.image.ref.name": "f"}}],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Every layer strata accepts, umoci (Go's archive/tar) unpacks, with the
/// regular files strata listed at the sizes it listed.
#[test]
fn umoci_unpacks_what_strata_accepts() {
    if !common::have("umoci") || unsafe { libc::geteuid() } != 0 {
        common::note(
            "umoci agrees with the tar reader",
            "SKIPPED (needs root and umoci)",
        );
        return;
    }
    let mut runner = proptest::test_runner::TestRunner::new(config(24));
    let strategy = (
        prop::collection::vec(ent(), 1..8),
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..2),
    );
    let accepted = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&strategy, |(entries, flips)| {
            let bytes = mutate(build_tar(&entries), &flips, None);
            let Ok(listing) = list(&bytes) else {
                return Ok(());
            };
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = tempfile::tempdir().unwrap();
            let layout = dir.path().join("layout");
            layout_with_layer(&layout, &bytes);
            let bundle = dir.path().join("bundle");
            let out = std::process::Command::new("umoci")
                .args(["unpack", "--image"])
                .arg(format!("{}:f", layout.display()))
                .arg(&bundle)
                .output()
                .unwrap();
            prop_assert!(
                out.status.success(),
                "strata accepted {listing:?}; umoci: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // The tree after extraction: a later entry replaces an earlier
            // one at its path, and a non-directory whatever was below it.
            let mut last: BTreeMap<String, &Listed> = BTreeMap::new();
            for (name, l) in &listing {
                let name = name
                    .trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_string();
                if l.kind != 'd' {
                    let below = format!("{name}/");
                    last.retain(|k, _| !k.starts_with(&below));
                }
                last.insert(name, l);
            }
            for (name, l) in last {
                if l.kind == 'f' {
                    let m = std::fs::symlink_metadata(bundle.join("rootfs").join(&name));
                    prop_assert!(m.is_ok(), "{name} missing after umoci unpack");
                    prop_assert_eq!(m.unwrap().len(), l.size, "{}", name);
                }
            }
            Ok(())
        })
        .unwrap();
    let accepted = accepted.into_inner();
    assert!(
        accepted >= 5,
        "only {accepted} of the generated layers were accepted"
    );
    common::note("umoci agrees with the tar reader", "RAN");
}
