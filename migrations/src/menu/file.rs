//! The menu file formats. Both describe the same [`Menu`]:
//!
//! - CSV: a header row naming the columns (any order), one row per item;
//!   a category is given on each of its items' rows (`category_key`,
//!   `category_en`, `category_ar`) and categories appear in the order of
//!   their first row.
//! - JSON: `{"categories": [{"key", "name_en", "name_ar", "items": [{…}]}]}`.
//!
//! Item fields, the same in both: `sku`, `name_en`, `name_ar` and `price`
//! (required); `description_en`, `description_ar`, `discount_percent`,
//! `available`, `unavailable_at` (branch codes; `;`-separated in CSV, an
//! array in JSON), `image_url`, `sort_order`. Every problem of a file is
//! reported, each with its line and field.

use std::{collections::HashMap, fmt};

use serde_json::{value::RawValue, Map, Value};

use super::{Category, Item, Menu, PRICE_DECIMALS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    /// The format a file name says (`.csv` or `.json`).
    pub fn of_path(path: &str) -> Option<Format> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(Format::Csv)
        } else if lower.ends_with(".json") {
            Some(Format::Json)
        } else {
            None
        }
    }

    pub fn parse(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// One thing wrong with a menu file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    /// The column or field, if the problem is in one.
    pub field: Option<String>,
    pub rule: String,
}

/// Every problem of a file, which is named in each line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file)?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if let Some(field) = &p.field {
                write!(f, ": {field}")?;
            }
            write!(f, ": {}", p.rule)?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

const CATEGORY_FIELDS: [&str; 3] = ["category_key", "category_en", "category_ar"];
const ITEM_FIELDS: [&str; 11] = [
    "sku",
    "name_en",
    "name_ar",
    "description_en",
    "description_ar",
    "price",
    "discount_percent",
    "available",
    "unavailable_at",
    "image_url",
    "sort_order",
];
const REQUIRED_ITEM_FIELDS: [&str; 4] = ["sku", "name_en", "name_ar", "price"];
const MAX_KEY_CHARS: usize = 64;
const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_URL_CHARS: usize = 500;
const MAX_PRICE_MINOR: i64 = 10_000_000_000;

/// What a file is checked against besides itself.
pub struct Rules<'a> {
    /// The restaurant's branch codes (for `unavailable_at`).
    pub branch_codes: &'a [String],
}

/// One item as read: its line and its fields as text.
struct Record {
    line: usize,
    fields: HashMap<String, String>,
}

struct Checker<'a> {
    rules: &'a Rules<'a>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem(&mut self, line: Option<usize>, field: Option<&str>, rule: impl Into<String>) {
        self.problems.push(Problem {
            line,
            field: field.map(str::to_string),
            rule: rule.into(),
        });
    }

    fn text(&mut self, r: &Record, field: &str, required: bool, max: usize) -> String {
        let value = r.fields.get(field).map(|v| v.trim()).unwrap_or("");
        if value.is_empty() {
            if required {
                self.problem(Some(r.line), Some(field), "is required");
            }
            return String::new();
        }
        if value.chars().any(|c| c.is_control() && c != '\n') {
            self.problem(
                Some(r.line),
                Some(field),
                "must not contain control characters",
            );
        }
        if value.chars().count() > max {
            self.problem(
                Some(r.line),
                Some(field),
                format!("must be at most {max} characters"),
            );
        }
        value.to_string()
    }

    fn key(&mut self, r: &Record, field: &str) -> String {
        let value = self.text(r, field, true, MAX_KEY_CHARS);
        let ok = value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !value.is_empty() && !ok {
            self.problem(
                Some(r.line),
                Some(field),
                format!("{value:?} may only use letters A-Z, digits, '-', '_' and '.'"),
            );
        }
        value
    }

    fn item(&mut self, r: &Record, position: usize) -> Item {
        let sku = self.key(r, "sku");
        let name_en = self.text(r, "name_en", true, MAX_NAME_CHARS);
        let name_ar = self.text(r, "name_ar", true, MAX_NAME_CHARS);
        let description_en = self.text(r, "description_en", false, MAX_DESCRIPTION_CHARS);
        let description_ar = self.text(r, "description_ar", false, MAX_DESCRIPTION_CHARS);
        let price_text = self.text(r, "price", true, 20);
        let price = if price_text.is_empty() {
            0
        } else {
            match parse_price(&price_text) {
                Ok(p) => p,
                Err(rule) => {
                    self.problem(
                        Some(r.line),
                        Some("price"),
                        format!("{price_text:?} {rule}"),
                    );
                    0
                }
            }
        };
        let discount_text = self.text(r, "discount_percent", false, 5);
        let discount_percent = match discount_text.trim_end_matches('%').trim() {
            "" => 0,
            d => match d.parse::<i32>() {
                Ok(n) if (0..=100).contains(&n) => n,
                _ => {
                    self.problem(
                        Some(r.line),
                        Some("discount_percent"),
                        format!("{discount_text:?} must be a whole number from 0 to 100"),
                    );
                    0
                }
            },
        };
        let available_text = self.text(r, "available", false, 5);
        let available = match available_text.to_ascii_lowercase().as_str() {
            "" | "yes" | "true" | "1" | "y" => true,
            "no" | "false" | "0" | "n" => false,
            _ => {
                self.problem(
                    Some(r.line),
                    Some("available"),
                    format!("{available_text:?} must be yes or no"),
                );
                true
            }
        };
        let mut unavailable_at: Vec<String> = Vec::new();
        for code in r
            .fields
            .get("unavailable_at")
            .map(String::as_str)
            .unwrap_or("")
            .split(';')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            if !self.rules.branch_codes.iter().any(|b| b == code) {
                let known = if self.rules.branch_codes.is_empty() {
                    "the restaurant has no branches".to_string()
                } else {
                    format!("branches: {}", self.rules.branch_codes.join(", "))
                };
                self.problem(
                    Some(r.line),
                    Some("unavailable_at"),
                    format!("{code:?} is not a branch of this restaurant ({known})"),
                );
            } else if !unavailable_at.iter().any(|c| c == code) {
                unavailable_at.push(code.to_string());
            }
        }
        let image = self.text(r, "image_url", false, MAX_URL_CHARS);
        if !image.is_empty()
            && (!image.starts_with("https://") || image.contains(char::is_whitespace))
        {
            self.problem(
                Some(r.line),
                Some("image_url"),
                format!("{image:?} must be an https:// URL"),
            );
        }
        let sort_text = self.text(r, "sort_order", false, 9);
        let sort_order = match sort_text.as_str() {
            "" => position as i32,
            s => s.parse::<i32>().unwrap_or_else(|_| {
                self.problem(
                    Some(r.line),
                    Some("sort_order"),
                    format!("{s:?} must be a whole number"),
                );
                0
            }),
        };
        Item {
            sku,
            name_en,
            name_ar,
            description_en,
            description_ar,
            price,
            discount_percent,
            available,
            unavailable_at,
            image_url: (!image.is_empty()).then_some(image),
            sort_order,
        }
    }
}

/// A decimal amount in major units (`32`, `32.5`, `32.50`) as minor units.
pub fn parse_price(text: &str) -> Result<i64, &'static str> {
    const RULE: &str = "must be an amount like 32.50 (a dot, at most 2 decimals, not negative)";
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
        || fraction.len() > PRICE_DECIMALS as usize
        || (text.contains('.') && fraction.is_empty())
        || whole.len() > 12
    {
        return Err(RULE);
    }
    let scale = 10i64.pow(PRICE_DECIMALS);
    let whole: i64 = whole.parse().map_err(|_| RULE)?;
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<i64>().map_err(|_| RULE)?
            * 10i64.pow(PRICE_DECIMALS - fraction.len() as u32)
    };
    let minor = whole * scale + fraction;
    if minor > MAX_PRICE_MINOR {
        return Err("is larger than any menu price");
    }
    Ok(minor)
}

/// Minor units as the decimal a menu file writes (`3200` → `32.00`).
pub fn format_price(minor: i64) -> String {
    let scale = 10i64.pow(PRICE_DECIMALS);
    format!(
        "{}.{:0width$}",
        minor / scale,
        minor % scale,
        width = PRICE_DECIMALS as usize
    )
}

/// Reads a menu file; all of its problems or none.
pub fn parse(file: &str, text: &str, format: Format, rules: &Rules<'_>) -> Result<Menu, Problems> {
    let mut checker = Checker {
        rules,
        problems: Vec::new(),
    };
    let menu = match format {
        Format::Csv => parse_csv(text, &mut checker),
        Format::Json => parse_json(text, &mut checker),
    };
    if menu.item_count() == 0 && checker.problems.is_empty() {
        checker.problem(
            None,
            None,
            "the file has no items (an empty menu would retire every item)",
        );
    }
    check_unique_skus(&menu, &mut checker);
    if checker.problems.is_empty() {
        Ok(menu)
    } else {
        checker.problems.sort_by_key(|p| p.line.unwrap_or(0));
        Err(Problems {
            file: file.to_string(),
            problems: checker.problems,
        })
    }
}

fn check_unique_skus(menu: &Menu, checker: &mut Checker<'_>) {
    let mut seen: HashMap<&str, ()> = HashMap::new();
    let mut duplicates: Vec<String> = Vec::new();
    for item in menu.categories.iter().flat_map(|c| &c.items) {
        if !item.sku.is_empty() && seen.insert(&item.sku, ()).is_some() {
            duplicates.push(item.sku.clone());
        }
    }
    for sku in duplicates {
        checker.problem(
            None,
            Some("sku"),
            format!("{sku:?} appears more than once (SKUs are unique)"),
        );
    }
}

fn parse_csv(text: &str, checker: &mut Checker<'_>) -> Menu {
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

fn parse_json(text: &str, checker: &mut Checker<'_>) -> Menu {
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

/// Writes the menu in a format.
pub fn write(menu: &Menu, format: Format) -> String {
    match format {
        Format::Csv => to_csv(menu),
        Format::Json => to_json(menu),
    }
}

#[cfg(test)]
mod tests;
