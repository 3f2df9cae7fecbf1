//! `waiterctl branch add|update|list|remove|hours|close|reopen`.

use chrono::{NaiveDate, Utc};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use waiter_hours::{Closure, Schedule, Status};
use waiter_migrations::{
    branches::{self, Branch, BranchPatch, NewBranch},
    Restaurant,
};

use crate::{
    check::{self, Problems},
    connect,
    output::{or_dash, Out},
};

#[derive(Subcommand)]
pub enum BranchCommand {
    /// Add a branch.
    Add(AddArgs),
    /// Change the given settings of a branch (an empty value clears an optional one).
    Update(UpdateArgs),
    /// A restaurant's branches, whether each is open now and until when.
    List {
        #[arg(long)]
        restaurant: String,
        /// Removed (inactive) branches too.
        #[arg(long)]
        all: bool,
    },
    /// Stop offering a branch. It is kept (orders point at it); `update --active true` brings it back.
    Remove {
        #[arg(long)]
        restaurant: String,
        #[arg(long)]
        code: String,
    },
    /// Show a branch's opening hours, or set them.
    Hours {
        #[arg(long)]
        restaurant: String,
        #[arg(long)]
        code: String,
        /// Weekly hours in the restaurant's time zone, e.g.
        /// "sat-thu 12:00-23:30; fri 13:00-15:00,18:00-02:00" (past midnight allowed).
        #[arg(long, conflicts_with = "always")]
        set: Option<String>,
        /// Open around the clock (no weekly hours).
        #[arg(long)]
        always: bool,
    },
    /// Close a branch on a range of dates (a holiday), both included.
    Close {
        #[arg(long)]
        restaurant: String,
        #[arg(long)]
        code: String,
        /// First closed date (YYYY-MM-DD, local).
        #[arg(long)]
        from: NaiveDate,
        /// Last closed date (default: the same day).
        #[arg(long)]
        to: Option<NaiveDate>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Remove the closure starting on a date.
    Reopen {
        #[arg(long)]
        restaurant: String,
        #[arg(long)]
        code: String,
        #[arg(long)]
        from: NaiveDate,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Offers {
    Pickup,
    Delivery,
    Both,
}

impl Offers {
    fn flags(self) -> (bool, bool) {
        match self {
            Offers::Pickup => (true, false),
            Offers::Delivery => (false, true),
            Offers::Both => (true, true),
        }
    }
}

#[derive(Args)]
pub struct BranchSettings {
    #[arg(long)]
    name_en: Option<String>,
    #[arg(long)]
    name_ar: Option<String>,
    #[arg(long)]
    address: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    latitude: Option<f64>,
    #[arg(long, allow_hyphen_values = true)]
    longitude: Option<f64>,
    /// How far it delivers, in km.
    #[arg(long)]
    radius_km: Option<f64>,
    /// What it offers.
    #[arg(long, value_enum)]
    offers: Option<Offers>,
    /// Staff WhatsApp number for this branch's order tickets (+E164).
    #[arg(long)]
    staff_number: Option<String>,
    /// Weekly hours (see `branch hours --help`); none: open around the clock.
    #[arg(long)]
    hours: Option<String>,
}

#[derive(Args)]
pub struct AddArgs {
    #[arg(long)]
    restaurant: String,
    /// Short name used in commands and menu files (olaya).
    #[arg(long)]
    code: String,
    #[command(flatten)]
    settings: BranchSettings,
}

#[derive(Args)]
pub struct UpdateArgs {
    #[arg(long)]
    restaurant: String,
    #[arg(long)]
    code: String,
    #[command(flatten)]
    settings: BranchSettings,
    /// Offer (true) or stop offering (false) the branch.
    #[arg(long)]
    active: Option<bool>,
}

fn optional(value: &Option<String>) -> Option<Option<String>> {
    value
        .as_ref()
        .map(|v| Some(v.trim().to_string()).filter(|v| !v.is_empty()))
}

impl BranchSettings {
    fn patch(&self) -> anyhow::Result<BranchPatch> {
        let mut p = Problems::default();
        let mut patch = BranchPatch {
            name_en: self.name_en.as_ref().map(|n| n.trim().to_string()),
            name_ar: self.name_ar.as_ref().map(|n| n.trim().to_string()),
            address: optional(&self.address),
            latitude: self.latitude.map(Some),
            longitude: self.longitude.map(Some),
            delivery_radius_km: self.radius_km,
            staff_whatsapp: optional(&self.staff_number),
            ..BranchPatch::default()
        };
        for (flag, name) in [("--name-en", &patch.name_en), ("--name-ar", &patch.name_ar)] {
            if name.as_deref().is_some_and(str::is_empty) {
                p.0.push(format!("{flag} is empty"));
            }
        }
        if let Some(lat) = self.latitude {
            if !(-90.0..=90.0).contains(&lat) {
                p.0.push(format!("--latitude {lat}: must be between -90 and 90"));
            }
        }
        if let Some(lon) = self.longitude {
            if !(-180.0..=180.0).contains(&lon) {
                p.0.push(format!("--longitude {lon}: must be between -180 and 180"));
            }
        }
        if let Some(km) = self.radius_km {
            if !(0.0..=200.0).contains(&km) {
                p.0.push(format!("--radius-km {km}: must be between 0 and 200"));
            }
        }
        if let Some(Some(staff)) = &patch.staff_whatsapp {
            p.check(check::staff_number(staff));
        }
        if let Some(offers) = self.offers {
            let (pickup, delivery) = offers.flags();
            patch.offers_pickup = Some(pickup);
            patch.offers_delivery = Some(delivery);
        }
        if let Some(hours) = &self.hours {
            match Schedule::parse_weekly(hours) {
                Ok(weekly) => {
                    patch.schedule = Some(Schedule {
                        weekly,
                        closures: vec![],
                    })
                }
                Err(e) => p.0.push(format!("--hours: {e}")),
            }
        }
        p.finish()?;
        Ok(patch)
    }
}

/// Whether the branch is open now, as a person reads it (local time).
fn open_now(b: &Branch, r: &Restaurant) -> String {
    if !b.active {
        return "removed".into();
    }
    let tz = r.tz();
    let local =
        |t: chrono::DateTime<Utc>| t.with_timezone(&tz).format("%a %d %b %H:%M").to_string();
    match b.schedule.0.status(tz, Utc::now()) {
        Status::Open { until: Some(t) } => format!("open until {}", local(t)),
        Status::Open { until: None } => "open".into(),
        Status::Closed { opens: Some(t) } => format!("closed, opens {}", local(t)),
        Status::Closed { opens: None } => "closed".into(),
    }
}

fn offers(b: &Branch) -> &'static str {
    match (b.offers_pickup, b.offers_delivery) {
        (true, true) => "pickup, delivery",
        (true, false) => "pickup",
        _ => "delivery",
    }
}

fn closures_text(s: &Schedule) -> String {
    let today = Utc::now().date_naive();
    let upcoming: Vec<String> = s
        .closures
        .iter()
        .filter(|c| c.to >= today)
        .map(|c| {
            let range = if c.from == c.to {
                c.from.to_string()
            } else {
                format!("{}..{}", c.from, c.to)
            };
            match &c.note {
                Some(note) => format!("{range} ({note})"),
                None => range,
            }
        })
        .collect();
    or_dash(Some(&upcoming.join(", ")))
}

#[derive(Serialize)]
struct View<'a> {
    code: &'a str,
    name_en: &'a str,
    name_ar: &'a str,
    address: Option<&'a str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    radius_km: f64,
    offers_pickup: bool,
    offers_delivery: bool,
    staff_number: Option<&'a str>,
    active: bool,
    hours: String,
    schedule: &'a Schedule,
    now: String,
}

fn view<'a>(b: &'a Branch, r: &Restaurant) -> View<'a> {
    View {
        code: &b.code,
        name_en: &b.name_en,
        name_ar: &b.name_ar,
        address: b.address.as_deref(),
        latitude: b.latitude,
        longitude: b.longitude,
        radius_km: b.delivery_radius_km,
        offers_pickup: b.offers_pickup,
        offers_delivery: b.offers_delivery,
        staff_number: b.staff_whatsapp.as_deref(),
        active: b.active,
        hours: b.schedule.0.weekly_text(),
        schedule: &b.schedule.0,
        now: open_now(b, r),
    }
}

async fn branch(pool: &sqlx::PgPool, r: &Restaurant, code: &str) -> anyhow::Result<Branch> {
    branches::by_code(pool, r.id, code).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no branch {code:?} (see `waiterctl branch list --restaurant {}`)",
            r.slug,
            r.slug
        )
    })
}

pub async fn run(cmd: BranchCommand, out: Out) -> anyhow::Result<()> {
    let pool = connect::pool().await?;
    match cmd {
        BranchCommand::Add(args) => {
            let r = connect::restaurant(&pool, &args.restaurant).await?;
            let mut p = Problems::default();
            p.check(check::code("--code", &args.code));
            if args.settings.name_en.is_none() {
                p.0.push("--name-en is required".into());
            }
            if args.settings.name_ar.is_none() {
                p.0.push("--name-ar is required".into());
            }
            if args.settings.latitude.is_some() != args.settings.longitude.is_some() {
                p.0.push("--latitude and --longitude go together".into());
            }
            p.finish()?;
            let patch = args.settings.patch()?;
            let new = NewBranch {
                code: args.code.clone(),
                name_en: patch.name_en.unwrap_or_default(),
                name_ar: patch.name_ar.unwrap_or_default(),
                address: patch.address.flatten(),
                latitude: patch.latitude.flatten(),
                longitude: patch.longitude.flatten(),
                delivery_radius_km: patch.delivery_radius_km.unwrap_or(0.0),
                staff_whatsapp: patch.staff_whatsapp.flatten(),
                offers_pickup: patch.offers_pickup.unwrap_or(true),
                offers_delivery: patch.offers_delivery.unwrap_or(true),
                schedule: patch.schedule.unwrap_or_default(),
            };
            let id = branches::add(&pool, r.id, &new).await?;
            out.done(
                &format!(
                    "added branch {} to {} ({})",
                    args.code,
                    r.slug,
                    new.schedule.weekly_text()
                ),
                &serde_json::json!({ "id": id, "code": args.code }),
            );
        }
        BranchCommand::Update(args) => {
            let r = connect::restaurant(&pool, &args.restaurant).await?;
            let current = branch(&pool, &r, &args.code).await?;
            let mut patch = args.settings.patch()?;
            if let Some(schedule) = &mut patch.schedule {
                // New weekly hours keep the branch's closures.
                schedule.closures = current.schedule.0.closures.clone();
            }
            patch.active = args.active;
            let changed = branches::update(&pool, r.id, &args.code, &patch).await?;
            anyhow::ensure!(
                !changed.is_empty(),
                "nothing to change: give at least one setting"
            );
            out.done(
                &format!(
                    "updated branch {} of {}: {}",
                    args.code,
                    r.slug,
                    changed.join(", ")
                ),
                &serde_json::json!({ "code": args.code, "changed": changed }),
            );
        }
        BranchCommand::List { restaurant, all } => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            let list = branches::list(&pool, r.id, all).await?;
            let views: Vec<View> = list.iter().map(|b| view(b, &r)).collect();
            let rows = list
                .iter()
                .zip(&views)
                .map(|(b, v)| {
                    vec![
                        v.code.to_string(),
                        v.name_en.to_string(),
                        v.name_ar.to_string(),
                        offers(b).to_string(),
                        format!("{} km", v.radius_km),
                        v.hours.clone(),
                        closures_text(v.schedule),
                        v.now.clone(),
                    ]
                })
                .collect();
            if !out.json {
                println!("{} — opening hours in {}", r.slug, r.time_zone);
            }
            out.table(
                &[
                    "code",
                    "name (en)",
                    "name (ar)",
                    "offers",
                    "radius",
                    "hours",
                    "closed on",
                    "now",
                ],
                rows,
                &views,
            );
        }
        BranchCommand::Remove { restaurant, code } => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            branch(&pool, &r, &code).await?;
            let patch = BranchPatch {
                active: Some(false),
                ..BranchPatch::default()
            };
            branches::update(&pool, r.id, &code, &patch).await?;
            out.done(
                &format!("branch {code} of {} removed: no longer offered to customers (kept for its orders)", r.slug),
                &serde_json::json!({ "code": code, "active": false }),
            );
        }
        BranchCommand::Hours {
            restaurant,
            code,
            set,
            always,
        } => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            let b = branch(&pool, &r, &code).await?;
            let mut schedule = b.schedule.0.clone();
            if !always && set.is_none() {
                print_hours(&b, &r, out);
                return Ok(());
            }
            schedule.weekly = match &set {
                Some(text) => {
                    Schedule::parse_weekly(text).map_err(|e| anyhow::anyhow!("--set: {e}"))?
                }
                None => vec![],
            };
            save_schedule(&pool, &r, &code, schedule, out).await?;
        }
        BranchCommand::Close {
            restaurant,
            code,
            from,
            to,
            note,
        } => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            let b = branch(&pool, &r, &code).await?;
            let to = to.unwrap_or(from);
            anyhow::ensure!(to >= from, "--to {to} is before --from {from}");
            let mut schedule = b.schedule.0.clone();
            schedule.closures.retain(|c| c.from != from);
            schedule.closures.push(Closure {
                from,
                to,
                note: note.filter(|n| !n.trim().is_empty()),
            });
            schedule.closures.sort_by_key(|c| c.from);
            save_schedule(&pool, &r, &code, schedule, out).await?;
        }
        BranchCommand::Reopen {
            restaurant,
            code,
            from,
        } => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            let b = branch(&pool, &r, &code).await?;
            let mut schedule = b.schedule.0.clone();
            let before = schedule.closures.len();
            schedule.closures.retain(|c| c.from != from);
            anyhow::ensure!(
                schedule.closures.len() < before,
                "branch {code} has no closure starting on {from}"
            );
            save_schedule(&pool, &r, &code, schedule, out).await?;
        }
    }
    Ok(())
}

async fn save_schedule(
    pool: &sqlx::PgPool,
    r: &Restaurant,
    code: &str,
    schedule: Schedule,
    out: Out,
) -> anyhow::Result<()> {
    let patch = BranchPatch {
        schedule: Some(schedule),
        ..BranchPatch::default()
    };
    branches::update(pool, r.id, code, &patch).await?;
    let b = branch(pool, r, code).await?;
    print_hours(&b, r, out);
    Ok(())
}

fn print_hours(b: &Branch, r: &Restaurant, out: Out) {
    let v = view(b, r);
    out.settings(
        vec![
            (
                "branch",
                format!("{} ({} / {})", b.code, b.name_en, b.name_ar),
            ),
            ("time zone", r.time_zone.clone()),
            ("hours", v.hours.clone()),
            ("closed on", closures_text(&b.schedule.0)),
            ("now", v.now.clone()),
        ],
        &v,
    );
}
