//! A simulated customer chatting with a restaurant's bot through the whole
//! pipeline: signed webhooks in, replies read back from the rows written
//! and from what the Twilio simulator accepted.
//!
//! Choices are read back from what the bot sent (the `choices` of the reply
//! rows, or the numbered lines of the text fallback), never hard-coded.

use std::time::Duration;

use serde_json::Value;
use twilio_sim::{InboundSpec, SentMessage};
use uuid::Uuid;
use waiter_harness::{eventually, TestRestaurant};

use crate::Pipeline;

pub const WAIT: Duration = Duration::from_secs(30);

/// Inside the Olaya branch's 8 km delivery radius (demo branches, about
/// 0.8 km from it) and outside Al Malqa's.
pub const NEAR_OLAYA: (f64, f64) = (24.7000, 46.6900);
pub const ADDRESS: &str = "Tahlia St, Riyadh";

pub fn customer(n: u32) -> String {
    format!("whatsapp:+9665{:08}", n)
}

pub fn has_arabic(text: &str) -> bool {
    text.chars()
        .any(|c| ('\u{0621}'..='\u{064A}').contains(&c) && c.is_alphabetic())
}

/// "12.34 SAR" from minor units.
pub fn sar(minor: i64) -> String {
    format!("{}.{:02} SAR", minor / 100, minor % 100)
}

/// An outbound message row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Out {
    pub id: Uuid,
    pub body: String,
    pub payload: Value,
    pub wa_sid: Option<String>,
}

pub const OUT: &str = "SELECT id, body, payload, wa_sid FROM messages";

/// The (id, title) of the first choice in `rows` whose id starts with
/// `prefix` and whose title contains `title`.
pub fn opt(rows: &[Out], prefix: &str, title: &str) -> (String, String) {
    rows.iter()
        .rev()
        .flat_map(|r| r.payload["choices"].as_array().cloned().unwrap_or_default())
        .find(|c| {
            c["id"].as_str().unwrap_or("").starts_with(prefix)
                && c["title"].as_str().unwrap_or("").contains(title)
        })
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["title"].as_str().unwrap().to_string(),
            )
        })
        .unwrap_or_else(|| panic!("no {prefix}… choice titled {title:?} in {rows:#?}"))
}

/// The ids of the choices of the last row that has any.
pub fn choice_ids(rows: &[Out]) -> Vec<String> {
    rows.iter()
        .rev()
        .find_map(|r| r.payload["choices"].as_array().filter(|c| !c.is_empty()))
        .map(|choices| {
            choices
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The number of the option whose line in a numbered text fallback
/// contains `title` ("2. Lamb Kebab — …" → "2").
pub fn numbered(text: &str, title: &str) -> String {
    text.lines()
        .filter(|line| line.contains(title))
        .find_map(|line| {
            let digits: String = line
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(|c| c.is_ascii_digit())
                .collect();
            let numbered = line
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .starts_with(". ");
            (numbered && !digits.is_empty()).then_some(digits)
        })
        .unwrap_or_else(|| panic!("no numbered option {title:?} in {text}"))
}

pub fn all_text(rows: &[Out]) -> String {
    rows.iter()
        .map(|r| r.body.as_str())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// One customer of one restaurant, chatting.
pub struct Chat<'p> {
    pub p: &'p Pipeline,
    pub r: &'p TestRestaurant,
    pub from: String,
    pub name: Option<&'static str>,
}

impl<'p> Chat<'p> {
    pub fn new(
        p: &'p Pipeline,
        r: &'p TestRestaurant,
        from: String,
        name: Option<&'static str>,
    ) -> Self {
        Chat { p, r, from, name }
    }

    pub fn spec(&self, body: &str) -> InboundSpec {
        let spec = InboundSpec::text(&self.r.account_sid, &self.from, &self.r.number, body);
        match self.name {
            Some(name) => spec.with_profile_name(name),
            None => spec,
        }
    }

    /// Posts a webhook; returns the stored inbound message's id. The bot's
    /// replies are written in the same transaction as that row, so they
    /// are all visible as soon as it is.
    pub async fn post(&self, spec: InboundSpec) -> Uuid {
        let answer = self.p.sim.send_inbound(spec).await.expect("webhook posted");
        assert_eq!(answer.status, 200, "{}", answer.body);
        let sid = answer.message_sid;
        eventually("the inbound message is stored", WAIT, || async {
            sqlx::query_scalar::<_, Uuid>("SELECT id FROM messages WHERE wa_sid = $1")
                .bind(&sid)
                .fetch_optional(self.p.env.pool())
                .await
                .unwrap()
        })
        .await
    }

    pub async fn replies_to(&self, inbound: Uuid) -> Vec<Out> {
        sqlx::query_as(&format!(
            "{OUT} WHERE reply_to = $1 AND direction = 'out' ORDER BY reply_index"
        ))
        .bind(inbound)
        .fetch_all(self.p.env.pool())
        .await
        .unwrap()
    }

    /// Waits until "Twilio" accepted every one of `rows`, as they were
    /// recorded; returns them with their sids.
    pub async fn delivered(&self, rows: &[Out]) -> Vec<Out> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let fresh: Vec<Out> = eventually("the replies reach the simulator", WAIT, || async {
            let fresh: Vec<Out> = sqlx::query_as(&format!(
                "{OUT} WHERE id = ANY($1) ORDER BY reply_index, created_at"
            ))
            .bind(&ids)
            .fetch_all(self.p.env.pool())
            .await
            .unwrap();
            let sent = self.p.sim.sent_to(&self.from);
            fresh
                .iter()
                .all(|r| {
                    r.wa_sid
                        .as_ref()
                        .is_some_and(|sid| sent.iter().any(|m| &m.sid == sid))
                })
                .then_some(fresh)
        })
        .await;
        let sent = self.p.sim.sent_to(&self.from);
        for row in &fresh {
            let message = sent
                .iter()
                .find(|m| Some(&m.sid) == row.wa_sid.as_ref())
                .unwrap();
            assert_eq!(message.body.as_deref(), Some(row.body.as_str()));
            assert_eq!(message.from.as_deref(), Some(self.r.number.as_str()));
        }
        fresh
    }

    /// Sends a message that the bot answers; returns the answer as sent.
    pub async fn send(&self, spec: InboundSpec) -> Vec<Out> {
        let what = format!("{:?} {:?}", spec.body, spec.extra);
        let inbound = self.post(spec).await;
        let replies = self.replies_to(inbound).await;
        assert!(!replies.is_empty(), "the bot did not answer {what}");
        self.delivered(&replies).await
    }

    pub async fn text(&self, body: &str) -> Vec<Out> {
        self.send(self.spec(body)).await
    }

    /// Taps a quick-reply button.
    pub async fn tap(&self, (id, title): &(String, String)) -> Vec<Out> {
        self.send(
            self.spec(title)
                .with_param("MessageType", "button")
                .with_param("ButtonText", title.as_str())
                .with_param("ButtonPayload", id.as_str()),
        )
        .await
    }

    /// Picks a list row.
    pub async fn pick(&self, (id, title): &(String, String)) -> Vec<Out> {
        self.send(
            self.spec(title)
                .with_param("MessageType", "interactive")
                .with_param("ListId", id.as_str())
                .with_param("ListTitle", title.as_str()),
        )
        .await
    }

    pub async fn location(&self, (lat, lon): (f64, f64), address: &str) -> Vec<Out> {
        self.send(
            self.spec("")
                .with_param("MessageType", "location")
                .with_param("Latitude", lat.to_string())
                .with_param("Longitude", lon.to_string())
                .with_param("Address", address),
        )
        .await
    }

    /// Sends a message the bot must not answer; returns its id.
    pub async fn unanswered(&self, body: &str) -> Uuid {
        let inbound = self.post(self.spec(body)).await;
        let replies = self.replies_to(inbound).await;
        assert!(
            replies.is_empty(),
            "the bot answered {body:?}: {}",
            all_text(&replies)
        );
        inbound
    }

    /// The first message "Twilio" accepted for this customer containing `needle`.
    pub async fn received(&self, needle: &str) -> SentMessage {
        eventually(&format!("a message with {needle:?}"), WAIT, || async {
            self.p
                .sim
                .sent_to(&self.from)
                .into_iter()
                .find(|m| m.body.as_deref().unwrap_or("").contains(needle))
        })
        .await
    }

    pub async fn conversation(&self) -> (Uuid, bool) {
        sqlx::query_as(
            "SELECT id, bot_active FROM conversations WHERE restaurant_id = $1 AND customer = $2",
        )
        .bind(self.r.id)
        .bind(&self.from)
        .fetch_one(self.p.env.pool())
        .await
        .unwrap()
    }

    /// The newest outbound row of this conversation built from `template`.
    pub async fn last_sent(&self, template: &str) -> Out {
        let row: Out = sqlx::query_as(&format!(
            "{OUT} WHERE conversation_id = (SELECT id FROM conversations WHERE restaurant_id = $1 AND customer = $2) \
             AND direction = 'out' AND payload->>'template' = $3 ORDER BY created_at DESC, reply_index DESC LIMIT 1"
        ))
        .bind(self.r.id)
        .bind(&self.from)
        .bind(template)
        .fetch_one(self.p.env.pool())
        .await
        .unwrap();
        self.delivered(std::slice::from_ref(&row)).await.remove(0)
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct Order {
    pub id: Uuid,
    pub number: i64,
    pub status: String,
    pub fulfilment: String,
    pub branch_id: Option<Uuid>,
    pub address: Option<String>,
    pub payment_method: String,
    pub lines: Value,
    pub subtotal: i64,
    pub delivery_fee: i64,
    pub total: i64,
    pub rating: Option<i16>,
    pub rating_comment: Option<String>,
}

pub async fn order(p: &Pipeline, id: Uuid) -> Order {
    sqlx::query_as(
        "SELECT id, number, status, fulfilment, branch_id, address, payment_method, lines, subtotal, \
            delivery_fee, total, rating, rating_comment FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_one(p.env.pool())
    .await
    .unwrap()
}

/// The newest order of a customer, once it has reached `status`.
pub async fn newest_order(chat: &Chat<'_>, status: &str) -> Order {
    let id = eventually(&format!("an order {status}"), WAIT, || async {
        sqlx::query_scalar::<_, Uuid>(
            "SELECT o.id FROM orders o JOIN conversations c ON c.id = o.conversation_id \
             WHERE c.restaurant_id = $1 AND c.customer = $2 AND o.status = $3 \
             ORDER BY o.created_at DESC LIMIT 1",
        )
        .bind(chat.r.id)
        .bind(&chat.from)
        .bind(status)
        .fetch_optional(chat.p.env.pool())
        .await
        .unwrap()
    })
    .await;
    order(chat.p, id).await
}

/// An English order of 2 × Chicken Shish Tawook, paid cash: delivered to a
/// shared location near Olaya, or picked up at `branch`. Returns it
/// CONFIRMED, after the customer was told.
pub async fn place_order(chat: &Chat<'_>, pickup_at: Option<&str>) -> Order {
    let greeting = chat.text("hi").await;
    let menu = match pickup_at {
        None => {
            chat.tap(&opt(&greeting, "ful:delivery", "")).await;
            chat.location(NEAR_OLAYA, ADDRESS).await
        }
        Some(branch) => {
            let branches = chat.tap(&opt(&greeting, "ful:pickup", "")).await;
            chat.pick(&opt(&branches, "branch:", branch)).await
        }
    };
    let items = chat.pick(&opt(&menu, "cat:", "Grills")).await;
    let quantity = chat.pick(&opt(&items, "item:", "Tawook")).await;
    let added = chat.tap(&opt(&quantity, "qty:2", "")).await;
    let payment = chat.tap(&opt(&added, "act:checkout", "")).await;
    let confirm = chat.tap(&opt(&payment, "pay:cash", "")).await;
    chat.tap(&opt(&confirm, "act:confirm", "")).await;
    let order = newest_order(chat, "CONFIRMED").await;
    chat.received(&format!("Order #{} is confirmed", order.number))
        .await;
    order
}
