//! WhatsApp's limits at the extremes: many branches, long names, a long
//! cart, many promo links — every reply goes through [`check_reply`].

use std::collections::BTreeMap;

use super::*;
use crate::ui::{self, MAX_BUTTON_TITLE, MAX_ROW_DESCRIPTION, MAX_ROW_TITLE};
use crate::{Choice, Step};

fn big_sim(lang: Lang) -> Sim {
    let mut sim = Sim::new(lang);
    sim.branches = (0..12)
        .map(|i| Branch {
            id: Uuid::from_u128(0xB100 + i),
            name_en: format!("Branch number {i} of the Greater Riyadh Region"),
            name_ar: format!("الفرع رقم {i} في منطقة الرياض الكبرى والمناطق المجاورة"),
            address: Some("A very long street address ".repeat(5)),
            latitude: Some(24.6937 + i as f64 * 0.01),
            longitude: Some(46.6853),
            delivery_radius_km: 3.0,
            ..Branch::default()
        })
        .collect();
    sim.restaurant.promo_links = (0..40)
        .map(|i| format!("https://example.com/bait-grill/offers/a-rather-long-offer-path/{i}"))
        .collect();
    sim.restaurant.name_en = "The Very Long Name Of A Restaurant That Goes On".into();
    sim
}

fn every_item(sim: &Sim) -> Vec<Uuid> {
    sim.menu
        .iter()
        .flat_map(|c| &c.items)
        .filter(|i| i.available && i.id != PEPSI)
        .map(|i| i.id)
        .collect()
}

#[test]
fn every_reply_of_long_sessions_in_both_languages_respects_the_limits() {
    for lang in [Lang::En, Lang::Ar] {
        let mut sim = big_sim(lang);
        sim.profile_name = Some("A customer with a remarkably long WhatsApp profile name".into());
        sim.text("hi");
        let a = sim.tap("ful:pickup");
        // 12 branches: 9 per page and "more".
        let first = choice_ids(&a);
        assert_eq!(first.len(), 10);
        assert_eq!(first[9], "page:1");
        let a = sim.pick("page:1");
        assert_eq!(choice_ids(&a).len(), 4);
        let a = sim.text("3");
        assert_eq!(template(&a), "categories");
        assert_eq!(sim.dialogue.branch_id, Some(Uuid::from_u128(0xB100 + 11)));

        // Everything on the menu, twice over.
        for item in every_item(&sim) {
            sim.add(item, 2);
        }
        assert_eq!(sim.dialogue.cart.len(), 19);
        let a = sim.text("cart");
        assert_eq!(template(&a), "cart");
        sim.tap("act:remove");
        sim.pick("page:1");
        sim.pick("page:2");
        sim.tap("act:cart");
        sim.tap("act:checkout");
        sim.tap("pay:online");
        let order_id = sim.next_order_id();
        let a = sim.tap("act:confirm");
        match placed(&a) {
            Some(Action::PlaceOrder { lines, .. }) => assert_eq!(lines.len(), 19),
            other => panic!("{other:?}"),
        }
        sim.update(update(order_id, 123456, OrderStatus::Confirmed));
        sim.update(update(order_id, 123456, OrderStatus::Delivered));
        sim.tap(&format!("rate:{order_id}:now"));
        sim.pick(&format!("rate:{order_id}:5"));
        sim.text(&"A long comment. ".repeat(200));
        sim.text("help");
        sim.text("language");
        sim.text("status");

        // Every reply was checked by the simulation; a few by hand too.
        assert!(sim.replies.len() > 50, "{}", sim.replies.len());
        for (_, reply) in &sim.replies {
            if let Reply::Interactive {
                template, choices, ..
            } = reply
            {
                let list = ui::is_list_template(template);
                for Choice {
                    title, description, ..
                } in choices
                {
                    let max = if list {
                        MAX_ROW_TITLE
                    } else {
                        MAX_BUTTON_TITLE
                    };
                    assert!(ui::len(title) <= max, "{title}");
                    if let Some(d) = description {
                        assert!(ui::len(d) <= MAX_ROW_DESCRIPTION, "{d}");
                    }
                }
            }
        }
        assert_eq!(sim.dialogue.step, Step::Start);
    }
}

#[test]
fn long_titles_are_cut_for_the_buttons_but_whole_in_the_text_version() {
    let mut sim = Sim::new(Lang::En);
    sim.start_delivery();
    sim.pick(&format!("cat:{DESSERTS}"));
    let a = sim.pick("page:1");
    match last_interactive(&a) {
        Reply::Interactive {
            choices, fallback, ..
        } => {
            let long = &choices[3];
            assert_eq!(long.title, "Saffron & Pistachio Ice…");
            assert_eq!(ui::len(&long.title), MAX_ROW_TITLE);
            assert!(fallback.contains("4. Saffron & Pistachio Ice Cream Deluxe"));
        }
        Reply::Text(_) => unreachable!(),
    }
    // A long description is cut in the list row.
    sim.text("back");
    let a = sim.pick(&format!("cat:{GRILLS}"));
    match last_interactive(&a) {
        Reply::Interactive { choices, .. } => {
            let mixed = choices[2].description.as_deref().unwrap();
            assert!(mixed.starts_with("89.00 SAR · Tawook, kebab"), "{mixed}");
            assert!(mixed.ends_with('…'));
            assert_eq!(ui::len(mixed), MAX_ROW_DESCRIPTION);
        }
        Reply::Text(_) => unreachable!(),
    }
}

#[test]
fn check_limits_refuses_what_whatsapp_refuses() {
    let choice = |id: &str, title: &str| Choice {
        id: id.into(),
        title: title.into(),
        description: None,
    };
    let reply = |template: &str, body: &str, choices: Vec<Choice>| Reply::Interactive {
        template: template.into(),
        content_sid: None,
        variables: BTreeMap::from([("1".to_string(), body.to_string())]),
        body: body.into(),
        choices,
        fallback: "1. x".into(),
    };
    let four = (1..=4).map(|i| choice(&format!("qty:{i}"), "x")).collect();
    assert!(reply("quantity", "b", four).check_limits().is_err());
    let eleven = (1..=11)
        .map(|i| choice(&format!("page:{i}"), "x"))
        .collect();
    assert!(reply("items", "b", eleven).check_limits().is_err());
    assert!(reply("items", "b", vec![]).check_limits().is_err());
    assert!(
        reply("cart", "b", vec![choice("act:more", &"x".repeat(21))])
            .check_limits()
            .is_err()
    );
    assert!(
        reply("items", "b", vec![choice("act:more", &"x".repeat(25))])
            .check_limits()
            .is_err()
    );
    assert!(reply("cart", "b", vec![choice(&"x".repeat(201), "x")])
        .check_limits()
        .is_err());
    assert!(reply("cart", &"b".repeat(1025), vec![])
        .check_limits()
        .is_err());
    assert!(reply("cart", "b", vec![choice("a", "x"), choice("a", "y")])
        .check_limits()
        .is_err());
    assert!(Reply::Text("x".repeat(1601)).check_limits().is_err());
    assert!(reply("cart", "b", vec![choice("act:more", "🛒 View cart")])
        .check_limits()
        .is_ok());
}
