//! One mapping's directory tree as a stream of entries in full-path order,
//! with directory listings read ahead by helper threads.
//!
//! Full-path order is not plain depth-first order: a directory `a` comes
//! before its sibling `a-b`, but `a`'s children (`a/…`) come after it,
//! since `-` sorts before `/`. So each directory's listing holds its
//! children keyed by name and, for every subdirectory, the subtree keyed by
//! `name/`; expanding the listing in key order yields exactly the order of
//! the full paths, with no map over the whole tree.
//!
//! Listings (readdir, then an lstat of each child relative to the open
//! directory) are the expensive part of a walk. Helper threads compute them
//! ahead of the consumer, earliest-needed first, at most [`AHEAD`] at a
//! time; the consumer computes a listing itself when no helper has started
//! it. Errors surface when the consumer reaches the directory, so they are
//! the same whatever the thread timing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::walk::{Entry, Mapping, entry_for, glob_match};
use crate::error::{Error, IoContext, Result};

/// Listings computed or being computed ahead of the consumer, at most.
const AHEAD: usize = 256;

/// A directory whose listing is wanted.
struct DirJob {
    src: PathBuf,
    dest: Vec<u8>,
    /// Path relative to the mapping's source, for exclude globs.
    rel: Vec<u8>,
}

enum Item {
    Entry(Entry),
    /// The children of the directory with this queue key come next.
    Subtree(Vec<u8>),
}

type Listing = Result<Vec<Item>>;

#[derive(Default)]
struct State {
    /// Not started, by key (the order the consumer needs them in).
    queue: BTreeMap<Vec<u8>, DirJob>,
    running: HashSet<Vec<u8>>,
    done: HashMap<Vec<u8>, Listing>,
    stop: bool,
}

struct Shared {
    mapping: Mapping,
    xattrs: bool,
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A helper that panicked holds no invariant the consumer relies on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The entries of one directory mapping, in full-path order.
pub(super) struct TreeWalk {
    shared: Arc<Shared>,
    /// Open listings, innermost last; each is reversed so `pop` is next.
    frames: Vec<Vec<Item>>,
    helpers: Vec<JoinHandle<()>>,
}

impl TreeWalk {
    /// Walks `mapping.source` (a directory). The directory itself is an
    /// entry unless it maps to the image root.
    pub(super) fn new(mapping: &Mapping, root_meta: &fs::Metadata, xattrs: bool) -> Result<Self> {
        let dest = mapping.dest.as_bytes().to_vec();
        let mut top = Vec::new();
        let key = queue_key(&dest);
        top.push(Item::Subtree(key.clone()));
        if !dest.is_empty() {
            top.push(Item::Entry(entry_for(
                &mapping.source,
                root_meta,
                dest.clone(),
                mapping,
                xattrs,
            )?));
        }
        let mut state = State::default();
        state.queue.insert(
            key,
            DirJob {
                src: mapping.source.clone(),
                dest,
                rel: Vec::new(),
            },
        );
        Ok(TreeWalk {
            shared: Arc::new(Shared {
                mapping: mapping.clone(),
                xattrs,
                state: Mutex::new(state),
                changed: Condvar::new(),
            }),
            frames: vec![top],
            helpers: Vec::new(),
        })
    }

    /// The listing with queue key `key`: taken from the helpers, or
    /// computed here when none has started it.
    fn listing(&mut self, key: &[u8]) -> Listing {
        let mut st = self.shared.lock();
        loop {
            if let Some(done) = st.done.remove(key) {
                self.shared.changed.notify_all();
                return done;
            }
            if let Some(job) = st.queue.remove(key) {
                drop(st);
                return list_dir(&self.shared, &job);
            }
            if !st.running.contains(key) {
                return Err(Error::Unsupported(format!(
                    "internal error: the listing of /{} was lost",
                    String::from_utf8_lossy(key.strip_suffix(b"/").unwrap_or(key))
                )));
            }
            st = self
                .shared
                .changed
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Starts the helpers the first time a listing queued subdirectories.
    fn start_helpers(&mut self) {
        if !self.helpers.is_empty() || self.shared.lock().queue.is_empty() {
            return;
        }
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4);
        for _ in 0..n {
            let shared = Arc::clone(&self.shared);
            // Without helpers (no thread to be had) the consumer lists
            // every directory itself.
            if let Ok(h) = std::thread::Builder::new()
                .name("strata-walk".into())
                .spawn(move || helper(&shared))
            {
                self.helpers.push(h);
            }
        }
    }
}

impl Iterator for TreeWalk {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            let frame = self.frames.last_mut()?;
            match frame.pop() {
                None => {
                    self.frames.pop();
                }
                Some(Item::Entry(e)) => return Some(Ok(e)),
                Some(Item::Subtree(key)) => {
                    let mut items = match self.listing(&key) {
                        Ok(items) => items,
                        Err(e) => {
                            self.frames.clear();
                            return Some(Err(e));
                        }
                    };
                    self.start_helpers();
                    items.reverse();
                    self.frames.push(items);
                }
            }
        }
    }
}

impl Drop for TreeWalk {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        for h in self.helpers.drain(..) {
            let _ = h.join();
        }
    }
}

fn helper(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if st.stop {
            return;
        }
        let busy = st.done.len() + st.running.len() >= AHEAD;
        let job = if busy { None } else { st.queue.pop_first() };
        let Some((key, job)) = job else {
            st = shared.changed.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        st.running.insert(key.clone());
        drop(st);
        // A panic becomes this directory's error: the consumer waiting for
        // it must not wait forever.
        let listing =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| list_dir(shared, &job)))
                .unwrap_or_else(|_| {
                    Err(Error::Unsupported(format!(
                        "reading the directory {} failed unexpectedly (a strata bug)",
                        job.src.display()
                    )))
                });
        st = shared.lock();
        st.running.remove(&key);
        st.done.insert(key, listing);
        shared.changed.notify_all();
    }
}

/// The queue key of the directory at `dest`: its path and a `/`, which is
/// where its children fall in full-path order.
fn queue_key(dest: &[u8]) -> Vec<u8> {
    let mut k = dest.to_vec();
    k.push(b'/');
    k
}

/// Reads one directory: its children (excluded ones left out) as entries,
/// and each subdirectory's subtree at the place of `name/`. The
/// subdirectories are queued for reading ahead before the listing is
/// returned, so the consumer never asks for a listing nobody will compute.
fn list_dir(shared: &Shared, job: &DirJob) -> Listing {
    let m = &shared.mapping;
    let mut children: Vec<(OsString, Vec<u8>, fs::Metadata)> = Vec::new();
    for ent in fs::read_dir(&job.src).at(&job.src)? {
        let ent = ent.at(&job.src)?;
        let name = ent.file_name();
        let mut rel = job.rel.clone();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        if m.exclude.iter().any(|p| glob_match(p.as_bytes(), &rel)) {
            continue;
        }
        // strata reads layers with UTF-8 names only (so do most tools):
        // it writes none other.
        if std::str::from_utf8(name.as_bytes()).is_err() {
            return Err(crate::Error::invalid(
                "file name",
                ent.path().display().to_string(),
                "it is not valid UTF-8, which layer readers (strata's too) refuse; rename it or exclude it",
            ));
        }
        // An lstat relative to the open directory: no lookup from the root.
        let meta = ent.metadata().at(ent.path())?;
        children.push((name, rel, meta));
    }
    children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut keyed: Vec<(Vec<u8>, Item)> = Vec::with_capacity(children.len() + 8);
    let mut subdirs = Vec::new();
    for (name, rel, meta) in children {
        let src = job.src.join(&name);
        let mut dest = job.dest.clone();
        if !dest.is_empty() {
            dest.push(b'/');
        }
        dest.extend_from_slice(name.as_bytes());
        let e = entry_for(&src, &meta, dest, m, shared.xattrs)?;
        if meta.is_dir() {
            let key = queue_key(&e.path);
            let mut sub = name.as_bytes().to_vec();
            sub.push(b'/');
            keyed.push((sub, Item::Subtree(key.clone())));
            let dest = e.path.clone();
            subdirs.push((key, DirJob { src, dest, rel }));
        }
        keyed.push((name.as_bytes().to_vec(), Item::Entry(e)));
    }
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let items: Vec<Item> = keyed.into_iter().map(|(_, i)| i).collect();
    if !subdirs.is_empty() {
        shared.lock().queue.extend(subdirs);
        shared.changed.notify_all();
    }
    Ok(items)
}
