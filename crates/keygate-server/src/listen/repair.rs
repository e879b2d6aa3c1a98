//! Percent-encodes what clients commonly leave raw in a query string, before the
//! HTTP parser sees it.
//!
//! curl sends `?filter=id>0` and `?filter=note:"a b"` as typed, and a UTF-8 value as
//! its raw bytes; the HTTP/1 parser refuses `"`, `<`, `>` and bytes above 0x7F in a
//! request target with a bare 400, although the LogicMonitor filter syntax is made of
//! them. [`Repair`] wraps a connection's read side and rewrites exactly those bytes, and
//! only in the query of each request line, to their `%XX` form — what a browser
//! sends — so the API sees the value the client meant.
//!
//! To know where each request line starts it follows HTTP/1 message framing
//! (`Content-Length`, chunked bodies with their trailers). Anything it does not follow
//! exactly as the parser would (conflicting or malformed framing headers, obsolete
//! line folding, an upgrade, overlong lines) makes it pass the rest of the connection
//! through untouched, so a body byte is never rewritten: the worst it can do is leave
//! a request as the client sent it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest request line or header line followed; past it the connection is passed
/// through (the parser answers 431 or 414 itself).
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Before the method (empty lines before a request are allowed).
    Start,
    /// The method, up to the first space.
    Method,
    /// The target before `?`.
    Path,
    /// The target's query: the part that is repaired.
    Query,
    /// After the target.
    Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a request line.
    RequestLine(Line),
    /// In the header section (the current line is being collected).
    Headers,
    /// In a body of known length: this many bytes are left.
    Body(u64),
    /// In a chunked body, reading a chunk-size line.
    ChunkSize,
    /// In a chunk's data: this many bytes are left.
    ChunkData(u64),
    /// After a chunk's data: the CRLF that ends it (bytes of it seen).
    ChunkEnd(u8),
    /// In the trailer section after the last chunk.
    Trailers,
    /// Not following any more: everything passes as it is.
    Passthrough,
}

/// What the headers of the current request said about its body.
#[derive(Debug, Default)]
struct Framing {
    content_length: Option<u64>,
    chunked: bool,
    /// Framing the parser would refuse or handle differently: stop following.
    unsure: bool,
}

/// The rewriting state of one connection's read side.
#[derive(Debug)]
struct Follower {
    state: State,
    /// The current header, chunk-size or trailer line.
    line: Vec<u8>,
    /// Length of the current request line.
    request_line: usize,
    framing: Framing,
    /// The current header line cannot be about framing: only its end is looked for.
    skipping: bool,
}

impl Follower {
    fn new() -> Self {
        Self {
            state: State::RequestLine(Line::Start),
            line: Vec::new(),
            request_line: 0,
            framing: Framing::default(),
            skipping: false,
        }
    }

    fn give_up(&mut self) {
        self.state = State::Passthrough;
        self.line = Vec::new();
    }

    /// Follows `input`, handing it to `out` rewritten where it must be. Returns how
    /// many bytes were consumed: all, unless `out` refused an escape (see [`Out`]).
    fn feed(&mut self, input: &[u8], out: &mut impl Out) -> usize {
        let mut i = 0;
        while i < input.len() {
            let rest = &input[i..];
            match self.state {
                State::Passthrough => {
                    out.copy(rest);
                    return input.len();
                }
                State::Body(left) | State::ChunkData(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    out.copy(&rest[..n]);
                    i += n;
                    let left = left - n as u64;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::RequestLine(Line::Start),
                        (State::Body(_), _) => State::Body(left),
                        (_, 0) => State::ChunkEnd(0),
                        _ => State::ChunkData(left),
                    };
                }
                State::Headers | State::ChunkSize | State::Trailers => {
                    // A whole line at a time, copied out as it is. Header lines are
                    // collected only when they could be about framing (or are not
                    // plain): the rest only need their end found.
                    let (take, ends) = match memchr::memchr(b'\n', rest) {
                        Some(p) => (p + 1, true),
                        None => (rest.len(), false),
                    };
                    out.copy(&rest[..take]);
                    i += take;
                    let part = if ends { &rest[..take - 1] } else { rest };
                    if self.line.is_empty() && !self.skipping {
                        self.skipping = self.state == State::Headers
                            && part.first().is_some_and(|c| !may_matter(*c));
                    }
                    if !self.skipping {
                        if self.line.len() + part.len() > MAX_LINE {
                            self.give_up();
                            continue;
                        }
                        self.line.extend_from_slice(part);
                    }
                    if ends {
                        if self.skipping {
                            self.skipping = false;
                        } else {
                            let line = std::mem::take(&mut self.line);
                            self.line_done(&line);
                            self.line = line;
                            self.line.clear();
                        }
                    }
                }
                State::ChunkEnd(seen) => {
                    let b = rest[0];
                    out.copy(&rest[..1]);
                    i += 1;
                    match (seen, b) {
                        (0, b'\r') => self.state = State::ChunkEnd(1),
                        (1, b'\n') => self.state = State::ChunkSize,
                        _ => self.give_up(),
                    }
                }
                State::RequestLine(part) => {
                    // Plain bytes in bulk, up to the next one that matters here.
                    let n = next_that_matters(part, rest);
                    out.copy(&rest[..n]);
                    i += n;
                    self.request_line += n;
                    if self.request_line > MAX_LINE {
                        self.give_up();
                        continue;
                    }
                    if n < rest.len() {
                        if !self.request_line_byte(part, rest[n], out) {
                            return i;
                        }
                        i += 1;
                    }
                }
            }
        }
        input.len()
    }

    /// One byte of the request line that changes its part or is rewritten; `false`
    /// (nothing consumed) when `out` refuses the escape.
    fn request_line_byte(&mut self, part: Line, b: u8, out: &mut impl Out) -> bool {
        let next = match (part, b) {
            (Line::Start, b'\r' | b'\n') => Line::Start,
            (Line::Start, _) => Line::Method,
            (_, b'\n') => {
                out.copy(&[b]);
                self.state = State::Headers;
                self.framing = Framing::default();
                self.line.clear();
                self.skipping = false;
                return true;
            }
            (Line::Method, b' ') => Line::Path,
            (Line::Path, b'?') => Line::Query,
            (Line::Path | Line::Query, b' ') => Line::Version,
            (p, _) => p,
        };
        if next == Line::Query && part == Line::Query && needs_escape(b) {
            if !out.escape(b) {
                return false;
            }
        } else {
            out.copy(&[b]);
        }
        self.request_line = if next == Line::Start {
            0
        } else {
            self.request_line + 1
        };
        self.state = State::RequestLine(next);
        true
    }

    /// A header, chunk-size or trailer line ended (`line` without its LF).
    fn line_done(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match self.state {
            State::Headers if line.is_empty() => self.head_done(),
            State::Headers => self.header(line),
            State::ChunkSize => {
                let size = line.split(|c| *c == b';').next().unwrap_or(b"");
                let size = size.trim_ascii_end();
                match std::str::from_utf8(size)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                {
                    Some(0) => self.state = State::Trailers,
                    Some(n) => self.state = State::ChunkData(n),
                    None => self.give_up(),
                }
            }
            State::Trailers if line.is_empty() => self.state = State::RequestLine(Line::Start),
            State::Trailers if line.first().is_some_and(|c| *c == b' ' || *c == b'\t') => {
                self.give_up();
            }
            _ => {}
        }
    }

    fn header(&mut self, line: &[u8]) {
        // Obsolete line folding, or a name the parser would refuse: stop following.
        if line.first().is_some_and(|c| *c == b' ' || *c == b'\t') {
            self.give_up();
            return;
        }
        let Some(colon) = line.iter().position(|c| *c == b':') else {
            self.give_up();
            return;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.is_empty() || name.iter().any(|c| c.is_ascii_whitespace()) {
            self.give_up();
            return;
        }
        let f = &mut self.framing;
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
            match (n, f.content_length) {
                (Some(n), None) => f.content_length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => f.unsure = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = value
                .rsplit(|c| *c == b',')
                .next()
                .map(<[u8]>::trim_ascii)
                .unwrap_or(b"");
            if f.chunked || !last.eq_ignore_ascii_case(b"chunked") {
                f.unsure = true;
            } else {
                f.chunked = true;
            }
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            f.unsure = true;
        }
    }

    fn head_done(&mut self) {
        let f = std::mem::take(&mut self.framing);
        self.request_line = 0;
        self.state = match (f.unsure, f.chunked, f.content_length) {
            (true, ..) | (false, true, Some(_)) => State::Passthrough,
            (false, true, None) => State::ChunkSize,
            (false, false, Some(0) | None) => State::RequestLine(Line::Start),
            (false, false, Some(n)) => State::Body(n),
        };
    }
}

/// Whether a header line starting with `c` could be one the follower must read:
/// `Content-Length`, `Transfer-Encoding`, `Upgrade`, a folded line, the empty line.
fn may_matter(c: u8) -> bool {
    matches!(
        c,
        b'c' | b'C' | b't' | b'T' | b'u' | b'U' | b' ' | b'\t' | b'\r'
    )
}

/// Where rewritten bytes go.
trait Out {
    /// Bytes passed on as they are.
    fn copy(&mut self, bytes: &[u8]);
    /// A byte passed on percent-encoded; `false` to stop before it instead.
    fn escape(&mut self, b: u8) -> bool;
}

impl Out for Vec<u8> {
    fn copy(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn escape(&mut self, b: u8) -> bool {
        self.extend_from_slice(&escaped(b));
        true
    }
}

/// Following bytes already where they belong: nothing is copied, and the first byte
/// that needs rewriting stops the scan.
struct InPlace;

impl Out for InPlace {
    fn copy(&mut self, _: &[u8]) {}
    fn escape(&mut self, _: u8) -> bool {
        false
    }
}

/// Where in `rest` the next byte is that changes the request line's part or is
/// rewritten (`rest.len()` if none).
fn next_that_matters(part: Line, rest: &[u8]) -> usize {
    let found = match part {
        // Every byte before the method decides something.
        Line::Start => Some(0),
        Line::Method => memchr::memchr2(b' ', b'\n', rest),
        Line::Path => memchr::memchr3(b' ', b'?', b'\n', rest),
        Line::Query => rest
            .iter()
            .position(|b| matches!(b, b' ' | b'\n') || needs_escape(*b)),
        Line::Version => memchr::memchr(b'\n', rest),
    };
    found.unwrap_or(rest.len())
}

/// Bytes refused in a request target that have one meaning when percent-encoded.
fn needs_escape(b: u8) -> bool {
    matches!(b, b'"' | b'<' | b'>') || b >= 0x80
}

fn escaped(b: u8) -> [u8; 3] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]]
}

/// A connection whose incoming request lines are repaired (see the module
/// documentation); writes pass straight through.
///
/// Bytes are read straight into the reader's buffer and followed there; only from
/// the first byte that needs rewriting on (rare: a raw `"`, `<`, `>` or UTF-8 byte in a
/// query) are they copied and rewritten.
#[derive(Debug)]
pub struct Repair<S> {
    inner: S,
    follower: Follower,
    /// Bytes read but not yet followed: from a byte that needs rewriting on.
    raw: Vec<u8>,
    /// Rewritten bytes not yet handed to the reader.
    pending: Vec<u8>,
    pending_at: usize,
}

impl<S> Repair<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            follower: Follower::new(),
            raw: Vec::new(),
            pending: Vec::new(),
            pending_at: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Repair<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pending_at < this.pending.len() {
                let n = (this.pending.len() - this.pending_at).min(buf.remaining());
                buf.put_slice(&this.pending[this.pending_at..this.pending_at + n]);
                this.pending_at += n;
                return Poll::Ready(Ok(()));
            }
            this.pending.clear();
            this.pending_at = 0;
            if !this.raw.is_empty() {
                let raw = std::mem::take(&mut this.raw);
                this.follower.feed(&raw, &mut this.pending);
                continue;
            }
            if this.follower.state == State::Passthrough {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let before = buf.filled().len();
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let fresh = &buf.filled()[before..];
            let followed = this.follower.feed(fresh, &mut InPlace);
            if followed == fresh.len() {
                return Poll::Ready(Ok(()));
            }
            // From here on the bytes change: keep what precedes them where it is.
            this.raw = fresh[followed..].to_vec();
            buf.set_filled(before + followed);
            if followed > 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Repair<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a reader gets through [`Repair`] from a peer that sends `input` in pieces
    /// of `chunk` bytes, reading `read` bytes at a time.
    fn run_with(input: &[u8], chunk: usize, read: usize) -> Vec<u8> {
        struct Pieces(Vec<Vec<u8>>);
        impl AsyncRead for Pieces {
            fn poll_read(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                if self.0.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                let n = self.0[0].len().min(buf.remaining());
                let piece: Vec<u8> = self.0[0].drain(..n).collect();
                buf.put_slice(&piece);
                if self.0[0].is_empty() {
                    self.0.remove(0);
                }
                Poll::Ready(Ok(()))
            }
        }
        let pieces = input.chunks(chunk.max(1)).map(<[u8]>::to_vec).collect();
        let mut r = Repair::new(Pieces(pieces));
        let mut out = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            use tokio::io::AsyncReadExt as _;
            let mut buf = vec![0u8; read.max(1)];
            loop {
                let n = r.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
        });
        out
    }

    fn run(input: &[u8], chunk: usize) -> Vec<u8> {
        let through = run_with(input, chunk, 7);
        let mut f = Follower::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            f.feed(piece, &mut out);
        }
        assert_eq!(through, out, "the stream and the follower agree");
        out
    }

    #[test]
    fn raw_query_characters_are_encoded_and_nothing_else_is_touched() {
        let input =
            b"GET /a?filter=id>0,note:\"x<y\",n:caf\xc3\xa9 HTTP/1.1\r\nX-A: \"<>\"\r\n\r\n";
        let want =
            b"GET /a?filter=id%3E0,note:%22x%3Cy%22,n:caf%C3%A9 HTTP/1.1\r\nX-A: \"<>\"\r\n\r\n";
        assert_eq!(run(input, 1000), want);
        assert_eq!(run(input, 1), want, "byte by byte");
        // The path keeps its bytes: an LMv1 signature covers it as sent.
        assert_eq!(
            run(b"GET /a<b>?q=1 HTTP/1.1\r\n\r\n", 7),
            b"GET /a<b>?q=1 HTTP/1.1\r\n\r\n"
        );
    }

    #[test]
    fn bodies_are_never_rewritten() {
        let body = b"{\"note\":\"a<b>?x=\\\"y\\\" GET /?<\"}";
        let mut input = format!(
            "POST /p?x=< HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        input.extend_from_slice(body);
        input.extend_from_slice(b"GET /q?y=> HTTP/1.1\r\n\r\n");
        let mut want = format!(
            "POST /p?x=%3C HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        want.extend_from_slice(body);
        want.extend_from_slice(b"GET /q?y=%3E HTTP/1.1\r\n\r\n");
        for chunk in [1, 3, 64, 4096] {
            assert_eq!(run(&input, chunk), want, "chunks of {chunk}");
        }
        // Chunked, with an extension and a trailer.
        let input = b"POST /p?a=< HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\n?a=<>\r\n0\r\nT: <\r\n\r\nGET /?b=> HTTP/1.1\r\n\r\n";
        let want = b"POST /p?a=%3C HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\n?a=<>\r\n0\r\nT: <\r\n\r\nGET /?b=%3E HTTP/1.1\r\n\r\n";
        assert_eq!(run(input, 2), want);
    }

    #[test]
    fn unclear_framing_is_passed_through() {
        for input in [
            &b"POST /?a=< HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n<<<<GET /?b=< HTTP/1.1\r\n\r\n"[..],
            b"POST /?a=< HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /?b=< HTTP/1.1\r\n\r\n",
            b"POST /?a=< HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n<<GET /?b=< HTTP/1.1\r\n\r\n",
            b"POST /?a=< HTTP/1.1\r\nX: a\r\n b\r\nContent-Length: 1\r\n\r\n<GET /?b=< HTTP/1.1\r\n\r\n",
            b"GET /?a=< HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /?b=< HTTP/1.1\r\n\r\n",
        ] {
            let out = run(input, 5);
            assert!(out.starts_with(b"POST /?a=%3C") || out.starts_with(b"GET /?a=%3C"));
            assert!(
                out.ends_with(b"GET /?b=< HTTP/1.1\r\n\r\n"),
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
    }

    proptest! {
        /// Any sequence of requests, split anywhere: bodies come out byte for byte,
        /// queries come out encoded, and nothing else changes.
        #[test]
        fn framing_is_followed_exactly(
            reqs in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..40),
                 proptest::collection::vec(any::<u8>(), 0..60),
                 any::<bool>()),
                1..6),
            chunk in 1usize..50,
            read in 1usize..300,
        ) {
            let mut input = Vec::new();
            let mut want = Vec::new();
            for (query, body, chunked) in &reqs {
                // Query bytes the client might type (no space, CR or LF).
                let query: Vec<u8> = query.iter().map(|b| match b { b' ' | b'\r' | b'\n' => b'x', b => *b }).collect();
                let encoded: Vec<u8> = query.iter().flat_map(|b| if needs_escape(*b) { escaped(*b).to_vec() } else { vec![*b] }).collect();
                let framing = if *chunked { "Transfer-Encoding: chunked".to_owned() } else { format!("Content-Length: {}", body.len()) };
                let mut payload = Vec::new();
                if *chunked {
                    for part in body.chunks(7) {
                        payload.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                        payload.extend_from_slice(part);
                        payload.extend_from_slice(b"\r\n");
                    }
                    payload.extend_from_slice(b"0\r\n\r\n");
                } else {
                    payload.extend_from_slice(body);
                }
                for (out, q) in [(&mut input, &query), (&mut want, &encoded)] {
                    out.extend_from_slice(b"POST /x?");
                    out.extend_from_slice(q);
                    out.extend_from_slice(format!(" HTTP/1.1\r\nHost: h\r\n{framing}\r\n\r\n").as_bytes());
                    out.extend_from_slice(&payload);
                }
            }
            prop_assert_eq!(run(&input, chunk), want.clone());
            prop_assert_eq!(run_with(&input, chunk, read), want);
        }
    }
}
