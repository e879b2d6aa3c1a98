//! A lingering close: when the server ends a connection, it stops writing and then
//! reads and discards what the client is still sending, for a bounded time and
//! amount, before it closes the socket.
//!
//! A request refused before its body was read (413 on a declared length, 401 on a
//! bad signature) ends its connection with that body still arriving. Closing a TCP
//! socket with unread data makes the kernel send a reset, and a client still writing
//! the body then gets "connection reset" or "broken pipe" instead of the answer that
//! is waiting in its receive buffer: most HTTP clients (curl, Python's, hyper's)
//! write the whole body before they read. Sending the FIN first and draining lets
//! the client finish writing and read the answer. nginx (`lingering_close`) and Go's
//! server do the same.
//!
//! The drain is bounded like everything an unauthenticated client holds: at most
//! [`LINGER_BYTES`], at most [`LINGER_TIME`] in all, and it ends as soon as the
//! client is silent for [`LINGER_IDLE`] or closes its side (which a client that has
//! read its answer does at once, so the usual close costs one read that returns 0).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Most bytes discarded after the server closed its side; past them the socket is
/// closed (and reset) regardless. Four times the largest request body keygate
/// reads, so a refused body of any size a client would reasonably send gets its
/// answer.
pub const LINGER_BYTES: u64 = 4 * 1024 * 1024;
/// Longest time spent discarding in all.
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// Longest silence from the client while discarding.
pub const LINGER_IDLE: Duration = Duration::from_secs(1);

/// Where a connection is in closing.
enum Closing {
    /// Not closing: reads and writes pass through.
    Open,
    /// The write side is shut; discarding what arrives.
    Draining {
        /// Fires at the next silence or total bound, whichever is first.
        timer: Pin<Box<Sleep>>,
        /// When the whole drain must end.
        until: Instant,
        /// Bytes that may still be discarded.
        left: u64,
    },
    /// Done: the socket may close.
    Closed,
}

/// A stream whose shutdown lingers (see the module's documentation).
pub struct Linger<S> {
    inner: S,
    closing: Closing,
}

impl<S> Linger<S> {
    /// Wraps an accepted stream.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            closing: Closing::Open,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Linger<S> {
    /// Discards what arrives until the client closes, goes quiet, or a bound is hit.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Closing::Draining { timer, until, left } = &mut self.closing else {
            return Poll::Ready(());
        };
        let mut scratch = [0u8; 8192];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                // A closed side, an error or enough bytes: nothing more to wait for.
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {
                    *left = left.saturating_sub(buf.filled().len() as u64);
                    if *left == 0 {
                        return Poll::Ready(());
                    }
                    // The client is still sending: the silence is counted anew.
                    let next = (Instant::now() + LINGER_IDLE).min(*until);
                    timer.as_mut().reset(next);
                }
                Poll::Pending => return timer.as_mut().poll(cx),
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Linger<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Linger<S> {
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
        let this = self.get_mut();
        loop {
            match this.closing {
                Closing::Open => {
                    // The FIN (and, over TLS, close_notify) goes first: the client
                    // learns the answer is complete while it may still be writing.
                    ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                    let until = Instant::now() + LINGER_TIME;
                    this.closing = Closing::Draining {
                        timer: Box::pin(tokio::time::sleep_until(
                            (Instant::now() + LINGER_IDLE).min(until),
                        )),
                        until,
                        left: LINGER_BYTES,
                    };
                }
                Closing::Draining { .. } => {
                    ready!(this.poll_drain(cx));
                    this.closing = Closing::Closed;
                }
                Closing::Closed => return Poll::Ready(Ok(())),
            }
        }
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A server side that answers before reading a large body, then closes.
    async fn answer_early(linger: bool) -> io::Result<Vec<u8>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut first = [0u8; 16];
            let mut s = Linger::new(tcp);
            s.read_exact(&mut first).await?;
            s.write_all(b"refused").await?;
            if linger {
                s.shutdown().await?;
            }
            drop(s);
            io::Result::Ok(())
        });
        let mut client = TcpStream::connect(addr).await?;
        // More than any socket buffers hold: the server closes while this writes.
        let body = vec![b'a'; 2 * 1024 * 1024];
        let written = client.write_all(&body).await;
        server.await.map_err(io::Error::other)??;
        written?;
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn a_client_still_sending_gets_the_answer() {
        let answer = answer_early(true)
            .await
            .expect("the client finishes and reads");
        assert_eq!(answer, b"refused");
    }

    #[tokio::test]
    async fn without_the_drain_the_client_is_reset() {
        // The failure the drain exists for, shown on the same exchange.
        let e = answer_early(false).await.expect_err("reset");
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_silent_client_is_let_go_after_the_idle_bound() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut s = Linger::new(tcp);
        let started = keygate_core::clock::Stopwatch::start();
        s.shutdown().await.expect("shutdown");
        let took = started.elapsed();
        assert!(
            took >= LINGER_IDLE && took < LINGER_TIME,
            "took {took:?} with a client that neither sends nor closes"
        );
    }

    #[tokio::test]
    async fn a_client_that_closes_is_let_go_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (tcp, _) = listener.accept().await.expect("accept");
        drop(client);
        let mut s = Linger::new(tcp);
        let started = keygate_core::clock::Stopwatch::start();
        s.shutdown().await.expect("shutdown");
        assert!(started.elapsed() < LINGER_IDLE, "{:?}", started.elapsed());
    }
}
