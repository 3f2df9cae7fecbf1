//! The CSV format: a header naming the columns, one row per item.

use std::collections::HashMap;

use super::format_price;
use super::{
    fields::Checker, fields::Record, CATEGORY_FIELDS, ITEM_FIELDS, MAX_NAME_CHARS,
    REQUIRED_ITEM_FIELDS,
};
use crate::menu::{Category, Menu};

pub(super) fn parse(text: &str, checker: &mut Checker<'_>) -> Menu {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.trim().to_ascii_lowercase()).collect(),
        Err(e) => {
            checker.problem(Some(1), None, format!("unreadable header: {e}"));
            return Menu::default();
        }
    };
    let known: Vec<&str> = CATEGORY_FIELDS
        .iter()
        .chain(ITEM_FIELDS.iter())
        .copied()
        .collect();
    for column in &header {
        if !known.contains(&column.as_str()) {
            checker.problem(
                Some(1),
                Some(column),
                format!("unknown column (columns: {})", known.join(", ")),
            );
        }
    }
    for required in CATEGORY_FIELDS.iter().chain(REQUIRED_ITEM_FIELDS.iter()) {
        if !header.iter().any(|c| c == required) {
            checker.problem(Some(1), Some(required), "required column is missing");
        }
    }
    if !checker.problems.is_empty() {
        return Menu::default();
    }
    let mut menu = Menu::default();
    let mut category_lines: HashMap<String, (usize, usize)> = HashMap::new();
    for row in reader.records() {
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize);
                checker.problem(line, None, format!("unreadable row: {e}"));
                continue;
            }
        };
        let line = row.position().map_or(0, |p| p.line() as usize);
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if row.len() != header.len() {
            checker.problem(
                Some(line),
                None,
                format!("has {} cells, the header has {}", row.len(), header.len()),
            );
            continue;
        }
        let record = Record {
            line,
            fields: header
                .iter()
                .cloned()
                .zip(row.iter().map(str::to_string))
                .collect(),
        };
        let key = checker.key(&record, "category_key");
        let name_en = checker.text(&record, "category_en", true, MAX_NAME_CHARS);
        let name_ar = checker.text(&record, "category_ar", true, MAX_NAME_CHARS);
        let index = match category_lines.get(&key) {
            Some(&(index, first_line)) => {
                let c = &menu.categories[index];
                if c.name_en != name_en || c.name_ar != name_ar {
                    checker.problem(
                        Some(line),
                        Some("category_en/category_ar"),
                        format!(
                            "category {key:?} is named differently on line {first_line} ({:?} / {:?})",
                            c.name_en, c.name_ar
                        ),
                    );
                }
                index
            }
            None => {
                menu.categories.push(Category {
                    key: key.clone(),
                    name_en,
                    name_ar,
                    items: vec![],
                });
                category_lines.insert(key, (menu.categories.len() - 1, line));
                menu.categories.len() - 1
            }
        };
        let position = menu.categories[index].items.len();
        let item = checker.item(&record, position);
        menu.categories[index].items.push(item);
    }
    menu
}

/// The menu as CSV (the format `parse` reads).
pub fn to_csv(menu: &Menu) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header: Vec<&str> = CATEGORY_FIELDS
        .iter()
        .chain(ITEM_FIELDS.iter())
        .copied()
        .collect();
    writer.write_record(&header).expect("write to memory");
    for c in &menu.categories {
        for i in &c.items {
            let price = format_price(i.price);
            let discount = i.discount_percent.to_string();
            let sort = i.sort_order.to_string();
            let unavailable = i.unavailable_at.join(";");
            writer
                .write_record([
                    c.key.as_str(),
                    &c.name_en,
                    &c.name_ar,
                    &i.sku,
                    &i.name_en,
                    &i.name_ar,
                    &i.description_en,
                    &i.description_ar,
                    &price,
                    &discount,
                    if i.available { "yes" } else { "no" },
                    &unavailable,
                    i.image_url.as_deref().unwrap_or(""),
                    &sort,
                ])
                .expect("write to memory");
        }
    }
    String::from_utf8(writer.into_inner().expect("flush to memory")).expect("UTF-8 in, UTF-8 out")
}
