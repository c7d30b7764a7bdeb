//! `strata env` in every shell: the generated file is sourced by bash,
//! dash and zsh, and names a shell cannot define are renamed or skipped
//! with a warning.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Env, replace};

/// examples/project with three more aliases on its greet layer: one with a
/// `-` (no POSIX function name), and two that would shadow the shell's own
/// `sh` and the `id` the functions call.
fn project(env: &Env) -> std::path::PathBuf {
    let dst = common::example_project(env);
    replace(
        &dst,
        "layers/greet/layer.toml",
        "greet = \"greet\"",
        "greet = \"greet\"\nsay-hi = \"greet\"\nsh = \"greet\"\nid = \"greet\"",
    );
    dst
}

/// Runs `script` in `shell` (its argv), in `dir`, and returns stdout,
/// failing with stderr when the shell does.
fn in_shell(shell: &[&str], script: &str, dir: &Path) -> String {
    let out = Command::new(shell[0])
        .args(&shell[1..])
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{shell:?}: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn env_sh_works_in_bash_dash_and_zsh_and_skips_names_that_shadow_the_shell() {
    let env = Env::new();
    let root = project(&env);
    let p = root.to_str().unwrap();
    // No docker or podman on PATH: the functions call strata run.
    let empty = env.path("empty-path");
    fs::create_dir_all(&empty).unwrap();
    let out = env
        .cmd(&["env", "-C", p, "builder"])
        .env("PATH", &empty)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(
        err.contains("alias \"say-hi\" is the function say_hi")
            && err.contains("alias \"sh\" is not defined: it would shadow")
            && err.contains("alias \"id\" is not defined: it would shadow")
            && err.contains("layers/greet/layer.toml"),
        "{err}"
    );
    assert!(
        script.contains("say_hi() {")
            && script.contains("alias say-hi=say_hi\n")
            && !script.contains("\nsh() {")
            && !script.contains("\nid() {"),
        "{script}"
    );
    let script_path = env.path("env.sh");
    fs::write(&script_path, &script).unwrap();
    let work = env.path("work");
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("a"), "").unwrap();
    fs::write(work.join("b"), "").unwrap();

    // Every shell parses the whole file and keeps its own sh and id.
    let shells: [&[&str]; 3] = [&["bash", "--norc"], &["dash"], &["zsh", "-f"]];
    for shell in shells {
        let out = in_shell(
            shell,
            &format!(
                ". {} && command -v greet && command -v say_hi && command -v count && command -v sh && command -v id",
                script_path.display()
            ),
            &work,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "{shell:?}: {out}");
        assert!(
            lines[3].ends_with("/sh") && lines[4].ends_with("/id"),
            "{shell:?}: sh and id are still the system's: {out}"
        );
    }
    if unsafe { libc::geteuid() } != 0 || !common::have("runc") {
        common::note(
            "strata env under bash, dash, zsh",
            "SKIPPED (needs root and runc)",
        );
        return;
    }
    env.ok(&["build", "-C", p, "builder"]);
    for shell in shells {
        let out = in_shell(
            shell,
            &format!(
                ". {} && greet you && say_hi there && count *",
                script_path.display()
            ),
            &work,
        );
        assert_eq!(out, "hello, you\nhello, there\n2\n", "{shell:?}");
    }
    // In an interactive shell the alias with '-' works by its own name
    // (an alias is expanded in lines read after it is defined).
    let interactive: [&[&str]; 3] = [
        &["bash", "--norc", "-i"],
        &["dash", "-i"],
        &["zsh", "-f", "-i"],
    ];
    for shell in interactive {
        let mut child = Command::new(shell[0])
            .args(&shell[1..])
            .current_dir(&work)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!(". {}\nsay-hi friend\nexit\n", script_path.display()).as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("hello, friend"),
            "{shell:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    common::note("strata env under bash, dash, zsh", "RAN");
}
