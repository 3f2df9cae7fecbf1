use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use tokio_util::sync::CancellationToken;
use warp::{http::StatusCode, Filter};

type Check = Arc<dyn Fn() -> bool + Send + Sync>;
type Status = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What a stage's ops routes report.
///
/// - `GET /health`: alive. 503 only when a *vital* check fails (a worker
///   loop that died: restart the process); every check is listed.
/// - `GET /ready`: takes traffic. 503 when any check fails (NATS not
///   connected, PostgreSQL unreachable, a worker not bound or pulling).
/// - `GET /status`: the stage's worker status as JSON (`just ps`).
#[derive(Clone)]
pub struct Health {
    stage: &'static str,
    checks: Vec<(&'static str, Check, bool)>,
    status: Option<Status>,
}

impl Health {
    pub fn new(stage: &'static str) -> Self {
        Self {
            stage,
            checks: vec![],
            status: None,
        }
    }

    /// A readiness check: `/ready` fails while it fails.
    pub fn check(
        mut self,
        name: &'static str,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        self.checks.push((name, Arc::new(check), false));
        self
    }

    /// A liveness check: `/health` (and `/ready`) fail while it fails.
    pub fn vital(
        mut self,
        name: &'static str,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        self.checks.push((name, Arc::new(check), true));
        self
    }

    /// `nats`: the connection is up.
    pub fn bus(self, bus: &waiter_nats::Bus) -> Self {
        let bus = bus.clone();
        self.check("nats", move || bus.is_connected())
    }

    /// `postgres`: the last probe reached the database.
    pub fn postgres(self, probe: &crate::db::Probe) -> Self {
        let probe = probe.clone();
        self.check("postgres", move || probe.is_up())
    }

    /// `workers`: every loop running, bound and pulling; `worker_loops`
    /// (vital): none died unasked; and `/status`.
    pub fn worker(mut self, status: &waiter_nats::WorkerStatus) -> Self {
        let json = status.clone();
        self.status = Some(Arc::new(move || json.json()));
        let alive = status.clone();
        let status = status.clone();
        self.vital("worker_loops", move || alive.is_alive())
            .check("workers", move || status.is_ready())
    }

    /// A `/status` body of the stage's own.
    pub fn status(
        mut self,
        status: impl Fn() -> serde_json::Value + Send + Sync + 'static,
    ) -> Self {
        self.status = Some(Arc::new(status));
        self
    }

    /// (alive, ready, body).
    pub fn evaluate(&self) -> (bool, bool, serde_json::Value) {
        let mut alive = true;
        let mut ready = true;
        let mut results = BTreeMap::new();
        for (name, check, vital) in &self.checks {
            let ok = check();
            results.insert(*name, ok);
            ready &= ok;
            if *vital {
                alive &= ok;
            }
        }
        let body = serde_json::json!({
            "stage": self.stage,
            "status": if !alive { "failing" } else if ready { "ok" } else { "degraded" },
            "ready": ready && alive,
            "checks": results,
        });
        (alive, ready && alive, body)
    }

    /// Whether every check passes, and the body `/ready` serves.
    pub fn report(&self) -> (bool, serde_json::Value) {
        let (_, ready, body) = self.evaluate();
        (ready, body)
    }
}

fn answer(ok: bool, body: serde_json::Value) -> warp::reply::WithStatus<warp::reply::Json> {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    warp::reply::with_status(warp::reply::json(&body), status)
}

/// `GET /health`, `/ready`, `/status` and `/metrics`, to mount on a
/// stage's own server or serve on an ops port.
pub fn routes(
    health: Health,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let metrics = crate::telemetry::metrics_handle();
    let h = health.clone();
    let health_route = warp::path!("health").and(warp::get()).map(move || {
        let (alive, _, body) = h.evaluate();
        answer(alive, body)
    });
    let h = health.clone();
    let ready_route = warp::path!("ready").and(warp::get()).map(move || {
        let (_, ready, body) = h.evaluate();
        answer(ready, body)
    });
    let status_health = health.clone();
    let status_route = warp::path!("status").and(warp::get()).map(move || {
        let health = &status_health;
        let body = match &health.status {
            Some(status) => status(),
            None => serde_json::json!({ "stage": health.stage }),
        };
        warp::reply::json(&body)
    });
    let h = health.clone();
    let metrics_route = warp::path!("metrics").and(warp::get()).map(move || {
        // Readiness as a metric too, so an alert sees a stage that is up
        // but not taking traffic.
        let (_, ready, _) = h.evaluate();
        metrics::gauge!("waiter_stage_ready", "stage" => h.stage).set(f64::from(u8::from(ready)));
        warp::reply::with_header(
            metrics.render(),
            "content-type",
            "text/plain; version=0.0.4",
        )
    });
    health_route
        .or(ready_route)
        .unify()
        .or(status_route)
        .or(metrics_route)
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

/// [`serve`] when the stage was given a separate ops address (ingest and
/// notifier, whose public port replicas share); `None` otherwise. The
/// error names the address that could not be served.
pub fn serve_if(
    addr: Option<SocketAddr>,
    health: &Health,
    shutdown: &CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, (SocketAddr, warp::Error)> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    match serve(addr, health.clone(), shutdown.clone()) {
        Ok((_, task)) => Ok(Some(task)),
        Err(e) => Err((addr, e)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn health_is_liveness_and_ready_is_every_check() {
        let nats = Arc::new(AtomicBool::new(true));
        let loops = Arc::new(AtomicBool::new(true));
        let (n, l) = (nats.clone(), loops.clone());
        let health = Health::new("router")
            .check("nats", move || n.load(Ordering::Relaxed))
            .vital("loops", move || l.load(Ordering::Relaxed))
            .status(|| serde_json::json!({"replica": "router-1"}));
        let routes = routes(health);
        let get = |path: &'static str| {
            let routes = routes.clone();
            async move {
                let r = warp::test::request().path(path).reply(&routes).await;
                let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
                (r.status().as_u16(), body)
            }
        };
        assert_eq!(get("/health").await.0, 200);
        assert_eq!(get("/ready").await.0, 200);
        nats.store(false, Ordering::Relaxed);
        let (code, body) = get("/health").await;
        assert_eq!(code, 200, "NATS away: alive, not ready");
        assert_eq!(body["checks"]["nats"], false);
        let (code, body) = get("/ready").await;
        assert_eq!(code, 503);
        assert_eq!(body["ready"], false);
        loops.store(false, Ordering::Relaxed);
        assert_eq!(get("/health").await.0, 503);
        assert_eq!(get("/status").await.1["replica"], "router-1");
    }
}
