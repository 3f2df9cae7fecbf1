//! Waiter's PostgreSQL schema and the queries several stages and tools
//! share: restaurants (auth tokens sealed), branches and their hours, menu
//! import and export, the content templates registry, the demo seed. Each
//! stage keeps its own queries next to its logic; the tables are listed in
//! `docs/ARCHITECTURE.md` with their owning stage.

/// In an UPDATE being built: `, <column> = <value>` when the value is given.
macro_rules! set_given {
    ($q:ident, $changed:ident, $column:literal, $value:expr) => {
        if let Some(v) = $value {
            $q.push(concat!(", ", $column, " = ")).push_bind(v);
            $changed.push($column);
        }
    };
}

pub mod branches;
pub mod consent;
pub mod customer;
pub mod demo;
pub mod menu;
pub mod restaurants;
pub mod templates;
pub mod webhooks;

pub use restaurants::{NewRestaurant, Restaurant};

/// The migrations under `migrations/sql`, embedded in every binary that
/// may need to run them (`waiterctl migrate`, the test harness).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./sql");
