use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// SIGTERM or Ctrl-C cancels the root token: stages stop fetching, finish
/// what is in flight and exit. A second signal exits at once.
#[derive(Clone)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// Installs the signal handlers.
    pub fn install() -> Self {
        let token = CancellationToken::new();
        let on_signal = token.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!(
                "shutdown requested: finishing in-flight work (signal again to exit now)"
            );
            on_signal.cancel();
            wait_for_signal().await;
            tracing::warn!("second signal: exiting without draining");
            std::process::exit(130);
        });
        Self { token }
    }

    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Waits for `work` to finish after shutdown began, at most `grace`.
    pub async fn drain<F: std::future::Future>(work: F, grace: Duration) -> Option<F::Output> {
        tokio::time::timeout(grace, work).await.ok()
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
