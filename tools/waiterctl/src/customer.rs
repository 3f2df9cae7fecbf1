//! `waiterctl customer export|forget`: a customer's data requests. The
//! work is `waiter_migrations::customer`; this prints it.

use clap::{Args, Subcommand};
use waiter_migrations::customer;
use waiter_nats::erase::{customer_needles, erase_dead_letters_mentioning};

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
            // A second run finds nothing in the database but still erases
            // dead letters a failed first run left.
            let done = match customer::forget(&pool, r.id, &address, &operator).await {
                Ok(done) => Some(done),
                Err(customer::CustomerError::Unknown(_)) => None,
                Err(e) => return Err(e.into()),
            };
            let bus = connect::bus().await?;
            let needles = customer_needles(&address, done.as_ref().and_then(|d| d.conversation_id));
            let dead_letters = erase_dead_letters_mentioning(&bus, &needles, |read, total| {
                eprint!("\rreading dead letters: {read}/{total}");
            })
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "{e}; the database is erased: run the same forget again to erase the dead letters"
                )
            })?;
            eprintln!();
            let Some(done) = done else {
                if dead_letters == 0 {
                    anyhow::bail!("the restaurant holds nothing about {address}");
                }
                out.done(
                    &format!("{dead_letters} dead letter(s) erased"),
                    &serde_json::json!({ "dead_letters": dead_letters }),
                );
                return Ok(());
            };
            let rows = [
                ("messages erased", done.messages),
                ("staff tickets erased", done.tickets),
                ("orders anonymised", done.orders),
                ("order history entries", done.order_history),
                ("webhook audit rows", done.webhook_audit),
                ("outbox rows deleted", done.outbox),
                ("marketing consent rows", done.marketing_consent),
                ("dead letters erased", dead_letters),
            ]
            .into_iter()
            .map(|(what, n)| vec![what.to_string(), n.to_string()])
            .collect();
            out.table(
                &["erased", "rows"],
                rows,
                &serde_json::json!({ "database": done, "dead_letters": dead_letters }),
            );
            if !out.json {
                eprintln!(
                    "{address} is forgotten at {}; the work streams' copies expire within 7 days (docs/DATA.md)",
                    r.slug
                );
            }
        }
    }
    Ok(())
}
