//! Ingest and router at Twilio fidelity: what Twilio really sends is
//! accepted, anything else refused clearly, every request audited, nothing
//! accepted lost or doubled — also with PostgreSQL down.

use std::time::Duration;

use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use twilio_sim::InboundSpec;
use waiter_e2e::{Options, Pipeline};
use waiter_harness::eventually;
use waiter_nats::StreamKind;

const WAIT: Duration = Duration::from_secs(30);

fn sid(n: u128) -> String {
    format!("SM{n:032x}")
}

async fn audit_outcome(
    p: &Pipeline,
    message_sid: &str,
    outcome: &str,
) -> (Option<uuid::Uuid>, Option<String>) {
    eventually(&format!("an audit row {outcome} for {message_sid}"), WAIT, || async {
        sqlx::query_as::<_, (Option<uuid::Uuid>, Option<String>)>(
            "SELECT restaurant_id, reason FROM webhook_audit WHERE message_sid = $1 AND outcome = $2",
        )
        .bind(message_sid)
        .bind(outcome)
        .fetch_optional(p.env.pool())
        .await
        .unwrap()
    })
    .await
}

/// The sample ingest kept of a request it refused (or found duplicate), by
/// the request's MessageSid: (its `To`, its reason).
async fn refusal_sample(p: &Pipeline, message_sid: &str, outcome: &str) -> (String, String) {
    eventually(&format!("a {outcome} sample for {message_sid}"), WAIT, || async {
        sqlx::query_as::<_, (String, String)>(
            "SELECT s->>'to', s->>'reason' FROM webhook_refusals r, jsonb_array_elements(r.samples) s \
             WHERE r.outcome = $2 AND s->>'message_sid' = $1",
        )
        .bind(message_sid)
        .bind(outcome)
        .fetch_optional(p.env.pool())
        .await
        .unwrap()
    })
    .await
}

async fn stored(p: &Pipeline, message_sid: &str) -> i64 {
    p.count(
        "SELECT count(*) FROM messages WHERE wa_sid = $1",
        message_sid,
    )
    .await
}

#[tokio::test]
async fn randomized_whatsapp_forms_are_accepted_byte_exact() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let mut rng = StdRng::seed_from_u64(7);
    let pieces = [
        "مرحبا",
        "🌯",
        "a+b",
        "100%",
        "&",
        "=",
        "",
        " ",
        "٢",
        "\n",
        "✓✓",
    ];
    let mut sids = vec![];
    for i in 0..12u128 {
        let body: String = (0..rng.gen_range(0..40))
            .map(|_| *pieces.choose(&mut rng).unwrap())
            .collect();
        let mut spec = InboundSpec::text(
            &r.account_sid,
            format!("whatsapp:+9665{:08}", i),
            &r.number,
            body.clone(),
        )
        .with_message_sid(sid(0xf1d0 + i));
        if i % 3 == 0 {
            spec = spec
                .with_param("ButtonPayload", "")
                .with_param("Forwarded", "true");
        }
        if i % 4 == 0 {
            // A WhatsApp username sender: no phone number at all.
            spec.from = format!("whatsapp:user.{i}");
        }
        let answer = p.sim.send_inbound(spec).await.unwrap();
        assert_eq!(answer.status, 200, "{body:?}: {}", answer.body);
        sids.push((answer.message_sid, body));
    }
    // A 1600+ character Arabic body with emoji arrives unchanged.
    let long: String = "مرحبا بكم 👋 ".repeat(150);
    assert!(long.chars().count() > 1600);
    let answer = p
        .sim
        .send_inbound(InboundSpec::text(
            &r.account_sid,
            "whatsapp:+966500000999",
            &r.number,
            long.clone(),
        ))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    sids.push((answer.message_sid, long));
    for (message_sid, body) in sids {
        let stored_body: String = eventually("the message stored", WAIT, || async {
            sqlx::query_scalar("SELECT body FROM messages WHERE wa_sid = $1")
                .bind(&message_sid)
                .fetch_optional(p.env.pool())
                .await
                .unwrap()
        })
        .await;
        assert_eq!(stored_body, body, "byte-exact");
    }
}

#[tokio::test]
async fn every_outcome_is_answered_audited_and_published_or_not() {
    // No simulated callbacks for the bot's replies: the only status
    // callbacks on the stream are the ones this test posts.
    let p = Pipeline::start_with(Options {
        status_callbacks: twilio_sim::StatusCallbackMode::Off,
        ..Options::default()
    })
    .await;
    let r = p.restaurant(0);
    let url = format!("http://{}/whatsapp/webhook", p.ingest);

    // Duplicate: 200 both times, stored once, the second audited as duplicate.
    let dup = InboundSpec::text(&r.account_sid, "whatsapp:+966500000001", &r.number, "hi")
        .with_message_sid(sid(1));
    assert_eq!(p.sim.send_inbound(dup.clone()).await.unwrap().status, 200);
    assert_eq!(p.sim.send_inbound(dup).await.unwrap().status, 200);
    audit_outcome(&p, &sid(1), "accepted").await;
    refusal_sample(&p, &sid(1), "duplicate").await;
    eventually("the message stored", WAIT, || async {
        (stored(&p, &sid(1)).await == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stored(&p, &sid(1)).await, 1, "stored once");

    // Unknown account: the signature cannot be checked → 403, not published.
    let stranger = "AC99999999999999999999999999999999";
    let params = twilio_sim::customer::inbound_params(
        &InboundSpec::text(stranger, "whatsapp:+966500000002", &r.number, "hi"),
        &sid(2),
    );
    let signature = twilio_sim::signature::sign("whatever", &url, &params);
    let answer = p
        .sim
        .post_webhook_raw(&url, params, Some(signature))
        .await
        .unwrap();
    assert_eq!(answer.status, 403);
    let (to, reason) = refusal_sample(&p, &sid(2), "unknown_account").await;
    assert_eq!(to, r.number, "the sample names the number written to");
    assert!(reason.contains("unknown account"));

    // Unknown number: a known account writing to a number no restaurant has → 200, audited, dropped.
    let answer = p
        .sim
        .send_inbound(
            InboundSpec::text(
                &r.account_sid,
                "whatsapp:+966500000003",
                "whatsapp:+10000000000",
                "hi",
            )
            .with_message_sid(sid(3)),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let (restaurant, _) = audit_outcome(&p, &sid(3), "unknown_number").await;
    assert_eq!(restaurant, None);
    assert_eq!(stored(&p, &sid(3)).await, 0);

    // Malformed: signed correctly but without From → 400 naming it, audited, not published.
    let mut params = twilio_sim::customer::inbound_params(
        &InboundSpec::text(&r.account_sid, "whatsapp:+966500000004", &r.number, "hi"),
        &sid(4),
    );
    params.retain(|(k, _)| k != "From");
    let signature = p.sim.signed_params(&r.account_sid, &url, &params);
    let answer = p
        .sim
        .post_webhook_raw(&url, params, Some(signature))
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("From"), "{}", answer.body);
    let (_, reason) = refusal_sample(&p, &sid(4), "malformed").await;
    assert!(reason.contains("From"));
    assert_eq!(stored(&p, &sid(4)).await, 0);

    // Status callbacks: 204, deduplicated by MessageSid + status.
    let status_url = format!("http://{}/whatsapp/status", p.ingest);
    let callback: Vec<(String, String)> = [
        ("MessageSid", sid(5).as_str()),
        ("MessageStatus", "delivered"),
        ("AccountSid", r.account_sid.as_str()),
        ("From", r.number.as_str()),
        ("To", "whatsapp:+966500000005"),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signature = p.sim.signed_params(&r.account_sid, &status_url, &callback);
    for _ in 0..2 {
        let answer = p
            .sim
            .post_webhook_raw(&status_url, callback.clone(), Some(signature.clone()))
            .await
            .unwrap();
        assert_eq!(answer.status, 204);
    }
    let published = status_callbacks_published(&p).await;
    assert_eq!(published, 1, "the repeated callback is stored once");
}

async fn status_callbacks_published(p: &Pipeline) -> u64 {
    let filter = p.env.bus.bus.topology().status_callback();
    p.published_on(StreamKind::Ingest, filter).await
}

#[tokio::test]
async fn when_jetstream_cannot_take_a_webhook_twilio_gets_503_to_retry() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let bus = &p.env.bus.bus;
    bus.jetstream()
        .delete_stream(bus.topology().stream_name(StreamKind::Ingest))
        .await
        .unwrap();
    let spec = InboundSpec::text(&r.account_sid, "whatsapp:+966500000010", &r.number, "hi")
        .with_message_sid(sid(10));
    let answer = p.sim.send_inbound(spec.clone()).await.unwrap();
    assert_eq!(answer.status, 503, "{}", answer.body);
    // Twilio retries once the broker is back: accepted and processed once.
    bus.ensure_streams(&[StreamKind::Ingest]).await.unwrap();
    assert_eq!(p.sim.send_inbound(spec).await.unwrap().status, 200);
}

#[tokio::test]
async fn a_new_auth_token_takes_effect_within_seconds_without_restarts() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let old = InboundSpec::text(&r.account_sid, "whatsapp:+966500000020", &r.number, "hi");
    assert_eq!(p.sim.send_inbound(old.clone()).await.unwrap().status, 200);

    // As `waiterctl restaurant update --auth-token` writes it: sealed.
    let patch = waiter_migrations::restaurants::RestaurantPatch {
        twilio_auth_token: Some(waiter_migrations::restaurants::seal_auth_token(
            waiter_harness::Keyring::for_tests(),
            &r.account_sid,
            "rotated-token-1",
        )),
        ..Default::default()
    };
    let slug = waiter_migrations::restaurants::by_id(p.env.pool(), r.id)
        .await
        .unwrap()
        .unwrap()
        .slug;
    waiter_migrations::restaurants::update(p.env.pool(), &slug, &patch)
        .await
        .unwrap();
    p.sim.add_account(&r.account_sid, "rotated-token-1");
    let started = std::time::Instant::now();
    eventually(
        "webhooks signed with the new token accepted",
        Duration::from_secs(10),
        || async {
            let answer = p.sim.send_inbound(old.clone()).await.unwrap();
            (answer.status == 200).then_some(())
        },
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    // And the old token no longer passes.
    let url = format!("http://{}/whatsapp/webhook", p.ingest);
    let params = twilio_sim::customer::inbound_params(&old, &sid(21));
    let signature = twilio_sim::signature::sign(&r.auth_token, &url, &params);
    assert_eq!(
        p.sim
            .post_webhook_raw(&url, params, Some(signature))
            .await
            .unwrap()
            .status,
        403
    );
}

#[tokio::test]
async fn with_postgres_down_webhooks_are_accepted_and_processed_once_when_it_returns() {
    let p = Pipeline::start_with(Options {
        postgres_proxy: true,
        ..Options::default()
    })
    .await;
    let r = p.restaurant(0);
    let proxy = p.postgres.as_ref().unwrap();
    // Warm: the stages have connected once.
    let first = p
        .sim
        .send_inbound(InboundSpec::text(
            &r.account_sid,
            "whatsapp:+966500000030",
            &r.number,
            "hello",
        ))
        .await
        .unwrap();
    assert_eq!(first.status, 200);
    assert!(!p
        .sim
        .wait_for_sent("whatsapp:+966500000030", 1, WAIT)
        .await
        .is_empty());

    proxy.cut();
    let customers: Vec<String> = (0..5)
        .map(|i| format!("whatsapp:+96650000004{i}"))
        .collect();
    let mut burst = vec![];
    for round in 0..4 {
        for c in &customers {
            let spec = InboundSpec::text(
                &r.account_sid,
                c,
                &r.number,
                ["hello", "menu", "help", "hi"][round],
            );
            let answer = p.sim.send_inbound(spec).await.unwrap();
            assert_eq!(answer.status, 200, "accepted while PostgreSQL is down");
            burst.push(answer.message_sid);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for message_sid in &burst {
        assert_eq!(
            stored(&p, message_sid).await,
            0,
            "nothing can be stored while it is down"
        );
    }

    proxy.restore();
    for message_sid in &burst {
        eventually(
            "every message of the burst stored",
            Duration::from_secs(60),
            || async { (stored(&p, message_sid).await == 1).then_some(()) },
        )
        .await;
    }
    for c in &customers {
        let decided: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.customer = $1 AND m.direction = 'out'",
        )
        .bind(c)
        .fetch_one(p.env.pool())
        .await
        .unwrap();
        assert!(decided >= 4, "each message answered");
        let sent = p.sim.wait_for_sent(c, decided as usize, WAIT).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(p.sim.sent_to(c).len(), sent.len());
        assert_eq!(sent.len() as i64, decided, "answered once each");
    }
}
