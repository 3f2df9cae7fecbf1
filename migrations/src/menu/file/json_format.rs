//! The JSON format: categories, each with its items.

use std::collections::HashMap;

use serde_json::{value::RawValue, Map, Value};

use super::{fields::Checker, fields::Record, format_price, ITEM_FIELDS, MAX_NAME_CHARS};
use crate::menu::{Category, Menu};

/// The line of a value borrowed from `text`.
fn line_of(text: &str, raw: &RawValue) -> usize {
    let offset = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn json_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

pub(super) fn parse(text: &str, checker: &mut Checker<'_>) -> Menu {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Top<'a> {
        #[serde(borrow)]
        categories: Vec<&'a RawValue>,
    }
    let top: Top<'_> = match serde_json::from_str(text) {
        Ok(top) => top,
        Err(e) => {
            checker.problem(Some(e.line()), None, format!("not a menu: {e}"));
            return Menu::default();
        }
    };
    let mut menu = Menu::default();
    for (ci, raw_category) in top.categories.iter().enumerate() {
        let line = line_of(text, raw_category);
        let where_ = format!("categories[{ci}]");
        let object: Map<String, Value> = match serde_json::from_str(raw_category.get()) {
            Ok(Value::Object(o)) => o,
            _ => {
                checker.problem(Some(line), Some(&where_), "must be an object");
                continue;
            }
        };
        let mut fields = HashMap::new();
        for (name, value) in &object {
            match name.as_str() {
                "key" | "name_en" | "name_ar" => match json_text(value) {
                    Some(v) => {
                        fields.insert(name.clone(), v);
                    }
                    None => checker.problem(
                        Some(line),
                        Some(&format!("{where_}.{name}")),
                        "must be text",
                    ),
                },
                "items" => {}
                other => checker.problem(
                    Some(line),
                    Some(&format!("{where_}.{other}")),
                    "unknown field (fields: key, name_en, name_ar, items)",
                ),
            }
        }
        let record = Record { line, fields };
        let key = checker.key(&record, "key");
        if menu.categories.iter().any(|c| c.key == key) && !key.is_empty() {
            checker.problem(
                Some(line),
                Some(&format!("{where_}.key")),
                format!("{key:?} appears twice"),
            );
        }
        let mut category = Category {
            key,
            name_en: checker.text(&record, "name_en", true, MAX_NAME_CHARS),
            name_ar: checker.text(&record, "name_ar", true, MAX_NAME_CHARS),
            items: vec![],
        };
        let items: Vec<&RawValue> = match object.get("items") {
            None => vec![],
            Some(_) => {
                #[derive(serde::Deserialize)]
                struct Items<'a> {
                    #[serde(borrow, default)]
                    items: Vec<&'a RawValue>,
                }
                match serde_json::from_str::<Items<'_>>(raw_category.get()) {
                    Ok(i) => i.items,
                    Err(_) => {
                        checker.problem(
                            Some(line),
                            Some(&format!("{where_}.items")),
                            "must be an array",
                        );
                        vec![]
                    }
                }
            }
        };
        for (ii, raw_item) in items.iter().enumerate() {
            let line = line_of(text, raw_item);
            let where_ = format!("categories[{ci}].items[{ii}]");
            let Ok(Value::Object(object)) = serde_json::from_str::<Value>(raw_item.get()) else {
                checker.problem(Some(line), Some(&where_), "must be an object");
                continue;
            };
            let mut fields = HashMap::new();
            for (name, value) in &object {
                if !ITEM_FIELDS.contains(&name.as_str()) {
                    checker.problem(
                        Some(line),
                        Some(&format!("{where_}.{name}")),
                        format!("unknown field (fields: {})", ITEM_FIELDS.join(", ")),
                    );
                    continue;
                }
                let text = match (name.as_str(), value) {
                    ("unavailable_at", Value::Array(codes)) => codes
                        .iter()
                        .map(|c| json_text(c).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(";"),
                    (_, v) => match json_text(v) {
                        Some(t) => t,
                        None => {
                            checker.problem(
                                Some(line),
                                Some(&format!("{where_}.{name}")),
                                "must be a single value",
                            );
                            continue;
                        }
                    },
                };
                fields.insert(name.clone(), text);
            }
            let item = checker.item(&Record { line, fields }, ii);
            category.items.push(item);
        }
        menu.categories.push(category);
    }
    menu
}

#[derive(serde::Serialize)]
struct JsonMenu<'a> {
    categories: Vec<JsonCategory<'a>>,
}

#[derive(serde::Serialize)]
struct JsonCategory<'a> {
    key: &'a str,
    name_en: &'a str,
    name_ar: &'a str,
    items: Vec<JsonItem<'a>>,
}

#[derive(serde::Serialize)]
struct JsonItem<'a> {
    sku: &'a str,
    name_en: &'a str,
    name_ar: &'a str,
    description_en: &'a str,
    description_ar: &'a str,
    price: String,
    discount_percent: i32,
    available: bool,
    unavailable_at: &'a [String],
    image_url: Option<&'a str>,
    sort_order: i32,
}

/// The menu as JSON (the format `parse` reads), pretty-printed.
pub fn to_json(menu: &Menu) -> String {
    let json = JsonMenu {
        categories: menu
            .categories
            .iter()
            .map(|c| JsonCategory {
                key: &c.key,
                name_en: &c.name_en,
                name_ar: &c.name_ar,
                items: c
                    .items
                    .iter()
                    .map(|i| JsonItem {
                        sku: &i.sku,
                        name_en: &i.name_en,
                        name_ar: &i.name_ar,
                        description_en: &i.description_en,
                        description_ar: &i.description_ar,
                        price: format_price(i.price),
                        discount_percent: i.discount_percent,
                        available: i.available,
                        unavailable_at: &i.unavailable_at,
                        image_url: i.image_url.as_deref(),
                        sort_order: i.sort_order,
                    })
                    .collect(),
            })
            .collect(),
    };
    let mut out = serde_json::to_string_pretty(&json).expect("JSON of a menu");
    out.push('\n');
    out
}
