//! English texts.

use super::{stars, Fee, Line, Place, Summary, Texts, When, WhenDay};
use crate::{Fulfilment, OrderStatus, PaymentMethod};

pub struct English;

fn items(n: usize) -> String {
    if n == 1 {
        "1 item".to_string()
    } else {
        format!("{n} items")
    }
}

fn order_ref(number: Option<i64>) -> String {
    match number {
        Some(n) => format!("order #{n}"),
        None => "your order".to_string(),
    }
}

fn km(distance: f64) -> String {
    format!("{distance:.1} km")
}

impl Texts for English {
    fn greeting(&self, restaurant: &str, customer: Option<&str>) -> String {
        match customer {
            Some(name) => format!("Hi {name}, welcome to {restaurant}! 👋"),
            None => format!("Welcome to {restaurant}! 👋"),
        }
    }
    fn ask_fulfilment(&self) -> String {
        "Would you like delivery or pickup?".into()
    }
    fn cart_kept(&self, n: u32) -> String {
        format!("🛒 Your cart still has {}.", items(n as usize))
    }
    fn delivery_button(&self) -> String {
        "🛵 Delivery".into()
    }
    fn pickup_button(&self) -> String {
        "🏃 Pickup".into()
    }

    fn didnt_get(&self) -> String {
        "Sorry, I didn't get that.".into()
    }
    fn choose_number(&self, max: usize) -> String {
        if max == 1 {
            "Please reply 1.".into()
        } else {
            format!("Please reply with a number from 1 to {max}.")
        }
    }
    fn stale_choice(&self) -> String {
        "That option is from an earlier message.".into()
    }
    fn media_unsupported(&self) -> String {
        "Sorry, I can't read photos or voice notes. Please type your answer or tap an option."
            .into()
    }
    fn reply_with_number(&self) -> String {
        "Reply with the number of your choice.".into()
    }
    fn more_title(&self) -> String {
        "More…".into()
    }
    fn more_description(&self, next_page: usize, pages: usize) -> String {
        format!("Page {next_page} of {pages}")
    }
    fn back_title(&self) -> String {
        "⬅️ Back".into()
    }

    fn ask_branch(&self) -> String {
        "Which branch will you pick up from?".into()
    }
    fn pickup_from(&self, branch: &str) -> String {
        format!("🏃 Pickup from our {branch} branch.")
    }
    fn no_branches(&self) -> String {
        "Sorry, none of our branches is taking orders right now. Type *human* to reach our team."
            .into()
    }
    fn ask_location(&self) -> String {
        "Please share your location (📎 → Location) or type your delivery address.".into()
    }
    fn pickup_instead_button(&self) -> String {
        "🏃 Pickup instead".into()
    }
    fn staff_button(&self) -> String {
        "🙋 Talk to staff".into()
    }
    fn delivering_from(&self, branch: &str, distance_km: f64) -> String {
        format!(
            "📍 Great, we deliver there from our {branch} branch ({} away).",
            km(distance_km)
        )
    }
    fn delivering_to_address(&self, address: &str, branch: &str) -> String {
        format!("📍 We'll deliver to: {address} (from our {branch} branch).")
    }
    fn outside_area(&self, nearest: Option<(&str, f64)>) -> String {
        let mut text = "😔 Sorry, that location is outside our delivery area.".to_string();
        if let Some((branch, distance)) = nearest {
            text.push_str(&format!(
                " Our nearest branch, {branch}, is {} away.",
                km(distance)
            ));
        }
        text.push_str(" You can send another location, type an address, or pick up instead.");
        text
    }
    fn closed_now(&self, next: Option<(&str, &When)>) -> String {
        match next {
            Some((branch, when)) => format!(
                "🕒 Sorry, we're closed right now and can't take orders. Our {branch} branch opens {}.",
                opens(when)
            ),
            None => "🕒 Sorry, we're closed right now and can't take orders. Type *human* to reach our team."
                .into(),
        }
    }
    fn branch_closed(&self, branch: &str, when: Option<&When>) -> String {
        match when {
            Some(when) => format!(
                "🕒 Our {branch} branch is closed right now; it opens {}.",
                opens(when)
            ),
            None => format!("🕒 Our {branch} branch is closed right now."),
        }
    }
    fn order_refused_closed(&self, branch: &str, when: Option<&When>) -> String {
        let mut text = format!("😔 We couldn't place your order: our {branch} branch has closed.");
        if let Some(when) = when {
            text.push_str(&format!(" It opens {}.", opens(when)));
        }
        text.push_str(" Your cart is kept — write *hi* to order again.");
        text
    }
    fn address_too_short(&self) -> String {
        "Please type your full address (district and street) or share your location.".into()
    }

    fn shared_location(&self) -> String {
        "your shared location 📍".into()
    }

    fn ask_category(&self) -> String {
        "What would you like to order? Choose a category:".into()
    }
    fn category_description(&self, n: usize) -> String {
        items(n)
    }
    fn cart_entry(&self, n: u32) -> String {
        format!("🛒 Cart ({n})")
    }
    fn cart_entry_description(&self, subtotal: &str) -> String {
        format!("View your cart · {subtotal}")
    }
    fn menu_empty(&self) -> String {
        "Sorry, nothing on our menu is available right now. Type *human* to reach our team.".into()
    }
    fn ask_item(&self, category: &str) -> String {
        format!("{category}: choose an item:")
    }
    fn search_results(&self, query: &str) -> String {
        format!("Here's what I found for “{query}”:")
    }
    fn not_found(&self, query: &str) -> String {
        format!("Sorry, I couldn't find “{query}” on the menu.")
    }
    fn item_unavailable(&self, item: &str) -> String {
        format!("Sorry, {item} is not available right now.")
    }
    fn price(&self, price: &str, discount_percent: i32) -> String {
        if discount_percent > 0 {
            format!("{price} (-{discount_percent}%)")
        } else {
            price.to_string()
        }
    }

    fn ask_quantity(&self, item: &str, price: &str, description: &str, max: u32) -> String {
        let mut text = format!("*{item}* — {price}");
        if !description.is_empty() {
            text.push('\n');
            text.push_str(description);
        }
        text.push_str(&format!(
            "\n\nHow many would you like? Tap or type a number (up to {max})."
        ));
        text
    }
    fn quantity_range(&self, max: u32) -> String {
        format!("Please type a quantity from 1 to {max}.")
    }
    fn quantity_capped(&self, item: &str, max: u32) -> String {
        format!("You can order up to {max} of {item}, so I set it to {max}.")
    }

    fn added(&self, quantity: u32, item: &str) -> String {
        format!("✅ Added {quantity} × {item} to your cart.")
    }
    fn cart_status(&self, n: u32, subtotal: &str) -> String {
        format!("🛒 Your cart: {} · {subtotal}", items(n as usize))
    }
    fn ask_next(&self) -> String {
        "What would you like to do next?".into()
    }
    fn add_more_button(&self) -> String {
        "➕ Add more".into()
    }
    fn view_cart_button(&self) -> String {
        "🛒 View cart".into()
    }
    fn checkout_button(&self) -> String {
        "✅ Checkout".into()
    }
    fn remove_button(&self) -> String {
        "🗑️ Remove item".into()
    }
    fn cart(&self, lines: &[Line<'_>], more_lines: usize, subtotal: &str) -> String {
        let mut text = "🛒 Your cart:".to_string();
        for line in lines {
            text.push_str(&format!(
                "\n• {} × {} — {}",
                line.quantity, line.name, line.amount
            ));
        }
        if more_lines > 0 {
            text.push_str(&format!("\n… and {more_lines} more"));
        }
        text.push_str(&format!("\nSubtotal: {subtotal}"));
        text
    }
    fn cart_empty(&self) -> String {
        "Your cart is empty.".into()
    }
    fn ask_remove(&self) -> String {
        "Which item should I remove?".into()
    }
    fn removed(&self, item: &str) -> String {
        format!("🗑️ Removed {item} from your cart.")
    }
    fn items_dropped(&self, items: &[&str]) -> String {
        format!(
            "⚠️ Some items are no longer available and were removed from your cart: {}.",
            items.join(", ")
        )
    }
    fn line_description(&self, quantity: u32, amount: &str) -> String {
        format!("Qty {quantity} · {amount}")
    }
    fn below_minimum(&self, minimum: &str, subtotal: &str, shortfall: &str) -> String {
        format!(
            "The minimum order for delivery is {minimum} and your cart is {subtotal}. \
             Add {shortfall} more to check out, or choose pickup."
        )
    }

    fn summary(&self, s: &Summary<'_>) -> String {
        let mut text = "🧾 *Your order*".to_string();
        for line in &s.lines {
            text.push_str(&format!(
                "\n• {} × {} — {}",
                line.quantity, line.name, line.amount
            ));
        }
        if s.more_lines > 0 {
            text.push_str(&format!("\n… and {} more", s.more_lines));
        }
        text.push_str(&format!("\nSubtotal: {}", s.subtotal));
        match &s.fee {
            Fee::None => {}
            Fee::Free => text.push_str("\nDelivery: free"),
            Fee::Amount(fee) => text.push_str(&format!("\nDelivery fee: {fee}")),
        }
        text.push_str(&format!("\n*Total: {}*", s.total));
        match &s.place {
            Place::Delivery { address, branch } => {
                text.push_str(&format!("\n🛵 Delivery to: {address}"));
                if let Some(branch) = branch {
                    text.push_str(&format!(" (from {branch})"));
                }
            }
            Place::Pickup { branch } => match branch {
                Some(branch) => text.push_str(&format!("\n🏃 Pickup from: {branch}")),
                None => text.push_str("\n🏃 Pickup"),
            },
        }
        text
    }
    fn ask_payment(&self) -> String {
        "How would you like to pay?".into()
    }
    fn cash_button(&self) -> String {
        "💵 Cash".into()
    }
    fn online_button(&self) -> String {
        "💳 Pay online".into()
    }
    fn ask_confirm(&self, total: &str, payment: PaymentMethod, fulfilment: Fulfilment) -> String {
        let payment = match (payment, fulfilment) {
            (PaymentMethod::Cash, Fulfilment::Delivery) => "cash on delivery",
            (PaymentMethod::Cash, Fulfilment::Pickup) => "cash at pickup",
            (PaymentMethod::Online, _) => "online (you'll get a payment link)",
        };
        format!("Total {total}, paying {payment}.\nShall I place your order?")
    }
    fn confirm_button(&self) -> String {
        "✅ Place order".into()
    }
    fn edit_cart_button(&self) -> String {
        "✏️ Edit cart".into()
    }
    fn cancel_button(&self) -> String {
        "❌ Cancel".into()
    }
    fn placing(&self, payment_link: Option<&str>) -> String {
        let mut text =
            "⏳ Placing your order… You'll get your order number in a moment.".to_string();
        if let Some(link) = payment_link {
            text.push_str(&format!("\n\n💳 Pay securely here:\n{link}"));
        }
        text
    }
    fn ask_after_order(&self) -> String {
        "Anything else I can do for you?".into()
    }
    fn status_button(&self) -> String {
        "📦 Order status".into()
    }
    fn new_order_button(&self) -> String {
        "🆕 New order".into()
    }
    fn help_button(&self) -> String {
        "❓ Help".into()
    }

    fn cart_cancelled(&self) -> String {
        "Okay, I've cancelled this order and emptied your cart. Send *hi* whenever you'd like \
         to order again."
            .into()
    }
    fn cancelling_order(&self, number: Option<i64>) -> String {
        format!("Cancelling {}…", order_ref(number))
    }
    fn cannot_cancel(&self, number: Option<i64>) -> String {
        format!(
            "Sorry, {} is already being prepared and can't be cancelled here. \
             Type *human* to talk to our team.",
            order_ref(number)
        )
    }
    fn nothing_to_cancel(&self) -> String {
        "There's nothing to cancel.".into()
    }
    fn order_status(
        &self,
        number: Option<i64>,
        status: OrderStatus,
        fulfilment: Option<Fulfilment>,
        total: Option<&str>,
    ) -> String {
        let what = match status {
            OrderStatus::Draft => "has been received and is waiting for confirmation ⏳",
            OrderStatus::Confirmed => "is confirmed ✅",
            OrderStatus::Preparing => "is being prepared 👨‍🍳",
            OrderStatus::OutForDelivery => "is on its way 🛵",
            OrderStatus::Delivered | OrderStatus::Rated => match fulfilment {
                Some(Fulfilment::Pickup) => "has been picked up 🎉",
                _ => "has been delivered 🎉",
            },
            OrderStatus::Cancelled => "was cancelled",
        };
        let mut text = match number {
            Some(n) => format!("📦 Order #{n} {what}."),
            None => format!("📦 Your order {what}."),
        };
        if let Some(total) = total {
            text.push_str(&format!("\nTotal: {total}"));
        }
        text
    }
    fn no_orders(&self) -> String {
        "You have no orders yet. Send *hi* to start one.".into()
    }
    fn help(&self) -> String {
        "ℹ️ *How to order*\n\
         Tap the buttons, or reply with the number of an option.\n\
         You can also type:\n\
         • *menu* — start a new order\n\
         • *cart* — view your cart\n\
         • *status* — where's my order?\n\
         • *cancel* — cancel\n\
         • *human* — talk to our team\n\
         • *عربي* — التحدث بالعربية"
            .into()
    }
    fn handoff(&self) -> String {
        "🙋 I've let our team know. A member of staff will reply to you here shortly.".into()
    }
    fn you_are_welcome(&self) -> String {
        "You're welcome! 😊".into()
    }
    fn language_switched(&self) -> String {
        "Okay, let's continue in English.".into()
    }
    fn ask_language(&self) -> String {
        "Choose your language / اختر لغتك".into()
    }
    fn language_fallback(&self) -> String {
        "Type *English* or *عربي*.".into()
    }

    fn order_confirmed(&self, number: i64, total: &str, fulfilment: Fulfilment) -> String {
        let next = match fulfilment {
            Fulfilment::Delivery => "We'll let you know when it's on its way.",
            Fulfilment::Pickup => "We'll let you know when it's being prepared.",
        };
        format!("✅ Order #{number} is confirmed! Total: {total}.\n{next}")
    }
    fn order_preparing(&self, number: i64) -> String {
        format!("👨‍🍳 Order #{number} is being prepared.")
    }
    fn order_on_the_way(&self, number: i64) -> String {
        format!("🛵 Order #{number} is on its way to you!")
    }
    fn order_delivered(&self, number: i64, fulfilment: Fulfilment) -> String {
        match fulfilment {
            Fulfilment::Delivery => {
                format!("🎉 Order #{number} has been delivered. Enjoy your meal!")
            }
            Fulfilment::Pickup => {
                format!("🎉 Order #{number} has been picked up. Enjoy your meal!")
            }
        }
    }
    fn order_cancelled(&self, number: i64) -> String {
        format!("Order #{number} has been cancelled. Send *hi* if you'd like to order again.")
    }

    fn ask_to_rate(&self) -> String {
        "How was everything? We'd love your rating.".into()
    }
    fn rating_reminder(&self, number: i64) -> String {
        format!("A quick reminder: would you like to rate order #{number}?")
    }
    fn rate_now_button(&self) -> String {
        "⭐ Rate now".into()
    }
    fn later_button(&self) -> String {
        "⏰ Later".into()
    }
    fn ask_rating(&self, number: Option<i64>) -> String {
        format!(
            "How would you rate {}? Choose 1 to 5 stars.",
            order_ref(number)
        )
    }
    fn rating_title(&self, n: i16) -> String {
        let word = match n {
            5 => "Excellent",
            4 => "Very good",
            3 => "Good",
            2 => "Fair",
            _ => "Poor",
        };
        format!("{} {word}", stars(n))
    }
    fn rating_range(&self) -> String {
        "Please choose a rating from 1 to 5.".into()
    }
    fn thanks_for_rating(&self, promo_links: &[String]) -> String {
        let mut text = "Thank you for your rating! 💚 We're glad you enjoyed it.".to_string();
        if !promo_links.is_empty() {
            text.push_str("\nDon't miss our offers:");
            for link in promo_links {
                text.push_str(&format!("\n{link}"));
            }
        }
        text
    }
    fn sorry_for_rating(&self, support: Option<&str>) -> String {
        let mut text =
            "We're sorry your experience wasn't what it should be. 🙏 Our team will look into it."
                .to_string();
        if let Some(support) = support {
            text.push_str(&format!("\nYou can reach our support at {support}."));
        }
        text
    }
    fn ask_comment(&self) -> String {
        "Would you like to add a comment? Type it now, or tap Skip.".into()
    }
    fn skip_button(&self) -> String {
        "Skip".into()
    }
    fn comment_thanks(&self) -> String {
        "Thank you! We've passed your comment on to the team.".into()
    }
    fn comment_skipped(&self) -> String {
        "Okay, thanks again!".into()
    }
    fn later_ok(&self, will_remind: bool) -> String {
        if will_remind {
            "No problem, I'll ask you again a little later.".into()
        } else {
            "No problem.".into()
        }
    }
    fn already_rated(&self, number: Option<i64>) -> String {
        format!("You've already rated {}. Thank you!", order_ref(number))
    }
    fn rating_help(&self, number: Option<i64>, support: Option<&str>) -> String {
        let mut text = format!(
            "🙋 I've asked our team to help you with {}. They'll reply here shortly.",
            order_ref(number)
        );
        if let Some(support) = support {
            text.push_str(&format!("\nYou can also reach our support at {support}."));
        }
        text
    }
}

/// "today at 18:00", "on Friday at 13:00", "on 2 April at 12:00".
fn opens(when: &When) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let day = match when.day {
        WhenDay::Today => "today".to_string(),
        WhenDay::Tomorrow => "tomorrow".to_string(),
        WhenDay::Weekday(d) => format!("on {}", weekday(d)),
        WhenDay::Date { day, month } => format!("on {day} {}", MONTHS[(month as usize + 11) % 12]),
    };
    format!("{day} at {}", when.time)
}

fn weekday(d: chrono::Weekday) -> &'static str {
    use chrono::Weekday::*;
    match d {
        Mon => "Monday",
        Tue => "Tuesday",
        Wed => "Wednesday",
        Thu => "Thursday",
        Fri => "Friday",
        Sat => "Saturday",
        Sun => "Sunday",
    }
}
