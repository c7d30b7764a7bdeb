//! Progress of a build, for a front end to draw: each layer's phases
//! (resolving, downloading its .debs, unpacking, compressing, running) and
//! the bytes done in them. Nothing here prints; the CLI draws bars on a
//! terminal and installs nothing otherwise.

use std::sync::{Arc, OnceLock};

/// One step of a layer's progress.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The layer entered `phase`; `total` is the phase's bytes when known.
    Phase {
        /// The layer.
        layer: &'a str,
        /// What it is doing ("resolving", "downloading 12 .debs", …).
        phase: &'a str,
        /// Bytes the phase will move, when known.
        total: Option<u64>,
    },
    /// Bytes done so far in the current phase.
    Bytes {
        /// The layer.
        layer: &'a str,
        /// Bytes done.
        done: u64,
    },
    /// The layer's work is over (built, or failed).
    Done {
        /// The layer.
        layer: &'a str,
    },
}

/// Receives [`Event`]s (from several threads).
pub type ProgressFn = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// The progress of one layer: events go to the front end's function, or
/// nowhere.
#[derive(Clone, Default)]
pub struct LayerProgress {
    f: Option<ProgressFn>,
    layer: Arc<str>,
}

impl std::fmt::Debug for LayerProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LayerProgress({})", self.layer)
    }
}

impl LayerProgress {
    /// Progress of `layer` sent to `f`.
    pub fn new(f: Option<ProgressFn>, layer: &str) -> Self {
        LayerProgress {
            f,
            layer: layer.into(),
        }
    }

    /// Whether anything receives the events.
    pub fn is_on(&self) -> bool {
        self.f.is_some()
    }

    /// The layer enters `phase`.
    pub fn phase(&self, phase: &str, total: Option<u64>) {
        if let Some(f) = &self.f {
            f(&Event::Phase {
                layer: &self.layer,
                phase,
                total,
            });
        }
    }

    /// `done` bytes of the current phase are done.
    pub fn bytes(&self, done: u64) {
        if let Some(f) = &self.f {
            f(&Event::Bytes {
                layer: &self.layer,
                done,
            });
        }
    }

    /// The layer's work is over.
    pub fn done(&self) {
        if let Some(f) = &self.f {
            f(&Event::Done { layer: &self.layer });
        }
    }
}

/// Where lines meant for stderr go while a front end draws progress on
/// it (so they are printed above the bars, not through them).
pub type PrintFn = Box<dyn Fn(&str) + Send + Sync>;

static PRINTER: OnceLock<PrintFn> = OnceLock::new();

/// Installs the process's stderr printer (once; later calls are ignored).
pub fn set_printer(f: PrintFn) {
    let _ = PRINTER.set(f);
}

/// Prints a line on stderr, through the installed printer if any.
pub fn eprint_line(line: &str) {
    match PRINTER.get() {
        Some(p) => p(line),
        None => eprintln!("{line}"),
    }
}

/// A reader that reports the bytes read through it, every MiB or so.
pub struct ReadProgress<R> {
    inner: R,
    progress: LayerProgress,
    read: u64,
    reported: u64,
}

impl<R> ReadProgress<R> {
    /// Reports reads of `inner` to `progress`.
    pub fn new(inner: R, progress: LayerProgress) -> Self {
        ReadProgress {
            inner,
            progress,
            read: 0,
            reported: 0,
        }
    }
}

impl<R: std::io::Read> std::io::Read for ReadProgress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.progress.is_on() && (self.read - self.reported >= 1 << 20 || n == 0) {
            self.reported = self.read;
            self.progress.bytes(self.read);
        }
        Ok(n)
    }
}
