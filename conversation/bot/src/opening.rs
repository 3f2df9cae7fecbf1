//! Opening hours in the dialogue: which branches can take an order now
//! (they offer the fulfilment and are open at [`Context::now`] in the
//! restaurant's time zone), and what a customer is told when none can.

use chrono::{DateTime, Datelike, Duration, Utc};
use waiter_nats::messages::{OrderRefusal, RefusalReason};

use crate::flow::Turn;
use crate::menu;
use crate::texts::{When, WhenDay};
use crate::{Action, Branch, CartLine, Context, Dialogue, Fulfilment, Step};

pub(crate) fn is_open(branch: &Branch, ctx: &Context<'_>) -> bool {
    branch.schedule.is_open(ctx.restaurant.time_zone, ctx.now)
}

/// Branches offering the fulfilment (any, for `None`).
pub(crate) fn offering<'a>(ctx: &Context<'a>, fulfilment: Option<Fulfilment>) -> Vec<&'a Branch> {
    ctx.branches
        .iter()
        .filter(|b| fulfilment.is_none_or(|f| b.offers.includes(f)))
        .collect()
}

/// Branches offering the fulfilment that are open now.
pub(crate) fn open_now<'a>(ctx: &Context<'a>, fulfilment: Option<Fulfilment>) -> Vec<&'a Branch> {
    offering(ctx, fulfilment)
        .into_iter()
        .filter(|b| is_open(b, ctx))
        .collect()
}

/// When a (closed) branch opens next, as the customer reads it.
pub(crate) fn next_opening(branch: &Branch, ctx: &Context<'_>) -> Option<When> {
    branch
        .schedule
        .next_opening(ctx.restaurant.time_zone, ctx.now)
        .map(|at| when(ctx, at))
}

/// An instant as local day and time relative to now.
pub(crate) fn when(ctx: &Context<'_>, at: DateTime<Utc>) -> When {
    let tz = ctx.restaurant.time_zone;
    let local = at.with_timezone(&tz);
    let today = ctx.now.with_timezone(&tz).date_naive();
    let date = local.date_naive();
    let day = if date == today {
        WhenDay::Today
    } else if date == today + Duration::days(1) {
        WhenDay::Tomorrow
    } else if date < today + Duration::days(7) {
        WhenDay::Weekday(date.weekday())
    } else {
        WhenDay::Date {
            day: date.day(),
            month: date.month(),
        }
    };
    When {
        day,
        time: local.format("%H:%M").to_string(),
    }
}

/// The branch (offering the fulfilment) that opens soonest, and when.
fn soonest<'a>(ctx: &Context<'a>, fulfilment: Option<Fulfilment>) -> Option<(&'a Branch, When)> {
    offering(ctx, fulfilment)
        .into_iter()
        .filter_map(|b| {
            let at = b.schedule.next_opening(ctx.restaurant.time_zone, ctx.now)?;
            Some((b, at))
        })
        .min_by_key(|(_, at)| *at)
        .map(|(b, at)| (b, when(ctx, at)))
}

/// "We're closed, X opens at …" for the fulfilment (any, for `None`).
pub(crate) fn closed_text(turn: &Turn, fulfilment: Option<Fulfilment>) -> String {
    let next = soonest(turn.ctx, fulfilment);
    let next = next
        .as_ref()
        .map(|(b, w)| (menu::branch_name(b, turn.lang), w));
    turn.t().closed_now(next)
}

/// Nothing can be ordered now: says when, and leaves the order flow (the
/// cart stays).
pub(crate) fn closed(
    d: &mut Dialogue,
    turn: &mut Turn,
    mut lead: Vec<String>,
    fulfilment: Option<Fulfilment>,
) {
    lead.push(closed_text(turn, fulfilment));
    d.reset_choices();
    d.set_step(Step::Start);
    turn.say(crate::ui::paragraphs(&lead));
}

/// Whether the chosen branch can still take the order; if not, the
/// customer is told (and offered another open branch for pickup).
pub(crate) fn still_open(d: &mut Dialogue, turn: &mut Turn) -> bool {
    let Some(branch) = d
        .branch_id
        .and_then(|id| menu::find_branch(turn.ctx.branches, id))
    else {
        return true;
    };
    if is_open(branch, turn.ctx) {
        return true;
    }
    let lead = turn.t().branch_closed(
        menu::branch_name(branch, turn.lang),
        next_opening(branch, turn.ctx).as_ref(),
    );
    let fulfilment = d.fulfilment;
    let others = open_now(turn.ctx, fulfilment);
    if fulfilment == Some(Fulfilment::Pickup) && !others.is_empty() {
        d.branch_id = None;
        d.set_step(Step::Branch);
        crate::flow::show_step(d, turn, vec![lead]);
    } else {
        closed(d, turn, vec![lead], fulfilment);
    }
    false
}

pub(crate) fn on_order_refused(
    d: &mut Dialogue,
    refusal: &OrderRefusal,
    ctx: &Context<'_>,
) -> Vec<Action> {
    let mut turn = Turn::new(ctx, d.language(ctx.restaurant));
    if d.cart.is_empty() {
        d.cart = refusal
            .lines
            .iter()
            .map(|l| CartLine {
                item_id: l.item_id,
                quantity: l.quantity,
            })
            .collect();
    }
    d.orders.retain(|m| m.order_id != refusal.order_id);
    if d.last_order_id == Some(refusal.order_id) {
        d.last_order_id = None;
    }
    match &refusal.reason {
        RefusalReason::BranchClosed {
            branch_id,
            opens_at,
        } => {
            let name = menu::find_branch(ctx.branches, *branch_id)
                .map(|b| menu::branch_name(b, turn.lang).to_string())
                .unwrap_or_default();
            let opens = opens_at.map(|at| when(ctx, at));
            let text = turn.t().order_refused_closed(&name, opens.as_ref());
            d.reset_choices();
            d.set_step(Step::Start);
            turn.say(text);
        }
    }
    d.last_activity = Some(ctx.now);
    turn.actions
}
