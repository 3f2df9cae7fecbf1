use anyhow::Context;
use clap::Subcommand;
use uuid::Uuid;
use waiter_migrations::NewRestaurant;
use waiter_nats::directory::{AccountEntry, Directory};

// Parsed once per run: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum TenantCommand {
    /// Add a restaurant, or update the one with the same slug.
    Upsert {
        #[arg(long)]
        slug: String,
        /// WhatsApp sender as Twilio writes it: whatsapp:+E164.
        #[arg(long)]
        number: String,
        #[arg(long)]
        account_sid: String,
        /// The Twilio auth token (or set TENANT_AUTH_TOKEN to keep it out of shell history).
        #[arg(long, env = "TENANT_AUTH_TOKEN", hide_env_values = true)]
        auth_token: String,
        #[arg(long, default_value = "ar")]
        language: String,
        #[arg(long)]
        name_en: Option<String>,
        #[arg(long)]
        name_ar: Option<String>,
        #[arg(long, default_value = "SAR")]
        currency: String,
        /// Inbound messages per minute for the whole restaurant.
        #[arg(long, default_value_t = 600)]
        restaurant_rate: i32,
        /// Inbound messages per minute per customer.
        #[arg(long, default_value_t = 20)]
        customer_rate: i32,
        #[arg(long)]
        messaging_service_sid: Option<String>,
        #[arg(long)]
        support_contact: Option<String>,
        #[arg(long)]
        payment_link_base: Option<String>,
        /// Promo link (repeatable).
        #[arg(long = "promo")]
        promo_links: Vec<String>,
        #[arg(long, default_value_t = 0)]
        delivery_fee: i64,
        #[arg(long, default_value_t = 0)]
        min_delivery_order: i64,
        /// Seed the demo menu and branches for this restaurant.
        #[arg(long)]
        demo_menu: bool,
    },
    /// List restaurants (tokens are never printed).
    List,
}

pub async fn run(cmd: TenantCommand) -> anyhow::Result<()> {
    let pool = crate::pool().await?;
    match cmd {
        TenantCommand::Upsert {
            slug,
            number,
            account_sid,
            auth_token,
            language,
            name_en,
            name_ar,
            currency,
            restaurant_rate,
            customer_rate,
            messaging_service_sid,
            support_contact,
            payment_link_base,
            promo_links,
            delivery_fee,
            min_delivery_order,
            demo_menu,
        } => {
            anyhow::ensure!(
                number.starts_with("whatsapp:+") && number.len() > 11,
                "--number must look like whatsapp:+<E.164>, got {number:?}"
            );
            anyhow::ensure!(
                account_sid.len() == 34 && account_sid.starts_with("AC"),
                "--account-sid must be AC followed by 32 hex digits"
            );
            anyhow::ensure!(
                ["ar", "en"].contains(&language.as_str()),
                "--language must be ar or en"
            );
            anyhow::ensure!(
                restaurant_rate > 0 && customer_rate > 0,
                "rates must be positive"
            );
            let mut r = NewRestaurant::new(&slug, &number, &account_sid, &auth_token);
            r.name_en = name_en.unwrap_or_else(|| slug.clone());
            r.name_ar = name_ar.unwrap_or_else(|| r.name_en.clone());
            r.default_language = language;
            r.currency = currency;
            r.restaurant_rate_per_minute = restaurant_rate;
            r.customer_rate_per_minute = customer_rate;
            r.messaging_service_sid = messaging_service_sid;
            r.support_contact = support_contact;
            r.payment_link_base = payment_link_base;
            r.promo_links = promo_links;
            r.delivery_fee = delivery_fee;
            r.min_delivery_order = min_delivery_order;
            let id = waiter_migrations::restaurants::upsert(&pool, &r).await?;
            if demo_menu {
                waiter_migrations::demo::seed_branches(
                    &pool,
                    id,
                    &waiter_migrations::demo::demo_branches(),
                )
                .await?;
                waiter_migrations::demo::seed_menu(
                    &pool,
                    id,
                    &waiter_migrations::demo::demo_menu(),
                )
                .await?;
            }
            publish_directory(&account_sid, &auth_token).await?;
            println!("{id}");
        }
        TenantCommand::List => {
            for r in waiter_migrations::restaurants::all(&pool).await? {
                println!(
                    "{}  {:<20} {:<24} {}  lang={} limits={}/min restaurant, {}/min customer",
                    r.id,
                    r.slug,
                    r.whatsapp_number,
                    r.twilio_account_sid,
                    r.default_language,
                    r.restaurant_rate_per_minute,
                    r.customer_rate_per_minute
                );
            }
        }
    }
    Ok(())
}

/// Puts an account's token in the tenant directory at once (the router also
/// syncs it within seconds).
pub async fn publish_directory(account_sid: &str, auth_token: &str) -> anyhow::Result<()> {
    let bus = crate::bus().await?;
    let directory = Directory::open(&bus).await?;
    directory
        .put(&AccountEntry {
            account_sid: account_sid.to_string(),
            auth_token: auth_token.to_string(),
        })
        .await?;
    Ok(())
}

pub async fn resolve(pool: &sqlx::PgPool, restaurant: &str) -> anyhow::Result<Uuid> {
    if let Ok(id) = restaurant.parse::<Uuid>() {
        return Ok(id);
    }
    let r = waiter_migrations::restaurants::by_slug(pool, restaurant)
        .await?
        .with_context(|| format!("no restaurant with slug {restaurant:?}"))?;
    Ok(r.id)
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    restaurant_id: Uuid,
    role: &'a str,
    exp: i64,
}

/// A dashboard login link: the token rides in the URL fragment, which
/// browsers never send to the server (so it is in no access log), and the
/// page removes it from the address bar once read.
pub fn login_link(dashboard_url: &str, token: &str) -> String {
    let base = dashboard_url.split('#').next().unwrap_or(dashboard_url);
    let base = base.trim_end_matches('/');
    format!("{base}/#token={token}")
}

pub fn mint_jwt(restaurant_id: Uuid, role: &str, sub: &str, hours: i64) -> anyhow::Result<String> {
    anyhow::ensure!(
        ["staff", "admin"].contains(&role),
        "--role must be staff or admin"
    );
    let secret = std::env::var("JWT_SECRET").context("JWT_SECRET is not set")?;
    let claims = Claims {
        sub,
        restaurant_id,
        role,
        exp: chrono::Utc::now().timestamp() + hours * 3600,
    };
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_rides_in_the_fragment() {
        assert_eq!(
            login_link("http://127.0.0.1:8090", "a.b.c"),
            "http://127.0.0.1:8090/#token=a.b.c"
        );
        assert_eq!(
            login_link("https://waiter.example/#old", "a.b.c"),
            "https://waiter.example/#token=a.b.c"
        );
    }
}
