//! Ingest at its hostile edge: not ready before the tenant directory is
//! loaded, and slow clients cut off.

use std::time::{Duration, Instant};
use waiter_secrets::{twilio_token_context, Keyring};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use twilio_sim::customer::{inbound_params, InboundSpec};
use waiter_harness::{eventually, nats_server::PrivateNats, TestBus};
use waiter_nats::{
    directory::{AccountEntry, Directory},
    Bus, BusConfig,
};
use waiter_runtime::http::HttpTimeouts;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "edge-test-token";

fn signed_form(url: &str, sid: &str) -> (String, String) {
    let params = inbound_params(
        &InboundSpec::text(
            ACCOUNT,
            "whatsapp:+966500000777",
            "whatsapp:+15550001111",
            "hi",
        ),
        sid,
    );
    let signature = twilio_sim::signature::sign(TOKEN, url, &params);
    (serde_urlencoded::to_string(&params).unwrap(), signature)
}

async fn post(url: &str, form: &str, signature: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(form.to_string())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn status_of(url: &str) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_get_503_not_403_until_the_tenant_directory_is_loaded() {
    // JetStream is not there yet (a server still recovering its store
    // answers core NATS but not the JetStream API).
    let mut nats = PrivateNats::start(false).await;
    let mut config = BusConfig::local("edge", 4);
    config.url = nats.url();
    config.publish_timeout = Duration::from_millis(500);
    let bus = Bus::connect(&config, "ingest").await.unwrap();
    let shutdown = CancellationToken::new();
    let mut ingest_config = ingest::Config::for_tests();
    ingest_config.directory_wait = Duration::from_millis(300);
    let started = Instant::now();
    let running = ingest::start(ingest_config, bus, shutdown.clone())
        .await
        .expect("ingest serves without its directory");
    assert!(started.elapsed() < Duration::from_secs(3));
    let base = format!("http://{}", running.addr);
    let url = format!("{base}/whatsapp/webhook");

    let (form, signature) = signed_form(&url, "SM000000000000000000000000000000e1");
    for _ in 0..3 {
        assert_eq!(
            post(&url, &form, &signature).await,
            503,
            "Twilio retries a 503"
        );
    }
    assert_eq!(status_of(&format!("{base}/ready")).await, 503);
    assert_eq!(status_of(&format!("{base}/health")).await, 200, "alive");

    // JetStream comes up and the restaurant's account is in the directory.
    nats.restart(true).await;
    let writer = Bus::connect(&config, "waiterctl").await.unwrap();
    let directory = eventually("JetStream up", Duration::from_secs(20), || async {
        Directory::open(&writer).await.ok()
    })
    .await;
    directory
        .put(&AccountEntry {
            account_sid: ACCOUNT.into(),
            sealed_token: Some(Keyring::for_tests().seal(TOKEN, &twilio_token_context(ACCOUNT))),
        })
        .await
        .unwrap();
    let mut seen = vec![];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = post(&url, &form, &signature).await;
        seen.push(status);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never accepted: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_of(&format!("{base}/ready")).await, 200);
    // Before the directory was loaded nothing got a 403: only once it was
    // loaded may an account be unknown (the entry may arrive just after).
    let first_403 = seen.iter().position(|&s| s == 403);
    let first_non_503 = seen.iter().position(|&s| s != 503 && s != 0);
    assert!(
        first_403.is_none() || first_403 >= first_non_503,
        "answers while starting: {seen:?}"
    );
    shutdown.cancel();
}

async fn ingest_with_timeouts(t: &TestBus, shutdown: &CancellationToken) -> std::net::SocketAddr {
    let mut config = ingest::Config::for_tests();
    config.timeouts = HttpTimeouts {
        header_read: Duration::from_millis(700),
        body_read: Duration::from_millis(700),
    };
    ingest::start(config, t.bus.clone(), shutdown.clone())
        .await
        .unwrap()
        .addr
}

/// Connects and writes `bytes` one at a time, `gap` apart (see `trickle_on`).
async fn trickle(
    addr: std::net::SocketAddr,
    bytes: &[u8],
    gap: Duration,
) -> (Option<Duration>, String) {
    let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    trickle_on(socket, bytes, gap).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_request_slowly_is_cut_off_and_a_normal_one_is_served() {
    let t = TestBus::new().await;
    let shutdown = CancellationToken::new();
    let addr = ingest_with_timeouts(&t, &shutdown).await;

    // Headers byte by byte, 100 ms apart: never complete within 700 ms.
    let head = b"POST /whatsapp/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\n";
    let (closed, _) = trickle(addr, head, Duration::from_millis(100)).await;
    let closed = closed.expect("the server closed the slow connection");
    assert!(
        closed >= Duration::from_millis(600) && closed < Duration::from_secs(5),
        "closed after {closed:?}"
    );

    // A connection that sends nothing at all is closed as well.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection kept"
    );

    // Headers at once, then the body byte by byte: 408 and closed.
    let mut request = b"POST /whatsapp/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 40\r\n\r\n".to_vec();
    let head_len = request.len();
    request.extend_from_slice(&[b'a'; 40]);
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(&request[..head_len]).await.unwrap();
    let (closed, answer) =
        trickle_on(socket, &request[head_len..], Duration::from_millis(100)).await;
    assert!(closed.is_some(), "the slow body was cut off");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");

    // A normal request is served.
    let health = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let refused = reqwest::Client::new()
        .post(format!("http://{addr}/whatsapp/webhook"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Body=hi")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400, "read and answered in full");
    shutdown.cancel();
}

/// Writes `bytes` one at a time, `gap` apart, until the server answers or
/// closes the connection; returns when that happened (None if it never
/// did while writing) and what it answered.
async fn trickle_on(
    mut socket: tokio::net::TcpStream,
    bytes: &[u8],
    gap: Duration,
) -> (Option<Duration>, String) {
    let started = Instant::now();
    for b in bytes {
        if socket.write_all(&[*b]).await.is_err() {
            break;
        }
        let mut probe = [0u8; 512];
        match tokio::time::timeout(gap, socket.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (Some(started.elapsed()), String::new()),
            Ok(Ok(n)) => {
                return (
                    Some(started.elapsed()),
                    String::from_utf8_lossy(&probe[..n]).into_owned(),
                )
            }
            Err(_) => {}
        }
    }
    (None, String::new())
}
