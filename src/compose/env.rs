//! `strata env`: an env.sh that defines each alias of an image's (or a
//! layer's) layers as a shell function running the tool from the image.

use super::graph::Graph;
use super::project::Project;
use crate::error::{Error, Result};

/// Which container engine the functions call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// docker.
    Docker,
    /// podman.
    Podman,
    /// `strata run`, daemonless, from the store: the command that starts
    /// strata (its path and global options, shell-quoted).
    Strata(String),
}

impl Engine {
    /// The first of docker and podman on `PATH`, else `strata run`
    /// started by `strata_cmd`.
    pub fn detect(strata_cmd: String) -> Engine {
        let on_path = |name: &str| {
            std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        };
        if on_path("docker") {
            Engine::Docker
        } else if on_path("podman") {
            Engine::Podman
        } else {
            Engine::Strata(strata_cmd)
        }
    }
}

/// `s` quoted for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What an alias may be called: a POSIX name, or one with `-` (renamed
/// for the function, see [`EnvScript`]).
fn valid_alias_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !s.starts_with(|c: char| c.is_ascii_digit() || c == '-')
}

/// Names an env.sh never defines: the shell's reserved words and builtins,
/// the shells themselves, and what the functions call. A function named
/// `sh` or `cd` would change the shell the user sources the file into.
const SHADOWED: &[&str] = &[
    // reserved words (POSIX, bash, zsh)
    "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for", "in",
    "function", "select", "time", "coproc", "repeat", "foreach", "end",
    // special and regular builtins
    "break", "continue", "eval", "exec", "exit", "export", "readonly", "return", "set", "shift",
    "times", "trap", "unset", "alias", "unalias", "bg", "fg", "jobs", "cd", "command", "false",
    "true", "getopts", "hash", "kill", "pwd", "read", "type", "ulimit", "umask", "wait", "test",
    "echo", "printf", "local", "source", "builtin", "declare", "typeset", "let", "shopt", "enable",
    "history", "fc", "logout", "disown", "suspend", "newgrp",
    // shells, and what the functions run
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "env", "id", "docker", "podman", "strata",
];

/// An env.sh and what the user should know about it.
#[derive(Debug, Clone)]
pub struct EnvScript {
    /// The file's text.
    pub text: String,
    /// Aliases skipped (their names would shadow the shell's own) or
    /// renamed (a POSIX shell cannot name a function with `-`: the function
    /// is `a_b`, and an alias `a-b` calls it in interactive shells).
    pub warnings: Vec<String>,
}

/// The env.sh text for `target` (an image name, or a layer name whose
/// runtime image is `IMAGE` tag given by `image_ref`).
/// Its tag patterns are expanded with `vars`.
pub fn env_script(
    project: &Project,
    target: &str,
    engine: Engine,
    vars: &super::tags::TagVars,
) -> Result<EnvScript> {
    let graph = Graph::new(project)?;
    let (layers, image_ref) = if project.file.images.contains_key(target) {
        let tag = super::tags::shown_tag(project, target, vars)?;
        (graph.image_layers(target)?, tag)
    } else if project.layers.contains_key(target) {
        // A layer alone: the first image containing it runs its tools.
        let image = project
            .file
            .images
            .keys()
            .find(|i| {
                graph
                    .image_layers(i)
                    .map(|ls| ls.contains(&target))
                    .unwrap_or(false)
            })
            .ok_or_else(|| {
                Error::bad_input(
                    "strata env",
                    format!("no image in strata.toml contains layer {target:?}"),
                )
            })?;
        let tag = super::tags::shown_tag(project, image, vars)?;
        (
            vec![
                graph
                    .image_layers(image)?
                    .into_iter()
                    .find(|l| *l == target)
                    .expect("contains"),
            ],
            tag,
        )
    } else {
        let mut names: Vec<&str> = project.file.images.keys().map(String::as_str).collect();
        names.extend(project.layers.keys().map(String::as_str));
        let hint = super::graph::did_you_mean(target, names.iter().copied())
            .map(|s| format!(" (did you mean {s:?}?)"))
            .unwrap_or_default();
        return Err(Error::NotFound {
            what: format!("image or layer {target:?}"),
            location: "strata.toml and layers/".into(),
            hint,
        });
    };
    let mut out = format!(
        "# strata env for {target}: source this file (. ./env.sh).\n\
         # Each alias runs its tool in {image_ref} with the current directory\n\
         # mounted at the same path, as your uid:gid"
    );
    match &engine {
        Engine::Docker | Engine::Podman => {
            let engine_cmd = if engine == Engine::Docker {
                "docker"
            } else {
                "podman"
            };
            // Said before the engine would go looking for the image on
            // Docker Hub (what `run` does with a name it lacks).
            let image = shell_quote(&image_ref);
            let load = shell_quote(&if engine == Engine::Docker {
                format!("strata copy {image_ref} docker-daemon:{image_ref}")
            } else {
                format!(
                    "strata copy {image_ref} docker-archive:strata-load.tar:{image_ref} && {engine_cmd} load -i strata-load.tar"
                )
            });
            out.push_str(&format!(
                "; -it only when stdin is a terminal.\n\
                 __strata_run() {{\n\
                 \x20 if ! command {engine_cmd} image inspect {image} >/dev/null 2>&1; then\n\
                 \x20   echo \"strata env: \"{image}\" is not in {engine_cmd}'s images (a run would look for it in a registry); load it with:\" >&2\n\
                 \x20   echo \"  \"{load} >&2\n\
                 \x20   return 125\n\
                 \x20 fi\n\
                 \x20 if [ -t 0 ]; then set -- -it \"$@\"; else set -- -i \"$@\"; fi\n\
                 \x20 command {engine_cmd} run --rm \"$@\"\n\
                 }}\n"
            ));
        }
        Engine::Strata(cmd) => out.push_str(&format!(
            ", with strata run\n\
             # (no docker or podman here; the image is read from strata's store).\n\
             __strata_run() {{ {cmd} run \"$@\"; }}\n"
        )),
    }
    // strata run takes the command's arguments after --.
    let sep = if matches!(engine, Engine::Strata(_)) {
        " --"
    } else {
        ""
    };
    let mut warnings = Vec::new();
    for l in layers {
        let layer = &project.layers[l];
        for (alias, command) in &layer.file.aliases {
            if !valid_alias_name(alias) {
                return Err(Error::invalid(
                    "layer",
                    format!("{} key aliases.{alias}", layer.rel),
                    "an alias must be a shell function name (letters, digits, _ and -)",
                ));
            }
            if SHADOWED.contains(&alias.as_str()) {
                warnings.push(format!(
                    "{}: alias {alias:?} is not defined: it would shadow the shell's own {alias:?}; give it another name",
                    layer.rel
                ));
                continue;
            }
            let function = alias.replace('-', "_");
            if function != *alias {
                if layer.file.aliases.contains_key(&function) {
                    warnings.push(format!(
                        "{}: alias {alias:?} is not defined: a POSIX shell cannot name a function with '-', and {function:?} is taken",
                        layer.rel
                    ));
                    continue;
                }
                warnings.push(format!(
                    "{}: alias {alias:?} is the function {function} (a POSIX shell cannot name a function with '-'); {alias} works in interactive shells",
                    layer.rel
                ));
            }
            let argv: Vec<String> = command.split_whitespace().map(shell_quote).collect();
            out.push_str(&format!(
                "{function}() {{ __strata_run -v \"$PWD:$PWD\" -w \"$PWD\" -u \"$(command id -u):$(command id -g)\" --entrypoint {} {}{sep} {} \"$@\"; }}\n",
                argv.first().cloned().unwrap_or_else(|| shell_quote(alias)),
                shell_quote(&image_ref),
                argv.iter().skip(1).cloned().collect::<Vec<_>>().join(" "),
            ));
            if function != *alias {
                out.push_str(&format!("alias {alias}={function}\n"));
            }
        }
    }
    Ok(EnvScript {
        text: out,
        warnings,
    })
}
