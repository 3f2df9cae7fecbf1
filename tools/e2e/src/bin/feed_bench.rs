//! `just bench-feed`: the notifier's live feed at scale.
//!
//! Starts the notifier binary as its own process (release build, a fresh
//! database and bus namespace on the real servers), opens N dashboard
//! sockets spread over R restaurants (each subscribed to the three
//! channels of its restaurant), measures the notifier's memory per idle
//! socket from `/proc/<pid>/status` (VmRSS after the sockets are open and
//! idle, minus VmRSS before), then publishes events for random
//! restaurants at a steady rate straight to the EVENTS stream and measures
//! publish → receive latency on every socket that gets the event, with a
//! count of what should have arrived and what did.
//!
//! The load generator (this process: the sockets' clients and the
//! publisher) runs on the same cores as the notifier, NATS and PostgreSQL.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rand::Rng;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
use uuid::Uuid;
use waiter_harness::{jwt, TestEnv};
use waiter_nats::{
    envelope::new_id,
    events::{DashboardEvent, EventType},
    Envelope, StreamKind,
};

#[derive(Parser, Debug)]
#[command(about = "The notifier's live feed: many sockets, steady events, latency and memory")]
struct Args {
    /// Dashboard sockets to open.
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    /// Restaurants the sockets are spread over (round robin).
    #[arg(long, default_value_t = 1_000)]
    restaurants: usize,
    /// Events published per second, each for a random restaurant.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// How long events are published.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Handshakes in flight while the sockets are opened.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// The notifier binary (default: next to this one).
    #[arg(long)]
    notifier: Option<PathBuf>,
    /// Events published while every socket is away (the reconnect storm).
    #[arg(long, default_value_t = 1_000)]
    storm_events: u64,
    /// Port of the notifier (default: a free one; `NOTIFIER_PORT` if set).
    #[arg(long, env = "NOTIFIER_PORT")]
    port: Option<u16>,
}

const SECRET: &str = "feed-bench-secret-0123456789";

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Raises this process's open-files limit (soft, and hard when running as
/// root) to fit `needed`; the notifier it starts inherits it.
fn raise_open_files(needed: u64) -> anyhow::Result<u64> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    if hard < needed {
        // Only root may raise the hard limit; otherwise the soft one goes
        // as far as the hard one allows.
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, needed, needed);
    }
    let now = rlimit::increase_nofile_limit(needed)?;
    println!("  open files: soft {soft} → {now} (needed {needed}, hard was {hard})");
    if now < needed {
        bail!("the open-files limit {now} is below {needed}: raise it (ulimit -n) and run again");
    }
    Ok(now)
}

/// A field of `/proc/<pid>/status`, in kB.
fn proc_status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} in /proc/{pid}/status"))
}

/// CPU seconds (user + system) the process used so far.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line.
    let after = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

struct Notifier {
    child: Child,
    addr: String,
}

impl Notifier {
    async fn start(args: &Args, env: &TestEnv) -> anyhow::Result<Notifier> {
        let binary = match &args.notifier {
            Some(path) => path.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("bench directory")?
                .join("notifier"),
        };
        anyhow::ensure!(
            binary.exists(),
            "{} not found: build it with `cargo build --release -p notifier`",
            binary.display()
        );
        let port = match args.port {
            Some(port) => port,
            None => std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port(),
        };
        let addr = format!("127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("feed-bench-notifier-{port}.log"));
        let child = Command::new(&binary)
            .env("NOTIFIER_ADDR", &addr)
            .env("JWT_SECRET", SECRET)
            .env("DATABASE_URL", &env.db.url)
            .env("NATS_URL", &env.bus.config.url)
            .env("WAITER_NAMESPACE", &env.bus.config.namespace)
            .env("WAITER_PARTITIONS", env.bus.config.partitions.to_string())
            .env("NOTIFIER_WS_MAX_SOCKETS", (args.sockets + 100).to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        println!(
            "  notifier pid {} on {addr} ({}; log {})",
            child.id(),
            binary.display(),
            log.display()
        );
        let health = format!("http://{addr}/health");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(&health).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            anyhow::ensure!(Instant::now() < deadline, "notifier not healthy in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Notifier { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL if it does not stop in time.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    received: AtomicU64,
    subscribed: AtomicUsize,
    closed_by_server: AtomicUsize,
    /// Frames whose seq was not above the socket's previous one
    /// (a duplicate or a reordering).
    out_of_order: AtomicU64,
    /// Latencies are recorded while this is set (the steady phase).
    recording: AtomicBool,
    shards: Vec<Mutex<Histogram<u64>>>,
}

/// The number after `"<field>":` in an event frame.
fn number_field(frame: &str, field: &str) -> Option<u64> {
    let rest = frame.split_once(field)?.1;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// One dashboard socket of the bench: who it is and the last seq it saw.
struct Client {
    restaurant: Uuid,
    user: usize,
    last_seq: Arc<AtomicU64>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

/// Opens a socket, subscribes (with `since` = the last seq seen, if any)
/// and reads it in the background.
async fn open_socket(
    url: &str,
    restaurant: Uuid,
    user: usize,
    last_seq: Arc<AtomicU64>,
    seen: Arc<Seen>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let shard = user % seen.shards.len();
    let token = jwt::token_for(
        SECRET,
        &format!("user{user}"),
        restaurant,
        "staff",
        6 * 3600,
    );
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true).await?;
    let channels: Vec<String> = ["messages", "orders", "conversations"]
        .iter()
        .map(|c| format!("ws:restaurant:{restaurant}:{c}"))
        .collect();
    let mut subscribe = json!({"action": "subscribe", "channels": channels});
    match last_seq.load(Ordering::Relaxed) {
        0 => {}
        since => subscribe["since"] = since.into(),
    }
    socket.send(Message::Text(subscribe.to_string())).await?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("\"subscribed\"") => break,
            Some(Ok(_)) => continue,
            other => bail!("no subscribed frame: {other:?}"),
        }
    }
    seen.subscribed.fetch_add(1, Ordering::Relaxed);
    Ok(tokio::spawn(async move {
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    let at = now_us();
                    let (Some(sent), Some(seq)) = (
                        number_field(&text, "\"sent_us\":"),
                        number_field(&text, "\"seq\":"),
                    ) else {
                        continue;
                    };
                    seen.received.fetch_add(1, Ordering::Relaxed);
                    if last_seq.swap(seq, Ordering::Relaxed) >= seq {
                        seen.out_of_order.fetch_add(1, Ordering::Relaxed);
                    }
                    if seen.recording.load(Ordering::Relaxed) {
                        let mut h = seen.shards[shard].lock().unwrap();
                        let _ = h.record(at.saturating_sub(sent).max(1));
                    }
                }
                Ok(Message::Close(_)) => {
                    seen.closed_by_server.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }))
}

/// Opens every client's socket, `concurrency` handshakes at a time.
async fn open_all(
    clients: &mut [Client],
    url: &str,
    concurrency: usize,
    seen: &Arc<Seen>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut handshakes = Vec::with_capacity(clients.len());
    for (i, client) in clients.iter().enumerate() {
        let permit = slots.clone().acquire_owned().await?;
        let (url, counts, last_seq) = (url.to_string(), seen.clone(), client.last_seq.clone());
        let (restaurant, user) = (client.restaurant, client.user);
        handshakes.push(tokio::spawn(async move {
            let opened = open_socket(&url, restaurant, user, last_seq, counts).await;
            drop(permit);
            opened
        }));
        if (i + 1) % 2_000 == 0 {
            println!(
                "      {:>6} handshakes started, {:>6} subscribed, {:.1} s",
                i + 1,
                seen.subscribed.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64()
            );
        }
    }
    for (client, handshake) in clients.iter_mut().zip(handshakes) {
        client.reader = Some(handshake.await?.context("open a socket")?);
    }
    Ok(())
}

/// Publishes one event for a restaurant, stamped with its publish time.
async fn publish(
    bus: &waiter_nats::Bus,
    restaurant: Uuid,
    event_type: EventType,
    n: u64,
    padding: &str,
) -> bool {
    let event = DashboardEvent::new(
        restaurant,
        event_type,
        json!({"sent_us": now_us(), "n": n, "padding": padding}),
    );
    let subject = event.subject(bus.topology());
    bus.publish(subject, &Envelope::new(new_id(), new_id(), event))
        .await
        .is_ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.sockets > 0 && args.restaurants > 0 && args.rate > 0.0);
    println!("Waiter feed benchmark — {args:?}");
    raise_open_files(args.sockets as u64 + 1_000)?;
    let env = TestEnv::new().await;
    env.bus.bus.ensure_streams(&[StreamKind::Events]).await?;
    let notifier = Notifier::start(&args, &env).await?;
    let pid = notifier.pid();
    let url = format!("ws://{}/ws", notifier.addr);
    let restaurants: Vec<Uuid> = (0..args.restaurants).map(|_| Uuid::new_v4()).collect();
    let mut per_restaurant = vec![0u64; args.restaurants];
    for i in 0..args.sockets {
        per_restaurant[i % args.restaurants] += 1;
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = proc_status_kb(pid, "VmRSS:")?;
    println!(
        "\n[1/4] opening {} sockets over {} restaurants ({} handshakes at a time)",
        args.sockets, args.restaurants, args.connect_concurrency
    );
    let seen = Arc::new(Seen {
        shards: (0..16).map(|_| Mutex::new(hist())).collect(),
        ..Seen::default()
    });
    let opening = Instant::now();
    let mut clients: Vec<Client> = (0..args.sockets)
        .map(|i| Client {
            restaurant: restaurants[i % args.restaurants],
            user: i,
            last_seq: Arc::default(),
            reader: None,
        })
        .collect();
    open_all(&mut clients, &url, args.connect_concurrency, &seen).await?;
    println!(
        "      {} sockets subscribed in {:.1} s",
        seen.subscribed.load(Ordering::Relaxed),
        opening.elapsed().as_secs_f64()
    );
    // Idle, so what is measured is what an open socket holds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_idle = proc_status_kb(pid, "VmRSS:")?;
    let per_socket_kb = (rss_idle.saturating_sub(rss_before)) as f64 / args.sockets as f64;
    println!(
        "      notifier VmRSS {} kB before, {} kB with the sockets idle: {:.1} kB per socket",
        rss_before, rss_idle, per_socket_kb
    );

    println!(
        "\n[2/4] publishing {:.0} events/s for {} s, each for a random restaurant",
        args.rate, args.seconds
    );
    let bus = env.bus.bus.clone();
    let types = [
        EventType::MessageReceived,
        EventType::OrderUpdated,
        EventType::ConversationUpdated,
    ];
    let padding = "x".repeat(200);
    let total = (args.rate * args.seconds as f64) as u64;
    let expected = Arc::new(AtomicU64::new(0));
    let publish_errors = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(Semaphore::new(256));
    let cpu_before = cpu_seconds(pid)?;
    seen.recording.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut publishes = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / args.rate);
        tokio::time::sleep_until(due.into()).await;
        let r = rand::thread_rng().gen_range(0..args.restaurants);
        let event_type = types[n as usize % types.len()];
        let permit = in_flight.clone().acquire_owned().await?;
        let (bus, expected, errors, padding) = (
            bus.clone(),
            expected.clone(),
            publish_errors.clone(),
            padding.clone(),
        );
        let (restaurant, sockets) = (restaurants[r], per_restaurant[r]);
        publishes.push(tokio::spawn(async move {
            let event = DashboardEvent::new(
                restaurant,
                event_type,
                json!({"sent_us": now_us(), "n": n, "padding": padding}),
            );
            let subject = event.subject(bus.topology());
            match bus
                .publish(subject, &Envelope::new(new_id(), new_id(), event))
                .await
            {
                Ok(_) => {
                    expected.fetch_add(sockets, Ordering::Relaxed);
                }
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(permit);
        }));
        if n > 0 && n % (args.rate as u64 * 5).max(1) == 0 {
            println!(
                "      {:>5.1} s  {:>7} events published  {:>9} frames received",
                started.elapsed().as_secs_f64(),
                n,
                seen.received.load(Ordering::Relaxed)
            );
        }
    }
    for p in publishes {
        p.await?;
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.received.load(Ordering::Relaxed) < expected.load(Ordering::Relaxed)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen.recording.store(false, Ordering::Relaxed);
    let cpu = cpu_seconds(pid)? - cpu_before;
    let wall = started.elapsed().as_secs_f64();
    let received = seen.received.load(Ordering::Relaxed);
    let expected = expected.load(Ordering::Relaxed);

    println!(
        "\n[3/4] reconnect storm: every socket drops, {} events are published meanwhile, every socket comes back with since",
        args.storm_events
    );
    let mut aborted = vec![];
    for client in &mut clients {
        if let Some(reader) = client.reader.take() {
            reader.abort();
            aborted.push(reader);
        }
    }
    // Every reader is gone before anything is published: a frame read
    // after this point would move its socket's since.
    for reader in aborted {
        let _ = reader.await;
    }
    let mut missed = vec![0u64; args.restaurants];
    for n in 0..args.storm_events {
        let r = rand::thread_rng().gen_range(0..args.restaurants);
        if publish(
            &bus,
            restaurants[r],
            types[n as usize % types.len()],
            n,
            &padding,
        )
        .await
        {
            missed[r] += 1;
        }
    }
    let storm_expected: u64 = (0..args.restaurants)
        .map(|r| missed[r] * per_restaurant[r])
        .sum();
    let before_storm = seen.received.load(Ordering::Relaxed);
    let storm = Instant::now();
    open_all(&mut clients, &url, args.sockets.min(1_000), &seen).await?;
    let resubscribed = storm.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.received.load(Ordering::Relaxed) - before_storm < storm_expected
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let caught_up = storm.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let storm_received = seen.received.load(Ordering::Relaxed) - before_storm;
    let consumers = {
        let name = bus.topology().stream_name(StreamKind::Events);
        let mut stream = bus.jetstream().get_stream(&name).await?;
        stream.info().await?.state.consumer_count
    };
    let rss_after = proc_status_kb(pid, "VmRSS:")?;
    let hwm = proc_status_kb(pid, "VmHWM:")?;

    println!("\n[4/4] results");
    let mut latency = hist();
    for shard in &seen.shards {
        latency.add(&*shard.lock().unwrap())?;
    }
    let closed = seen.closed_by_server.load(Ordering::Relaxed);
    let out_of_order = seen.out_of_order.load(Ordering::Relaxed);
    println!();
    println!("  ─── Waiter feed benchmark ──────────────────────────────────────────");
    println!(
        "  machine                 {} cores (clients, publisher, notifier, NATS, PostgreSQL share them)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "  load average            {} (other work on the machine during the run)",
        waiter_e2e::stages::load_average()
    );
    println!(
        "  sockets                 {} over {} restaurants ({:.1} per restaurant)",
        args.sockets,
        args.restaurants,
        args.sockets as f64 / args.restaurants as f64
    );
    println!(
        "  events published        {total} in {publish_secs:.1} s ({:.0}/s), {} failed",
        total as f64 / publish_secs,
        publish_errors.load(Ordering::Relaxed)
    );
    println!(
        "  frames delivered        {received} of {expected} expected ({:.0}/s){}",
        received as f64 / publish_secs,
        if received == expected {
            ""
        } else {
            "  ← MISSING"
        }
    );
    println!(
        "  publish → socket        p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  max {:>7.2} ms",
        ms(&latency, 0.5),
        ms(&latency, 0.99),
        ms(&latency, 0.999),
        latency.max() as f64 / 1000.0
    );
    println!(
        "  notifier memory         {per_socket_kb:.1} kB per idle socket (VmRSS {rss_before} → {rss_idle} kB); {rss_after} kB after the run, peak {hwm} kB"
    );
    println!(
        "  notifier CPU            {:.1} % of one core during the run ({:.2} CPU s, {:.1} µs per frame)",
        100.0 * cpu / wall,
        cpu,
        1e6 * cpu / received.max(1) as f64
    );
    println!(
        "  reconnect storm         {} sockets back with since: subscribed in {resubscribed:.1} s, {storm_received} of {storm_expected} missed frames in {caught_up:.1} s{}",
        args.sockets,
        if storm_received == storm_expected { "" } else { "  ← MISMATCH" }
    );
    println!("  frames out of order or twice  {out_of_order}");
    let metrics = reqwest::get(format!("http://{}/metrics", notifier.addr))
        .await?
        .text()
        .await?;
    for line in metrics.lines().filter(|l| {
        [
            "events_missed_total",
            "catchup_events_total",
            "slow_clients_total",
        ]
        .iter()
        .any(|m| l.starts_with(&format!("waiter_notifier_{m}")))
    }) {
        println!("  notifier: {line}");
    }
    println!("  JetStream consumers on EVENTS {consumers} (after the storm)");
    println!("  sockets closed by the server  {closed}");
    println!("  ────────────────────────────────────────────────────────────────────");
    notifier.stop();
    drop(env);
    if received != expected || closed > 0 || storm_received != storm_expected || out_of_order > 0 {
        std::process::exit(1);
    }
    Ok(())
}
