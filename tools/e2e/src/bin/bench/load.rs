//! The load both modes offer: customers, each owned by one worker so its
//! messages go one after another as a person types them, `concurrency`
//! webhooks in flight, a share delivered twice, optionally paced; and the
//! progress line while it runs.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use rand::Rng;
use twilio_sim::{InboundSpec, WebhookResult};

use crate::hist;

/// One unique message as it was sent.
pub struct Sent {
    pub sid: String,
    pub at: DateTime<Utc>,
}

/// A customer: the restaurant it writes to (account, business number) and
/// its own number.
#[derive(Clone)]
pub struct Customer {
    pub account_sid: String,
    pub business: String,
    pub number: String,
}

pub struct Load {
    pub messages: usize,
    pub concurrency: usize,
    pub duplicates: u32,
    pub rate: f64,
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Delivers one webhook the way Twilio would (through the simulator).
pub type Deliver =
    Arc<dyn Fn(InboundSpec) -> BoxFuture<anyhow::Result<WebhookResult>> + Send + Sync>;

/// How many replies have arrived so far, for the progress line.
pub type Replies = Arc<dyn Fn() -> BoxFuture<usize> + Send + Sync>;

pub struct Outcome {
    pub sent: Vec<Sent>,
    pub ack: Histogram<u64>,
    pub posts: u64,
    pub refused: u64,
    pub started: Instant,
    pub send_secs: f64,
    /// Prints progress until aborted.
    pub progress: tokio::task::JoinHandle<()>,
}

impl Outcome {
    pub fn accept_rate(&self) -> f64 {
        self.posts as f64 / self.send_secs
    }
}

const TEXTS: [&str; 5] = ["hello", "menu", "help", "hi", "start over"];

pub async fn run(
    load: &Load,
    customers: &[Customer],
    deliver: Deliver,
    replies: Replies,
) -> anyhow::Result<Outcome> {
    let ack_latency = Arc::new(Mutex::new(hist()));
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));
    let posts = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..load.concurrency)
        .map(|w| {
            let (deliver, ack_latency, sent, refused, posts, next) = (
                deliver.clone(),
                ack_latency.clone(),
                sent.clone(),
                refused.clone(),
                posts.clone(),
                next.clone(),
            );
            let mine: Vec<Customer> = customers
                .iter()
                .enumerate()
                .filter(|(c, _)| c % load.concurrency == w)
                .map(|(_, x)| x.clone())
                .collect();
            let (total, dup_share, rate) = (load.messages, load.duplicates, load.rate);
            tokio::spawn(async move {
                let mut turn = 0usize;
                while !mine.is_empty() {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= total {
                        return;
                    }
                    if rate > 0.0 {
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let customer = &mine[turn % mine.len()];
                    turn += 1;
                    let sid = format!("SM{:032x}", rand::thread_rng().gen::<u128>());
                    let spec = InboundSpec::text(
                        &customer.account_sid,
                        &customer.number,
                        &customer.business,
                        TEXTS[i % TEXTS.len()],
                    )
                    .with_message_sid(&sid);
                    let at = Utc::now();
                    let copies = if rand::thread_rng().gen_range(0..100) < dup_share {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let t = Instant::now();
                        let answer = deliver(spec.clone()).await;
                        posts.fetch_add(1, Ordering::Relaxed);
                        ack_latency
                            .lock()
                            .unwrap()
                            .record(t.elapsed().as_micros() as u64)
                            .ok();
                        if !matches!(answer, Ok(a) if a.status == 200) {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    sent.lock().unwrap().push(Sent { sid, at });
                }
            })
        })
        .collect();
    let progress = {
        let posts = posts.clone();
        let total = load.messages;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let replies = replies().await;
                println!(
                    "      {:>6.1}s  webhooks posted {:>6}  replies accepted by Twilio {:>6}  (of ≥{total})",
                    started.elapsed().as_secs_f64(),
                    posts.load(Ordering::Relaxed),
                    replies
                );
            }
        })
    };
    for w in workers {
        w.await?;
    }
    let send_secs = started.elapsed().as_secs_f64();
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let ack = ack_latency.lock().unwrap().clone();
    Ok(Outcome {
        sent,
        ack,
        posts: posts.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        started,
        send_secs,
        progress,
    })
}

/// When each message's `message.sent` event reached a dashboard, by id.
pub type EventTimes = Arc<Mutex<std::collections::HashMap<String, DateTime<Utc>>>>;

/// Records the arrival of every `message.sent` on `dashboard` in `times`.
/// Where the bench's dashboard socket connects, and how often it had to.
#[derive(Clone)]
pub struct Feed {
    pub ws_url: String,
    pub token: String,
    pub restaurant: uuid::Uuid,
    /// Times the notifier closed the socket and it reconnected.
    pub reconnects: Arc<AtomicU64>,
}

impl Feed {
    pub fn new(ws_url: String, token: String, restaurant: uuid::Uuid) -> Self {
        Self {
            ws_url,
            token,
            restaurant,
            reconnects: Arc::default(),
        }
    }
}

/// Records when each reply's `message.sent` reaches a dashboard socket,
/// subscribed before it returns. The notifier closes a socket that falls
/// behind a burst ("too slow"): it reconnects with `since` its last event,
/// as the dashboard does, so the events it missed arrive late instead of
/// never.
pub async fn record_events(feed: Feed, times: EventTimes) {
    let mut dashboard = waiter_e2e::dashboard(&feed.ws_url, &feed.token, feed.restaurant).await;
    tokio::spawn(async move {
        let mut since: Option<u64> = None;
        loop {
            while let Some(frame) = dashboard.next_json(Duration::from_secs(3600)).await {
                if let Some(seq) = frame["seq"].as_u64() {
                    since = Some(seq);
                }
                if frame["type"] == "message.sent" {
                    if let Some(id) = frame["data"]["id"].as_str() {
                        times
                            .lock()
                            .unwrap()
                            .entry(id.to_string())
                            .or_insert_with(Utc::now);
                    }
                }
            }
            feed.reconnects.fetch_add(1, Ordering::Relaxed);
            dashboard = loop {
                match waiter_harness::ws::Dashboard::connect(&feed.ws_url, &feed.token).await {
                    Ok(mut again) => {
                        again.subscribe(feed.restaurant, since).await;
                        break again;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
        }
    });
}
