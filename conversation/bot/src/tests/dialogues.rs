//! Ordering dialogues from the greeting to the placed order, in English and
//! Arabic, and everything the customer may say on the way.

use chrono::Duration;

use super::*;
use crate::{keys, CartLine, PaymentMethod, Step};

fn cart(lines: &[(Uuid, u32)]) -> Vec<CartLine> {
    lines
        .iter()
        .map(|(item_id, quantity)| CartLine {
            item_id: *item_id,
            quantity: *quantity,
        })
        .collect()
}

fn ids(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn english_delivery_to_a_shared_location_inside_the_radius_places_the_order() {
    let mut sim = Sim::new(Lang::En);
    sim.profile_name = Some("Sara".into());

    let a = sim.text("Hello");
    assert!(
        said(&a).contains("Hi Sara, welcome to Bait Grill! 👋"),
        "{}",
        said(&a)
    );
    assert!(said(&a).contains("Would you like delivery or pickup?"));
    assert_eq!(template(&a), "fulfilment");
    assert_eq!(
        choice_ids(&a),
        ids(&["ful:delivery", "ful:pickup", "lang:ar"])
    );

    let a = sim.tap("ful:delivery");
    assert_eq!(template(&a), "location");
    assert_eq!(sim.dialogue.step, Step::Location);

    let a = sim.location(NEAR_OLAYA);
    assert!(
        said(&a).contains("we deliver there from our Olaya branch (0.8 km away)"),
        "{}",
        said(&a)
    );
    assert_eq!(sim.dialogue.branch_id, Some(OLAYA));
    assert_eq!(template(&a), "categories");
    assert_eq!(
        choice_ids(&a),
        vec![
            format!("cat:{GRILLS}"),
            format!("cat:{SANDWICHES}"),
            format!("cat:{DRINKS}"),
            format!("cat:{DESSERTS}"),
        ]
    );

    let a = sim.pick(&format!("cat:{SANDWICHES}"));
    assert_eq!(template(&a), "items");
    // The burger is not available: not offered.
    assert_eq!(
        choice_ids(&a),
        vec![
            format!("item:{SHAWARMA}"),
            format!("item:{FALAFEL}"),
            "nav:back".into()
        ]
    );

    let a = sim.text("1");
    assert_eq!(sim.dialogue.step, Step::Quantity);
    assert_eq!(template(&a), "quantity");
    assert!(
        said(&a).contains("*Chicken Shawarma* — 14.00 SAR"),
        "{}",
        said(&a)
    );
    assert_eq!(choice_ids(&a), ids(&["qty:1", "qty:2", "qty:3"]));

    let a = sim.text("3");
    assert!(said(&a).contains("✅ Added 3 × Chicken Shawarma to your cart."));
    assert!(said(&a).contains("Your cart: 3 items · 42.00 SAR"));
    assert_eq!(sim.dialogue.cart, cart(&[(SHAWARMA, 3)]));
    assert_eq!(
        choice_ids(&a),
        ids(&["act:more", "act:cart", "act:checkout"])
    );

    let a = sim.tap("act:cart");
    assert!(said(&a).contains("• 3 × Chicken Shawarma — 42.00 SAR"));
    assert!(said(&a).contains("Subtotal: 42.00 SAR"));

    let a = sim.tap("act:checkout");
    let summary = said(&a);
    assert!(summary.contains("Subtotal: 42.00 SAR"), "{summary}");
    assert!(summary.contains("Delivery fee: 10.00 SAR"));
    assert!(summary.contains("*Total: 52.00 SAR*"));
    assert!(summary.contains("Delivery to: Tahlia St, Riyadh (from Olaya)"));
    assert_eq!(template(&a), "payment");
    assert_eq!(choice_ids(&a), ids(&["pay:cash", "pay:online"]));

    let a = sim.tap("pay:cash");
    assert_eq!(template(&a), "confirm");
    assert!(said(&a).contains("Total 52.00 SAR, paying cash on delivery."));

    let order_id = sim.next_order_id();
    let a = sim.tap("act:confirm");
    assert_eq!(
        placed(&a),
        Some(&Action::PlaceOrder {
            order_id,
            fulfilment: Fulfilment::Delivery,
            branch_id: Some(OLAYA),
            address: Some(
                "Tahlia St, Riyadh (https://maps.google.com/?q=24.700000,46.690000)".into()
            ),
            payment: PaymentMethod::Cash,
            lines: vec![(SHAWARMA, 3)],
        })
    );
    assert!(said(&a).contains("Placing your order"));
    assert_eq!(sim.dialogue.step, Step::OrderPlaced);
    assert!(sim.dialogue.cart.is_empty());
    assert_eq!(sim.dialogue.last_order_id, Some(order_id));
    assert_eq!(sim.dialogue.fulfilment, None);
}

#[test]
fn arabic_pickup_from_a_chosen_branch_places_the_order() {
    let mut sim = Sim::new(Lang::Ar);

    let a = sim.text("السلام عليكم");
    assert!(said(&a).contains("أهلاً وسهلاً بك في"), "{}", said(&a));
    assert!(said(&a).contains("مشويات البيت"));
    assert!(said(&a).contains("هل تفضّل التوصيل أم الاستلام من الفرع؟"));
    assert_eq!(
        choice_ids(&a),
        ids(&["ful:delivery", "ful:pickup", "lang:en"])
    );

    let a = sim.text("استلام");
    assert_eq!(template(&a), "branch");
    assert_eq!(
        choice_ids(&a),
        vec![format!("branch:{OLAYA}"), format!("branch:{MALQA}")]
    );

    let a = sim.pick(&format!("branch:{MALQA}"));
    assert!(said(&a).contains("الاستلام من فرع"));
    assert!(said(&a).contains("الملقا"));
    assert_eq!(template(&a), "categories");

    // A dish by name, with the article and diacritics.
    let a = sim.text("الشَاورما");
    assert_eq!(sim.dialogue.step, Step::Quantity);
    assert_eq!(
        sim.dialogue.context.get(keys::ITEM),
        Some(&SHAWARMA.to_string())
    );
    assert!(said(&a).contains("شاورما دجاج"));

    let a = sim.text("٣");
    assert!(said(&a).contains("أضفت"), "{}", said(&a));
    assert_eq!(sim.dialogue.cart, cart(&[(SHAWARMA, 3)]));

    let a = sim.text("السلة");
    assert_eq!(template(&a), "cart");
    assert!(said(&a).contains("سلتك:"));

    let a = sim.text("إتمام الطلب");
    let summary = said(&a);
    assert!(summary.contains("ملخص طلبك"), "{summary}");
    assert!(summary.contains("المجموع الفرعي: \u{2066}42.00 SAR\u{2069}"));
    assert!(
        !summary.contains("رسوم التوصيل"),
        "no delivery fee for pickup"
    );
    assert!(summary.contains("الاستلام من فرع"));
    assert_eq!(template(&a), "payment");

    let a = sim.text("كاش");
    assert_eq!(template(&a), "confirm");
    assert!(said(&a).contains("نقداً عند الاستلام"));

    let order_id = sim.next_order_id();
    let a = sim.text("👍🏽");
    assert_eq!(
        placed(&a),
        Some(&Action::PlaceOrder {
            order_id,
            fulfilment: Fulfilment::Pickup,
            branch_id: Some(MALQA),
            address: None,
            payment: PaymentMethod::Cash,
            lines: vec![(SHAWARMA, 3)],
        })
    );
    assert!(said(&a).contains("جارٍ إرسال طلبك"));
}

#[test]
fn a_location_outside_every_radius_gets_an_apology_and_pickup_instead() {
    let mut sim = Sim::new(Lang::En);
    sim.text("hi");
    sim.tap("ful:delivery");
    let a = sim.location(JEDDAH);
    let text = said(&a);
    assert!(
        text.contains("Sorry, that location is outside our delivery area."),
        "{text}"
    );
    assert!(text.contains("Our nearest branch,"));
    assert!(placed(&a).is_none());
    assert_eq!(sim.dialogue.step, Step::Location);
    assert_eq!(sim.dialogue.branch_id, None);
    assert_eq!(template(&a), "location");
    assert_eq!(choice_ids(&a), ids(&["ful:pickup", "act:human"]));

    // "1" is the first option shown: pickup instead.
    let a = sim.text("1");
    assert_eq!(template(&a), "branch");
    assert_eq!(sim.dialogue.fulfilment, Some(Fulfilment::Pickup));

    // Arabic: the same apology, right-to-left.
    let mut sim = Sim::new(Lang::Ar);
    sim.text("مرحبا");
    sim.text("توصيل");
    let a = sim.location(JEDDAH);
    assert!(said(&a).contains("خارج نطاق التوصيل"), "{}", said(&a));
}

#[test]
fn a_location_is_served_by_the_nearest_branch_that_covers_it() {
    let mut sim = Sim::new(Lang::En);
    sim.text("hi");
    sim.tap("ful:delivery");
    // 1 km from Al Malqa, 14 km from Olaya (beyond its 8 km).
    let a = sim.location((24.8200, 46.6150));
    assert_eq!(sim.dialogue.branch_id, Some(MALQA));
    assert!(
        said(&a).contains("from our Al Malqa branch"),
        "{}",
        said(&a)
    );

    // A location sent at the greeting means delivery there.
    let mut sim = Sim::new(Lang::En);
    sim.text("hi");
    let a = sim.location(NEAR_OLAYA);
    assert_eq!(sim.dialogue.fulfilment, Some(Fulfilment::Delivery));
    assert_eq!(sim.dialogue.branch_id, Some(OLAYA));
    assert_eq!(template(&a), "categories");
}

#[test]
fn a_typed_address_is_accepted_and_served_by_the_first_branch() {
    let mut sim = Sim::new(Lang::En);
    sim.text("hi");
    sim.tap("ful:delivery");

    // Too little to deliver to.
    let a = sim.text("abc");
    assert!(
        said(&a).contains("Please type your full address"),
        "{}",
        said(&a)
    );
    assert_eq!(sim.dialogue.step, Step::Location);
    // A number answers the question's options (two of them), not an address.
    let a = sim.text("5");
    assert!(said(&a).contains("Please reply with a number from 1 to 2."));
    assert_eq!(sim.dialogue.step, Step::Location);

    let a = sim.text("Building 12, King Fahd Rd, Al Olaya");
    assert!(
        said(&a).contains(
            "We'll deliver to: Building 12, King Fahd Rd, Al Olaya (from our Olaya branch)."
        ),
        "{}",
        said(&a)
    );
    assert_eq!(sim.dialogue.branch_id, Some(OLAYA));
    assert_eq!(template(&a), "categories");

    sim.add(TAWOOK, 1);
    sim.tap("act:checkout");
    sim.tap("pay:cash");
    let a = sim.tap("act:confirm");
    match placed(&a) {
        Some(Action::PlaceOrder {
            address, branch_id, ..
        }) => {
            assert_eq!(
                address.as_deref(),
                Some("Building 12, King Fahd Rd, Al Olaya")
            );
            assert_eq!(*branch_id, Some(OLAYA));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn quantities_typed_in_western_and_arabic_indic_digits() {
    let mut sim = Sim::new(Lang::En);
    sim.start_delivery();
    sim.pick(&format!("item:{TAWOOK}"));
    sim.text("3");
    sim.pick(&format!("item:{LABAN}"));
    sim.text("٣");
    sim.pick(&format!("item:{FALAFEL}"));
    sim.text("2 please");
    sim.pick(&format!("item:{LEMON}"));
    sim.text("۴"); // Eastern Arabic-Indic (Persian) four
    assert_eq!(
        sim.dialogue.cart,
        cart(&[(TAWOOK, 3), (LABAN, 3), (FALAFEL, 2), (LEMON, 4)])
    );

    sim.pick(&format!("item:{KEBAB}"));
    let a = sim.text("0");
    assert!(
        said(&a).contains("Please type a quantity from 1 to 50."),
        "{}",
        said(&a)
    );
    let a = sim.text("٥١");
    assert!(said(&a).contains("Please type a quantity from 1 to 50."));
    assert_eq!(sim.dialogue.step, Step::Quantity);
    assert_eq!(sim.dialogue.cart.len(), 4);

    // Adding past the cap stops at the cap and says so.
    sim.text("45");
    sim.pick(&format!("item:{KEBAB}"));
    let a = sim.text("10");
    assert!(
        said(&a).contains("You can order up to 50 of Lamb Kebab"),
        "{}",
        said(&a)
    );
    assert_eq!(sim.dialogue.cart[4], cart(&[(KEBAB, 50)])[0]);
}

#[test]
fn items_are_chosen_by_list_id_by_number_and_by_name() {
    let mut sim = Sim::new(Lang::En);
    sim.start_delivery();

    // By list id.
    sim.pick(&format!("cat:{GRILLS}"));
    let a = sim.pick(&format!("item:{KEBAB}"));
    assert_eq!(
        sim.dialogue.context.get(keys::ITEM),
        Some(&KEBAB.to_string())
    );
    // The discount is applied and shown.
    assert!(
        said(&a).contains("*Lamb Kebab* — 37.80 SAR (-10%)"),
        "{}",
        said(&a)
    );

    // By number in the list shown.
    sim.text("back");
    let a = sim.text("2");
    assert_eq!(
        sim.dialogue.context.get(keys::ITEM),
        Some(&KEBAB.to_string())
    );
    assert_eq!(template(&a), "quantity");

    // By name: any case, either language, with diacritics.
    sim.text("back");
    for typed in ["kebab", "LAMB KEBAB", "كباب", "كَبَاب"] {
        sim.tap("act:more");
        let a = sim.text(typed);
        assert_eq!(template(&a), "quantity", "{typed}");
        assert_eq!(
            sim.dialogue.context.get(keys::ITEM),
            Some(&KEBAB.to_string()),
            "{typed}"
        );
    }

    // Several dishes match: they are listed.
    sim.tap("act:more");
    let a = sim.text("chicken");
    assert_eq!(template(&a), "items");
    assert!(said(&a).contains("Here's what I found for “chicken”:"));
    assert_eq!(
        choice_ids(&a),
        vec![
            format!("item:{TAWOOK}"),
            format!("item:{SHAWARMA}"),
            "nav:back".into()
        ]
    );
    sim.text("2");
    assert_eq!(
        sim.dialogue.context.get(keys::ITEM),
        Some(&SHAWARMA.to_string())
    );

    // A category by name.
    sim.tap("act:more");
    let a = sim.text("drinks");
    assert_eq!(
        sim.dialogue.context.get(keys::CATEGORY),
        Some(&DRINKS.to_string())
    );
    assert_eq!(template(&a), "items");

    // Not on the menu; on the menu but unavailable.
    let a = sim.text("pizza");
    assert!(said(&a).contains("Sorry, I couldn't find “pizza” on the menu."));
    assert_eq!(template(&a), "items");
    let a = sim.text("burger");
    assert!(said(&a).contains("Sorry, Beef Burger is not available right now."));
}

#[test]
fn a_typed_number_means_what_the_step_asked() {
    let mut sim = Sim::new(Lang::En);
    sim.start_delivery();

    // The menu step: a category, or an error when out of range.
    let a = sim.text("5");
    assert!(
        said(&a).contains("Please reply with a number from 1 to 4."),
        "{}",
        said(&a)
    );
    assert_eq!(sim.dialogue.step, Step::Menu);
    assert_eq!(template(&a), "categories");
    sim.text("4");
    assert_eq!(
        sim.dialogue.context.get(keys::CATEGORY),
        Some(&DESSERTS.to_string())
    );

    // The items step: the fifth item shown.
    let a = sim.text("5");
    assert_eq!(template(&a), "quantity");
    assert_eq!(
        sim.dialogue.context.get(keys::ITEM),
        Some(&dessert(5).to_string())
    );

    // The quantity step: five pieces (not the fifth anything).
    sim.text("5");
    assert_eq!(sim.dialogue.cart, cart(&[(dessert(5), 5)]));

    // The rating step: five stars.
    sim.tap("act:checkout");
    sim.tap("pay:cash");
    let order_id = sim.next_order_id();
    sim.tap("act:confirm");
    sim.update(update(order_id, 9, OrderStatus::Delivered));
    sim.tap(&format!("rate:{order_id}:now"));
    let a = sim.text("5");
    assert_eq!(
        a.first(),
        Some(&Action::RateOrder {
            order_id,
            rating: 5,
            comment: None
        })
    );
}

#[test]
fn the_cart_adds_views_and_removes_items() {
    let mut sim = Sim::new(Lang::En);
    sim.start_pickup(OLAYA);
    sim.add(SHAWARMA, 2);
    sim.add(LABAN, 1);
    sim.add(SHAWARMA, 1);
    assert_eq!(sim.dialogue.cart, cart(&[(SHAWARMA, 3), (LABAN, 1)]));

    // The category list offers the cart once something is in it.
    let a = sim.tap("act:more");
    assert!(choice_ids(&a).contains(&"act:cart".to_string()));

    let a = sim.text("cart");
    let text = said(&a);
    assert!(
        text.contains("• 3 × Chicken Shawarma — 42.00 SAR"),
        "{text}"
    );
    assert!(text.contains("• 1 × Laban — 5.00 SAR"));
    assert!(text.contains("Subtotal: 47.00 SAR"));
    assert_eq!(
        choice_ids(&a),
        ids(&["act:checkout", "act:more", "act:remove"])
    );

    let a = sim.tap("act:remove");
    assert_eq!(template(&a), "remove");
    assert_eq!(
        choice_ids(&a),
        vec![
            format!("rm:{SHAWARMA}"),
            format!("rm:{LABAN}"),
            "nav:back".into()
        ]
    );
    // By name.
    let a = sim.text("laban");
    assert!(
        said(&a).contains("Removed Laban from your cart."),
        "{}",
        said(&a)
    );
    assert_eq!(template(&a), "cart");
    assert_eq!(sim.dialogue.cart, cart(&[(SHAWARMA, 3)]));

    // By list id; the emptied cart leads back to the menu.
    sim.tap("act:remove");
    let a = sim.pick(&format!("rm:{SHAWARMA}"));
    assert!(said(&a).contains("Your cart is empty."));
    assert_eq!(template(&a), "categories");
    assert!(sim.dialogue.cart.is_empty());

    // Checkout of an empty cart.
    let a = sim.tap("act:checkout");
    assert!(said(&a).contains("Your cart is empty."));
    assert!(placed(&a).is_none());
}

#[test]
fn delivery_below_the_minimum_order_is_refused_with_the_shortfall() {
    let mut sim = Sim::new(Lang::En);
    sim.start_delivery();
    sim.add(LABAN, 1);
    let a = sim.tap("act:checkout");
    assert!(
        said(&a).contains(
            "The minimum order for delivery is 30.00 SAR and your cart is 5.00 SAR. \
             Add 25.00 SAR more to check out, or choose pickup."
        ),
        "{}",
        said(&a)
    );
    assert_eq!(sim.dialogue.step, Step::BelowMinimum);
    assert_eq!(choice_ids(&a), ids(&["act:more", "ful:pickup", "act:cart"]));

    // No way round it.
    let a = sim.tap("act:confirm");
    assert!(placed(&a).is_none());
    assert!(said(&a).contains("That option is from an earlier message."));
    let a = sim.tap("act:checkout");
    assert_eq!(sim.dialogue.step, Step::BelowMinimum);
    assert!(placed(&a).is_none());

    // Adding enough passes.
    sim.text("1");
    sim.add(TAWOOK, 1);
    let a = sim.tap("act:checkout");
    assert!(said(&a).contains("*Total: 47.00 SAR*"), "{}", said(&a));
    assert_eq!(sim.dialogue.step, Step::Payment);

    // Pickup has no minimum.
    let mut sim = Sim::new(Lang::Ar);
    sim.start_delivery();
    sim.add(LABAN, 1);
    let a = sim.tap("act:checkout");
    assert!(
        said(&a).contains("الحد الأدنى لطلبات التوصيل"),
        "{}",
        said(&a)
    );
    let a = sim.text("2");
    assert_eq!(template(&a), "branch");
    sim.pick(&format!("branch:{OLAYA}"));
    let a = sim.tap("act:checkout");
    assert_eq!(template(&a), "payment");
}

#[test]
fn online_payment_sends_a_link_with_the_order_id_only_when_configured() {
    let mut sim = Sim::new(Lang::En);
    sim.start_pickup(OLAYA);
    sim.add(SHAWARMA, 1);
    sim.tap("act:checkout");
    let a = sim.text("pay online");
    assert!(
        said(&a).contains("paying online (you'll get a payment link)"),
        "{}",
        said(&a)
    );
    let order_id = sim.next_order_id();
    let a = sim.text("yes");
    match placed(&a) {
        Some(Action::PlaceOrder { payment, .. }) => assert_eq!(*payment, PaymentMethod::Online),
        other => panic!("{other:?}"),
    }
    assert!(
        said(&a).contains(&format!(
            "https://pay.example.com/bait-grill?order={order_id}"
        )),
        "{}",
        said(&a)
    );

    // Arabic: the link stands alone on its line, with no direction mark
    // glued to it (a linkifier would take it into the URL).
    let mut sim = Sim::new(Lang::Ar);
    sim.start_pickup(OLAYA);
    sim.add(SHAWARMA, 1);
    sim.tap("act:checkout");
    sim.tap("pay:online");
    let order_id = sim.next_order_id();
    let a = sim.tap("act:confirm");
    let link = format!("https://pay.example.com/bait-grill?order={order_id}");
    assert!(said(&a).lines().any(|l| l == link), "{}", said(&a));

    // Without a payment link: cash only, no payment question.
    let mut sim = Sim::new(Lang::En);
    sim.restaurant.payment_link_base = None;
    sim.start_pickup(OLAYA);
    sim.add(SHAWARMA, 1);
    let a = sim.tap("act:checkout");
    assert_eq!(template(&a), "confirm");
    assert!(said(&a).contains("paying cash at pickup"));
    let a = sim.tap("pay:online");
    assert!(said(&a).contains("earlier message"));
    let a = sim.tap("act:confirm");
    match placed(&a) {
        Some(Action::PlaceOrder { payment, .. }) => assert_eq!(*payment, PaymentMethod::Cash),
        other => panic!("{other:?}"),
    }
    assert!(!said(&a).contains("https://"));
}

#[test]
fn cancel_empties_the_cart_or_cancels_an_order_not_yet_prepared() {
    let mut sim = Sim::new(Lang::En);
    let a = sim.text("cancel");
    assert!(
        said(&a).contains("There's nothing to cancel."),
        "{}",
        said(&a)
    );

    sim.start_delivery();
    sim.add(TAWOOK, 2);
    let a = sim.text("cancel");
    assert!(said(&a).contains("I've cancelled this order and emptied your cart"));
    assert!(sim.dialogue.cart.is_empty());
    assert_eq!(sim.dialogue.step, Step::Start);
    assert_eq!(count(&a, |x| matches!(x, Action::CancelOrder { .. })), 0);

    // The cancel button at the confirmation.
    sim.start_pickup(OLAYA);
    sim.add(TAWOOK, 1);
    sim.tap("act:checkout");
    sim.tap("pay:cash");
    let a = sim.tap("act:cancel");
    assert!(placed(&a).is_none());
    assert!(sim.dialogue.cart.is_empty());

    // A placed order, before it is prepared.
    sim.start_pickup(OLAYA);
    sim.add(TAWOOK, 1);
    sim.tap("act:checkout");
    sim.tap("pay:cash");
    let order_id = sim.next_order_id();
    sim.tap("act:confirm");
    let a = sim.text("cancel");
    assert_eq!(a.first(), Some(&Action::CancelOrder { order_id }));
    assert!(said(&a).contains("Cancelling your order…"));

    sim.update(update(order_id, 7, OrderStatus::Confirmed));
    let a = sim.text("إلغاء");
    assert_eq!(a.first(), Some(&Action::CancelOrder { order_id }));
    assert!(said(&a).contains("Cancelling order #7…"));

    let a = sim.update(update(order_id, 7, OrderStatus::Cancelled));
    assert!(said(&a).contains("Order #7 has been cancelled."));
    assert_eq!(sim.dialogue.step, Step::Start);

    // Being prepared: too late.
    let mut sim = Sim::new(Lang::En);
    sim.start_pickup(OLAYA);
    sim.add(TAWOOK, 1);
    sim.tap("act:checkout");
    sim.tap("pay:cash");
    let order_id = sim.next_order_id();
    sim.tap("act:confirm");
    sim.update(update(order_id, 8, OrderStatus::Confirmed));
    sim.update(update(order_id, 8, OrderStatus::Preparing));
    let a = sim.text("cancel");
    assert_eq!(count(&a, |x| matches!(x, Action::CancelOrder { .. })), 0);
    assert!(
        said(&a).contains("order #8 is already being prepared"),
        "{}",
        said(&a)
    );
}

#[test]
fn talking_to_a_human_hands_off_from_any_step() {
    let mut sim = Sim::new(Lang::Ar);
    sim.text("مرحبا");
    sim.tap("ful:delivery");
    let a = sim.text("موظف");
    assert_eq!(a.first(), Some(&Action::Handoff));
    assert!(
        said(&a).contains("سيرد عليك أحد الموظفين هنا قريباً"),
        "{}",
        said(&a)
    );
    assert_eq!(
        sim.dialogue.step,
        Step::Location,
        "the step waits for the bot to resume"
    );

    let mut sim = Sim::new(Lang::En);
    sim.start_delivery();
    sim.add(TAWOOK, 1);
    let a = sim.text("talk to a human");
    assert_eq!(count(&a, |x| *x == Action::Handoff), 1);
    assert!(said(&a).contains("A member of staff will reply to you here shortly."));
    assert_eq!(sim.dialogue.cart, cart(&[(TAWOOK, 1)]));

    // The button at the location question.
    sim.text("hi");
    sim.tap("ful:delivery");
    let a = sim.tap("act:human");
    assert_eq!(a.first(), Some(&Action::Handoff));
}

#[test]
fn the_language_switches_mid_flow_and_the_question_follows() {
    let mut sim = Sim::new(Lang::En);
    sim.start_delivery();
    let a = sim.pick(&format!("cat:{GRILLS}"));
    let english_ids = choice_ids(&a);
    assert!(said(&a).contains("Grills: choose an item:"));

    let a = sim.text("عربي");
    assert_eq!(sim.dialogue.language, Some(Lang::Ar));
    assert_eq!(sim.dialogue.step, Step::Items);
    assert!(said(&a).contains("تمام، لنكمل بالعربية."), "{}", said(&a));
    assert!(said(&a).contains("المشويات"));
    assert_eq!(choice_ids(&a), english_ids, "same options, now in Arabic");
    match last_interactive(&a) {
        Reply::Interactive { choices, .. } => assert_eq!(choices[1].title, "كباب لحم"),
        Reply::Text(_) => unreachable!(),
    }

    let a = sim.text("English");
    assert_eq!(sim.dialogue.language, Some(Lang::En));
    assert!(said(&a).contains("Okay, let's continue in English."));
    assert!(said(&a).contains("Grills: choose an item:"));

    // "language" offers both; the step does not change.
    let a = sim.text("language");
    assert_eq!(template(&a), "language");
    assert_eq!(choice_ids(&a), ids(&["lang:en", "lang:ar"]));
    assert_eq!(sim.dialogue.step, Step::Items);
    let a = sim.tap("lang:ar");
    assert_eq!(sim.dialogue.language, Some(Lang::Ar));
    assert_eq!(template(&a), "items");
    // A number still answers the items question.
    let a = sim.text("2");
    assert_eq!(template(&a), "quantity");
    assert_eq!(
        sim.dialogue.context.get(keys::ITEM),
        Some(&KEBAB.to_string())
    );

    // The greeting's own language button.
    let mut sim = Sim::new(Lang::Ar);
    sim.text("hi");
    let a = sim.tap("lang:en");
    assert!(
        said(&a).contains("Would you like delivery or pickup?"),
        "{}",
        said(&a)
    );
    assert_eq!(
        choice_ids(&a),
        ids(&["ful:delivery", "ful:pickup", "lang:ar"])
    );
}

#[test]
fn greetings_restart_at_the_greeting_and_start_over_empties_the_cart() {
    let mut sim = Sim::new(Lang::En);
    sim.start_delivery();
    sim.add(TAWOOK, 2);
    for word in ["menu", "Hi", "مرحبا", "القائمة", "start"] {
        let a = sim.text(word);
        assert_eq!(template(&a), "fulfilment", "{word}");
        assert!(said(&a).contains("Your cart still has 2 items."), "{word}");
        assert_eq!(sim.dialogue.fulfilment, None);
        assert_eq!(sim.dialogue.cart, cart(&[(TAWOOK, 2)]));
    }
    // Choosing again goes straight to the kept cart.
    sim.tap("ful:pickup");
    let a = sim.pick(&format!("branch:{OLAYA}"));
    assert_eq!(template(&a), "cart");

    let a = sim.text("start over");
    assert!(sim.dialogue.cart.is_empty());
    assert!(!said(&a).contains("Your cart still has"));
    assert_eq!(template(&a), "fulfilment");
}

#[test]
fn unknown_input_gets_a_short_apology_and_the_question_again() {
    let mut sim = Sim::new(Lang::En);
    sim.text("hi");
    let a = sim.text("blah blah");
    assert!(
        said(&a).starts_with("Sorry, I didn't get that."),
        "{}",
        said(&a)
    );
    assert_eq!(template(&a), "fulfilment");
    assert_eq!(sim.dialogue.step, Step::Fulfilment);

    let a = sim.send(Inbound {
        has_media: true,
        ..Default::default()
    });
    assert!(said(&a).contains("I can't read photos or voice notes"));
    assert_eq!(template(&a), "fulfilment");

    let a = sim.text("   ");
    assert!(
        said(&a).contains("Sorry, I didn't get that."),
        "{}",
        said(&a)
    );

    sim.start_pickup(OLAYA);
    sim.add(TAWOOK, 1);
    sim.tap("act:checkout");
    let a = sim.text("bitcoin");
    assert!(said(&a).contains("Sorry, I didn't get that."));
    assert_eq!(template(&a), "payment");

    // Arabic.
    let mut sim = Sim::new(Lang::Ar);
    sim.text("مرحبا");
    let a = sim.text("ممم");
    assert!(said(&a).contains("عذراً، لم أفهم ذلك."), "{}", said(&a));
    assert_eq!(template(&a), "fulfilment");
}

#[test]
fn help_and_status_answer_then_ask_the_pending_question_again() {
    let mut sim = Sim::new(Lang::En);
    let a = sim.text("status");
    assert!(said(&a).contains("You have no orders yet."));

    sim.start_pickup(OLAYA);
    sim.add(TAWOOK, 1);
    let a = sim.text("help");
    assert!(said(&a).contains("*How to order*"));
    assert_eq!(template(&a), "added", "the pending question follows");

    sim.tap("act:checkout");
    sim.tap("pay:cash");
    let order_id = sim.next_order_id();
    sim.tap("act:confirm");
    let a = sim.text("status");
    assert!(said(&a).contains("Your order has been received and is waiting for confirmation"));

    let mut u = update(order_id, 42, OrderStatus::Confirmed);
    u.fulfilment = Fulfilment::Pickup;
    sim.update(u.clone());
    let a = sim.tap("act:status");
    assert!(
        said(&a).contains("📦 Order #42 is confirmed ✅."),
        "{}",
        said(&a)
    );
    assert!(said(&a).contains("Total: 52.00 SAR"));

    u.status = OrderStatus::Preparing;
    sim.update(u);
    let a = sim.text("where is my order");
    assert!(said(&a).contains("Order #42 is being prepared"));

    let mut sim = Sim::new(Lang::Ar);
    sim.text("؟");
    let a = sim.text("حالة الطلب");
    assert!(said(&a).contains("ليس لديك طلبات بعد"), "{}", said(&a));
}

#[test]
fn interactive_replies_carry_the_content_sid_when_configured_else_use_the_fallback() {
    let mut sim = Sim::new(Lang::En);
    sim.restaurant.content_templates = [
        ("fulfilment", "HXgreeting"),
        ("categories_en", "HXcategoriesEn"),
        ("categories_ar", "HXcategoriesAr"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    let a = sim.text("hi");
    match last_interactive(&a) {
        Reply::Interactive {
            content_sid,
            variables,
            body,
            ..
        } => {
            assert_eq!(content_sid.as_deref(), Some("HXgreeting"));
            assert_eq!(variables.get("1"), Some(body));
            assert_eq!(variables.get("2").map(String::as_str), Some("ful:delivery"));
            assert_eq!(variables.get("3").map(String::as_str), Some("🛵 Delivery"));
            assert_eq!(variables.get("4").map(String::as_str), Some(""));
        }
        Reply::Text(_) => unreachable!(),
    }
    sim.tap("ful:delivery");
    let a = sim.location(NEAR_OLAYA);
    match last_interactive(&a) {
        Reply::Interactive { content_sid, .. } => {
            assert_eq!(content_sid.as_deref(), Some("HXcategoriesEn"))
        }
        Reply::Text(_) => unreachable!(),
    }
    let a = sim.pick(&format!("cat:{GRILLS}"));
    match last_interactive(&a) {
        Reply::Interactive {
            content_sid,
            fallback,
            ..
        } => {
            assert_eq!(content_sid, &None);
            assert!(fallback.contains("Grills: choose an item:"), "{fallback}");
            assert!(fallback.contains(
                "1. Chicken Shish Tawook — 32.00 SAR · Marinated chicken skewers with garlic sauce"
            ));
            assert!(fallback.contains("2. Lamb Kebab — 37.80 SAR (-10%)"));
            assert!(fallback.contains("4. ⬅️ Back"));
            assert!(fallback.ends_with("Reply with the number of your choice."));
        }
        Reply::Text(_) => unreachable!(),
    }
    let a = sim.text("عربي");
    sim.text("back");
    let a2 = sim.text("القائمة");
    let _ = (a, a2);
    sim.tap("ful:delivery");
    let a = sim.location(NEAR_OLAYA);
    match last_interactive(&a) {
        Reply::Interactive { content_sid, .. } => {
            assert_eq!(content_sid.as_deref(), Some("HXcategoriesAr"))
        }
        Reply::Text(_) => unreachable!(),
    }
}

#[test]
fn long_lists_are_paged_with_a_more_row() {
    let mut sim = Sim::new(Lang::En);
    sim.start_delivery();
    let a = sim.pick(&format!("cat:{DESSERTS}"));
    let first = choice_ids(&a);
    assert_eq!(first.len(), 10);
    assert_eq!(
        first[..8],
        (1..=8)
            .map(|i| format!("item:{}", dessert(i)))
            .collect::<Vec<_>>()[..]
    );
    assert_eq!(first[8], "page:1");
    assert_eq!(first[9], "nav:back");

    let a = sim.pick("page:1");
    let second = choice_ids(&a);
    assert_eq!(
        second,
        vec![
            format!("item:{}", dessert(9)),
            format!("item:{}", dessert(10)),
            format!("item:{}", dessert(11)),
            format!("item:{}", dessert(12)),
            "page:0".into(),
            "nav:back".into(),
        ]
    );
    // A typed number counts on the page shown.
    let a = sim.text("4");
    assert_eq!(
        sim.dialogue.context.get(keys::ITEM),
        Some(&dessert(12).to_string())
    );
    assert!(said(&a).contains("Saffron & Pistachio Ice Cream Deluxe"));

    // Typing "more" turns the page.
    sim.text("back");
    let a = sim.text("more");
    assert_eq!(choice_ids(&a)[4], "page:0", "page two");
}

#[test]
fn availability_is_per_branch_and_the_cart_follows_the_branch() {
    let mut sim = Sim::new(Lang::En);
    sim.start_pickup(MALQA);
    let a = sim.pick(&format!("cat:{DRINKS}"));
    assert_eq!(
        choice_ids(&a),
        vec![
            format!("item:{LEMON}"),
            format!("item:{LABAN}"),
            "nav:back".into()
        ]
    );
    let a = sim.text("pepsi");
    assert!(
        said(&a).contains("Sorry, Pepsi is not available right now."),
        "{}",
        said(&a)
    );

    let mut sim = Sim::new(Lang::En);
    sim.start_pickup(OLAYA);
    let a = sim.pick(&format!("cat:{DRINKS}"));
    assert!(choice_ids(&a).contains(&format!("item:{PEPSI}")));
    sim.add(PEPSI, 2);
    sim.add(LABAN, 1);
    // Moving to a branch without Pepsi drops it, saying so.
    sim.text("hi");
    sim.tap("ful:pickup");
    let a = sim.pick(&format!("branch:{MALQA}"));
    assert!(
        said(&a)
            .contains("Some items are no longer available and were removed from your cart: Pepsi."),
        "{}",
        said(&a)
    );
    assert_eq!(sim.dialogue.cart, cart(&[(LABAN, 1)]));
}

#[test]
fn buttons_from_earlier_messages_do_not_act_twice() {
    let mut sim = Sim::new(Lang::En);
    sim.start_pickup(OLAYA);
    sim.add(TAWOOK, 1);
    sim.tap("act:checkout");
    sim.tap("pay:cash");
    let a = sim.tap("act:confirm");
    assert!(placed(&a).is_some());

    let a = sim.tap("act:confirm");
    assert!(placed(&a).is_none());
    assert!(said(&a).contains("That option is from an earlier message."));
    assert_eq!(template(&a), "after_order");
    let a = sim.tap("qty:2");
    assert!(placed(&a).is_none());
    assert!(sim.dialogue.cart.is_empty());
    // Garbage payloads are read as text.
    let a = sim.send(Inbound {
        body: "hello".into(),
        button_payload: Some("not-ours".into()),
        ..Default::default()
    });
    assert_eq!(template(&a), "fulfilment");
}

#[test]
fn states_stored_by_older_versions_still_load_and_continue() {
    let old = format!(
        r#"{{"language":null,"step":"menu","cart":[{{"item_id":"{TAWOOK}","quantity":2}}],
            "fulfilment":null,"branch_id":null,"address":null,"payment":null,
            "last_order_id":null,"context":{{}}}}"#
    );
    let dialogue: Dialogue = serde_json::from_str(&old).unwrap();
    assert_eq!(dialogue.step, Step::Menu);
    assert_eq!(dialogue.cart, cart(&[(TAWOOK, 2)]));

    assert_eq!(
        serde_json::from_str::<Dialogue>("{}").unwrap(),
        Dialogue::default()
    );
    let future: Dialogue =
        serde_json::from_str(r#"{"step":"some_future_step","a_future_field":1}"#).unwrap();
    assert_eq!(future.step, Step::Unknown);

    // The old menu state (no delivery choice yet) continues at the greeting.
    let mut sim = Sim::new(Lang::En);
    sim.dialogue = dialogue;
    let a = sim.text("2");
    assert_eq!(template(&a), "fulfilment");
    assert!(said(&a).contains("Your cart still has 2 items."));

    let mut sim = Sim::new(Lang::En);
    sim.dialogue = future;
    let a = sim.text("hello");
    assert_eq!(template(&a), "fulfilment");
}

#[test]
fn a_dialogue_idle_for_hours_restarts_at_the_greeting() {
    let mut sim = Sim::new(Lang::En);
    sim.start_delivery();
    sim.pick(&format!("item:{TAWOOK}"));
    assert_eq!(sim.dialogue.step, Step::Quantity);
    sim.now += Duration::hours(7);
    let a = sim.text("2");
    assert_eq!(template(&a), "fulfilment");
    assert!(
        sim.dialogue.cart.is_empty(),
        "the old question is not answered"
    );

    // Within the hours, it is.
    let mut sim = Sim::new(Lang::En);
    sim.start_delivery();
    sim.pick(&format!("item:{TAWOOK}"));
    sim.now += Duration::hours(2);
    sim.text("2");
    assert_eq!(sim.dialogue.cart, cart(&[(TAWOOK, 2)]));
}

#[test]
fn back_goes_to_the_previous_question() {
    let mut sim = Sim::new(Lang::En);
    sim.start_delivery();
    sim.pick(&format!("cat:{GRILLS}"));
    sim.pick(&format!("item:{KEBAB}"));
    let a = sim.text("back");
    assert_eq!(template(&a), "items");
    assert_eq!(
        sim.dialogue.context.get(keys::CATEGORY),
        Some(&GRILLS.to_string())
    );
    let a = sim.tap("nav:back");
    assert_eq!(template(&a), "categories");
    let a = sim.text("رجوع");
    assert_eq!(template(&a), "fulfilment");
}

#[test]
fn thanks_gets_a_polite_answer() {
    let mut sim = Sim::new(Lang::Ar);
    sim.start_pickup(OLAYA);
    sim.add(TAWOOK, 1);
    sim.tap("act:checkout");
    sim.tap("pay:cash");
    sim.tap("act:confirm");
    let a = sim.text("شكراً");
    assert!(said(&a).contains("العفو"), "{}", said(&a));
}
