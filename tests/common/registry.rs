//! A real `docker-registry` (distribution 2.8) per test, on 127.0.0.1 with
//! a free port and a temp storage directory.
#![allow(dead_code)]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// How the registry authenticates.
pub enum Auth {
    /// Anonymous.
    None,
    /// htpasswd Basic auth with one user.
    Htpasswd {
        user: &'static str,
        password: &'static str,
    },
    /// Token auth: (realm URL, PEM certificate that signs the tokens).
    Token { realm: String, cert: PathBuf },
}

pub struct Registry {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
    /// PEM CA that signed the server certificate, when TLS is on.
    pub ca: Option<PathBuf>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    pub fn start(auth: Auth, tls: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("strata-registry-")
            .tempdir()
            .unwrap();
        let mut auth_cfg = String::new();
        if let Auth::Htpasswd { user, password } = &auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .unwrap();
            assert!(out.status.success());
            fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
            auth_cfg = format!(
                "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        if let Auth::Token { realm, cert } = &auth {
            auth_cfg = format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                super::token::SERVICE,
                super::token::ISSUER,
                cert.display()
            );
        }
        let mut tls_cfg = String::new();
        let mut ca = None;
        if tls {
            let (ca_pem, cert, key) = make_certs(dir.path());
            tls_cfg = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
            ca = Some(ca_pem);
        }
        let log = dir.path().join("registry.log");
        // A free port is only free until someone binds it: if another
        // process takes it first, this registry exits and another port is
        // tried. Ready means this registry's own log says it listens.
        let mut tries = 0;
        let (port, child) = loop {
            tries += 1;
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: strata-test-secret\n{tls_cfg}{auth_cfg}",
                dir.path().join("data").display()
            );
            fs::write(dir.path().join("config.yml"), config).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(dir.path().join("config.yml"))
                .stdout(fs::File::create(dir.path().join("access.log")).unwrap())
                .stderr(fs::File::create(&log).unwrap())
                .spawn()
                .expect("docker-registry must be installed (scripts/test.sh installs it)");
            let listening = format!("listening on 127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(15);
            let up = loop {
                let text = fs::read_to_string(&log).unwrap_or_default();
                if text.contains(&listening) {
                    break true;
                }
                if child.try_wait().unwrap().is_some() {
                    break false;
                }
                assert!(Instant::now() < deadline, "registry did not start: {text}");
                std::thread::sleep(Duration::from_millis(20));
            };
            if up {
                break (port, child);
            }
            assert!(
                tries < 5,
                "registry exited: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Registry {
            port,
            dir,
            child,
            ca,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `docker://127.0.0.1:PORT/PATH`.
    pub fn r(&self, path: &str) -> String {
        format!("docker://{}/{path}", self.host())
    }

    /// The requests the registry served so far, one access-log line each
    /// (`"GET /v2/... HTTP/1.1" 200 ...`).
    pub fn requests(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Blob data files in the registry's storage.
    pub fn stored_blobs(&self) -> Vec<String> {
        let root = self.dir.path().join("data/docker/registry/v2/blobs/sha256");
        super::files_under(&root)
            .into_iter()
            .filter(|p| p.ends_with("data"))
            .map(|p| {
                p.parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway CA and a server certificate for 127.0.0.1 signed by it.
pub fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=strata test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    fs::write(p("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (p("ca.pem"), p("server.pem"), p("server.key"))
}
