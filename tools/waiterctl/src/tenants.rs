//! `waiterctl tenant upsert|list`: the older spelling of `restaurant`,
//! kept for the `just tenant` recipe and existing scripts.

use clap::Subcommand;

use crate::{connect, output::Out, restaurant};

// Parsed once per run: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum TenantCommand {
    /// Add a restaurant, or replace every setting of the one with this slug.
    Upsert {
        #[arg(long)]
        slug: String,
        #[command(flatten)]
        settings: restaurant::Settings,
        /// Also give it the demo branches and menu (docs/menu-example.csv).
        #[arg(long)]
        demo_menu: bool,
    },
    /// Every restaurant (as `restaurant list`).
    List,
}

pub async fn run(cmd: TenantCommand, out: Out) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::Upsert {
            slug,
            settings,
            demo_menu,
        } => {
            crate::check::slug(&slug).map_err(anyhow::Error::msg)?;
            let pool = connect::pool().await?;
            let id = restaurant::upsert(&pool, &slug, &settings).await?;
            if demo_menu {
                waiter_migrations::demo::seed_branches_and_menu(&pool, id).await?;
            }
            out.done(
                &id.to_string(),
                &serde_json::json!({ "id": id, "slug": slug }),
            );
            Ok(())
        }
        TenantCommand::List => restaurant::run(restaurant::RestaurantCommand::List, out).await,
    }
}
