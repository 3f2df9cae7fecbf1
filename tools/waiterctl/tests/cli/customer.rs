use uuid::Uuid;

use crate::common::Ctl;

const NORA: &str = "whatsapp:+966500000777";

#[tokio::test]
async fn a_customer_is_exported_as_json_then_forgotten_with_a_table_of_what_was_erased() {
    let ctl = Ctl::new().await;
    ctl.restaurant("bait-grill");
    let pool = &ctl.db.pool;
    let conversation = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO conversations (id, restaurant_id, customer, customer_name) \
         SELECT $1, id, $2, 'Nora' FROM restaurants WHERE slug = 'bait-grill'",
    )
    .bind(conversation)
    .bind(NORA)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO messages (id, restaurant_id, conversation_id, direction, author, kind, body, status) \
         SELECT $1, restaurant_id, id, 'in', 'customer', 'text', 'my flat is 4B', 'received' \
         FROM conversations WHERE id = $2",
    )
    .bind(Uuid::new_v4())
    .bind(conversation)
    .execute(pool)
    .await
    .unwrap();

    let export = ctl
        .run(&[
            "customer",
            "export",
            "--restaurant",
            "bait-grill",
            "--customer",
            NORA,
        ])
        .json();
    assert_eq!(export["customer"], NORA);
    assert_eq!(export["messages"][0]["body"], "my flat is 4B");

    let forget = ctl.run(&[
        "customer",
        "forget",
        "--restaurant",
        "bait-grill",
        "--customer",
        NORA,
        "--operator",
        "dpo",
    ]);
    let table = forget.ok();
    assert!(
        table.contains("messages erased") && table.contains(" 1 "),
        "{table}"
    );
    let body: String = sqlx::query_scalar("SELECT body FROM messages WHERE conversation_id = $1")
        .bind(conversation)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(body, "");
    let operators: Vec<String> =
        sqlx::query_scalar("SELECT operator FROM customer_requests ORDER BY done_at")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(operators.len(), 2);
    assert_eq!(operators[1], "dpo");

    // Nothing left to export; a malformed number is refused before any work.
    let gone = ctl.run(&[
        "customer",
        "export",
        "--restaurant",
        "bait-grill",
        "--customer",
        NORA,
    ]);
    assert!(
        gone.fails(1).contains("holds nothing about"),
        "{}",
        gone.stderr
    );
    let bad = ctl.run(&[
        "customer",
        "forget",
        "--restaurant",
        "bait-grill",
        "--customer",
        "+966500000777",
    ]);
    assert!(
        bad.fails(1).contains("not a WhatsApp address"),
        "{}",
        bad.stderr
    );
}
