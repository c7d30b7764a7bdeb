//! Reading what images hold, and small runnable roots to build them from.

use std::fs;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::{BUSYBOX, Env};

/// The bytes of `path` in the image `reference` for `platform`, read from
/// its layers (the last layer that has it as a regular file).
pub fn file_in_image(env: &Env, reference: &str, platform: &str, path: &str) -> Option<Vec<u8>> {
    let layout = env.path(&format!(
        "read-{}-{}",
        reference.replace(['/', ':'], "-"),
        platform.replace('/', "-")
    ));
    if layout.exists() {
        fs::remove_dir_all(&layout).unwrap();
    }
    env.ok(&[
        "copy",
        "--platform",
        platform,
        reference,
        &format!("oci:{}:x", layout.display()),
    ]);
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: Value = serde_json::from_slice(
        &fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let mut found = None;
    for l in manifest["layers"].as_array().unwrap() {
        let file = fs::File::open(blob(l["digest"].as_str().unwrap())).unwrap();
        let reader: Box<dyn Read> = if l["mediaType"].as_str().unwrap().ends_with("zstd") {
            Box::new(zstd::stream::read::Decoder::new(file).unwrap())
        } else {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        };
        let mut tar = tar::Archive::new(reader);
        for e in tar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            if name.trim_start_matches("./") == path && e.header().entry_type().is_file() {
                let mut bytes = Vec::new();
                e.read_to_end(&mut bytes).unwrap();
                found = Some(bytes);
            }
        }
    }
    found
}

/// A root under `dir` with the host's static busybox as /bin/busybox and
/// /bin/sh.
pub fn busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", bin.join("sh")).unwrap();
}

/// An architecture the host does not run natively and the kernel has no
/// binfmt_misc handler for (CI registers only the other platform's); these
/// three have the same name in OCI and qemu.
pub fn unregistered_arch() -> Option<&'static str> {
    let host = super::apt::host_arch();
    ["s390x", "ppc64le", "riscv64"].into_iter().find(|arch| {
        *arch != host && !Path::new(&format!("/proc/sys/fs/binfmt_misc/qemu-{arch}")).exists()
    })
}
