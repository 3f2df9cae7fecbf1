use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use waiter_secrets::{twilio_token_context, Keyring, OpenError, Sealed};

/// A restaurant (tenant) as stored. Its Twilio auth token is only ever
/// held sealed ([`Restaurant::auth_token`]); open it with the keyring.
#[derive(Clone, sqlx::FromRow)]
pub struct Restaurant {
    pub id: Uuid,
    pub slug: String,
    pub name_en: String,
    pub name_ar: String,
    pub whatsapp_number: String,
    pub twilio_account_sid: String,
    twilio_auth_token_key_id: Option<String>,
    twilio_auth_token_sealed: Option<Vec<u8>>,
    /// A token of an older deployment not sealed yet (`waiterctl migrate` seals it).
    pub plaintext_token_left: bool,
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
    pub bot_idle_resume_minutes: i32,
    pub rating_reask_minutes: i32,
    pub time_zone: String,
    pub disabled_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Restaurant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Restaurant")
            .field("id", &self.id)
            .field("slug", &self.slug)
            .field("whatsapp_number", &self.whatsapp_number)
            .field("twilio_account_sid", &self.twilio_account_sid)
            .field("twilio_auth_token_key_id", &self.twilio_auth_token_key_id)
            .finish_non_exhaustive()
    }
}

/// Why a restaurant's auth token cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("restaurant {0} has no sealed auth token (run `waiterctl migrate` with WAITER_SECRET_KEY set)")]
    NotSealed(String),
    #[error("restaurant {slug}'s auth token: {source}")]
    Open {
        slug: String,
        #[source]
        source: OpenError,
    },
}

impl Restaurant {
    pub fn name(&self, language: &str) -> &str {
        if language == "ar" {
            &self.name_ar
        } else {
            &self.name_en
        }
    }

    /// The sealed auth token, if the row has one.
    pub fn auth_token(&self) -> Option<Sealed> {
        match (
            &self.twilio_auth_token_key_id,
            &self.twilio_auth_token_sealed,
        ) {
            (Some(key_id), Some(ciphertext)) => Some(Sealed {
                key_id: key_id.clone(),
                ciphertext: ciphertext.clone(),
            }),
            _ => None,
        }
    }

    /// The id of the key the auth token is sealed with.
    pub fn auth_token_key_id(&self) -> Option<&str> {
        self.twilio_auth_token_key_id.as_deref()
    }

    /// The auth token, opened in memory.
    pub fn open_auth_token(&self, keys: &Keyring) -> Result<SecretString, TokenError> {
        let sealed = self
            .auth_token()
            .ok_or_else(|| TokenError::NotSealed(self.slug.clone()))?;
        keys.open(&sealed, &twilio_token_context(&self.twilio_account_sid))
            .map_err(|source| TokenError::Open {
                slug: self.slug.clone(),
                source,
            })
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }

    /// The restaurant's time zone (UTC if the stored name is not one).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::UTC)
    }
}

/// Seals an account's auth token under the keyring's primary key.
pub fn seal_auth_token(keys: &Keyring, account_sid: &str, token: &str) -> Sealed {
    keys.seal(token, &twilio_token_context(account_sid))
}

const COLUMNS: &str = "id, slug, name_en, name_ar, whatsapp_number, twilio_account_sid, \
    twilio_auth_token_key_id, twilio_auth_token_sealed, \
    twilio_auth_token_plaintext IS NOT NULL AS plaintext_token_left, \
    messaging_service_sid, default_language, currency, \
    restaurant_rate_per_minute, customer_rate_per_minute, outbound_rate_per_second, \
    promo_links, support_contact, payment_link_base, delivery_fee, min_delivery_order, \
    staff_whatsapp, bot_idle_resume_minutes, rating_reask_minutes, time_zone, disabled_at, \
    updated_at";

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

/// Every Twilio account and its sealed auth token, for the tenant directory
/// (the newest row wins where restaurants share an account).
pub async fn accounts(pool: &PgPool) -> Result<Vec<(String, Sealed)>, sqlx::Error> {
    let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT DISTINCT ON (twilio_account_sid) twilio_account_sid, twilio_auth_token_key_id, \
            twilio_auth_token_sealed \
         FROM restaurants WHERE twilio_auth_token_sealed IS NOT NULL \
         ORDER BY twilio_account_sid, updated_at DESC",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(sid, key_id, ciphertext)| (sid, Sealed { key_id, ciphertext }))
        .collect())
}

/// What an operator gives to add a restaurant.
#[derive(Clone)]
pub struct NewRestaurant {
    pub slug: String,
    pub name_en: String,
    pub name_ar: String,
    pub whatsapp_number: String,
    pub twilio_account_sid: String,
    pub twilio_auth_token: Sealed,
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
    pub bot_idle_resume_minutes: i32,
    pub rating_reask_minutes: i32,
    pub time_zone: String,
}

impl NewRestaurant {
    /// A restaurant with sensible defaults for everything but its identity;
    /// the auth token arrives sealed ([`seal_auth_token`]).
    pub fn new(slug: &str, whatsapp_number: &str, account_sid: &str, auth_token: Sealed) -> Self {
        Self {
            slug: slug.to_string(),
            name_en: slug.to_string(),
            name_ar: slug.to_string(),
            whatsapp_number: whatsapp_number.to_string(),
            twilio_account_sid: account_sid.to_string(),
            twilio_auth_token: auth_token,
            messaging_service_sid: None,
            default_language: "en".into(),
            currency: "SAR".into(),
            restaurant_rate_per_minute: 600,
            customer_rate_per_minute: 20,
            outbound_rate_per_second: 80,
            promo_links: vec![],
            support_contact: None,
            payment_link_base: None,
            delivery_fee: 0,
            min_delivery_order: 0,
            staff_whatsapp: None,
            bot_idle_resume_minutes: 60,
            rating_reask_minutes: 60,
            time_zone: "UTC".into(),
        }
    }
}

/// Why a restaurant could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("a restaurant with slug {0:?} exists already (use `restaurant update`)")]
    SlugTaken(String),
    #[error("the WhatsApp number {0} belongs to another restaurant")]
    NumberTaken(String),
    #[error("no restaurant with slug {0:?}")]
    NotFound(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

fn write_error(e: sqlx::Error, r_slug: &str, number: Option<&str>) -> WriteError {
    if let Some(db) = e.as_database_error() {
        match db.constraint() {
            Some("restaurants_slug_key") => return WriteError::SlugTaken(r_slug.to_string()),
            Some("restaurants_whatsapp_number_key") => {
                return WriteError::NumberTaken(number.unwrap_or("").to_string())
            }
            _ => {}
        }
    }
    WriteError::Db(e)
}

const INSERT: &str = "INSERT INTO restaurants (id, slug, name_en, name_ar, whatsapp_number, \
        twilio_account_sid, twilio_auth_token_key_id, twilio_auth_token_sealed, \
        messaging_service_sid, default_language, currency, restaurant_rate_per_minute, \
        customer_rate_per_minute, outbound_rate_per_second, promo_links, support_contact, \
        payment_link_base, delivery_fee, min_delivery_order, staff_whatsapp, \
        bot_idle_resume_minutes, rating_reask_minutes, time_zone) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
        $19, $20, $21, $22, $23)";

async fn insert(pool: &PgPool, r: &NewRestaurant, on_conflict: &str) -> Result<Uuid, WriteError> {
    let (id,): (Uuid,) = sqlx::query_as(&format!("{INSERT} {on_conflict} RETURNING id"))
        .bind(Uuid::new_v4())
        .bind(&r.slug)
        .bind(&r.name_en)
        .bind(&r.name_ar)
        .bind(&r.whatsapp_number)
        .bind(&r.twilio_account_sid)
        .bind(&r.twilio_auth_token.key_id)
        .bind(&r.twilio_auth_token.ciphertext)
        .bind(&r.messaging_service_sid)
        .bind(&r.default_language)
        .bind(&r.currency)
        .bind(r.restaurant_rate_per_minute)
        .bind(r.customer_rate_per_minute)
        .bind(r.outbound_rate_per_second)
        .bind(&r.promo_links)
        .bind(&r.support_contact)
        .bind(&r.payment_link_base)
        .bind(r.delivery_fee)
        .bind(r.min_delivery_order)
        .bind(&r.staff_whatsapp)
        .bind(r.bot_idle_resume_minutes)
        .bind(r.rating_reask_minutes)
        .bind(&r.time_zone)
        .fetch_one(pool)
        .await
        .map_err(|e| write_error(e, &r.slug, Some(&r.whatsapp_number)))?;
    Ok(id)
}

/// Adds a restaurant; its slug and number must be new.
pub async fn create(pool: &PgPool, r: &NewRestaurant) -> Result<Uuid, WriteError> {
    insert(pool, r, "").await
}

/// Adds a restaurant, or replaces every setting of the one with the same
/// slug (the demo seed and `tenant upsert`). Returns its id.
pub async fn upsert(pool: &PgPool, r: &NewRestaurant) -> Result<Uuid, WriteError> {
    insert(
        pool,
        r,
        "ON CONFLICT (slug) DO UPDATE SET name_en = EXCLUDED.name_en, name_ar = EXCLUDED.name_ar, \
            whatsapp_number = EXCLUDED.whatsapp_number, \
            twilio_account_sid = EXCLUDED.twilio_account_sid, \
            twilio_auth_token_key_id = EXCLUDED.twilio_auth_token_key_id, \
            twilio_auth_token_sealed = EXCLUDED.twilio_auth_token_sealed, \
            twilio_auth_token_plaintext = NULL, \
            messaging_service_sid = EXCLUDED.messaging_service_sid, \
            default_language = EXCLUDED.default_language, currency = EXCLUDED.currency, \
            restaurant_rate_per_minute = EXCLUDED.restaurant_rate_per_minute, \
            customer_rate_per_minute = EXCLUDED.customer_rate_per_minute, \
            outbound_rate_per_second = EXCLUDED.outbound_rate_per_second, \
            promo_links = EXCLUDED.promo_links, support_contact = EXCLUDED.support_contact, \
            payment_link_base = EXCLUDED.payment_link_base, delivery_fee = EXCLUDED.delivery_fee, \
            min_delivery_order = EXCLUDED.min_delivery_order, \
            staff_whatsapp = EXCLUDED.staff_whatsapp, \
            bot_idle_resume_minutes = EXCLUDED.bot_idle_resume_minutes, \
            rating_reask_minutes = EXCLUDED.rating_reask_minutes, \
            time_zone = EXCLUDED.time_zone, updated_at = now()",
    )
    .await
}

/// The settings an update changes; `None` leaves a setting as it is, and
/// `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct RestaurantPatch {
    pub name_en: Option<String>,
    pub name_ar: Option<String>,
    pub whatsapp_number: Option<String>,
    pub twilio_account_sid: Option<String>,
    pub twilio_auth_token: Option<Sealed>,
    pub messaging_service_sid: Option<Option<String>>,
    pub default_language: Option<String>,
    pub currency: Option<String>,
    pub restaurant_rate_per_minute: Option<i32>,
    pub customer_rate_per_minute: Option<i32>,
    pub outbound_rate_per_second: Option<i32>,
    pub promo_links: Option<Vec<String>>,
    pub support_contact: Option<Option<String>>,
    pub payment_link_base: Option<Option<String>>,
    pub delivery_fee: Option<i64>,
    pub min_delivery_order: Option<i64>,
    pub staff_whatsapp: Option<Option<String>>,
    pub bot_idle_resume_minutes: Option<i32>,
    pub rating_reask_minutes: Option<i32>,
    pub time_zone: Option<String>,
}

/// Changes only the given settings. Returns the names of the changed columns.
pub async fn update(
    pool: &PgPool,
    slug: &str,
    p: &RestaurantPatch,
) -> Result<Vec<&'static str>, WriteError> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new("UPDATE restaurants SET updated_at = now()");
    let mut changed: Vec<&'static str> = Vec::new();
    set_given!(q, changed, "name_en", &p.name_en);
    set_given!(q, changed, "name_ar", &p.name_ar);
    set_given!(q, changed, "whatsapp_number", &p.whatsapp_number);
    set_given!(q, changed, "twilio_account_sid", &p.twilio_account_sid);
    if let Some(token) = &p.twilio_auth_token {
        q.push(", twilio_auth_token_plaintext = NULL, twilio_auth_token_key_id = ")
            .push_bind(&token.key_id)
            .push(", twilio_auth_token_sealed = ")
            .push_bind(&token.ciphertext);
        changed.push("twilio_auth_token");
    }
    set_given!(
        q,
        changed,
        "messaging_service_sid",
        &p.messaging_service_sid
    );
    set_given!(q, changed, "default_language", &p.default_language);
    set_given!(q, changed, "currency", &p.currency);
    set_given!(
        q,
        changed,
        "restaurant_rate_per_minute",
        p.restaurant_rate_per_minute
    );
    set_given!(
        q,
        changed,
        "customer_rate_per_minute",
        p.customer_rate_per_minute
    );
    set_given!(
        q,
        changed,
        "outbound_rate_per_second",
        p.outbound_rate_per_second
    );
    set_given!(q, changed, "promo_links", &p.promo_links);
    set_given!(q, changed, "support_contact", &p.support_contact);
    set_given!(q, changed, "payment_link_base", &p.payment_link_base);
    set_given!(q, changed, "delivery_fee", p.delivery_fee);
    set_given!(q, changed, "min_delivery_order", p.min_delivery_order);
    set_given!(q, changed, "staff_whatsapp", &p.staff_whatsapp);
    set_given!(
        q,
        changed,
        "bot_idle_resume_minutes",
        p.bot_idle_resume_minutes
    );
    set_given!(q, changed, "rating_reask_minutes", p.rating_reask_minutes);
    set_given!(q, changed, "time_zone", &p.time_zone);
    q.push(" WHERE slug = ").push_bind(slug);
    let done = q
        .build()
        .execute(pool)
        .await
        .map_err(|e| write_error(e, slug, p.whatsapp_number.as_deref()))?;
    if done.rows_affected() == 0 {
        return Err(WriteError::NotFound(slug.to_string()));
    }
    Ok(changed)
}

/// Disables (or enables again) a restaurant. Returns whether it changed.
pub async fn set_disabled(pool: &PgPool, slug: &str, disabled: bool) -> Result<bool, WriteError> {
    let done = sqlx::query(
        "UPDATE restaurants SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) END, \
            updated_at = now() \
         WHERE slug = $1 AND (disabled_at IS NOT NULL) <> $2",
    )
    .bind(slug)
    .bind(disabled)
    .execute(pool)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(true);
    }
    match by_slug(pool, slug).await? {
        Some(_) => Ok(false),
        None => Err(WriteError::NotFound(slug.to_string())),
    }
}

/// How many auth tokens each key seals, and how many are still plain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenCensus {
    pub by_key: Vec<(String, i64)>,
    pub plaintext: i64,
}

pub async fn token_census(pool: &PgPool) -> Result<TokenCensus, sqlx::Error> {
    let by_key: Vec<(String, i64)> = sqlx::query_as(
        "SELECT twilio_auth_token_key_id, count(*) FROM restaurants \
         WHERE twilio_auth_token_key_id IS NOT NULL GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let (plaintext,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM restaurants WHERE twilio_auth_token_plaintext IS NOT NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(TokenCensus { by_key, plaintext })
}

/// Why a token could not be sealed again.
#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// slug, account, key id, ciphertext, plain text.
type TokenRow = (
    String,
    String,
    Option<String>,
    Option<Vec<u8>>,
    Option<String>,
);

/// Seals one restaurant's token under the primary key if it is plain or
/// sealed with another key. Returns whether it changed. The UPDATE only
/// applies to the row as read, so a concurrent change is never overwritten.
pub async fn reseal(pool: &PgPool, keys: &Keyring, id: Uuid) -> Result<bool, ResealError> {
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT slug, twilio_account_sid, twilio_auth_token_key_id, twilio_auth_token_sealed, \
                twilio_auth_token_plaintext FROM restaurants WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some((slug, account, key_id, ciphertext, plaintext)) = row else {
        return Ok(false);
    };
    let context = twilio_token_context(&account);
    let sealed = match (key_id, ciphertext, plaintext) {
        (_, _, Some(plain)) => keys.seal(&plain, &context),
        (Some(key_id), Some(ciphertext), None) => {
            let current = Sealed { key_id, ciphertext };
            if !keys.needs_reseal(&current) {
                return Ok(false);
            }
            keys.reseal(&current, &context)
                .map_err(|source| TokenError::Open {
                    slug: slug.clone(),
                    source,
                })?
        }
        _ => return Err(TokenError::NotSealed(slug).into()),
    };
    sqlx::query(
        "UPDATE restaurants SET twilio_auth_token_key_id = $2, twilio_auth_token_sealed = $3, \
            twilio_auth_token_plaintext = NULL, updated_at = now() \
         WHERE id = $1 AND twilio_account_sid = $4",
    )
    .bind(id)
    .bind(&sealed.key_id)
    .bind(&sealed.ciphertext)
    .bind(&account)
    .execute(pool)
    .await?;
    Ok(true)
}

/// The restaurants whose token is plain or not under the primary key.
pub async fn needing_reseal(
    pool: &PgPool,
    primary_key_id: &str,
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, slug FROM restaurants \
         WHERE twilio_auth_token_plaintext IS NOT NULL \
            OR twilio_auth_token_key_id IS DISTINCT FROM $1 ORDER BY slug",
    )
    .bind(primary_key_id)
    .fetch_all(pool)
    .await
}
