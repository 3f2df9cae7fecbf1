//! `waiterctl menu import|export`: the documented CSV and JSON menu files
//! (`docs/menu-format.md`).

use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use waiter_migrations::menu::{self, file, Format, ImportError};

use crate::{connect, output::Out};

#[derive(Subcommand)]
pub enum MenuCommand {
    /// Import a menu file (CSV or JSON, by extension): all of it or, if any
    /// row is invalid, nothing. Items keep their SKU; items missing from
    /// the file are marked unavailable, never deleted.
    Import {
        #[arg(long)]
        restaurant: String,
        file: String,
        /// Check the file against the restaurant and change nothing.
        #[arg(long)]
        check: bool,
    },
    /// Write the restaurant's menu to standard output, in the import format.
    Export {
        #[arg(long)]
        restaurant: String,
        #[arg(long, value_parser = ["csv", "json"], default_value = "csv")]
        format: String,
    },
}

pub async fn run(cmd: MenuCommand, out: Out) -> anyhow::Result<()> {
    let pool = connect::pool().await?;
    match cmd {
        MenuCommand::Import {
            restaurant,
            file: path,
            check,
        } => {
            let format = Format::of_path(&path)
                .with_context(|| format!("{path}: the file name must end in .csv or .json"))?;
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
            let r = connect::restaurant(&pool, &restaurant).await?;
            if check {
                let codes: Vec<String> = waiter_migrations::branches::list(&pool, r.id, true)
                    .await?
                    .into_iter()
                    .map(|b| b.code)
                    .collect();
                let m = file::parse(
                    &path,
                    &text,
                    format,
                    &file::Rules {
                        branch_codes: &codes,
                    },
                )?;
                out.done(
                    &format!("{path}: valid, {} categories, {} items (nothing changed)", m.categories.len(), m.item_count()),
                    &serde_json::json!({ "valid": true, "categories": m.categories.len(), "items": m.item_count() }),
                );
                return Ok(());
            }
            let started = Instant::now();
            let report = match menu::import(&pool, r.id, &path, &text, format).await {
                Ok(report) => report,
                Err(ImportError::Invalid(problems)) => {
                    let count = problems.problems.len();
                    anyhow::bail!("{problems}\n{path}: {count} problem(s); nothing was imported");
                }
                Err(e) => return Err(e.into()),
            };
            let elapsed = started.elapsed();
            let rows = vec![
                vec![
                    "categories".into(),
                    report.categories_created.to_string(),
                    report.categories_updated.to_string(),
                    "—".into(),
                    "—".into(),
                ],
                vec![
                    "items".into(),
                    report.items_created.to_string(),
                    report.items_updated.to_string(),
                    report.items_unchanged.to_string(),
                    report.items_retired.to_string(),
                ],
            ];
            if !out.json {
                println!(
                    "imported {path} into {} in {} ms{}",
                    r.slug,
                    elapsed.as_millis(),
                    if report.changed_nothing() {
                        " — nothing changed"
                    } else {
                        ""
                    }
                );
            }
            out.table(
                &["", "created", "updated", "unchanged", "marked unavailable"],
                rows,
                &serde_json::json!({
                    "restaurant": r.slug,
                    "categories_created": report.categories_created,
                    "categories_updated": report.categories_updated,
                    "items_created": report.items_created,
                    "items_updated": report.items_updated,
                    "items_unchanged": report.items_unchanged,
                    "items_marked_unavailable": report.items_retired,
                    "elapsed_ms": elapsed.as_millis() as u64,
                }),
            );
        }
        MenuCommand::Export { restaurant, format } => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            let m = menu::export(&pool, r.id).await?;
            let format = Format::parse(&format).context("--format must be csv or json")?;
            print!("{}", file::write(&m, format));
        }
    }
    Ok(())
}
