//! Checkout: the order summary, the payment method, and placing the order
//! once confirmed.

use uuid::Uuid;

use crate::menu;
use crate::opening;
use crate::texts::{Fee, Place, Summary};
use crate::ui;
use crate::{Action, Dialogue, Fulfilment, OrderStatus, PaymentMethod, Step};

use super::browse::to_menu;
use super::cart::{cart_lines, delivery_fee, prune_cart, shortfall, view_cart};
use super::fulfilment::choose_fulfilment;
use super::greeting::greet;
use super::{show_step, Turn};

/// Cart lines shown in an order summary.
const SUMMARY_LINES_SHOWN: usize = 30;

pub(super) fn checkout(d: &mut Dialogue, turn: &mut Turn) {
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
fn payment_link(base: &str, order_id: Uuid) -> String {
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

pub(super) fn place_order(d: &mut Dialogue, turn: &mut Turn) {
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
