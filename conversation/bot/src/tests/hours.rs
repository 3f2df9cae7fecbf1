//! Opening hours in the dialogue. The simulated clock starts on Friday
//! 2025-10-03 at 21:00 in Riyadh (18:00 UTC) and moves a minute per message.

use chrono::{TimeZone, Utc};
use waiter_hours::Schedule;
use waiter_nats::messages::{CartLine as OrderLine, OrderRefusal, RefusalReason};

use super::*;
use crate::{on_order_refused, Offers, Step};

fn hours(text: &str) -> Schedule {
    Schedule {
        weekly: Schedule::parse_weekly(text).unwrap(),
        closures: vec![],
    }
}

/// Both branches open at noon; closed at 21:00 on this Friday.
fn closed_tonight(lang: Lang) -> Sim {
    let mut sim = Sim::new(lang);
    for b in &mut sim.branches {
        b.schedule = hours("sat-thu 12:00-23:00; fri 12:00-20:00");
    }
    sim
}

#[test]
fn a_customer_writing_while_every_branch_is_closed_is_told_when_it_opens() {
    let mut sim = closed_tonight(Lang::En);
    let a = sim.text("hi");
    let text = said(&a);
    assert!(text.contains("Welcome to Bait Grill"), "{text}");
    assert!(
        text.contains("closed right now") && text.contains("opens tomorrow at 12:00"),
        "{text}"
    );
    assert_eq!(sim.dialogue.step, Step::Start);
    // Nothing gets them to an order: not the buttons of an older greeting.
    let a = sim.tap("ful:pickup");
    assert!(said(&a).contains("opens tomorrow at 12:00"), "{}", said(&a));
    let a = sim.location(NEAR_OLAYA);
    assert!(said(&a).contains("closed"), "{}", said(&a));
    assert!(placed(&a).is_none());
    assert_eq!(sim.dialogue.branch_id, None);
}

#[test]
fn arabic_customers_hear_the_opening_time_in_arabic() {
    let mut sim = closed_tonight(Lang::Ar);
    let a = sim.text("مرحبا");
    let text = said(&a);
    assert!(
        text.contains("مغلقون الآن") && text.contains("غداً الساعة"),
        "{text}"
    );
    assert!(text.contains("12:00"), "{text}");
}

#[test]
fn pickup_offers_only_the_branches_open_now() {
    let mut sim = Sim::new(Lang::En);
    sim.branches[0].schedule = hours("daily 10:00-11:00");
    sim.text("hi");
    // Al Malqa is the only open branch: chosen without asking.
    let a = sim.tap("ful:pickup");
    assert!(
        said(&a).contains("Pickup from our Al Malqa branch"),
        "{}",
        said(&a)
    );
    assert_eq!(sim.dialogue.branch_id, Some(MALQA));
}

#[test]
fn a_branch_that_closed_since_the_list_was_shown_says_when_it_opens() {
    let mut sim = Sim::new(Lang::En);
    sim.branches[0].schedule = hours("fri 12:00-21:05");
    sim.text("hi");
    let a = sim.tap("ful:pickup");
    assert_eq!(template(&a), "branch");
    sim.now = Utc.with_ymd_and_hms(2025, 10, 3, 18, 30, 0).unwrap();
    let a = sim.pick(&format!("branch:{OLAYA}"));
    let text = said(&a);
    assert!(
        text.contains("Olaya branch is closed right now; it opens on 10 October at 12:00"),
        "{text}"
    );
    assert_ne!(sim.dialogue.branch_id, Some(OLAYA));
    assert_eq!(
        sim.dialogue.step,
        Step::Branch,
        "the open branches are offered"
    );
    match last_interactive(&a) {
        Reply::Interactive { choices, .. } => {
            assert!(
                choices.iter().all(|c| !c.id.contains(&OLAYA.to_string())),
                "{choices:?}"
            )
        }
        _ => unreachable!(),
    }
}

#[test]
fn a_branch_that_only_delivers_is_not_offered_for_pickup() {
    let mut sim = Sim::new(Lang::En);
    sim.branches[1].offers = Offers::DeliveryOnly;
    sim.text("hi");
    let a = sim.tap("ful:pickup");
    assert!(
        said(&a).contains("Pickup from our Olaya branch"),
        "{}",
        said(&a)
    );
}

#[test]
fn delivery_from_a_closed_branch_is_refused_with_its_opening_time() {
    let mut sim = Sim::new(Lang::En);
    // Olaya covers NEAR_OLAYA and is closed; Al Malqa (open) does not reach it.
    sim.branches[0].schedule = hours("daily 10:00-11:00");
    sim.text("hi");
    sim.tap("ful:delivery");
    let a = sim.location(NEAR_OLAYA);
    let text = said(&a);
    assert!(text.contains("Olaya branch is closed right now"), "{text}");
    assert!(placed(&a).is_none());
    assert_eq!(sim.dialogue.step, Step::Start);
}

#[test]
fn a_branch_closing_before_the_customer_confirms_takes_no_order() {
    let mut sim = Sim::new(Lang::En);
    // Open until 21:05 Riyadh time; the customer needs longer than that.
    sim.branches[0].schedule = hours("fri 12:00-21:05");
    sim.branches[1].schedule = hours("fri 12:00-21:05");
    sim.start_pickup(OLAYA);
    sim.add(TAWOOK, 1);
    sim.tap("act:checkout");
    sim.now = Utc.with_ymd_and_hms(2025, 10, 3, 18, 10, 0).unwrap();
    let a = sim.tap("pay:cash");
    let a2 = sim.tap("act:confirm");
    assert!(placed(&a).is_none() && placed(&a2).is_none());
    let text = said(&a2);
    assert!(text.contains("closed") && text.contains("opens"), "{text}");
    assert_eq!(sim.dialogue.cart.len(), 1, "the cart is kept");
}

#[test]
fn a_placement_the_order_stage_refused_gives_the_cart_back_and_says_why() {
    let mut sim = Sim::new(Lang::En);
    sim.start_pickup(OLAYA);
    sim.add(TAWOOK, 2);
    sim.tap("act:checkout");
    sim.tap("pay:cash");
    let order_id = sim.next_order_id();
    assert!(placed(&sim.tap("act:confirm")).is_some());
    assert!(sim.dialogue.cart.is_empty());
    let refusal = OrderRefusal {
        restaurant_id: Uuid::nil(),
        conversation_id: Uuid::nil(),
        order_id,
        reason: RefusalReason::BranchClosed {
            branch_id: OLAYA,
            opens_at: Some(Utc.with_ymd_and_hms(2025, 10, 4, 9, 0, 0).unwrap()),
        },
        lines: vec![OrderLine {
            item_id: TAWOOK,
            quantity: 2,
        }],
        command_id: Uuid::nil(),
    };
    let mut dialogue = sim.dialogue.clone();
    let ctx = Context {
        restaurant: &sim.restaurant,
        menu: &sim.menu,
        branches: &sim.branches,
        now: sim.now,
        new_order_id: Uuid::from_u128(1),
        within_session_window: true,
    };
    let a = on_order_refused(&mut dialogue, &refusal, &ctx);
    let text = said(&a);
    assert!(
        text.contains(
            "couldn't place your order: our Olaya branch has closed. It opens tomorrow at 12:00"
        ),
        "{text}"
    );
    assert_eq!(dialogue.cart.len(), 1);
    assert_eq!(dialogue.cart[0].quantity, 2);
    assert_eq!(dialogue.last_order_id, None);
    assert!(dialogue.order(order_id).is_none());
}
