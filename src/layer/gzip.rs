//! Parallel gzip over fixed-size blocks, with the same bytes for any thread
//! count.
//!
//! The tar stream is cut into fixed [`GZIP_BLOCK`] blocks; each is
//! compressed as its own gzip member with libdeflate (pinned through
//! `libdeflater`), on a pool of workers, and the members are written in
//! order. A multi-member gzip file is one valid gzip stream (RFC 1952 §2.2)
//! that Go's, zlib's and every OCI runtime's decompressors read as one; the
//! block boundaries depend only on the input, never on the thread count.
//!
//! The thread that produces the tar stream does as little as it can, so
//! the compressors never wait for it: file data is read straight into the
//! current block (no copy), and the diff_id (sha256 of the uncompressed
//! stream) is computed by the ordered writer thread, which sees every block
//! in order anyway. Blocks go back to the producer once written, so a
//! layer of any size uses the same few dozen buffers.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::compress::Encoder;
use crate::digest::{Digest, Hasher};

/// The gzip block size; part of the output format, never change it without
/// bumping the layer format version.
pub const GZIP_BLOCK: usize = 1 << 20;

/// Blocks queued ahead of the workers: lets the producer run ahead through
/// large files while the workers catch up on small-file stretches.
const QUEUE_BLOCKS: usize = 16;

/// A block of the tar stream: `len` bytes of a [`GZIP_BLOCK`]-sized buffer.
struct Block {
    seq: u64,
    buf: Vec<u8>,
    len: usize,
}

/// A compressed block on its way to the ordered writer.
struct Member {
    block: Block,
    gzip: Vec<u8>,
}

/// Compresses one block as a complete gzip member into `out` (reused
/// between blocks, grown to the bound once) and returns the member.
fn gzip_member(c: &mut libdeflater::Compressor, block: &[u8], out: &mut Vec<u8>) -> Vec<u8> {
    let bound = c.gzip_compress_bound(block.len());
    if out.len() < bound {
        out.resize(bound, 0);
    }
    let n = c
        .gzip_compress(block, out)
        .expect("output buffer sized by gzip_compress_bound");
    out[..n].to_vec()
}

fn compressor(level: i32) -> libdeflater::Compressor {
    libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap_or_default())
}

/// Parallel multi-member gzip; see the module documentation.
pub(super) struct ParallelGzip<W: Write + Send + 'static> {
    block: Block,
    mode: Option<Mode<W>>,
}

enum Mode<W: Write + Send + 'static> {
    /// One thread: compress, hash and write as blocks fill.
    Inline {
        inner: W,
        hasher: Hasher,
        compressor: Box<libdeflater::Compressor>,
        out: Vec<u8>,
    },
    Pool {
        jobs: Option<SyncSender<Block>>,
        /// Buffers the writer is done with.
        free: Receiver<Vec<u8>>,
        workers: Vec<JoinHandle<()>>,
        writer: JoinHandle<io::Result<(W, Hasher)>>,
    },
}

impl<W: Write + Send + 'static> ParallelGzip<W> {
    pub(super) fn new(inner: W, level: i32, threads: usize) -> Self {
        let mode = if threads <= 1 {
            Mode::Inline {
                inner,
                hasher: Hasher::new(),
                compressor: Box::new(compressor(level)),
                out: Vec::new(),
            }
        } else {
            let (job_tx, job_rx) = sync_channel::<Block>(QUEUE_BLOCKS);
            let (out_tx, out_rx) = sync_channel::<Member>(threads * 2);
            let (free_tx, free_rx) = sync_channel::<Vec<u8>>(QUEUE_BLOCKS + threads * 4);
            let job_rx = Arc::new(Mutex::new(job_rx));
            let workers = (0..threads)
                .map(|_| {
                    let rx = Arc::clone(&job_rx);
                    let tx = out_tx.clone();
                    std::thread::spawn(move || {
                        let mut c = compressor(level);
                        let mut out = Vec::new();
                        loop {
                            let job = { rx.lock().expect("job queue lock").recv() };
                            let Ok(block) = job else { break };
                            let gzip = gzip_member(&mut c, &block.buf[..block.len], &mut out);
                            if tx.send(Member { block, gzip }).is_err() {
                                break;
                            }
                        }
                    })
                })
                .collect();
            drop(out_tx);
            let writer = std::thread::spawn(move || ordered_writer(inner, out_rx, free_tx));
            Mode::Pool {
                jobs: Some(job_tx),
                free: free_rx,
                workers,
                writer,
            }
        };
        ParallelGzip {
            block: Block {
                seq: 0,
                buf: vec![0; GZIP_BLOCK],
                len: 0,
            },
            mode: Some(mode),
        }
    }

    /// Sends the current block off and starts the next in a recycled
    /// buffer (or a new one while the pipeline fills).
    fn dispatch(&mut self) -> io::Result<()> {
        let next = self.block.seq + 1;
        match self.mode.as_mut().expect("present until finish") {
            Mode::Inline {
                inner,
                hasher,
                compressor,
                out,
            } => {
                let data = &self.block.buf[..self.block.len];
                hasher.update(data);
                inner.write_all(&gzip_member(compressor, data, out))?;
                self.block.seq = next;
                self.block.len = 0;
            }
            Mode::Pool { jobs, free, .. } => {
                let buf = free.try_recv().unwrap_or_else(|_| vec![0; GZIP_BLOCK]);
                let next = Block {
                    seq: next,
                    buf,
                    len: 0,
                };
                let full = std::mem::replace(&mut self.block, next);
                jobs.as_ref()
                    .expect("open until finish")
                    .send(full)
                    .map_err(|_| io::Error::other("gzip writer stopped (the output failed)"))?;
            }
        }
        Ok(())
    }
}

fn ordered_writer<W: Write>(
    mut inner: W,
    rx: Receiver<Member>,
    free: SyncSender<Vec<u8>>,
) -> io::Result<(W, Hasher)> {
    let mut hasher = Hasher::new();
    let mut next = 0u64;
    let mut pending: BTreeMap<u64, Member> = BTreeMap::new();
    for m in rx {
        pending.insert(m.block.seq, m);
        while let Some(m) = pending.remove(&next) {
            hasher.update(&m.block.buf[..m.block.len]);
            inner.write_all(&m.gzip)?;
            // The producer may have finished; a full pool drops the buffer.
            let _ = free.try_send(m.block.buf);
            next += 1;
        }
    }
    Ok((inner, hasher))
}

impl<W: Write + Send + 'static> Write for ParallelGzip<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let total = buf.len();
        while !buf.is_empty() {
            let b = &mut self.block;
            let take = (GZIP_BLOCK - b.len).min(buf.len());
            b.buf[b.len..b.len + take].copy_from_slice(&buf[..take]);
            b.len += take;
            buf = &buf[take..];
            if b.len == GZIP_BLOCK {
                self.dispatch()?;
            }
        }
        Ok(total)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Encoder<W> for ParallelGzip<W> {
    fn read_from(&mut self, r: &mut dyn Read, max: u64) -> io::Result<(usize, usize)> {
        let b = &mut self.block;
        let asked = max.min((GZIP_BLOCK - b.len) as u64) as usize;
        let n = r.read(&mut b.buf[b.len..b.len + asked])?;
        b.len += n;
        if b.len == GZIP_BLOCK {
            self.dispatch()?;
        }
        Ok((n, asked))
    }

    fn finish(mut self: Box<Self>) -> io::Result<(W, Digest, u64)> {
        if self.block.len > 0 || self.block.seq == 0 {
            self.dispatch()?;
        }
        let (inner, hasher) = self.mode.take().expect("present until finish").close()?;
        let len = hasher.len();
        Ok((inner, hasher.finish(), len))
    }
}

impl<W: Write + Send + 'static> Mode<W> {
    /// Stops the pool (if any) and returns the inner writer and the hash of
    /// the uncompressed stream once every block is written.
    fn close(self) -> io::Result<(W, Hasher)> {
        match self {
            Mode::Inline { inner, hasher, .. } => Ok((inner, hasher)),
            Mode::Pool {
                mut jobs,
                free,
                workers,
                writer,
            } => {
                jobs.take();
                // Never leave the writer blocked on a full pool of buffers.
                drop(free);
                for w in workers {
                    w.join()
                        .map_err(|_| io::Error::other("gzip worker panicked"))?;
                }
                writer
                    .join()
                    .map_err(|_| io::Error::other("gzip writer panicked"))?
            }
        }
    }
}

impl<W: Write + Send + 'static> Drop for ParallelGzip<W> {
    /// An abandoned encoder (an error upstream) still joins its threads, so
    /// the inner writer — a temp blob — is dropped and removed before the
    /// caller sees the error.
    fn drop(&mut self) {
        if let Some(mode) = self.mode.take() {
            let _ = mode.close();
        }
    }
}
