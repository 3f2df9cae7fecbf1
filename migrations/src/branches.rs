//! Branches as operators manage them (`waiterctl branch …`): named by a
//! short code unique per restaurant, with what they offer and their
//! opening hours. A removed branch is deactivated, never deleted: orders
//! keep pointing at it.

use sqlx::{types::Json, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use waiter_hours::Schedule;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Branch {
    pub id: Uuid,
    pub restaurant_id: Uuid,
    pub code: String,
    pub name_en: String,
    pub name_ar: String,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub delivery_radius_km: f64,
    pub staff_whatsapp: Option<String>,
    pub offers_pickup: bool,
    pub offers_delivery: bool,
    pub active: bool,
    pub position: i32,
    pub schedule: Json<Schedule>,
}

/// A branch to add.
#[derive(Debug, Clone)]
pub struct NewBranch {
    pub code: String,
    pub name_en: String,
    pub name_ar: String,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub delivery_radius_km: f64,
    pub staff_whatsapp: Option<String>,
    pub offers_pickup: bool,
    pub offers_delivery: bool,
    pub schedule: Schedule,
}

/// The settings an update changes (`Some(None)` clears an optional one).
#[derive(Debug, Clone, Default)]
pub struct BranchPatch {
    pub name_en: Option<String>,
    pub name_ar: Option<String>,
    pub address: Option<Option<String>>,
    pub latitude: Option<Option<f64>>,
    pub longitude: Option<Option<f64>>,
    pub delivery_radius_km: Option<f64>,
    pub staff_whatsapp: Option<Option<String>>,
    pub offers_pickup: Option<bool>,
    pub offers_delivery: Option<bool>,
    pub active: Option<bool>,
    pub position: Option<i32>,
    pub schedule: Option<Schedule>,
}

#[derive(Debug, thiserror::Error)]
pub enum BranchError {
    #[error("the restaurant has a branch with code {0:?} already")]
    CodeTaken(String),
    #[error("the restaurant has no branch with code {0:?}")]
    NotFound(String),
    #[error("a branch must offer pickup, delivery or both")]
    OffersNothing,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

fn branch_error(e: sqlx::Error, code: &str) -> BranchError {
    match e.as_database_error().and_then(|d| d.constraint()) {
        Some("branches_code") => BranchError::CodeTaken(code.to_string()),
        Some("branches_offer_something") => BranchError::OffersNothing,
        _ => BranchError::Db(e),
    }
}

const COLUMNS: &str = "id, restaurant_id, code, name_en, name_ar, address, latitude, longitude, \
    delivery_radius_km, staff_whatsapp, offers_pickup, offers_delivery, active, position, schedule";

/// The restaurant's branches in display order (inactive ones too if asked).
pub async fn list(
    pool: &PgPool,
    restaurant_id: Uuid,
    with_inactive: bool,
) -> Result<Vec<Branch>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM branches WHERE restaurant_id = $1 AND (active OR $2) \
         ORDER BY position, code"
    ))
    .bind(restaurant_id)
    .bind(with_inactive)
    .fetch_all(pool)
    .await
}

pub async fn by_code(
    pool: &PgPool,
    restaurant_id: Uuid,
    code: &str,
) -> Result<Option<Branch>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM branches WHERE restaurant_id = $1 AND code = $2"
    ))
    .bind(restaurant_id)
    .bind(code)
    .fetch_optional(pool)
    .await
}

pub async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<Branch>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM branches WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

const INSERT: &str = "INSERT INTO branches (id, restaurant_id, code, name_en, name_ar, address, \
        latitude, longitude, delivery_radius_km, staff_whatsapp, offers_pickup, offers_delivery, \
        schedule, position) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
        (SELECT coalesce(max(position) + 1, 0) FROM branches WHERE restaurant_id = $2))";

async fn insert(
    pool: &PgPool,
    restaurant_id: Uuid,
    b: &NewBranch,
    on_conflict: &str,
) -> Result<Uuid, BranchError> {
    let (id,): (Uuid,) = sqlx::query_as(&format!("{INSERT} {on_conflict} RETURNING id"))
        .bind(Uuid::new_v4())
        .bind(restaurant_id)
        .bind(&b.code)
        .bind(&b.name_en)
        .bind(&b.name_ar)
        .bind(&b.address)
        .bind(b.latitude)
        .bind(b.longitude)
        .bind(b.delivery_radius_km)
        .bind(&b.staff_whatsapp)
        .bind(b.offers_pickup)
        .bind(b.offers_delivery)
        .bind(Json(&b.schedule))
        .fetch_one(pool)
        .await
        .map_err(|e| branch_error(e, &b.code))?;
    Ok(id)
}

/// Adds a branch at the end of the list; its code must be new.
pub async fn add(pool: &PgPool, restaurant_id: Uuid, b: &NewBranch) -> Result<Uuid, BranchError> {
    insert(pool, restaurant_id, b, "").await
}

/// Adds a branch or rewrites the one with the same code (the demo seed).
pub async fn upsert(
    pool: &PgPool,
    restaurant_id: Uuid,
    b: &NewBranch,
) -> Result<Uuid, BranchError> {
    insert(
        pool,
        restaurant_id,
        b,
        "ON CONFLICT (restaurant_id, code) DO UPDATE SET name_en = EXCLUDED.name_en, \
            name_ar = EXCLUDED.name_ar, address = EXCLUDED.address, latitude = EXCLUDED.latitude, \
            longitude = EXCLUDED.longitude, delivery_radius_km = EXCLUDED.delivery_radius_km, \
            staff_whatsapp = EXCLUDED.staff_whatsapp, offers_pickup = EXCLUDED.offers_pickup, \
            offers_delivery = EXCLUDED.offers_delivery, schedule = EXCLUDED.schedule, active = true",
    )
    .await
}

/// Changes only the given settings; returns the changed columns.
pub async fn update(
    pool: &PgPool,
    restaurant_id: Uuid,
    code: &str,
    p: &BranchPatch,
) -> Result<Vec<&'static str>, BranchError> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new("UPDATE branches SET code = code");
    let mut changed: Vec<&'static str> = Vec::new();
    set_given!(q, changed, "name_en", &p.name_en);
    set_given!(q, changed, "name_ar", &p.name_ar);
    set_given!(q, changed, "address", &p.address);
    set_given!(q, changed, "latitude", p.latitude);
    set_given!(q, changed, "longitude", p.longitude);
    set_given!(q, changed, "delivery_radius_km", p.delivery_radius_km);
    set_given!(q, changed, "staff_whatsapp", &p.staff_whatsapp);
    set_given!(q, changed, "offers_pickup", p.offers_pickup);
    set_given!(q, changed, "offers_delivery", p.offers_delivery);
    set_given!(q, changed, "active", p.active);
    set_given!(q, changed, "position", p.position);
    set_given!(q, changed, "schedule", p.schedule.as_ref().map(Json));
    q.push(" WHERE restaurant_id = ")
        .push_bind(restaurant_id)
        .push(" AND code = ")
        .push_bind(code);
    let done = q
        .build()
        .execute(pool)
        .await
        .map_err(|e| branch_error(e, code))?;
    if done.rows_affected() == 0 {
        return Err(BranchError::NotFound(code.to_string()));
    }
    Ok(changed)
}
