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
}

impl Follower {
    fn new() -> Self {
        Self {
            state: State::RequestLine(Line::Start),
            line: Vec::new(),
            request_line: 0,
            framing: Framing::default(),
        }
    }

    fn give_up(&mut self) {
        self.state = State::Passthrough;
        self.line = Vec::new();
    }

    /// Appends `input`, rewritten where it must be, to `out`.
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Passthrough => {
                    out.extend_from_slice(&input[i..]);
                    return;
                }
                State::Body(left) => {
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::RequestLine(Line::Start)
                    } else {
                        State::Body(left)
                    };
                }
                State::ChunkData(left) => {
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd(0)
                    } else {
                        State::ChunkData(left)
                    };
                }
                _ => {
                    let b = input[i];
                    i += 1;
                    self.byte(b, out);
                }
            }
        }
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.state {
            State::RequestLine(part) => self.request_line_byte(part, b, out),
            State::Headers | State::ChunkSize | State::Trailers => {
                out.push(b);
                if b == b'\n' {
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line);
                    self.line = line;
                    self.line.clear();
                } else if self.line.len() >= MAX_LINE {
                    self.give_up();
                } else {
                    self.line.push(b);
                }
            }
            State::ChunkEnd(seen) => {
                out.push(b);
                match (seen, b) {
                    (0, b'\r') => self.state = State::ChunkEnd(1),
                    (1, b'\n') => self.state = State::ChunkSize,
                    _ => self.give_up(),
                }
            }
            State::Body(_) | State::ChunkData(_) | State::Passthrough => out.push(b),
        }
    }

    fn request_line_byte(&mut self, part: Line, b: u8, out: &mut Vec<u8>) {
        self.request_line += 1;
        if self.request_line > MAX_LINE {
            out.push(b);
            self.give_up();
            return;
        }
        let next = match (part, b) {
            (Line::Start, b'\r' | b'\n') => Line::Start,
            (Line::Start, _) => Line::Method,
            (_, b'\n') => {
                out.push(b);
                self.state = State::Headers;
                self.framing = Framing::default();
                self.line.clear();
                return;
            }
            (Line::Method, b' ') => Line::Path,
            (Line::Path, b'?') => Line::Query,
            (Line::Path | Line::Query, b' ') => Line::Version,
            (p, _) => p,
        };
        if next == Line::Query && part == Line::Query && needs_escape(b) {
            out.extend_from_slice(&escaped(b));
        } else {
            out.push(b);
        }
        if next == Line::Start {
            self.request_line = 0;
        }
        self.state = State::RequestLine(next);
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
#[derive(Debug)]
pub struct Repair<S> {
    inner: S,
    follower: Follower,
    /// Rewritten bytes not yet handed to the reader.
    pending: Vec<u8>,
    pending_at: usize,
    scratch: Vec<u8>,
}

impl<S> Repair<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            follower: Follower::new(),
            pending: Vec::new(),
            pending_at: 0,
            scratch: vec![0; 8192],
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
            if this.follower.state == State::Passthrough {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut raw = ReadBuf::new(&mut this.scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut raw) {
                Poll::Ready(Ok(())) if raw.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    let filled = raw.filled().len();
                    let input = std::mem::take(&mut this.scratch);
                    this.follower.feed(&input[..filled], &mut this.pending);
                    this.scratch = input;
                }
                other => return other,
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

    fn run(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut f = Follower::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            f.feed(piece, &mut out);
        }
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
            prop_assert_eq!(run(&input, chunk), want);
        }
    }
}
