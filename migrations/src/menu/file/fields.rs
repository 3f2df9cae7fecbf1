//! The rules of every field, the same in both formats, and amounts.

use std::collections::HashMap;

use super::{
    Problem, MAX_DESCRIPTION_CHARS, MAX_KEY_CHARS, MAX_NAME_CHARS, MAX_PRICE_MINOR, MAX_URL_CHARS,
};
use crate::menu::{Item, PRICE_DECIMALS};

/// What a file is checked against besides itself.
pub struct Rules<'a> {
    /// The restaurant's branch codes (for `unavailable_at`).
    pub branch_codes: &'a [String],
}

/// One item as read: its line and its fields as text.
pub(super) struct Record {
    pub(super) line: usize,
    pub(super) fields: HashMap<String, String>,
}

pub(super) struct Checker<'a> {
    pub(super) rules: &'a Rules<'a>,
    pub(super) problems: Vec<Problem>,
}

impl Checker<'_> {
    pub(super) fn problem(
        &mut self,
        line: Option<usize>,
        field: Option<&str>,
        rule: impl Into<String>,
    ) {
        self.problems.push(Problem {
            line,
            field: field.map(str::to_string),
            rule: rule.into(),
        });
    }

    pub(super) fn text(&mut self, r: &Record, field: &str, required: bool, max: usize) -> String {
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

    pub(super) fn key(&mut self, r: &Record, field: &str) -> String {
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

    pub(super) fn item(&mut self, r: &Record, position: usize) -> Item {
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
