//! Build traces in the Chrome trace event format (what Perfetto and
//! chrome://tracing open): one complete event ("ph": "X") per span, with
//! the thread it ran on. Off unless [`start`] was called; a span then costs
//! a clock read and a push.

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::error::Result;

struct Event {
    name: String,
    cat: &'static str,
    ts: u64,
    dur: u64,
    tid: u64,
}

struct Tracer {
    origin: Instant,
    events: Mutex<Vec<Event>>,
}

static TRACER: OnceLock<Tracer> = OnceLock::new();
static NEXT_TID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static TID: Cell<u64> = const { Cell::new(0) };
}

fn tid() -> u64 {
    TID.with(|t| {
        if t.get() == 0 {
            t.set(NEXT_TID.fetch_add(1, Ordering::Relaxed));
        }
        t.get()
    })
}

/// Starts recording spans (for the rest of the process).
pub fn start() {
    let _ = TRACER.set(Tracer {
        origin: Instant::now(),
        events: Mutex::default(),
    });
}

/// A span, recorded when dropped.
pub struct Span {
    name: Option<String>,
    cat: &'static str,
    start: Instant,
}

/// Opens a span `name` of category `cat` ("layer", "image", …).
pub fn span(cat: &'static str, name: impl Into<String>) -> Span {
    Span {
        name: TRACER.get().map(|_| name.into()),
        cat,
        start: Instant::now(),
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        let (Some(t), Some(name)) = (TRACER.get(), self.name.take()) else {
            return;
        };
        let ts = self.start.saturating_duration_since(t.origin).as_micros() as u64;
        let dur = self.start.elapsed().as_micros() as u64;
        t.events.lock().expect("lock").push(Event {
            name,
            cat: self.cat,
            ts,
            dur,
            tid: tid(),
        });
    }
}

/// Writes the spans recorded so far to `path` (crash-safely).
pub fn write(path: &Path) -> Result<()> {
    let events: Vec<serde_json::Value> = TRACER
        .get()
        .map(|t| {
            t.events
                .lock()
                .expect("lock")
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "name": e.name, "cat": e.cat, "ph": "X", "ts": e.ts, "dur": e.dur,
                        "pid": 1, "tid": e.tid,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let doc = serde_json::json!({ "traceEvents": events, "displayTimeUnit": "ms" });
    crate::store::write_file_atomic(path, &serde_json::to_vec(&doc).expect("serializes"))
}
