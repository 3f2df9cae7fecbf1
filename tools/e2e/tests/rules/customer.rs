//! Customer data requests: export holds what the customer said and
//! ordered; forget leaves nothing personal anywhere in the database.

use uuid::Uuid;
use waiter_e2e::{chat::*, Pipeline};
use waiter_harness::eventually;
use waiter_migrations::customer;

/// Every table (and the outbox's binary payloads) where `needle` occurs.
async fn tables_holding(p: &Pipeline, needle: &str) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    .fetch_all(p.env.pool())
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "messages"), "{tables:?}");
    let mut holding = vec![];
    for table in tables {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{table}\" t WHERE strpos(t::text, $1) > 0"
        ))
        .bind(needle)
        .fetch_one(p.env.pool())
        .await
        .unwrap();
        if n > 0 {
            holding.push(format!("{table} ({n})"));
        }
    }
    let in_outbox: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE position(convert_to($1, 'UTF8') IN payload) > 0",
    )
    .bind(needle)
    .fetch_one(p.env.pool())
    .await
    .unwrap();
    if in_outbox > 0 {
        holding.push(format!("outbox payloads ({in_outbox})"));
    }
    holding
}

/// How many dead letters mention `needle`.
async fn dead_letters_with(p: &Pipeline, needle: &str) -> usize {
    let prefix = p.env.bus.bus.topology().dead_letter("");
    p.every_stream_message()
        .await
        .into_iter()
        .filter(|m| m.starts_with(prefix.as_bytes()))
        .filter(|m| m.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .count()
}

#[tokio::test]
async fn export_holds_the_customers_messages_and_forget_leaves_nothing_personal() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let staff = "whatsapp:+966544440321";
    sqlx::query(
        "UPDATE restaurants SET staff_whatsapp = $2, customer_rate_per_minute = 100 WHERE id = $1",
    )
    .bind(r.id)
    .bind(staff)
    .execute(p.env.pool())
    .await
    .unwrap();
    let chat = Chat::new(&p, r, customer(321), Some("Nora Alharbi"));
    let placed = place_order(&chat, None).await;
    chat.text("STOP").await;
    let (conversation, _) = chat.conversation().await;
    // Every status callback is in (read comes last), so nothing about her
    // is still on its way to the database.
    eventually("every reply is read", WAIT, || async {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE conversation_id = $1 AND direction = 'out' \
             AND status NOT IN ('read', 'failed', 'skipped')",
        )
        .bind(conversation)
        .fetch_one(p.env.pool())
        .await
        .unwrap();
        (pending == 0).then_some(())
    })
    .await;
    eventually("the staff ticket is settled", WAIT, || async {
        let settled: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.customer = $1 AND m.status = 'failed'",
        )
        .bind(staff)
        .fetch_one(p.env.pool())
        .await
        .unwrap();
        (settled == 1).then_some(())
    })
    .await;

    let document = customer::export(p.env.pool(), r.id, &chat.from, "test-operator")
        .await
        .unwrap();
    assert_eq!(document["customer"], chat.from);
    assert_eq!(
        document["conversations"][0]["customer_name"],
        "Nora Alharbi"
    );
    let bodies: Vec<&str> = document["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert!(
        bodies.contains(&"hi") && bodies.contains(&"STOP"),
        "{bodies:?}"
    );
    assert!(bodies
        .iter()
        .any(|b| b.contains(&format!("Order #{} is confirmed", placed.number))));
    assert_eq!(document["orders"][0]["number"], placed.number);
    assert!(document["orders"][0]["address"]
        .as_str()
        .unwrap()
        .starts_with(ADDRESS));
    assert!(document["orders"][0]["history"].as_array().unwrap().len() >= 2);
    assert_eq!(document["marketing_consent"]["opted_out"], true);
    assert!(!document["webhook_audit"].as_array().unwrap().is_empty());

    let digits = chat.from.trim_start_matches("whatsapp:+").to_string();
    let before = tables_holding(&p, &digits).await;
    assert!(
        before.iter().any(|t| t.starts_with("messages")),
        "{before:?}"
    );

    let done = customer::forget(p.env.pool(), r.id, &chat.from, "test-operator")
        .await
        .unwrap();
    assert_eq!(done.conversation_id, Some(conversation));
    assert_eq!(done.tickets, 1, "{done:?}");
    // The staff ticket that failed (63016) is a dead letter naming her.
    eventually("the failed ticket is dead-lettered", WAIT, || async {
        (dead_letters_with(&p, &digits).await >= 1).then_some(())
    })
    .await;
    let erased = waiter_nats::erase::erase_dead_letters_mentioning(
        &p.env.bus.bus,
        &waiter_nats::erase::customer_needles(&chat.from, done.conversation_id),
        |_, _| {},
    )
    .await
    .unwrap();
    assert!(erased >= 1);
    assert_eq!(dead_letters_with(&p, &digits).await, 0);
    for personal in [digits.as_str(), "Nora", ADDRESS, "Tahlia"] {
        assert_eq!(
            tables_holding(&p, personal).await,
            Vec::<String>::new(),
            "{personal}"
        );
    }
    // The restaurant's books keep the order, anonymised.
    let o = order(&p, placed.id).await;
    assert_eq!((o.total, o.status.as_str()), (placed.total, "CONFIRMED"));
    assert_eq!(o.address, None);
    let audit: Vec<(String, Option<Uuid>)> = sqlx::query_as(
        "SELECT kind, conversation_id FROM customer_requests WHERE restaurant_id = $1 ORDER BY done_at",
    )
    .bind(r.id)
    .fetch_all(p.env.pool())
    .await
    .unwrap();
    assert_eq!(
        audit,
        vec![
            ("export".to_string(), Some(conversation)),
            ("forget".to_string(), Some(conversation))
        ]
    );
    // Asked again, there is nothing left to forget.
    assert!(matches!(
        customer::forget(p.env.pool(), r.id, &chat.from, "test-operator").await,
        Err(customer::CustomerError::Unknown(_))
    ));
}
