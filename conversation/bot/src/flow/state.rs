//! The dialogue state's helpers: what kind of step a [`Step`] is, moving
//! between steps and their data, the order memos, and when a dialogue is stale.

use chrono::Duration;
use uuid::Uuid;

use crate::{
    Context, Dialogue, OrderMemo, Step, MAX_RATED_ORDERS, MAX_REMEMBERED_ORDERS, STALE_AFTER_HOURS,
};

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
