use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use tokio_util::sync::CancellationToken;
use warp::{http::StatusCode, Filter};

type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// The named checks `/health` reports; 200 when all pass, 503 otherwise.
/// `/ready` reports those and the readiness checks: a stage can be alive
/// but not ready yet (ingest before its tenant directory is loaded).
#[derive(Clone)]
pub struct Health {
    stage: &'static str,
    checks: Vec<(&'static str, Check)>,
    readiness: Vec<(&'static str, Check)>,
}

impl Health {
    pub fn new(stage: &'static str) -> Self {
        Self {
            stage,
            checks: vec![],
            readiness: vec![],
        }
    }

    /// A check `/ready` needs on top of the health checks.
    pub fn ready_when(
        mut self,
        name: &'static str,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        self.readiness.push((name, Arc::new(check)));
        self
    }

    /// Whether every health and readiness check passes.
    pub fn is_ready(&self) -> bool {
        self.checks
            .iter()
            .chain(&self.readiness)
            .all(|(_, check)| check())
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
        Self::summarise(self.stage, self.checks.iter())
    }

    /// The `/ready` report: health and readiness checks together.
    pub fn readiness_report(&self) -> (bool, serde_json::Value) {
        Self::summarise(self.stage, self.checks.iter().chain(&self.readiness))
    }

    fn summarise<'a>(
        stage: &str,
        checks: impl Iterator<Item = &'a (&'static str, Check)>,
    ) -> (bool, serde_json::Value) {
        let results: BTreeMap<&str, bool> = checks.map(|(name, check)| (*name, check())).collect();
        let ok = results.values().all(|&v| v);
        (
            ok,
            serde_json::json!({
                "stage": stage,
                "status": if ok { "ok" } else { "degraded" },
                "checks": results,
            }),
        )
    }
}

/// `GET /health`, `GET /ready` and `GET /metrics`, to mount on a stage's own server or
/// serve on an ops port.
pub fn routes(
    health: Health,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let metrics = crate::telemetry::metrics_handle();
    let reply = |(ok, body): (bool, serde_json::Value)| {
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        warp::reply::with_status(warp::reply::json(&body), status)
    };
    let ready = health.clone();
    let health_route = warp::path!("health")
        .and(warp::get())
        .map(move || reply(health.report()));
    let ready_route = warp::path!("ready")
        .and(warp::get())
        .map(move || reply(ready.readiness_report()));
    let metrics_route = warp::path!("metrics").and(warp::get()).map(move || {
        warp::reply::with_header(
            metrics.render(),
            "content-type",
            "text/plain; version=0.0.4",
        )
    });
    health_route.or(ready_route).or(metrics_route)
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
