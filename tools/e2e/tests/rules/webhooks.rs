//! Signed order webhooks through the whole pipeline: a POS endpoint that
//! fails twice before taking each event gets every event of a chatted and
//! moved order once (by `webhook-id`), signed as the independent
//! `standardwebhooks` crate verifies, in order; an endpoint that is always
//! down ends in the dead-letter stream after its last attempt, without
//! holding up the other.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use waiter_e2e::{chat::*, Pipeline};
use waiter_harness::{eventually, read_stream, Keyring};
use waiter_nats::{messages::DeadLetter, Envelope, StreamKind};

use super::{api, deliver_and_rate, many_messages_a_minute};

const ATTEMPTS: u32 = 4;

/// One POST as the receiver saw it, and what it answered.
#[derive(Debug, Clone)]
struct Post {
    path: String,
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    answered: u16,
}

impl Post {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// `/flaky` answers 503 to the first two posts of each `webhook-id`, then
/// 200; `/down` always 500.
#[derive(Clone, Default)]
struct Receiver {
    posts: Arc<Mutex<Vec<Post>>>,
}

impl Receiver {
    async fn start(&self, shutdown: tokio_util::sync::CancellationToken) -> SocketAddr {
        use warp::Filter;
        let me = self.clone();
        let route = warp::post()
            .and(warp::path::full())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .map(
                move |path: warp::path::FullPath,
                      headers: warp::http::HeaderMap,
                      body: bytes::Bytes| {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let mut posts = me.posts.lock().unwrap();
                    let id = header("webhook-id");
                    let earlier = posts
                        .iter()
                        .filter(|p| p.id == id && p.path == path.as_str())
                        .count();
                    let answered = match path.as_str() {
                        "/flaky" if earlier < 2 => 503,
                        "/flaky" => 200,
                        _ => 500,
                    };
                    posts.push(Post {
                        path: path.as_str().to_string(),
                        id,
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        body: body.to_vec(),
                        answered,
                    });
                    warp::reply::with_status(
                        "",
                        warp::http::StatusCode::from_u16(answered).unwrap(),
                    )
                },
            );
        let (addr, server) =
            warp::serve(route).bind_with_graceful_shutdown(([127, 0, 0, 1], 0), async move {
                shutdown.cancelled().await
            });
        tokio::spawn(server);
        addr
    }

    fn posts(&self, path: &str) -> Vec<Post> {
        let posts = self.posts.lock().unwrap();
        posts.iter().filter(|p| p.path == path).cloned().collect()
    }
}

/// Verifies a post with the `standardwebhooks` crate.
fn verify(secret: &str, post: &Post) {
    let mut headers = http::HeaderMap::new();
    headers.insert("webhook-id", post.id.parse().unwrap());
    headers.insert("webhook-timestamp", post.timestamp.parse().unwrap());
    headers.insert("webhook-signature", post.signature.parse().unwrap());
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&post.body, &headers)
        .unwrap_or_else(|e| panic!("signature of {} does not verify: {e:?}", post.id));
}

#[tokio::test]
async fn an_endpoint_failing_twice_gets_each_order_event_once_signed_and_in_order() {
    let p = Pipeline::start_with(waiter_e2e::Options {
        webhook_attempts: Some(ATTEMPTS),
        ..waiter_e2e::Options::default()
    })
    .await;
    let r = p.restaurant(0);
    many_messages_a_minute(&p, r.id).await;
    let receiver = Receiver::default();
    let addr = receiver.start(p.env.shutdown.clone()).await;
    let mut secrets = vec![];
    for path in ["/flaky", "/down"] {
        let url = format!("http://{addr}{path}");
        secrets.push(
            waiter_migrations::webhooks::add(p.env.pool(), Keyring::for_tests(), r.id, &url)
                .await
                .unwrap(),
        );
    }
    let [(_, flaky_secret), (down, _)] = <[_; 2]>::try_from(secrets).ok().unwrap();

    // Chatted, moved by staff to delivered, rated by the customer.
    let chat = Chat::new(&p, r, customer(412), Some("Samir"));
    let placed = place_order(&chat, None).await;
    deliver_and_rate(&p, &chat, &placed, 4).await;
    // Another customer's order, cancelled by staff.
    let other = Chat::new(&p, r, customer(413), Some("Huda"));
    let cancelled = place_order(&other, None).await;
    let (code, body) = api(
        &p,
        Method::PATCH,
        &format!("orders/{}/status", cancelled.id),
        Some(json!({ "status": "CANCELLED" })),
    )
    .await;
    assert_eq!(code, 200, "{body}");

    let taken = |order: uuid::Uuid| {
        receiver
            .posts("/flaky")
            .into_iter()
            .filter(|p| p.answered == 200 && p.json()["data"]["id"] == order.to_string())
            .collect::<Vec<_>>()
    };
    eventually(
        "every event of both orders taken",
        Duration::from_secs(60),
        || async { (taken(placed.id).len() >= 5 && !taken(cancelled.id).is_empty()).then_some(()) },
    )
    .await;
    // Settle: nothing more may arrive for these events.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let flaky = receiver.posts("/flaky");
    let mut tries: HashMap<&str, (usize, usize)> = HashMap::new();
    for post in &flaky {
        verify(flaky_secret.expose_secret(), post);
        let entry = tries.entry(post.id.as_str()).or_default();
        entry.0 += 1;
        entry.1 += usize::from(post.answered == 200);
    }
    for (id, (posts, accepted)) in &tries {
        assert_eq!(
            (*posts, *accepted),
            (3, 1),
            "{id}: two refusals, then taken once"
        );
    }
    let events: Vec<(String, String)> = taken(placed.id)
        .iter()
        .map(|p| {
            let body = p.json();
            (
                body["type"].as_str().unwrap().to_string(),
                body["data"]["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("order.created", "CONFIRMED"),
        ("order.updated", "PREPARING"),
        ("order.updated", "OUT_FOR_DELIVERY"),
        ("order.updated", "DELIVERED"),
        ("order.rated", "RATED"),
    ]
    .map(|(t, s)| (t.to_string(), s.to_string()));
    assert_eq!(events, expected, "in the order they happened");
    let rated = taken(placed.id).last().unwrap().json();
    assert_eq!(rated["data"]["rating"], 4, "{rated}");
    let cancel: Vec<String> = taken(cancelled.id)
        .iter()
        .map(|p| p.json()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(cancel, ["order.created", "order.cancelled"]);

    // The endpoint that is always down: each event tried ATTEMPTS times,
    // then a dead letter of stage `webhooks` with the reason.
    let topology = p.env.bus.bus.topology().clone();
    let letters = eventually(
        "the down endpoint's letters",
        Duration::from_secs(90),
        || async {
            let letters: Vec<DeadLetter> = read_stream(
                &p.env.bus.bus,
                StreamKind::DeadLetter,
                topology.dead_letter("webhooks"),
            )
            .await
            .iter()
            .map(|m| Envelope::<DeadLetter>::decode(&m.payload).unwrap().body)
            .collect();
            (letters.len() >= 7).then_some(letters)
        },
    )
    .await;
    assert_eq!(
        letters.len(),
        7,
        "one per event, none for the flaky endpoint"
    );
    for letter in &letters {
        assert_eq!(letter.stage, "webhooks");
        assert_eq!(letter.attempts, i64::from(ATTEMPTS), "{letter:?}");
        assert_eq!(letter.restaurant_id, Some(r.id));
        assert!(
            letter.reason.contains("answered 500") && letter.reason.contains(&down.id.to_string()),
            "{}",
            letter.reason
        );
        assert_eq!(letter.code.as_deref(), Some("500"));
    }
    let down_posts = receiver.posts("/down");
    assert_eq!(down_posts.len(), 7 * ATTEMPTS as usize);
    // Its webhook ids are the flaky endpoint's: one event, one id.
    for post in &down_posts {
        assert!(tries.contains_key(post.id.as_str()), "{}", post.id);
    }
}
