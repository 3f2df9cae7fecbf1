//! Invariant 3 with two conversation replicas: per conversation, messages
//! are handled in arrival order and the replies leave in the order they
//! were decided, whichever replica handles which message.

use std::{sync::atomic::Ordering, time::Duration};

use futures::future::join_all;
use twilio_sim::InboundSpec;
use waiter_e2e::Pipeline;
use waiter_harness::eventually;
use waiter_nats::{Bus, StreamKind};

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

/// How many messages are waiting on each partition consumer of the
/// conversation stage (one pending pull request per live replica).
async fn pullers(bus: &Bus) -> Vec<usize> {
    let topology = bus.topology();
    let stream = bus
        .jetstream()
        .get_stream(topology.stream_name(StreamKind::Conversation))
        .await
        .unwrap();
    let mut waiting = vec![];
    for partition in 0..topology.partitions() {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .get_consumer(&topology.partition_consumer("conversation", partition))
            .await
            .unwrap();
        waiting.push(consumer.info().await.unwrap().num_waiting);
    }
    waiting
}

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

    // The second replica, on a connection of its own as a second process
    // would have: what it publishes is then counted apart from the first's.
    let second_bus = Bus::connect(&p.env.bus.config, "conversation-b")
        .await
        .expect("second connection");
    conversation::start(
        conversation::Config::for_tests(&p.env.db.url),
        second_bus.clone(),
        waiter_runtime::db::lazy_pool(&p.env.db.url, 8).expect("pool"),
        p.env.shutdown.clone(),
    )
    .await
    .expect("second conversation replica");
    // Both replicas pull from every partition.
    eventually(
        "two pending pulls on every conversation partition",
        WAIT,
        || async {
            let waiting = pullers(&p.env.bus.bus).await;
            waiting.iter().all(|&n| n >= 2).then_some(())
        },
    )
    .await;
    let stats = second_bus.client().statistics();
    let published_before = stats.out_messages.load(Ordering::Relaxed);

    // Three customers, each posting 8 messages in order, all at once.
    let customers: Vec<String> = (1..=3).map(customer).collect();
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
        // Every message stored once, in the order it was sent: each inbound
        // row's created_at is its handling transaction's start, and the
        // handling of one message starts after the previous one committed.
        let inbound: Vec<(String, String)> = eventually(
            &format!("the 8 messages of {from} are stored"),
            WAIT,
            || async {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT m.wa_sid, m.body FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                     WHERE c.restaurant_id = $1 AND c.customer = $2 AND m.direction = 'in' \
                     ORDER BY m.created_at, m.id",
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
        let distinct_times: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT m.created_at) FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.restaurant_id = $1 AND c.customer = $2 AND m.direction = 'in'",
        )
        .bind(r.id)
        .bind(from)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(
            distinct_times,
            TEXTS.len() as i64,
            "{from}: ties in handling order"
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

    // The second replica took its share: each message it handles costs at
    // least four publishes on its connection (the ack, the reply, the
    // message.received and conversation.updated events), where idle it
    // only renews a pull request per partition now and then.
    let published = stats.out_messages.load(Ordering::Relaxed) - published_before;
    assert!(
        published >= 20,
        "the second replica published {published} messages: it handled (almost) nothing"
    );
}
