//! The restaurant bot: what to answer a customer, decided from the
//! conversation's stored [`Dialogue`] and the message, with no I/O. The
//! conversation stage loads the state, calls [`on_message`] or
//! [`on_order_update`], stores the new state and carries out the
//! [`Action`]s, all in one transaction.
//!
//! Decisions are pure functions of (dialogue, input, context): the same call
//! on the same stored state decides the same answer, so a replayed message is
//! harmless. Time comes in [`Context::now`], the order id in
//! [`Context::new_order_id`].
//!
//! Every text the customer reads lives in [`texts`] (one method per message,
//! one implementation per language). Choice ids sent in buttons and lists are
//! described in [`ids`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
pub use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
pub use waiter_hours::Schedule;
pub use waiter_nats::messages::{Fulfilment, OrderStatus, PaymentMethod};

pub mod bidi;
pub mod consent;
mod flow;
pub mod geo;
pub mod ids;
mod menu;
pub mod normalize;
mod opening;
mod rating;
pub mod texts;
pub mod ui;
mod views;

#[cfg(test)]
mod tests;

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

    /// The other language (the greeting offers it as a button).
    pub fn other(self) -> Lang {
        match self {
            Lang::Ar => Lang::En,
            Lang::En => Lang::Ar,
        }
    }
}

/// What the bot knows of the restaurant.
#[derive(Debug, Clone)]
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
    /// A language-specific entry `"<name>_<lang>"` (e.g. "rating_prompt_ar")
    /// wins over the plain name. See [`ui`] for the names and variables.
    pub content_templates: BTreeMap<String, String>,
    /// Keys of `content_templates` WhatsApp approved: only those may be
    /// sent outside the customer's 24-hour window.
    pub approved_templates: BTreeSet<String>,
    /// Opening hours are in this time zone.
    pub time_zone: Tz,
}

impl Default for RestaurantInfo {
    fn default() -> Self {
        RestaurantInfo {
            name_en: String::new(),
            name_ar: String::new(),
            default_language: Lang::default(),
            currency: String::new(),
            delivery_fee: 0,
            min_delivery_order: 0,
            payment_link_base: None,
            support_contact: None,
            promo_links: vec![],
            content_templates: BTreeMap::new(),
            approved_templates: BTreeSet::new(),
            time_zone: Tz::UTC,
        }
    }
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
    pub offers: Offers,
    /// Opening hours, in the restaurant's time zone.
    pub schedule: Schedule,
}

/// What a branch offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Offers {
    #[default]
    Both,
    PickupOnly,
    DeliveryOnly,
}

impl Offers {
    pub fn new(pickup: bool, delivery: bool) -> Offers {
        match (pickup, delivery) {
            (true, false) => Offers::PickupOnly,
            (false, true) => Offers::DeliveryOnly,
            _ => Offers::Both,
        }
    }

    pub fn includes(self, fulfilment: Fulfilment) -> bool {
        matches!(
            (self, fulfilment),
            (Offers::Both, _)
                | (Offers::PickupOnly, Fulfilment::Pickup)
                | (Offers::DeliveryOnly, Fulfilment::Delivery)
        )
    }
}

/// Everything the bot may read while deciding.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub restaurant: &'a RestaurantInfo,
    /// Categories and items in display order.
    pub menu: &'a [Category],
    /// The restaurant's *active* branches in display order (`position`);
    /// the first one serves typed addresses that have no coordinates.
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
    /// Sent back as ButtonPayload / list id (see [`ids::ChoiceId`]).
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
    /// `fallback` (numbered text). Which of the two a template is: see
    /// [`Reply::is_list`]. Variables: see [`ui`].
    Interactive {
        template: String,
        content_sid: Option<String>,
        variables: BTreeMap<String, String>,
        body: String,
        choices: Vec<Choice>,
        fallback: String,
    },
}

impl Reply {
    /// Whether this is a list picker (else quick-reply buttons or text).
    pub fn is_list(&self) -> bool {
        matches!(self, Reply::Interactive { template, .. } if ui::is_list_template(template))
    }

    /// The text sent when no ContentSid is used.
    pub fn text(&self) -> &str {
        match self {
            Reply::Text(text) => text,
            Reply::Interactive { fallback, .. } => fallback,
        }
    }

    /// Checks WhatsApp's limits (buttons, list rows, title, description, id
    /// and body lengths). Every reply the bot builds passes; the stage may
    /// call it as a last guard.
    pub fn check_limits(&self) -> Result<(), String> {
        ui::check_limits(self)
    }
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
    /// The customer chose a rating (always `comment: None`: a comment
    /// follows as [`Action::CommentOrder`]).
    RateOrder {
        order_id: Uuid,
        rating: i16,
        comment: Option<String>,
    },
    /// The free-text comment the customer wrote after rating an order.
    CommentOrder {
        order_id: Uuid,
        comment: String,
    },
    /// The customer asked for a human: pause the bot, alert staff.
    Handoff,
    /// Ask the customer again later (rating "Later"): the stage calls
    /// [`on_order_update`] with DELIVERED again after a delay. Emitted at
    /// most once per order.
    RemindLater {
        order_id: Uuid,
    },
    /// The rating prompt was not sent: outside the 24-hour window and no
    /// approved "rating_prompt" template is configured. Record it.
    RatingPromptSkipped {
        order_id: Uuid,
    },
    /// An order notice was not sent: outside the 24-hour window and no
    /// approved "order_update" template is configured. Record it.
    NotificationSkipped {
        order_id: Uuid,
        status: OrderStatus,
    },
}

/// The conversation's stored dialogue state (JSONB in `conversations.dialogue`).
/// Every field has a default, so states stored by older versions load.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Dialogue {
    /// The customer's chosen language, if they switched.
    pub language: Option<Lang>,
    pub step: Step,
    pub cart: Vec<CartLine>,
    pub fulfilment: Option<Fulfilment>,
    pub branch_id: Option<Uuid>,
    /// The delivery address as the customer typed it or as WhatsApp
    /// labelled their shared location.
    pub address: Option<String>,
    /// The shared delivery location (latitude, longitude), if any.
    pub location: Option<(f64, f64)>,
    pub payment: Option<PaymentMethod>,
    /// The last order placed in this conversation.
    pub last_order_id: Option<Uuid>,
    /// Data of the current step (the category being browsed, the item whose
    /// quantity is asked, the order being rated, ...), keys in [`keys`].
    /// Cleared whenever the step changes; the bot alone reads and writes it.
    pub context: BTreeMap<String, String>,
    /// What the bot last heard of recent orders (newest last, at most
    /// [`MAX_REMEMBERED_ORDERS`]): the status answer and the rating flow.
    pub orders: Vec<OrderMemo>,
    /// Orders already rated (newest last, at most [`MAX_RATED_ORDERS`]): a
    /// late or repeated answer never rates them again.
    pub rated_orders: Vec<Uuid>,
    /// When the step was last set or the customer last wrote; a dialogue
    /// idle for [`STALE_AFTER_HOURS`] restarts at the greeting (cart kept).
    pub last_activity: Option<DateTime<Utc>>,
}

/// Keys of [`Dialogue::context`].
pub mod keys {
    pub const CATEGORY: &str = "category";
    pub const QUERY: &str = "query";
    pub const PAGE: &str = "page";
    pub const ITEM: &str = "item";
    pub const ORDER: &str = "order";
    pub const RATING: &str = "rating";
}

pub const MAX_REMEMBERED_ORDERS: usize = 10;
pub const MAX_RATED_ORDERS: usize = 50;
pub const STALE_AFTER_HOURS: i64 = 6;
/// Largest quantity of one item a customer may order in one line.
pub const MAX_QUANTITY: u32 = 50;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CartLine {
    pub item_id: Uuid,
    pub quantity: u32,
}

/// What the bot remembers of one order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct OrderMemo {
    pub order_id: Uuid,
    pub number: Option<i64>,
    /// The last status heard (DRAFT until the first update arrives).
    pub status: OrderStatus,
    pub total: Option<i64>,
    pub fulfilment: Option<Fulfilment>,
    pub payment: Option<PaymentMethod>,
    /// How many rating prompts were sent (the first, then one re-ask).
    pub rating_prompts: u8,
    /// Whether "Later" already asked for a reminder.
    pub reminded: bool,
    pub rating: Option<i16>,
}

impl Default for OrderMemo {
    fn default() -> Self {
        OrderMemo {
            order_id: Uuid::nil(),
            number: None,
            status: OrderStatus::Draft,
            total: None,
            fulfilment: None,
            payment: None,
            rating_prompts: 0,
            reminded: false,
            rating: None,
        }
    }
}

/// Where the dialogue is: what the bot asked last, so the next message is
/// read as its answer.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Nothing asked yet: the next message gets the greeting.
    #[default]
    Start,
    /// Delivery or pickup?
    Fulfilment,
    /// Pickup: which branch? (context: page)
    Branch,
    /// Delivery: share a location or type an address.
    Location,
    /// The category list. (context: page)
    Menu,
    /// Items of a category or of a search. (context: category | query, page)
    Items,
    /// How many of an item? (context: item)
    Quantity,
    /// Just added to the cart: add more, view cart or checkout?
    Added,
    /// The cart: checkout, add more or remove an item?
    Cart,
    /// Which cart line to remove? (context: page)
    Remove,
    /// Delivery below the minimum order: add more, pickup or view cart?
    BelowMinimum,
    /// Cash or online?
    Payment,
    /// Place the order?
    Confirm,
    /// An order was placed; waiting for its updates.
    OrderPlaced,
    /// Rate now, later or help? (context: order)
    RatingPrompt,
    /// 1–5 stars? (context: order)
    Rating,
    /// An optional comment on the rating just given. (context: order, rating)
    RatingComment,
    /// A step stored by a newer version: read as `Start`.
    #[serde(other)]
    Unknown,
}

impl Dialogue {
    pub fn language(&self, restaurant: &RestaurantInfo) -> Lang {
        self.language.unwrap_or(restaurant.default_language)
    }

    /// What the bot remembers of an order, if anything.
    pub fn order(&self, order_id: Uuid) -> Option<&OrderMemo> {
        self.orders.iter().find(|m| m.order_id == order_id)
    }

    /// Whether the order was rated (by the customer here, or as RATED heard).
    pub fn is_rated(&self, order_id: Uuid) -> bool {
        self.rated_orders.contains(&order_id)
            || self.order(order_id).is_some_and(|m| m.rating.is_some())
    }
}

/// Formats minor units as an amount with the currency.
pub fn money(amount: i64, currency: &str) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", abs / 100, abs % 100)
}

/// Decides the answer to one customer message.
pub fn on_message(dialogue: &mut Dialogue, inbound: &Inbound, ctx: &Context<'_>) -> Vec<Action> {
    flow::on_message(dialogue, inbound, ctx)
}

/// The order stage refused to place an order (its branch was closed when
/// it was confirmed): tell the customer why and give them their cart back.
pub fn on_order_refused(
    dialogue: &mut Dialogue,
    refusal: &waiter_nats::messages::OrderRefusal,
    ctx: &Context<'_>,
) -> Vec<Action> {
    opening::on_order_refused(dialogue, refusal, ctx)
}

/// Decides what to tell the customer about an order change.
pub fn on_order_update(
    dialogue: &mut Dialogue,
    update: &OrderUpdate,
    ctx: &Context<'_>,
) -> Vec<Action> {
    rating::on_order_update(dialogue, update, ctx)
}
