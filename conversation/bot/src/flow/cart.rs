//! The cart: adding an item, viewing it, removing a line, dropping what can
//! no longer be ordered, and its amounts (lines, delivery fee, minimum).

use uuid::Uuid;

use crate::menu;
use crate::texts::Line;
use crate::{keys, CartLine, Dialogue, Fulfilment, Step, MAX_QUANTITY};

use super::browse::to_menu;
use super::greeting::greet;
use super::{show_step, Turn};

pub(super) fn add_to_cart(d: &mut Dialogue, quantity: u32, turn: &mut Turn) {
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

pub(super) fn remove_line(d: &mut Dialogue, item_id: Uuid, turn: &mut Turn) {
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
pub(super) fn prune_cart(d: &mut Dialogue, turn: &Turn) -> Option<String> {
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
