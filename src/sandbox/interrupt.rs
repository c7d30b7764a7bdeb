//! SIGINT and SIGTERM while a sandbox runs: instead of dying with mounts
//! and work directories left behind, strata notes the signal, kills the
//! container and cleans up (the caller then returns
//! [`crate::Error::Interrupted`]). The previous handlers come back when
//! the guard is dropped, so the rest of strata keeps the default
//! behaviour.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static DEPTH: AtomicUsize = AtomicUsize::new(0);
static PREVIOUS: Mutex<Option<[libc::sigaction; 2]>> = Mutex::new(None);

extern "C" fn note(_sig: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// While alive, SIGINT and SIGTERM only set a flag.
pub struct Guard(());

impl Guard {
    /// Installs the handlers (nested guards share them).
    pub fn install() -> Self {
        if DEPTH.fetch_add(1, Ordering::SeqCst) == 0 {
            INTERRUPTED.store(false, Ordering::SeqCst);
            let mut old: [libc::sigaction; 2] = unsafe { std::mem::zeroed() };
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = note as *const () as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(libc::SIGINT, &sa, &mut old[0]);
                libc::sigaction(libc::SIGTERM, &sa, &mut old[1]);
            }
            *PREVIOUS.lock().expect("lock") = Some(old);
        }
        Guard(())
    }

    /// Whether a signal arrived since the first guard was installed.
    pub fn interrupted(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if DEPTH.fetch_sub(1, Ordering::SeqCst) == 1
            && let Some(old) = PREVIOUS.lock().expect("lock").take()
        {
            unsafe {
                libc::sigaction(libc::SIGINT, &old[0], std::ptr::null_mut());
                libc::sigaction(libc::SIGTERM, &old[1], std::ptr::null_mut());
            }
        }
    }
}
