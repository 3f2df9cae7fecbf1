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

/// The conversation handler on the test's bus and database, with its
/// streams and the marks' writer.
async fn handler(env: &TestEnv) -> (waiter_nats::Bus, Arc<Conversations>) {
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
    (bus, handler)
}

/// Messages published on `subject` (a filter) of the outbound stream.
async fn published_on(bus: &waiter_nats::Bus, subject: String) -> u64 {
    let stream = bus
        .jetstream()
        .get_stream(bus.topology().stream_name(StreamKind::Outbound))
        .await
        .unwrap();
    let mut consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            filter_subject: subject,
            ..Default::default()
        })
        .await
        .unwrap();
    consumer.info().await.unwrap().num_pending
}

async fn count(env: &TestEnv, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(env.pool()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_input_rolls_back_alone_and_the_inputs_before_it_commit_once() {
    let env = TestEnv::new().await;
    let r = add_restaurant(env.pool(), "batch", "en").await;
    let (bus, handler) = handler(&env).await;
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
    let outbound_subjects = format!("{}.outbound.>", env.bus.namespace());
    assert_eq!(
        published_on(&bus, outbound_subjects.clone()).await as i64,
        replies
    );

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
        published_on(&bus, outbound_subjects).await as i64,
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

/// The window's outgoing messages are written in one statement before it
/// commits; one already stored (a staff reply replayed under a new
/// envelope id) is neither stored nor sent again, and the rest of its
/// window goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_already_stored_is_not_sent_again_and_its_window_commits() {
    let env = TestEnv::new().await;
    let r = add_restaurant(env.pool(), "replies", "en").await;
    let (bus, handler) = handler(&env).await;
    let amal = "whatsapp:+966500000201";
    let outcomes = handler
        .handle_batch(Batch::detached(vec![incoming(
            "SMhello",
            customer(r.id, &r.number, amal, "SMhello", "hello"),
        )]))
        .await;
    assert_eq!(outcomes, vec![Outcome::Ack]);
    let conversation = conversation::store::ids::conversation(r.id, amal);
    let staff_reply = |envelope_id: &str, message_id: Uuid| {
        incoming(
            envelope_id,
            ConversationInput::StaffReply(StaffReply {
                message_id,
                restaurant_id: r.id,
                conversation_id: conversation,
                staff: "staff".into(),
                text: "We are on it".into(),
                content_sid: None,
            }),
        )
    };
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let outcomes = handler
        .handle_batch(Batch::detached(vec![
            staff_reply("staff-reply-1", first),
            // An operator's replay of the same reply: a new envelope id.
            staff_reply("staff-reply-1-replayed", first),
            staff_reply("staff-reply-2", second),
        ]))
        .await;
    assert_eq!(outcomes, vec![Outcome::Ack, Outcome::Ack, Outcome::Ack]);
    let stored = |id: Uuid| {
        let pool = env.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM messages WHERE id = $1 AND author = 'staff' \
                   AND status = 'pending'",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(stored(first).await, 1, "the replayed reply is stored once");
    assert_eq!(stored(second).await, 1);
    let outbound = format!("{}.outbound.>", env.bus.namespace());
    let sends_before = published_on(&bus, outbound.clone()).await;

    // The replay alone, in a window of its own: nothing stored or sent.
    let outcomes = handler
        .handle_batch(Batch::detached(vec![staff_reply(
            "staff-reply-1-replayed-again",
            first,
        )]))
        .await;
    assert_eq!(outcomes, vec![Outcome::Ack]);
    assert_eq!(stored(first).await, 1);
    assert_eq!(
        published_on(&bus, outbound).await,
        sends_before,
        "a reply already stored is not sent again"
    );
    let staged_sends: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE msg_id = $1")
        .bind(format!("outbound:{first}"))
        .fetch_one(env.pool())
        .await
        .unwrap();
    assert_eq!(staged_sends, 1, "one send of the reply was ever staged");
}
