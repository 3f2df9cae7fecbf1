//! The order ticket staff receive on WhatsApp, in the restaurant's default
//! language: one function per language, the data gathered here.

use waiter_bot::{
    bidi::{auto, ltr, rtl_lines},
    money,
    normalize::clean_free_text,
    ui, Category, Lang,
};
use waiter_nats::events::OrderLineView;

use crate::store::OrderTicket;

const MAX_NAME_CHARS: usize = 30;

/// The `whatsapp:+E164` address of a configured staff number, which
/// may be stored with or without the `whatsapp:` prefix.
pub fn address(number: &str) -> Option<String> {
    let number = number.trim();
    if number.is_empty() {
        None
    } else if number.starts_with("whatsapp:") {
        Some(number.to_string())
    } else {
        Some(format!("whatsapp:{number}"))
    }
}

/// Who ordered.
pub struct Customer<'a> {
    pub name: Option<&'a str>,
    /// `whatsapp:+E164`.
    pub address: &'a str,
}

/// What a ticket shows, ready to be worded.
struct Facts {
    number: i64,
    pickup: bool,
    cash: bool,
    /// The delivery address (delivery) or `None`.
    address: Option<String>,
    branch: Option<String>,
    /// (quantity, name, amount)
    lines: Vec<(i32, String, String)>,
    subtotal: String,
    fee: Option<String>,
    total: String,
    customer_name: Option<String>,
    customer_number: String,
}

fn facts(lang: Lang, order: &OrderTicket, customer: &Customer<'_>, menu: &[Category]) -> Facts {
    let amount = |minor: i64| money(minor, &order.currency);
    let lines: Vec<OrderLineView> = serde_json::from_value(order.lines.clone()).unwrap_or_default();
    let item_name = |line: &OrderLineView| -> String {
        let item = menu
            .iter()
            .flat_map(|c| c.items.iter())
            .find(|i| i.id == line.item_id);
        // The line carries the English name the order was priced with.
        match (lang, item) {
            (Lang::Ar, Some(item)) if !item.name_ar.trim().is_empty() => item.name_ar.clone(),
            _ => line.name.clone(),
        }
    };
    let branch = match lang {
        Lang::Ar => order
            .branch_name_ar
            .clone()
            .or(order.branch_name_en.clone()),
        Lang::En => order.branch_name_en.clone(),
    };
    let pickup = order.fulfilment == "pickup";
    Facts {
        number: order.number,
        pickup,
        cash: order.payment_method != "online",
        address: (!pickup)
            .then(|| order.address.as_deref().map(|a| clean_free_text(a, 400)))
            .flatten()
            .filter(|a| !a.is_empty()),
        branch,
        lines: lines
            .iter()
            .map(|l| (l.quantity, item_name(l), amount(l.line_total)))
            .collect(),
        subtotal: amount(order.subtotal),
        fee: (!pickup).then(|| amount(order.delivery_fee)),
        total: amount(order.total),
        customer_name: customer
            .name
            .map(|n| clean_free_text(n, MAX_NAME_CHARS).replace('\n', " "))
            .filter(|n| !n.trim().is_empty()),
        customer_number: customer
            .address
            .strip_prefix("whatsapp:")
            .unwrap_or(customer.address)
            .to_string(),
    }
}

/// The ticket template's variables (WhatsApp refuses line breaks in
/// them): `1` the order number, `2` the items on one line, `3` the total.
pub fn variables(
    lang: Lang,
    order: &OrderTicket,
    menu: &[Category],
) -> std::collections::BTreeMap<String, String> {
    let nobody = Customer {
        name: None,
        address: "",
    };
    let f = facts(lang, order, &nobody, menu);
    let items: Vec<String> = f
        .lines
        .iter()
        .map(|(quantity, name, _)| format!("{quantity} × {}", name.replace('\n', " ")))
        .collect();
    [
        ("1".to_string(), f.number.to_string()),
        ("2".to_string(), items.join(", ")),
        ("3".to_string(), f.total),
    ]
    .into()
}

/// The ticket's text, within WhatsApp's length limit.
pub fn text(lang: Lang, order: &OrderTicket, customer: &Customer<'_>, menu: &[Category]) -> String {
    let facts = facts(lang, order, customer, menu);
    match lang {
        Lang::En => ui::truncate_lines(&english(&facts), ui::MAX_TEXT),
        Lang::Ar => ui::truncate_lines(&rtl_lines(&arabic(&facts)), ui::MAX_TEXT),
    }
}

fn english(f: &Facts) -> String {
    let mut text = format!("🧾 *New order #{}*", f.number);
    if f.pickup {
        text.push_str("\n🏃 Pickup");
        if let Some(branch) = &f.branch {
            text.push_str(&format!(" at {branch}"));
        }
    } else {
        text.push_str("\n🛵 Delivery");
        if let Some(branch) = &f.branch {
            text.push_str(&format!(" from {branch}"));
        }
        if let Some(address) = &f.address {
            text.push_str(&format!("\n📍 {address}"));
        }
    }
    for (quantity, name, amount) in &f.lines {
        text.push_str(&format!("\n• {quantity} × {name} — {amount}"));
    }
    text.push_str(&format!("\nSubtotal: {}", f.subtotal));
    if let Some(fee) = &f.fee {
        text.push_str(&format!("\nDelivery fee: {fee}"));
    }
    text.push_str(&format!("\n*Total: {}*", f.total));
    text.push_str(match (f.cash, f.pickup) {
        (true, false) => "\n💵 Cash on delivery",
        (true, true) => "\n💵 Cash at pickup",
        (false, _) => "\n💳 Online payment (link sent to the customer)",
    });
    match &f.customer_name {
        Some(name) => text.push_str(&format!("\n👤 {name}, {}", f.customer_number)),
        None => text.push_str(&format!("\n👤 {}", f.customer_number)),
    }
    text
}

fn arabic(f: &Facts) -> String {
    let mut text = format!("🧾 *طلب جديد رقم {}*", ltr(&format!("#{}", f.number)));
    if f.pickup {
        text.push_str("\n🏃 استلام من الفرع");
        if let Some(branch) = &f.branch {
            text.push_str(&format!(": {}", auto(branch)));
        }
    } else {
        text.push_str("\n🛵 توصيل");
        if let Some(branch) = &f.branch {
            text.push_str(&format!(" من فرع {}", auto(branch)));
        }
        if let Some(address) = &f.address {
            text.push_str(&format!("\n📍 العنوان: {}", auto(address)));
        }
    }
    for (quantity, name, amount) in &f.lines {
        text.push_str(&format!(
            "\n• {} × {} — {}",
            auto(name),
            ltr(&quantity.to_string()),
            ltr(amount)
        ));
    }
    text.push_str(&format!("\nالمجموع الفرعي: {}", ltr(&f.subtotal)));
    if let Some(fee) = &f.fee {
        text.push_str(&format!("\nرسوم التوصيل: {}", ltr(fee)));
    }
    text.push_str(&format!("\n*الإجمالي:* {}", ltr(&f.total)));
    text.push_str(match (f.cash, f.pickup) {
        (true, false) => "\n💵 الدفع نقداً عند التوصيل",
        (true, true) => "\n💵 الدفع نقداً عند الاستلام",
        (false, _) => "\n💳 الدفع إلكترونياً (أُرسل رابط الدفع للعميل)",
    });
    match &f.customer_name {
        Some(name) => text.push_str(&format!(
            "\n👤 العميل: {} {}",
            auto(name),
            ltr(&f.customer_number)
        )),
        None => text.push_str(&format!("\n👤 العميل: {}", ltr(&f.customer_number))),
    }
    text
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;
    use waiter_bot::{bidi::first_strong_rtl, MenuItem};

    use super::*;

    const KEBAB: Uuid = Uuid::from_u128(0x102);
    const LABAN: Uuid = Uuid::from_u128(0x302);

    fn menu() -> Vec<Category> {
        let item = |id, en: &str, ar: &str| MenuItem {
            id,
            name_en: en.into(),
            name_ar: ar.into(),
            ..MenuItem::default()
        };
        vec![Category {
            items: vec![
                item(KEBAB, "Lamb Kebab", "كباب لحم"),
                item(LABAN, "Laban", "لبن"),
            ],
            ..Category::default()
        }]
    }

    fn order(fulfilment: &str, payment: &str) -> OrderTicket {
        OrderTicket {
            number: 12,
            fulfilment: fulfilment.into(),
            address: (fulfilment == "delivery").then(|| "Tahlia St, Riyadh".to_string()),
            payment_method: payment.into(),
            lines: serde_json::json!([
                {"item_id": KEBAB, "name": "Lamb Kebab", "quantity": 2, "unit_price": 3780, "line_total": 7560},
                {"item_id": LABAN, "name": "Laban", "quantity": 3, "unit_price": 500, "line_total": 1500},
            ]),
            subtotal: 9060,
            delivery_fee: if fulfilment == "delivery" { 1000 } else { 0 },
            total: if fulfilment == "delivery" {
                10060
            } else {
                9060
            },
            currency: "SAR".into(),
            branch_name_en: Some("Olaya".into()),
            branch_name_ar: Some("العليا".into()),
            staff_whatsapp: Some("+966511111111".into()),
        }
    }

    const SARA: Customer<'static> = Customer {
        name: Some("Sara\n*VIP*"),
        address: "whatsapp:+966500000001",
    };

    #[test]
    fn an_english_ticket_has_everything_the_kitchen_needs() {
        let text = text(Lang::En, &order("delivery", "cash"), &SARA, &menu());
        assert_eq!(
            text,
            "🧾 *New order #12*\n🛵 Delivery from Olaya\n📍 Tahlia St, Riyadh\n\
             • 2 × Lamb Kebab — 75.60 SAR\n• 3 × Laban — 15.00 SAR\n\
             Subtotal: 90.60 SAR\nDelivery fee: 10.00 SAR\n*Total: 100.60 SAR*\n\
             💵 Cash on delivery\n👤 Sara *VIP*, +966500000001"
        );
        let pickup = text_of(Lang::En, "pickup", "online");
        assert!(pickup.contains("🏃 Pickup at Olaya"), "{pickup}");
        assert!(!pickup.contains("Delivery fee"), "{pickup}");
        assert!(pickup.contains("💳 Online payment"), "{pickup}");
    }

    fn text_of(lang: Lang, fulfilment: &str, payment: &str) -> String {
        text(lang, &order(fulfilment, payment), &SARA, &menu())
    }

    #[test]
    fn an_arabic_ticket_uses_arabic_names_and_reads_right_to_left() {
        let text = text_of(Lang::Ar, "pickup", "cash");
        for part in [
            "طلب جديد",
            "#12",
            "العليا",
            "كباب لحم",
            "لبن",
            "90.60 SAR",
            "نقداً",
            "+966500000001",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        assert!(!text.contains("Lamb Kebab"), "{text}");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            assert_eq!(first_strong_rtl(line), Some(true), "{line:?}");
        }
    }

    #[test]
    fn a_long_order_is_cut_to_whatsapps_limit() {
        let mut long = order("delivery", "cash");
        let line = serde_json::json!({"item_id": Uuid::nil(), "name": "A rather long dish name", "quantity": 1, "unit_price": 100, "line_total": 100});
        long.lines = serde_json::Value::Array(vec![line; 200]);
        for lang in [Lang::En, Lang::Ar] {
            let text = text(lang, &long, &SARA, &menu());
            assert!(ui::len(&text) <= ui::MAX_TEXT, "{}", ui::len(&text));
            assert!(text.ends_with('…'), "{text}");
        }
    }

    #[test]
    fn staff_numbers_get_the_whatsapp_prefix_once() {
        assert_eq!(address(" +9665 "), Some("whatsapp:+9665".into()));
        assert_eq!(address("whatsapp:+9665"), Some("whatsapp:+9665".into()));
        assert_eq!(address("  "), None);
    }
}
