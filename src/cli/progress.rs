//! Progress bars on stderr when it is a terminal (nothing otherwise): one
//! per blob for registry transfers, one per layer for builds, all in one
//! [`indicatif::MultiProgress`] so they do not draw over each other, with
//! command output printed above them.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use strata::progress::Event;
use strata::registry::push::{BlobOutcome, Progress, ProgressFn};

/// The process's bars, made (and the stderr printer installed) on first use.
fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(|| {
        let m = MultiProgress::new();
        let printer = m.clone();
        strata::progress::set_printer(Box::new(move |line| {
            if printer.println(line).is_err() {
                eprintln!("{line}");
            }
        }));
        m
    })
}

/// Per-blob progress bars on stderr when it is a terminal; nothing otherwise.
pub fn registry_bars() -> Option<ProgressFn> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let multi = multi();
    let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    let style = ProgressStyle::with_template(
        "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    )
    .expect("valid template")
    .progress_chars("=> ");
    Some(Arc::new(move |p: &Progress| {
        let mut bars = bars.lock().expect("lock");
        match p {
            Progress::Start { digest, size } => {
                let bar = multi.add(
                    ProgressBar::new(*size)
                        .with_style(style.clone())
                        .with_prefix(digest.hex()[..12].to_string()),
                );
                bars.insert(digest.to_string(), bar);
            }
            Progress::Bytes { digest, sent } => {
                if let Some(b) = bars.get(&digest.to_string()) {
                    b.set_position(*sent);
                }
            }
            Progress::Done { digest, outcome } => {
                let msg = match outcome {
                    BlobOutcome::Pushed => "done",
                    BlobOutcome::Skipped => "exists",
                    BlobOutcome::Mounted => "mounted",
                };
                match bars.remove(&digest.to_string()) {
                    Some(b) => b.finish_with_message(msg),
                    None => {
                        let _ = multi.println(format!("{} {msg}", &digest.hex()[..12]));
                    }
                }
            }
        }
    }))
}

/// Per-layer bars for builds: the phase (resolving, downloading .debs,
/// unpacking, compressing, running) with its bytes; a bar goes away when
/// its layer is done (the build report lists every layer after).
pub fn layer_bars() -> Option<strata::progress::ProgressFn> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let multi = multi();
    let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    let sized = ProgressStyle::with_template(
        "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    )
    .expect("valid template")
    .progress_chars("=> ");
    let open = ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} {bytes} {elapsed}")
        .expect("valid template");
    Some(Arc::new(move |e: &Event<'_>| {
        let mut bars = bars.lock().expect("lock");
        match *e {
            Event::Phase {
                layer,
                phase,
                total,
            } => {
                let bar = bars.entry(layer.to_string()).or_insert_with(|| {
                    let b = multi.add(
                        ProgressBar::no_length()
                            .with_style(open.clone())
                            .with_prefix(layer.to_string()),
                    );
                    b.enable_steady_tick(Duration::from_millis(120));
                    b
                });
                bar.set_position(0);
                match total {
                    Some(t) => {
                        bar.set_style(sized.clone());
                        bar.set_length(t);
                    }
                    None => {
                        bar.set_style(open.clone());
                        bar.unset_length();
                    }
                }
                bar.set_message(phase.to_string());
            }
            Event::Bytes { layer, done } => {
                if let Some(b) = bars.get(layer) {
                    b.set_position(done);
                }
            }
            Event::Done { layer } => {
                if let Some(b) = bars.remove(layer) {
                    b.finish_and_clear();
                }
            }
        }
    }))
}
