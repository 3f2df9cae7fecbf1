//! Choice ids: what a button's `ButtonPayload` or a list row's id carries,
//! as stable strings the bot parses back (all well under 200 characters).
//!
//! | id | meaning |
//! |---|---|
//! | `ful:delivery`, `ful:pickup` | delivery or pickup |
//! | `branch:<uuid>` | pickup branch |
//! | `cat:<uuid>` | a menu category |
//! | `item:<uuid>` | a menu item |
//! | `page:<n>` | another page of the current list |
//! | `nav:back` | back to the previous list |
//! | `qty:<n>` | quantity of the item being added |
//! | `act:more` / `act:cart` / `act:checkout` / `act:remove` | cart actions |
//! | `rm:<uuid>` | remove an item from the cart |
//! | `pay:cash`, `pay:online` | payment method |
//! | `act:confirm` / `act:cancel` | place the order / cancel |
//! | `act:status` / `act:help` / `act:human` / `act:restart` | anytime commands |
//! | `lang:en`, `lang:ar` | switch language |
//! | `rate:<order uuid>:now\|later\|help\|skip\|1..5` | rating flow of one order |
//! | `rate:<1..5>` | a rating of the order being rated (no order id) |

use std::fmt;

use uuid::Uuid;

use crate::{Fulfilment, Lang, PaymentMethod};

/// An answer in the rating flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateAnswer {
    Now,
    Later,
    Help,
    Skip,
    Stars(i16),
}

/// A parsed choice id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceId {
    Fulfilment(Fulfilment),
    Branch(Uuid),
    Category(Uuid),
    Item(Uuid),
    Page(usize),
    Back,
    Quantity(u32),
    AddMore,
    ViewCart,
    Checkout,
    Remove,
    RemoveLine(Uuid),
    Pay(PaymentMethod),
    Confirm,
    Cancel,
    Status,
    Help,
    Human,
    Restart,
    Language(Lang),
    Rate {
        order: Option<Uuid>,
        answer: RateAnswer,
    },
}

impl fmt::Display for ChoiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChoiceId::Fulfilment(Fulfilment::Delivery) => f.write_str("ful:delivery"),
            ChoiceId::Fulfilment(Fulfilment::Pickup) => f.write_str("ful:pickup"),
            ChoiceId::Branch(id) => write!(f, "branch:{id}"),
            ChoiceId::Category(id) => write!(f, "cat:{id}"),
            ChoiceId::Item(id) => write!(f, "item:{id}"),
            ChoiceId::Page(n) => write!(f, "page:{n}"),
            ChoiceId::Back => f.write_str("nav:back"),
            ChoiceId::Quantity(n) => write!(f, "qty:{n}"),
            ChoiceId::AddMore => f.write_str("act:more"),
            ChoiceId::ViewCart => f.write_str("act:cart"),
            ChoiceId::Checkout => f.write_str("act:checkout"),
            ChoiceId::Remove => f.write_str("act:remove"),
            ChoiceId::RemoveLine(id) => write!(f, "rm:{id}"),
            ChoiceId::Pay(PaymentMethod::Cash) => f.write_str("pay:cash"),
            ChoiceId::Pay(PaymentMethod::Online) => f.write_str("pay:online"),
            ChoiceId::Confirm => f.write_str("act:confirm"),
            ChoiceId::Cancel => f.write_str("act:cancel"),
            ChoiceId::Status => f.write_str("act:status"),
            ChoiceId::Help => f.write_str("act:help"),
            ChoiceId::Human => f.write_str("act:human"),
            ChoiceId::Restart => f.write_str("act:restart"),
            ChoiceId::Language(lang) => write!(f, "lang:{}", lang.code()),
            ChoiceId::Rate { order, answer } => {
                f.write_str("rate:")?;
                if let Some(order) = order {
                    write!(f, "{order}:")?;
                }
                match answer {
                    RateAnswer::Now => f.write_str("now"),
                    RateAnswer::Later => f.write_str("later"),
                    RateAnswer::Help => f.write_str("help"),
                    RateAnswer::Skip => f.write_str("skip"),
                    RateAnswer::Stars(n) => write!(f, "{n}"),
                }
            }
        }
    }
}

impl ChoiceId {
    /// Parses an id this bot made; anything else is `None`.
    pub fn parse(s: &str) -> Option<ChoiceId> {
        let s = s.trim();
        let (kind, rest) = s.split_once(':')?;
        let uuid = || Uuid::parse_str(rest).ok();
        Some(match (kind, rest) {
            ("ful", "delivery") => ChoiceId::Fulfilment(Fulfilment::Delivery),
            ("ful", "pickup") => ChoiceId::Fulfilment(Fulfilment::Pickup),
            ("branch", _) => ChoiceId::Branch(uuid()?),
            ("cat", _) => ChoiceId::Category(uuid()?),
            ("item", _) => ChoiceId::Item(uuid()?),
            ("page", n) => ChoiceId::Page(n.parse().ok()?),
            ("nav", "back") => ChoiceId::Back,
            ("qty", n) => ChoiceId::Quantity(n.parse().ok()?),
            ("act", "more") => ChoiceId::AddMore,
            ("act", "cart") => ChoiceId::ViewCart,
            ("act", "checkout") => ChoiceId::Checkout,
            ("act", "remove") => ChoiceId::Remove,
            ("rm", _) => ChoiceId::RemoveLine(uuid()?),
            ("pay", "cash") => ChoiceId::Pay(PaymentMethod::Cash),
            ("pay", "online") => ChoiceId::Pay(PaymentMethod::Online),
            ("act", "confirm") => ChoiceId::Confirm,
            ("act", "cancel") => ChoiceId::Cancel,
            ("act", "status") => ChoiceId::Status,
            ("act", "help") => ChoiceId::Help,
            ("act", "human") => ChoiceId::Human,
            ("act", "restart") => ChoiceId::Restart,
            ("lang", "en") => ChoiceId::Language(Lang::En),
            ("lang", "ar") => ChoiceId::Language(Lang::Ar),
            ("rate", rest) => {
                let (order, answer) = match rest.rsplit_once(':') {
                    Some((order, answer)) => (Some(Uuid::parse_str(order).ok()?), answer),
                    None => (None, rest),
                };
                let answer = match answer {
                    "now" => RateAnswer::Now,
                    "later" => RateAnswer::Later,
                    "help" => RateAnswer::Help,
                    "skip" => RateAnswer::Skip,
                    n => match n.parse::<i16>().ok()? {
                        n @ 1..=5 => RateAnswer::Stars(n),
                        _ => return None,
                    },
                };
                ChoiceId::Rate { order, answer }
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn every_id_parses_back() {
        let u = Uuid::from_u128(0x1234);
        let all = [
            ChoiceId::Fulfilment(Fulfilment::Delivery),
            ChoiceId::Fulfilment(Fulfilment::Pickup),
            ChoiceId::Branch(u),
            ChoiceId::Category(u),
            ChoiceId::Item(u),
            ChoiceId::Page(3),
            ChoiceId::Back,
            ChoiceId::Quantity(2),
            ChoiceId::AddMore,
            ChoiceId::ViewCart,
            ChoiceId::Checkout,
            ChoiceId::Remove,
            ChoiceId::RemoveLine(u),
            ChoiceId::Pay(PaymentMethod::Cash),
            ChoiceId::Pay(PaymentMethod::Online),
            ChoiceId::Confirm,
            ChoiceId::Cancel,
            ChoiceId::Status,
            ChoiceId::Help,
            ChoiceId::Human,
            ChoiceId::Restart,
            ChoiceId::Language(Lang::En),
            ChoiceId::Language(Lang::Ar),
            ChoiceId::Rate {
                order: Some(u),
                answer: RateAnswer::Now,
            },
            ChoiceId::Rate {
                order: Some(u),
                answer: RateAnswer::Stars(5),
            },
            ChoiceId::Rate {
                order: None,
                answer: RateAnswer::Stars(4),
            },
        ];
        for id in all {
            let s = id.to_string();
            assert!(s.len() <= 200, "{s}");
            assert_eq!(ChoiceId::parse(&s), Some(id), "{s}");
        }
        assert_eq!(ChoiceId::parse("qty:2"), Some(ChoiceId::Quantity(2)));
        assert_eq!(ChoiceId::parse("rate:6"), None);
        assert_eq!(ChoiceId::parse("cat:not-a-uuid"), None);
        assert_eq!(ChoiceId::parse("hello"), None);
    }
}
