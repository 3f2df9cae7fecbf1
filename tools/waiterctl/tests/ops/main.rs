//! `waiterctl replay`, `dlq`, `dlq-retry` and `trace` as commands, over
//! the whole pipeline (every stage in this process, real NATS and
//! PostgreSQL, the Twilio simulator), their output parsed.

mod dlq;
mod loop_letter;
mod replay;
mod trace;

use std::{process::Command, time::Duration};

use twilio_sim::InboundSpec;
use waiter_e2e::Pipeline;
use waiter_harness::eventually;
use waiter_nats::StreamKind;

pub const WAIT: Duration = Duration::from_secs(30);

pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs waiterctl against the pipeline's database and namespace.
pub fn waiterctl(p: &Pipeline, args: &[&str]) -> Ran {
    run(&p.env, args)
}

/// Runs waiterctl against a test's database and namespace.
pub fn run(env: &waiter_harness::TestEnv, args: &[&str]) -> Ran {
    let output = Command::new(env!("CARGO_BIN_EXE_waiterctl"))
        .args(args)
        .env("DATABASE_URL", &env.db.url)
        .env("NATS_URL", &env.bus.config.url)
        .env("WAITER_NAMESPACE", env.bus.namespace())
        .env("WAITER_PARTITIONS", env.bus.config.partitions.to_string())
        .output()
        .expect("run waiterctl");
    Ran {
        ok: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Like [`waiterctl`], failing the test when the command fails.
pub fn ok(p: &Pipeline, args: &[&str]) -> Ran {
    let ran = waiterctl(p, args);
    assert!(ran.ok, "waiterctl {args:?} failed: {}", ran.stderr);
    ran
}

pub fn customer(n: u32) -> String {
    format!("whatsapp:+9665{:08}", n)
}

/// A customer writes; returns the MessageSid once Twilio (the simulator)
/// got `replies` replies and every reply's status reached `read`.
pub async fn converse(p: &Pipeline, who: &str, text: &str, replies: usize) -> String {
    let r = p.restaurant(0);
    let answer = p
        .sim
        .send_inbound(InboundSpec::text(&r.account_sid, who, &r.number, text))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    p.sim.wait_for_sent(who, replies, WAIT).await;
    eventually("every reply read", WAIT, || async {
        let unread: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE direction = 'out' AND status <> 'read'",
        )
        .fetch_one(p.env.pool())
        .await
        .unwrap();
        (unread == 0).then_some(())
    })
    .await;
    answer.message_sid
}

/// Waits until every consumer of the stages' streams has nothing pending
/// or unacknowledged: what was published has been handled.
pub async fn settled(p: &Pipeline) {
    let bus = &p.env.bus.bus;
    eventually("every consumer settled", WAIT, || async {
        for kind in [
            StreamKind::Ingest,
            StreamKind::Conversation,
            StreamKind::Order,
            StreamKind::Outbound,
        ] {
            let Ok(stream) = bus
                .jetstream()
                .get_stream(bus.topology().stream_name(kind))
                .await
            else {
                continue;
            };
            let names: Vec<String> = {
                use futures::StreamExt;
                stream
                    .consumer_names()
                    .filter_map(|n| async move { n.ok() })
                    .collect()
                    .await
            };
            for name in names {
                let Ok(info) = stream.consumer_info(&name).await else {
                    continue;
                };
                // Only the stages' durable consumers (not inspection readers).
                if info.config.durable_name.is_none() {
                    continue;
                }
                if info.num_pending > 0 || info.num_ack_pending > 0 {
                    return None;
                }
            }
        }
        Some(())
    })
    .await;
}
