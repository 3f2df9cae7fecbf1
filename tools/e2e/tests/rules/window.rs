//! The 24-hour window: staff replies and kitchen tickets.

use chrono::{TimeDelta, Utc};
use reqwest::Method;
use serde_json::json;
use waiter_e2e::{chat::*, Pipeline};
use waiter_harness::eventually;
use waiter_migrations::templates;

use super::{api, content_sid, listed};

#[tokio::test]
async fn a_staff_reply_outside_the_window_is_refused_unless_an_approved_template_is_chosen() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let chat = Chat::new(&p, r, customer(301), Some("Huda"));
    chat.text("hello").await;
    let (conversation, _) = chat.conversation().await;

    let open = listed(&p, conversation).await;
    assert_eq!(open["window_open"], true, "{open}");
    assert!(open["window_closes_at"].is_string(), "{open}");

    // Her last message was 25 hours ago, for us and for "Twilio".
    let long_ago = Utc::now() - TimeDelta::hours(25);
    sqlx::query("UPDATE conversations SET last_inbound_at = $2 WHERE id = $1")
        .bind(conversation)
        .bind(long_ago)
        .execute(p.env.pool())
        .await
        .unwrap();
    p.sim
        .set_last_inbound(&r.number, &chat.from, Some(long_ago));
    let closed = listed(&p, conversation).await;
    assert_eq!(closed["window_open"], false, "{closed}");
    let closes_at: chrono::DateTime<Utc> =
        serde_json::from_value(closed["window_closes_at"].clone()).unwrap();
    assert!(
        (closes_at - (long_ago + TimeDelta::hours(24)))
            .num_seconds()
            .abs()
            <= 1
    );

    let path = format!("conversations/{conversation}/send");
    let send = |body: serde_json::Value| api(&p, Method::POST, &path, Some(body));
    let sid = content_sid(9);
    let register = |approved| {
        templates::set(
            p.env.pool(),
            r.id,
            templates::STAFF_REPLY,
            "en",
            &sid,
            approved,
        )
    };
    let refused_text = "Your table is ready whenever you are";
    let (status, body) = send(json!({"message": refused_text})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "outside_session_window", "{body}");
    // A template that is not registered (or not approved) is no way round.
    let (status, body) = send(json!({"message": refused_text, "template": "staff_reply"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "template_not_approved", "{body}");
    register(false).await.unwrap();
    let (status, _) = send(json!({"message": refused_text, "template": "staff_reply"})).await;
    assert_eq!(status, 409, "an unapproved template is refused too");

    // With the approved template it goes, as the template.
    register(true).await.unwrap();
    let text = "We kept your favourite table for Friday";
    let (status, body) = send(json!({"message": text, "template": "staff_reply"})).await;
    assert_eq!(status, 202, "{body}");
    let sent = eventually("the templated reply reaches Twilio", WAIT, || async {
        p.sim
            .sent_to(&chat.from)
            .into_iter()
            .find(|m| m.content_sid.is_some())
    })
    .await;
    assert_eq!(sent.content_sid, Some(content_sid(9)));
    let variables: serde_json::Value =
        serde_json::from_str(sent.content_variables.as_deref().unwrap()).unwrap();
    assert_eq!(variables["1"], text);

    // The refused replies were never queued: the conversation stage
    // handles its inputs in order, so they would be stored before this one.
    let staff_rows = p
        .count(
            "SELECT count(*) FROM messages WHERE author = 'staff' AND conversation_id::text = $1",
            &conversation.to_string(),
        )
        .await;
    assert_eq!(staff_rows, 1);
    assert!(p
        .sim
        .requests()
        .iter()
        .all(|q| !q.param("Body").unwrap_or("").contains(refused_text)
            && !q
                .param("ContentVariables")
                .unwrap_or("")
                .contains(refused_text)));
}

#[tokio::test]
async fn a_ticket_to_a_staff_number_outside_its_window_goes_as_the_approved_ticket_template() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let staff = "whatsapp:+966544440301";
    sqlx::query("UPDATE restaurants SET staff_whatsapp = $2 WHERE id = $1")
        .bind(r.id)
        .bind(staff)
        .execute(p.env.pool())
        .await
        .unwrap();
    templates::set(
        p.env.pool(),
        r.id,
        templates::TICKET,
        "en",
        &content_sid(7),
        true,
    )
    .await
    .unwrap();
    // The staff number never wrote to the restaurant: its window is closed.
    let chat = Chat::new(&p, r, customer(302), None);
    let placed = place_order(&chat, None).await;

    let tickets = p.sim.wait_for_sent(staff, 1, WAIT).await;
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    assert_eq!(tickets[0].content_sid, Some(content_sid(7)));
    let variables: serde_json::Value =
        serde_json::from_str(tickets[0].content_variables.as_deref().unwrap()).unwrap();
    assert_eq!(variables["1"], placed.number.to_string());
    assert!(
        variables["2"]
            .as_str()
            .unwrap()
            .contains("2 × Chicken Shish Tawook"),
        "{variables}"
    );
    assert_eq!(variables["3"], sar(placed.total));
    assert!(
        p.sim.requests().iter().all(|q| q.error_code != Some(63016)),
        "nothing was refused for the window"
    );
}
