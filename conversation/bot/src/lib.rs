//! The restaurant bot: what to answer a customer, decided from the
//! conversation's stored [`Dialogue`] and the message, with no I/O. The
//! conversation stage loads the state, calls [`on_message`] or
//! [`on_order_update`], stores the new state and carries out the
//! [`Action`]s, all in one transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
pub use waiter_nats::messages::{Fulfilment, OrderStatus, PaymentMethod};

/// Dialogue language.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Ar,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Lang {
        if s.eq_ignore_ascii_case("en") {
            Lang::En
        } else {
            Lang::Ar
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Ar => "ar",
            Lang::En => "en",
        }
    }
}

/// What the bot knows of the restaurant.
#[derive(Debug, Clone, Default)]
pub struct RestaurantInfo {
    pub name_en: String,
    pub name_ar: String,
    pub default_language: Lang,
    pub currency: String,
    pub delivery_fee: i64,
    pub min_delivery_order: i64,
    pub payment_link_base: Option<String>,
    pub support_contact: Option<String>,
    pub promo_links: Vec<String>,
    /// ContentSid per message name (e.g. "fulfilment", "rating_prompt").
    pub content_templates: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct MenuItem {
    pub id: Uuid,
    pub name_en: String,
    pub name_ar: String,
    pub description_en: String,
    pub description_ar: String,
    /// Minor units.
    pub price: i64,
    pub discount_percent: i32,
    pub available: bool,
    pub unavailable_branches: Vec<Uuid>,
}

#[derive(Debug, Clone, Default)]
pub struct Category {
    pub id: Uuid,
    pub name_en: String,
    pub name_ar: String,
    pub items: Vec<MenuItem>,
}

#[derive(Debug, Clone, Default)]
pub struct Branch {
    pub id: Uuid,
    pub name_en: String,
    pub name_ar: String,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub delivery_radius_km: f64,
}

/// Everything the bot may read while deciding.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub restaurant: &'a RestaurantInfo,
    pub menu: &'a [Category],
    pub branches: &'a [Branch],
    pub now: DateTime<Utc>,
    /// A fresh id the bot may use for an order it places (derived by the
    /// caller from the inbound message id, so a replay decides the same).
    pub new_order_id: Uuid,
    /// Whether the customer wrote within the last 24 hours (free-form
    /// messages are allowed only then).
    pub within_session_window: bool,
}

/// The customer's message, as the bot reads it.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    pub body: String,
    /// Quick-reply `ButtonPayload`.
    pub button_payload: Option<String>,
    /// List-picker choice id.
    pub list_id: Option<String>,
    pub location: Option<(f64, f64)>,
    pub address: Option<String>,
    pub original_replied_message_sid: Option<String>,
    pub profile_name: Option<String>,
    pub has_media: bool,
}

/// An order change the customer should hear about.
#[derive(Debug, Clone)]
pub struct OrderUpdate {
    pub order_id: Uuid,
    pub order_number: i64,
    pub status: OrderStatus,
    pub previous: Option<OrderStatus>,
    pub rating: Option<i16>,
    pub total: i64,
    pub fulfilment: Fulfilment,
}

/// One choice of an interactive message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Sent back as ButtonPayload / list id.
    pub id: String,
    pub title: String,
    pub description: Option<String>,
}

/// A message to the customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Text(String),
    /// Quick-reply buttons (≤ 3) or a list picker (≤ 10): sent as
    /// ContentSid + ContentVariables when `content_sid` is set, else as
    /// `fallback` (numbered text).
    Interactive {
        template: String,
        content_sid: Option<String>,
        variables: BTreeMap<String, String>,
        body: String,
        choices: Vec<Choice>,
        fallback: String,
    },
}

/// What the conversation stage must do after a decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send(Reply),
    /// Create the order (DRAFT) and confirm it.
    PlaceOrder {
        order_id: Uuid,
        fulfilment: Fulfilment,
        branch_id: Option<Uuid>,
        address: Option<String>,
        payment: PaymentMethod,
        lines: Vec<(Uuid, u32)>,
    },
    CancelOrder {
        order_id: Uuid,
    },
    RateOrder {
        order_id: Uuid,
        rating: i16,
        comment: Option<String>,
    },
    /// The customer asked for a human: pause the bot, alert staff.
    Handoff,
    /// Ask the customer again later (rating "Later").
    RemindLater {
        order_id: Uuid,
    },
}

/// The conversation's stored dialogue state (JSONB in `conversations.dialogue`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Dialogue {
    /// The customer's chosen language, if they switched.
    pub language: Option<Lang>,
    pub step: Step,
    pub cart: Vec<CartLine>,
    pub fulfilment: Option<Fulfilment>,
    pub branch_id: Option<Uuid>,
    pub address: Option<String>,
    pub payment: Option<PaymentMethod>,
    /// The last order placed in this conversation.
    pub last_order_id: Option<Uuid>,
    /// Data of the current step (the category being browsed, the item whose
    /// quantity is asked, the order being rated, ...).
    pub context: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CartLine {
    pub item_id: Uuid,
    pub quantity: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Nothing asked yet: the next message gets the greeting.
    #[default]
    Start,
    Menu,
}

impl Dialogue {
    pub fn language(&self, restaurant: &RestaurantInfo) -> Lang {
        self.language.unwrap_or(restaurant.default_language)
    }
}

/// Formats minor units as an amount with the currency.
pub fn money(amount: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", amount / 100, (amount % 100).abs())
}

/// Decides the answer to one customer message.
pub fn on_message(dialogue: &mut Dialogue, inbound: &Inbound, ctx: &Context<'_>) -> Vec<Action> {
    let _ = inbound;
    let lang = dialogue.language(ctx.restaurant);
    let name = match lang {
        Lang::Ar => &ctx.restaurant.name_ar,
        Lang::En => &ctx.restaurant.name_en,
    };
    let mut text = match lang {
        Lang::Ar => format!("أهلاً بك في {name}! هذه قائمتنا:"),
        Lang::En => format!("Welcome to {name}! Here is our menu:"),
    };
    for category in ctx.menu {
        let cat = match lang {
            Lang::Ar => &category.name_ar,
            Lang::En => &category.name_en,
        };
        text.push_str(&format!("\n\n{cat}"));
        for item in &category.items {
            let item_name = match lang {
                Lang::Ar => &item.name_ar,
                Lang::En => &item.name_en,
            };
            text.push_str(&format!(
                "\n• {item_name} — {}",
                money(item.price, &ctx.restaurant.currency)
            ));
        }
    }
    dialogue.step = Step::Menu;
    vec![Action::Send(Reply::Text(text))]
}

/// Decides what to tell the customer about an order change.
pub fn on_order_update(
    dialogue: &mut Dialogue,
    update: &OrderUpdate,
    ctx: &Context<'_>,
) -> Vec<Action> {
    let lang = dialogue.language(ctx.restaurant);
    let text = match lang {
        Lang::Ar => format!(
            "طلبك رقم {} الآن: {}",
            update.order_number,
            update.status.as_str()
        ),
        Lang::En => format!(
            "Your order #{} is now {}",
            update.order_number,
            update.status.as_str()
        ),
    };
    vec![Action::Send(Reply::Text(text))]
}
