//! Running another platform's binaries: natively where the CPU runs them
//! (386 on amd64), else through a binfmt_misc handler (qemu-user), which
//! the kernel must have registered; an error says what to install.

use std::path::Path;

use crate::error::{Error, Result};
use crate::spec::Platform;

/// The qemu-user name of an OCI architecture.
fn qemu_name(arch: &str) -> &str {
    match arch {
        "arm64" => "aarch64",
        "386" => "i386",
        "amd64" => "x86_64",
        "mips64le" => "mips64el",
        other => other,
    }
}

/// Whether this machine runs `platform`'s binaries natively.
fn native(host: &Platform, platform: &Platform) -> bool {
    host.matches(platform)
        || (host.architecture == "amd64" && platform.architecture == "386")
        || (host.architecture == "arm64" && platform.architecture == "arm")
}

/// Ok when commands built for `platform` can run here (under
/// `binfmt_dir`, normally `/proc/sys/fs/binfmt_misc`); else an error naming
/// the platform, what to install, and the faster route.
pub fn check_platform_at(platform: &Platform, binfmt_dir: &Path) -> Result<()> {
    let host = Platform::host();
    if native(&host, platform) {
        return Ok(());
    }
    let entry = binfmt_dir.join(format!("qemu-{}", qemu_name(&platform.architecture)));
    if std::fs::read_to_string(&entry).is_ok_and(|t| t.starts_with("enabled")) {
        return Ok(());
    }
    Err(Error::Unsupported(format!(
        "commands for {platform} cannot run on this {host} machine: the kernel has no binfmt_misc handler for them ({} is missing). Install Debian's qemu-user-static (and binfmt-support, or mount binfmt_misc and register it), or cross-compile the {platform} binaries on this machine and copy them per platform ([[source.copy]] from = \"dist/{{arch}}/...\" or an entry with platforms = [\"{platform}\"]), which is faster than emulation",
        entry.display()
    )))
}

/// [`check_platform_at`] on this machine's binfmt_misc.
pub fn check_platform(platform: &Platform) -> Result<()> {
    check_platform_at(platform, Path::new("/proc/sys/fs/binfmt_misc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_platforms_need_a_registered_handler() {
        let dir = tempfile::tempdir().unwrap();
        let host = Platform::host();
        assert!(check_platform_at(&host, dir.path()).is_ok());
        let other = Platform::parse(if host.architecture == "s390x" {
            "linux/ppc64le"
        } else {
            "linux/s390x"
        })
        .unwrap();
        let err = check_platform_at(&other, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("qemu-user-static") && err.contains("cross-compile"),
            "{err}"
        );
        let name = format!("qemu-{}", qemu_name(&other.architecture));
        std::fs::write(dir.path().join(&name), "disabled\n").unwrap();
        assert!(check_platform_at(&other, dir.path()).is_err());
        std::fs::write(dir.path().join(&name), "enabled\ninterpreter /usr/bin/x\n").unwrap();
        assert!(check_platform_at(&other, dir.path()).is_ok());
    }
}
