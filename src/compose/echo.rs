//! Where the output of the commands a build runs goes (build steps,
//! maintainer scripts): each line to stderr prefixed with the layer's name
//! (the prefix colored on a terminal unless `NO_COLOR` is set, plain
//! otherwise), or, for `--json`, kept for the layer's entry in the build
//! report. The whole output is in the layer's log either way.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::Mutex;

/// How many of the last lines a report keeps per layer.
pub const KEEP: usize = 200;

/// Where command output goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EchoMode {
    /// Each line to stderr as it comes.
    #[default]
    Stream,
    /// Kept (the last [`KEEP`] lines) for the build report; nothing printed.
    Report,
}

/// The output of one layer's commands.
pub struct Echo {
    name: String,
    mode: EchoMode,
    color: bool,
    kept: Mutex<VecDeque<String>>,
}

impl Echo {
    /// Output of layer `name`.
    pub fn new(name: &str, mode: EchoMode) -> Self {
        let color = mode == EchoMode::Stream
            && std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Echo {
            name: name.to_string(),
            mode,
            color,
            kept: Mutex::new(VecDeque::new()),
        }
    }

    /// One line the commands printed (already redacted), escaped before it
    /// is shown.
    pub fn line(&self, line: &str) {
        let line = crate::text::escape(line);
        match self.mode {
            EchoMode::Stream if self.color => {
                crate::progress::eprint_line(&format!("\x1b[36m[{}]\x1b[0m {line}", self.name))
            }
            EchoMode::Stream => crate::progress::eprint_line(&format!("[{}] {line}", self.name)),
            EchoMode::Report => {
                let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
                if kept.len() == KEEP {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        }
    }

    /// The lines kept for the report (empty when streamed).
    pub fn into_lines(self) -> Vec<String> {
        self.kept
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_keeps_the_last_lines_escaped() {
        let e = Echo::new("app", EchoMode::Report);
        for i in 0..KEEP + 5 {
            e.line(&format!("line {i}"));
        }
        e.line("bell \x07 here");
        let lines = e.into_lines();
        assert_eq!(lines.len(), KEEP);
        assert_eq!(lines[0], "line 6");
        assert_eq!(lines[KEEP - 1], "bell \\u{7} here");
    }

    #[test]
    fn a_stream_keeps_nothing() {
        let e = Echo::new("app", EchoMode::Stream);
        e.line("shown, not kept");
        assert!(e.into_lines().is_empty());
    }
}
