//! A steady stream of signed webhooks: every customer of every restaurant
//! writes one message, waits for ingest's answer, pauses, writes the next.
//! Each post and its answer (or the lack of one) is kept for the audit.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;
use twilio_sim::{InboundSpec, Simulator};
use waiter_harness::TestRestaurant;

/// Texts the bot answers at any step without handing over to staff.
const TEXTS: [&str; 5] = ["hello", "menu", "help", "hi", "start over"];

#[derive(Debug, Clone)]
pub struct Post {
    pub sid: String,
    /// `None`: no HTTP answer (refused connection, reset, timeout).
    pub status: Option<u16>,
    pub sent_at: Instant,
    pub took: Duration,
}

pub struct Traffic {
    stop: CancellationToken,
    posts: Arc<Mutex<Vec<Post>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    /// `customers` per restaurant, each writing every `pause`.
    pub fn start(
        sim: &Simulator,
        restaurants: &[TestRestaurant],
        customers: usize,
        pause: Duration,
        tag: &str,
    ) -> Traffic {
        let stop = CancellationToken::new();
        let posts = Arc::new(Mutex::new(vec![]));
        let mut tasks = vec![];
        for (r, restaurant) in restaurants.iter().enumerate() {
            for c in 0..customers {
                let customer = format!("whatsapp:+9665{r:02}{c:06}");
                let (sim, stop, posts) = (sim.clone(), stop.clone(), posts.clone());
                let (account, number) = (restaurant.account_sid.clone(), restaurant.number.clone());
                let tag = tag.to_string();
                // Spread the customers over the pause so posts do not come in waves.
                let offset = pause
                    .mul_f64((r * customers + c) as f64 / (restaurants.len() * customers) as f64);
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(offset).await;
                    let mut n = 0usize;
                    while !stop.is_cancelled() {
                        let sid = format!("SM{:032x}", uuid::Uuid::new_v4().as_u128());
                        let spec =
                            InboundSpec::text(&account, &customer, &number, TEXTS[n % TEXTS.len()])
                                .with_profile_name(format!("{tag} {r}/{c}"))
                                .with_message_sid(&sid);
                        let sent_at = Instant::now();
                        let status = sim.send_inbound(spec).await.ok().map(|a| a.status);
                        posts.lock().expect("posts").push(Post {
                            sid,
                            status,
                            sent_at,
                            took: sent_at.elapsed(),
                        });
                        n += 1;
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = tokio::time::sleep(pause) => {}
                        }
                    }
                }));
            }
        }
        Traffic { stop, posts, tasks }
    }

    /// What was posted so far.
    pub fn posts(&self) -> Vec<Post> {
        self.posts.lock().expect("posts").clone()
    }

    /// Stops every customer after its post in flight and returns every post.
    pub async fn finish(self) -> Vec<Post> {
        self.stop.cancel();
        for task in self.tasks {
            task.await.expect("customer task");
        }
        let posts = self.posts.lock().expect("posts").clone();
        posts
    }
}

pub fn percentile(mut values: Vec<Duration>, q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort();
    values[((values.len() - 1) as f64 * q).round() as usize]
}

/// Answers to the posts sent between `from` and `to`, by status.
pub fn answers_between(
    posts: &[Post],
    from: Instant,
    to: Instant,
) -> std::collections::BTreeMap<String, usize> {
    let mut answers = std::collections::BTreeMap::new();
    for p in posts.iter().filter(|p| p.sent_at >= from && p.sent_at < to) {
        let key = p.status.map_or("no answer".to_string(), |s| s.to_string());
        *answers.entry(key).or_default() += 1;
    }
    answers
}
