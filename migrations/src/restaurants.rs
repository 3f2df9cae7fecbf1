use std::fmt;

use sqlx::PgPool;
use uuid::Uuid;

/// A restaurant (tenant) as stored.
#[derive(Clone, sqlx::FromRow)]
pub struct Restaurant {
    pub id: Uuid,
    pub slug: String,
    pub name_en: String,
    pub name_ar: String,
    pub whatsapp_number: String,
    pub twilio_account_sid: String,
    pub twilio_auth_token: String,
    pub messaging_service_sid: Option<String>,
    pub default_language: String,
    pub currency: String,
    pub restaurant_rate_per_minute: i32,
    pub customer_rate_per_minute: i32,
    pub outbound_rate_per_second: i32,
    pub promo_links: Vec<String>,
    pub support_contact: Option<String>,
    pub payment_link_base: Option<String>,
    pub delivery_fee: i64,
    pub min_delivery_order: i64,
    pub staff_whatsapp: Option<String>,
    pub content_templates: serde_json::Value,
    pub bot_idle_resume_minutes: i32,
    pub rating_reask_minutes: i32,
}

impl fmt::Debug for Restaurant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Restaurant")
            .field("id", &self.id)
            .field("slug", &self.slug)
            .field("whatsapp_number", &self.whatsapp_number)
            .field("twilio_account_sid", &self.twilio_account_sid)
            .field("twilio_auth_token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl Restaurant {
    pub fn name(&self, language: &str) -> &str {
        if language == "ar" {
            &self.name_ar
        } else {
            &self.name_en
        }
    }

    /// The ContentSid configured for a named message, if any.
    pub fn content_template(&self, name: &str) -> Option<&str> {
        self.content_templates.get(name).and_then(|v| v.as_str())
    }
}

const COLUMNS: &str = "id, slug, name_en, name_ar, whatsapp_number, twilio_account_sid, \
    twilio_auth_token, messaging_service_sid, default_language, currency, \
    restaurant_rate_per_minute, customer_rate_per_minute, outbound_rate_per_second, \
    promo_links, support_contact, payment_link_base, delivery_fee, min_delivery_order, \
    staff_whatsapp, content_templates, bot_idle_resume_minutes, rating_reask_minutes";

pub async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<Restaurant>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM restaurants WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The restaurant whose WhatsApp sender is `number` (`whatsapp:+E164`).
pub async fn by_number(pool: &PgPool, number: &str) -> Result<Option<Restaurant>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM restaurants WHERE whatsapp_number = $1"
    ))
    .bind(number)
    .fetch_optional(pool)
    .await
}

pub async fn by_slug(pool: &PgPool, slug: &str) -> Result<Option<Restaurant>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM restaurants WHERE slug = $1"
    ))
    .bind(slug)
    .fetch_optional(pool)
    .await
}

pub async fn all(pool: &PgPool) -> Result<Vec<Restaurant>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM restaurants ORDER BY slug"))
        .fetch_all(pool)
        .await
}

/// Every Twilio account and its auth token, for the tenant directory.
pub async fn accounts(pool: &PgPool) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT ON (twilio_account_sid) twilio_account_sid, twilio_auth_token \
         FROM restaurants ORDER BY twilio_account_sid, updated_at DESC",
    )
    .fetch_all(pool)
    .await
}

/// What an operator gives to add or update a restaurant.
#[derive(Clone)]
pub struct NewRestaurant {
    pub slug: String,
    pub name_en: String,
    pub name_ar: String,
    pub whatsapp_number: String,
    pub twilio_account_sid: String,
    pub twilio_auth_token: String,
    pub messaging_service_sid: Option<String>,
    pub default_language: String,
    pub currency: String,
    pub restaurant_rate_per_minute: i32,
    pub customer_rate_per_minute: i32,
    pub promo_links: Vec<String>,
    pub support_contact: Option<String>,
    pub payment_link_base: Option<String>,
    pub delivery_fee: i64,
    pub min_delivery_order: i64,
}

impl NewRestaurant {
    /// A restaurant with sensible defaults for everything but its identity.
    pub fn new(slug: &str, whatsapp_number: &str, account_sid: &str, auth_token: &str) -> Self {
        Self {
            slug: slug.to_string(),
            name_en: slug.to_string(),
            name_ar: slug.to_string(),
            whatsapp_number: whatsapp_number.to_string(),
            twilio_account_sid: account_sid.to_string(),
            twilio_auth_token: auth_token.to_string(),
            messaging_service_sid: None,
            default_language: "en".into(),
            currency: "SAR".into(),
            restaurant_rate_per_minute: 600,
            customer_rate_per_minute: 20,
            promo_links: vec![],
            support_contact: None,
            payment_link_base: None,
            delivery_fee: 0,
            min_delivery_order: 0,
        }
    }
}

/// Adds a restaurant, or updates the one with the same slug. Returns its id.
pub async fn upsert(pool: &PgPool, r: &NewRestaurant) -> Result<Uuid, sqlx::Error> {
    let (id,): (Uuid,) = sqlx::query_as(
        "INSERT INTO restaurants (id, slug, name_en, name_ar, whatsapp_number, twilio_account_sid, \
            twilio_auth_token, messaging_service_sid, default_language, currency, \
            restaurant_rate_per_minute, customer_rate_per_minute, promo_links, support_contact, \
            payment_link_base, delivery_fee, min_delivery_order) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         ON CONFLICT (slug) DO UPDATE SET name_en = EXCLUDED.name_en, name_ar = EXCLUDED.name_ar, \
            whatsapp_number = EXCLUDED.whatsapp_number, \
            twilio_account_sid = EXCLUDED.twilio_account_sid, \
            twilio_auth_token = EXCLUDED.twilio_auth_token, \
            messaging_service_sid = EXCLUDED.messaging_service_sid, \
            default_language = EXCLUDED.default_language, currency = EXCLUDED.currency, \
            restaurant_rate_per_minute = EXCLUDED.restaurant_rate_per_minute, \
            customer_rate_per_minute = EXCLUDED.customer_rate_per_minute, \
            promo_links = EXCLUDED.promo_links, support_contact = EXCLUDED.support_contact, \
            payment_link_base = EXCLUDED.payment_link_base, delivery_fee = EXCLUDED.delivery_fee, \
            min_delivery_order = EXCLUDED.min_delivery_order, updated_at = now() \
         RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(&r.slug)
    .bind(&r.name_en)
    .bind(&r.name_ar)
    .bind(&r.whatsapp_number)
    .bind(&r.twilio_account_sid)
    .bind(&r.twilio_auth_token)
    .bind(&r.messaging_service_sid)
    .bind(&r.default_language)
    .bind(&r.currency)
    .bind(r.restaurant_rate_per_minute)
    .bind(r.customer_rate_per_minute)
    .bind(&r.promo_links)
    .bind(&r.support_contact)
    .bind(&r.payment_link_base)
    .bind(r.delivery_fee)
    .bind(r.min_delivery_order)
    .fetch_one(pool)
    .await?;
    Ok(id)
}
