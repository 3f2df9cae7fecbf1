//! Reading the menu: names per language, availability per branch, prices
//! with discount, search, cart totals.

use uuid::Uuid;

use crate::normalize::{fold, name_matches};
use crate::{Branch, CartLine, Category, Lang, MenuItem};

/// The name in the language, or the other one if it is empty.
pub(crate) fn pick<'s>(lang: Lang, en: &'s str, ar: &'s str) -> &'s str {
    let (first, second) = match lang {
        Lang::En => (en, ar),
        Lang::Ar => (ar, en),
    };
    if first.trim().is_empty() {
        second.trim()
    } else {
        first.trim()
    }
}

pub(crate) fn item_name(item: &MenuItem, lang: Lang) -> &str {
    pick(lang, &item.name_en, &item.name_ar)
}

pub(crate) fn item_description(item: &MenuItem, lang: Lang) -> &str {
    pick(lang, &item.description_en, &item.description_ar)
}

pub(crate) fn category_name(category: &Category, lang: Lang) -> &str {
    pick(lang, &category.name_en, &category.name_ar)
}

pub(crate) fn branch_name(branch: &Branch, lang: Lang) -> &str {
    pick(lang, &branch.name_en, &branch.name_ar)
}

pub(crate) fn find_item(menu: &[Category], id: Uuid) -> Option<&MenuItem> {
    menu.iter().flat_map(|c| &c.items).find(|i| i.id == id)
}

pub(crate) fn category_of(menu: &[Category], item: Uuid) -> Option<&Category> {
    menu.iter().find(|c| c.items.iter().any(|i| i.id == item))
}

pub(crate) fn find_branch(branches: &[Branch], id: Uuid) -> Option<&Branch> {
    branches.iter().find(|b| b.id == id)
}

/// Whether the item can be ordered (from the branch, if one is chosen).
pub(crate) fn available(item: &MenuItem, branch: Option<Uuid>) -> bool {
    item.available && branch.is_none_or(|b| !item.unavailable_branches.contains(&b))
}

/// The unit price with the discount applied, rounded half up to the minor
/// unit: `(price × (100 − discount) + 50) / 100`.
pub(crate) fn unit_price(item: &MenuItem) -> i64 {
    let discount = i64::from(item.discount_percent.clamp(0, 100));
    (item.price * (100 - discount) + 50).div_euclid(100)
}

pub(crate) fn visible_items(category: &Category, branch: Option<Uuid>) -> Vec<&MenuItem> {
    category
        .items
        .iter()
        .filter(|i| available(i, branch))
        .collect()
}

/// Categories with at least one item that can be ordered, with its count.
pub(crate) fn visible_categories(
    menu: &[Category],
    branch: Option<Uuid>,
) -> Vec<(&Category, usize)> {
    menu.iter()
        .map(|c| (c, visible_items(c, branch).len()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Items whose name (in either language) holds every word of the query;
/// an exact name wins over partial ones. Returns (orderable, unavailable).
pub(crate) fn search<'m>(
    menu: &'m [Category],
    branch: Option<Uuid>,
    query: &str,
) -> (Vec<&'m MenuItem>, Vec<&'m MenuItem>) {
    let folded = fold(query);
    let matches =
        |i: &&MenuItem| name_matches(&i.name_en, query) || name_matches(&i.name_ar, query);
    let exact = |i: &&MenuItem| fold(&i.name_en) == folded || fold(&i.name_ar) == folded;
    let all: Vec<&MenuItem> = menu.iter().flat_map(|c| &c.items).filter(matches).collect();
    let exact_hits: Vec<&MenuItem> = all.iter().copied().filter(exact).collect();
    let hits = if exact_hits.is_empty() {
        all
    } else {
        exact_hits
    };
    hits.into_iter().partition(|i| available(i, branch))
}

/// Categories whose name holds every word of the query.
pub(crate) fn search_categories<'m>(
    menu: &'m [Category],
    branch: Option<Uuid>,
    query: &str,
) -> Vec<&'m Category> {
    visible_categories(menu, branch)
        .into_iter()
        .map(|(c, _)| c)
        .filter(|c| name_matches(&c.name_en, query) || name_matches(&c.name_ar, query))
        .collect()
}

pub(crate) fn line_total(menu: &[Category], line: &CartLine) -> i64 {
    find_item(menu, line.item_id)
        .map(|i| unit_price(i) * i64::from(line.quantity))
        .unwrap_or(0)
}

pub(crate) fn subtotal(menu: &[Category], cart: &[CartLine]) -> i64 {
    cart.iter().map(|l| line_total(menu, l)).sum()
}

/// Number of pieces in the cart.
pub(crate) fn pieces(cart: &[CartLine]) -> u32 {
    cart.iter().map(|l| l.quantity).sum()
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn discount_rounds_half_up() {
        let item = |price, discount_percent| MenuItem {
            price,
            discount_percent,
            ..Default::default()
        };
        assert_eq!(unit_price(&item(4200, 10)), 3780);
        assert_eq!(unit_price(&item(999, 15)), 849); // 849.15
        assert_eq!(unit_price(&item(1000, 0)), 1000);
        assert_eq!(unit_price(&item(1000, 100)), 0);
        assert_eq!(unit_price(&item(1000, 150)), 0);
        assert_eq!(unit_price(&item(105, 50)), 53); // 52.5 → 53
    }

    #[test]
    fn names_fall_back_to_the_other_language() {
        assert_eq!(pick(Lang::Ar, "Pepsi", ""), "Pepsi");
        assert_eq!(pick(Lang::En, " ", "بيبسي"), "بيبسي");
        assert_eq!(pick(Lang::Ar, "Pepsi", "بيبسي"), "بيبسي");
    }
}
