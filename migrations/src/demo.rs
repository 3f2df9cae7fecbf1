//! The demo restaurant `just up` seeds, and the menu helpers tests use.

use sqlx::PgPool;
use uuid::Uuid;

use crate::restaurants::{self, NewRestaurant};

/// The simulator account the demo restaurant uses (`AC` + 32 hex).
pub const DEMO_ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const DEMO_AUTH_TOKEN: &str = "demo-auth-token-change-me";
pub const DEMO_NUMBER: &str = "whatsapp:+14155238886";
pub const DEMO_SLUG: &str = "bait-grill";

pub struct MenuItem<'a> {
    pub name_en: &'a str,
    pub name_ar: &'a str,
    pub description_en: &'a str,
    pub description_ar: &'a str,
    pub price: i64,
    pub discount_percent: i32,
}

pub struct Category<'a> {
    pub name_en: &'a str,
    pub name_ar: &'a str,
    pub items: Vec<MenuItem<'a>>,
}

pub struct Branch<'a> {
    pub name_en: &'a str,
    pub name_ar: &'a str,
    pub address: &'a str,
    pub latitude: f64,
    pub longitude: f64,
    pub delivery_radius_km: f64,
}

fn stable_id(restaurant_id: Uuid, parts: &[&str]) -> Uuid {
    Uuid::new_v5(&restaurant_id, parts.join("/").as_bytes())
}

/// Writes (or rewrites) a restaurant's menu; ids are stable per name, so
/// seeding twice changes nothing.
pub async fn seed_menu(
    pool: &PgPool,
    restaurant_id: Uuid,
    categories: &[Category<'_>],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for (cat_pos, category) in categories.iter().enumerate() {
        let category_id = stable_id(restaurant_id, &["category", category.name_en]);
        sqlx::query(
            "INSERT INTO menu_categories (id, restaurant_id, name_en, name_ar, position) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
             name_en = EXCLUDED.name_en, name_ar = EXCLUDED.name_ar, position = EXCLUDED.position",
        )
        .bind(category_id)
        .bind(restaurant_id)
        .bind(category.name_en)
        .bind(category.name_ar)
        .bind(cat_pos as i32)
        .execute(&mut *tx)
        .await?;
        for (pos, item) in category.items.iter().enumerate() {
            sqlx::query(
                "INSERT INTO menu_items (id, restaurant_id, category_id, name_en, name_ar, \
                    description_en, description_ar, price, discount_percent, position) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO UPDATE SET \
                    name_en = EXCLUDED.name_en, name_ar = EXCLUDED.name_ar, \
                    description_en = EXCLUDED.description_en, description_ar = EXCLUDED.description_ar, \
                    price = EXCLUDED.price, discount_percent = EXCLUDED.discount_percent, \
                    position = EXCLUDED.position",
            )
            .bind(stable_id(restaurant_id, &["item", category.name_en, item.name_en]))
            .bind(restaurant_id)
            .bind(category_id)
            .bind(item.name_en)
            .bind(item.name_ar)
            .bind(item.description_en)
            .bind(item.description_ar)
            .bind(item.price)
            .bind(item.discount_percent)
            .bind(pos as i32)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await
}

pub async fn seed_branches(
    pool: &PgPool,
    restaurant_id: Uuid,
    branches: &[Branch<'_>],
) -> Result<(), sqlx::Error> {
    for (pos, b) in branches.iter().enumerate() {
        sqlx::query(
            "INSERT INTO branches (id, restaurant_id, name_en, name_ar, address, latitude, longitude, \
                delivery_radius_km, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET name_en = EXCLUDED.name_en, name_ar = EXCLUDED.name_ar, \
                address = EXCLUDED.address, latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude, \
                delivery_radius_km = EXCLUDED.delivery_radius_km, position = EXCLUDED.position",
        )
        .bind(stable_id(restaurant_id, &["branch", b.name_en]))
        .bind(restaurant_id)
        .bind(b.name_en)
        .bind(b.name_ar)
        .bind(b.address)
        .bind(b.latitude)
        .bind(b.longitude)
        .bind(b.delivery_radius_km)
        .bind(pos as i32)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// The demo menu: Arabic and English, prices in halalas.
pub fn demo_menu() -> Vec<Category<'static>> {
    vec![
        Category {
            name_en: "Grills",
            name_ar: "المشويات",
            items: vec![
                MenuItem {
                    name_en: "Chicken Shish Tawook",
                    name_ar: "شيش طاووق",
                    description_en: "Marinated chicken skewers with garlic sauce",
                    description_ar: "أسياخ دجاج متبلة مع الثومية",
                    price: 3200,
                    discount_percent: 0,
                },
                MenuItem {
                    name_en: "Lamb Kebab",
                    name_ar: "كباب لحم",
                    description_en: "Minced lamb with parsley and onion",
                    description_ar: "لحم غنم مفروم مع البقدونس والبصل",
                    price: 4200,
                    discount_percent: 10,
                },
                MenuItem {
                    name_en: "Mixed Grill",
                    name_ar: "مشاوي مشكلة",
                    description_en: "Tawook, kebab and lamb cubes for two",
                    description_ar: "طاووق وكباب وأوصال لشخصين",
                    price: 8900,
                    discount_percent: 0,
                },
            ],
        },
        Category {
            name_en: "Sandwiches",
            name_ar: "السندويشات",
            items: vec![
                MenuItem {
                    name_en: "Chicken Shawarma",
                    name_ar: "شاورما دجاج",
                    description_en: "Saj bread, pickles, garlic sauce",
                    description_ar: "خبز صاج مع المخلل والثومية",
                    price: 1400,
                    discount_percent: 0,
                },
                MenuItem {
                    name_en: "Falafel Wrap",
                    name_ar: "لفافة فلافل",
                    description_en: "Falafel, tahini, vegetables",
                    description_ar: "فلافل مع الطحينة والخضار",
                    price: 900,
                    discount_percent: 0,
                },
            ],
        },
        Category {
            name_en: "Drinks",
            name_ar: "المشروبات",
            items: vec![
                MenuItem {
                    name_en: "Fresh Lemon Mint",
                    name_ar: "ليمون بالنعناع",
                    description_en: "Freshly squeezed",
                    description_ar: "طازج",
                    price: 1100,
                    discount_percent: 0,
                },
                MenuItem {
                    name_en: "Laban",
                    name_ar: "لبن",
                    description_en: "Cold yoghurt drink",
                    description_ar: "لبن بارد",
                    price: 500,
                    discount_percent: 0,
                },
            ],
        },
    ]
}

pub fn demo_branches() -> Vec<Branch<'static>> {
    vec![
        Branch {
            name_en: "Olaya",
            name_ar: "العليا",
            address: "Olaya St, Riyadh",
            latitude: 24.6937,
            longitude: 46.6853,
            delivery_radius_km: 8.0,
        },
        Branch {
            name_en: "Al Malqa",
            name_ar: "الملقا",
            address: "Anas Ibn Malik Rd, Riyadh",
            latitude: 24.8109,
            longitude: 46.6117,
            delivery_radius_km: 6.0,
        },
    ]
}

/// The demo restaurant, its branches and menu. Safe to run again.
pub async fn seed_demo(
    pool: &PgPool,
    whatsapp_number: &str,
    account_sid: &str,
    auth_token: &str,
) -> Result<Uuid, sqlx::Error> {
    let mut r = NewRestaurant::new(DEMO_SLUG, whatsapp_number, account_sid, auth_token);
    r.name_en = "Bait Grill".into();
    r.name_ar = "مشويات البيت".into();
    r.default_language = "ar".into();
    r.currency = "SAR".into();
    r.delivery_fee = 1000;
    r.min_delivery_order = 3000;
    r.promo_links = vec!["https://example.com/bait-grill/offers".into()];
    r.support_contact = Some("+966500000000".into());
    r.payment_link_base = Some("https://pay.example.com/bait-grill".into());
    let id = restaurants::upsert(pool, &r).await?;
    seed_branches(pool, id, &demo_branches()).await?;
    seed_menu(pool, id, &demo_menu()).await?;
    Ok(id)
}
