//! How commands print: tables a person reads at a glance, or JSON with
//! `--json`.

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use serde::Serialize;

/// `--json` or not, for the whole run.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Prints rows as a table, or `value` as JSON.
    pub fn table<T: Serialize>(&self, headers: &[&str], rows: Vec<Vec<String>>, value: &T) {
        if self.json {
            return self.json(value);
        }
        if rows.is_empty() {
            println!("(none)");
            return;
        }
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(headers.to_vec());
        for row in rows {
            table.add_row(row);
        }
        println!("{table}");
    }

    /// Prints `setting: value` lines as a two-column table, or `value` as JSON.
    pub fn settings<T: Serialize>(&self, pairs: Vec<(&str, String)>, value: &T) {
        let rows = pairs
            .into_iter()
            .map(|(k, v)| vec![k.to_string(), v])
            .collect();
        self.table(&["setting", "value"], rows, value);
    }

    pub fn json<T: Serialize>(&self, value: &T) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("JSON of command output")
        );
    }

    /// A one-line result: the text, or `value` as JSON.
    pub fn done<T: Serialize>(&self, text: &str, value: &T) {
        if self.json {
            self.json(value);
        } else {
            println!("{text}");
        }
    }
}

/// An optional value as a cell.
pub fn or_dash(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.trim().is_empty() => v.to_string(),
        _ => "—".to_string(),
    }
}

/// Progress of long work on standard error (never mixed into the output).
pub fn progress(done: usize, total: usize, what: &str) {
    eprint!("\r{what}: {done}/{total}");
    if done == total {
        eprintln!();
    }
}
