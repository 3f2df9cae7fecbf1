//! Order updates and the rating flow.

use super::*;
use crate::{keys, Step};

/// Places a pickup order and returns its id.
fn place(sim: &mut Sim) -> Uuid {
    sim.start_pickup(OLAYA);
    sim.add(TAWOOK, 1);
    sim.tap("act:checkout");
    sim.tap("pay:cash");
    let order_id = sim.next_order_id();
    let a = sim.tap("act:confirm");
    assert!(placed(&a).is_some());
    order_id
}

fn rated(actions: &[Action]) -> Vec<(Uuid, i16)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::RateOrder {
                order_id,
                rating,
                comment: None,
            } => Some((*order_id, *rating)),
            Action::RateOrder { .. } => panic!("a rating never carries the comment: {a:?}"),
            _ => None,
        })
        .collect()
}

#[test]
fn status_updates_then_the_rating_flow_with_buttons_and_a_comment() {
    let mut sim = Sim::new(Lang::En);
    let id = place(&mut sim);

    let a = sim.update(update(id, 42, OrderStatus::Confirmed));
    assert_eq!(
        said(&a),
        "✅ Order #42 is confirmed! Total: 52.00 SAR.\nWe'll let you know when it's on its way."
    );
    let a = sim.update(update(id, 42, OrderStatus::Preparing));
    assert_eq!(said(&a), "👨‍🍳 Order #42 is being prepared.");
    let a = sim.update(update(id, 42, OrderStatus::OutForDelivery));
    assert_eq!(said(&a), "🛵 Order #42 is on its way to you!");

    let a = sim.update(update(id, 42, OrderStatus::Delivered));
    assert_eq!(template(&a), "rating_prompt");
    assert!(said(&a).contains("🎉 Order #42 has been delivered. Enjoy your meal!"));
    assert!(said(&a).contains("How was everything?"));
    assert_eq!(
        choice_ids(&a),
        vec![
            format!("rate:{id}:now"),
            format!("rate:{id}:later"),
            format!("rate:{id}:help")
        ]
    );
    assert!(!last_interactive(&a).is_list());
    assert_eq!(sim.dialogue.step, Step::RatingPrompt);

    let a = sim.tap(&format!("rate:{id}:now"));
    assert_eq!(template(&a), "rating_list");
    assert!(last_interactive(&a).is_list());
    assert!(said(&a).contains("How would you rate order #42?"));
    assert_eq!(
        choice_ids(&a),
        (1..=5)
            .rev()
            .map(|n| format!("rate:{id}:{n}"))
            .collect::<Vec<_>>()
    );
    match last_interactive(&a) {
        Reply::Interactive { choices, .. } => assert_eq!(choices[0].title, "⭐⭐⭐⭐⭐ Excellent"),
        Reply::Text(_) => unreachable!(),
    }

    let a = sim.pick(&format!("rate:{id}:5"));
    assert_eq!(rated(&a), vec![(id, 5)]);
    assert!(said(&a).contains("Thank you for your rating!"));
    assert!(said(&a).contains("https://example.com/bait-grill/offers"));
    assert_eq!(template(&a), "rating_comment");
    assert_eq!(choice_ids(&a), vec![format!("rate:{id}:skip")]);
    assert_eq!(sim.dialogue.step, Step::RatingComment);

    // The order stage's RATED notice changes nothing here.
    let mut notice = update(id, 42, OrderStatus::Rated);
    notice.rating = Some(5);
    assert!(sim.update(notice).is_empty());
    assert_eq!(sim.dialogue.step, Step::RatingComment);

    let a = sim.text("The tawook was perfect, thanks!");
    assert_eq!(
        a.first(),
        Some(&Action::CommentOrder {
            order_id: id,
            comment: "The tawook was perfect, thanks!".into()
        })
    );
    assert!(said(&a).contains("We've passed your comment on to the team."));
    assert_eq!(sim.dialogue.step, Step::Start);
    assert!(sim.dialogue.is_rated(id));
}

#[test]
fn a_low_rating_in_arabic_gets_an_apology_and_the_support_contact() {
    let mut sim = Sim::new(Lang::Ar);
    let id = place(&mut sim);
    let a = sim.update(update(id, 12, OrderStatus::Delivered));
    assert!(
        said(&a).contains("تم توصيل طلبك رقم \u{2066}#12\u{2069}"),
        "{}",
        said(&a)
    );
    // The prompt's first option: rate now.
    let a = sim.text("١");
    assert_eq!(template(&a), "rating_list");
    match last_interactive(&a) {
        Reply::Interactive { choices, .. } => assert_eq!(choices[4].title, "⭐ سيئ"),
        Reply::Text(_) => unreachable!(),
    }
    let a = sim.text("٢");
    assert_eq!(rated(&a), vec![(id, 2)]);
    assert!(said(&a).contains("نأسف لأن تجربتك لم تكن كما يجب"));
    assert!(said(&a).contains("\u{2066}+966500000000\u{2069}"));
    assert!(!said(&a).contains("offers"));

    let a = sim.text("تخطي");
    assert_eq!(count(&a, |x| matches!(x, Action::CommentOrder { .. })), 0);
    assert!(said(&a).contains("شكراً لك مجدداً"));
    assert_eq!(sim.dialogue.step, Step::Start);
}

#[test]
fn ratings_typed_as_numbers_in_both_digit_sets_and_as_stars() {
    for (typed, stars) in [
        ("5", 5),
        ("٥", 5),
        ("4", 4),
        ("⭐⭐⭐", 3),
        ("excellent", 5),
    ] {
        let mut sim = Sim::new(Lang::En);
        let id = place(&mut sim);
        sim.update(update(id, 3, OrderStatus::Delivered));
        sim.text("rate now");
        assert_eq!(sim.dialogue.step, Step::Rating, "{typed}");
        let a = sim.text(typed);
        assert_eq!(rated(&a), vec![(id, stars)], "{typed}");
    }

    // Out of range: asked again, nothing rated.
    let mut sim = Sim::new(Lang::En);
    let id = place(&mut sim);
    sim.update(update(id, 3, OrderStatus::Delivered));
    sim.tap(&format!("rate:{id}:now"));
    let a = sim.text("6");
    assert!(rated(&a).is_empty());
    assert!(said(&a).contains("Please choose a rating from 1 to 5."));
    assert_eq!(template(&a), "rating_list");
    // A rating id without the order id rates the order being rated.
    let a = sim.pick("rate:4");
    assert_eq!(rated(&a), vec![(id, 4)]);

    // At the prompt, a number chooses among its three options.
    let mut sim = Sim::new(Lang::En);
    let id = place(&mut sim);
    sim.update(update(id, 3, OrderStatus::Delivered));
    let a = sim.text("5");
    assert!(rated(&a).is_empty());
    assert!(said(&a).contains("Please reply with a number from 1 to 3."));
}

#[test]
fn repeated_and_late_answers_never_rate_twice() {
    let mut sim = Sim::new(Lang::En);
    let id = place(&mut sim);
    sim.update(update(id, 5, OrderStatus::Delivered));
    sim.tap(&format!("rate:{id}:now"));
    let a = sim.pick(&format!("rate:{id}:4"));
    assert_eq!(rated(&a), vec![(id, 4)]);

    // The same row tapped again, another row of the same list, "rate now".
    for id_tapped in [
        format!("rate:{id}:4"),
        format!("rate:{id}:1"),
        format!("rate:{id}:now"),
    ] {
        let a = sim.pick(&id_tapped);
        assert!(rated(&a).is_empty(), "{id_tapped}");
        assert!(said(&a).contains("You've already rated order #5. Thank you!"));
    }
    let mut notice = update(id, 5, OrderStatus::Rated);
    notice.rating = Some(4);
    assert!(sim.update(notice).is_empty());
    // A DELIVERED notice after the rating asks nothing.
    assert!(sim.update(update(id, 5, OrderStatus::Delivered)).is_empty());

    // An order rated elsewhere (RATED heard): a late tap does not rate it.
    let mut sim = Sim::new(Lang::En);
    let id = place(&mut sim);
    sim.update(update(id, 6, OrderStatus::Delivered));
    let mut notice = update(id, 6, OrderStatus::Rated);
    notice.rating = Some(3);
    sim.update(notice);
    let a = sim.pick(&format!("rate:{id}:5"));
    assert!(rated(&a).is_empty());
    assert_eq!(sim.dialogue.order(id).and_then(|m| m.rating), Some(3));

    // Two orders: each rating goes to its own order.
    let mut sim = Sim::new(Lang::En);
    let first = place(&mut sim);
    let second = place(&mut sim);
    sim.update(update(first, 1, OrderStatus::Delivered));
    sim.update(update(second, 2, OrderStatus::Delivered));
    let a = sim.pick(&format!("rate:{first}:3"));
    assert_eq!(rated(&a), vec![(first, 3)]);
    let a = sim.pick(&format!("rate:{second}:5"));
    assert_eq!(rated(&a), vec![(second, 5)]);
}

#[test]
fn later_asks_for_one_reminder_and_the_reminder_comes_once() {
    let mut sim = Sim::new(Lang::En);
    let id = place(&mut sim);
    sim.update(update(id, 42, OrderStatus::Delivered));
    let a = sim.tap(&format!("rate:{id}:later"));
    assert_eq!(count(&a, |x| *x == Action::RemindLater { order_id: id }), 1);
    assert!(said(&a).contains("No problem, I'll ask you again a little later."));
    assert_eq!(sim.dialogue.step, Step::Start);

    // The stage's reminder: DELIVERED again.
    let a = sim.update(update(id, 42, OrderStatus::Delivered));
    assert!(
        said(&a).contains("A quick reminder: would you like to rate order #42?"),
        "{}",
        said(&a)
    );
    assert_eq!(template(&a), "rating_prompt");
    assert_eq!(sim.dialogue.step, Step::RatingPrompt);

    let a = sim.text("later");
    assert_eq!(count(&a, |x| matches!(x, Action::RemindLater { .. })), 0);
    assert_eq!(said(&a), "No problem.");

    // No third prompt.
    assert!(sim
        .update(update(id, 42, OrderStatus::Delivered))
        .is_empty());
    // The customer may still rate from the old message.
    let a = sim.pick(&format!("rate:{id}:5"));
    assert_eq!(rated(&a), vec![(id, 5)]);

    // A repeated first DELIVERED (no "Later") does not prompt twice.
    let mut sim = Sim::new(Lang::En);
    let id = place(&mut sim);
    assert!(!sim.update(update(id, 1, OrderStatus::Delivered)).is_empty());
    assert!(sim.update(update(id, 1, OrderStatus::Delivered)).is_empty());
}

#[test]
fn outside_the_24_hour_window_only_approved_templates_go() {
    let mut sim = Sim::new(Lang::En);
    let id = place(&mut sim);
    sim.window = false;
    let a = sim.update(update(id, 9, OrderStatus::Confirmed));
    assert_eq!(
        a,
        vec![Action::NotificationSkipped {
            order_id: id,
            status: OrderStatus::Confirmed
        }]
    );
    let a = sim.update(update(id, 9, OrderStatus::Delivered));
    assert_eq!(a, vec![Action::RatingPromptSkipped { order_id: id }]);
    assert_eq!(sim.dialogue.step, Step::OrderPlaced, "nothing was asked");

    // With approved templates configured.
    let mut sim = Sim::new(Lang::Ar);
    sim.restaurant.content_templates = [
        ("rating_prompt_ar", "HXrateAr"),
        ("order_update", "HXupdate"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    sim.restaurant.approved_templates =
        ["rating_prompt_ar".to_string(), "order_update".to_string()]
            .into_iter()
            .collect();
    let id = place(&mut sim);
    sim.window = false;
    let a = sim.update(update(id, 9, OrderStatus::Preparing));
    match replies(&a).as_slice() {
        [Reply::Interactive {
            template,
            content_sid,
            choices,
            ..
        }] => {
            assert_eq!(template, "order_update");
            assert_eq!(content_sid.as_deref(), Some("HXupdate"));
            assert!(choices.is_empty());
        }
        other => panic!("{other:#?}"),
    }
    let a = sim.update(update(id, 9, OrderStatus::Delivered));
    match replies(&a).as_slice() {
        [reply @ Reply::Interactive {
            template,
            content_sid,
            ..
        }] => {
            assert_eq!(template, "rating_prompt");
            assert_eq!(content_sid.as_deref(), Some("HXrateAr"));
            assert!(!reply.is_list());
        }
        other => panic!("{other:#?}"),
    }
    // Never a free-form text or a list outside the window.
    for (_, reply) in &sim.replies[sim.replies.len() - 2..] {
        assert!(matches!(
            reply,
            Reply::Interactive {
                content_sid: Some(_),
                ..
            }
        ));
        assert!(!reply.is_list());
    }
}

#[test]
fn a_rating_tapped_while_ordering_keeps_the_order_going() {
    let mut sim = Sim::new(Lang::En);
    let id = place(&mut sim);
    sim.update(update(id, 4, OrderStatus::Delivered));
    sim.start_delivery();
    sim.pick(&format!("item:{KEBAB}"));
    assert_eq!(sim.dialogue.step, Step::Quantity);

    let a = sim.tap(&format!("rate:{id}:5"));
    assert_eq!(rated(&a), vec![(id, 5)]);
    assert!(said(&a).contains("Thank you for your rating!"));
    assert_eq!(template(&a), "quantity", "the pending question comes back");
    assert_eq!(sim.dialogue.step, Step::Quantity);
    assert_eq!(
        sim.dialogue.context.get(keys::ITEM),
        Some(&KEBAB.to_string())
    );

    // A DELIVERED while ordering does not take the step over either.
    let second = Uuid::from_u128(0xFEED);
    let a = sim.update(update(second, 5, OrderStatus::Delivered));
    assert_eq!(template(&a), "rating_prompt");
    assert_eq!(sim.dialogue.step, Step::Quantity);
    sim.text("2");
    assert_eq!(sim.dialogue.cart.len(), 1);
}

#[test]
fn help_at_the_rating_prompt_hands_off_with_the_support_contact() {
    let mut sim = Sim::new(Lang::En);
    let id = place(&mut sim);
    sim.update(update(id, 77, OrderStatus::Delivered));
    let a = sim.tap(&format!("rate:{id}:help"));
    assert_eq!(a.first(), Some(&Action::Handoff));
    assert!(said(&a).contains("I've asked our team to help you with order #77."));
    assert!(said(&a).contains("+966500000000"));
    assert_eq!(sim.dialogue.step, Step::Start);
}

#[test]
fn repeated_or_late_order_notices_are_ignored() {
    let mut sim = Sim::new(Lang::En);
    let id = place(&mut sim);
    assert!(!sim.update(update(id, 3, OrderStatus::Confirmed)).is_empty());
    assert!(sim.update(update(id, 3, OrderStatus::Confirmed)).is_empty());
    assert!(!sim.update(update(id, 3, OrderStatus::Preparing)).is_empty());
    assert!(sim.update(update(id, 3, OrderStatus::Confirmed)).is_empty());
    assert!(sim.update(update(id, 3, OrderStatus::Draft)).is_empty());
    // A notice of an order this dialogue has not seen is still told.
    let other = Uuid::from_u128(0xBEEF);
    let a = sim.update(update(other, 4, OrderStatus::Confirmed));
    assert!(said(&a).contains("Order #4 is confirmed"));
}
