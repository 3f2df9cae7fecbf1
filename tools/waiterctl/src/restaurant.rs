//! `waiterctl restaurant create|update|show|list|disable|enable`.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use waiter_migrations::{
    restaurants::{self, seal_auth_token, NewRestaurant, RestaurantPatch},
    Restaurant,
};

use crate::{
    check::{self, Problems},
    connect,
    output::{or_dash, Out},
};

#[derive(Subcommand)]
pub enum RestaurantCommand {
    /// Add a restaurant (its slug and WhatsApp number must be new).
    Create(CreateArgs),
    /// Change the given settings of a restaurant; the others stay as they are.
    /// An empty value clears an optional setting (--support-contact "").
    Update(UpdateArgs),
    /// One restaurant's settings (the auth token is never shown).
    Show {
        #[arg(long)]
        restaurant: String,
    },
    /// Every restaurant.
    List,
    /// Stop routing and answering a restaurant's messages; its history stays.
    Disable {
        #[arg(long)]
        restaurant: String,
    },
    /// Route and answer a disabled restaurant's messages again.
    Enable {
        #[arg(long)]
        restaurant: String,
    },
}

/// Settings both `create` and `update` take.
#[derive(Args, Default)]
pub struct Settings {
    /// WhatsApp sender as Twilio writes it: whatsapp:+E164.
    #[arg(long)]
    number: Option<String>,
    /// Twilio account SID (AC…).
    #[arg(long)]
    account_sid: Option<String>,
    /// The Twilio auth token (stored encrypted, never printed). Keep it out
    /// of shell history with --auth-token-stdin, or (create only)
    /// TENANT_AUTH_TOKEN.
    #[arg(long)]
    auth_token: Option<String>,
    /// Read the auth token from standard input.
    #[arg(long, conflicts_with = "auth_token")]
    auth_token_stdin: bool,
    /// Twilio Messaging Service SID (MG…) to send through.
    #[arg(long)]
    messaging_service_sid: Option<String>,
    /// Default language of the bot: ar or en.
    #[arg(long)]
    language: Option<String>,
    #[arg(long)]
    name_en: Option<String>,
    #[arg(long)]
    name_ar: Option<String>,
    /// ISO 4217 currency code (SAR).
    #[arg(long)]
    currency: Option<String>,
    /// IANA time zone of the restaurant's opening hours (Asia/Riyadh).
    #[arg(long)]
    time_zone: Option<String>,
    /// Inbound messages per minute for the whole restaurant.
    #[arg(long)]
    restaurant_rate: Option<i32>,
    /// Inbound messages per minute per customer.
    #[arg(long)]
    customer_rate: Option<i32>,
    /// Outbound messages per second towards Twilio.
    #[arg(long)]
    outbound_rate: Option<i32>,
    /// Delivery fee in the currency (10.00).
    #[arg(long)]
    delivery_fee: Option<String>,
    /// Minimum order for delivery in the currency (30.00).
    #[arg(long, alias = "min-delivery-order")]
    min_order: Option<String>,
    /// Shown to unhappy customers (a phone number or a link).
    #[arg(long)]
    support_contact: Option<String>,
    /// Promo link sent after a good rating (repeatable; replaces the list).
    #[arg(long = "promo")]
    promo_links: Vec<String>,
    /// Remove every promo link.
    #[arg(long, conflicts_with = "promo_links")]
    no_promos: bool,
    /// Online payment: the order id is appended to this link.
    #[arg(long)]
    payment_link_base: Option<String>,
    /// Staff WhatsApp number that receives order tickets (+E164).
    #[arg(long)]
    staff_number: Option<String>,
    /// Minutes after a staff reply before the bot answers again.
    #[arg(long)]
    bot_idle_resume_minutes: Option<i32>,
    /// Minutes before a customer who said "Later" is asked to rate again.
    #[arg(long)]
    rating_reask_minutes: Option<i32>,
}

#[derive(Args)]
pub struct CreateArgs {
    /// Short name used in every command (bait-grill).
    #[arg(long)]
    slug: String,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Args)]
pub struct UpdateArgs {
    #[arg(long)]
    restaurant: String,
    #[command(flatten)]
    settings: Settings,
}

/// `Some(None)` for an empty value (clear), `Some(Some(v))` to set.
fn optional(value: &Option<String>) -> Option<Option<String>> {
    value
        .as_ref()
        .map(|v| Some(v.trim().to_string()).filter(|v| !v.is_empty()))
}

impl Settings {
    /// The checked patch; the token is sealed for `account_sid` (the
    /// account it will belong to).
    /// The token given: the flag, standard input, or (when `env_fallback`,
    /// for a new restaurant) TENANT_AUTH_TOKEN. An update never takes the
    /// variable, so a token exported for one restaurant never lands on another.
    fn token(&self, env_fallback: bool) -> anyhow::Result<Option<String>> {
        if self.auth_token_stdin {
            let mut token = String::new();
            std::io::stdin()
                .read_line(&mut token)
                .context("reading the auth token from standard input")?;
            return Ok(Some(token.trim().to_string()));
        }
        if self.auth_token.is_some() || !env_fallback {
            return Ok(self.auth_token.clone());
        }
        Ok(std::env::var("TENANT_AUTH_TOKEN").ok())
    }

    fn patch(&self, account_sid: &str, env_fallback: bool) -> anyhow::Result<RestaurantPatch> {
        let mut p = Problems::default();
        let mut patch = RestaurantPatch::default();
        if let Some(n) = &self.number {
            p.check(check::whatsapp_number(n));
            patch.whatsapp_number = Some(n.clone());
        }
        if let Some(sid) = &self.account_sid {
            p.check(check::account_sid(sid));
            patch.twilio_account_sid = Some(sid.clone());
        }
        if let Some(token) = &self.token(env_fallback)? {
            if token.trim().is_empty() {
                p.0.push("--auth-token is empty".into());
            } else {
                patch.twilio_auth_token = Some(seal_auth_token(
                    &connect::keys()?,
                    account_sid,
                    token.trim(),
                ));
            }
        }
        if let Some(Some(sid)) = optional(&self.messaging_service_sid) {
            p.check(check::messaging_service_sid(&sid));
        }
        patch.messaging_service_sid = optional(&self.messaging_service_sid);
        if let Some(l) = &self.language {
            p.check(check::language(l));
            patch.default_language = Some(l.clone());
        }
        for (flag, name) in [("--name-en", &self.name_en), ("--name-ar", &self.name_ar)] {
            if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                p.0.push(format!("{flag} is empty"));
            }
        }
        patch.name_en = self.name_en.as_ref().map(|n| n.trim().to_string());
        patch.name_ar = self.name_ar.as_ref().map(|n| n.trim().to_string());
        if let Some(c) = &self.currency {
            p.check(check::currency(c));
            patch.currency = Some(c.clone());
        }
        if let Some(tz) = &self.time_zone {
            p.check(check::time_zone(tz));
            patch.time_zone = Some(tz.trim().to_string());
        }
        for (flag, value, max) in [
            ("--restaurant-rate", self.restaurant_rate, 100_000),
            ("--customer-rate", self.customer_rate, 10_000),
            ("--outbound-rate", self.outbound_rate, 400),
            (
                "--bot-idle-resume-minutes",
                self.bot_idle_resume_minutes,
                10_080,
            ),
            ("--rating-reask-minutes", self.rating_reask_minutes, 10_080),
        ] {
            if let Some(n) = value {
                p.check(check::positive(flag, n, max));
            }
        }
        patch.restaurant_rate_per_minute = self.restaurant_rate;
        patch.customer_rate_per_minute = self.customer_rate;
        patch.outbound_rate_per_second = self.outbound_rate;
        patch.bot_idle_resume_minutes = self.bot_idle_resume_minutes;
        patch.rating_reask_minutes = self.rating_reask_minutes;
        if let Some(fee) = &self.delivery_fee {
            patch.delivery_fee = p.value(check::amount("--delivery-fee", fee));
        }
        if let Some(min) = &self.min_order {
            patch.min_delivery_order = p.value(check::amount("--min-order", min));
        }
        patch.support_contact = optional(&self.support_contact);
        if let Some(Some(base)) = optional(&self.payment_link_base) {
            p.check(check::url("--payment-link-base", &base));
        }
        patch.payment_link_base = optional(&self.payment_link_base);
        if let Some(Some(staff)) = optional(&self.staff_number) {
            p.check(check::staff_number(&staff));
        }
        patch.staff_whatsapp = optional(&self.staff_number);
        for link in &self.promo_links {
            p.check(check::url("--promo", link));
        }
        if self.no_promos {
            patch.promo_links = Some(vec![]);
        } else if !self.promo_links.is_empty() {
            patch.promo_links = Some(self.promo_links.clone());
        }
        p.finish()?;
        Ok(patch)
    }
}

/// A restaurant as `show` and `list --json` print it: no token, only the
/// key that seals it.
#[derive(Serialize)]
struct View<'a> {
    id: uuid::Uuid,
    slug: &'a str,
    status: &'static str,
    name_en: &'a str,
    name_ar: &'a str,
    whatsapp_number: &'a str,
    twilio_account_sid: &'a str,
    auth_token: String,
    messaging_service_sid: Option<&'a str>,
    default_language: &'a str,
    currency: &'a str,
    time_zone: &'a str,
    restaurant_rate_per_minute: i32,
    customer_rate_per_minute: i32,
    outbound_rate_per_second: i32,
    delivery_fee: String,
    min_delivery_order: String,
    support_contact: Option<&'a str>,
    promo_links: &'a [String],
    payment_link_base: Option<&'a str>,
    staff_number: Option<&'a str>,
    bot_idle_resume_minutes: i32,
    rating_reask_minutes: i32,
}

fn token_state(r: &Restaurant) -> String {
    match (r.auth_token_key_id(), r.plaintext_token_left) {
        (_, true) => "NOT SEALED (run `waiterctl migrate` with WAITER_SECRET_KEY)".into(),
        (Some(key), false) => format!("sealed (key {key})"),
        (None, false) => "none".into(),
    }
}

fn view(r: &Restaurant) -> View<'_> {
    use waiter_migrations::menu::file::format_price;
    View {
        id: r.id,
        slug: &r.slug,
        status: if r.is_disabled() {
            "disabled"
        } else {
            "active"
        },
        name_en: &r.name_en,
        name_ar: &r.name_ar,
        whatsapp_number: &r.whatsapp_number,
        twilio_account_sid: &r.twilio_account_sid,
        auth_token: token_state(r),
        messaging_service_sid: r.messaging_service_sid.as_deref(),
        default_language: &r.default_language,
        currency: &r.currency,
        time_zone: &r.time_zone,
        restaurant_rate_per_minute: r.restaurant_rate_per_minute,
        customer_rate_per_minute: r.customer_rate_per_minute,
        outbound_rate_per_second: r.outbound_rate_per_second,
        delivery_fee: format_price(r.delivery_fee),
        min_delivery_order: format_price(r.min_delivery_order),
        support_contact: r.support_contact.as_deref(),
        promo_links: &r.promo_links,
        payment_link_base: r.payment_link_base.as_deref(),
        staff_number: r.staff_whatsapp.as_deref(),
        bot_idle_resume_minutes: r.bot_idle_resume_minutes,
        rating_reask_minutes: r.rating_reask_minutes,
    }
}

pub async fn run(cmd: RestaurantCommand, out: Out) -> anyhow::Result<()> {
    let pool = connect::pool().await?;
    match cmd {
        RestaurantCommand::Create(args) => create(&pool, args, out).await,
        RestaurantCommand::Update(args) => update(&pool, args, out).await,
        RestaurantCommand::Show { restaurant } => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            let v = view(&r);
            out.settings(
                vec![
                    ("id", v.id.to_string()),
                    ("slug", v.slug.into()),
                    ("status", v.status.into()),
                    ("name (en)", v.name_en.into()),
                    ("name (ar)", v.name_ar.into()),
                    ("WhatsApp number", v.whatsapp_number.into()),
                    ("Twilio account", v.twilio_account_sid.into()),
                    ("auth token", v.auth_token.clone()),
                    ("messaging service", or_dash(v.messaging_service_sid)),
                    ("language", v.default_language.into()),
                    ("currency", v.currency.into()),
                    ("time zone", v.time_zone.into()),
                    (
                        "inbound limit",
                        format!(
                            "{}/min restaurant, {}/min customer",
                            v.restaurant_rate_per_minute, v.customer_rate_per_minute
                        ),
                    ),
                    (
                        "outbound limit",
                        format!("{}/s", v.outbound_rate_per_second),
                    ),
                    ("delivery fee", v.delivery_fee.clone()),
                    ("minimum delivery order", v.min_delivery_order.clone()),
                    ("support contact", or_dash(v.support_contact)),
                    ("promo links", or_dash(Some(&v.promo_links.join(" ")))),
                    ("payment link base", or_dash(v.payment_link_base)),
                    ("staff number", or_dash(v.staff_number)),
                    (
                        "bot resumes after",
                        format!("{} min", v.bot_idle_resume_minutes),
                    ),
                    (
                        "rating re-asked after",
                        format!("{} min", v.rating_reask_minutes),
                    ),
                ],
                &v,
            );
            Ok(())
        }
        RestaurantCommand::List => {
            let all = restaurants::all(&pool).await?;
            let views: Vec<View> = all.iter().map(view).collect();
            let rows = views
                .iter()
                .map(|v| {
                    vec![
                        v.slug.to_string(),
                        v.name_en.to_string(),
                        v.name_ar.to_string(),
                        v.whatsapp_number.to_string(),
                        v.default_language.to_string(),
                        v.time_zone.to_string(),
                        v.status.to_string(),
                        v.auth_token.clone(),
                    ]
                })
                .collect();
            out.table(
                &[
                    "slug",
                    "name (en)",
                    "name (ar)",
                    "number",
                    "lang",
                    "time zone",
                    "status",
                    "auth token",
                ],
                rows,
                &views,
            );
            Ok(())
        }
        RestaurantCommand::Disable { restaurant } => {
            set_disabled(&pool, &restaurant, true, out).await
        }
        RestaurantCommand::Enable { restaurant } => {
            set_disabled(&pool, &restaurant, false, out).await
        }
    }
}

async fn create(pool: &sqlx::PgPool, args: CreateArgs, out: Out) -> anyhow::Result<()> {
    let s = &args.settings;
    let mut p = Problems::default();
    p.check(check::slug(&args.slug));
    for (flag, value) in [
        ("--number", &s.number),
        ("--account-sid", &s.account_sid),
        ("--time-zone", &s.time_zone),
    ] {
        if value.is_none() {
            p.0.push(format!("{flag} is required"));
        }
    }
    if s.auth_token.is_none() && !s.auth_token_stdin && std::env::var("TENANT_AUTH_TOKEN").is_err()
    {
        p.0.push("--auth-token (or --auth-token-stdin, or TENANT_AUTH_TOKEN) is required".into());
    }
    p.finish()?;
    let (r, account_sid) = new_restaurant(&args.slug, s)?;
    let id = restaurants::create(pool, &r).await?;
    connect::publish_account(pool, &account_sid).await;
    out.done(
        &format!("created restaurant {} ({id})", args.slug),
        &serde_json::json!({ "id": id, "slug": args.slug }),
    );
    Ok(())
}

/// A new restaurant from the settings (number, account and token given).
fn new_restaurant(slug: &str, settings: &Settings) -> anyhow::Result<(NewRestaurant, String)> {
    let account_sid = settings.account_sid.clone().unwrap_or_default();
    let patch = settings.patch(&account_sid, true)?;
    let mut r = NewRestaurant::new(
        slug,
        patch.whatsapp_number.as_deref().unwrap_or_default(),
        &account_sid,
        patch
            .twilio_auth_token
            .clone()
            .context("--auth-token (or --auth-token-stdin, or TENANT_AUTH_TOKEN) is required")?,
    );
    r.name_en = patch.name_en.clone().unwrap_or_else(|| slug.to_string());
    r.name_ar = patch.name_ar.clone().unwrap_or_else(|| r.name_en.clone());
    r.default_language = patch
        .default_language
        .clone()
        .unwrap_or_else(|| "ar".into());
    apply(&mut r, patch);
    Ok((r, account_sid))
}

/// The patch's settings onto a new restaurant.
fn apply(r: &mut NewRestaurant, p: RestaurantPatch) {
    r.messaging_service_sid = p.messaging_service_sid.flatten();
    if let Some(v) = p.currency {
        r.currency = v;
    }
    if let Some(v) = p.time_zone {
        r.time_zone = v;
    }
    if let Some(v) = p.restaurant_rate_per_minute {
        r.restaurant_rate_per_minute = v;
    }
    if let Some(v) = p.customer_rate_per_minute {
        r.customer_rate_per_minute = v;
    }
    if let Some(v) = p.outbound_rate_per_second {
        r.outbound_rate_per_second = v;
    }
    if let Some(v) = p.delivery_fee {
        r.delivery_fee = v;
    }
    if let Some(v) = p.min_delivery_order {
        r.min_delivery_order = v;
    }
    if let Some(v) = p.promo_links {
        r.promo_links = v;
    }
    if let Some(v) = p.bot_idle_resume_minutes {
        r.bot_idle_resume_minutes = v;
    }
    if let Some(v) = p.rating_reask_minutes {
        r.rating_reask_minutes = v;
    }
    r.support_contact = p.support_contact.flatten();
    r.payment_link_base = p.payment_link_base.flatten();
    r.staff_whatsapp = p.staff_whatsapp.flatten();
}

async fn update(pool: &sqlx::PgPool, args: UpdateArgs, out: Out) -> anyhow::Result<()> {
    let current = connect::restaurant(pool, &args.restaurant).await?;
    let account_sid = args
        .settings
        .account_sid
        .clone()
        .unwrap_or_else(|| current.twilio_account_sid.clone());
    let mut patch = args.settings.patch(&account_sid, false)?;
    // A token is sealed for its account: a new account without a new token
    // takes the current token, sealed again for the new account.
    if account_sid != current.twilio_account_sid && patch.twilio_auth_token.is_none() {
        let keys = connect::keys()?;
        let token = current.open_auth_token(&keys)?;
        use secrecy::ExposeSecret;
        patch.twilio_auth_token = Some(seal_auth_token(&keys, &account_sid, token.expose_secret()));
    }
    let changed = restaurants::update(pool, &current.slug, &patch).await?;
    if changed.is_empty() {
        anyhow::bail!("nothing to change: give at least one setting (see `waiterctl restaurant update --help`)");
    }
    if changed.iter().any(|c| c.starts_with("twilio_")) {
        connect::publish_account(pool, &account_sid).await;
        if account_sid != current.twilio_account_sid {
            connect::publish_account(pool, &current.twilio_account_sid).await;
        }
    }
    out.done(
        &format!("updated {}: {}", current.slug, changed.join(", ")),
        &serde_json::json!({ "slug": current.slug, "changed": changed }),
    );
    Ok(())
}

async fn set_disabled(
    pool: &sqlx::PgPool,
    restaurant: &str,
    disabled: bool,
    out: Out,
) -> anyhow::Result<()> {
    let r = connect::restaurant(pool, restaurant).await?;
    let changed = restaurants::set_disabled(pool, &r.slug, disabled).await?;
    let state = if disabled { "disabled" } else { "enabled" };
    let text = match changed {
        true if disabled => format!(
            "{} disabled: its messages are no longer routed or answered (history kept)",
            r.slug
        ),
        true => format!(
            "{} enabled: its messages are routed and answered again",
            r.slug
        ),
        false => format!("{} was already {state}", r.slug),
    };
    out.done(
        &text,
        &serde_json::json!({ "slug": r.slug, "status": state, "changed": changed }),
    );
    Ok(())
}

/// `tenant upsert` (older recipes): every setting at once, created or replaced.
pub async fn upsert(
    pool: &sqlx::PgPool,
    slug: &str,
    settings: &Settings,
) -> anyhow::Result<uuid::Uuid> {
    let (r, account_sid) = new_restaurant(slug, settings)?;
    let id = restaurants::upsert(pool, &r).await?;
    connect::publish_account(pool, &account_sid).await;
    Ok(id)
}
