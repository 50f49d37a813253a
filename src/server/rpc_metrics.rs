//! Every gRPC call counted and timed by method and final code, for `/metrics`.

use std::future::Future;

/// Counts and times every gRPC call by method and code (see `crate::metrics`). A call is
/// counted when it ends, by its final status: from the response headers when it is refused
/// before it starts (a trailers-only answer), else from the trailers at the end of its body
/// (a live session that ends INVALID_ARGUMENT counts as that), or `cancelled` when the
/// client goes before the end. Its duration is arrival to response headers (the whole call
/// when unary, the time to open when streaming). Hand-written: a tower layer and a body
/// wrapper of a few dozen lines, where a tracing-to-metrics crate would be a framework.
#[derive(Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics { inner }
    }
}

#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: http_body::Body + Unpin + Send + 'static,
{
    type Response = http::Response<CountedBody<R>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = crate::metrics::method_label(request.uri().path());
        let started = std::time::Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            crate::metrics::rpc_duration(method, started.elapsed());
            let refused = grpc_status(response.headers());
            if let Some(code) = refused {
                crate::metrics::rpc_count(method, code_name(code));
            }
            Ok(response.map(|inner| CountedBody {
                inner,
                method,
                counted: refused.is_some(),
            }))
        })
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
}

/// A response body that counts its call when its trailers (with the final grpc-status)
/// pass, or, when dropped before them, as cancelled.
pub struct CountedBody<B> {
    inner: B,
    method: &'static str,
    counted: bool,
}

impl<B> CountedBody<B> {
    fn count(&mut self, code: &'static str) {
        if !self.counted {
            self.counted = true;
            crate::metrics::rpc_count(self.method, code);
        }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_status(trailers).unwrap_or(tonic::Code::Unknown);
                    self.count(code_name(code));
                }
            }
            std::task::Poll::Ready(Some(Err(_))) => self.count(code_name(tonic::Code::Internal)),
            std::task::Poll::Ready(None) => self.count(code_name(tonic::Code::Unknown)),
            std::task::Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for CountedBody<B> {
    fn drop(&mut self) {
        self.count(code_name(tonic::Code::Cancelled));
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
