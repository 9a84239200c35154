//! The two body types of the proxy: what is sent upstream and what is answered downstream.
//!
//! Each is an enum over "a stream passed through" and "bytes we hold", so one connection pool
//! and one server type serve both, without boxing a body per request.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::state::Inflight;

/// A request body on its way to a backend.
pub(crate) enum UpstreamBody {
    /// Streamed from the client as it arrives; cannot be replayed.
    Stream(Incoming),
    /// Held in memory (empty, or buffered for a mirror): can be sent twice.
    Full(Option<Bytes>),
}

impl UpstreamBody {
    pub(crate) fn full(b: Bytes) -> Self {
        UpstreamBody::Full((!b.is_empty()).then_some(b))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Stream(b) => Pin::new(b).poll_frame(cx),
            UpstreamBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Stream(b) => b.is_end_stream(),
            UpstreamBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Stream(b) => b.size_hint(),
            UpstreamBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// A response body on its way to the client.
pub(crate) enum ProxyBody {
    /// A backend's answer. The guard keeps the request counted as in flight on its version
    /// until the last byte is passed on (or the client goes away), so draining waits for it.
    Upstream { body: Incoming, guard: Inflight },
    /// An answer made by the router itself (errors, admin API).
    Full(Option<Bytes>),
}

impl ProxyBody {
    pub(crate) fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        ProxyBody::Full((!b.is_empty()).then_some(b))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Upstream { body, guard } => {
                let polled = Pin::new(body).poll_frame(cx);
                if let Poll::Ready(None) = polled {
                    guard.release();
                }
                polled
            }
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}
