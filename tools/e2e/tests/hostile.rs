//! Hostile input through the whole pipeline: NUL and control characters in
//! every field, and an unsigned flood while signed traffic flows.

use std::time::{Duration, Instant};

use futures::StreamExt;
use twilio_sim::InboundSpec;
use waiter_e2e::Pipeline;
use waiter_harness::eventually;
use waiter_nats::StreamKind;

const WAIT: Duration = Duration::from_secs(30);

fn sid(n: u128) -> String {
    format!("SM{n:032x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_customer_body_is_stored_visibly_with_the_original_kept() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let customer = "whatsapp:+966500000901";
    let answer = p
        .sim
        .send_inbound(
            InboundSpec::text(&r.account_sid, customer, &r.number, "hi\0there")
                .with_message_sid(sid(0x901)),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let (body, original): (String, Option<Vec<u8>>) =
        eventually("the message stored", WAIT, || async {
            sqlx::query_as("SELECT body, body_original FROM messages WHERE wa_sid = $1")
                .bind(sid(0x901))
                .fetch_optional(p.env.pool())
                .await
                .unwrap()
        })
        .await;
    assert_eq!(body, "hi\u{FFFD}there");
    assert_eq!(original.as_deref(), Some(&b"hi\0there"[..]));
    // The audit row (its parameters are JSONB) and the bot's answer too.
    assert_eq!(
        p.count(
            "SELECT count(*) FROM webhook_audit WHERE message_sid = $1 AND outcome = 'accepted'",
            &sid(0x901)
        )
        .await,
        1
    );
    let replies = p.sim.wait_for_sent(customer, 1, WAIT).await;
    assert!(!replies.is_empty(), "the bot answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_in_every_field_do_not_jam_the_router() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let url = format!("http://{}/whatsapp/webhook", p.ingest);
    let hostile = ["\0", "\u{1b}[2J", "\u{7}\u{8}", "%00", "\u{202e}", "\0\0\0"];

    // Validly signed, with `To` a NUL: ingest accepts it, the router finds
    // no restaurant for it and audits the refusal.
    let mut params = twilio_sim::customer::inbound_params(
        &InboundSpec::text(&r.account_sid, "whatsapp:+966500000902", "\0", "hi"),
        &sid(0x902),
    );
    for (name, value) in &mut params {
        if ["Body", "ProfileName", "WaId"].contains(&name.as_str()) {
            *value = hostile.concat();
        }
    }
    params.push(("Hostile\0Name".into(), "\0".into()));
    params.push(("ButtonText".into(), hostile.concat()));
    let signature = p.sim.signed_params(&r.account_sid, &url, &params);
    let answer = p
        .sim
        .post_webhook_raw(&url, params.clone(), Some(signature))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let outcome: String = eventually("the refusal audited", WAIT, || async {
        sqlx::query_scalar("SELECT outcome FROM webhook_audit WHERE message_sid = $1")
            .bind(sid(0x902))
            .fetch_optional(p.env.pool())
            .await
            .unwrap()
    })
    .await;
    assert_eq!(outcome, "unknown_number");

    // Unsigned, with hostile values in every field: refused, counted, and
    // the counts stored (samples without NUL).
    for (i, value) in hostile.iter().enumerate() {
        let form: Vec<(String, String)> = [
            "AccountSid",
            "MessageSid",
            "From",
            "To",
            "Body",
            "NumMedia",
            "Latitude",
        ]
        .iter()
        .map(|name| (name.to_string(), format!("{value}{i}")))
        .collect();
        let answer = p.sim.post_webhook_raw(&url, form, None).await.unwrap();
        assert!(
            [400, 403].contains(&answer.status),
            "{value:?}: {}",
            answer.status
        );
    }
    let counted: i64 = eventually("the refusals counted", WAIT, || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(count), 0)::bigint FROM webhook_refusals WHERE outcome <> 'duplicate'",
        )
        .fetch_one(p.env.pool())
        .await
        .unwrap();
        (n >= hostile.len() as i64).then_some(n)
    })
    .await;
    assert_eq!(counted, hostile.len() as i64);
    let samples: String =
        sqlx::query_scalar("SELECT string_agg(samples::text, '') FROM webhook_refusals")
            .fetch_one(p.env.pool())
            .await
            .unwrap();
    assert!(samples.contains('\u{FFFD}') && !samples.contains("\\u0000"));

    // And the pipeline still answers the next customer.
    let next = p
        .sim
        .send_inbound(InboundSpec::text(
            &r.account_sid,
            "whatsapp:+966500000903",
            &r.number,
            "hi",
        ))
        .await
        .unwrap();
    assert_eq!(next.status, 200);
    assert!(!p
        .sim
        .wait_for_sent("whatsapp:+966500000903", 1, WAIT)
        .await
        .is_empty());
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

async fn signed_latencies(p: &Pipeline, first: u32, n: u32) -> Vec<Duration> {
    let r = p.restaurant(0);
    let mut latencies = vec![];
    for i in first..first + n {
        let started = Instant::now();
        let answer = p
            .sim
            .send_inbound(InboundSpec::text(
                &r.account_sid,
                format!("whatsapp:+9665{i:08}"),
                &r.number,
                "hi",
            ))
            .await
            .unwrap();
        latencies.push(started.elapsed());
        assert_eq!(
            answer.status, 200,
            "a signed webhook was refused during the flood"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_flood_stays_within_caps_while_signed_webhooks_are_answered() {
    const FLOOD: usize = 2000;
    const SIGNED: u32 = 40;
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let url = format!("http://{}/whatsapp/webhook", p.ingest);

    let quiet = signed_latencies(&p, 1_000, SIGNED).await;

    // 60 KB posts: half with a forged signature (read and checked), half
    // unsigned (refused unread once their source is over its threshold).
    let client = reqwest::Client::new();
    let filler = "a".repeat(60 * 1024);
    let account = r.account_sid.clone();
    let flood_url = url.clone();
    let flood = futures::stream::iter(0..FLOOD)
        .map(move |i| {
            let client = client.clone();
            let body = format!(
                "AccountSid={account}&From=whatsapp%3A%2B1{i}&To=whatsapp%3A%2B2&MessageSid=SMflood{i}&Body={filler}"
            );
            let url = flood_url.clone();
            async move {
                let mut request = client
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body);
                if i % 2 == 0 {
                    request = request.header("x-twilio-signature", "Zm9yZ2Vk");
                }
                match request.send().await {
                    Ok(answer) => Some(answer.status().as_u16()),
                    // A refused-unread request's connection is closed early.
                    Err(_) => None,
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>();
    let flood_started = Instant::now();
    let (answers, during) = tokio::join!(tokio::spawn(flood), signed_latencies(&p, 2_000, SIGNED));
    let flood_took = flood_started.elapsed();
    let answers = answers.unwrap();
    let answered = answers.iter().flatten().count();
    assert!(
        answers.iter().flatten().all(|&s| s == 403),
        "every flood request is refused with 403, never 429: {:?}",
        answers
            .iter()
            .flatten()
            .filter(|&&s| s != 403)
            .take(5)
            .collect::<Vec<_>>()
    );

    println!(
        "flood: {FLOOD} posts of 60 KB in {flood_took:.1?} ({answered} answered, the rest cut off unread)"
    );
    println!(
        "signed ack latency without flood: p50 {:?} p99 {:?}; during: p50 {:?} p99 {:?}",
        percentile(&quiet, 0.5),
        percentile(&quiet, 0.99),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
    );

    // What the flood could store: a handful of count reports, no rows per request.
    let topology = p.env.bus.bus.topology();
    let reports = p
        .published_on(StreamKind::Ingest, topology.refused_webhooks())
        .await;
    let counted: i64 = eventually("the flood counted", WAIT, || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(count), 0)::bigint FROM webhook_refusals WHERE outcome = 'bad_signature'",
        )
        .fetch_one(p.env.pool())
        .await
        .unwrap();
        (n >= FLOOD as i64).then_some(n)
    })
    .await;
    assert_eq!(counted, FLOOD as i64, "every request counted once");
    let (rows, largest): (i64, Option<i32>) =
        sqlx::query_as("SELECT count(*), max(octet_length(samples::text)) FROM webhook_refusals")
            .fetch_one(p.env.pool())
            .await
            .unwrap();
    let audit_rows = p
        .count(
            "SELECT count(*) FROM webhook_audit WHERE outcome <> $1",
            "accepted",
        )
        .await;
    let mut stream = p
        .env
        .bus
        .bus
        .jetstream()
        .get_stream(topology.stream_name(StreamKind::Ingest))
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    println!(
        "stored: {reports} count reports on the bus, {rows} refusal rows (largest samples {} B), INGEST {} messages / {} bytes of a {} byte cap",
        largest.unwrap_or(0),
        info.state.messages,
        info.state.bytes,
        info.config.max_bytes
    );
    assert!(reports < 200, "{reports} reports for {FLOOD} requests");
    assert!(rows <= 4, "{rows} refusal rows");
    assert!(largest.unwrap_or(0) < 3 * 6 * 1024, "samples are capped");
    assert_eq!(audit_rows, 0, "refused requests write no audit rows");
    assert!(info.config.max_bytes > 0 && info.state.bytes < info.config.max_bytes as u64);
    assert!(
        info.state.bytes < 4 * 1024 * 1024,
        "the flood's 120 MB left {} bytes",
        info.state.bytes
    );
}
