//! Onboarding through the whole pipeline: auth tokens never at rest in the
//! clear (a database dump and every stream message are searched), key
//! rotation with ingest running, a disabled restaurant, and opening hours
//! (the bot and the order stage).

use std::time::Duration;

use base64::{engine::general_purpose::STANDARD, Engine};
use chrono::Utc;
use secrecy::ExposeSecret;
use twilio_sim::InboundSpec;
use uuid::Uuid;
use waiter_e2e::{Options, Pipeline};
use waiter_harness::{eventually, Keyring};
use waiter_hours::{Closure, Schedule};
use waiter_migrations::{branches, restaurants};
use waiter_nats::{
    messages::{
        Actor, CartLine, Fulfilment, OrderAction, OrderCommand, OrderStatus, PaymentMethod,
    },
    Envelope, StreamKind,
};

const WAIT: Duration = Duration::from_secs(20);

fn customer(n: u32) -> String {
    format!("whatsapp:+9665{:08}", n)
}

/// The forms a token could leak in: as is, base64, hex, and Basic auth.
fn leak_forms(account_sid: &str, token: &str) -> Vec<Vec<u8>> {
    let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        token.as_bytes().to_vec(),
        STANDARD.encode(token).into_bytes(),
        STANDARD
            .encode(token)
            .trim_end_matches('=')
            .as_bytes()
            .to_vec(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
        STANDARD
            .encode(format!("{account_sid}:{token}"))
            .into_bytes(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn say(p: &Pipeline, restaurant: usize, from: &str, body: &str) -> usize {
    let r = p.restaurant(restaurant);
    let before = p.sim.sent_to(from).len();
    let answer = p
        .sim
        .send_inbound(InboundSpec::text(&r.account_sid, from, &r.number, body))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    before
}

/// The replies `from` got after `before` of them.
async fn replies_after(p: &Pipeline, from: &str, before: usize) -> String {
    let sent = p.sim.wait_for_sent(from, before + 1, WAIT).await;
    sent[before..]
        .iter()
        .filter_map(|m| m.body.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn no_auth_token_is_in_a_database_dump_or_in_any_stream_message() {
    let p = Pipeline::start_with(Options {
        restaurants: vec![("alpha", "en"), ("beta", "ar")],
        ..Options::default()
    })
    .await;
    for (i, n) in [(0, 1), (1, 2)] {
        let from = customer(n);
        let before = say(&p, i, &from, "hi").await;
        replies_after(&p, &from, before).await;
    }
    // A refused request too (its parameters are audited).
    let r = p.restaurant(0);
    let url = format!("http://{}/whatsapp/webhook", p.ingest);
    let spec = InboundSpec::text(&r.account_sid, customer(3), &r.number, "forged");
    let params = twilio_sim::customer::inbound_params(&spec, "SM00000000000000000000000000000099");
    let refused = p
        .sim
        .post_webhook_raw(&url, params, Some("forged".into()))
        .await
        .unwrap();
    assert_eq!(refused.status, 403);
    // The router has put every account in the directory.
    eventually("both accounts in the directory", WAIT, || async {
        (p.published_on(
            StreamKind::Directory,
            p.env
                .bus
                .bus
                .topology()
                .stream_subjects(StreamKind::Directory),
        )
        .await
            >= 2)
            .then_some(())
    })
    .await;

    let dump = std::process::Command::new("pg_dump")
        .arg("--dbname")
        .arg(&p.env.db.url)
        .output()
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = dump.stdout;
    assert!(
        contains(&dump, p.restaurant(1).account_sid.as_bytes()),
        "the dump holds the restaurants"
    );
    assert!(contains(&dump, b"twilio_auth_token_sealed"));

    let messages = p.every_stream_message().await;
    assert!(messages.len() >= 10, "only {} messages", messages.len());
    assert!(
        messages
            .iter()
            .any(|m| contains(m, p.restaurant(0).account_sid.as_bytes())),
        "the search reaches the messages that name the account"
    );
    for r in &p.restaurants {
        for form in leak_forms(&r.account_sid, &r.auth_token) {
            assert!(
                !contains(&dump, &form),
                "{}'s token is in the dump",
                r.account_sid
            );
            for m in &messages {
                assert!(
                    !contains(m, &form),
                    "{}'s token is in a stream message",
                    r.account_sid
                );
            }
        }
    }
}

#[tokio::test]
async fn rotation_reseals_every_token_and_signatures_verify_without_restarting_ingest() {
    let test_key = Keyring::for_tests().to_env_value();
    let new_entry = waiter_secrets::generate_key_entry("k2");
    let both =
        Keyring::from_value(Some(&format!("{new_entry},{}", test_key.expose_secret()))).unwrap();
    let only_new = Keyring::from_value(Some(&new_entry)).unwrap();
    let p = Pipeline::start_with(Options {
        restaurants: vec![("alpha", "en"), ("beta", "en")],
        secret_keys: Some(both.clone()),
        ..Options::default()
    })
    .await;
    let from = customer(10);
    let before = say(&p, 0, &from, "hi").await;
    replies_after(&p, &from, before).await;

    // `waiterctl secrets rotate`, as a library: every token under k2.
    let pool = p.env.pool();
    for (id, _) in restaurants::needing_reseal(pool, "k2").await.unwrap() {
        assert!(restaurants::reseal(pool, &both, id).await.unwrap());
    }
    let census = restaurants::token_census(pool).await.unwrap();
    assert_eq!(census.by_key, vec![("k2".to_string(), 2)]);
    // The router republishes the new sealing; the directory holds only k2.
    let topology = p.env.bus.bus.topology().clone();
    eventually("the directory re-sealed under k2", WAIT, || async {
        let entries: Vec<_> = p
            .every_stream_message()
            .await
            .into_iter()
            .filter(|m| {
                m.starts_with(
                    topology
                        .stream_subjects(StreamKind::Directory)
                        .trim_end_matches('>')
                        .as_bytes(),
                )
            })
            .collect();
        let keys: Vec<String> = p
            .restaurants
            .iter()
            .map(|r| r.account_sid.clone())
            .filter(|sid| entries.iter().any(|m| contains(m, sid.as_bytes())))
            .collect();
        (keys.len() == 2
            && entries
                .iter()
                .all(|m| contains(m, b"k2") && !contains(m, b"\xa4test")))
        .then_some(())
    })
    .await;

    // The running ingest verifies signatures as before; outbound still sends.
    let from = customer(11);
    let before = say(&p, 1, &from, "hi").await;
    replies_after(&p, &from, before).await;

    // The old key is no longer needed: an ingest with k2 alone verifies, and
    // every token opens with k2 alone.
    let mut config = ingest::Config::for_tests();
    config.secret_keys = only_new.clone();
    let fresh = ingest::start(config, p.env.bus.bus.clone(), p.env.shutdown.clone())
        .await
        .unwrap();
    let r = p.restaurant(0);
    let url = format!("http://{}/whatsapp/webhook", fresh.addr);
    let spec = InboundSpec::text(&r.account_sid, customer(12), &r.number, "hello");
    let params = twilio_sim::customer::inbound_params(&spec, "SM00000000000000000000000000000042");
    let signature = twilio_sim::signature::sign(&r.auth_token, &url, &params);
    let answer = p
        .sim
        .post_webhook_raw(&url, params, Some(signature))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    for r in &p.restaurants {
        let stored = restaurants::by_id(pool, r.id).await.unwrap().unwrap();
        assert_eq!(
            stored.open_auth_token(&only_new).unwrap().expose_secret(),
            r.auth_token
        );
    }
}

/// Sends from new customers until a message gets `outcome` in the audit
/// (the router's restaurant cache lives half a second in tests); returns
/// that customer.
async fn until_audited(p: &Pipeline, outcome: &str, first: u32) -> String {
    let mut n = first;
    eventually(&format!("a message audited as {outcome}"), WAIT, || {
        n += 1;
        let from = customer(n);
        async move {
            let r = p.restaurant(0);
            let answer = p
                .sim
                .send_inbound(InboundSpec::text(
                    &r.account_sid,
                    &from,
                    &r.number,
                    "are you there?",
                ))
                .await
                .unwrap();
            assert_eq!(answer.status, 200, "ingest still accepts: {}", answer.body);
            let audited = eventually("the audit row", WAIT, || async {
                sqlx::query_scalar::<_, String>(
                    "SELECT outcome FROM webhook_audit WHERE message_sid = $1",
                )
                .bind(&answer.message_sid)
                .fetch_optional(p.env.pool())
                .await
                .unwrap()
            })
            .await;
            (audited == outcome).then_some(from)
        }
    })
    .await
}

#[tokio::test]
async fn a_disabled_restaurant_is_neither_routed_nor_answered_and_keeps_its_history() {
    let p = Pipeline::start().await;
    let from = customer(20);
    let before = say(&p, 0, &from, "hi").await;
    replies_after(&p, &from, before).await;
    let slug = restaurants::by_id(p.env.pool(), p.restaurant(0).id)
        .await
        .unwrap()
        .unwrap()
        .slug;
    assert!(restaurants::set_disabled(p.env.pool(), &slug, true)
        .await
        .unwrap());
    let refused = until_audited(&p, "disabled", 100).await;
    let stored = p
        .count(
            "SELECT count(*) FROM conversations WHERE customer = $1",
            &refused,
        )
        .await;
    assert_eq!(stored, 0, "not routed");
    assert_eq!(
        p.count("SELECT count(*) FROM messages WHERE body = $1", "hi")
            .await,
        1,
        "history kept"
    );
    assert!(p.sim.sent_to(&refused).is_empty(), "not answered");
    restaurants::set_disabled(p.env.pool(), &slug, false)
        .await
        .unwrap();
    let answered = until_audited(&p, "accepted", 200).await;
    replies_after(&p, &answered, 0).await;
}

/// Closes every branch of restaurant 0 today (local time), open the rest of the time.
async fn close_today(p: &Pipeline) {
    let tz: chrono_tz::Tz = "Asia/Riyadh".parse().unwrap();
    let today = Utc::now().with_timezone(&tz).date_naive();
    for b in branches::list(p.env.pool(), p.restaurant(0).id, false)
        .await
        .unwrap()
    {
        let patch = branches::BranchPatch {
            schedule: Some(Schedule {
                weekly: vec![],
                closures: vec![Closure {
                    from: today,
                    to: today,
                    note: None,
                }],
            }),
            ..Default::default()
        };
        branches::update(p.env.pool(), p.restaurant(0).id, &b.code, &patch)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_customer_writing_while_the_branches_are_closed_is_told_when_they_open() {
    let p = Pipeline::start().await;
    close_today(&p).await;
    let from = customer(30);
    let before = say(&p, 0, &from, "hi").await;
    let text = replies_after(&p, &from, before).await;
    assert!(
        text.contains("closed right now") && text.contains("opens tomorrow at 00:00"),
        "{text}"
    );
    let before = say(&p, 0, &from, "pickup").await;
    let text = replies_after(&p, &from, before).await;
    assert!(text.contains("closed"), "{text}");
    assert_eq!(
        p.count(
            "SELECT count(*) FROM orders WHERE restaurant_id::text = $1",
            &p.restaurant(0).id.to_string()
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_placement_for_a_closed_branch_is_refused_and_the_customer_told_why() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let from = customer(40);
    let before = say(&p, 0, &from, "hi").await;
    replies_after(&p, &from, before).await;
    close_today(&p).await;
    // What the conversation stage sends when the bot places an order: the
    // placement and its confirmation, decided while the branch was open a
    // moment ago, reaching the order stage after it closed.
    let pool = p.env.pool();
    let conversation: Uuid = sqlx::query_scalar("SELECT id FROM conversations WHERE customer = $1")
        .bind(&from)
        .fetch_one(pool)
        .await
        .unwrap();
    let (branch_id, item_id): (Uuid, Uuid) = sqlx::query_as(
        "SELECT b.id, i.id FROM branches b JOIN menu_items i ON i.restaurant_id = b.restaurant_id \
         WHERE b.restaurant_id = $1 AND b.code = 'olaya' AND i.sku = 'laban'",
    )
    .bind(r.id)
    .fetch_one(pool)
    .await
    .unwrap();
    let order_id = Uuid::new_v4();
    let bus = &p.env.bus.bus;
    let topology = bus.topology();
    let subject = topology.order_command(topology.order_partition(&order_id));
    for action in [
        OrderAction::Place {
            conversation_id: conversation,
            fulfilment: Fulfilment::Pickup,
            branch_id: Some(branch_id),
            address: None,
            payment: PaymentMethod::Cash,
            lines: vec![CartLine {
                item_id,
                quantity: 2,
            }],
        },
        OrderAction::Transition {
            to: OrderStatus::Confirmed,
            reason: None,
        },
    ] {
        let command = OrderCommand {
            command_id: Uuid::new_v4(),
            restaurant_id: r.id,
            order_id,
            actor: Actor::Customer(from.clone()),
            action,
            reply_to: None,
        };
        let id = format!("order-command:{}", command.command_id);
        bus.publish(subject.clone(), &Envelope::new(id, "test-trace", command))
            .await
            .unwrap();
    }
    let before = p.sim.sent_to(&from).len();
    let text = replies_after(&p, &from, before).await;
    assert!(
        text.contains(
            "couldn't place your order: our Olaya branch has closed. It opens tomorrow at 00:00"
        ),
        "{text}"
    );
    let reason: String =
        sqlx::query_scalar("SELECT reason FROM refused_orders WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(reason.contains("Olaya is closed"), "{reason}");
    assert_eq!(
        p.count(
            "SELECT count(*) FROM orders WHERE id::text = $1",
            &order_id.to_string()
        )
        .await,
        0
    );
    // The confirmation after it is answered, not dead-lettered.
    let dlq = topology.stream_subjects(StreamKind::DeadLetter);
    bus.ensure_streams(&[StreamKind::DeadLetter]).await.unwrap();
    assert_eq!(p.published_on(StreamKind::DeadLetter, dlq).await, 0);
    // The customer has their cart back.
    let dialogue: serde_json::Value =
        sqlx::query_scalar("SELECT dialogue FROM conversations WHERE id = $1")
            .bind(conversation)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(dialogue["cart"][0]["quantity"], 2, "{dialogue}");
}
