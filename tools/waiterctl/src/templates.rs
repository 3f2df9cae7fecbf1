//! `waiterctl templates set|remove|list|check`: the content templates
//! registry (ContentSids per restaurant, message and language).

use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use waiter_bot::ui::templates::{self, Kind, Spec, ALL};
use waiter_migrations::templates::{self as registry, ContentTemplate, STAFF_REPLY, TICKET};

use crate::{check, connect, output::Out};

#[derive(Subcommand)]
pub enum TemplatesCommand {
    /// Register the ContentSid of a message in a language (replacing any).
    Set {
        #[arg(long)]
        restaurant: String,
        /// The message (see `templates check` for the names).
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        language: Language,
        /// Twilio ContentSid (HX…).
        #[arg(long)]
        sid: String,
        /// WhatsApp approved it: it may be sent outside the 24-hour window.
        #[arg(long)]
        approved: bool,
    },
    /// Remove a registration.
    Remove {
        #[arg(long)]
        restaurant: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        language: Language,
    },
    /// A restaurant's registered templates.
    List {
        #[arg(long)]
        restaurant: String,
    },
    /// Which interactive messages fall back to numbered text, and which
    /// cannot be sent outside the 24-hour window, per restaurant and language.
    Check {
        /// One restaurant (default: every one).
        #[arg(long)]
        restaurant: Option<String>,
        /// Exit with status 1 when a message cannot be sent outside the window.
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Language {
    Ar,
    En,
    Both,
}

impl Language {
    fn codes(self) -> &'static [&'static str] {
        match self {
            Language::Ar => &["ar"],
            Language::En => &["en"],
            Language::Both => &["ar", "en"],
        }
    }
}

/// Every message a template can be registered for: the bot's, the ticket
/// and the staff reply.
fn catalogue() -> Vec<Spec> {
    let mut all = ALL.to_vec();
    all.push(Spec {
        name: TICKET,
        kind: Kind::Notice,
        outside_window: true,
    });
    all.push(Spec {
        name: STAFF_REPLY,
        kind: Kind::Notice,
        outside_window: true,
    });
    all
}

fn spec(name: &str) -> anyhow::Result<Spec> {
    catalogue()
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = catalogue().iter().map(|s| s.name).collect();
            anyhow::anyhow!(
                "--name {name:?} is not a message (messages: {})",
                names.join(", ")
            )
        })
}

#[derive(Serialize)]
struct Finding {
    restaurant: String,
    name: &'static str,
    kind: &'static str,
    language: &'static str,
    content_sid: Option<String>,
    in_session: &'static str,
    outside_window: &'static str,
}

pub async fn run(cmd: TemplatesCommand, out: Out) -> anyhow::Result<()> {
    let pool = connect::pool().await?;
    match cmd {
        TemplatesCommand::Set {
            restaurant,
            name,
            language,
            sid,
            approved,
        } => {
            let spec = spec(&name)?;
            check::content_sid(&sid).map_err(anyhow::Error::msg)?;
            if approved && spec.kind == Kind::ListPicker {
                anyhow::bail!("{name} is a list picker: WhatsApp never approves list pickers for use outside the 24-hour window");
            }
            let r = connect::restaurant(&pool, &restaurant).await?;
            for lang in language.codes() {
                registry::set(&pool, r.id, &name, lang, &sid, approved).await?;
            }
            out.done(
                &format!(
                    "{}: {name} ({}) → {sid}{}",
                    r.slug,
                    language.codes().join(", "),
                    if approved { ", approved" } else { "" }
                ),
                &serde_json::json!({ "restaurant": r.slug, "name": name, "languages": language.codes(), "content_sid": sid, "approved": approved }),
            );
        }
        TemplatesCommand::Remove {
            restaurant,
            name,
            language,
        } => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            let mut removed = 0;
            for lang in language.codes() {
                removed += usize::from(registry::remove(&pool, r.id, &name, lang).await?);
            }
            anyhow::ensure!(
                removed > 0,
                "{} has no {name} template in {}",
                r.slug,
                language.codes().join(", ")
            );
            out.done(
                &format!("{}: removed {removed} template(s)", r.slug),
                &serde_json::json!({ "removed": removed }),
            );
        }
        TemplatesCommand::List { restaurant } => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            let list = registry::list(&pool, r.id).await?;
            let rows = list
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.language.clone(),
                        t.content_sid.clone(),
                        if t.approved { "yes" } else { "no" }.into(),
                        t.updated_at.format("%Y-%m-%d %H:%M").to_string(),
                    ]
                })
                .collect();
            #[derive(Serialize)]
            struct Row<'a> {
                name: &'a str,
                language: &'a str,
                content_sid: &'a str,
                approved: bool,
            }
            let json: Vec<Row> = list
                .iter()
                .map(|t| Row {
                    name: &t.name,
                    language: &t.language,
                    content_sid: &t.content_sid,
                    approved: t.approved,
                })
                .collect();
            out.table(
                &["message", "language", "content sid", "approved", "updated"],
                rows,
                &json,
            );
        }
        TemplatesCommand::Check { restaurant, strict } => {
            let restaurants = match restaurant {
                Some(name) => vec![connect::restaurant(&pool, &name).await?],
                None => waiter_migrations::restaurants::all(&pool).await?,
            };
            let mut findings = Vec::new();
            for r in &restaurants {
                let registered = registry::list(&pool, r.id).await?;
                findings.extend(check_one(&r.slug, &registered));
            }
            let blocked = findings
                .iter()
                .filter(|f| f.outside_window.starts_with("cannot"))
                .count();
            let fallbacks = findings
                .iter()
                .filter(|f| f.in_session.starts_with("numbered"))
                .count();
            let rows = findings
                .iter()
                .map(|f| {
                    vec![
                        f.restaurant.clone(),
                        f.name.to_string(),
                        f.kind.to_string(),
                        f.language.to_string(),
                        f.content_sid.clone().unwrap_or_else(|| "—".into()),
                        f.in_session.to_string(),
                        f.outside_window.to_string(),
                    ]
                })
                .collect();
            out.table(
                &[
                    "restaurant",
                    "message",
                    "kind",
                    "lang",
                    "content sid",
                    "in the 24-hour window",
                    "outside it",
                ],
                rows,
                &findings,
            );
            if !out.json {
                println!("{fallbacks} message(s) fall back to numbered text; {blocked} cannot be sent outside the 24-hour window");
            }
            if strict && blocked > 0 {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

/// What each message of a restaurant does with the templates it has.
fn check_one(slug: &str, registered: &[ContentTemplate]) -> Vec<Finding> {
    let mut out = Vec::new();
    for spec in catalogue() {
        for language in ["ar", "en"] {
            let found = registered
                .iter()
                .find(|t| t.name == spec.name && t.language == language);
            let in_session = match (found, spec.kind) {
                (Some(_), Kind::Notice) => "template",
                (Some(_), _) => "interactive",
                (None, Kind::Notice) => "free text",
                (None, _) => "numbered text (fallback)",
            };
            let outside_window = match (spec.outside_window, found) {
                (false, _) if spec.name == templates::RATING_LIST => {
                    "never (list pickers are in-session only)"
                }
                (false, _) => "not sent outside it",
                (true, Some(t)) if t.approved => "approved template",
                (true, Some(_)) => "cannot: template not approved",
                (true, None) => "cannot: no approved template",
            };
            out.push(Finding {
                restaurant: slug.to_string(),
                name: spec.name,
                kind: spec.kind.label(),
                language,
                content_sid: found.map(|t| t.content_sid.clone()),
                in_session,
                outside_window,
            });
        }
    }
    out
}
