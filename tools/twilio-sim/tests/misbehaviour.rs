//! The Messages API on a bad day: slow answers, hangs past the client's
//! timeout (the message taken all the same) and dropped connections.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use twilio_sim::{Misbehaviour, SimConfig, Simulator};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-auth-token-1";

async fn simulator(shutdown: &CancellationToken) -> Simulator {
    Simulator::start(
        SimConfig {
            accounts: vec![(ACCOUNT.to_string(), TOKEN.to_string())],
            enforce_session_window: false,
            ..SimConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("simulator starts")
}

async fn send(sim: &Simulator, timeout: Duration) -> Result<u16, reqwest::Error> {
    let url = format!(
        "{}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
        sim.base_url()
    );
    let response = reqwest::Client::builder()
        .timeout(timeout)
        .build()?
        .post(url)
        .basic_auth(ACCOUNT, Some(TOKEN))
        .form(&[
            ("To", "whatsapp:+966501234567"),
            ("From", "whatsapp:+14155238886"),
            ("Body", "hello"),
        ])
        .send()
        .await?;
    let status = response.status().as_u16();
    response.bytes().await?;
    Ok(status)
}

#[tokio::test]
async fn a_slow_answer_arrives_late_and_the_next_one_on_time() {
    let shutdown = CancellationToken::new();
    let sim = simulator(&shutdown).await;
    sim.misbehave(Misbehaviour::Slow {
        delay_ms: 600,
        times: 1,
    });
    let started = Instant::now();
    assert_eq!(send(&sim, Duration::from_secs(5)).await.unwrap(), 201);
    assert!(started.elapsed() >= Duration::from_millis(600));
    let started = Instant::now();
    assert_eq!(send(&sim, Duration::from_secs(5)).await.unwrap(), 201);
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(sim.sent().len(), 2);
    shutdown.cancel();
}

#[tokio::test]
async fn a_hang_past_the_clients_timeout_still_takes_the_message() {
    let shutdown = CancellationToken::new();
    let sim = simulator(&shutdown).await;
    sim.misbehave(Misbehaviour::Slow {
        delay_ms: 3_000,
        times: 1,
    });
    let error = send(&sim, Duration::from_millis(300)).await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    // The client gave up, yet "Twilio" took the message: a retry sends it
    // a second time. This is the duplicate window outbound documents.
    assert_eq!(sim.sent().len(), 1);
    shutdown.cancel();
}

#[tokio::test]
async fn a_dropped_connection_gives_no_answer_and_takes_nothing() {
    let shutdown = CancellationToken::new();
    let sim = simulator(&shutdown).await;
    sim.misbehave(Misbehaviour::Drop { times: 2 });
    for _ in 0..2 {
        let error = send(&sim, Duration::from_secs(5)).await.unwrap_err();
        assert!(!error.is_timeout(), "dropped, not timed out: {error}");
    }
    assert!(sim.sent().is_empty());
    assert_eq!(send(&sim, Duration::from_secs(5)).await.unwrap(), 201);
    assert_eq!(sim.sent().len(), 1);
    shutdown.cancel();
}
