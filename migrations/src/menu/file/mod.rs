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

mod csv_format;
mod fields;
mod json_format;
#[cfg(test)]
mod tests;

use std::{collections::HashMap, fmt};

pub use csv_format::to_csv;
pub use fields::{format_price, parse_price, Rules};
pub use json_format::to_json;

use super::Menu;
use fields::Checker;

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

pub(super) const CATEGORY_FIELDS: [&str; 3] = ["category_key", "category_en", "category_ar"];
pub(super) const ITEM_FIELDS: [&str; 11] = [
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
pub(super) const REQUIRED_ITEM_FIELDS: [&str; 4] = ["sku", "name_en", "name_ar", "price"];
pub(super) const MAX_KEY_CHARS: usize = 64;
pub(super) const MAX_NAME_CHARS: usize = 100;
pub(super) const MAX_DESCRIPTION_CHARS: usize = 500;
pub(super) const MAX_URL_CHARS: usize = 500;
pub(super) const MAX_PRICE_MINOR: i64 = 10_000_000_000;

/// Reads a menu file; all of its problems or none.
pub fn parse(file: &str, text: &str, format: Format, rules: &Rules<'_>) -> Result<Menu, Problems> {
    let mut checker = Checker {
        rules,
        problems: Vec::new(),
    };
    let menu = match format {
        Format::Csv => csv_format::parse(text, &mut checker),
        Format::Json => json_format::parse(text, &mut checker),
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

/// Writes the menu in a format.
pub fn write(menu: &Menu, format: Format) -> String {
    match format {
        Format::Csv => to_csv(menu),
        Format::Json => to_json(menu),
    }
}
