//! Delivery or pickup: the branch to pick up from, or the delivery location
//! (shared or typed) and the branch that serves it.

use uuid::Uuid;

use crate::geo::{self, Coverage};
use crate::menu;
use crate::normalize::{clean_free_text, fold};
use crate::opening;
use crate::{Dialogue, Fulfilment, Step};

use super::browse::to_menu;
use super::cart::prune_cart;
use super::{reask, show_step, Turn};

const MAX_ADDRESS_CHARS: usize = 300;

pub(super) fn choose_fulfilment(d: &mut Dialogue, fulfilment: Fulfilment, turn: &mut Turn) {
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

pub(super) fn choose_branch(d: &mut Dialogue, branch_id: Uuid, turn: &mut Turn) {
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
pub(super) fn on_location(
    d: &mut Dialogue,
    point: (f64, f64),
    address: Option<&str>,
    turn: &mut Turn,
) {
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
pub(super) fn typed_address(d: &mut Dialogue, body: &str, turn: &mut Turn) {
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
