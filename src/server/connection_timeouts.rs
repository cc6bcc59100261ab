//! How long a connection may stay silent: a request's head must arrive within
//! [`HEAD_TIMEOUT`] (counted from its first byte, or from the connection's
//! opening for its first request), and a kept-alive connection may wait
//! `IDLE_TIMEOUT_SECS` between requests.
//!
//! Why our own: hyper has one timer for both. Its `header_read_timeout` starts
//! whenever the connection waits for a request, idle or not, so the 10 s that
//! stops a slowloris client also closed every kept-alive connection 10 s after
//! its last answer. A client that reused one just as it closed (reqwest and Go
//! keep idle connections 90 s) wrote its request into a closing socket and got
//! no answer: reqwest's `IncompleteMessage`, seen in CI's chaos test. hyper's
//! timer is therefore off, and this wrapper keeps the two deadlines apart, as
//! Go's `ReadHeaderTimeout` and `IdleTimeout` do.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll, Waker},
    time::Duration,
};

use hyper::body::{Body, Frame, SizeHint};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

/// How long a client may take to send a request's head: a client that
/// trickles it (slowloris) holds a connection for no more than this.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a connection is between two requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Accepted, no request yet: its first head is due `HEAD_TIMEOUT` after `at`
    /// (a connection that never speaks is closed as soon as a trickling one).
    Opened { at: Instant },
    /// Answered its last request at `since`; nothing of the next one read.
    Idle { since: Instant },
    /// Part of a request's head read, the first byte at `since`.
    Head { since: Instant },
    /// Answering `requests` requests (more than one only while pipelined).
    Serving { requests: u32 },
    /// HTTP/2: idle streams and pings are the protocol's own; no deadline here.
    Multiplexed,
}

impl Phase {
    /// When the connection is closed if nothing changes.
    fn deadline(self, idle: Duration) -> Option<Instant> {
        match self {
            Phase::Opened { at } => Some(at + HEAD_TIMEOUT),
            Phase::Idle { since } => Some(since + idle),
            Phase::Head { since } => Some(since + HEAD_TIMEOUT),
            Phase::Serving { .. } | Phase::Multiplexed => None,
        }
    }

    /// Bytes arrived at `now`: after an idle wait, they start the next head.
    fn read(self, now: Instant) -> Phase {
        match self {
            Phase::Idle { .. } => Phase::Head { since: now },
            other => other,
        }
    }

    /// A request's head was read in full; HTTP/2 stays multiplexed.
    fn request(self, http2: bool) -> Phase {
        match self {
            _ if http2 => Phase::Multiplexed,
            Phase::Multiplexed => Phase::Multiplexed,
            Phase::Serving { requests } => Phase::Serving {
                requests: requests + 1,
            },
            Phase::Opened { .. } | Phase::Idle { .. } | Phase::Head { .. } => {
                Phase::Serving { requests: 1 }
            }
        }
    }

    /// A response was sent in full (or dropped) at `now`.
    fn answered(self, now: Instant) -> Phase {
        match self {
            Phase::Serving { requests } if requests > 1 => Phase::Serving {
                requests: requests - 1,
            },
            Phase::Serving { .. } => Phase::Idle { since: now },
            other => other,
        }
    }
}

/// One connection's phase, shared by its socket and its requests.
#[derive(Clone, Debug)]
pub struct Watch {
    shared: Arc<Mutex<Shared>>,
    idle: Duration,
}

#[derive(Debug)]
struct Shared {
    phase: Phase,
    /// The reader waiting with no deadline (while answering): hyper parks its
    /// read before the response is done, so the end of the answer wakes it to
    /// arm the idle deadline.
    parked: Option<Waker>,
}

impl Watch {
    /// A connection accepted now, idle for at most `idle` between requests.
    pub fn opened(idle: Duration) -> Self {
        Watch {
            shared: Arc::new(Mutex::new(Shared {
                phase: Phase::Opened { at: Instant::now() },
                parked: None,
            })),
            idle,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // Plain values; a panic elsewhere cannot leave them half-written.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(Phase) -> Phase) {
        let mut shared = self.lock();
        shared.phase = change(shared.phase);
        if shared.phase.deadline(self.idle).is_some() {
            if let Some(reader) = shared.parked.take() {
                reader.wake();
            }
        }
    }

    /// The deadline now; without one, `reader` is woken when one starts.
    fn deadline_or_park(&self, reader: &Waker) -> (Phase, Option<Instant>) {
        let mut shared = self.lock();
        let deadline = shared.phase.deadline(self.idle);
        if deadline.is_none() && !shared.parked.as_ref().is_some_and(|w| w.will_wake(reader)) {
            shared.parked = Some(reader.clone());
        }
        (shared.phase, deadline)
    }

    /// The socket, with the deadlines applied to its reads.
    pub fn socket<IO>(&self, io: IO) -> Watched<IO> {
        Watched {
            io,
            watch: self.clone(),
            timer: None,
        }
    }

    /// A request's head was read: no deadline until it is answered. The returned
    /// guard marks the answer when the response body is done (see [`Answer`]).
    pub fn request(&self, http2: bool) -> Answering {
        self.update(|phase| phase.request(http2));
        Answering {
            watch: self.clone(),
        }
    }
}

/// Marks its request answered when dropped: hyper drops a response body once
/// it has written the last of it (or given up on the connection).
#[derive(Debug)]
pub struct Answering {
    watch: Watch,
}

impl Answering {
    /// `body`, carrying this guard until it is sent.
    pub fn body<B>(self, body: B) -> Answer<B> {
        Answer {
            body,
            _answering: self,
        }
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.watch.update(|phase| phase.answered(Instant::now()));
    }
}

/// A response body that marks its request answered once sent.
#[derive(Debug)]
pub struct Answer<B> {
    body: B,
    _answering: Answering,
}

impl<B: Body + Unpin> Body for Answer<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A socket whose reads fail with `TimedOut` once its phase's deadline passes.
#[derive(Debug)]
pub struct Watched<IO> {
    io: IO,
    watch: Watch,
    /// Armed on the first wait with a deadline; reset when the deadline moves.
    timer: Option<(Instant, Pin<Box<Sleep>>)>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.watch.update(|phase| phase.read(Instant::now()));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let (phase, deadline) = this.watch.deadline_or_park(cx.waker());
                let Some(deadline) = deadline else {
                    return Poll::Pending;
                };
                let timer = match &mut this.timer {
                    Some((armed, timer)) => {
                        if *armed != deadline {
                            timer.as_mut().reset(deadline);
                            *armed = deadline;
                        }
                        timer
                    }
                    None => {
                        &mut this
                            .timer
                            .insert((deadline, Box::pin(tokio::time::sleep_until(deadline))))
                            .1
                    }
                };
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        match phase {
                            Phase::Idle { .. } => "connection idle too long",
                            _ => "request head not received in time",
                        },
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => ready,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_has_its_deadline_and_moves_as_the_connection_does() {
        let t0 = Instant::now();
        let t = |secs| t0 + Duration::from_secs(secs);
        let idle = Duration::from_secs(120);
        let serving = |requests| Phase::Serving { requests };
        // (phase, its deadline)
        for (phase, deadline) in [
            (Phase::Opened { at: t(0) }, Some(t(10))),
            (Phase::Idle { since: t(5) }, Some(t(125))),
            (Phase::Head { since: t(5) }, Some(t(15))),
            (serving(1), None),
            (Phase::Multiplexed, None),
        ] {
            assert_eq!(phase.deadline(idle), deadline, "{phase:?}");
        }
        // Bytes start a head only after an idle wait: the first head counts from
        // the opening, and bytes read while answering (a body, a pipelined
        // request) change nothing.
        for (phase, read) in [
            (Phase::Opened { at: t(0) }, Phase::Opened { at: t(0) }),
            (Phase::Idle { since: t(0) }, Phase::Head { since: t(7) }),
            (Phase::Head { since: t(3) }, Phase::Head { since: t(3) }),
            (serving(1), serving(1)),
            (Phase::Multiplexed, Phase::Multiplexed),
        ] {
            assert_eq!(phase.read(t(7)), read, "{phase:?}");
        }
        // (phase, HTTP/2?, after the head is in)
        for (phase, http2, next) in [
            (Phase::Opened { at: t(0) }, false, serving(1)),
            (Phase::Head { since: t(0) }, false, serving(1)),
            (Phase::Idle { since: t(0) }, false, serving(1)),
            (serving(1), false, serving(2)),
            (Phase::Opened { at: t(0) }, true, Phase::Multiplexed),
            (Phase::Multiplexed, false, Phase::Multiplexed),
        ] {
            assert_eq!(phase.request(http2), next, "{phase:?} {http2}");
        }
        for (phase, answered) in [
            (serving(2), serving(1)),
            (serving(1), Phase::Idle { since: t(9) }),
            (Phase::Multiplexed, Phase::Multiplexed),
        ] {
            assert_eq!(phase.answered(t(9)), answered, "{phase:?}");
        }
    }
}
