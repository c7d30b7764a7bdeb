//! A local apt repository for tests: tiny packages made with dpkg-deb, a
//! Packages index, a Release file signed with a throwaway gpg key, served
//! over HTTP on loopback. No network needed.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{BUSYBOX, Env, run, write};

/// The Debian architecture of this machine.
pub fn host_arch() -> String {
    run(Command::new("dpkg").arg("--print-architecture"))
        .trim()
        .to_string()
}

/// A package to put in the repository.
pub struct Pkg<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// `any` for the host architecture, or `all`.
    pub arch: &'a str,
    /// Extra control fields (Depends, Provides, Conflicts, Priority, …).
    pub fields: &'a [(&'a str, &'a str)],
    /// (path, content, mode) under the package root.
    pub files: &'a [(&'a str, &'a str, u32)],
}

pub struct Repo {
    pub root: PathBuf,
    pub gnupg: PathBuf,
    pub keyring: PathBuf,
    pub url: String,
    pub arch: String,
    /// Extra Release fields (e.g. `Valid-Until: …\n`).
    pub release_extra: String,
    /// How the index is published.
    pub layout: Layout,
    /// More architectures to publish (each index gets its own packages
    /// and the `all` ones); none: one index with every package.
    pub extra_arches: Vec<String>,
    stanzas: Vec<String>,
}

/// How [`Repo::publish`] lays the index out.
#[derive(Clone, Copy, Default, PartialEq, Debug)]
pub enum Layout {
    /// Packages and Packages.gz, Release signed inline as InRelease.
    #[default]
    Plain,
    /// Only Packages.xz.
    XzOnly,
    /// Packages.gz only under by-hash/SHA256/ (`Acquire-By-Hash: yes`).
    ByHashOnly,
    /// No InRelease: Release and a detached Release.gpg.
    Detached,
}

impl Repo {
    /// A repository under `dir`, with a new signing key, served over HTTP.
    pub fn new(dir: &Path) -> Self {
        let root = dir.join("repo");
        fs::create_dir_all(root.join("pool/main")).unwrap();
        let gnupg = dir.join("gnupg");
        let keyring = dir.join("keyring.gpg");
        gen_key(&gnupg, &keyring, "strata test <test@example.invalid>");
        let url = serve(&root);
        Repo {
            root,
            gnupg,
            keyring,
            url,
            arch: host_arch(),
            release_extra: String::new(),
            layout: Layout::Plain,
            extra_arches: Vec::new(),
            stanzas: Vec::new(),
        }
    }

    /// Builds a package with dpkg-deb and adds it to the pool.
    pub fn add(&mut self, p: &Pkg<'_>) -> PathBuf {
        let arch = if p.arch == "any" {
            self.arch.as_str()
        } else {
            p.arch
        };
        let build = self
            .root
            .parent()
            .unwrap()
            .join(format!("build-{}-{}-{arch}", p.name, p.version));
        let _ = fs::remove_dir_all(&build);
        fs::create_dir_all(build.join("DEBIAN")).unwrap();
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: {arch}\nMaintainer: strata tests <test@example.invalid>\nDescription: test package {}\n",
            p.name, p.version, p.name
        );
        for (k, v) in p.fields {
            control.push_str(&format!("{k}: {v}\n"));
        }
        fs::write(build.join("DEBIAN/control"), &control).unwrap();
        for (path, content, mode) in p.files {
            let f = build.join(path.trim_start_matches('/'));
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(&f, content).unwrap();
            fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(*mode)).unwrap();
        }
        let deb = self
            .root
            .join(format!("pool/main/{}_{}_{arch}.deb", p.name, p.version));
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&build)
            .arg(&deb));
        self.add_file(&deb, &control);
        deb
    }

    /// Adds an already built .deb whose control text is `control`.
    pub fn add_file(&mut self, deb: &Path, control: &str) {
        let bytes = fs::read(deb).unwrap();
        let rel = deb.strip_prefix(&self.root).unwrap().display().to_string();
        self.stanzas.push(format!(
            "{}Filename: {rel}\nSize: {}\nSHA256: {}\n",
            control,
            bytes.len(),
            strata::Digest::of(&bytes).hex()
        ));
    }

    /// Writes the index (Packages, .gz or .xz), Release and its signature
    /// for suite `stable`, as [`Repo::layout`] says.
    pub fn publish(&self) {
        let suite = self.root.join("dists/stable");
        let _ = fs::remove_dir_all(&suite);
        let mut arches = vec![self.arch.clone()];
        arches.extend(self.extra_arches.iter().cloned());
        let mut release = String::new();
        for arch in &arches {
            let text = if self.extra_arches.is_empty() {
                self.stanzas.join("\n")
            } else {
                self.stanzas
                    .iter()
                    .filter(|st| {
                        st.contains(&format!("Architecture: {arch}\n"))
                            || st.contains("Architecture: all\n")
                    })
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            release.push_str(&self.publish_arch(&suite, arch, &text));
        }
        let by_hash = if self.layout == Layout::ByHashOnly {
            "Acquire-By-Hash: yes\n"
        } else {
            ""
        };
        let release = format!(
            "Origin: strata-test\nSuite: stable\nCodename: test\nDate: Sat, 01 Jan 2000 00:00:00 UTC\n{}{by_hash}Architectures: {}\nComponents: main\nSHA256:\n{release}",
            self.release_extra,
            arches.join(" ")
        );
        fs::write(suite.join("Release"), &release).unwrap();
        if self.layout == Layout::Detached {
            run(gpg(&self.gnupg)
                .args(["--detach-sign", "--armor", "-o"])
                .arg(suite.join("Release.gpg"))
                .arg(suite.join("Release")));
        } else {
            run(gpg(&self.gnupg)
                .args(["--clearsign", "-o"])
                .arg(suite.join("InRelease"))
                .arg(suite.join("Release")));
        }
    }

    /// Writes one architecture's Packages files; returns their Release
    /// SHA256 lines.
    fn publish_arch(&self, suite: &Path, arch: &str, text: &str) -> String {
        let dir = suite.join(format!("main/binary-{arch}"));
        fs::create_dir_all(&dir).unwrap();
        let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
        if self.layout == Layout::XzOnly {
            let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
            xz.write_all(text.as_bytes()).unwrap();
            files.push(("Packages.xz", xz.finish().unwrap()));
        } else {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(text.as_bytes()).unwrap();
            if self.layout != Layout::ByHashOnly {
                files.push(("Packages", text.to_string().into_bytes()));
            }
            files.push(("Packages.gz", gz.finish().unwrap()));
        }
        let mut lines = String::new();
        for (f, bytes) in &files {
            let rel = format!("main/binary-{arch}/{f}");
            let hex = strata::Digest::of(bytes).hex().to_string();
            lines.push_str(&format!(" {hex} {} {rel}\n", bytes.len()));
            if self.layout == Layout::ByHashOnly {
                let at = dir.join("by-hash/SHA256");
                fs::create_dir_all(&at).unwrap();
                fs::write(at.join(&hex), bytes).unwrap();
            } else {
                fs::write(dir.join(f), bytes).unwrap();
            }
        }
        lines
    }

    /// The `[[source.deb.repositories]]` table for this repository.
    pub fn toml(&self, keyring: &Path) -> String {
        format!(
            "[[source.deb.repositories]]\nuri = \"{}\"\nsuite = \"stable\"\ncomponents = [\"main\"]\nsigned_by = \"{}\"\n",
            self.url,
            keyring.display()
        )
    }
}

fn gpg(home: &Path) -> Command {
    let mut c = Command::new("gpg");
    c.env("GNUPGHOME", home).args([
        "--batch",
        "--yes",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]);
    c
}

/// Makes a signing key in `home` and exports its public key to `keyring`.
pub fn gen_key(home: &Path, keyring: &Path, uid: &str) {
    fs::create_dir_all(home).unwrap();
    fs::set_permissions(home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    run(gpg(home).args(["--quick-gen-key", uid, "ed25519", "sign", "never"]));
    let o = gpg(home).args(["--export"]).output().unwrap();
    assert!(o.status.success() && !o.stdout.is_empty());
    fs::write(keyring, o.stdout).unwrap();
}

/// Serves `root` over HTTP/1.1 on a loopback port; returns the base URL.
pub fn serve(root: &Path) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let root = root.to_path_buf();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let root = root.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let file = root.join(path.trim_start_matches('/'));
                let body = (!path.contains(".."))
                    .then(|| fs::read(&file).ok())
                    .flatten();
                let _ = match body {
                    Some(b) => conn
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                b.len()
                            )
                            .as_bytes(),
                        )
                        .and_then(|_| conn.write_all(&b)),
                    None => conn.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                };
                let mut rest = Vec::new();
                let _ = r.read_to_end(&mut rest);
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Writes a .deb by hand (ar + control.tar.gz + data.tar), with data
/// entries named exactly as given (even `../x`), for path-safety tests.
pub fn raw_deb(path: &Path, control: &str, entries: &[(&str, &str)]) {
    let mut ctl = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(control.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    ctl.append_data(&mut h, "./control", control.as_bytes())
        .unwrap();
    let ctl = ctl.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&ctl).unwrap();
    let ctl_gz = gz.finish().unwrap();
    let mut data = Vec::new();
    for (name, content) in entries {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        data.extend_from_slice(h.as_bytes());
        data.extend_from_slice(content.as_bytes());
        data.resize(data.len().div_ceil(512) * 512, 0);
    }
    data.resize(data.len() + 1024, 0);
    let mut ar = b"!<arch>\n".to_vec();
    for (name, body) in [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", ctl_gz),
        ("data.tar", data),
    ] {
        ar.extend_from_slice(
            format!(
                "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                0,
                0,
                0,
                100644,
                body.len()
            )
            .as_bytes(),
        );
        ar.extend_from_slice(&body);
        if body.len() % 2 == 1 {
            ar.push(b'\n');
        }
    }
    fs::write(path, ar).unwrap();
}

/// The test repository: libgreet 1.0/2.0, hello (depends on libgreet >= 2
/// and a mail-transport-agent), two MTAs (exim conflicts with postfix),
/// broken (unmet dependency), evil (a data.tar entry with `..`).
pub fn repo(env: &Env) -> Repo {
    let mut r = Repo::new(env.dir.path());
    r.add(&Pkg {
        name: "libgreet",
        version: "1.0",
        arch: "any",
        fields: &[],
        files: &[("/usr/lib/greet.txt", "v1\n", 0o644)],
    });
    r.add(&Pkg {
        name: "libgreet",
        version: "2.0",
        arch: "any",
        fields: &[("Priority", "optional")],
        files: &[
            ("/usr/lib/greet.txt", "v2\n", 0o644),
            ("/lib/greet/extra", "x\n", 0o644),
        ],
    });
    r.add(&Pkg {
        name: "hello",
        version: "1.0-1",
        arch: "any",
        fields: &[(
            "Depends",
            "libgreet (>= 2.0), no-such-mta | mail-transport-agent",
        )],
        files: &[
            (
                "/usr/bin/hello",
                "#!/bin/sh\necho hello from deb\ncat /usr/lib/greet.txt\n",
                0o755,
            ),
            ("/bin/hi", "#!/bin/sh\necho hi\n", 0o755),
        ],
    });
    r.add(&Pkg {
        name: "postfix",
        version: "3.0",
        arch: "all",
        fields: &[
            ("Provides", "mail-transport-agent"),
            ("Priority", "optional"),
        ],
        files: &[("/etc/postfix/main.cf", "# mta\n", 0o644)],
    });
    r.add(&Pkg {
        name: "exim",
        version: "4.0",
        arch: "all",
        fields: &[
            ("Provides", "mail-transport-agent"),
            ("Conflicts", "postfix"),
            ("Priority", "extra"),
        ],
        files: &[("/etc/exim/exim.conf", "# mta\n", 0o644)],
    });
    r.add(&Pkg {
        name: "broken",
        version: "1.0",
        arch: "all",
        fields: &[("Depends", "hello, libgreet (>= 3)")],
        files: &[("/usr/share/broken", "\n", 0o644)],
    });
    let control = format!(
        "Package: evil\nVersion: 1.0\nArchitecture: {}\nMaintainer: x <x@example.invalid>\nDescription: escapes\n",
        r.arch
    );
    let evil = r.root.join(format!("pool/main/evil_1.0_{}.deb", r.arch));
    raw_deb(
        &evil,
        &control,
        &[("./usr/bin/ok", "ok\n"), ("../../etc/evil", "pwned\n")],
    );
    r.add_file(&evil, &control);
    r.publish();
    r
}

/// A project with a busybox base and one deb layer `pkgs` (on the base
/// when `on_base`), asking for `packages`, signed by `keyring`.
pub fn project(env: &Env, r: &Repo, packages: &[&str], on_base: bool, keyring: &Path) -> PathBuf {
    let root = env.path("proj");
    let _ = fs::remove_dir_all(&root);
    let rootfs = root.join("layers/base/rootfs/bin");
    fs::create_dir_all(&rootfs).unwrap();
    fs::copy(BUSYBOX, rootfs.join("busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("sh")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("cat")).unwrap();
    write(
        &root,
        "layers/base/layer.toml",
        "[layer]\nname = \"base\"\nversion = \"1\"\n\n[[source.copy]]\nfrom = \"rootfs\"\nto = \"/\"\n",
    );
    let runtime = if on_base {
        "[runtime]\nlayers = [\"base\"]\n"
    } else {
        ""
    };
    write(
        &root,
        "layers/pkgs/layer.toml",
        &format!(
            "[layer]\nname = \"pkgs\"\nversion = \"1\"\n\n{runtime}\n[source.deb]\npackages = {}\n\n{}",
            serde_json::to_string(packages).unwrap(),
            r.toml(keyring)
        ),
    );
    write(
        &root,
        "strata.toml",
        "[project]\nname = \"debtest\"\n\n[images.app]\nlayers = [\"pkgs\"]\nentrypoint = [\"/usr/bin/hello\"]\n",
    );
    root
}

/// The other of amd64 and arm64: the second platform of multi-platform
/// tests.
pub fn other_arch() -> String {
    if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    }
    .to_string()
}
