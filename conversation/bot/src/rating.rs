//! Order updates and the rating flow.
//!
//! DELIVERED sends "rate now / later / help" (every id carries the order
//! id, so a tap is tied to its order whenever it comes). "Rate now" shows a
//! 1–5 list; a rating gives [`Action::RateOrder`] at once, then thanks with
//! the promo links (4–5) or an apology with the support contact (1–3), then
//! asks for an optional comment, which comes as [`Action::CommentOrder`].
//! "Later" gives [`Action::RemindLater`] once per order; the stage's second
//! DELIVERED call re-asks once. A rated order is never rated again.

use uuid::Uuid;

use crate::flow::{self, reask, reask_if_asking, show_step, view_cart, Turn};
use crate::ids::{ChoiceId, RateAnswer};
use crate::normalize::clean_free_text;
use crate::texts::Texts;
use crate::ui::{self, templates, Fallback, Opt, View};
use crate::{keys, Action, Context, Dialogue, OrderStatus, OrderUpdate, Reply, Step};

const MAX_COMMENT_CHARS: usize = 1000;

fn rate_id(order: Uuid, answer: RateAnswer) -> ChoiceId {
    ChoiceId::Rate {
        order: Some(order),
        answer,
    }
}

/// "Rate now / Later / Help" for an order.
pub(crate) fn prompt_view(order: Uuid, body: String, t: &dyn Texts) -> View {
    View {
        template: templates::RATING_PROMPT,
        body,
        options: vec![
            Opt::new(rate_id(order, RateAnswer::Now), t.rate_now_button()),
            Opt::new(rate_id(order, RateAnswer::Later), t.later_button()),
            Opt::new(rate_id(order, RateAnswer::Help), t.help_button()),
        ],
    }
}

/// The 1–5 list, best first.
pub(crate) fn list_view(order: Uuid, number: Option<i64>, t: &dyn Texts) -> View {
    View {
        template: templates::RATING_LIST,
        body: t.ask_rating(number),
        options: (1..=5)
            .rev()
            .map(|n| Opt::new(rate_id(order, RateAnswer::Stars(n)), t.rating_title(n)))
            .collect(),
    }
}

/// An answer in the rating flow, from a tap (with its order id) or typed
/// at a rating step (`order` = None: the order being rated).
pub(crate) fn answer(d: &mut Dialogue, order: Option<Uuid>, answer: RateAnswer, turn: &mut Turn) {
    let order = order.or_else(|| d.step.rating().then(|| d.get_uuid(keys::ORDER)).flatten());
    let Some(order) = order else {
        let lead = vec![turn.t().stale_choice()];
        return reask(d, turn, lead);
    };
    let number = d.order(order).and_then(|m| m.number);
    let rating_this = d.step.rating() && d.get_uuid(keys::ORDER) == Some(order);
    let already = d.is_rated(order);
    match answer {
        RateAnswer::Now | RateAnswer::Stars(_) | RateAnswer::Later if already => {
            let text = turn.t().already_rated(number);
            turn.say(text);
            finish_or_continue(d, turn, rating_this);
        }
        RateAnswer::Now => {
            d.set_step(Step::Rating);
            d.put(keys::ORDER, order);
            show_step(d, turn, vec![]);
        }
        RateAnswer::Later => {
            let memo = d.memo_mut(order);
            let will_remind = !memo.reminded;
            if will_remind {
                memo.reminded = true;
                turn.act(Action::RemindLater { order_id: order });
            }
            let text = turn.t().later_ok(will_remind);
            turn.say(text);
            finish_or_continue(d, turn, rating_this);
        }
        RateAnswer::Help => {
            turn.act(Action::Handoff);
            let support = turn.ctx.restaurant.support_contact.as_deref();
            let text = turn.t().rating_help(number, support);
            turn.say(text);
            if rating_this {
                d.set_step(Step::Start);
            }
        }
        RateAnswer::Skip => {
            let text = turn.t().comment_skipped();
            turn.say(text);
            finish_or_continue(d, turn, rating_this);
        }
        RateAnswer::Stars(stars) => rate(d, order, stars, turn),
    }
}

fn rate(d: &mut Dialogue, order: Uuid, stars: i16, turn: &mut Turn) {
    turn.act(Action::RateOrder {
        order_id: order,
        rating: stars,
        comment: None,
    });
    d.mark_rated(order, Some(stars));
    let restaurant = turn.ctx.restaurant;
    let text = if stars >= 4 {
        turn.t().thanks_for_rating(&restaurant.promo_links)
    } else {
        turn.t()
            .sorry_for_rating(restaurant.support_contact.as_deref())
    };
    turn.say(text);
    if d.step.in_flow() {
        // Rated from an earlier message while ordering: back to the order.
        return show_step(d, turn, vec![]);
    }
    d.set_step(Step::RatingComment);
    d.put(keys::ORDER, order);
    d.put(keys::RATING, stars);
    show_step(d, turn, vec![]);
}

/// The comment typed after a rating.
pub(crate) fn comment(d: &mut Dialogue, body: &str, turn: &mut Turn) {
    let Some(order) = d.get_uuid(keys::ORDER) else {
        d.set_step(Step::Start);
        return flow::greet(d, turn, true, vec![]);
    };
    let comment = clean_free_text(body, MAX_COMMENT_CHARS);
    turn.act(Action::CommentOrder {
        order_id: order,
        comment,
    });
    let text = turn.t().comment_thanks();
    turn.say(text);
    finish_or_continue(d, turn, true);
}

/// After a rating answer: leave the rating step (back to a cart in
/// progress, if any), or ask the pending question of another step again.
fn finish_or_continue(d: &mut Dialogue, turn: &mut Turn, rating_this: bool) {
    if rating_this || d.step.rating() {
        if !d.cart.is_empty() && d.fulfilment.is_some() {
            view_cart(d, turn, vec![]);
        } else {
            d.set_step(Step::Start);
        }
    } else {
        reask_if_asking(d, turn);
    }
}

/// Order of statuses, to ignore repeated or late notices.
fn rank(status: OrderStatus) -> u8 {
    match status {
        OrderStatus::Draft => 0,
        OrderStatus::Confirmed => 1,
        OrderStatus::Preparing => 2,
        OrderStatus::OutForDelivery => 3,
        OrderStatus::Delivered => 4,
        OrderStatus::Rated => 5,
        OrderStatus::Cancelled => 6,
    }
}

pub(crate) fn on_order_update(
    d: &mut Dialogue,
    update: &OrderUpdate,
    ctx: &Context<'_>,
) -> Vec<Action> {
    let mut turn = Turn::new(ctx, d.language(ctx.restaurant));
    let step_before = d.step;
    let stale = flow::is_stale(d, ctx);
    if d.step == Step::Unknown {
        d.set_step(Step::Start);
    }
    let order = update.order_id;
    if let Some(previous) = d.order(order).map(|m| m.status) {
        let repeated = previous == update.status && update.status != OrderStatus::Delivered;
        if repeated || rank(update.status) < rank(previous) || previous == OrderStatus::Cancelled {
            return Vec::new();
        }
    }
    let memo = d.memo_mut(order);
    memo.number = Some(update.order_number);
    memo.total = Some(update.total);
    memo.fulfilment = Some(update.fulfilment);
    memo.status = update.status;
    if d.last_order_id.is_none() {
        d.last_order_id = Some(order);
    }
    let t = turn.t();
    let n = update.order_number;
    match update.status {
        OrderStatus::Draft => {}
        OrderStatus::Confirmed => {
            let text = t.order_confirmed(n, &turn.money(update.total), update.fulfilment);
            notify(&mut turn, update, text);
        }
        OrderStatus::Preparing => notify(&mut turn, update, t.order_preparing(n)),
        OrderStatus::OutForDelivery => notify(&mut turn, update, t.order_on_the_way(n)),
        OrderStatus::Delivered => delivered(d, update, stale, &mut turn),
        OrderStatus::Rated => d.mark_rated(order, update.rating),
        OrderStatus::Cancelled => {
            notify(&mut turn, update, t.order_cancelled(n));
            let waiting = d.step == Step::OrderPlaced && d.last_order_id == Some(order);
            let rating_it = d.step.rating() && d.get_uuid(keys::ORDER) == Some(order);
            if waiting || rating_it {
                d.set_step(Step::Start);
            }
        }
    }
    if d.step != step_before {
        d.last_activity = Some(ctx.now);
    }
    turn.actions
}

/// A status notice: free text inside the 24-hour window, else the approved
/// "order_update" template if configured, else recorded as skipped.
fn notify(turn: &mut Turn, update: &OrderUpdate, text: String) {
    if turn.ctx.within_session_window {
        return turn.say(text);
    }
    let view = View {
        template: templates::ORDER_UPDATE,
        body: text,
        options: vec![],
    };
    let reply = ui::interactive(
        &view,
        &[],
        turn.lang,
        turn.ctx.restaurant,
        Fallback::Numbered,
    );
    let approved = ui::approved(turn.ctx.restaurant, templates::ORDER_UPDATE, turn.lang);
    match &reply {
        Reply::Interactive {
            content_sid: Some(_),
            ..
        } if approved => turn.act(Action::Send(reply)),
        _ => turn.act(Action::NotificationSkipped {
            order_id: update.order_id,
            status: update.status,
        }),
    }
}

/// DELIVERED: the rating prompt (first time, or once more after "Later").
fn delivered(d: &mut Dialogue, update: &OrderUpdate, stale: bool, turn: &mut Turn) {
    let order = update.order_id;
    if d.is_rated(order) {
        return;
    }
    let memo = d.memo_mut(order);
    let reminder = match (memo.rating_prompts, memo.reminded) {
        (0, _) => false,
        (1, true) => true,
        // Asked already (and re-asked once after "Later"): not again.
        _ => return,
    };
    let t = turn.t();
    let lead = if reminder {
        t.rating_reminder(update.order_number)
    } else {
        t.order_delivered(update.order_number, update.fulfilment)
    };
    let view = prompt_view(order, t.ask_to_rate(), t);
    let reply = ui::interactive(
        &view,
        &[lead],
        turn.lang,
        turn.ctx.restaurant,
        Fallback::Numbered,
    );
    // Outside the 24-hour window only an approved template may go.
    let sendable = turn.ctx.within_session_window
        || (matches!(
            &reply,
            Reply::Interactive {
                content_sid: Some(_),
                ..
            }
        ) && ui::approved(turn.ctx.restaurant, templates::RATING_PROMPT, turn.lang));
    if !sendable {
        return turn.act(Action::RatingPromptSkipped { order_id: order });
    }
    d.memo_mut(order).rating_prompts += 1;
    if d.step.idle() || stale {
        d.set_step(Step::RatingPrompt);
        d.put(keys::ORDER, order);
    }
    turn.act(Action::Send(reply));
}
