//! `waiterctl customer export|forget`: a customer's data requests. The
//! work is `waiter_migrations::customer`; this prints it.

use clap::{Args, Subcommand};
use waiter_migrations::customer;

use crate::{connect, output::Out};

/// Whose data, at which restaurant, asked by whom.
#[derive(Args)]
pub struct Request {
    /// Restaurant id or slug.
    #[arg(long)]
    restaurant: String,
    /// The customer's address as Twilio writes it: whatsapp:+E164.
    #[arg(long)]
    customer: String,
    /// Who asks (recorded in `customer_requests`); default: $USER.
    #[arg(long, env = "USER", default_value = "operator")]
    operator: String,
}

#[derive(Subcommand)]
pub enum CustomerCommand {
    /// Everything held about a customer at a restaurant, as JSON on stdout.
    Export(Request),
    /// Erase a customer's personal data at a restaurant (orders stay,
    /// anonymised). One transaction, recorded in `customer_requests`.
    Forget(Request),
}

pub async fn run(cmd: CustomerCommand, out: Out) -> anyhow::Result<()> {
    let pool = connect::pool().await?;
    match cmd {
        CustomerCommand::Export(Request {
            restaurant,
            customer: address,
            operator,
        }) => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            let document = customer::export(&pool, r.id, &address, &operator).await?;
            // A document, not a table: JSON whether or not --json is given.
            out.json(&document);
        }
        CustomerCommand::Forget(Request {
            restaurant,
            customer: address,
            operator,
        }) => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            let done = customer::forget(&pool, r.id, &address, &operator).await?;
            let rows = [
                ("messages erased", done.messages),
                ("staff tickets erased", done.tickets),
                ("orders anonymised", done.orders),
                ("order history entries", done.order_history),
                ("webhook audit rows", done.webhook_audit),
                ("outbox rows deleted", done.outbox),
                ("marketing consent rows", done.marketing_consent),
            ]
            .into_iter()
            .map(|(what, n)| vec![what.to_string(), n.to_string()])
            .collect();
            out.table(&["erased", "rows"], rows, &done);
            if !out.json {
                eprintln!(
                    "{address} is forgotten at {}; what the streams still hold expires as docs/DATA.md says",
                    r.slug
                );
            }
        }
    }
    Ok(())
}
