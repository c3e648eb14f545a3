//! Middleware as plain tower services, for the layers every request passes through.
//!
//! axum's `from_fn` is convenient and costly on a hot path: each call clones the service it
//! wraps, boxes that clone as the `Next` it hands over, boxes the call into it and boxes its own
//! future. A [`Hook`] instead does its work before the call (synchronously, on the request),
//! calls the wrapped service directly, and finishes on the response: one boxed future per layer
//! and request. `bench/instructions.sh` counts what that saves.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Instrument;

/// The future of a hooked call.
pub type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// What a layer does around one request.
pub trait Hook: Clone + Send + Sync + 'static {
    /// What [`Hook::before`] hands to [`Hook::after`].
    type Ctx: Send + 'static;

    /// Looks at (and may change) the request, before the wrapped service sees it.
    fn before(&self, req: &mut Request) -> Self::Ctx;

    /// The span the wrapped service runs in, if any.
    fn span(_ctx: &Self::Ctx) -> Option<tracing::Span> {
        None
    }

    /// Finishes with the wrapped service's response.
    fn after(ctx: Self::Ctx, resp: Response) -> impl Future<Output = Response> + Send;
}

/// The layer of a [`Hook`].
#[derive(Clone)]
pub struct HookLayer<H>(pub H);

impl<S, H: Hook> Layer<S> for HookLayer<H> {
    type Service = Hooked<S, H>;

    fn layer(&self, inner: S) -> Hooked<S, H> {
        Hooked { inner, hook: self.0.clone() }
    }
}

/// A service wrapped by a [`Hook`].
#[derive(Clone)]
pub struct Hooked<S, H> {
    inner: S,
    hook: H,
}

impl<S, H> Service<Request> for Hooked<S, H>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
    H: Hook,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> BoxFuture {
        let ctx = self.hook.before(&mut req);
        let span = H::span(&ctx);
        let call = match &span {
            Some(span) => span.in_scope(|| self.inner.call(req)),
            None => self.inner.call(req),
        };
        Box::pin(async move {
            let resp = match span {
                Some(span) => call.instrument(span).await,
                None => call.await,
            };
            Ok(H::after(ctx, resp?).await)
        })
    }
}
