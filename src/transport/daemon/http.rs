//! HTTP/1.1 over the Docker Engine's unix socket: just what the Engine API
//! needs (a request with no body, a byte body or a chunked streamed body;
//! a response with a Content-Length, chunked or read-to-close body).
//!
//! Every read has a stall timeout (the socket's read timeout) and every
//! response part a size bound.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// Largest response head (status line and headers).
const MAX_HEAD: usize = 64 * 1024;

/// A request body.
pub enum Body<'a> {
    /// No body.
    Empty,
    /// A streamed body of unknown length, sent with chunked encoding: the
    /// function writes it.
    Stream(&'a mut dyn FnMut(&mut dyn Write) -> Result<()>),
}

/// A response: its status and its body, de-chunked.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Box<dyn Read + Send>,
}

impl Response {
    /// Reads the whole body, failing when it is longer than `max` bytes.
    pub fn read_bounded(mut self, max: u64, what: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        (&mut self.body)
            .take(max + 1)
            .read_to_end(&mut out)
            .map_err(|e| engine_io(what, e))?;
        if out.len() as u64 > max {
            return Err(Error::invalid(
                "Docker Engine response",
                what,
                format!("more than {max} bytes"),
            ));
        }
        Ok(out)
    }
}

/// An I/O error talking to the engine, as a strata error naming the call.
pub fn engine_io(what: &str, e: io::Error) -> Error {
    let detail = if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        format!("{what}: the engine stopped answering (stall timeout)")
    } else {
        format!("{what}: {e}")
    };
    Error::Connect {
        host: "docker-daemon".into(),
        detail,
    }
}

/// Sends one request on a new connection to `socket`.
pub fn request(
    socket: &Path,
    timeout: Duration,
    method: &str,
    target: &str,
    content_type: Option<&str>,
    body: Body<'_>,
) -> Result<Response> {
    let what = format!("{method} {}", target.split('?').next().unwrap_or(target));
    let stream = UnixStream::connect(socket).map_err(|e| Error::Connect {
        host: "docker-daemon".into(),
        detail: format!(
            "cannot connect to the Docker Engine at {}: {e} (is dockerd running? DOCKER_HOST=unix:///PATH names another socket)",
            socket.display()
        ),
    })?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| engine_io(&what, e))?;
    let mut w = io::BufWriter::with_capacity(1 << 20, &stream);
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: docker\r\nUser-Agent: strata\r\n");
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    match body {
        Body::Empty => {
            head.push_str("Content-Length: 0\r\n\r\n");
            w.write_all(head.as_bytes())
                .map_err(|e| engine_io(&what, e))?;
        }
        Body::Stream(f) => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            w.write_all(head.as_bytes())
                .map_err(|e| engine_io(&what, e))?;
            let mut chunked = ChunkedWriter { inner: &mut w };
            f(&mut chunked)?;
            w.write_all(b"0\r\n\r\n").map_err(|e| engine_io(&what, e))?;
        }
    }
    w.flush().map_err(|e| engine_io(&what, e))?;
    drop(w);
    read_response(stream, &what)
}

fn read_response(stream: UnixStream, what: &str) -> Result<Response> {
    let mut r = BufReader::with_capacity(64 * 1024, stream);
    let mut status = None;
    let (mut length, mut chunked) = (None, false);
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = (&mut r)
            .take((MAX_HEAD - total) as u64)
            .read_line(&mut line)
            .map_err(|e| engine_io(what, e))?;
        total += n;
        if n == 0 || !line.ends_with('\n') {
            return Err(Error::invalid(
                "Docker Engine response",
                what,
                "the response head ended early or is too long",
            ));
        }
        let line = line.trim_end();
        if status.is_none() {
            status = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok());
            if status.is_none() {
                return Err(Error::invalid(
                    "Docker Engine response",
                    what,
                    format!("not an HTTP status line: {line:?}"),
                ));
            }
            continue;
        }
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse::<u64>().ok();
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let body: Box<dyn Read + Send> = if chunked {
        Box::new(ChunkedReader {
            inner: r,
            left: 0,
            done: false,
        })
    } else if let Some(n) = length {
        Box::new(r.take(n))
    } else {
        Box::new(r)
    };
    Ok(Response {
        status: status.expect("set above"),
        body,
    })
}

/// Writes chunked transfer encoding: each write is one chunk.
struct ChunkedWriter<'a, W: Write> {
    inner: &'a mut W,
}

impl<W: Write> Write for ChunkedWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        write!(self.inner, "{:x}\r\n", buf.len())?;
        self.inner.write_all(buf)?;
        self.inner.write_all(b"\r\n")?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads chunked transfer encoding.
struct ChunkedReader<R: BufRead> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> ChunkedReader<R> {
    fn line(&mut self) -> io::Result<String> {
        let mut s = String::new();
        (&mut self.inner).take(1024).read_line(&mut s)?;
        if !s.ends_with('\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad chunked encoding from the engine",
            ));
        }
        Ok(s)
    }
}

impl<R: BufRead> Read for ChunkedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let line = self.line()?;
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = u64::from_str_radix(size, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size {size:?} from the engine"),
                )
            })?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        if self.left == 0 {
            self.line()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_round_trip() {
        let mut wire = Vec::new();
        {
            let mut w = ChunkedWriter { inner: &mut wire };
            w.write_all(b"hello ").unwrap();
            w.write_all(b"").unwrap();
            w.write_all(b"world").unwrap();
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(wire, b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n");
        let mut out = String::new();
        ChunkedReader {
            inner: &wire[..],
            left: 0,
            done: false,
        }
        .read_to_string(&mut out)
        .unwrap();
        assert_eq!(out, "hello world");
        let bad = b"zz\r\nhello";
        let err = ChunkedReader {
            inner: &bad[..],
            left: 0,
            done: false,
        }
        .read_to_string(&mut String::new())
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
