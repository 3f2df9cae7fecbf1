//! One customer message through all six stages, on real NATS and
//! PostgreSQL, with the Twilio simulator on both sides.

use std::time::Duration;

use twilio_sim::InboundSpec;
use waiter_e2e::Pipeline;
use waiter_harness::eventually;
use waiter_nats::StreamKind;

const WAIT: Duration = Duration::from_secs(20);

fn customer(n: u32) -> String {
    format!("whatsapp:+9665{:08}", n)
}

#[tokio::test]
async fn a_customer_message_is_stored_answered_and_shown_on_the_dashboard() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let mut dashboard = p.dashboard(0).await;
    let from = customer(1);

    let answer = p
        .sim
        .send_inbound(
            InboundSpec::text(&r.account_sid, &from, &r.number, "hello").with_profile_name("Ahmed"),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.content_type.unwrap_or_default().contains("xml"));
    assert!(
        answer.body.contains("<Response"),
        "TwiML answer: {}",
        answer.body
    );

    // The bot's reply reached "Twilio", sent with the restaurant's account and number.
    let sent = p.sim.wait_for_sent(&from, 1, WAIT).await;
    assert!(!sent.is_empty(), "no reply reached the simulator");
    let reply = &sent[0];
    assert_eq!(reply.account_sid, r.account_sid);
    assert_eq!(reply.from.as_deref(), Some(r.number.as_str()));
    assert!(reply.body.is_some() || reply.content_sid.is_some());

    // Rows: the inbound message once, the reply with Twilio's sid, the conversation.
    let inbound: (String, String, String) = sqlx::query_as(
        "SELECT m.body, m.direction, c.customer_name FROM messages m JOIN conversations c ON c.id = m.conversation_id \
         WHERE m.wa_sid = $1",
    )
    .bind(&answer.message_sid)
    .fetch_one(p.env.pool())
    .await
    .unwrap();
    assert_eq!(inbound, ("hello".into(), "in".into(), "Ahmed".into()));
    let reply_status = eventually("the reply row carries Twilio's sid", WAIT, || async {
        sqlx::query_scalar::<_, String>(
            "SELECT status FROM messages WHERE wa_sid = $1 AND direction = 'out'",
        )
        .bind(&reply.sid)
        .fetch_optional(p.env.pool())
        .await
        .unwrap()
    })
    .await;
    assert!(
        ["queued", "sent", "delivered", "read"].contains(&reply_status.as_str()),
        "{reply_status}"
    );
    // Status callbacks come back signed through ingest and move it forward.
    eventually(
        "the reply is read (status callbacks applied)",
        WAIT,
        || async {
            let s: Option<String> =
                sqlx::query_scalar("SELECT status FROM messages WHERE wa_sid = $1")
                    .bind(&reply.sid)
                    .fetch_optional(p.env.pool())
                    .await
                    .unwrap();
            (s.as_deref() == Some("read")).then_some(())
        },
    )
    .await;
    let unread = p
        .count(
            "SELECT unread_count::bigint FROM conversations WHERE customer = $1",
            &from,
        )
        .await;
    assert_eq!(unread, 1);

    // The dashboard saw the message arrive and the reply leave.
    let received = dashboard
        .wait_for("message.received", WAIT)
        .await
        .expect("message.received");
    assert_eq!(received["data"]["body"], "hello");
    assert!(received["seq"].as_u64().unwrap() > 0);
    let sent_event = dashboard
        .wait_for("message.sent", WAIT)
        .await
        .expect("message.sent");
    assert_eq!(sent_event["data"]["direction"], "out");

    // Every webhook is audited.
    let audited = p
        .count(
            "SELECT count(*) FROM webhook_audit WHERE message_sid = $1 AND outcome = 'accepted'",
            &answer.message_sid,
        )
        .await;
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn the_same_webhook_three_times_is_stored_once_and_answered_once() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let mut dashboard = p.dashboard(0).await;

    // Sequential retries of one message.
    let first = customer(2);
    let spec = InboundSpec::text(&r.account_sid, &first, &r.number, "hi")
        .with_message_sid("SM00000000000000000000000000000aa1");
    for _ in 0..3 {
        assert_eq!(p.sim.send_inbound(spec.clone()).await.unwrap().status, 200);
    }
    // Concurrent retries of another.
    let second = customer(3);
    let spec2 = InboundSpec::text(&r.account_sid, &second, &r.number, "hi")
        .with_message_sid("SM00000000000000000000000000000aa2");
    let posts = (0..3).map(|_| p.sim.send_inbound(spec2.clone()));
    for answer in futures::future::join_all(posts).await {
        assert_eq!(answer.unwrap().status, 200);
    }

    for (sid, who) in [
        ("SM00000000000000000000000000000aa1", &first),
        ("SM00000000000000000000000000000aa2", &second),
    ] {
        assert!(!p.sim.wait_for_sent(who, 1, WAIT).await.is_empty());
        let stored = p
            .count("SELECT count(*) FROM messages WHERE wa_sid = $1", sid)
            .await;
        assert_eq!(stored, 1, "message {sid} stored once");
    }
    // Give a duplicate every chance to produce a second reply or event.
    let frames = dashboard.collect_for(Duration::from_secs(3)).await;
    for who in [&first, &second] {
        let replies_to = p.sim.sent_to(who);
        let rows: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.customer = $1 AND m.direction = 'out'",
        )
        .bind(who)
        .fetch_one(p.env.pool())
        .await
        .unwrap();
        assert_eq!(
            replies_to.len() as i64,
            rows,
            "every decided reply sent exactly once"
        );
        let first_reply_rows: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.customer = $1 AND m.direction = 'in'",
        )
        .bind(who)
        .fetch_one(p.env.pool())
        .await
        .unwrap();
        assert_eq!(first_reply_rows, 1);
    }
    let received: Vec<_> = frames
        .iter()
        .filter(|f| f["type"] == "message.received")
        .collect();
    assert_eq!(
        received.len(),
        2,
        "one message.received per message: {received:?}"
    );
}

/// How many inbound messages ingest published.
async fn inbound_published(p: &Pipeline) -> u64 {
    let filter = format!("{}.ingest.message.>", p.env.bus.bus.topology().namespace());
    p.published_on(StreamKind::Ingest, filter).await
}

#[tokio::test]
async fn bad_signatures_are_refused_with_403_and_nothing_is_published() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let url = format!("http://{}/whatsapp/webhook", p.ingest);
    let params = twilio_sim::customer::inbound_params(
        &InboundSpec::text(&r.account_sid, customer(4), &r.number, "hi"),
        "SM00000000000000000000000000000bb1",
    );
    // Signed with the wrong token, signed over another URL, and unsigned.
    let wrong = twilio_sim::signature::sign("not-the-token", &url, &params);
    let other_url = p.sim.signed_params(
        &r.account_sid,
        "http://elsewhere.example/whatsapp/webhook",
        &params,
    );
    for signature in [Some(wrong), Some(other_url), None] {
        let answer = p
            .sim
            .post_webhook_raw(&url, params.clone(), signature)
            .await
            .unwrap();
        assert_eq!(answer.status, 403, "{}", answer.body);
    }
    // The correct signature passes, proving the refusals were about the signature.
    let good = p.sim.signed_params(&r.account_sid, &url, &params);
    let mut tampered = params.clone();
    tampered.iter_mut().find(|(k, _)| k == "Body").unwrap().1 = "hi!".into();
    assert_eq!(
        p.sim
            .post_webhook_raw(&url, tampered, Some(good.clone()))
            .await
            .unwrap()
            .status,
        403
    );

    // Nothing of the refused requests reached the pipeline.
    assert_eq!(
        inbound_published(&p).await,
        0,
        "refused webhooks were published"
    );
    assert_eq!(
        p.count(
            "SELECT count(*) FROM messages WHERE wa_sid = $1",
            "SM00000000000000000000000000000bb1"
        )
        .await,
        0
    );

    // ... and each refusal is counted, with samples.
    let counted = eventually("four bad-signature refusals counted", WAIT, || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(count), 0)::bigint FROM webhook_refusals WHERE outcome = 'bad_signature'",
        )
        .fetch_one(p.env.pool())
        .await
        .unwrap();
        (n >= 4).then_some(n)
    })
    .await;
    assert_eq!(counted, 4);
    let reason: String = sqlx::query_scalar(
        "SELECT s->>'reason' FROM webhook_refusals r, jsonb_array_elements(r.samples) s \
         WHERE r.outcome = 'bad_signature' AND s->>'reason' LIKE '%missing%'",
    )
    .fetch_one(p.env.pool())
    .await
    .unwrap();
    assert!(reason.contains("X-Twilio-Signature"));

    // Now the good one goes through.
    assert_eq!(
        p.sim
            .post_webhook_raw(&url, params, Some(good))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(inbound_published(&p).await, 1);
}

#[tokio::test]
async fn malformed_forms_get_400_with_a_reason() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let url = format!("http://{}/whatsapp/webhook", p.ingest);
    let mut no_sid = twilio_sim::customer::inbound_params(
        &InboundSpec::text(&r.account_sid, customer(5), &r.number, "hi"),
        "SM00000000000000000000000000000cc1",
    );
    no_sid.retain(|(k, _)| k != "MessageSid");
    let signature = p.sim.signed_params(&r.account_sid, &url, &no_sid);
    let answer = p
        .sim
        .post_webhook_raw(&url, no_sid, Some(signature))
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("MessageSid"), "{}", answer.body);

    let raw = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", "x")
        .body("%zz=%%")
        .send()
        .await
        .unwrap();
    // Form decoding is lenient (as Twilio's own parsers are); what is
    // missing is named.
    assert_eq!(raw.status(), 400);
    assert!(raw.text().await.unwrap().contains("AccountSid"));

    let huge = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("Body={}", "a".repeat(200_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    assert_eq!(
        p.count("SELECT count(*) FROM messages WHERE direction = $1", "in")
            .await,
        0
    );
}

#[tokio::test]
async fn a_dashboard_sees_only_its_own_restaurant() {
    let p = Pipeline::start_with(waiter_e2e::Options {
        restaurants: vec![("alpha", "en"), ("beta", "ar")],
        ..Default::default()
    })
    .await;
    let (a, b) = (p.restaurant(0), p.restaurant(1));
    let mut dash_a = p.dashboard(0).await;
    let mut dash_b = p.dashboard(1).await;

    // A's token asking for B's channel is refused and gets nothing.
    let mut prying = waiter_harness::ws::Dashboard::connect(&p.ws_url(), &p.token(0))
        .await
        .unwrap();
    prying
        .send_json(serde_json::json!({"action": "subscribe", "channels": [format!("ws:restaurant:{}:messages", b.id)]}))
        .await;
    let refused = prying
        .wait_for("error", Duration::from_secs(5))
        .await
        .expect("an error frame");
    assert_eq!(refused["code"], "forbidden");

    let to_a = p
        .sim
        .send_inbound(InboundSpec::text(
            &a.account_sid,
            customer(6),
            &a.number,
            "for alpha",
        ))
        .await
        .unwrap();
    let to_b = p
        .sim
        .send_inbound(InboundSpec::text(
            &b.account_sid,
            customer(6),
            &b.number,
            "for beta",
        ))
        .await
        .unwrap();
    assert_eq!((to_a.status, to_b.status), (200, 200));
    assert!(dash_a.wait_for("message.received", WAIT).await.is_some());
    assert!(dash_b.wait_for("message.received", WAIT).await.is_some());
    let rest_a = dash_a.collect_for(Duration::from_secs(2)).await;
    let rest_b = dash_b.collect_for(Duration::from_secs(1)).await;
    for frame in &rest_a {
        assert_ne!(frame["data"]["body"], "for beta", "A saw B's message");
        if let Some(rid) = frame["data"]["restaurant_id"].as_str() {
            assert_eq!(rid, a.id.to_string());
        }
    }
    for frame in &rest_b {
        if let Some(rid) = frame["data"]["restaurant_id"].as_str() {
            assert_eq!(rid, b.id.to_string());
        }
    }
    let leaked = prying.collect_for(Duration::from_secs(1)).await;
    assert!(
        leaked
            .iter()
            .all(|f| !f["type"].as_str().unwrap_or("").contains('.')),
        "the prying socket received events: {leaked:?}"
    );

    // The same customer of two restaurants has two conversations.
    assert_eq!(
        p.count(
            "SELECT count(*) FROM conversations WHERE customer = $1",
            &customer(6)
        )
        .await,
        2
    );
}

#[tokio::test]
async fn a_signature_from_another_restaurants_account_cannot_inject_messages() {
    let p = Pipeline::start_with(waiter_e2e::Options {
        restaurants: vec![("alpha", "en"), ("beta", "en")],
        ..Default::default()
    })
    .await;
    let (a, b) = (p.restaurant(0), p.restaurant(1));
    // Validly signed by A's account, addressed to B's number.
    let answer = p
        .sim
        .send_inbound(InboundSpec::text(
            &a.account_sid,
            customer(7),
            &b.number,
            "sneaky",
        ))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "ingest cannot know: the router refuses");
    let outcome: String = eventually("the refusal is audited", WAIT, || async {
        sqlx::query_scalar("SELECT outcome FROM webhook_audit WHERE message_sid = $1")
            .bind(&answer.message_sid)
            .fetch_optional(p.env.pool())
            .await
            .unwrap()
    })
    .await;
    assert_eq!(outcome, "account_mismatch");
    let restaurant: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT restaurant_id FROM webhook_audit WHERE message_sid = $1")
            .bind(&answer.message_sid)
            .fetch_one(p.env.pool())
            .await
            .unwrap();
    assert_eq!(restaurant, Some(b.id));
    assert_eq!(
        p.count(
            "SELECT count(*) FROM messages WHERE wa_sid = $1",
            &answer.message_sid
        )
        .await,
        0
    );
    assert!(p.sim.sent_to(&customer(7)).is_empty());
}
