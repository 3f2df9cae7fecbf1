//! What the bot reads about a restaurant (profile, menu, branches), cached
//! for a few seconds per restaurant: a menu edit shows within the TTL.

use std::{sync::Arc, time::Duration};

use moka::future::Cache;
use sqlx::PgPool;
use uuid::Uuid;
use waiter_bot::{Branch, Category, Lang, MenuItem, Offers, RestaurantInfo};
use waiter_migrations::Restaurant;

pub struct Catalog {
    pub restaurant: Restaurant,
    pub info: RestaurantInfo,
    pub menu: Vec<Category>,
    pub branches: Vec<Branch>,
}

#[derive(Clone)]
pub struct Catalogs {
    pool: PgPool,
    cache: Cache<Uuid, Arc<Catalog>>,
}

#[derive(sqlx::FromRow)]
struct CategoryRow {
    id: Uuid,
    name_en: String,
    name_ar: String,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: Uuid,
    category_id: Uuid,
    name_en: String,
    name_ar: String,
    description_en: String,
    description_ar: String,
    price: i64,
    discount_percent: i32,
    available: bool,
    unavailable_branches: Vec<Uuid>,
}

#[derive(sqlx::FromRow)]
struct BranchRow {
    id: Uuid,
    name_en: String,
    name_ar: String,
    address: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    delivery_radius_km: f64,
    offers_pickup: bool,
    offers_delivery: bool,
    schedule: sqlx::types::Json<waiter_bot::Schedule>,
}

impl Catalogs {
    pub fn new(pool: PgPool, ttl: Duration) -> Self {
        Self {
            pool,
            cache: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub async fn get(&self, restaurant_id: Uuid) -> Result<Option<Arc<Catalog>>, sqlx::Error> {
        if let Some(hit) = self.cache.get(&restaurant_id).await {
            return Ok(Some(hit));
        }
        let Some(catalog) = self.load(restaurant_id).await? else {
            return Ok(None);
        };
        let catalog = Arc::new(catalog);
        self.cache.insert(restaurant_id, catalog.clone()).await;
        Ok(Some(catalog))
    }

    async fn load(&self, restaurant_id: Uuid) -> Result<Option<Catalog>, sqlx::Error> {
        let Some(restaurant) =
            waiter_migrations::restaurants::by_id(&self.pool, restaurant_id).await?
        else {
            return Ok(None);
        };
        let categories: Vec<CategoryRow> = sqlx::query_as(
            "SELECT id, name_en, name_ar FROM menu_categories WHERE restaurant_id = $1 ORDER BY position, name_en",
        )
        .bind(restaurant_id)
        .fetch_all(&self.pool)
        .await?;
        let items: Vec<ItemRow> = sqlx::query_as(
            "SELECT id, category_id, name_en, name_ar, description_en, description_ar, price, \
                discount_percent, available, unavailable_branches \
             FROM menu_items WHERE restaurant_id = $1 ORDER BY position, name_en",
        )
        .bind(restaurant_id)
        .fetch_all(&self.pool)
        .await?;
        let branches: Vec<BranchRow> = sqlx::query_as(
            "SELECT id, name_en, name_ar, address, latitude, longitude, delivery_radius_km, \
                offers_pickup, offers_delivery, schedule \
             FROM branches WHERE restaurant_id = $1 AND active ORDER BY position, name_en",
        )
        .bind(restaurant_id)
        .fetch_all(&self.pool)
        .await?;
        let menu = categories
            .into_iter()
            .map(|c| Category {
                items: items
                    .iter()
                    .filter(|i| i.category_id == c.id)
                    .map(|i| MenuItem {
                        id: i.id,
                        name_en: i.name_en.clone(),
                        name_ar: i.name_ar.clone(),
                        description_en: i.description_en.clone(),
                        description_ar: i.description_ar.clone(),
                        price: i.price,
                        discount_percent: i.discount_percent,
                        available: i.available,
                        unavailable_branches: i.unavailable_branches.clone(),
                    })
                    .collect(),
                id: c.id,
                name_en: c.name_en,
                name_ar: c.name_ar,
            })
            .collect();
        let branches = branches
            .into_iter()
            .map(|b| Branch {
                id: b.id,
                name_en: b.name_en,
                name_ar: b.name_ar,
                address: b.address,
                latitude: b.latitude,
                longitude: b.longitude,
                delivery_radius_km: b.delivery_radius_km,
                offers: Offers::new(b.offers_pickup, b.offers_delivery),
                schedule: b.schedule.0,
            })
            .collect();
        let templates = waiter_migrations::templates::list(&self.pool, restaurant_id).await?;
        let key = |t: &waiter_migrations::templates::ContentTemplate| {
            format!("{}_{}", t.name, t.language)
        };
        let info = RestaurantInfo {
            name_en: restaurant.name_en.clone(),
            name_ar: restaurant.name_ar.clone(),
            default_language: Lang::parse(&restaurant.default_language),
            currency: restaurant.currency.clone(),
            delivery_fee: restaurant.delivery_fee,
            min_delivery_order: restaurant.min_delivery_order,
            payment_link_base: restaurant.payment_link_base.clone(),
            support_contact: restaurant.support_contact.clone(),
            promo_links: restaurant.promo_links.clone(),
            content_templates: templates
                .iter()
                .map(|t| (key(t), t.content_sid.clone()))
                .collect(),
            approved_templates: templates.iter().filter(|t| t.approved).map(key).collect(),
            time_zone: restaurant.tz(),
        };
        Ok(Some(Catalog {
            restaurant,
            info,
            menu,
            branches,
        }))
    }
}
