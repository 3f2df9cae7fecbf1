//! Marketing opt-out: STOP / START and their Arabic words, and Twilio's
//! 21610, through the whole pipeline.

use twilio_sim::Fault;
use uuid::Uuid;
use waiter_e2e::{chat::*, Pipeline};
use waiter_harness::eventually;

use super::{deliver_and_rate, listed, many_messages_a_minute};

const PROMO: &str = "https://example.com/alpha/offers";

/// Places an order, has staff deliver it, and rates it 5 stars: the text
/// of the thanks.
async fn rate_five(p: &Pipeline, chat: &Chat<'_>) -> String {
    let order = place_order(chat, None).await;
    let thanks = deliver_and_rate(p, chat, &order, 5).await;
    let text = all_text(&thanks);
    assert!(text.contains("Thank you for your rating"), "{text}");
    text
}

async fn consent_row(p: &Pipeline, restaurant: Uuid, customer: &str) -> Option<(bool, String)> {
    sqlx::query_as(
        "SELECT opted_out, source FROM marketing_consent WHERE restaurant_id = $1 AND customer = $2",
    )
    .bind(restaurant)
    .bind(customer)
    .fetch_optional(p.env.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn stop_then_a_five_star_rating_sends_no_promo_and_start_brings_it_back() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    many_messages_a_minute(&p, r.id).await;
    let chat = Chat::new(&p, r, customer(311), Some("Nora"));
    chat.text("hello").await;
    let (conversation, _) = chat.conversation().await;
    assert!(listed(&p, conversation).await["marketing"].is_null());

    let confirmed = all_text(&chat.text("Stop").await);
    assert!(
        confirmed.contains("no longer receive offers"),
        "{confirmed}"
    );
    let entry = listed(&p, conversation).await;
    assert_eq!(entry["marketing"]["opted_out"], true, "{entry}");
    assert_eq!(entry["marketing"]["source"], "keyword", "{entry}");
    assert!(entry["marketing"]["changed_at"].is_string(), "{entry}");
    // Confirmed once: a second STOP is not answered again.
    chat.unanswered("STOP").await;

    // Messages about her order still come; the promo link does not.
    let thanks = rate_five(&p, &chat).await;
    assert!(!thanks.contains(PROMO), "{thanks}");
    assert!(p.sim.sent_to(&chat.from).iter().all(|m| !m
        .body
        .as_deref()
        .unwrap_or("")
        .contains(PROMO)));

    let back = all_text(&chat.text("START").await);
    assert!(back.contains("receive offers"), "{back}");
    assert_eq!(
        consent_row(&p, r.id, &chat.from).await,
        Some((false, "keyword".into()))
    );
    let thanks = rate_five(&p, &chat).await;
    assert!(thanks.contains(PROMO), "{thanks}");
}

#[tokio::test]
async fn arabic_opt_out_words_are_confirmed_in_arabic() {
    let p = Pipeline::start_with(waiter_e2e::Options {
        restaurants: vec![("beta", "ar")],
        ..Default::default()
    })
    .await;
    let r = p.restaurant(0);
    let chat = Chat::new(&p, r, customer(312), None);
    chat.text("مرحبا").await;
    let confirmed = all_text(&chat.text("إلغاء الاشتراك").await);
    assert!(
        has_arabic(&confirmed) && confirmed.contains("اشتراك"),
        "{confirmed}"
    );
    assert_eq!(
        consent_row(&p, r.id, &chat.from).await,
        Some((true, "keyword".into()))
    );
    chat.text("اشتراك").await;
    assert_eq!(
        consent_row(&p, r.id, &chat.from).await,
        Some((false, "keyword".into()))
    );
    chat.text("إيقاف").await;
    assert_eq!(
        consent_row(&p, r.id, &chat.from).await,
        Some((true, "keyword".into()))
    );
}

#[tokio::test]
async fn twilio_reporting_the_number_unsubscribed_opts_it_out() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let chat = Chat::new(&p, r, customer(313), None);
    p.sim.inject_fault(Fault {
        to: Some(chat.from.clone()),
        ..Fault::new(400, 21610)
    });
    let inbound = chat.post(chat.spec("hello")).await;
    eventually("Twilio's 21610 opts the customer out", WAIT, || async {
        consent_row(&p, r.id, &chat.from)
            .await
            .filter(|row| row == &(true, "twilio_21610".to_string()))
    })
    .await;
    let failed = p
        .count(
            "SELECT count(*) FROM messages WHERE reply_to::text = $1 AND error_code = '21610'",
            &inbound.to_string(),
        )
        .await;
    assert_eq!(failed, 1);
    // Not confirmed to them: Twilio would refuse it too.
    assert!(p.sim.sent_to(&chat.from).is_empty());
}
