//! The order state machine, as a pure function.
//!
//! ```text
//! DRAFT → CONFIRMED → PREPARING → OUT_FOR_DELIVERY → DELIVERED → RATED
//!                              ╰──── (pickup) ─────╯
//! CANCELLED: by the customer before PREPARING, by staff before DELIVERED.
//! ```

use waiter_nats::messages::{Actor, Fulfilment, OrderStatus};

/// Why a command is refused (the dashboard answers 409 with this).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the order is already {0}")]
    AlreadyThere(&'static str),
    #[error("{from} → {to} is not a valid order transition")]
    Illegal {
        from: &'static str,
        to: &'static str,
    },
    #[error("a pickup order is never out for delivery")]
    PickupNotDelivered,
    #[error("a delivery order goes out for delivery before it is delivered")]
    DeliveryNeedsDispatch,
    #[error("the customer can no longer cancel: the order is {0}")]
    TooLateForCustomer(&'static str),
    #[error("only staff can move an order to {0}")]
    StaffOnly(&'static str),
    #[error("an order is rated by its customer's rating, not by a status change")]
    RateThroughRating,
    #[error("only a delivered order can be rated (this one is {0})")]
    NotRateable(&'static str),
    #[error("the order was already rated")]
    AlreadyRated,
    #[error("a rating is from 1 to 5")]
    RatingOutOfRange,
    #[error("a comment follows a rating (this order is {0})")]
    NotRated(&'static str),
    #[error("the order's comment was already given")]
    AlreadyCommented,
}

fn is_staff(actor: &Actor) -> bool {
    matches!(actor, Actor::Staff(_) | Actor::System)
}

/// Checks a status change requested by `actor`.
pub fn transition(
    from: OrderStatus,
    to: OrderStatus,
    fulfilment: Fulfilment,
    actor: &Actor,
) -> Result<(), Refusal> {
    use OrderStatus::*;
    if from == to {
        return Err(Refusal::AlreadyThere(from.as_str()));
    }
    if to == Rated {
        return Err(Refusal::RateThroughRating);
    }
    match (from, to) {
        (Draft, Confirmed) => Ok(()),
        (Draft | Confirmed, Cancelled) => Ok(()),
        (Preparing | OutForDelivery, Cancelled) if is_staff(actor) => Ok(()),
        (Preparing | OutForDelivery, Cancelled) => Err(Refusal::TooLateForCustomer(from.as_str())),
        (Confirmed, Preparing)
        | (Preparing, OutForDelivery)
        | (Preparing | OutForDelivery, Delivered)
            if !is_staff(actor) =>
        {
            Err(Refusal::StaffOnly(to.as_str()))
        }
        (Confirmed, Preparing) => Ok(()),
        (Preparing, OutForDelivery) if fulfilment == Fulfilment::Pickup => {
            Err(Refusal::PickupNotDelivered)
        }
        (Preparing, OutForDelivery) => Ok(()),
        (Preparing, Delivered) if fulfilment == Fulfilment::Delivery => {
            Err(Refusal::DeliveryNeedsDispatch)
        }
        (Preparing, Delivered) => Ok(()),
        (OutForDelivery, Delivered) => Ok(()),
        _ => Err(Refusal::Illegal {
            from: from.as_str(),
            to: to.as_str(),
        }),
    }
}

/// The statuses staff may move an order to next, in the order of service
/// (forward steps first, cancelling last): what a dashboard offers.
pub fn staff_next(from: OrderStatus, fulfilment: Fulfilment) -> Vec<OrderStatus> {
    let staff = Actor::Staff(String::new());
    OrderStatus::ALL
        .into_iter()
        .filter(|to| transition(from, *to, fulfilment, &staff).is_ok())
        .collect()
}

/// Checks a rating (DELIVERED → RATED).
pub fn rate(from: OrderStatus, rating: i16) -> Result<(), Refusal> {
    if !(1..=5).contains(&rating) {
        return Err(Refusal::RatingOutOfRange);
    }
    match from {
        OrderStatus::Delivered => Ok(()),
        OrderStatus::Rated => Err(Refusal::AlreadyRated),
        other => Err(Refusal::NotRateable(other.as_str())),
    }
}

/// Checks a comment after a rating: once, on a rated order.
pub fn comment(from: OrderStatus, has_comment: bool) -> Result<(), Refusal> {
    match (from, has_comment) {
        (OrderStatus::Rated, false) => Ok(()),
        (OrderStatus::Rated, true) => Err(Refusal::AlreadyCommented),
        (other, _) => Err(Refusal::NotRated(other.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    /// The whole table: for every (from, to, fulfilment, actor) what the
    /// machine must say. Anything not listed as allowed must be refused.
    #[test]
    fn every_transition_is_accepted_or_refused_as_specified() {
        let staff = Actor::Staff("s".into());
        let customer = Actor::Customer("c".into());
        let allowed = |from, to, f, actor: &Actor| -> bool {
            let staffish = matches!(actor, Actor::Staff(_) | Actor::System);
            match (from, to) {
                (Draft, Confirmed) => true,
                (Draft | Confirmed, Cancelled) => true,
                (Preparing | OutForDelivery, Cancelled) => staffish,
                (Confirmed, Preparing) => staffish,
                (Preparing, OutForDelivery) => staffish && f == Fulfilment::Delivery,
                (Preparing, Delivered) => staffish && f == Fulfilment::Pickup,
                (OutForDelivery, Delivered) => staffish,
                _ => false,
            }
        };
        let mut checked = 0;
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                for f in [Fulfilment::Delivery, Fulfilment::Pickup] {
                    for actor in [&staff, &customer, &Actor::System] {
                        let got = transition(from, to, f, actor);
                        assert_eq!(
                            got.is_ok(),
                            allowed(from, to, f, actor),
                            "{from:?} → {to:?} ({f:?}, {actor:?}): {got:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 7 * 7 * 2 * 3);
    }

    #[test]
    fn refusals_say_why() {
        let staff = Actor::Staff("s".into());
        assert_eq!(
            transition(Delivered, Preparing, Fulfilment::Delivery, &staff),
            Err(Refusal::Illegal {
                from: "DELIVERED",
                to: "PREPARING"
            })
        );
        assert_eq!(
            transition(
                Preparing,
                Cancelled,
                Fulfilment::Delivery,
                &Actor::Customer("c".into())
            ),
            Err(Refusal::TooLateForCustomer("PREPARING"))
        );
        assert_eq!(
            transition(Delivered, Rated, Fulfilment::Delivery, &staff),
            Err(Refusal::RateThroughRating)
        );
        assert_eq!(
            transition(Cancelled, Cancelled, Fulfilment::Pickup, &staff),
            Err(Refusal::AlreadyThere("CANCELLED"))
        );
        assert!(
            transition(Preparing, Delivered, Fulfilment::Delivery, &staff)
                .unwrap_err()
                .to_string()
                .contains("out for delivery")
        );
    }

    #[test]
    fn staff_are_offered_the_next_steps_of_service() {
        use Fulfilment::*;
        assert_eq!(staff_next(Confirmed, Delivery), [Preparing, Cancelled]);
        assert_eq!(staff_next(Preparing, Delivery), [OutForDelivery, Cancelled]);
        assert_eq!(staff_next(Preparing, Pickup), [Delivered, Cancelled]);
        assert_eq!(staff_next(OutForDelivery, Delivery), [Delivered, Cancelled]);
        assert!(staff_next(Delivered, Delivery).is_empty());
        assert!(staff_next(Rated, Pickup).is_empty());
        assert!(staff_next(Cancelled, Pickup).is_empty());
    }

    #[test]
    fn ratings() {
        assert_eq!(rate(Delivered, 5), Ok(()));
        assert_eq!(rate(Delivered, 1), Ok(()));
        assert_eq!(rate(Delivered, 0), Err(Refusal::RatingOutOfRange));
        assert_eq!(rate(Delivered, 6), Err(Refusal::RatingOutOfRange));
        assert_eq!(rate(Rated, 4), Err(Refusal::AlreadyRated));
        assert_eq!(rate(Cancelled, 4), Err(Refusal::NotRateable("CANCELLED")));
        for s in [Draft, Confirmed, Preparing, OutForDelivery] {
            assert!(rate(s, 3).is_err());
        }
    }

    #[test]
    fn comments_follow_a_rating_once() {
        assert_eq!(comment(Rated, false), Ok(()));
        assert_eq!(comment(Rated, true), Err(Refusal::AlreadyCommented));
        for s in [
            Draft,
            Confirmed,
            Preparing,
            OutForDelivery,
            Delivered,
            Cancelled,
        ] {
            assert_eq!(comment(s, false), Err(Refusal::NotRated(s.as_str())));
        }
    }
}
