//! `kill -9` of the conversation stage between ingest's 200 and its own
//! processing: after a restart every message is processed exactly once and
//! the replies leave in the order they were decided.

use std::{process::Stdio, time::Duration};

use tokio::process::{Child, Command};
use twilio_sim::InboundSpec;
use waiter_e2e::{Options, Pipeline};
use waiter_harness::eventually;

const WAIT: Duration = Duration::from_secs(30);

fn spawn_conversation(p: &Pipeline) -> Child {
    Command::new(env!("CARGO_BIN_EXE_conversation"))
        .env("DATABASE_URL", &p.env.db.url)
        .env("NATS_URL", &p.env.bus.config.url)
        .env("WAITER_NAMESPACE", &p.env.bus.config.namespace)
        .env("WAITER_PARTITIONS", p.env.bus.config.partitions.to_string())
        .env("CONVERSATION_OPS_ADDR", "127.0.0.1:0")
        .env("OUTBOX_SWEEP_AFTER_MS", "1000")
        // A killed replica holds its partition until the ack wait runs out.
        .env("NATS_ACK_WAIT_MS", "3000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the conversation binary")
}

async fn inbound_rows(p: &Pipeline, customer: &str) -> i64 {
    p.count(
        "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id \
         WHERE c.customer = $1 AND m.direction = 'in'",
        customer,
    )
    .await
}

#[tokio::test]
async fn a_killed_conversation_stage_processes_every_accepted_message_once_after_restart() {
    let p = Pipeline::start_with(Options {
        conversation: false,
        ..Options::default()
    })
    .await;
    let r = p.restaurant(0);
    let customer = "whatsapp:+966511111111";
    // Each of these gets an answer at any step (none hands off to staff).
    let texts = ["hello", "menu", "help", "hi", "start over", "hello"];

    // Accepted (200 after the PubAck) while no conversation stage runs.
    for text in texts {
        let answer = p
            .sim
            .send_inbound(InboundSpec::text(&r.account_sid, customer, &r.number, text))
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
    }

    // Killed before it can have done anything...
    let mut first = spawn_conversation(&p);
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    assert_eq!(inbound_rows(&p, customer).await, 0);

    // ... and killed in the middle of the backlog.
    let mut second = spawn_conversation(&p);
    eventually("the first message processed", WAIT, || async {
        (inbound_rows(&p, customer).await >= 1).then_some(())
    })
    .await;
    second.start_kill().unwrap();
    let status = second.wait().await.unwrap();
    assert!(!status.success(), "killed, not exited");

    let _third = spawn_conversation(&p);
    eventually(
        "every message processed after the restart",
        WAIT,
        || async { (inbound_rows(&p, customer).await == texts.len() as i64).then_some(()) },
    )
    .await;

    // Exactly once: one row per message, every decided reply sent once, in order.
    let decided: Vec<(String,)> = sqlx::query_as(
        "SELECT o.body FROM messages o JOIN messages i ON i.id = o.reply_to \
         JOIN conversations c ON c.id = o.conversation_id \
         WHERE c.customer = $1 AND o.direction = 'out' ORDER BY i.created_at, i.seq, o.reply_index",
    )
    .bind(customer)
    .fetch_all(p.env.pool())
    .await
    .unwrap();
    assert!(
        decided.len() >= texts.len(),
        "every message was answered: {decided:?}"
    );
    let sent = p.sim.wait_for_sent(customer, decided.len(), WAIT).await;
    // Give a duplicate send every chance to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = if p.sim.sent_to(customer).len() > sent.len() {
        p.sim.sent_to(customer)
    } else {
        sent
    };
    assert_eq!(
        sent.len(),
        decided.len(),
        "each decided reply sent exactly once"
    );
    let sent_bodies: Vec<String> = sent
        .iter()
        .map(|m| m.body.clone().unwrap_or_default())
        .collect();
    let decided_bodies: Vec<String> = decided.into_iter().map(|(b,)| b).collect();
    assert_eq!(
        sent_bodies, decided_bodies,
        "replies left in the order they were decided"
    );
    let sids: Vec<String> = sqlx::query_scalar(
        "SELECT m.wa_sid FROM messages m JOIN conversations c ON c.id = m.conversation_id \
         WHERE c.customer = $1 AND m.direction = 'in' ORDER BY m.seq",
    )
    .bind(customer)
    .fetch_all(p.env.pool())
    .await
    .unwrap();
    let mut unique = sids.clone();
    unique.dedup();
    assert_eq!(unique.len(), texts.len());
}
