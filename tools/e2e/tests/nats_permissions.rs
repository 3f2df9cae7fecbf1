//! The shipped nats-server configuration (`nats/server/`): valid, and on a
//! private server every stage can do its own work with its own credentials
//! and nothing else.

use std::{path::PathBuf, time::Duration};

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use twilio_sim::customer::{inbound_params, InboundSpec};
use waiter_harness::nats_server::{self, PrivateNats};
use waiter_nats::{
    config::NatsAuth,
    directory::{AccountEntry, Directory},
    messages::StatusCallback,
    streams::{ensure_consumer, ConsumerSpec},
    Bus, BusConfig, Envelope, StreamKind,
};
use waiter_secrets::{twilio_token_context, Keyring};

const STAGES: [&str; 7] = [
    "ingest",
    "router",
    "conversation",
    "order",
    "outbound",
    "notifier",
    "waiterctl",
];

fn server_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../nats/server")
}

fn passwords() -> Vec<(String, String)> {
    STAGES
        .iter()
        .map(|s| {
            (
                format!("NATS_{}_PASSWORD", s.to_ascii_uppercase()),
                format!("pw-{s}-{}", uuid::Uuid::new_v4().simple()),
            )
        })
        .collect()
}

fn password_of(passwords: &[(String, String)], stage: &str) -> String {
    let name = format!("NATS_{}_PASSWORD", stage.to_ascii_uppercase());
    passwords
        .iter()
        .find(|(k, _)| *k == name)
        .unwrap()
        .1
        .clone()
}

fn config_for(nats: &PrivateNats, stage: &str, password: &str) -> BusConfig {
    let mut config = BusConfig::local("waiter", 4);
    config.url = nats.url();
    config.publish_timeout = Duration::from_secs(2);
    config.auth = NatsAuth::UserPassword {
        user: stage.to_string(),
        password: SecretString::from(password.to_string()),
    };
    config
}

#[test]
fn the_shipped_configuration_is_valid() {
    let output = std::process::Command::new(nats_server::binary())
        .arg("-t")
        .arg("-c")
        .arg(server_dir().join("waiter.conf"))
        .envs(passwords())
        .output()
        .expect("nats-server runs");
    assert!(
        output.status.success(),
        "nats-server -t: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A stage, the streams it ensures, the consumers it reads, a subject it
/// writes and one it may not.
type StageCase = (
    &'static str,
    &'static [StreamKind],
    Vec<ConsumerSpec>,
    String,
    String,
);

async fn can_publish(bus: &Bus, subject: String) -> bool {
    let envelope = Envelope::new(
        waiter_nats::envelope::new_id(),
        "t",
        StatusCallback::default(),
    );
    bus.publish(subject, &envelope).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_stage_works_with_its_own_credentials_and_is_refused_the_rest() {
    let passwords = passwords();
    // The shipped permissions as they are, on a port and store of our own.
    let permissions = std::fs::read_to_string(server_dir().join("permissions.conf")).unwrap();
    let nats = PrivateNats::with_config(
        &format!(
            "listen: 127.0.0.1:{{port}}\njetstream {{ store_dir: \"{{store}}\" }}\n{permissions}"
        ),
        &passwords,
    )
    .await;
    let bus = |stage: &'static str| {
        let config = config_for(&nats, stage, &password_of(&passwords, stage));
        async move { Bus::connect(&config, stage).await.expect(stage) }
    };
    let topology = waiter_nats::Topology::new("waiter", 4);

    // Ingest, for real: it ensures its streams, follows the directory an
    // operator wrote, and accepts a signed webhook (a PubAck'd publish).
    let admin = bus("waiterctl").await;
    let directory = Directory::open(&admin).await.unwrap();
    let (account, token) = ("AC0123456789abcdef0123456789abcdef", "perm-token");
    directory
        .put(&AccountEntry {
            account_sid: account.into(),
            sealed_token: Some(Keyring::for_tests().seal(token, &twilio_token_context(account))),
        })
        .await
        .unwrap();
    let ingest_bus = bus("ingest").await;
    let shutdown = CancellationToken::new();
    let running = ingest::start(
        ingest::Config::for_tests(),
        ingest_bus.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let url = format!("http://{}/whatsapp/webhook", running.addr);
    let params = inbound_params(
        &InboundSpec::text(
            account,
            "whatsapp:+966500000555",
            "whatsapp:+15550002222",
            "hi",
        ),
        "SM0000000000000000000000000000aa55",
    );
    let signature = twilio_sim::signature::sign(token, &url, &params);
    let answer = reqwest::Client::new()
        .post(&url)
        .header("x-twilio-signature", signature)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    assert!(
        !can_publish(&ingest_bus, topology.conversation(0)).await,
        "ingest may not write a conversation"
    );
    assert!(
        ingest_bus
            .jetstream()
            .delete_stream(topology.stream_name(StreamKind::Ingest))
            .await
            .is_err(),
        "no stage may delete a stream"
    );

    // Every other stage: the streams it ensures, the consumers it reads,
    // a subject it writes, and one it may not.
    let cases: [StageCase; 5] = [
        (
            "router",
            &[
                StreamKind::Ingest,
                StreamKind::Conversation,
                StreamKind::Directory,
            ],
            vec![
                ConsumerSpec::partition(&topology, StreamKind::Ingest, "router", 0),
                ConsumerSpec::shared(
                    StreamKind::Ingest,
                    "router-refusals",
                    topology.refused_webhooks(),
                    32,
                ),
            ],
            topology.conversation(1),
            topology.outbound(1),
        ),
        (
            "conversation",
            &[
                StreamKind::Conversation,
                StreamKind::Outbound,
                StreamKind::Order,
                StreamKind::Events,
            ],
            vec![ConsumerSpec::partition(
                &topology,
                StreamKind::Conversation,
                "conversation",
                0,
            )],
            topology.outbound(1),
            topology.inbound_message(1),
        ),
        (
            "order",
            &[
                StreamKind::Order,
                StreamKind::Conversation,
                StreamKind::Events,
                StreamKind::Webhooks,
            ],
            vec![ConsumerSpec::partition(
                &topology,
                StreamKind::Order,
                "order",
                0,
            )],
            topology.conversation(2),
            topology.outbound(2),
        ),
        (
            "outbound",
            &[
                StreamKind::Outbound,
                StreamKind::Events,
                StreamKind::DeadLetter,
                StreamKind::Ingest,
                StreamKind::Webhooks,
            ],
            vec![
                ConsumerSpec::partition(&topology, StreamKind::Outbound, "outbound", 0),
                ConsumerSpec::partition(&topology, StreamKind::Webhooks, "webhooks", 0),
                ConsumerSpec::shared(
                    StreamKind::Ingest,
                    "outbound-status",
                    topology.status_callback(),
                    64,
                ),
            ],
            topology.dead_letter("outbound"),
            topology.conversation(3),
        ),
        (
            "notifier",
            &[
                StreamKind::Conversation,
                StreamKind::Order,
                StreamKind::Events,
            ],
            vec![],
            topology.order_command(3),
            topology.directory_entry(account),
        ),
    ];
    for (stage, streams, consumers, allowed, forbidden) in cases {
        let bus = bus(stage).await;
        bus.ensure_streams(streams)
            .await
            .unwrap_or_else(|e| panic!("{stage} ensures its streams: {e}"));
        for spec in &consumers {
            ensure_consumer(bus.jetstream(), &topology, spec)
                .await
                .unwrap_or_else(|e| panic!("{stage} creates {}: {e}", spec.durable));
        }
        assert!(
            can_publish(&bus, allowed.clone()).await,
            "{stage} writes {allowed}"
        );
        assert!(
            !can_publish(&bus, forbidden.clone()).await,
            "{stage} may not write {forbidden}"
        );
    }
    // Order webhooks: the order stage stages them, outbound's `webhooks`
    // group dead-letters them; nobody else writes them.
    for (stage, subject, allowed) in [
        ("order", topology.webhook(1), true),
        ("outbound", topology.dead_letter("webhooks"), true),
        ("conversation", topology.webhook(1), false),
        ("outbound", topology.webhook(1), false),
    ] {
        let bus = bus(stage).await;
        assert_eq!(
            can_publish(&bus, subject.clone()).await,
            allowed,
            "{stage} writing {subject}"
        );
    }
    // The notifier's per-socket feed: an ephemeral consumer on EVENTS.
    let notifier = bus("notifier").await;
    let events = notifier
        .jetstream()
        .get_stream(topology.stream_name(StreamKind::Events))
        .await
        .unwrap();
    events
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            filter_subject: topology.events_of(&uuid::Uuid::nil()),
            ..Default::default()
        })
        .await
        .expect("notifier reads events");

    // No credentials, or a wrong password: no connection, and the error
    // does not print the password.
    let mut anonymous = config_for(&nats, "ingest", "x");
    anonymous.auth = NatsAuth::None;
    assert!(Bus::connect(&anonymous, "anonymous").await.is_err());
    let wrong = config_for(&nats, "ingest", "not-the-password");
    let err = match Bus::connect(&wrong, "ingest").await {
        Ok(_) => panic!("a wrong password connected"),
        Err(e) => e.to_string(),
    };
    assert!(!err.contains("not-the-password"), "{err}");
    assert!(err.contains("authorization"), "a readable reason: {err}");
    shutdown.cancel();
}
