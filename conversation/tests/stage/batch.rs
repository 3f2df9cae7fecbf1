//! A window of inputs in one transaction: an input that fails rolls back
//! to its savepoint alone and ends the batch with its own outcome; the
//! inputs before it commit and their effects are published; a batch tried
//! again applies nothing twice.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use conversation::{catalog::Catalogs, handler::Conversations};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use waiter_harness::{add_restaurant, TestEnv};
use waiter_nats::{
    messages::{ConversationInput, CustomerMessage, InboundMessage, StaffReply},
    outbox, Batch, BatchHandler, Delivery, Envelope, FailureClass, Incoming, Outcome, StreamKind,
};

fn incoming(id: &str, body: ConversationInput) -> Incoming<ConversationInput> {
    Incoming {
        envelope: Envelope::new(id, format!("trace-{id}"), body),
        delivery: Delivery {
            subject: "test".into(),
            stream_sequence: 1,
            delivered: 1,
            attempt: 1,
            trace_id: None,
        },
    }
}

fn customer(
    restaurant: Uuid,
    number: &str,
    from: &str,
    sid: &str,
    text: &str,
) -> ConversationInput {
    ConversationInput::Customer(Box::new(CustomerMessage {
        restaurant_id: restaurant,
        customer: from.into(),
        limited: None,
        inbound: InboundMessage {
            message_sid: sid.into(),
            from: from.into(),
            to: number.into(),
            body: text.into(),
            received_at: Utc::now(),
            ..InboundMessage::default()
        },
    }))
}

async fn count(env: &TestEnv, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(env.pool()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_input_rolls_back_alone_and_the_inputs_before_it_commit_once() {
    let env = TestEnv::new().await;
    let r = add_restaurant(env.pool(), "batch", "en").await;
    let bus = env.bus.bus.clone();
    bus.ensure_streams(&[
        StreamKind::Conversation,
        StreamKind::Outbound,
        StreamKind::Order,
        StreamKind::Events,
    ])
    .await
    .unwrap();
    let (marks, write_marks) = outbox::Marks::start(env.pool().clone(), CancellationToken::new());
    tokio::spawn(write_marks);
    let handler = Arc::new(Conversations::new(
        bus.clone(),
        env.pool().clone(),
        Catalogs::new(env.pool().clone(), Duration::from_secs(10)),
        marks,
    ));
    let (amal, badr) = ("whatsapp:+966500000101", "whatsapp:+966500000102");
    let first = incoming(
        "SMfirst",
        customer(r.id, &r.number, amal, "SMfirst", "hello"),
    );
    let second = incoming(
        "SMsecond",
        customer(r.id, &r.number, badr, "SMsecond", "hello"),
    );
    let broken = incoming(
        "staff-reply-to-nobody",
        ConversationInput::StaffReply(StaffReply {
            message_id: Uuid::new_v4(),
            restaurant_id: r.id,
            conversation_id: Uuid::new_v4(),
            staff: "staff".into(),
            text: "hi".into(),
            content_sid: None,
        }),
    );
    let after = incoming(
        "SMafter",
        customer(r.id, &r.number, amal, "SMafter", "menu"),
    );

    let outcomes = handler
        .handle_batch(Batch::detached(vec![
            first.clone(),
            second.clone(),
            broken.clone(),
            after.clone(),
        ]))
        .await;
    assert_eq!(
        outcomes.len(),
        3,
        "settled up to the failing input: {outcomes:?}"
    );
    assert_eq!(&outcomes[..2], &[Outcome::Ack, Outcome::Ack]);
    match &outcomes[2] {
        Outcome::Retry(failure) => assert_eq!(failure.class, FailureClass::Permanent),
        other => panic!("the broken input gets its own failure: {other:?}"),
    }
    assert_eq!(
        count(&env, "SELECT count(*) FROM messages WHERE direction = 'in'").await,
        2,
        "the inputs before the failing one are committed, the one after it is not applied"
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM applied_inputs WHERE stage = 'conversation'"
        )
        .await,
        2
    );
    let replies = count(
        &env,
        "SELECT count(*) FROM messages WHERE direction = 'out' AND status <> 'skipped'",
    )
    .await;
    assert!(replies >= 2, "both customers answered: {replies}");
    // Published before the outcomes (the stream is counted below); marked
    // in the background within a few of the marks' ticks.
    let deadline = std::time::Instant::now() + 20 * outbox::Marks::EVERY;
    loop {
        let unmarked = count(
            &env,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
        )
        .await;
        if unmarked == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{unmarked} published effects still unmarked"
        );
        tokio::time::sleep(outbox::Marks::EVERY / 4).await;
    }
    // The effects are written in one statement per batch, in the order
    // they were decided: what a crashed publisher's successor replays.
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT split_part(msg_id, ':', 1) FROM outbox WHERE aggregate_id = $1 ORDER BY seq",
    )
    .bind(conversation::store::ids::conversation(r.id, amal))
    .fetch_all(env.pool())
    .await
    .unwrap();
    assert_eq!(
        kinds[..2],
        ["message.received", "conversation.updated"],
        "{kinds:?}"
    );
    assert!(
        kinds.len() > 2 && kinds[2..].iter().all(|k| k == "outbound"),
        "then the replies' sends: {kinds:?}"
    );
    let published = |filter: String| {
        let bus = bus.clone();
        async move {
            let stream = bus
                .jetstream()
                .get_stream(bus.topology().stream_name(StreamKind::Outbound))
                .await
                .unwrap();
            let mut consumer = stream
                .create_consumer(async_nats::jetstream::consumer::pull::Config {
                    filter_subject: filter,
                    ..Default::default()
                })
                .await
                .unwrap();
            consumer.info().await.unwrap().num_pending as i64
        }
    };
    let outbound_subjects = format!("{}.outbound.>", env.bus.namespace());
    assert_eq!(published(outbound_subjects.clone()).await, replies);

    // The batch again (a redelivery), past the broken input: the first two
    // were applied before and change nothing; the last one is applied.
    let outcomes = handler
        .handle_batch(Batch::detached(vec![first, second, after]))
        .await;
    assert_eq!(outcomes, vec![Outcome::Ack, Outcome::Ack, Outcome::Ack]);
    assert_eq!(
        count(&env, "SELECT count(*) FROM messages WHERE direction = 'in'").await,
        3
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM messages WHERE direction = 'in' AND wa_sid = 'SMfirst'"
        )
        .await,
        1,
        "stored once"
    );
    let replies_now = count(
        &env,
        "SELECT count(*) FROM messages WHERE direction = 'out' AND status <> 'skipped'",
    )
    .await;
    assert!(replies_now > replies, "the last input answered");
    assert_eq!(
        published(outbound_subjects).await,
        replies_now,
        "no send published twice"
    );
}

/// A stage told to stop writes the marks still pending before its tasks
/// end, so its successor does not publish those effects again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marks_pending_at_shutdown_are_written_before_the_writer_ends() {
    let env = TestEnv::new().await;
    let aggregate = Uuid::new_v4();
    let mut tx = env.pool().begin().await.unwrap();
    let envelope = Envelope::new("mark-me", "trace-mark-me", InboundMessage::default());
    let seq = outbox::stage(&mut tx, aggregate, "test.marks".into(), &envelope)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let stop = CancellationToken::new();
    let (marks, write_marks) = outbox::Marks::start(env.pool().clone(), stop.clone());
    let writer = tokio::spawn(write_marks);
    marks.mark(vec![seq]);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .expect("the writer ends soon after shutdown")
        .unwrap();
    let marked: bool =
        sqlx::query_scalar("SELECT published_at IS NOT NULL FROM outbox WHERE seq = $1")
            .bind(seq)
            .fetch_one(env.pool())
            .await
            .unwrap();
    assert!(marked, "the pending mark was written at shutdown");
    // Marks sent after the writer ended are dropped without a panic (the
    // successor republishes those effects, as after a crash).
    marks.mark(vec![seq]);
}
