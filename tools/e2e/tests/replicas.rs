//! Invariant 3 with two conversation replicas: per conversation, messages
//! are handled in arrival order and the replies leave in the order they
//! were decided, whichever replica handles which message.

use std::time::Duration;

use futures::future::join_all;
use twilio_sim::InboundSpec;
use waiter_e2e::Pipeline;
use waiter_harness::eventually;
use waiter_nats::{worker::assignment::desired_owner, Bus};

const WAIT: Duration = Duration::from_secs(60);

/// Texts the bot always answers without handing over (a greeting, "menu",
/// help with the pending question again, "start over").
const TEXTS: [&str; 8] = [
    "hello",
    "menu",
    "help",
    "hi",
    "start over",
    "hello",
    "help",
    "menu",
];

fn customer(n: u32) -> String {
    format!("whatsapp:+9665{:08}", n)
}

/// Who holds each partition of the conversation stage, by its lease.
#[derive(Debug, sqlx::FromRow)]
struct Reply {
    inbound_sid: String,
    reply_index: i32,
    wa_sid: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_conversation_replicas_keep_each_conversations_order() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let pool = p.env.pool();

    // One replica holds every partition until a second one joins.
    let first = waiter_e2e::sole_owner(&p.env.bus.bus, "conversation", WAIT).await;
    // The second replica, on a connection of its own as a second process
    // would have: what it publishes is then counted apart from the first's.
    // Its id is one that rendezvous hashing gives some partitions, not all.
    let topology = p.env.bus.bus.topology().clone();
    let customers: Vec<String> = (1..=3).map(customer).collect();
    let partitions_of: Vec<u16> = customers
        .iter()
        .map(|c| topology.conversation_partition(&r.id, c))
        .collect();
    let wins =
        |id: &str, n: u16| desired_owner("conversation", n, [first.as_str(), id]) == Some(id);
    let second = (0..)
        .map(|i| format!("conversation-b{i}"))
        .find(|id| {
            partitions_of.iter().any(|&n| wins(id, n))
                && !partitions_of.iter().all(|&n| wins(id, n))
        })
        .unwrap();
    let mut config = p.env.bus.config.clone();
    config.worker.replica_id = Some(second.clone());
    let second_bus = Bus::connect(&config, "conversation-b")
        .await
        .expect("second connection");
    let second_ops = conversation::start(
        conversation::Config::for_tests(&p.env.db.url),
        second_bus.clone(),
        waiter_runtime::db::lazy_pool(&p.env.db.url, 8).expect("pool"),
        p.env.shutdown.clone(),
    )
    .await
    .expect("second conversation replica")
    .addr;
    // The partitions spread: each is held by one replica, both hold some.
    eventually("the partitions spread over both replicas", WAIT, || async {
        let owners = waiter_e2e::lease_owners(&p.env.bus.bus, "conversation").await;
        (owners.iter().all(Option::is_some)
            && owners.iter().any(|o| o.as_deref() == Some(second.as_str()))
            && owners.iter().any(|o| o.as_deref() == Some(first.as_str())))
        .then_some(())
    })
    .await;
    // Three customers, each posting 8 messages in order, all at once; at
    // least one of them is on a partition of each replica.
    let bursts = customers.iter().enumerate().map(|(c, from)| {
        let p = &p;
        async move {
            let mut sids = vec![];
            for text in TEXTS {
                let spec = InboundSpec::text(&r.account_sid, from, &r.number, text)
                    .with_profile_name(format!("Customer {c}"));
                let answer = p.sim.send_inbound(spec).await.expect("webhook");
                assert_eq!(answer.status, 200, "{}", answer.body);
                sids.push(answer.message_sid);
            }
            sids
        }
    });
    let sent_sids: Vec<Vec<String>> = join_all(bursts).await;

    for (from, sids) in customers.iter().zip(&sent_sids) {
        // Every message stored once, in the order it was sent: `seq` is
        // the order rows were written in (a batch shares one created_at).
        let inbound: Vec<(String, String)> = eventually(
            &format!("the 8 messages of {from} are stored"),
            WAIT,
            || async {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT m.wa_sid, m.body FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                     WHERE c.restaurant_id = $1 AND c.customer = $2 AND m.direction = 'in' \
                     ORDER BY m.seq",
                )
                .bind(r.id)
                .bind(from)
                .fetch_all(pool)
                .await
                .unwrap();
                (rows.len() >= TEXTS.len()).then_some(rows)
            },
        )
        .await;
        let handled: Vec<&str> = inbound.iter().map(|(sid, _)| sid.as_str()).collect();
        assert_eq!(handled, *sids, "{from}: handled out of order");
        let bodies: Vec<&str> = inbound.iter().map(|(_, body)| body.as_str()).collect();
        assert_eq!(bodies, TEXTS);
        // No ties to hide behind: a window handled in one transaction
        // shares one created_at, so the order is `seq`, each one distinct.
        let distinct_seqs: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT m.seq) FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.restaurant_id = $1 AND c.customer = $2 AND m.direction = 'in'",
        )
        .bind(r.id)
        .bind(from)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(
            distinct_seqs,
            TEXTS.len() as i64,
            "{from}: one row per message"
        );

        // Every message answered, and every decided reply accepted by
        // "Twilio" exactly once.
        let replies: Vec<Reply> = eventually(
            &format!("every reply to {from} reached the simulator"),
            WAIT,
            || async {
                let rows: Vec<Reply> = sqlx::query_as(
                    "SELECT i.wa_sid AS inbound_sid, o.reply_index, o.wa_sid FROM messages o \
                     JOIN messages i ON i.id = o.reply_to \
                     JOIN conversations c ON c.id = o.conversation_id \
                     WHERE c.restaurant_id = $1 AND c.customer = $2 AND o.direction = 'out'",
                )
                .bind(r.id)
                .bind(from)
                .fetch_all(pool)
                .await
                .unwrap();
                let answered = sids
                    .iter()
                    .all(|sid| rows.iter().any(|row| &row.inbound_sid == sid));
                let sent = p.sim.sent_to(from).len();
                (answered && rows.iter().all(|row| row.wa_sid.is_some()) && sent >= rows.len())
                    .then_some(rows)
            },
        )
        .await;
        for (sid, text) in sids.iter().zip(TEXTS) {
            let n = replies.iter().filter(|row| &row.inbound_sid == sid).count();
            let expected = if text == "help" { 2 } else { 1 };
            assert_eq!(n, expected, "{from}: replies to {text:?}");
        }
        let sent = p.sim.sent_to(from);
        assert_eq!(
            sent.len(),
            replies.len(),
            "{from}: a reply sent twice or unrecorded"
        );

        // The order "Twilio" received them in is the order they were
        // decided in: by the message they answer, then within its answer.
        let decided = |sid: &str| {
            let row = replies
                .iter()
                .find(|row| row.wa_sid.as_deref() == Some(sid))
                .unwrap_or_else(|| panic!("{from}: {sid} sent but not recorded"));
            let position = sids.iter().position(|s| s == &row.inbound_sid).unwrap();
            (position, row.reply_index)
        };
        let received: Vec<(usize, i32)> = sent.iter().map(|m| decided(&m.sid)).collect();
        let mut in_decided_order = received.clone();
        in_decided_order.sort();
        assert_eq!(received, in_decided_order, "{from}: replies out of order");
        in_decided_order.dedup();
        assert_eq!(in_decided_order.len(), received.len());
    }

    // The second replica took its share: its own status counts what it
    // acknowledged (at least the 8 messages of a customer on its partitions).
    let status: serde_json::Value = reqwest::get(format!("http://{second_ops}/status"))
        .await
        .expect("GET /status")
        .json()
        .await
        .expect("status JSON");
    assert_eq!(status["replica"], second.as_str());
    let handled = status["handled"].as_u64().unwrap_or(0);
    assert!(
        handled >= TEXTS.len() as u64,
        "the second replica handled {handled} messages: {status}"
    );
}
