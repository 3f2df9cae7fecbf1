//! Analytics from orders placed through the pipeline: days in the
//! restaurant's time zone, first responses by author, items by the
//! restaurant's language, a bounded range.

use chrono::{TimeDelta, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use waiter_e2e::{chat::*, Pipeline};
use waiter_harness::eventually;

use super::api;

async fn analytics(p: &Pipeline, query: &str) -> Value {
    let (status, body) = api(p, Method::GET, &format!("analytics?{query}"), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn since(at: chrono::DateTime<Utc>) -> String {
    format!(
        "from={}&to={}",
        at.format("%Y-%m-%dT%H:%M:%SZ"),
        (Utc::now() + TimeDelta::minutes(1)).format("%Y-%m-%dT%H:%M:%SZ")
    )
}

#[tokio::test]
async fn orders_either_side_of_midnight_in_riyadh_fall_on_two_days() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let started = Utc::now() - TimeDelta::minutes(1);
    sqlx::query("UPDATE restaurants SET customer_rate_per_minute = 100 WHERE id = $1")
        .bind(r.id)
        .execute(p.env.pool())
        .await
        .unwrap();
    let chat = Chat::new(&p, r, customer(331), None);
    let late = place_order(&chat, None).await;
    // Moved on, so the next CONFIRMED order is the second one.
    let (status, body) = api(
        &p,
        Method::PATCH,
        &format!("orders/{}/status", late.id),
        Some(json!({"status": "PREPARING"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let after_midnight = place_order(&chat, None).await;
    assert_ne!(late.id, after_midnight.id);
    // 23:30 and 00:30 in Riyadh (UTC+3): one UTC day, two local ones.
    for (order, at) in [
        (late.id, "2024-06-10T20:30:00Z"),
        (after_midnight.id, "2024-06-10T21:30:00Z"),
    ] {
        sqlx::query("UPDATE orders SET created_at = $2::timestamptz WHERE id = $1")
            .bind(order)
            .bind(at)
            .execute(p.env.pool())
            .await
            .unwrap();
    }
    let range = "from=2024-06-10T00:00:00Z&to=2024-06-12T00:00:00Z";
    let body = analytics(&p, range).await;
    assert_eq!(body["time_zone"], "Asia/Riyadh");
    assert_eq!(body["orders"]["total"], 2);
    assert_eq!(body["orders"]["by_status"]["CONFIRMED"], 1);
    assert_eq!(body["orders"]["by_status"]["PREPARING"], 1);
    assert_eq!(
        body["orders"]["per_day"],
        json!([
            {"day": "2024-06-10", "orders": 1, "by_status": {"PREPARING": 1}},
            {"day": "2024-06-11", "orders": 1, "by_status": {"CONFIRMED": 1}},
        ])
    );
    // A viewer's offset, when given, still decides (UTC: one day).
    let utc = analytics(&p, &format!("{range}&utc_offset=0")).await;
    assert_eq!(
        utc["orders"]["per_day"],
        json!([{"day": "2024-06-10", "orders": 2, "by_status": {"CONFIRMED": 1, "PREPARING": 1}}])
    );

    // Items in the restaurant's language.
    assert_eq!(body["top_items"][0]["name"], "Chicken Shish Tawook");
    assert_eq!(body["top_items"][0]["quantity"], 4);
    sqlx::query("UPDATE restaurants SET default_language = 'ar' WHERE id = $1")
        .bind(r.id)
        .execute(p.env.pool())
        .await
        .unwrap();
    let name_ar: String = sqlx::query_scalar(
        "SELECT name_ar FROM menu_items WHERE restaurant_id = $1 AND name_en = 'Chicken Shish Tawook'",
    )
    .bind(r.id)
    .fetch_one(p.env.pool())
    .await
    .unwrap();
    let arabic = analytics(&p, range).await;
    assert_eq!(arabic["top_items"][0]["name"], name_ar.as_str());

    // First responses of today's chat: the bot's, to the `sent` time.
    let now = analytics(&p, &since(started)).await;
    assert_eq!(now["first_response"]["bot"]["conversations"], 1, "{now}");
    let bot = now["first_response"]["bot"]["median_seconds"]
        .as_f64()
        .unwrap();
    assert!(bot > 0.0 && bot < 60.0, "{now}");
    assert_eq!(now["first_response"]["staff"]["conversations"], 0, "{now}");
    assert!(now["first_response"]["staff"]["median_seconds"].is_null());
    assert_eq!(now["median_first_response_seconds"].as_f64(), Some(bot));
    // Then staff write: their first reply counts for them.
    let (conversation, _) = chat.conversation().await;
    let (status, _) = api(
        &p,
        Method::POST,
        &format!("conversations/{conversation}/send"),
        Some(json!({"message": "Thank you for ordering twice today!"})),
    )
    .await;
    assert_eq!(status, 202);
    chat.received("ordering twice today").await;
    let staff = eventually("the staff reply is counted", WAIT, || async {
        let now = analytics(&p, &since(started)).await;
        (now["first_response"]["staff"]["conversations"] == 1).then_some(now)
    })
    .await;
    assert!(
        staff["first_response"]["staff"]["median_seconds"]
            .as_f64()
            .unwrap()
            > bot
    );

    // A range over 366 days is refused.
    let (status, body) = api(
        &p,
        Method::GET,
        "analytics?from=2023-01-01T00:00:00Z&to=2024-06-01T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["reason"].as_str().unwrap().contains("366"), "{body}");
}
