//! Browsing the menu: the category list, the items of a category or of a
//! typed search, and choosing an item (its quantity is asked next).

use uuid::Uuid;

use crate::menu;
use crate::normalize::{clean_free_text, fold};
use crate::ui;
use crate::{keys, Dialogue, Step};

use super::greeting::greet;
use super::{reask, show_step, Turn};

const MAX_QUERY_CHARS: usize = 60;

#[derive(Debug, Clone)]
pub(super) enum Source {
    Category(Uuid),
    Query(String),
}

pub(super) fn to_menu(d: &mut Dialogue, turn: &mut Turn, lead: Vec<String>) {
    if d.fulfilment.is_none() {
        return greet(d, turn, true, lead);
    }
    let categories = menu::visible_categories(turn.ctx.menu, d.branch_id);
    match categories.as_slice() {
        [] => nothing_to_order(d, turn, lead),
        [(only, _)] => {
            let id = only.id;
            to_items(d, Source::Category(id), turn, lead)
        }
        _ => {
            d.set_step(Step::Menu);
            show_step(d, turn, lead);
        }
    }
}

fn nothing_to_order(d: &mut Dialogue, turn: &mut Turn, mut lead: Vec<String>) {
    lead.push(turn.t().menu_empty());
    d.set_step(Step::Start);
    turn.say(ui::paragraphs(&lead));
}

pub(super) fn to_items(d: &mut Dialogue, source: Source, turn: &mut Turn, lead: Vec<String>) {
    d.set_step(Step::Items);
    match source {
        Source::Category(id) => d.put(keys::CATEGORY, id),
        Source::Query(query) => d.put(keys::QUERY, query),
    }
    show_step(d, turn, lead);
}

pub(super) fn choose_item(d: &mut Dialogue, item_id: Uuid, turn: &mut Turn, lead: Vec<String>) {
    let Some(item) = menu::find_item(turn.ctx.menu, item_id) else {
        let lead = vec![turn.t().stale_choice()];
        return to_menu(d, turn, lead);
    };
    if !menu::available(item, d.branch_id) {
        let lead = vec![turn.t().item_unavailable(menu::item_name(item, turn.lang))];
        return to_menu(d, turn, lead);
    }
    d.set_step(Step::Quantity);
    d.put(keys::ITEM, item.id);
    show_step(d, turn, lead);
}

/// A typed dish or category name.
pub(super) fn search_menu(d: &mut Dialogue, body: &str, turn: &mut Turn) {
    let query = clean_free_text(body, MAX_QUERY_CHARS).replace('\n', " ");
    if fold(&query).chars().count() < 2 {
        let lead = vec![turn.t().didnt_get()];
        return reask(d, turn, lead);
    }
    let (found, unavailable) = menu::search(turn.ctx.menu, d.branch_id, &query);
    match found.as_slice() {
        [only] => return choose_item(d, only.id, turn, vec![]),
        [_, _, ..] => return to_items(d, Source::Query(query), turn, vec![]),
        [] => {}
    }
    if let [category] = menu::search_categories(turn.ctx.menu, d.branch_id, &query).as_slice() {
        let id = category.id;
        return to_items(d, Source::Category(id), turn, vec![]);
    }
    let lead = match unavailable.first() {
        Some(item) => turn.t().item_unavailable(menu::item_name(item, turn.lang)),
        None => turn.t().not_found(&query),
    };
    reask(d, turn, vec![lead]);
}
