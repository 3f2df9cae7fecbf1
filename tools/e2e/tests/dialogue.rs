//! The ordering dialogue through the whole pipeline: a simulated customer
//! chats with the bot over signed webhooks, the replies come back through
//! the Messages API of the Twilio simulator, staff act through the
//! dashboard's REST API, and every step is checked against the rows written
//! and the events the dashboard receives.
//!
//! Choices are read back from what the bot sent (the `choices` of the reply
//! rows, or the numbered lines of the text fallback), never hard-coded.

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;
use waiter_e2e::{chat::*, Pipeline};
use waiter_harness::{eventually, ws::Dashboard, TestRestaurant};

/// The dashboard's frames, kept so they can be searched in any order.
struct Feed {
    dashboard: Dashboard,
    seen: Vec<Value>,
}

impl Feed {
    async fn of(p: &Pipeline, i: usize) -> Feed {
        Feed {
            dashboard: p.dashboard(i).await,
            seen: vec![],
        }
    }

    /// The first event of `event_type` whose data satisfies `matches`.
    async fn find(&mut self, event_type: &str, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(frame) = self
            .seen
            .iter()
            .find(|f| f["type"] == event_type && matches(&f["data"]))
        {
            return frame.clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self
                .dashboard
                .next_json(remaining)
                .await
                .unwrap_or_else(|| panic!("no {event_type} event came"));
            self.seen.push(frame.clone());
            if frame["type"] == event_type && matches(&frame["data"]) {
                return frame;
            }
        }
    }

    fn count(&self, event_type: &str, matches: impl Fn(&Value) -> bool) -> usize {
        self.seen
            .iter()
            .filter(|f| f["type"] == event_type && matches(&f["data"]))
            .count()
    }
}

/// A menu item's id and unit price after its discount (as the order stage
/// prices it: rounded to the nearest minor unit).
async fn menu_item(p: &Pipeline, r: &TestRestaurant, name_en: &str) -> (Uuid, i64) {
    let (id, price, discount): (Uuid, i64, i32) = sqlx::query_as(
        "SELECT id, price, discount_percent FROM menu_items WHERE restaurant_id = $1 AND name_en = $2",
    )
    .bind(r.id)
    .bind(name_en)
    .fetch_one(p.env.pool())
    .await
    .unwrap();
    (id, (price * i64::from(100 - discount) + 50) / 100)
}

async fn branch_id(p: &Pipeline, r: &TestRestaurant, name_en: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM branches WHERE restaurant_id = $1 AND name_en = $2")
        .bind(r.id)
        .bind(name_en)
        .fetch_one(p.env.pool())
        .await
        .unwrap()
}

async fn history(
    p: &Pipeline,
    order: Uuid,
) -> Vec<(Option<String>, String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT from_status, to_status, actor, reason FROM order_status_history WHERE order_id = $1 ORDER BY id",
    )
    .bind(order)
    .fetch_all(p.env.pool())
    .await
    .unwrap()
}

/// `PATCH …/orders/:oid/status` as staff; (HTTP status, JSON body).
async fn set_status(p: &Pipeline, i: usize, order: Uuid, status: &str) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .patch(format!(
            "http://{}/api/restaurants/{}/orders/{order}/status",
            p.notifier,
            p.restaurant(i).id
        ))
        .bearer_auth(p.token(i))
        .json(&json!({ "status": status }))
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// Staff take a delivery order through to DELIVERED, each step answered 200.
async fn deliver(p: &Pipeline, order: Uuid) {
    for status in ["PREPARING", "OUT_FOR_DELIVERY", "DELIVERED"] {
        let (code, body) = set_status(p, 0, order, status).await;
        assert_eq!(code, 200, "{status}: {body}");
        assert_eq!(body["status"], status);
    }
}

async fn post_json(p: &Pipeline, path: &str, body: Value) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(format!(
            "http://{}/api/restaurants/{}/{path}",
            p.notifier,
            p.restaurant(0).id
        ))
        .bearer_auth(p.token(0))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn an_english_delivery_order_from_greeting_to_confirmation() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let mut feed = Feed::of(&p, 0).await;
    let chat = Chat::new(&p, r, customer(1), Some("Sara"));
    let (kebab, kebab_price) = menu_item(&p, r, "Lamb Kebab").await;
    let (laban, laban_price) = menu_item(&p, r, "Laban").await;
    let delivery_fee: i64 =
        sqlx::query_scalar("SELECT delivery_fee FROM restaurants WHERE id = $1")
            .bind(r.id)
            .fetch_one(p.env.pool())
            .await
            .unwrap();
    let subtotal = 2 * kebab_price + 3 * laban_price;
    let total = subtotal + delivery_fee;

    let greeting = chat.text("hello").await;
    assert_eq!(greeting.len(), 1);
    assert!(greeting[0].body.contains("Sara"), "{}", greeting[0].body);
    assert!(
        greeting[0].body.contains("alpha Grill"),
        "{}",
        greeting[0].body
    );
    assert_eq!(
        choice_ids(&greeting),
        ["ful:delivery", "ful:pickup", "lang:ar"]
    );

    let ask_location = chat.tap(&opt(&greeting, "ful:delivery", "")).await;
    assert_eq!(ask_location.last().unwrap().payload["template"], "location");

    let categories = chat.location(NEAR_OLAYA, ADDRESS).await;
    let text = all_text(&categories);
    assert!(text.contains("Olaya"), "{text}");
    assert_eq!(categories.last().unwrap().payload["template"], "categories");
    let ids = choice_ids(&categories);
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("cat:")), "{ids:?}");

    // A list row tapped, then an item chosen by typing its number.
    let grills = chat.pick(&opt(&categories, "cat:", "Grills")).await;
    assert_eq!(grills.last().unwrap().payload["template"], "items");
    let quantity = chat
        .text(&numbered(&grills.last().unwrap().body, "Lamb Kebab"))
        .await;
    assert!(all_text(&quantity).contains("Lamb Kebab"));
    assert_eq!(choice_ids(&quantity), ["qty:1", "qty:2", "qty:3"]);
    let added = chat.tap(&opt(&quantity, "qty:2", "")).await;
    assert!(
        all_text(&added).contains("2 × Lamb Kebab"),
        "{}",
        all_text(&added)
    );

    let categories = chat.tap(&opt(&added, "act:more", "")).await;
    let drinks = chat.pick(&opt(&categories, "cat:", "Drinks")).await;
    let quantity = chat.pick(&opt(&drinks, "item:", "Laban")).await;
    let added = chat.text("3").await;
    assert!(
        all_text(&added).contains("3 × Laban"),
        "{}",
        all_text(&added)
    );
    assert_eq!(quantity.last().unwrap().payload["template"], "quantity");

    let checkout = chat.tap(&opt(&added, "act:checkout", "")).await;
    assert_eq!(checkout.len(), 2, "summary, then the payment question");
    let summary = &checkout[0].body;
    assert!(
        summary.contains(&format!("Subtotal: {}", sar(subtotal))),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("Delivery fee: {}", sar(delivery_fee))),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("Total: {}", sar(total))),
        "{summary}"
    );
    assert!(summary.contains(ADDRESS), "{summary}");
    assert_eq!(choice_ids(&checkout), ["pay:cash", "pay:online"]);

    let confirm = chat.tap(&opt(&checkout, "pay:cash", "")).await;
    assert!(all_text(&confirm).contains(&sar(total)));
    let placing = chat.tap(&opt(&confirm, "act:confirm", "")).await;
    assert!(all_text(&placing).contains("Placing your order"));

    // The order stage created and confirmed it, priced from the menu.
    let o = newest_order(&chat, "CONFIRMED").await;
    assert_eq!(o.fulfilment, "delivery");
    assert_eq!(o.payment_method, "cash");
    assert_eq!(o.branch_id, Some(branch_id(&p, r, "Olaya").await));
    let address = o.address.clone().unwrap_or_default();
    assert!(address.contains(ADDRESS), "{address}");
    assert!(
        address.contains("maps.google.com/?q=24.700000,46.690000"),
        "{address}"
    );
    assert_eq!(
        (o.subtotal, o.delivery_fee, o.total),
        (subtotal, delivery_fee, total)
    );
    let lines: Vec<(Uuid, String, i64, i64, i64)> = o
        .lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["item_id"].as_str().unwrap().parse().unwrap(),
                l["name"].as_str().unwrap().to_string(),
                l["quantity"].as_i64().unwrap(),
                l["unit_price"].as_i64().unwrap(),
                l["line_total"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (kebab, "Lamb Kebab".into(), 2, kebab_price, 2 * kebab_price),
            (laban, "Laban".into(), 3, laban_price, 3 * laban_price),
        ]
    );
    let actor = format!("customer:{}", chat.from);
    assert_eq!(
        history(&p, o.id).await,
        vec![
            (None, "DRAFT".into(), actor.clone(), None),
            (Some("DRAFT".into()), "CONFIRMED".into(), actor, None),
        ]
    );

    // The dashboard hears of it; the customer gets the order number.
    let created = feed
        .find("order.created", |d| d["id"] == o.id.to_string())
        .await;
    assert_eq!(created["data"]["status"], "CONFIRMED");
    assert_eq!(created["data"]["number"], o.number);
    assert_eq!(created["data"]["total"], total);
    assert_eq!(created["data"]["lines"].as_array().unwrap().len(), 2);
    let confirmed = chat
        .received(&format!("Order #{} is confirmed", o.number))
        .await;
    assert!(confirmed.body.unwrap().contains(&sar(total)));
}

#[tokio::test]
async fn an_arabic_pickup_order_is_answered_in_arabic_and_ticketed_to_staff() {
    let p = Pipeline::start_with(waiter_e2e::Options {
        restaurants: vec![("beta", "ar")],
        ..Default::default()
    })
    .await;
    let r = p.restaurant(0);
    let staff = "whatsapp:+966533330000";
    sqlx::query("UPDATE restaurants SET staff_whatsapp = $2 WHERE id = $1")
        .bind(r.id)
        .bind(staff)
        .execute(p.env.pool())
        .await
        .unwrap();
    p.sim.set_last_inbound(&r.number, staff, Some(Utc::now()));
    let chat = Chat::new(&p, r, customer(2), None);
    let (tawook, tawook_price) = menu_item(&p, r, "Chicken Shish Tawook").await;

    let greeting = chat.text("السلام عليكم").await;
    assert!(
        greeting[0].body.contains("مشويات beta"),
        "{}",
        greeting[0].body
    );
    assert_eq!(
        choice_ids(&greeting),
        ["ful:delivery", "ful:pickup", "lang:en"]
    );
    let branches = chat.tap(&opt(&greeting, "ful:pickup", "")).await;
    let ids = choice_ids(&branches);
    assert_eq!(ids.len(), 2, "{ids:?}");
    // The branch chosen by typing its number from the Arabic text.
    let categories = chat
        .text(&numbered(&branches.last().unwrap().body, "الملقا"))
        .await;
    assert!(all_text(&categories).contains("الملقا"));
    let items = chat.pick(&opt(&categories, "cat:", "المشويات")).await;
    let quantity = chat.pick(&opt(&items, "item:", "شيش طاووق")).await;
    let added = chat.tap(&opt(&quantity, "qty:2", "")).await;
    let checkout = chat.tap(&opt(&added, "act:checkout", "")).await;
    assert!(checkout[0].body.contains(&sar(2 * tawook_price)));
    let confirm = chat.tap(&opt(&checkout, "pay:cash", "")).await;
    chat.tap(&opt(&confirm, "act:confirm", "")).await;

    let o = newest_order(&chat, "CONFIRMED").await;
    assert_eq!(o.fulfilment, "pickup");
    assert_eq!(o.branch_id, Some(branch_id(&p, r, "Al Malqa").await));
    assert_eq!(o.address, None);
    assert_eq!(o.lines[0]["item_id"], tawook.to_string());
    assert_eq!(o.lines[0]["quantity"], 2);
    assert_eq!(
        (o.subtotal, o.delivery_fee, o.total),
        (2 * tawook_price, 0, 2 * tawook_price)
    );
    // "✅ تم تأكيد طلبك رقم #N! …"
    let confirmed = chat.received("تم تأكيد").await;
    let confirmed = confirmed.body.unwrap();
    assert!(confirmed.contains(&format!("#{}", o.number)), "{confirmed}");
    assert!(confirmed.contains(&sar(o.total)), "{confirmed}");

    // Everything the customer read is Arabic.
    let sent = p.sim.sent_to(&chat.from);
    assert!(sent.len() >= 9, "{sent:?}");
    for m in &sent {
        let body = m.body.as_deref().unwrap_or("");
        assert!(has_arabic(body), "not Arabic: {body}");
    }

    // Staff got the ticket in the restaurant's language.
    let tickets = p.sim.wait_for_sent(staff, 1, WAIT).await;
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let ticket = tickets[0].body.clone().unwrap();
    for part in [
        "طلب جديد",
        &format!("#{}", o.number),
        "الملقا",
        "شيش طاووق",
        &sar(o.total),
        "نقداً",
        "+966500000002",
    ] {
        assert!(
            ticket.contains(part),
            "{part} missing from the ticket {ticket}"
        );
    }
}

#[tokio::test]
async fn staff_move_the_order_on_and_the_customer_is_told() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let mut feed = Feed::of(&p, 0).await;
    let chat = Chat::new(&p, r, customer(3), Some("Omar"));
    let o = place_order(&chat, None).await;
    let n = o.number;

    for (status, told) in [
        ("PREPARING", format!("Order #{n} is being prepared")),
        ("OUT_FOR_DELIVERY", format!("Order #{n} is on its way")),
        ("DELIVERED", format!("Order #{n} has been delivered")),
    ] {
        let (code, body) = set_status(&p, 0, o.id, status).await;
        assert_eq!(code, 200, "{status}: {body}");
        assert_eq!(body["status"], status);
        assert_eq!(body["id"], o.id.to_string());
        assert_eq!(order(&p, o.id).await.status, status);
        chat.received(&told).await;
        feed.find("order.updated", |d| {
            d["id"] == o.id.to_string() && d["status"] == status
        })
        .await;
    }
    let moves = history(&p, o.id).await;
    assert_eq!(moves.len(), 5, "{moves:?}");
    for (from, to, actor, _) in &moves[2..] {
        assert_eq!(actor, "staff:test-user", "{from:?} → {to}");
    }

    // An illegal move is refused with its reason and changes nothing.
    let updated_at: chrono::DateTime<Utc> =
        sqlx::query_scalar("SELECT updated_at FROM orders WHERE id = $1")
            .bind(o.id)
            .fetch_one(p.env.pool())
            .await
            .unwrap();
    let (code, body) = set_status(&p, 0, o.id, "PREPARING").await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["error"], "illegal_transition");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("DELIVERED") && reason.contains("PREPARING"),
        "{reason}"
    );
    assert_eq!(order(&p, o.id).await.status, "DELIVERED");
    assert_eq!(history(&p, o.id).await, moves);
    let after: chrono::DateTime<Utc> =
        sqlx::query_scalar("SELECT updated_at FROM orders WHERE id = $1")
            .bind(o.id)
            .fetch_one(p.env.pool())
            .await
            .unwrap();
    assert_eq!(after, updated_at);
}

#[tokio::test]
async fn a_delivered_order_is_rated_once_and_a_low_rating_alerts_staff() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let mut feed = Feed::of(&p, 0).await;
    // Two orders and their ratings are more than the default 20 messages a
    // minute a customer may send before the bot stops answering.
    sqlx::query("UPDATE restaurants SET customer_rate_per_minute = 100 WHERE id = $1")
        .bind(r.id)
        .execute(p.env.pool())
        .await
        .unwrap();
    let chat = Chat::new(&p, r, customer(4), Some("Lina"));
    chat.text("hello").await;
    let (conversation, _) = chat.conversation().await;
    let commands = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND kind = 'order.command'",
        )
        .bind(conversation)
        .fetch_one(p.env.pool())
        .await
        .unwrap()
    };

    let first = place_order(&chat, None).await;
    deliver(&p, first.id).await;
    chat.received(&format!("Order #{} has been delivered", first.number))
        .await;
    let prompt = chat.last_sent("rating_prompt").await;
    assert!(prompt.body.contains(&format!("#{}", first.number)));
    assert_eq!(
        choice_ids(std::slice::from_ref(&prompt)),
        ["now", "later", "help"].map(|a| format!("rate:{}:{a}", first.id))
    );

    let stars = chat
        .tap(&opt(
            std::slice::from_ref(&prompt),
            &format!("rate:{}:now", first.id),
            "",
        ))
        .await;
    assert_eq!(stars.last().unwrap().payload["template"], "rating_list");
    assert_eq!(choice_ids(&stars).len(), 5);
    let thanks = chat
        .pick(&opt(&stars, &format!("rate:{}:5", first.id), ""))
        .await;
    let text = all_text(&thanks);
    assert!(text.contains("Thank you for your rating"), "{text}");
    assert!(text.contains("https://example.com/alpha/offers"), "{text}");
    let rated = feed
        .find("order.rated", |d| d["id"] == first.id.to_string())
        .await;
    assert_eq!(rated["data"]["rating"], 5);
    let o = eventually("the order is RATED", WAIT, || async {
        let o = order(&p, first.id).await;
        (o.status == "RATED").then_some(o)
    })
    .await;
    assert_eq!(o.rating, Some(5));

    // A free-text comment follows the rating.
    let comment = "The kebab was perfect, thank you";
    let answer = chat.text(comment).await;
    assert!(
        all_text(&answer).contains("comment"),
        "{}",
        all_text(&answer)
    );
    eventually("the comment is stored", WAIT, || async {
        (order(&p, first.id).await.rating_comment.as_deref() == Some(comment)).then_some(())
    })
    .await;

    // Tapping a rating again (an old list row) rates nothing again.
    let before = commands().await;
    let again = chat
        .pick(&opt(&stars, &format!("rate:{}:1", first.id), ""))
        .await;
    assert!(
        all_text(&again).contains("already rated"),
        "{}",
        all_text(&again)
    );
    assert_eq!(
        commands().await,
        before,
        "no order command for a second rating"
    );
    let o = order(&p, first.id).await;
    assert_eq!((o.status.as_str(), o.rating), ("RATED", Some(5)));

    // Another order, rated 2 by typing it: an apology, the support contact
    // and an alert for the dashboard.
    let second = place_order(&chat, None).await;
    deliver(&p, second.id).await;
    chat.received(&format!("Order #{} has been delivered", second.number))
        .await;
    let prompt = chat.last_sent("rating_prompt").await;
    assert!(prompt.body.contains(&format!("#{}", second.number)));
    chat.tap(&opt(
        std::slice::from_ref(&prompt),
        &format!("rate:{}:now", second.id),
        "",
    ))
    .await;
    let sorry = chat.text("2").await;
    let text = all_text(&sorry);
    assert!(text.contains("sorry"), "{text}");
    assert!(text.contains("+966500000001"), "{text}");
    let alert = feed
        .find("alert.low_rating", |d| d["id"] == second.id.to_string())
        .await;
    assert_eq!(alert["data"]["rating"], 2);
    let o = eventually("the second order is RATED", WAIT, || async {
        let o = order(&p, second.id).await;
        (o.status == "RATED").then_some(o)
    })
    .await;
    assert_eq!(o.rating, Some(2));
    // Events arrive in stream order: the first order's are all seen by now.
    assert_eq!(
        feed.count("alert.low_rating", |d| d["id"] == first.id.to_string()),
        0
    );
    assert_eq!(
        feed.count("order.rated", |d| d["id"] == first.id.to_string()),
        1
    );
    assert_eq!(order(&p, first.id).await.rating, Some(5));
}

#[tokio::test]
async fn a_staff_message_hands_the_conversation_over_until_the_bot_is_resumed() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let mut feed = Feed::of(&p, 0).await;
    let chat = Chat::new(&p, r, customer(5), Some("Huda"));
    chat.text("hello").await;
    let (conversation, active) = chat.conversation().await;
    assert!(active);

    let staff_text = "Hi Huda, this is Omar from the kitchen.";
    let (code, body) = post_json(
        &p,
        &format!("conversations/{conversation}/send"),
        json!({ "message": staff_text }),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let message_id: Uuid = body["message_id"].as_str().unwrap().parse().unwrap();
    let received = chat.received(staff_text).await;
    let author: String = sqlx::query_scalar("SELECT author FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_one(p.env.pool())
        .await
        .unwrap();
    assert_eq!(author, "staff");
    assert_eq!(chat.conversation().await, (conversation, false));
    assert!(received.body.is_some());

    // The customer's answer is stored and shown, and the bot keeps quiet.
    let answer = "Great, is it ready?";
    let inbound = chat.unanswered(answer).await;
    let shown = feed.find("message.received", |d| d["body"] == answer).await;
    assert_eq!(shown["data"]["id"], inbound.to_string());
    assert_eq!(shown["data"]["conversation_id"], conversation.to_string());

    // Resumed, the bot answers again.
    let (code, body) = post_json(
        &p,
        &format!("conversations/{conversation}/bot"),
        json!({ "active": true }),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    eventually("the bot is active again", WAIT, || async {
        chat.conversation().await.1.then_some(())
    })
    .await;
    let greeting = chat.text("hi").await;
    assert!(
        all_text(&greeting).contains("welcome"),
        "{}",
        all_text(&greeting)
    );
    // Nothing went out for the unanswered message: the greeting, the staff
    // message and the new greeting, in that order (one partition, in order).
    let bodies: Vec<String> = p
        .sim
        .sent_to(&chat.from)
        .into_iter()
        .map(|m| m.body.unwrap_or_default())
        .collect();
    assert_eq!(bodies.len(), 3, "{bodies:#?}");
    assert_eq!(bodies[1], staff_text);
    assert_eq!(bodies[2], greeting[0].body);
}

#[tokio::test]
async fn messages_over_the_customer_limit_are_stored_and_audited_but_not_answered() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    // Before any message: the router has nothing of this restaurant cached.
    sqlx::query("UPDATE restaurants SET customer_rate_per_minute = 2 WHERE id = $1")
        .bind(r.id)
        .execute(p.env.pool())
        .await
        .unwrap();
    let mut feed = Feed::of(&p, 0).await;
    let chat = Chat::new(&p, r, customer(6), None);

    let texts = ["hello", "help", "menu", "hi"];
    let mut sids = vec![];
    for text in texts {
        let answer = p.sim.send_inbound(chat.spec(text)).await.unwrap();
        assert_eq!(answer.status, 200);
        sids.push(answer.message_sid);
    }
    let mut rows = vec![];
    for sid in &sids {
        let row: (Uuid, String, Option<String>) =
            eventually("every message is stored", WAIT, || async {
                sqlx::query_as("SELECT id, body, limited_reason FROM messages WHERE wa_sid = $1")
                    .bind(sid)
                    .fetch_optional(p.env.pool())
                    .await
                    .unwrap()
            })
            .await;
        rows.push(row);
    }
    let bodies: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(bodies, texts);
    assert_eq!(rows[0].2, None);
    assert_eq!(rows[1].2, None);
    for (_, body, limited) in &rows[2..] {
        assert!(
            limited.as_deref().is_some_and(|l| l.contains("limit")),
            "{body}: {limited:?}"
        );
    }
    // The bot answered the first two, and only them.
    let mut answered = vec![];
    for (id, _, _) in &rows {
        answered.push(chat.replies_to(*id).await);
    }
    assert!(!answered[0].is_empty() && !answered[1].is_empty());
    assert!(
        answered[2].is_empty() && answered[3].is_empty(),
        "{answered:#?}"
    );
    let replies: Vec<Out> = answered.concat();
    chat.delivered(&replies).await;
    assert_eq!(p.sim.sent_to(&chat.from).len(), replies.len());

    // Audited as rate limited, and shown on the dashboard as limited.
    for sid in &sids[2..] {
        let outcome: String = eventually("the audit row", WAIT, || async {
            sqlx::query_scalar(
                "SELECT outcome FROM webhook_audit WHERE message_sid = $1 AND outcome <> 'accepted'",
            )
            .bind(sid)
            .fetch_optional(p.env.pool())
            .await
            .unwrap()
        })
        .await;
        assert_eq!(outcome, "rate_limited");
    }
    for sid in &sids[..2] {
        let n = p
            .count(
                "SELECT count(*) FROM webhook_audit WHERE message_sid = $1 AND outcome = 'rate_limited'",
                sid,
            )
            .await;
        assert_eq!(n, 0);
    }
    let shown = feed.find("message.received", |d| d["body"] == "hi").await;
    assert_eq!(shown["data"]["limited"], true);
    let shown = feed
        .find("message.received", |d| d["body"] == "hello")
        .await;
    assert_eq!(shown["data"]["limited"], false);
}

#[tokio::test]
async fn a_confirmed_order_is_ticketed_to_the_branch_staff_number_else_the_restaurants() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let pool = p.env.pool();
    let restaurant_staff = "whatsapp:+966511110000";
    let malqa_staff = "whatsapp:+966522220000";
    sqlx::query("UPDATE restaurants SET staff_whatsapp = $2 WHERE id = $1")
        .bind(r.id)
        .bind(restaurant_staff)
        .execute(pool)
        .await
        .unwrap();
    // Stored without the prefix: still a WhatsApp address.
    sqlx::query(
        "UPDATE branches SET staff_whatsapp = $2 WHERE restaurant_id = $1 AND name_en = 'Al Malqa'",
    )
    .bind(r.id)
    .bind(malqa_staff.trim_start_matches("whatsapp:"))
    .execute(pool)
    .await
    .unwrap();
    // Free-form messages reach a number only within its 24-hour window.
    for staff in [restaurant_staff, malqa_staff] {
        p.sim.set_last_inbound(&r.number, staff, Some(Utc::now()));
    }
    let mut feed = Feed::of(&p, 0).await;
    let staff_conversation = |number: &'static str| async move {
        sqlx::query_as::<_, (Uuid, bool)>(
            "SELECT id, bot_active FROM conversations WHERE restaurant_id = $1 AND customer = $2",
        )
        .bind(r.id)
        .bind(number)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let tickets_in = |conversation: Uuid| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM messages WHERE conversation_id = $1 AND author = 'system' AND direction = 'out'",
        )
        .bind(conversation)
        .fetch_one(pool)
        .await
        .unwrap()
    };

    // Delivery from Olaya, which has no number of its own: the restaurant's.
    let sara = Chat::new(&p, r, customer(7), Some("Sara"));
    let first = place_order(&sara, None).await;
    let tickets = p.sim.wait_for_sent(restaurant_staff, 1, WAIT).await;
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let ticket = tickets[0].body.clone().unwrap();
    for part in [
        format!("New order #{}", first.number),
        "Delivery from Olaya".into(),
        ADDRESS.into(),
        "2 × Chicken Shish Tawook".into(),
        format!("Total: {}", sar(first.total)),
        "Cash on delivery".into(),
        "Sara".into(),
        "+966500000007".into(),
    ] {
        assert!(
            ticket.contains(&part),
            "{part} missing from the ticket {ticket}"
        );
    }
    assert_eq!(tickets[0].from.as_deref(), Some(r.number.as_str()));
    let (staff_id, bot_active) = staff_conversation(restaurant_staff).await;
    assert!(!bot_active, "the staff number's bot is off");
    assert_eq!(tickets_in(staff_id).await, 1);
    let row: (String, Option<String>) = sqlx::query_as(
        "SELECT body, wa_sid FROM messages WHERE conversation_id = $1 AND author = 'system'",
    )
    .bind(staff_id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(row.0, ticket);
    feed.find("conversation.updated", |d| {
        d["id"] == staff_id.to_string() && d["bot_active"] == false
    })
    .await;

    // Pickup at Al Malqa: the branch's number.
    let omar = Chat::new(&p, r, customer(8), Some("Omar"));
    let second = place_order(&omar, Some("Al Malqa")).await;
    let tickets = p.sim.wait_for_sent(malqa_staff, 1, WAIT).await;
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let ticket = tickets[0].body.clone().unwrap();
    for part in [
        format!("New order #{}", second.number),
        "Pickup at Al Malqa".into(),
        "Cash at pickup".into(),
        "Omar".into(),
    ] {
        assert!(
            ticket.contains(&part),
            "{part} missing from the ticket {ticket}"
        );
    }
    assert!(!ticket.contains("Delivery fee"), "{ticket}");
    assert_eq!(
        tickets_in(staff_id).await,
        1,
        "nothing more for the restaurant's number"
    );

    // Later changes send no ticket (the notice and any ticket are one transaction).
    let (code, _) = set_status(&p, 0, first.id, "PREPARING").await;
    assert_eq!(code, 200);
    sara.received(&format!("Order #{} is being prepared", first.number))
        .await;
    assert_eq!(tickets_in(staff_id).await, 1);

    // Staff answering the ticket are never answered by the bot, not even
    // after the bot's idle time, which brings it back for a customer.
    let staff = Chat::new(&p, r, restaurant_staff.to_string(), Some("Kitchen"));
    staff.unanswered("👍 on it").await;
    let long_ago =
        "UPDATE conversations SET bot_active = false, bot_paused_at = now() - interval '3 hours' \
                    WHERE restaurant_id = $1 AND customer = $2";
    for who in [restaurant_staff, sara.from.as_str()] {
        sqlx::query(long_ago)
            .bind(r.id)
            .bind(who)
            .execute(pool)
            .await
            .unwrap();
    }
    staff.unanswered("ready in 10").await;
    assert!(!staff_conversation(restaurant_staff).await.1);
    sara.text("hi").await;
    assert!(
        sara.conversation().await.1,
        "a customer's bot resumes after idle"
    );
    assert_eq!(p.sim.sent_to(restaurant_staff).len(), 1);
}

#[tokio::test]
async fn a_ticket_to_a_staff_number_outside_its_24_hour_window_fails_with_63016() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let staff = "whatsapp:+966544440000";
    sqlx::query("UPDATE restaurants SET staff_whatsapp = $2 WHERE id = $1")
        .bind(r.id)
        .bind(staff)
        .execute(p.env.pool())
        .await
        .unwrap();
    // The staff number never wrote to the restaurant: no session window.
    let chat = Chat::new(&p, r, customer(9), None);
    let placed = place_order(&chat, None).await;

    let (status, code): (String, Option<String>) =
        eventually("the ticket is refused by Twilio", WAIT, || async {
            let row: Option<(String, Option<String>)> = sqlx::query_as(
                "SELECT m.status, m.error_code FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                 WHERE c.restaurant_id = $1 AND c.customer = $2 AND m.author = 'system'",
            )
            .bind(r.id)
            .bind(staff)
            .fetch_optional(p.env.pool())
            .await
            .unwrap();
            row.filter(|(status, _)| status == "failed")
        })
        .await;
    assert_eq!(
        (status.as_str(), code.as_deref()),
        ("failed", Some("63016"))
    );
    let refused = p
        .sim
        .requests()
        .into_iter()
        .filter(|q| q.param("To") == Some(staff))
        .collect::<Vec<_>>();
    assert_eq!(refused.len(), 1, "a permanent failure is not retried");
    assert_eq!(refused[0].error_code, Some(63016));
    assert!(refused[0]
        .param("Body")
        .is_some_and(|b| b.contains(&format!("New order #{}", placed.number))));
    assert!(p.sim.sent_to(staff).is_empty());
}
