//! Every text the customer reads, per language: [`Texts`] has one method
//! per message, implemented by [`en::English`] and [`ar::Arabic`] (the
//! compiler makes sure both languages have every message). Amounts arrive
//! already formatted by [`crate::money`]; Arabic texts isolate them and
//! other left-to-right runs (see [`crate::bidi`]). What customers may type
//! is in [`vocab`].

pub mod ar;
pub mod en;
pub mod vocab;

use crate::{Fulfilment, Lang, OrderStatus, PaymentMethod};

/// The texts of a language.
pub fn of(lang: Lang) -> &'static dyn Texts {
    match lang {
        Lang::Ar => &ar::Arabic,
        Lang::En => &en::English,
    }
}

/// A language's own name (the language buttons show it in itself).
pub fn language_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Ar => "العربية",
        Lang::En => "English",
    }
}

/// One line of a cart or an order summary.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    pub name: &'a str,
    pub quantity: u32,
    /// The line total, formatted.
    pub amount: String,
}

/// Where the order goes.
#[derive(Debug, Clone)]
pub enum Place<'a> {
    Delivery {
        address: &'a str,
        branch: Option<&'a str>,
    },
    Pickup {
        branch: Option<&'a str>,
    },
}

/// The delivery fee line of a summary.
#[derive(Debug, Clone)]
pub enum Fee {
    /// Pickup: no fee line.
    None,
    Free,
    Amount(String),
}

/// The order summary shown at checkout.
#[derive(Debug, Clone)]
pub struct Summary<'a> {
    pub lines: Vec<Line<'a>>,
    /// Lines not shown (a very long cart).
    pub more_lines: usize,
    pub subtotal: String,
    pub fee: Fee,
    pub total: String,
    pub place: Place<'a>,
}

/// A local day relative to today, for "opens …".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenDay {
    Today,
    Tomorrow,
    /// Within the coming week.
    Weekday(chrono::Weekday),
    /// Later: day of month and month.
    Date {
        day: u32,
        month: u32,
    },
}

/// When a branch opens, in the restaurant's local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    pub day: WhenDay,
    /// `HH:MM`, 24-hour clock.
    pub time: String,
}

/// One method per message the bot sends.
pub trait Texts: Sync {
    // ------------------------------------------------------------ greeting
    fn greeting(&self, restaurant: &str, customer: Option<&str>) -> String;
    fn ask_fulfilment(&self) -> String;
    fn cart_kept(&self, items: u32) -> String;
    fn delivery_button(&self) -> String;
    fn pickup_button(&self) -> String;

    // ------------------------------------------------------------- generic
    fn didnt_get(&self) -> String;
    fn choose_number(&self, max: usize) -> String;
    fn stale_choice(&self) -> String;
    fn media_unsupported(&self) -> String;
    /// The last line of a numbered (fallback) list.
    fn reply_with_number(&self) -> String;
    fn more_title(&self) -> String;
    fn more_description(&self, next_page: usize, pages: usize) -> String;
    fn back_title(&self) -> String;

    // --------------------------------------------------- branch and location
    fn ask_branch(&self) -> String;
    fn pickup_from(&self, branch: &str) -> String;
    fn no_branches(&self) -> String;
    fn ask_location(&self) -> String;
    fn pickup_instead_button(&self) -> String;
    fn staff_button(&self) -> String;
    fn delivering_from(&self, branch: &str, distance_km: f64) -> String;
    fn delivering_to_address(&self, address: &str, branch: &str) -> String;
    fn outside_area(&self, nearest: Option<(&str, f64)>) -> String;
    /// No branch takes orders now; the branch that opens soonest, if any.
    fn closed_now(&self, next: Option<(&str, &When)>) -> String;
    /// The chosen branch is closed (and when it opens, if known).
    fn branch_closed(&self, branch: &str, opens: Option<&When>) -> String;
    /// The order could not be placed: the branch had closed. The cart is kept.
    fn order_refused_closed(&self, branch: &str, opens: Option<&When>) -> String;
    fn address_too_short(&self) -> String;
    /// How a shared location without an address label is shown.
    fn shared_location(&self) -> String;

    // ---------------------------------------------------------------- menu
    fn ask_category(&self) -> String;
    fn category_description(&self, items: usize) -> String;
    fn cart_entry(&self, items: u32) -> String;
    fn cart_entry_description(&self, subtotal: &str) -> String;
    fn menu_empty(&self) -> String;
    fn ask_item(&self, category: &str) -> String;
    fn search_results(&self, query: &str) -> String;
    fn not_found(&self, query: &str) -> String;
    fn item_unavailable(&self, item: &str) -> String;
    /// A price with its discount, if any ("37.80 SAR (-10%)").
    fn price(&self, price: &str, discount_percent: i32) -> String;

    // ------------------------------------------------------------ quantity
    fn ask_quantity(&self, item: &str, price: &str, description: &str, max: u32) -> String;
    fn quantity_range(&self, max: u32) -> String;
    fn quantity_capped(&self, item: &str, max: u32) -> String;

    // ---------------------------------------------------------------- cart
    fn added(&self, quantity: u32, item: &str) -> String;
    fn cart_status(&self, items: u32, subtotal: &str) -> String;
    fn ask_next(&self) -> String;
    fn add_more_button(&self) -> String;
    fn view_cart_button(&self) -> String;
    fn checkout_button(&self) -> String;
    fn remove_button(&self) -> String;
    fn cart(&self, lines: &[Line<'_>], more_lines: usize, subtotal: &str) -> String;
    fn cart_empty(&self) -> String;
    fn ask_remove(&self) -> String;
    fn removed(&self, item: &str) -> String;
    fn items_dropped(&self, items: &[&str]) -> String;
    /// A cart line's description in the remove list ("2 × 28.00 SAR").
    fn line_description(&self, quantity: u32, amount: &str) -> String;
    fn below_minimum(&self, minimum: &str, subtotal: &str, shortfall: &str) -> String;

    // ------------------------------------------------------------ checkout
    fn summary(&self, summary: &Summary<'_>) -> String;
    fn ask_payment(&self) -> String;
    fn cash_button(&self) -> String;
    fn online_button(&self) -> String;
    fn ask_confirm(&self, total: &str, payment: PaymentMethod, fulfilment: Fulfilment) -> String;
    fn confirm_button(&self) -> String;
    fn edit_cart_button(&self) -> String;
    fn cancel_button(&self) -> String;
    fn placing(&self, payment_link: Option<&str>) -> String;
    fn ask_after_order(&self) -> String;
    fn status_button(&self) -> String;
    fn new_order_button(&self) -> String;
    fn help_button(&self) -> String;

    // ------------------------------------------------------------- anytime
    fn cart_cancelled(&self) -> String;
    fn cancelling_order(&self, number: Option<i64>) -> String;
    fn cannot_cancel(&self, number: Option<i64>) -> String;
    fn nothing_to_cancel(&self) -> String;
    fn order_status(
        &self,
        number: Option<i64>,
        status: OrderStatus,
        fulfilment: Option<Fulfilment>,
        total: Option<&str>,
    ) -> String;
    fn no_orders(&self) -> String;
    fn help(&self) -> String;
    fn handoff(&self) -> String;
    fn you_are_welcome(&self) -> String;
    fn language_switched(&self) -> String;
    fn ask_language(&self) -> String;
    /// What to type instead of tapping a language button.
    fn language_fallback(&self) -> String;

    // ------------------------------------------------------- order updates
    fn order_confirmed(&self, number: i64, total: &str, fulfilment: Fulfilment) -> String;
    fn order_preparing(&self, number: i64) -> String;
    fn order_on_the_way(&self, number: i64) -> String;
    fn order_delivered(&self, number: i64, fulfilment: Fulfilment) -> String;
    fn order_cancelled(&self, number: i64) -> String;

    // -------------------------------------------------------------- rating
    fn ask_to_rate(&self) -> String;
    fn rating_reminder(&self, number: i64) -> String;
    fn rate_now_button(&self) -> String;
    fn later_button(&self) -> String;
    fn ask_rating(&self, number: Option<i64>) -> String;
    fn rating_title(&self, stars: i16) -> String;
    fn rating_range(&self) -> String;
    fn thanks_for_rating(&self, promo_links: &[String]) -> String;
    fn sorry_for_rating(&self, support: Option<&str>) -> String;
    fn ask_comment(&self) -> String;
    fn skip_button(&self) -> String;
    fn comment_thanks(&self) -> String;
    fn comment_skipped(&self) -> String;
    fn later_ok(&self, will_remind: bool) -> String;
    fn already_rated(&self, number: Option<i64>) -> String;
    fn rating_help(&self, number: Option<i64>, support: Option<&str>) -> String;
}

/// Stars as text ("⭐⭐⭐").
pub fn stars(n: i16) -> String {
    "⭐".repeat(n.clamp(0, 5) as usize)
}
