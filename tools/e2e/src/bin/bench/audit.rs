//! Loss and duplicates, latencies and stage lags of one run, from the
//! database and the simulator's record, restricted to the run's own
//! message SIDs (the database may hold other data).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use sqlx::PgPool;
use twilio_sim::SentMessage;

use crate::{hist, load::Sent};

/// Inbound messages of `sids` with a reply accepted by Twilio.
pub async fn answered(pool: &PgPool, sids: &[String]) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(DISTINCT i.id) FROM messages i JOIN messages o ON o.reply_to = i.id \
         WHERE i.direction = 'in' AND i.wa_sid = ANY($1) AND o.wa_sid IS NOT NULL",
    )
    .bind(sids)
    .fetch_one(pool)
    .await?)
}

/// Waits until every message of `sids` is answered (or `patience` passed);
/// returns the seconds since `started`.
pub async fn drain(
    pool: &PgPool,
    sids: &[String],
    started: Instant,
    patience: Duration,
) -> anyhow::Result<f64> {
    let deadline = Instant::now() + patience;
    while (answered(pool, sids).await? as usize) < sids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(started.elapsed().as_secs_f64())
}

pub struct Audit {
    pub unique: usize,
    pub inbound_rows: i64,
    pub stored_twice: i64,
    pub unanswered: usize,
    pub out_rows: i64,
    pub out_sent: i64,
    pub twilio_total: i64,
    pub to_twilio: Histogram<u64>,
    pub to_dashboard: Histogram<u64>,
    pub stage_lags: Vec<(String, Option<f64>, Option<f64>)>,
}

fn micros_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_microseconds().unwrap_or(0).max(1) as u64
}

/// `twilio`: the Messages API calls of this run (to its customers);
/// `events`: when each message's `message.sent` reached a dashboard.
pub async fn audit(
    pool: &PgPool,
    sent: &[Sent],
    twilio: &[SentMessage],
    events: &HashMap<String, DateTime<Utc>>,
) -> anyhow::Result<Audit> {
    let sids: Vec<String> = sent.iter().map(|s| s.sid.clone()).collect();
    // reply (Twilio sid, message id) per inbound sid: the first reply decided.
    let rows: Vec<(String, String, uuid::Uuid)> = sqlx::query_as(
        "SELECT DISTINCT ON (i.id) i.wa_sid, o.wa_sid, o.id FROM messages i JOIN messages o ON o.reply_to = i.id \
         WHERE i.direction = 'in' AND i.wa_sid = ANY($1) AND o.wa_sid IS NOT NULL ORDER BY i.id, o.reply_index",
    )
    .bind(&sids)
    .fetch_all(pool)
    .await?;
    let first_reply: HashMap<String, (String, uuid::Uuid)> =
        rows.into_iter().map(|(i, o, id)| (i, (o, id))).collect();
    let twilio_at: HashMap<&str, DateTime<Utc>> = twilio
        .iter()
        .map(|m| (m.sid.as_str(), m.received_at))
        .collect();
    let (mut to_twilio, mut to_dashboard, mut unanswered) = (hist(), hist(), 0);
    for s in sent {
        let Some((twilio_sid, message_id)) = first_reply.get(&s.sid) else {
            unanswered += 1;
            continue;
        };
        if let Some(at) = twilio_at.get(twilio_sid.as_str()) {
            to_twilio.record(micros_between(s.at, *at)).ok();
        }
        if let Some(at) = events.get(&message_id.to_string()) {
            to_dashboard.record(micros_between(s.at, *at)).ok();
        }
    }
    let count = |sql: String| {
        let sids = &sids;
        async move {
            sqlx::query_scalar::<_, i64>(&sql)
                .bind(sids)
                .fetch_one(pool)
                .await
        }
    };
    let stored_twice = count(
        "SELECT count(*) FROM (SELECT wa_sid FROM messages WHERE direction = 'in' AND wa_sid = ANY($1) \
         GROUP BY wa_sid HAVING count(*) > 1) d"
            .into(),
    )
    .await?;
    let inbound_rows =
        count("SELECT count(*) FROM messages WHERE direction = 'in' AND wa_sid = ANY($1)".into())
            .await?;
    const REPLIES: &str = "FROM messages o JOIN messages i ON o.reply_to = i.id \
        WHERE i.direction = 'in' AND i.wa_sid = ANY($1) AND o.direction = 'out' AND o.author = 'bot'";
    let out_rows = count(format!("SELECT count(*) {REPLIES}")).await?;
    let out_sent = count(format!(
        "SELECT count(*) {REPLIES} AND o.wa_sid IS NOT NULL"
    ))
    .await?;
    // Where the time goes: each stage's lag, from the rows' timestamps.
    let stage_lags = sqlx::query_as(
        "WITH firsts AS ( \
            SELECT DISTINCT ON (i.id) a.received_at AS ingest_at, a.recorded_at AS routed_at, \
                i.created_at AS stored_at, o.sent_at AS sent_at \
            FROM messages i JOIN webhook_audit a ON a.message_sid = i.wa_sid AND a.outcome = 'accepted' \
            JOIN messages o ON o.reply_to = i.id WHERE i.direction = 'in' AND i.wa_sid = ANY($1) \
            ORDER BY i.id, o.reply_index) \
         SELECT stage, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) \
         FROM (SELECT '1 ingest → router' AS stage, extract(epoch FROM routed_at - ingest_at) * 1000 AS ms FROM firsts \
               UNION ALL SELECT '2 router → conversation', extract(epoch FROM stored_at - routed_at) * 1000 FROM firsts \
               UNION ALL SELECT '3 conversation → Twilio', extract(epoch FROM sent_at - stored_at) * 1000 FROM firsts) lags \
         GROUP BY stage ORDER BY stage",
    )
    .bind(&sids)
    .fetch_all(pool)
    .await?;
    Ok(Audit {
        unique: sent.len(),
        inbound_rows,
        stored_twice,
        unanswered,
        out_rows,
        out_sent,
        twilio_total: twilio.len() as i64,
        to_twilio,
        to_dashboard,
        stage_lags,
    })
}

impl Audit {
    /// Every message stored once and answered once, every reply sent once.
    pub fn ok(&self) -> bool {
        self.stored_twice == 0
            && self.inbound_rows as usize == self.unique
            && self.unanswered == 0
            && self.out_sent == self.twilio_total
            && self.out_rows == self.out_sent
    }

    pub fn print(&self) {
        println!("  audit");
        println!("    unique messages sent          {}", self.unique);
        println!(
            "    stored                        {}   (stored twice: {})",
            self.inbound_rows, self.stored_twice
        );
        println!("    unanswered                    {}", self.unanswered);
        println!(
            "    bot replies decided           {}, accepted by Twilio {}, Twilio received {}",
            self.out_rows, self.out_sent, self.twilio_total
        );
        println!(
            "    verdict                       {}",
            if self.ok() {
                "every message stored once and answered once"
            } else {
                "LOSS OR DUPLICATES — see above"
            }
        );
    }
}
