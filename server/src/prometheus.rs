//! Prometheus metrics: every call counted and timed by method and status (a tower layer
//! beside the access check), the engine's progress read when a scrape comes, and what the
//! log and checkpoints report as they go, all served as text at `server.metrics_listen`
//! (`GET /metrics`).
//!
//! Names, for the dashboard and alerts:
//! - `prism_rpc_requests_total{method,code}`, `prism_rpc_duration_seconds{method,code}`
//! - `prism_applied_lsn`, `prism_log_end_lsn`, `prism_kafka_consumer_lag`
//! - `prism_vertices{namespace}`, `prism_edges{namespace}`, `prism_standing_page_ranks`,
//!   `prism_page_rank_subscribers`, `prism_arrangement_records{arrangement}` (this process's shards)
//! - `prism_wal_commit_seconds`, `prism_wal_group_records` (embedded log)
//! - `prism_checkpoint_seconds`, `prism_checkpoint_lsn`, `prism_checkpoint_unix_seconds`

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::{BoxFuture, Either};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use prism_dataflows::Engine;

/// How long a scrape waits for the apply stage's counts.
const SIZES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Latency buckets, in seconds: 50 µs to 10 s.
const SECONDS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0];

/// Installs the process's metrics recorder (once; a second server in the same process shares
/// it) and returns what renders it.
pub fn install() -> Result<PrometheusHandle, String> {
    static HANDLE: std::sync::OnceLock<Result<PrometheusHandle, String>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("prism_wal_group_records".into()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0],
                    )
                })
                .and_then(|builder| builder.install_recorder())
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// Serves `GET /metrics` on `listener` until the process ends; each scrape first reads the
/// engine's gauges.
pub async fn serve(listener: tokio::net::TcpListener, handle: PrometheusHandle, engine: Arc<Engine>) {
    let scrape = move || {
        let (handle, engine) = (handle.clone(), engine.clone());
        async move {
            metrics::gauge!("prism_applied_lsn").set(engine.applied_lsn() as f64);
            metrics::gauge!("prism_standing_page_ranks").set(*engine.standing_page_ranks().borrow() as f64);
            metrics::gauge!("prism_page_rank_subscribers").set(engine.page_rank_subscribers() as f64);
            for (arrangement, records) in engine.arrangement_records() {
                metrics::gauge!("prism_arrangement_records", "arrangement" => arrangement).set(records as f64);
            }
            // Asked of the apply stage only when scraped; not there on other cluster processes.
            for size in engine.sizes(SIZES_TIMEOUT).await.unwrap_or_default() {
                let namespace = [("namespace", size.namespace.to_string())];
                metrics::gauge!("prism_vertices", &namespace).set(size.vertices as f64);
                metrics::gauge!("prism_edges", &namespace).set(size.edges as f64);
            }
            handle.render()
        }
    };
    let app = axum::Router::new().route("/metrics", axum::routing::get(scrape));
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the metrics endpoint stopped");
    }
}

/// The layer that counts and times every call; when metrics are off, it passes calls
/// through untouched.
#[derive(Clone, Copy)]
pub struct RpcMetricsLayer {
    pub enabled: bool,
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed { inner, enabled: self.enabled }
    }
}

/// A service whose calls are counted and timed.
#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
    enabled: bool,
}

impl<S, B, R> tower::Service<http::Request<B>> for Timed<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<http::Response<R>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !self.enabled {
            return Either::Left(self.inner.call(request));
        }
        let method = request.uri().path().rsplit('/').next().unwrap_or_default().to_owned();
        let started = Instant::now();
        let call = self.inner.call(request);
        Either::Right(Box::pin(async move {
            let response = call.await?;
            // An error answered at once travels in the headers; a reply's own status comes in
            // its trailers, after the head this layer sees, so a reply is counted as OK.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<i32>().ok())
                .map_or(tonic::Code::Ok, tonic::Code::from_i32);
            let labels = [("method", method), ("code", format!("{code:?}"))];
            metrics::counter!("prism_rpc_requests_total", &labels).increment(1);
            metrics::histogram!("prism_rpc_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
            Ok(response)
        }))
    }
}
