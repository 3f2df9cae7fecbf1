//! The question each step asks: its text and its options, in the order a
//! typed number counts them. Computed from the dialogue every time (never
//! stored), so what a number means is what the customer was shown.

use crate::flow::{cart_lines, delivery_fee, shortfall, Turn};
use crate::ids::{ChoiceId, RateAnswer};
use crate::menu;
use crate::rating;
use crate::texts::{self, Texts};
use crate::ui::{self, templates, Opt, View};
use crate::{keys, Dialogue, Fulfilment, PaymentMethod, Step, MAX_QUANTITY};

/// Cart lines shown in a cart view (an interactive body).
const CART_LINES_SHOWN: usize = 15;

/// The current step's question and options (the n-th option is what a
/// typed n means), or `None` if the step cannot be asked.
pub(crate) fn view(d: &Dialogue, turn: &Turn) -> Option<View> {
    let t = turn.t();
    let lang = turn.lang;
    let ctx = turn.ctx;
    if d.step.browsing() && d.fulfilment.is_none() {
        return None;
    }
    let view = match d.step {
        Step::Start | Step::Unknown => return None,
        Step::Fulfilment => View {
            template: templates::FULFILMENT,
            body: t.ask_fulfilment(),
            options: vec![
                Opt::new(
                    ChoiceId::Fulfilment(Fulfilment::Delivery),
                    t.delivery_button(),
                ),
                Opt::new(ChoiceId::Fulfilment(Fulfilment::Pickup), t.pickup_button()),
                Opt::new(
                    ChoiceId::Language(lang.other()),
                    texts::language_name(lang.other()),
                ),
            ],
        },
        Step::Branch => {
            let rows: Vec<Opt> = crate::opening::open_now(ctx, Some(crate::Fulfilment::Pickup))
                .into_iter()
                .map(|b| {
                    Opt::described(
                        ChoiceId::Branch(b.id),
                        menu::branch_name(b, lang),
                        b.address.clone().unwrap_or_default(),
                    )
                })
                .collect();
            View {
                template: templates::BRANCH,
                body: t.ask_branch(),
                options: page_of(rows, vec![], d.get_usize(keys::PAGE), t)?,
            }
        }
        Step::Location => View {
            template: templates::LOCATION,
            body: t.ask_location(),
            options: vec![
                Opt::new(
                    ChoiceId::Fulfilment(Fulfilment::Pickup),
                    t.pickup_instead_button(),
                ),
                Opt::new(ChoiceId::Human, t.staff_button()),
            ],
        },
        Step::Menu => {
            let rows: Vec<Opt> = menu::visible_categories(ctx.menu, d.branch_id)
                .into_iter()
                .map(|(c, n)| {
                    Opt::described(
                        ChoiceId::Category(c.id),
                        menu::category_name(c, lang),
                        t.category_description(n),
                    )
                })
                .collect();
            let mut extras = Vec::new();
            if !d.cart.is_empty() {
                extras.push(Opt::described(
                    ChoiceId::ViewCart,
                    t.cart_entry(menu::pieces(&d.cart)),
                    t.cart_entry_description(&turn.money(menu::subtotal(ctx.menu, &d.cart))),
                ));
            }
            View {
                template: templates::CATEGORIES,
                body: t.ask_category(),
                options: page_of(rows, extras, d.get_usize(keys::PAGE), t)?,
            }
        }
        Step::Items => {
            let (items, body) = if let Some(query) = d.context.get(keys::QUERY) {
                let (found, _) = menu::search(ctx.menu, d.branch_id, query);
                (found, t.search_results(query))
            } else {
                let category = d
                    .get_uuid(keys::CATEGORY)
                    .and_then(|id| ctx.menu.iter().find(|c| c.id == id))?;
                (
                    menu::visible_items(category, d.branch_id),
                    t.ask_item(menu::category_name(category, lang)),
                )
            };
            let rows: Vec<Opt> = items
                .into_iter()
                .map(|i| {
                    let price = t.price(&turn.money(menu::unit_price(i)), i.discount_percent);
                    let description = menu::item_description(i, lang);
                    let description = if description.is_empty() {
                        price
                    } else {
                        format!("{price} · {description}")
                    };
                    Opt::described(ChoiceId::Item(i.id), menu::item_name(i, lang), description)
                })
                .collect();
            let several = menu::visible_categories(ctx.menu, d.branch_id).len() > 1;
            let extras = if several || d.context.contains_key(keys::QUERY) {
                vec![Opt::new(ChoiceId::Back, t.back_title())]
            } else {
                vec![]
            };
            View {
                template: templates::ITEMS,
                body,
                options: page_of(rows, extras, d.get_usize(keys::PAGE), t)?,
            }
        }
        Step::Quantity => {
            let item = d
                .get_uuid(keys::ITEM)
                .and_then(|id| menu::find_item(ctx.menu, id))
                .filter(|i| menu::available(i, d.branch_id))?;
            let price = t.price(&turn.money(menu::unit_price(item)), item.discount_percent);
            View {
                template: templates::QUANTITY,
                body: t.ask_quantity(
                    menu::item_name(item, lang),
                    &price,
                    menu::item_description(item, lang),
                    MAX_QUANTITY,
                ),
                options: (1..=3)
                    .map(|n| Opt::new(ChoiceId::Quantity(n), n.to_string()))
                    .collect(),
            }
        }
        Step::Added => {
            if d.cart.is_empty() {
                return None;
            }
            let subtotal = turn.money(menu::subtotal(ctx.menu, &d.cart));
            View {
                template: templates::ADDED,
                body: format!(
                    "{}\n{}",
                    t.cart_status(menu::pieces(&d.cart), &subtotal),
                    t.ask_next()
                ),
                options: vec![
                    Opt::new(ChoiceId::AddMore, t.add_more_button()),
                    Opt::new(ChoiceId::ViewCart, t.view_cart_button()),
                    Opt::new(ChoiceId::Checkout, t.checkout_button()),
                ],
            }
        }
        Step::Cart => {
            if d.cart.is_empty() {
                return None;
            }
            let (lines, more) = cart_lines(d, turn, CART_LINES_SHOWN);
            let subtotal = turn.money(menu::subtotal(ctx.menu, &d.cart));
            View {
                template: templates::CART,
                body: ui::paragraphs(&[t.cart(&lines, more, &subtotal), t.ask_next()]),
                options: vec![
                    Opt::new(ChoiceId::Checkout, t.checkout_button()),
                    Opt::new(ChoiceId::AddMore, t.add_more_button()),
                    Opt::new(ChoiceId::Remove, t.remove_button()),
                ],
            }
        }
        Step::Remove => {
            let rows: Vec<Opt> = d
                .cart
                .iter()
                .filter_map(|l| {
                    let item = menu::find_item(ctx.menu, l.item_id)?;
                    Some(Opt::described(
                        ChoiceId::RemoveLine(l.item_id),
                        menu::item_name(item, lang),
                        t.line_description(l.quantity, &turn.money(menu::line_total(ctx.menu, l))),
                    ))
                })
                .collect();
            View {
                template: templates::REMOVE,
                body: t.ask_remove(),
                options: page_of(
                    rows,
                    vec![Opt::new(ChoiceId::Back, t.back_title())],
                    d.get_usize(keys::PAGE),
                    t,
                )?,
            }
        }
        Step::BelowMinimum => {
            let missing = shortfall(d, turn)?;
            let subtotal = menu::subtotal(ctx.menu, &d.cart);
            View {
                template: templates::MIN_ORDER,
                body: t.below_minimum(
                    &turn.money(ctx.restaurant.min_delivery_order),
                    &turn.money(subtotal),
                    &turn.money(missing),
                ),
                options: vec![
                    Opt::new(ChoiceId::AddMore, t.add_more_button()),
                    Opt::new(
                        ChoiceId::Fulfilment(Fulfilment::Pickup),
                        t.pickup_instead_button(),
                    ),
                    Opt::new(ChoiceId::ViewCart, t.view_cart_button()),
                ],
            }
        }
        Step::Payment => {
            let mut options = vec![Opt::new(
                ChoiceId::Pay(PaymentMethod::Cash),
                t.cash_button(),
            )];
            if turn.online_payment() {
                options.push(Opt::new(
                    ChoiceId::Pay(PaymentMethod::Online),
                    t.online_button(),
                ));
            }
            View {
                template: templates::PAYMENT,
                body: t.ask_payment(),
                options,
            }
        }
        Step::Confirm => {
            if d.cart.is_empty() {
                return None;
            }
            let total = menu::subtotal(ctx.menu, &d.cart) + delivery_fee(d, turn);
            View {
                template: templates::CONFIRM,
                body: t.ask_confirm(
                    &turn.money(total),
                    d.payment.unwrap_or(PaymentMethod::Cash),
                    d.fulfilment?,
                ),
                options: vec![
                    Opt::new(ChoiceId::Confirm, t.confirm_button()),
                    Opt::new(ChoiceId::ViewCart, t.edit_cart_button()),
                    Opt::new(ChoiceId::Cancel, t.cancel_button()),
                ],
            }
        }
        Step::OrderPlaced => View {
            template: templates::AFTER_ORDER,
            body: t.ask_after_order(),
            options: vec![
                Opt::new(ChoiceId::Status, t.status_button()),
                Opt::new(ChoiceId::Restart, t.new_order_button()),
                Opt::new(ChoiceId::Help, t.help_button()),
            ],
        },
        Step::RatingPrompt => {
            let order = d.get_uuid(keys::ORDER)?;
            rating::prompt_view(order, t.ask_to_rate(), t)
        }
        Step::Rating => {
            let order = d.get_uuid(keys::ORDER)?;
            rating::list_view(order, d.order(order).and_then(|m| m.number), t)
        }
        Step::RatingComment => {
            let order = d.get_uuid(keys::ORDER)?;
            View {
                template: templates::RATING_COMMENT,
                body: t.ask_comment(),
                options: vec![Opt::new(
                    ChoiceId::Rate {
                        order: Some(order),
                        answer: RateAnswer::Skip,
                    },
                    t.skip_button(),
                )],
            }
        }
    };
    Some(view)
}

/// One page of list rows with a "more" row when there are several pages,
/// then the extras (back, cart). `None` if there are no rows.
fn page_of(rows: Vec<Opt>, extras: Vec<Opt>, page: usize, t: &dyn Texts) -> Option<Vec<Opt>> {
    if rows.is_empty() {
        return None;
    }
    let p = ui::paginate(rows.len(), page, extras.len());
    let mut options: Vec<Opt> = rows
        .into_iter()
        .skip(p.start)
        .take(p.end - p.start)
        .collect();
    if p.pages > 1 {
        let next = (p.page + 1) % p.pages;
        options.push(Opt::described(
            ChoiceId::Page(next),
            t.more_title(),
            t.more_description(next + 1, p.pages),
        ));
    }
    options.extend(extras);
    Some(options)
}
