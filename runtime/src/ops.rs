use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use tokio_util::sync::CancellationToken;
use warp::{http::StatusCode, Filter};

type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// The named checks `/health` reports; 200 when all pass, 503 otherwise.
#[derive(Clone)]
pub struct Health {
    stage: &'static str,
    checks: Vec<(&'static str, Check)>,
}

impl Health {
    pub fn new(stage: &'static str) -> Self {
        Self {
            stage,
            checks: vec![],
        }
    }

    pub fn check(
        mut self,
        name: &'static str,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        self.checks.push((name, Arc::new(check)));
        self
    }

    pub fn report(&self) -> (bool, serde_json::Value) {
        let results: BTreeMap<&str, bool> = self
            .checks
            .iter()
            .map(|(name, check)| (*name, check()))
            .collect();
        let ok = results.values().all(|&v| v);
        (
            ok,
            serde_json::json!({
                "stage": self.stage,
                "status": if ok { "ok" } else { "degraded" },
                "checks": results,
            }),
        )
    }
}

/// `GET /health` and `GET /metrics`, to mount on a stage's own server or
/// serve on an ops port.
pub fn routes(
    health: Health,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let metrics = crate::telemetry::metrics_handle();
    let health_route = warp::path!("health").and(warp::get()).map(move || {
        let (ok, body) = health.report();
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        warp::reply::with_status(warp::reply::json(&body), status)
    });
    let metrics_route = warp::path!("metrics").and(warp::get()).map(move || {
        warp::reply::with_header(
            metrics.render(),
            "content-type",
            "text/plain; version=0.0.4",
        )
    });
    health_route.or(metrics_route)
}

/// Serves the ops routes on their own port until `shutdown`.
pub fn serve(
    addr: SocketAddr,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), warp::Error> {
    let (bound, server) = warp::serve(routes(health))
        .try_bind_with_graceful_shutdown(addr, async move { shutdown.cancelled().await })?;
    Ok((bound, tokio::spawn(server)))
}
