//! The ordering dialogue: one customer message in, the answer out.
//!
//! Reading order of a message: a shared location; a tapped button or list
//! row (its id); an empty body; a command typed as the whole message
//! (greeting, cancel, help, ...); then the current step's answer: a number
//! means the step's n-th option (the quantity at the quantity step, the
//! stars at the rating step), then option titles and synonyms, then the
//! step's free text (an address, a comment, a menu search). Anything else
//! gets "I didn't get that" and the step's question again.

use chrono::Duration;
use uuid::Uuid;

use crate::geo::{self, Coverage};
use crate::ids::{ChoiceId, RateAnswer};
use crate::menu;
use crate::normalize::{
    clean_free_text, fold, name_matches, parse_number, parse_number_lenient, star_count,
};
use crate::opening;
use crate::rating;
use crate::texts::{self, vocab, vocab::Command, Fee, Line, Place, Summary, Texts};
use crate::ui::{self, templates, Fallback, Opt, View};
use crate::views::view;
use crate::{
    keys, money, Action, CartLine, Context, Dialogue, Fulfilment, Inbound, Lang, OrderMemo,
    OrderStatus, PaymentMethod, Step, MAX_QUANTITY, MAX_RATED_ORDERS, MAX_REMEMBERED_ORDERS,
    STALE_AFTER_HOURS,
};

/// Cart lines shown in an order summary.
const SUMMARY_LINES_SHOWN: usize = 30;
const MAX_ADDRESS_CHARS: usize = 300;
const MAX_QUERY_CHARS: usize = 60;
const MAX_PROFILE_NAME_CHARS: usize = 30;

/// One decision in the making: the context, the language (which may change
/// during the turn) and the actions decided so far.
pub(crate) struct Turn<'c, 'a> {
    pub ctx: &'c Context<'a>,
    pub lang: Lang,
    pub customer: Option<String>,
    pub actions: Vec<Action>,
}

impl<'c, 'a> Turn<'c, 'a> {
    pub fn new(ctx: &'c Context<'a>, lang: Lang) -> Self {
        Turn {
            ctx,
            lang,
            customer: None,
            actions: Vec::new(),
        }
    }

    pub fn t(&self) -> &'static dyn Texts {
        texts::of(self.lang)
    }

    pub fn money(&self, amount: i64) -> String {
        money(amount, &self.ctx.restaurant.currency)
    }

    pub fn act(&mut self, action: Action) {
        self.actions.push(action);
    }

    pub fn say(&mut self, text: String) {
        let reply = ui::text(&text, self.lang);
        self.actions.push(Action::Send(reply));
    }

    pub fn show(&mut self, view: &View, lead: &[String]) {
        // The quantity question asks for a number: its text version needs
        // no numbered options ("1. 1").
        let fallback = if view.template == templates::QUANTITY {
            Fallback::Hint(String::new())
        } else {
            Fallback::Numbered
        };
        let reply = ui::interactive(view, lead, self.lang, self.ctx.restaurant, fallback);
        self.actions.push(Action::Send(reply));
    }

    pub fn online_payment(&self) -> bool {
        self.ctx
            .restaurant
            .payment_link_base
            .as_deref()
            .is_some_and(|b| !b.trim().is_empty())
    }
}

// ------------------------------------------------------------ dialogue state

impl Step {
    /// Steps of an order being put together.
    pub(crate) fn in_flow(self) -> bool {
        matches!(
            self,
            Step::Fulfilment
                | Step::Branch
                | Step::Location
                | Step::Menu
                | Step::Items
                | Step::Quantity
                | Step::Added
                | Step::Cart
                | Step::Remove
                | Step::BelowMinimum
                | Step::Payment
                | Step::Confirm
        )
    }

    /// Steps where the menu is at hand (a menu button from an earlier
    /// message still works).
    pub(crate) fn browsing(self) -> bool {
        matches!(
            self,
            Step::Menu
                | Step::Items
                | Step::Quantity
                | Step::Added
                | Step::Cart
                | Step::Remove
                | Step::BelowMinimum
                | Step::Payment
                | Step::Confirm
        )
    }

    /// Steps that ask nothing pressing (an order update may take over).
    pub(crate) fn idle(self) -> bool {
        matches!(
            self,
            Step::Start
                | Step::Unknown
                | Step::OrderPlaced
                | Step::RatingPrompt
                | Step::Rating
                | Step::RatingComment
        )
    }

    pub(crate) fn rating(self) -> bool {
        matches!(
            self,
            Step::RatingPrompt | Step::Rating | Step::RatingComment
        )
    }
}

impl Dialogue {
    /// Moves to a step; the previous step's data goes.
    pub(crate) fn set_step(&mut self, step: Step) {
        self.step = step;
        self.context.clear();
    }

    pub(crate) fn put(&mut self, key: &str, value: impl ToString) {
        self.context.insert(key.to_string(), value.to_string());
    }

    pub(crate) fn get_uuid(&self, key: &str) -> Option<Uuid> {
        self.context.get(key).and_then(|v| Uuid::parse_str(v).ok())
    }

    pub(crate) fn get_usize(&self, key: &str) -> usize {
        self.context
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Forgets the choices of the order being put together (not the cart).
    pub(crate) fn reset_choices(&mut self) {
        self.fulfilment = None;
        self.branch_id = None;
        self.address = None;
        self.location = None;
        self.payment = None;
    }

    /// The memo of an order, created if new (the oldest is forgotten past
    /// [`MAX_REMEMBERED_ORDERS`]).
    pub(crate) fn memo_mut(&mut self, order_id: Uuid) -> &mut OrderMemo {
        let index = match self.orders.iter().position(|m| m.order_id == order_id) {
            Some(index) => index,
            None => {
                self.orders.push(OrderMemo {
                    order_id,
                    ..OrderMemo::default()
                });
                if self.orders.len() > MAX_REMEMBERED_ORDERS {
                    let excess = self.orders.len() - MAX_REMEMBERED_ORDERS;
                    self.orders.drain(..excess);
                }
                self.orders.len() - 1
            }
        };
        &mut self.orders[index]
    }

    pub(crate) fn mark_rated(&mut self, order_id: Uuid, rating: Option<i16>) {
        let memo = self.memo_mut(order_id);
        if memo.rating.is_none() {
            memo.rating = rating;
        }
        if !self.rated_orders.contains(&order_id) {
            self.rated_orders.push(order_id);
            if self.rated_orders.len() > MAX_RATED_ORDERS {
                let excess = self.rated_orders.len() - MAX_RATED_ORDERS;
                self.rated_orders.drain(..excess);
            }
        }
    }

    fn stale(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.last_activity
            .is_some_and(|t| now - t > Duration::hours(STALE_AFTER_HOURS))
    }
}

/// Whether the dialogue has been idle too long to read the next message as
/// an answer to its last question.
pub(crate) fn is_stale(d: &Dialogue, ctx: &Context<'_>) -> bool {
    d.step != Step::Start && d.stale(ctx.now)
}

// ------------------------------------------------------------------- entry

pub(crate) fn on_message(d: &mut Dialogue, inbound: &Inbound, ctx: &Context<'_>) -> Vec<Action> {
    let mut turn = Turn::new(ctx, d.language(ctx.restaurant));
    turn.customer = inbound
        .profile_name
        .as_deref()
        .map(|n| clean_free_text(n, MAX_PROFILE_NAME_CHARS).replace('\n', " "))
        .filter(|n| !n.trim().is_empty());
    if d.step == Step::Unknown || is_stale(d, ctx) {
        // A dialogue left for hours starts again at the greeting; the cart
        // stays and the greeting mentions it.
        d.set_step(Step::Start);
    }
    decide(d, inbound, &mut turn);
    d.last_activity = Some(ctx.now);
    turn.actions
}

fn decide(d: &mut Dialogue, inbound: &Inbound, turn: &mut Turn) {
    if let Some(point) = inbound.location {
        return on_location(d, point, inbound.address.as_deref(), turn);
    }
    let tapped = [&inbound.button_payload, &inbound.list_id]
        .into_iter()
        .flatten()
        .find_map(|p| ChoiceId::parse(p));
    if let Some(id) = tapped {
        return on_choice(d, id, turn);
    }
    let body = inbound.body.trim();
    if body.is_empty() {
        let lead = if inbound.has_media {
            turn.t().media_unsupported()
        } else {
            turn.t().didnt_get()
        };
        return reask(d, turn, vec![lead]);
    }
    if let Some(command) = vocab::command(body) {
        // A "thanks" written as the rating comment is the comment.
        if !(d.step == Step::RatingComment && command == Command::Thanks) {
            return on_command(d, command, turn);
        }
    }
    on_text(d, body, turn);
}

// ---------------------------------------------------------------- commands

fn on_command(d: &mut Dialogue, command: Command, turn: &mut Turn) {
    match command {
        Command::Greeting => greet(d, turn, true, vec![]),
        Command::Restart => greet(d, turn, false, vec![]),
        Command::Cancel => cancel(d, turn),
        Command::Help => {
            let help = turn.t().help();
            turn.say(help);
            reask_if_asking(d, turn);
        }
        Command::Human => handoff(turn),
        Command::Status => {
            status(d, turn);
            reask_if_asking(d, turn);
        }
        Command::Cart => view_cart(d, turn, vec![]),
        Command::Back => back(d, turn),
        Command::Language(lang) => switch_language(d, lang, turn),
        Command::LanguageMenu => language_menu(turn),
        Command::Thanks => {
            let text = turn.t().you_are_welcome();
            turn.say(text);
            reask_if_asking(d, turn);
        }
    }
}

/// The greeting and the delivery-or-pickup question. `keep_cart`: a
/// greeting keeps what the customer already chose; "start over" empties it.
pub(crate) fn greet(d: &mut Dialogue, turn: &mut Turn, keep_cart: bool, mut lead: Vec<String>) {
    if !keep_cart {
        d.cart.clear();
    }
    d.reset_choices();
    d.set_step(Step::Fulfilment);
    let restaurant = turn.ctx.restaurant;
    let name = menu::pick(turn.lang, &restaurant.name_en, &restaurant.name_ar);
    lead.push(turn.t().greeting(name, turn.customer.as_deref()));
    if !d.cart.is_empty() {
        lead.push(turn.t().cart_kept(menu::pieces(&d.cart)));
    }
    if !turn.ctx.branches.is_empty() && opening::open_now(turn.ctx, None).is_empty() {
        return opening::closed(d, turn, lead, None);
    }
    show_step(d, turn, lead);
}

fn switch_language(d: &mut Dialogue, lang: Lang, turn: &mut Turn) {
    d.language = Some(lang);
    turn.lang = lang;
    if matches!(d.step, Step::Start | Step::Unknown) {
        greet(d, turn, true, vec![]);
    } else {
        let lead = vec![turn.t().language_switched()];
        reask(d, turn, lead);
    }
}

fn language_menu(turn: &mut Turn) {
    let t = turn.t();
    let view = View {
        template: templates::LANGUAGE,
        body: t.ask_language(),
        options: vec![
            Opt::new(ChoiceId::Language(Lang::En), texts::language_name(Lang::En)),
            Opt::new(ChoiceId::Language(Lang::Ar), texts::language_name(Lang::Ar)),
        ],
    };
    // Not a step: a typed number stays the current step's answer, so the
    // text version asks for a word, not a number.
    let reply = ui::interactive(
        &view,
        &[],
        turn.lang,
        turn.ctx.restaurant,
        Fallback::Hint(t.language_fallback()),
    );
    turn.act(Action::Send(reply));
}

pub(crate) fn handoff(turn: &mut Turn) {
    turn.act(Action::Handoff);
    let text = turn.t().handoff();
    turn.say(text);
}

fn status(d: &Dialogue, turn: &mut Turn) {
    let memo = d.last_order_id.and_then(|id| d.order(id)).cloned();
    let text = match memo {
        Some(m) => {
            let total = m.total.map(|t| turn.money(t));
            turn.t()
                .order_status(m.number, m.status, m.fulfilment, total.as_deref())
        }
        None => turn.t().no_orders(),
    };
    turn.say(text);
}

/// Cancel: the order being put together (its cart emptied), else the last
/// order if it is not being prepared yet.
fn cancel(d: &mut Dialogue, turn: &mut Turn) {
    let in_flow = d.step.in_flow();
    if !d.cart.is_empty() {
        d.cart.clear();
        d.reset_choices();
        d.set_step(Step::Start);
        let text = turn.t().cart_cancelled();
        return turn.say(text);
    }
    let last = d.last_order_id.and_then(|id| d.order(id)).cloned();
    if let Some(m) = &last {
        if matches!(m.status, OrderStatus::Draft | OrderStatus::Confirmed) {
            turn.act(Action::CancelOrder {
                order_id: m.order_id,
            });
            let text = turn.t().cancelling_order(m.number);
            turn.say(text);
            if in_flow {
                d.reset_choices();
                d.set_step(Step::OrderPlaced);
            }
            return;
        }
    }
    if in_flow {
        d.reset_choices();
        d.set_step(Step::Start);
        let text = turn.t().cart_cancelled();
        return turn.say(text);
    }
    let text = match &last {
        Some(m)
            if matches!(
                m.status,
                OrderStatus::Preparing | OrderStatus::OutForDelivery
            ) =>
        {
            turn.t().cannot_cancel(m.number)
        }
        _ => turn.t().nothing_to_cancel(),
    };
    turn.say(text);
    reask_if_asking(d, turn);
}

fn back(d: &mut Dialogue, turn: &mut Turn) {
    match d.step {
        Step::Branch | Step::Location | Step::Menu => {
            d.reset_choices();
            d.set_step(Step::Fulfilment);
            show_step(d, turn, vec![]);
        }
        Step::Items => {
            let several = menu::visible_categories(turn.ctx.menu, d.branch_id).len() > 1;
            if d.context.contains_key(keys::QUERY) || several {
                d.set_step(Step::Menu);
            }
            show_step(d, turn, vec![]);
        }
        Step::Quantity => {
            let category = d
                .get_uuid(keys::ITEM)
                .and_then(|item| menu::category_of(turn.ctx.menu, item))
                .map(|c| c.id);
            match category {
                Some(category) => to_items(d, Source::Category(category), turn, vec![]),
                None => to_menu(d, turn, vec![]),
            }
        }
        Step::Remove | Step::Payment | Step::Confirm | Step::BelowMinimum => {
            view_cart(d, turn, vec![])
        }
        Step::Added | Step::Cart => to_menu(d, turn, vec![]),
        Step::Start | Step::Unknown => greet(d, turn, true, vec![]),
        Step::Fulfilment
        | Step::OrderPlaced
        | Step::RatingPrompt
        | Step::Rating
        | Step::RatingComment => show_step(d, turn, vec![]),
    }
}

// ------------------------------------------------------------------- input

fn on_text(d: &mut Dialogue, body: &str, turn: &mut Turn) {
    if matches!(d.step, Step::Start | Step::Unknown) {
        return greet(d, turn, true, vec![]);
    }
    let options = view(d, turn).map(|v| v.options).unwrap_or_default();

    // A number means what this step asked for.
    let number = if d.step == Step::Quantity {
        parse_number_lenient(body)
    } else {
        parse_number(body)
    };
    if let Some(n) = number {
        return match d.step {
            Step::Quantity if (1..=MAX_QUANTITY).contains(&n) => add_to_cart(d, n, turn),
            Step::Quantity => {
                let lead = vec![turn.t().quantity_range(MAX_QUANTITY)];
                reask(d, turn, lead)
            }
            Step::Rating if (1..=5).contains(&n) => {
                rating::answer(d, None, RateAnswer::Stars(n as i16), turn)
            }
            Step::Rating => {
                let lead = vec![turn.t().rating_range()];
                reask(d, turn, lead)
            }
            _ => match (n as usize).checked_sub(1).and_then(|i| options.get(i)) {
                Some(option) => on_choice(d, option.id, turn),
                None => {
                    let lead = if options.is_empty() {
                        turn.t().didnt_get()
                    } else {
                        turn.t().choose_number(options.len())
                    };
                    reask(d, turn, vec![lead])
                }
            },
        };
    }
    if d.step == Step::Rating {
        if let Some(n) = star_count(body) {
            if (1..=5).contains(&n) {
                return rating::answer(d, None, RateAnswer::Stars(n as i16), turn);
            }
        }
    }

    if let Some(id) = match_option(body, &options) {
        return on_choice(d, id, turn);
    }

    match d.step {
        Step::Location => typed_address(d, body, turn),
        Step::RatingComment => rating::comment(d, body, turn),
        // Where adding a dish is a natural next answer, a name searches
        // the menu.
        Step::Menu
        | Step::Items
        | Step::Quantity
        | Step::Added
        | Step::Cart
        | Step::BelowMinimum
            if d.fulfilment.is_some() =>
        {
            search_menu(d, body, turn)
        }
        _ => {
            let lead = vec![turn.t().didnt_get()];
            reask(d, turn, lead)
        }
    }
}

/// The option a typed text names: a synonym ("yes", "كاش"), the exact
/// title, or the only title holding every typed word.
fn match_option(body: &str, options: &[Opt]) -> Option<ChoiceId> {
    let folded = match fold(body) {
        // A thumbs up (any skin tone) says "ok".
        f if f.is_empty() && body.contains(['👍', '👌']) => "ok".to_string(),
        f => f,
    };
    if folded.is_empty() {
        return None;
    }
    let only = |hits: Vec<ChoiceId>| (hits.len() == 1).then(|| hits[0]);
    let synonyms: Vec<ChoiceId> = options
        .iter()
        .filter(|o| vocab::is_synonym(&o.id, &folded))
        .map(|o| o.id)
        .collect();
    if let Some(id) = only(synonyms) {
        return Some(id);
    }
    let exact: Vec<ChoiceId> = options
        .iter()
        .filter(|o| fold(&o.title) == folded)
        .map(|o| o.id)
        .collect();
    if let Some(id) = only(exact) {
        return Some(id);
    }
    if folded.chars().count() < 3 {
        return None;
    }
    only(
        options
            .iter()
            .filter(|o| name_matches(&o.title, body))
            .map(|o| o.id)
            .collect(),
    )
}

fn on_choice(d: &mut Dialogue, id: ChoiceId, turn: &mut Turn) {
    // Ids that mean the same at any step.
    match id {
        ChoiceId::Language(lang) => return switch_language(d, lang, turn),
        ChoiceId::Help => return on_command(d, Command::Help, turn),
        ChoiceId::Human => return on_command(d, Command::Human, turn),
        ChoiceId::Status => return on_command(d, Command::Status, turn),
        ChoiceId::Cancel => return on_command(d, Command::Cancel, turn),
        ChoiceId::Restart => return on_command(d, Command::Restart, turn),
        ChoiceId::ViewCart => return view_cart(d, turn, vec![]),
        ChoiceId::Rate { order, answer } => return rating::answer(d, order, answer, turn),
        ChoiceId::Fulfilment(f) => return choose_fulfilment(d, f, turn),
        _ => {}
    }
    // Others only as answers to the current question, except menu
    // navigation while browsing (a category or item from an earlier list).
    let offered = view(d, turn).is_some_and(|v| v.options.iter().any(|o| o.id == id));
    let navigation = (matches!(
        id,
        ChoiceId::Category(_) | ChoiceId::Item(_) | ChoiceId::AddMore | ChoiceId::Checkout
    ) && d.step.browsing()
        && d.fulfilment.is_some())
        // A branch from the list, which may have closed since it was shown.
        || (matches!(id, ChoiceId::Branch(_)) && d.step == Step::Branch);
    if !offered && !navigation {
        if matches!(d.step, Step::Start | Step::Unknown) {
            return greet(d, turn, true, vec![]);
        }
        let lead = vec![turn.t().stale_choice()];
        return reask(d, turn, lead);
    }
    match id {
        ChoiceId::Branch(branch) => choose_branch(d, branch, turn),
        ChoiceId::Category(category) => to_items(d, Source::Category(category), turn, vec![]),
        ChoiceId::Item(item) => choose_item(d, item, turn, vec![]),
        ChoiceId::Page(page) => {
            d.put(keys::PAGE, page);
            show_step(d, turn, vec![]);
        }
        ChoiceId::Back => back(d, turn),
        ChoiceId::Quantity(n) => add_to_cart(d, n, turn),
        ChoiceId::AddMore => to_menu(d, turn, vec![]),
        ChoiceId::Checkout => checkout(d, turn),
        ChoiceId::Remove => {
            if d.cart.is_empty() {
                view_cart(d, turn, vec![]);
            } else {
                d.set_step(Step::Remove);
                show_step(d, turn, vec![]);
            }
        }
        ChoiceId::RemoveLine(item) => remove_line(d, item, turn),
        ChoiceId::Pay(method) => {
            d.payment = Some(method);
            d.set_step(Step::Confirm);
            show_step(d, turn, vec![]);
        }
        ChoiceId::Confirm => place_order(d, turn),
        // Handled above.
        ChoiceId::Language(_)
        | ChoiceId::Help
        | ChoiceId::Human
        | ChoiceId::Status
        | ChoiceId::Cancel
        | ChoiceId::Restart
        | ChoiceId::ViewCart
        | ChoiceId::Rate { .. }
        | ChoiceId::Fulfilment(_) => {}
    }
}

// ------------------------------------------------------ delivery or pickup

fn choose_fulfilment(d: &mut Dialogue, fulfilment: Fulfilment, turn: &mut Turn) {
    d.reset_choices();
    d.fulfilment = Some(fulfilment);
    if opening::offering(turn.ctx, Some(fulfilment)).is_empty() {
        d.reset_choices();
        d.set_step(Step::Start);
        let text = turn.t().no_branches();
        return turn.say(text);
    }
    let open = opening::open_now(turn.ctx, Some(fulfilment));
    if open.is_empty() {
        return opening::closed(d, turn, vec![], Some(fulfilment));
    }
    match fulfilment {
        Fulfilment::Delivery => {
            d.set_step(Step::Location);
            show_step(d, turn, vec![]);
        }
        Fulfilment::Pickup if open.len() == 1 => choose_branch(d, open[0].id, turn),
        Fulfilment::Pickup => {
            d.set_step(Step::Branch);
            show_step(d, turn, vec![]);
        }
    }
}

fn choose_branch(d: &mut Dialogue, branch_id: Uuid, turn: &mut Turn) {
    let Some(branch) = menu::find_branch(turn.ctx.branches, branch_id)
        .filter(|b| b.offers.includes(Fulfilment::Pickup))
    else {
        let lead = vec![turn.t().stale_choice()];
        return reask(d, turn, lead);
    };
    if !opening::is_open(branch, turn.ctx) {
        let lead = turn.t().branch_closed(
            menu::branch_name(branch, turn.lang),
            opening::next_opening(branch, turn.ctx).as_ref(),
        );
        if opening::open_now(turn.ctx, Some(Fulfilment::Pickup)).is_empty() {
            return opening::closed(d, turn, vec![lead], Some(Fulfilment::Pickup));
        }
        d.fulfilment = Some(Fulfilment::Pickup);
        d.set_step(Step::Branch);
        return show_step(d, turn, vec![lead]);
    }
    d.fulfilment = Some(Fulfilment::Pickup);
    d.branch_id = Some(branch.id);
    d.address = None;
    d.location = None;
    let lead = vec![turn.t().pickup_from(menu::branch_name(branch, turn.lang))];
    after_fulfilment(d, turn, lead);
}

/// A shared location: delivery from the nearest branch that covers it.
fn on_location(d: &mut Dialogue, point: (f64, f64), address: Option<&str>, turn: &mut Turn) {
    let open: Vec<crate::Branch> = opening::open_now(turn.ctx, Some(Fulfilment::Delivery))
        .into_iter()
        .cloned()
        .collect();
    let branches = open.as_slice();
    d.reset_choices();
    if branches.is_empty() && !opening::offering(turn.ctx, Some(Fulfilment::Delivery)).is_empty() {
        return opening::closed(d, turn, vec![], Some(Fulfilment::Delivery));
    }
    if let (Coverage::Outside { .. }, Coverage::Covered { branch, .. }) = (
        geo::coverage(branches, point),
        geo::coverage(turn.ctx.branches, point),
    ) {
        // Only a closed branch delivers there.
        let lead = turn.t().branch_closed(
            menu::branch_name(branch, turn.lang),
            opening::next_opening(branch, turn.ctx).as_ref(),
        );
        return opening::closed(d, turn, vec![lead], Some(Fulfilment::Delivery));
    }
    d.fulfilment = Some(Fulfilment::Delivery);
    let address = address
        .map(|a| clean_free_text(a, MAX_ADDRESS_CHARS))
        .filter(|a| !a.is_empty());
    let (branch, lead) = match geo::coverage(branches, point) {
        Coverage::Covered {
            branch,
            distance_km,
        } => {
            let lead = turn
                .t()
                .delivering_from(menu::branch_name(branch, turn.lang), distance_km);
            (branch, lead)
        }
        Coverage::Outside { nearest } => {
            let nearest = nearest.map(|(b, km)| (menu::branch_name(b, turn.lang), km));
            let lead = vec![turn.t().outside_area(nearest)];
            d.set_step(Step::Location);
            return show_step(d, turn, lead);
        }
        // No branch has coordinates: coverage cannot be judged, so the
        // first active branch serves it (as for a typed address).
        Coverage::Unknown => match branches.first() {
            Some(branch) => {
                let shown = address
                    .clone()
                    .unwrap_or_else(|| turn.t().shared_location());
                let lead = turn
                    .t()
                    .delivering_to_address(&shown, menu::branch_name(branch, turn.lang));
                (branch, lead)
            }
            None => {
                d.reset_choices();
                d.set_step(Step::Start);
                let text = turn.t().no_branches();
                return turn.say(text);
            }
        },
    };
    d.branch_id = Some(branch.id);
    d.location = Some(point);
    d.address = address;
    after_fulfilment(d, turn, vec![lead]);
}

/// A typed delivery address.
fn typed_address(d: &mut Dialogue, body: &str, turn: &mut Turn) {
    let address = clean_free_text(body, MAX_ADDRESS_CHARS);
    let letters = address.chars().filter(|c| c.is_alphabetic()).count();
    let words = fold(&address).split(' ').filter(|w| !w.is_empty()).count();
    if letters < 4 || (words < 2 && address.chars().count() < 8) {
        let lead = vec![turn.t().address_too_short()];
        return reask(d, turn, lead);
    }
    // A typed address has no coordinates to measure against the delivery
    // radius: it is accepted and served by the first active branch (the
    // restaurant checks it when confirming the order).
    let Some(branch) = opening::open_now(turn.ctx, Some(Fulfilment::Delivery))
        .first()
        .copied()
    else {
        if !opening::offering(turn.ctx, Some(Fulfilment::Delivery)).is_empty() {
            return opening::closed(d, turn, vec![], Some(Fulfilment::Delivery));
        }
        d.reset_choices();
        d.set_step(Step::Start);
        let text = turn.t().no_branches();
        return turn.say(text);
    };
    d.fulfilment = Some(Fulfilment::Delivery);
    d.branch_id = Some(branch.id);
    d.location = None;
    let lead = vec![turn
        .t()
        .delivering_to_address(&address, menu::branch_name(branch, turn.lang))];
    d.address = Some(address);
    after_fulfilment(d, turn, lead);
}

/// Delivery or pickup settled: the cart if something is in it, else the menu.
fn after_fulfilment(d: &mut Dialogue, turn: &mut Turn, mut lead: Vec<String>) {
    lead.extend(prune_cart(d, turn));
    if d.cart.is_empty() {
        to_menu(d, turn, lead);
    } else {
        d.set_step(Step::Cart);
        show_step(d, turn, lead);
    }
}

// -------------------------------------------------------------------- menu

#[derive(Debug, Clone)]
enum Source {
    Category(Uuid),
    Query(String),
}

pub(crate) fn to_menu(d: &mut Dialogue, turn: &mut Turn, lead: Vec<String>) {
    if d.fulfilment.is_none() {
        return greet(d, turn, true, lead);
    }
    let categories = menu::visible_categories(turn.ctx.menu, d.branch_id);
    match categories.as_slice() {
        [] => nothing_to_order(d, turn, lead),
        [(only, _)] => {
            let id = only.id;
            to_items(d, Source::Category(id), turn, lead)
        }
        _ => {
            d.set_step(Step::Menu);
            show_step(d, turn, lead);
        }
    }
}

fn nothing_to_order(d: &mut Dialogue, turn: &mut Turn, mut lead: Vec<String>) {
    lead.push(turn.t().menu_empty());
    d.set_step(Step::Start);
    turn.say(ui::paragraphs(&lead));
}

fn to_items(d: &mut Dialogue, source: Source, turn: &mut Turn, lead: Vec<String>) {
    d.set_step(Step::Items);
    match source {
        Source::Category(id) => d.put(keys::CATEGORY, id),
        Source::Query(query) => d.put(keys::QUERY, query),
    }
    show_step(d, turn, lead);
}

fn choose_item(d: &mut Dialogue, item_id: Uuid, turn: &mut Turn, lead: Vec<String>) {
    let Some(item) = menu::find_item(turn.ctx.menu, item_id) else {
        let lead = vec![turn.t().stale_choice()];
        return to_menu(d, turn, lead);
    };
    if !menu::available(item, d.branch_id) {
        let lead = vec![turn.t().item_unavailable(menu::item_name(item, turn.lang))];
        return to_menu(d, turn, lead);
    }
    d.set_step(Step::Quantity);
    d.put(keys::ITEM, item.id);
    show_step(d, turn, lead);
}

/// A typed dish or category name.
fn search_menu(d: &mut Dialogue, body: &str, turn: &mut Turn) {
    let query = clean_free_text(body, MAX_QUERY_CHARS).replace('\n', " ");
    if fold(&query).chars().count() < 2 {
        let lead = vec![turn.t().didnt_get()];
        return reask(d, turn, lead);
    }
    let (found, unavailable) = menu::search(turn.ctx.menu, d.branch_id, &query);
    match found.as_slice() {
        [only] => return choose_item(d, only.id, turn, vec![]),
        [_, _, ..] => return to_items(d, Source::Query(query), turn, vec![]),
        [] => {}
    }
    if let [category] = menu::search_categories(turn.ctx.menu, d.branch_id, &query).as_slice() {
        let id = category.id;
        return to_items(d, Source::Category(id), turn, vec![]);
    }
    let lead = match unavailable.first() {
        Some(item) => turn.t().item_unavailable(menu::item_name(item, turn.lang)),
        None => turn.t().not_found(&query),
    };
    reask(d, turn, vec![lead]);
}

// -------------------------------------------------------------------- cart

fn add_to_cart(d: &mut Dialogue, quantity: u32, turn: &mut Turn) {
    let item = d
        .get_uuid(keys::ITEM)
        .and_then(|id| menu::find_item(turn.ctx.menu, id));
    let Some(item) = item else {
        let lead = vec![turn.t().stale_choice()];
        return to_menu(d, turn, lead);
    };
    let name = menu::item_name(item, turn.lang).to_string();
    if !menu::available(item, d.branch_id) {
        let lead = vec![turn.t().item_unavailable(&name)];
        return to_menu(d, turn, lead);
    }
    let line = match d.cart.iter().position(|l| l.item_id == item.id) {
        Some(i) => &mut d.cart[i],
        None => {
            d.cart.push(CartLine {
                item_id: item.id,
                quantity: 0,
            });
            d.cart.last_mut().expect("just pushed")
        }
    };
    let before = line.quantity;
    line.quantity = (before + quantity).min(MAX_QUANTITY);
    let added = line.quantity - before;
    let mut lead = Vec::new();
    if added > 0 {
        lead.push(turn.t().added(added, &name));
    }
    if added < quantity {
        lead.push(turn.t().quantity_capped(&name, MAX_QUANTITY));
    }
    d.set_step(Step::Added);
    show_step(d, turn, lead);
}

pub(crate) fn view_cart(d: &mut Dialogue, turn: &mut Turn, mut lead: Vec<String>) {
    if d.fulfilment.is_none() {
        return greet(d, turn, true, lead);
    }
    lead.extend(prune_cart(d, turn));
    if d.cart.is_empty() {
        lead.push(turn.t().cart_empty());
        return to_menu(d, turn, lead);
    }
    d.set_step(Step::Cart);
    show_step(d, turn, lead);
}

fn remove_line(d: &mut Dialogue, item_id: Uuid, turn: &mut Turn) {
    let Some(index) = d.cart.iter().position(|l| l.item_id == item_id) else {
        let lead = vec![turn.t().stale_choice()];
        return view_cart(d, turn, lead);
    };
    d.cart.remove(index);
    let name = menu::find_item(turn.ctx.menu, item_id)
        .map(|i| menu::item_name(i, turn.lang).to_string())
        .unwrap_or_default();
    let lead = vec![turn.t().removed(&name)];
    view_cart(d, turn, lead);
}

/// Drops cart lines that can no longer be ordered (off the menu, or not at
/// the chosen branch); says which.
fn prune_cart(d: &mut Dialogue, turn: &Turn) -> Option<String> {
    let menu_items = turn.ctx.menu;
    let branch = d.branch_id;
    let mut dropped = Vec::new();
    d.cart.retain(|line| {
        let item = menu::find_item(menu_items, line.item_id);
        let keep = line.quantity > 0 && item.is_some_and(|i| menu::available(i, branch));
        if !keep {
            if let Some(item) = item {
                dropped.push(menu::item_name(item, turn.lang).to_string());
            }
        }
        keep
    });
    if dropped.is_empty() {
        return None;
    }
    let names: Vec<&str> = dropped.iter().map(String::as_str).collect();
    Some(turn.t().items_dropped(&names))
}

pub(crate) fn cart_lines<'m>(d: &Dialogue, turn: &'m Turn, limit: usize) -> (Vec<Line<'m>>, usize) {
    let lines: Vec<Line<'m>> = d
        .cart
        .iter()
        .filter_map(|l| {
            let item = menu::find_item(turn.ctx.menu, l.item_id)?;
            Some(Line {
                name: menu::item_name(item, turn.lang),
                quantity: l.quantity,
                amount: turn.money(menu::line_total(turn.ctx.menu, l)),
            })
        })
        .collect();
    let more = lines.len().saturating_sub(limit);
    (lines.into_iter().take(limit).collect(), more)
}

pub(crate) fn delivery_fee(d: &Dialogue, turn: &Turn) -> i64 {
    match d.fulfilment {
        Some(Fulfilment::Delivery) => turn.ctx.restaurant.delivery_fee.max(0),
        _ => 0,
    }
}

/// How much is missing to the delivery minimum, if anything.
pub(crate) fn shortfall(d: &Dialogue, turn: &Turn) -> Option<i64> {
    if d.fulfilment != Some(Fulfilment::Delivery) {
        return None;
    }
    let missing = turn.ctx.restaurant.min_delivery_order - menu::subtotal(turn.ctx.menu, &d.cart);
    (missing > 0).then_some(missing)
}

// ---------------------------------------------------------------- checkout

fn checkout(d: &mut Dialogue, turn: &mut Turn) {
    let Some(fulfilment) = d.fulfilment else {
        return greet(d, turn, true, vec![]);
    };
    if d.branch_id.is_none() {
        return choose_fulfilment(d, fulfilment, turn);
    }
    if !opening::still_open(d, turn) {
        return;
    }
    let mut lead: Vec<String> = prune_cart(d, turn).into_iter().collect();
    if d.cart.is_empty() {
        lead.push(turn.t().cart_empty());
        return to_menu(d, turn, lead);
    }
    if shortfall(d, turn).is_some() {
        d.set_step(Step::BelowMinimum);
        return show_step(d, turn, lead);
    }
    lead.push(summary(d, turn));
    turn.say(ui::paragraphs(&lead));
    if turn.online_payment() {
        d.payment = None;
        d.set_step(Step::Payment);
    } else {
        d.payment = Some(PaymentMethod::Cash);
        d.set_step(Step::Confirm);
    }
    show_step(d, turn, vec![]);
}

fn summary(d: &Dialogue, turn: &Turn) -> String {
    let (lines, more_lines) = cart_lines(d, turn, SUMMARY_LINES_SHOWN);
    let subtotal = menu::subtotal(turn.ctx.menu, &d.cart);
    let fee = delivery_fee(d, turn);
    let branch = d
        .branch_id
        .and_then(|id| menu::find_branch(turn.ctx.branches, id))
        .map(|b| menu::branch_name(b, turn.lang));
    let shared = turn.t().shared_location();
    let place = match d.fulfilment {
        Some(Fulfilment::Delivery) => Place::Delivery {
            address: d.address.as_deref().unwrap_or(&shared),
            branch,
        },
        _ => Place::Pickup { branch },
    };
    let summary = Summary {
        lines,
        more_lines,
        subtotal: turn.money(subtotal),
        fee: match (d.fulfilment, fee) {
            (Some(Fulfilment::Delivery), 0) => Fee::Free,
            (Some(Fulfilment::Delivery), fee) => Fee::Amount(turn.money(fee)),
            _ => Fee::None,
        },
        total: turn.money(subtotal + fee),
        place,
    };
    turn.t().summary(&summary)
}

/// The payment link of an order: `payment_link_base` + `?order=<id>` (or
/// `&order=` when the base already has a query).
pub(crate) fn payment_link(base: &str, order_id: Uuid) -> String {
    let base = base.trim();
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}order={order_id}")
}

/// The address the order carries: what the customer typed or WhatsApp
/// labelled, plus a map link to a shared location.
fn order_address(d: &Dialogue) -> Option<String> {
    let map = d
        .location
        .map(|(lat, lon)| format!("https://maps.google.com/?q={lat:.6},{lon:.6}"));
    match (d.address.clone(), map) {
        (Some(address), Some(map)) => Some(format!("{address} ({map})")),
        (address, map) => address.or(map),
    }
}

fn place_order(d: &mut Dialogue, turn: &mut Turn) {
    let Some(fulfilment) = d.fulfilment else {
        return greet(d, turn, true, vec![]);
    };
    if d.branch_id.is_none() {
        return choose_fulfilment(d, fulfilment, turn);
    }
    if !opening::still_open(d, turn) {
        return;
    }
    // The cart changed under the customer (the menu did): show it again
    // rather than place something they did not see.
    if let Some(dropped) = prune_cart(d, turn) {
        return view_cart(d, turn, vec![dropped]);
    }
    if d.cart.is_empty() {
        let lead = vec![turn.t().cart_empty()];
        return to_menu(d, turn, lead);
    }
    if shortfall(d, turn).is_some() {
        d.set_step(Step::BelowMinimum);
        return show_step(d, turn, vec![]);
    }
    let order_id = turn.ctx.new_order_id;
    if d.order(order_id).is_some() {
        // Already placed with this id: never twice.
        d.set_step(Step::OrderPlaced);
        return show_step(d, turn, vec![]);
    }
    let payment = match d.payment {
        Some(PaymentMethod::Online) if turn.online_payment() => PaymentMethod::Online,
        _ => PaymentMethod::Cash,
    };
    let total = menu::subtotal(turn.ctx.menu, &d.cart) + delivery_fee(d, turn);
    turn.act(Action::PlaceOrder {
        order_id,
        fulfilment,
        branch_id: d.branch_id,
        address: match fulfilment {
            Fulfilment::Delivery => order_address(d),
            Fulfilment::Pickup => None,
        },
        payment,
        lines: d.cart.iter().map(|l| (l.item_id, l.quantity)).collect(),
    });
    let memo = d.memo_mut(order_id);
    memo.status = OrderStatus::Draft;
    memo.total = Some(total);
    memo.fulfilment = Some(fulfilment);
    memo.payment = Some(payment);
    d.last_order_id = Some(order_id);
    let link = match (payment, turn.ctx.restaurant.payment_link_base.as_deref()) {
        (PaymentMethod::Online, Some(base)) => Some(payment_link(base, order_id)),
        _ => None,
    };
    let text = turn.t().placing(link.as_deref());
    turn.say(text);
    d.cart.clear();
    d.reset_choices();
    d.set_step(Step::OrderPlaced);
}

// --------------------------------------------------------------- questions

/// Asks the current step's question again, after `lead`.
pub(crate) fn reask(d: &mut Dialogue, turn: &mut Turn, lead: Vec<String>) {
    if matches!(d.step, Step::Start | Step::Unknown) {
        return greet(d, turn, true, lead);
    }
    show_step(d, turn, lead);
}

/// After an aside (help, status, thanks), the pending question again.
pub(crate) fn reask_if_asking(d: &mut Dialogue, turn: &mut Turn) {
    if !matches!(d.step, Step::Start | Step::Unknown | Step::OrderPlaced) {
        show_step(d, turn, vec![]);
    }
}

/// Shows the current step's question; a step that cannot be shown any more
/// (its item left the menu, its list emptied) falls back to the menu or
/// the greeting.
pub(crate) fn show_step(d: &mut Dialogue, turn: &mut Turn, mut lead: Vec<String>) {
    if let Some(view) = view(d, turn) {
        return turn.show(&view, &lead);
    }
    if d.fulfilment.is_none() || d.step.rating() || d.step == Step::OrderPlaced {
        return greet(d, turn, true, lead);
    }
    if d.step != Step::Menu && !menu::visible_categories(turn.ctx.menu, d.branch_id).is_empty() {
        d.set_step(Step::Menu);
        if let Some(view) = view(d, turn) {
            return turn.show(&view, &lead);
        }
    }
    lead.push(turn.t().menu_empty());
    d.set_step(Step::Start);
    turn.say(ui::paragraphs(&lead));
}
