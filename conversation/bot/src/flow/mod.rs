//! The ordering dialogue: one customer message in, the answer out.
//!
//! Reading order of a message: a shared location; a tapped button or list
//! row (its id); an empty body; a command typed as the whole message
//! (greeting, cancel, help, ...); then the current step's answer: a number
//! means the step's n-th option (the quantity at the quantity step, the
//! stars at the rating step), then option titles and synonyms, then the
//! step's free text (an address, a comment, a menu search). Anything else
//! gets "I didn't get that" and the step's question again.
//!
//! This module reads the message and dispatches it; each step of the
//! dialogue lives in its own file: [`greeting`] (and the language),
//! [`fulfilment`] (delivery or pickup, the branch or the address), [`browse`]
//! (the menu), [`cart`], [`mod@checkout`], and the [`commands`] typed at any
//! step; the rating flow is in [`crate::rating`]. [`state`] holds the
//! dialogue state's helpers, [`turn`] the decision in the making.

mod browse;
mod cart;
mod checkout;
mod commands;
mod fulfilment;
mod greeting;
mod state;
mod turn;

use crate::ids::{ChoiceId, RateAnswer};
use crate::menu;
use crate::normalize::{
    clean_free_text, fold, name_matches, parse_number, parse_number_lenient, star_count,
};
use crate::rating;
use crate::texts::{vocab, vocab::Command};
use crate::ui::{self, Opt};
use crate::views::view;
use crate::{keys, Action, Context, Dialogue, Inbound, Step, MAX_QUANTITY};

use browse::{choose_item, search_menu, to_items, to_menu, Source};
use cart::{add_to_cart, remove_line};
pub(crate) use cart::{cart_lines, delivery_fee, shortfall, view_cart};
use checkout::{checkout, place_order};
use commands::{back, on_command};
use fulfilment::{choose_branch, choose_fulfilment, on_location, typed_address};
pub(crate) use greeting::greet;
use greeting::switch_language;
pub(crate) use state::is_stale;
pub(crate) use turn::Turn;

const MAX_PROFILE_NAME_CHARS: usize = 30;

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
