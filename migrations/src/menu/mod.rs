//! Menus as operators keep them: one file (CSV or JSON, see
//! `docs/menu-format.md`) read whole, checked whole, and written in one
//! transaction ([`import`]), or written back from the database in the same
//! format ([`export`]).
//!
//! - [`file`]: the two formats, pure: text ⇄ [`Menu`], every problem with
//!   its file, line, field and rule.
//! - [`store`]: the import (batched `UNNEST` statements, items keyed by
//!   SKU, missing items marked unavailable) and the export.

pub mod file;
pub mod store;

pub use file::{Format, Problem, Problems};
pub use store::{export, import, ImportError, ImportReport};

/// A whole menu: categories in display order, each with its items.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Menu {
    pub categories: Vec<Category>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// Stable key (`grills`): renaming a category keeps its key.
    pub key: String,
    pub name_en: String,
    pub name_ar: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Stable key of the item: a re-import updates the item with this SKU.
    pub sku: String,
    pub name_en: String,
    pub name_ar: String,
    pub description_en: String,
    pub description_ar: String,
    /// Minor units (halalas).
    pub price: i64,
    pub discount_percent: i32,
    pub available: bool,
    /// Codes of the branches where the item is not sold.
    pub unavailable_at: Vec<String>,
    pub image_url: Option<String>,
    pub sort_order: i32,
}

impl Menu {
    pub fn item_count(&self) -> usize {
        self.categories.iter().map(|c| c.items.len()).sum()
    }
}

/// Digits after the decimal point of prices in menu files. Amounts are
/// stored in minor units and the bot shows them with two decimals.
pub const PRICE_DECIMALS: u32 = 2;
