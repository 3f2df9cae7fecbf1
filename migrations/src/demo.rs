//! The demo restaurant `just up` seeds, through the same paths operators
//! use: its menu is `docs/menu-example.csv`, imported like any menu file.

use sqlx::PgPool;
use uuid::Uuid;
use waiter_hours::Schedule;
use waiter_secrets::Keyring;

use crate::{
    branches::{self, BranchError, NewBranch},
    menu::{self, Format, ImportError},
    restaurants::{self, seal_auth_token, NewRestaurant, WriteError},
};

/// The simulator account the demo restaurant uses (`AC` + 32 hex).
pub const DEMO_ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const DEMO_AUTH_TOKEN: &str = "demo-auth-token-change-me";
pub const DEMO_NUMBER: &str = "whatsapp:+14155238886";
pub const DEMO_SLUG: &str = "bait-grill";
/// The demo menu, the example of the documented CSV format.
pub const DEMO_MENU_CSV: &str = include_str!("../../docs/menu-example.csv");

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Restaurant(#[from] WriteError),
    #[error(transparent)]
    Branch(#[from] BranchError),
    #[error(transparent)]
    Menu(#[from] ImportError),
}

/// The demo branches (open around the clock, so the demo answers at any hour).
pub fn demo_branches() -> Vec<NewBranch> {
    let branch =
        |code: &str, en: &str, ar: &str, address: &str, lat: f64, lon: f64, km: f64| NewBranch {
            code: code.into(),
            name_en: en.into(),
            name_ar: ar.into(),
            address: Some(address.into()),
            latitude: Some(lat),
            longitude: Some(lon),
            delivery_radius_km: km,
            staff_whatsapp: None,
            offers_pickup: true,
            offers_delivery: true,
            schedule: Schedule::always_open(),
        };
    vec![
        branch(
            "olaya",
            "Olaya",
            "العليا",
            "Olaya St, Riyadh",
            24.6937,
            46.6853,
            8.0,
        ),
        branch(
            "al-malqa",
            "Al Malqa",
            "الملقا",
            "Anas Ibn Malik Rd, Riyadh",
            24.8109,
            46.6117,
            6.0,
        ),
    ]
}

/// Adds (or refreshes) the demo branches and menu of a restaurant.
pub async fn seed_branches_and_menu(pool: &PgPool, restaurant_id: Uuid) -> Result<(), SeedError> {
    for b in demo_branches() {
        branches::upsert(pool, restaurant_id, &b).await?;
    }
    menu::import(
        pool,
        restaurant_id,
        "docs/menu-example.csv",
        DEMO_MENU_CSV,
        Format::Csv,
    )
    .await?;
    Ok(())
}

/// The demo restaurant, its branches and menu. Safe to run again.
pub async fn seed_demo(
    pool: &PgPool,
    keys: &Keyring,
    whatsapp_number: &str,
    account_sid: &str,
    auth_token: &str,
) -> Result<Uuid, SeedError> {
    let sealed = seal_auth_token(keys, account_sid, auth_token);
    let mut r = NewRestaurant::new(DEMO_SLUG, whatsapp_number, account_sid, sealed);
    r.name_en = "Bait Grill".into();
    r.name_ar = "مشويات البيت".into();
    r.default_language = "ar".into();
    r.currency = "SAR".into();
    r.time_zone = "Asia/Riyadh".into();
    r.delivery_fee = 1000;
    r.min_delivery_order = 3000;
    r.promo_links = vec!["https://example.com/bait-grill/offers".into()];
    r.support_contact = Some("+966500000000".into());
    r.payment_link_base = Some("https://pay.example.com/bait-grill".into());
    let id = restaurants::upsert(pool, &r).await?;
    seed_branches_and_menu(pool, id).await?;
    Ok(id)
}
