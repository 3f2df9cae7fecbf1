//! What the pipeline is measured against, in the same run: raw JetStream
//! publish (awaiting each PubAck, at the webhooks' concurrency and at the
//! broker's async capability) and a bare warp POST handler driven by the
//! same client as the webhooks.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use hdrhistogram::Histogram;
use twilio_sim::{InboundSpec, Simulator};
use waiter_e2e::stages;
use warp::Filter;

use crate::{hist, ms};

/// The baselines of one run.
pub struct Baselines {
    pub raw: (f64, Histogram<u64>),
    pub raw_async: (f64, Histogram<u64>),
    pub raw_in_flight: usize,
    pub bare: Option<(f64, Histogram<u64>)>,
}

/// Where the baselines run: a JetStream context (streams named and
/// subjects prefixed by `prefix`, deleted afterwards) and a simulator that
/// signs for `account_sid` writing to `number`.
pub struct Bench<'a> {
    pub js: &'a async_nats::jetstream::Context,
    pub prefix: &'a str,
    pub sim: &'a Simulator,
    pub account_sid: &'a str,
    pub number: &'a str,
}

/// Measures every baseline, printing each as it is known.
pub async fn measure(
    at: &Bench<'_>,
    raw: usize,
    concurrency: usize,
    raw_in_flight: usize,
    bare: usize,
) -> Baselines {
    println!(
        "\n[1/3] baselines: raw JetStream publish, {raw} messages at {concurrency} and at {raw_in_flight} in flight; {bare} posts to a bare warp handler"
    );
    let (raw_rate, raw_lat) = raw_publish(at, raw, concurrency).await;
    println!(
        "      {raw_rate:.0} msg/s, ack p50 {:.2} ms, p99 {:.2} ms",
        ms(&raw_lat, 0.5),
        ms(&raw_lat, 0.99)
    );
    let (async_rate, async_lat) = raw_publish(at, raw, raw_in_flight).await;
    println!(
        "      {async_rate:.0} msg/s at {raw_in_flight} in flight, ack p50 {:.2} ms, p99 {:.2} ms",
        ms(&async_lat, 0.5),
        ms(&async_lat, 0.99)
    );
    let bare = match bare {
        0 => None,
        n => Some(bare_posts(at, n, concurrency).await),
    };
    if let Some((rate, lat)) = &bare {
        println!(
            "      bare warp POST {rate:.0} /s, p50 {:.2} ms, p99 {:.2} ms",
            ms(lat, 0.5),
            ms(lat, 0.99)
        );
    }
    Baselines {
        raw: (raw_rate, raw_lat),
        raw_async: (async_rate, async_lat),
        raw_in_flight,
        bare,
    }
}

/// `n` jobs, `concurrency` at a time, each timed; returns jobs per second.
async fn timed<F, Fut>(n: usize, concurrency: usize, job: F) -> (f64, Histogram<u64>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let latencies = Arc::new(Mutex::new(hist()));
    let next = Arc::new(AtomicU64::new(0));
    let job = Arc::new(job);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (latencies, next, job) = (latencies.clone(), next.clone(), job.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= n {
                        return;
                    }
                    let t = Instant::now();
                    job(i).await;
                    latencies
                        .lock()
                        .unwrap()
                        .record(t.elapsed().as_micros() as u64)
                        .ok();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("baseline worker");
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let h = latencies.lock().unwrap().clone();
    (rate, h)
}

/// Raw JetStream: publish `n` payloads of webhook size with a `Nats-Msg-Id`,
/// `concurrency` at a time, each awaiting its PubAck (what ingest does per
/// webhook).
async fn raw_publish(at: &Bench<'_>, n: usize, concurrency: usize) -> (f64, Histogram<u64>) {
    let js = at.js.clone();
    let ns = at.prefix;
    let name = format!("{}_RAWBENCH{concurrency}", ns.to_uppercase());
    let subject = format!("{ns}.rawbench{concurrency}");
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![subject.clone()],
        duplicate_window: waiter_nats::streams::DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await
    .expect("bench stream");
    let payload = bytes::Bytes::from(vec![b'x'; 900]);
    let context = js.clone();
    let result = timed(n, concurrency, move |i| {
        let (js, subject, payload) = (context.clone(), subject.clone(), payload.clone());
        async move {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                format!("raw-{i}").as_str(),
            );
            let ack = js
                .publish_with_headers(subject, headers, payload)
                .await
                .expect("publish");
            ack.await.expect("ack");
        }
    })
    .await;
    let _ = js.delete_stream(&name).await;
    result
}

/// A warp server answering every POST with `<Response/>`, on one thread
/// as each stage has, driven with signed webhook forms by the simulator's
/// client, `concurrency` at a time.
async fn bare_posts(at: &Bench<'_>, n: usize, concurrency: usize) -> (f64, Histogram<u64>) {
    let runtime = stages::runtime("bare-warp");
    let addr = runtime
        .run(async {
            let route = warp::post()
                .and(warp::path!("whatsapp" / "webhook"))
                .and(warp::body::bytes())
                .map(|_body: bytes::Bytes| {
                    warp::reply::with_header("<Response/>", "content-type", "text/xml")
                });
            let (addr, server) = warp::serve(route).bind_ephemeral(([127, 0, 0, 1], 0));
            tokio::spawn(server);
            addr
        })
        .await;
    let url = format!("http://{addr}/whatsapp/webhook");
    let (sim, account_sid, number) = (
        at.sim.clone(),
        at.account_sid.to_string(),
        at.number.to_string(),
    );
    let result = timed(n, concurrency, move |i| {
        let (sim, url) = (sim.clone(), url.clone());
        let spec = InboundSpec::text(&account_sid, "whatsapp:+966500000001", &number, "hi");
        async move {
            let sid = format!("SMbare{i:026}");
            let params = twilio_sim::customer::inbound_params(&spec, &sid);
            let signature = sim.signed_params(&spec.account_sid, &url, &params);
            let answer = sim
                .post_webhook_raw(&url, params, Some(signature))
                .await
                .expect("bare post");
            assert_eq!(answer.status, 200, "the bare handler answers 200");
        }
    })
    .await;
    drop(runtime);
    result
}
