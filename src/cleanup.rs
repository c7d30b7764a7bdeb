//! What strata removes when SIGINT or SIGTERM ends it outside a sandbox:
//! the temp files of blobs being written (a pull, a push's source, a
//! layer). The handler only sets a flag; a watcher thread removes the
//! registered files and exits with status 130, as a shell reports an
//! interrupted command. Inside a sandbox, the sandbox's interrupt guard
//! takes the signals over and cleans up its own way.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static TEMPS: Mutex<BTreeMap<u64, PathBuf>> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
static SIGNALLED: AtomicBool = AtomicBool::new(false);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A temp file removed on SIGINT or SIGTERM until this is dropped.
pub struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        TEMPS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

/// Registers `path` for removal if a signal ends strata.
pub fn register(path: PathBuf) -> Registered {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    TEMPS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, path);
    Registered(id)
}

extern "C" fn on_signal(_sig: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// Installs the handlers and the watcher (once per process; the command
/// line tool calls it first thing).
pub fn install() {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
    std::thread::Builder::new()
        .name("strata-signals".into())
        .spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(50));
                if SIGNALLED.load(Ordering::SeqCst) {
                    let temps = TEMPS.lock().unwrap_or_else(|p| p.into_inner());
                    for p in temps.values() {
                        let _ = std::fs::remove_file(p);
                    }
                    eprintln!("strata: interrupted");
                    std::process::exit(130);
                }
            }
        })
        .expect("a thread for signals");
}
