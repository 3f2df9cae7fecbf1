//! Commands typed as the whole message or tapped at any step: greeting,
//! start over, cancel, help, a human (handoff to staff), status, cart, back.

use crate::menu;
use crate::texts::vocab::Command;
use crate::{keys, Action, Dialogue, OrderStatus, Step};

use super::browse::{to_items, to_menu, Source};
use super::cart::view_cart;
use super::greeting::{greet, language_menu, switch_language};
use super::{reask_if_asking, show_step, Turn};

pub(super) fn on_command(d: &mut Dialogue, command: Command, turn: &mut Turn) {
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

fn handoff(turn: &mut Turn) {
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

pub(super) fn back(d: &mut Dialogue, turn: &mut Turn) {
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
