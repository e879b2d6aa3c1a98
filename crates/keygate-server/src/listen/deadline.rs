//! A deadline for request bodies: a client that announces a body must send it within
//! `body_timeout` plus one second for every `body_min_rate` bytes it announced (a
//! minimum rate, so large bodies get the time they need and slow ones do not). Past
//! it the body read fails, and the request is answered 408 and its connection closed.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};

/// The error a body read gets once its deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// What the request's middleware learns from its body.
#[derive(Debug, Default)]
pub(crate) struct BodyState {
    /// The deadline fired.
    pub(crate) fired: AtomicBool,
    /// The body was read to its end.
    pub(crate) ended: AtomicBool,
}

/// A body that fails once `sleep` fires, and tells the request's middleware that,
/// or that it was read to its end.
pub(crate) struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    state: Arc<BodyState>,
}

impl DeadlineBody {
    pub(crate) fn new(inner: Body, within: Duration, state: Arc<BodyState>) -> Self {
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep(within)),
            state,
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.state.fired.store(true, Ordering::SeqCst);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout))));
        }
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || this.inner.is_end_stream() {
            this.state.ended.store(true, Ordering::SeqCst);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// How long a body of `declared` bytes (unknown: `max_body`) may take.
pub(crate) fn allowance(
    base: Duration,
    min_rate: u64,
    declared: Option<u64>,
    max_body: u64,
) -> Duration {
    let bytes = declared.unwrap_or(max_body).min(max_body);
    base + Duration::from_secs(bytes / min_rate.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[test]
    fn larger_bodies_get_more_time_at_the_minimum_rate() {
        let base = Duration::from_secs(10);
        assert_eq!(allowance(base, 16384, Some(100), 65536), base);
        assert_eq!(
            allowance(base, 16384, Some(65536), 65536),
            base + Duration::from_secs(4)
        );
        assert_eq!(
            allowance(base, 16384, None, 65536),
            base + Duration::from_secs(4),
            "unknown length: as for the largest allowed"
        );
        assert_eq!(
            allowance(base, 16384, Some(u64::MAX), 65536),
            base + Duration::from_secs(4)
        );
    }

    #[tokio::test]
    async fn a_body_that_stalls_fails_once_its_time_is_up() {
        let stalled =
            Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>());
        let state = Arc::new(BodyState::default());
        let body = DeadlineBody::new(stalled, Duration::from_millis(50), state.clone());
        assert!(body.collect().await.is_err());
        assert!(state.fired.load(Ordering::SeqCst));
        assert!(!state.ended.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_says_so() {
        let state = Arc::new(BodyState::default());
        let body = DeadlineBody::new(Body::from("abc"), Duration::from_secs(5), state.clone());
        assert!(!state.ended.load(Ordering::SeqCst));
        assert_eq!(
            body.collect().await.map(|c| c.to_bytes()).ok(),
            Some(Bytes::from("abc"))
        );
        assert!(state.ended.load(Ordering::SeqCst));
    }
}
