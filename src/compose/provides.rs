//! `[provides]` checks over an image's merged files: each declared binary
//! is an executable file under one of the layer's `paths`, and each
//! declared library is a file where the dynamic loader would look for it.
//! Symlinks (the file's own and its directories', such as Debian's
//! `/lib -> usr/lib`) are resolved within the image, so a dangling link
//! does not pass.

use std::collections::HashMap;

use super::check::{FileInfo, Kind};
use super::project::LayerDef;

/// Symlinks followed at most, as Linux does (MAXSYMLINKS).
const MAX_LINKS: usize = 40;

/// The image's files: path (relative, no leading `/`) → the layer it is
/// from (the topmost) and what is there.
pub type Merged<'a> = HashMap<&'a str, (&'a str, &'a FileInfo)>;

/// What `path` (absolute or relative to the root) resolves to within the
/// image, following symlinks of the path and its directories as the
/// kernel does under a chroot (`..` stops at the root). `None` when some
/// part does not exist, a link dangles, or links loop.
pub fn resolve<'a>(files: &Merged<'a>, path: &str) -> Option<&'a FileInfo> {
    let mut todo: Vec<String> = components(path).rev().map(str::to_string).collect();
    let mut at: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                at.pop();
                continue;
            }
            _ => {}
        }
        at.push(c);
        let here = at.join("/");
        let info = files.get(here.as_str())?.1;
        if info.kind == Kind::Symlink {
            links += 1;
            if links > MAX_LINKS {
                return None;
            }
            let target = info.target.as_deref()?;
            at.pop();
            if target.starts_with('/') {
                at.clear();
            }
            todo.extend(components(target).rev().map(str::to_string));
        }
    }
    // What is left in `at` has no symlink in it.
    if at.is_empty() {
        Some(&DIR)
    } else {
        files.get(at.join("/").as_str()).map(|(_, i)| *i)
    }
}

static DIR: FileInfo = FileInfo {
    kind: Kind::Dir,
    mode: 0o755,
    target: None,
};

fn components(p: &str) -> std::iter::Filter<std::str::Split<'_, char>, fn(&&str) -> bool> {
    p.split('/').filter(|c| !c.is_empty())
}

/// The directories the dynamic loader searches for an image of `arch`
/// (GOARCH spelling): Debian's multiarch directories, the traditional
/// ones, and any `LD_LIBRARY_PATH` the layers set.
pub fn library_dirs(arch: &str, layers: &[&LayerDef]) -> Vec<String> {
    let triplet = match arch {
        "amd64" => "x86_64-linux-gnu",
        "arm64" => "aarch64-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        "386" => "i386-linux-gnu",
        "ppc64le" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "mips64le" => "mips64el-linux-gnuabi64",
        _ => "",
    };
    let mut dirs: Vec<String> = layers
        .iter()
        .filter_map(|d| d.file.env.get("LD_LIBRARY_PATH"))
        .flat_map(|v| v.split(':'))
        .filter(|d| d.starts_with('/'))
        .map(str::to_string)
        .collect();
    if !triplet.is_empty() {
        dirs.push(format!("/lib/{triplet}"));
        dirs.push(format!("/usr/lib/{triplet}"));
    }
    for d in ["/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib"] {
        dirs.push(d.to_string());
    }
    dirs.dedup();
    dirs
}

/// The `[provides]` findings of layer `l` (its definition `def`) in an
/// image whose files are `files` and whose loader searches `lib_dirs`.
pub fn check_layer(
    l: &str,
    def: &LayerDef,
    files: &Merged<'_>,
    lib_dirs: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    let p = &def.file.provides;
    for b in &p.binaries {
        let found = p.paths.iter().any(|dir| {
            resolve(files, &format!("{dir}/{b}"))
                .is_some_and(|f| f.kind == Kind::File && f.mode & 0o111 != 0)
        });
        if !found {
            out.push(format!(
                "{} key provides.binaries: {b:?} is not an executable file under {} in the image (a symlink counts when its target is one) [layer {l}]",
                def.rel,
                if p.paths.is_empty() {
                    "any of provides.paths (none given)".to_string()
                } else {
                    p.paths.join(", ")
                }
            ));
        }
    }
    for lib in &p.libraries {
        let candidates: Vec<String> = if lib.contains('/') {
            vec![lib.clone()]
        } else {
            lib_dirs.iter().map(|d| format!("{d}/{lib}")).collect()
        };
        let found = candidates
            .iter()
            .any(|c| resolve(files, c).is_some_and(|f| f.kind == Kind::File));
        if !found {
            out.push(format!(
                "{} key provides.libraries: {lib:?} is not a file in the image where the dynamic loader looks ({}) [layer {l}]",
                def.rel,
                if lib.contains('/') {
                    lib.clone()
                } else {
                    lib_dirs.join(", ")
                }
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kind: Kind, target: Option<&str>) -> FileInfo {
        FileInfo {
            kind,
            mode: 0o755,
            target: target.map(Into::into),
        }
    }

    #[test]
    fn resolves_links_of_files_and_directories_within_the_image() {
        let entries = [
            ("usr", info(Kind::Dir, None)),
            ("usr/lib", info(Kind::Dir, None)),
            ("usr/lib/libz.so.1.3", info(Kind::File, None)),
            (
                "usr/lib/libz.so.1",
                info(Kind::Symlink, Some("libz.so.1.3")),
            ),
            ("lib", info(Kind::Symlink, Some("usr/lib"))),
            ("bin", info(Kind::Dir, None)),
            ("bin/dangling", info(Kind::Symlink, Some("/nowhere"))),
            (
                "bin/up",
                info(Kind::Symlink, Some("../../../../usr/lib/libz.so.1")),
            ),
            ("bin/loop", info(Kind::Symlink, Some("loop2"))),
            ("bin/loop2", info(Kind::Symlink, Some("/bin/loop"))),
        ];
        let files: Merged<'_> = entries.iter().map(|(p, i)| (*p, ("layer", i))).collect();
        let kind = |p: &str| resolve(&files, p).map(|f| f.kind);
        assert_eq!(kind("/lib/libz.so.1"), Some(Kind::File));
        assert_eq!(kind("lib/../lib/./libz.so.1"), Some(Kind::File));
        assert_eq!(kind("/bin/up"), Some(Kind::File), "'..' stops at the root");
        assert_eq!(kind("/bin/dangling"), None);
        assert_eq!(kind("/bin/loop"), None);
        assert_eq!(kind("/lib"), Some(Kind::Dir));
        assert_eq!(kind("/usr/lib/.."), Some(Kind::Dir));
        assert_eq!(kind("/"), Some(Kind::Dir));
        assert_eq!(kind("/usr/lib/libz.so.1.3/x"), None);
    }
}
