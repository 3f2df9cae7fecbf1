//! A checked [`Menu`] into the database in one transaction, and back out.
//!
//! Import: categories and items are upserted with one `UNNEST` statement
//! each (a 500-item menu is a handful of round trips), keyed by category
//! key and item SKU, and rows are only written where something changed —
//! so importing the same file twice changes nothing. Items of the
//! restaurant that the file no longer lists are marked unavailable, never
//! deleted: placed orders and carts keep pointing at them.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use super::{
    file::{self, Format, Problems, Rules},
    Category, Item, Menu,
};

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportReport {
    pub categories_created: u64,
    pub categories_updated: u64,
    pub items_created: u64,
    pub items_updated: u64,
    pub items_unchanged: u64,
    /// Items no longer in the file, now marked unavailable.
    pub items_retired: u64,
}

impl ImportReport {
    pub fn changed_nothing(&self) -> bool {
        self.categories_created
            + self.categories_updated
            + self.items_created
            + self.items_updated
            + self.items_retired
            == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Invalid(#[from] Problems),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// The restaurant's branch codes and ids (inactive branches too).
async fn branch_codes(
    pool: &PgPool,
    restaurant_id: Uuid,
) -> Result<Vec<(String, Uuid)>, sqlx::Error> {
    sqlx::query_as("SELECT code, id FROM branches WHERE restaurant_id = $1 ORDER BY position, code")
        .bind(restaurant_id)
        .fetch_all(pool)
        .await
}

/// Checks a menu file against the restaurant and imports it whole, or
/// changes nothing and returns every problem.
pub async fn import(
    pool: &PgPool,
    restaurant_id: Uuid,
    file_name: &str,
    text: &str,
    format: Format,
) -> Result<ImportReport, ImportError> {
    let branches = branch_codes(pool, restaurant_id).await?;
    let codes: Vec<String> = branches.iter().map(|(c, _)| c.clone()).collect();
    let menu = file::parse(
        file_name,
        text,
        format,
        &Rules {
            branch_codes: &codes,
        },
    )?;
    let ids: HashMap<&str, Uuid> = branches.iter().map(|(c, id)| (c.as_str(), *id)).collect();
    Ok(write(pool, restaurant_id, &menu, &ids).await?)
}

async fn write(
    pool: &PgPool,
    restaurant_id: Uuid,
    menu: &Menu,
    branch_ids: &HashMap<&str, Uuid>,
) -> Result<ImportReport, sqlx::Error> {
    let mut report = ImportReport::default();
    let mut tx = pool.begin().await?;
    // One import at a time per restaurant.
    sqlx::query("SELECT id FROM restaurants WHERE id = $1 FOR UPDATE")
        .bind(restaurant_id)
        .execute(&mut *tx)
        .await?;

    let positions: Vec<i32> = (0..menu.categories.len() as i32).collect();
    let column = |f: fn(&Category) -> &String| -> Vec<String> {
        menu.categories.iter().map(|c| f(c).clone()).collect()
    };
    let new_ids: Vec<Uuid> = menu.categories.iter().map(|_| Uuid::new_v4()).collect();
    let written: Vec<(bool,)> = sqlx::query_as(
        "INSERT INTO menu_categories (id, restaurant_id, key, name_en, name_ar, position) \
         SELECT id, $1, key, name_en, name_ar, position \
         FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[]) \
            AS c (id, key, name_en, name_ar, position) \
         ON CONFLICT (restaurant_id, key) DO UPDATE SET name_en = EXCLUDED.name_en, \
            name_ar = EXCLUDED.name_ar, position = EXCLUDED.position \
         WHERE (menu_categories.name_en, menu_categories.name_ar, menu_categories.position) \
            IS DISTINCT FROM (EXCLUDED.name_en, EXCLUDED.name_ar, EXCLUDED.position) \
         RETURNING (xmax = 0)",
    )
    .bind(restaurant_id)
    .bind(&new_ids)
    .bind(column(|c| &c.key))
    .bind(column(|c| &c.name_en))
    .bind(column(|c| &c.name_ar))
    .bind(&positions)
    .fetch_all(&mut *tx)
    .await?;
    report.categories_created = written.iter().filter(|(inserted,)| *inserted).count() as u64;
    report.categories_updated = written.len() as u64 - report.categories_created;

    let category_ids: HashMap<String, Uuid> = sqlx::query_as::<_, (String, Uuid)>(
        "SELECT key, id FROM menu_categories WHERE restaurant_id = $1",
    )
    .bind(restaurant_id)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();

    let items: Vec<(&Category, &Item)> = menu
        .categories
        .iter()
        .flat_map(|c| c.items.iter().map(move |i| (c, i)))
        .collect();
    let text = |f: fn(&Item) -> &str| -> Vec<String> {
        items.iter().map(|(_, i)| f(i).to_string()).collect()
    };
    let skus = text(|i| &i.sku);
    // Arrays of arrays must be rectangular in PostgreSQL: unavailable
    // branches travel as one comma-separated text per item.
    let unavailable: Vec<String> = items
        .iter()
        .map(|(_, i)| {
            i.unavailable_at
                .iter()
                .filter_map(|code| branch_ids.get(code.as_str()))
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let written: Vec<(bool,)> = sqlx::query_as(
        "INSERT INTO menu_items (id, restaurant_id, category_id, sku, name_en, name_ar, \
            description_en, description_ar, price, discount_percent, available, \
            unavailable_branches, image_url, position) \
         SELECT id, $1, category_id, sku, name_en, name_ar, description_en, description_ar, price, \
            discount, available, \
            CASE WHEN unavailable = '' THEN '{}'::uuid[] ELSE string_to_array(unavailable, ',')::uuid[] END, \
            nullif(image_url, ''), position \
         FROM UNNEST($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], \
            $8::text[], $9::bigint[], $10::int[], $11::bool[], $12::text[], $13::text[], $14::int[]) \
            AS i (id, category_id, sku, name_en, name_ar, description_en, description_ar, price, \
                discount, available, unavailable, image_url, position) \
         ON CONFLICT (restaurant_id, sku) DO UPDATE SET category_id = EXCLUDED.category_id, \
            name_en = EXCLUDED.name_en, name_ar = EXCLUDED.name_ar, \
            description_en = EXCLUDED.description_en, description_ar = EXCLUDED.description_ar, \
            price = EXCLUDED.price, discount_percent = EXCLUDED.discount_percent, \
            available = EXCLUDED.available, unavailable_branches = EXCLUDED.unavailable_branches, \
            image_url = EXCLUDED.image_url, position = EXCLUDED.position \
         WHERE (menu_items.category_id, menu_items.name_en, menu_items.name_ar, \
                menu_items.description_en, menu_items.description_ar, menu_items.price, \
                menu_items.discount_percent, menu_items.available, menu_items.unavailable_branches, \
                menu_items.image_url, menu_items.position) \
            IS DISTINCT FROM (EXCLUDED.category_id, EXCLUDED.name_en, EXCLUDED.name_ar, \
                EXCLUDED.description_en, EXCLUDED.description_ar, EXCLUDED.price, \
                EXCLUDED.discount_percent, EXCLUDED.available, EXCLUDED.unavailable_branches, \
                EXCLUDED.image_url, EXCLUDED.position) \
         RETURNING (xmax = 0)",
    )
    .bind(restaurant_id)
    .bind(items.iter().map(|_| Uuid::new_v4()).collect::<Vec<_>>())
    .bind(items.iter().map(|(c, _)| category_ids[&c.key]).collect::<Vec<_>>())
    .bind(&skus)
    .bind(text(|i| &i.name_en))
    .bind(text(|i| &i.name_ar))
    .bind(text(|i| &i.description_en))
    .bind(text(|i| &i.description_ar))
    .bind(items.iter().map(|(_, i)| i.price).collect::<Vec<_>>())
    .bind(items.iter().map(|(_, i)| i.discount_percent).collect::<Vec<_>>())
    .bind(items.iter().map(|(_, i)| i.available).collect::<Vec<_>>())
    .bind(&unavailable)
    .bind(text(|i| i.image_url.as_deref().unwrap_or("")))
    .bind(items.iter().map(|(_, i)| i.sort_order).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    report.items_created = written.iter().filter(|(inserted,)| *inserted).count() as u64;
    report.items_updated = written.len() as u64 - report.items_created;
    report.items_unchanged = items.len() as u64 - written.len() as u64;

    report.items_retired = sqlx::query(
        "UPDATE menu_items SET available = false \
         WHERE restaurant_id = $1 AND available AND NOT (sku = ANY($2))",
    )
    .bind(restaurant_id)
    .bind(&skus)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(report)
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    category_key: String,
    sku: String,
    name_en: String,
    name_ar: String,
    description_en: String,
    description_ar: String,
    price: i64,
    discount_percent: i32,
    available: bool,
    unavailable_branches: Vec<Uuid>,
    image_url: Option<String>,
    position: i32,
}

/// The restaurant's menu as it is stored (every item, available or not),
/// ready to be written as a file that imports back to the same state.
pub async fn export(pool: &PgPool, restaurant_id: Uuid) -> Result<Menu, sqlx::Error> {
    let codes: HashMap<Uuid, String> = branch_codes(pool, restaurant_id)
        .await?
        .into_iter()
        .map(|(code, id)| (id, code))
        .collect();
    let categories: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT key, name_en, name_ar FROM menu_categories WHERE restaurant_id = $1 \
         ORDER BY position, key",
    )
    .bind(restaurant_id)
    .fetch_all(pool)
    .await?;
    let items: Vec<ItemRow> = sqlx::query_as(
        "SELECT c.key AS category_key, i.sku, i.name_en, i.name_ar, i.description_en, \
            i.description_ar, i.price, i.discount_percent, i.available, i.unavailable_branches, \
            i.image_url, i.position \
         FROM menu_items i JOIN menu_categories c ON c.id = i.category_id \
         WHERE i.restaurant_id = $1 ORDER BY i.position, i.sku",
    )
    .bind(restaurant_id)
    .fetch_all(pool)
    .await?;
    let mut menu = Menu {
        categories: categories
            .into_iter()
            .map(|(key, name_en, name_ar)| Category {
                key,
                name_en,
                name_ar,
                items: vec![],
            })
            .collect(),
    };
    for row in items {
        let Some(category) = menu
            .categories
            .iter_mut()
            .find(|c| c.key == row.category_key)
        else {
            continue;
        };
        category.items.push(Item {
            sku: row.sku,
            name_en: row.name_en,
            name_ar: row.name_ar,
            description_en: row.description_en,
            description_ar: row.description_ar,
            price: row.price,
            discount_percent: row.discount_percent,
            available: row.available,
            unavailable_at: row
                .unavailable_branches
                .iter()
                .filter_map(|id| codes.get(id).cloned())
                .collect(),
            image_url: row.image_url,
            sort_order: row.position,
        });
    }
    menu.categories.retain(|c| !c.items.is_empty());
    Ok(menu)
}
