//! The outcome of every scenario as a table a person reads at a glance:
//! printed by the suite, and `docs/RELIABILITY.md` with
//! `CHAOS_WRITE_REPORT=1`.

use std::{fmt::Write as _, time::Duration};

use crate::{audit::Audit, fleet, scenarios::Scenario};

pub struct Row {
    pub scenario: String,
    pub description: String,
    pub audit: Audit,
    pub notes: Vec<String>,
    pub verdict: Result<(), String>,
    pub took: Duration,
    pub logs: String,
}

impl Row {
    pub fn panicked(scenario: &Scenario, error: tokio::task::JoinError) -> Row {
        let reason = match error.try_into_panic() {
            Ok(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into()),
            Err(e) => e.to_string(),
        };
        Row {
            scenario: scenario.name(),
            description: scenario.describe(),
            audit: Audit::default(),
            notes: vec![],
            verdict: Err(format!("did not finish: {reason}")),
            took: Duration::ZERO,
            logs: fleet::bin_dir()
                .join("chaos")
                .join(scenario.name())
                .display()
                .to_string(),
        }
    }

    fn refused(&self) -> String {
        if self.audit.refused.is_empty() {
            return "0".into();
        }
        self.audit
            .refused
            .iter()
            .map(|(status, n)| format!("{n}×{status}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn cells(&self) -> Vec<String> {
        let a = &self.audit;
        vec![
            self.scenario.clone(),
            a.posted.to_string(),
            a.accepted.to_string(),
            self.refused(),
            format!("{}/{}", a.stored, a.accepted),
            a.missing.to_string(),
            a.stored_twice.to_string(),
            a.unanswered.to_string(),
            a.limited.to_string(),
            format!("{}/{}", a.replies_recorded, a.twilio_received),
            a.sent_twice.to_string(),
            a.out_of_order.to_string(),
            a.pending.to_string(),
            a.dead_letters.to_string(),
            format!("{:.1}", a.drained_in.as_secs_f64()),
            match &self.verdict {
                Ok(()) => "ok".into(),
                Err(_) => "FAILED".into(),
            },
        ]
    }

    pub fn summary(&self) -> String {
        let verdict = match &self.verdict {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("FAILED: {e}"),
        };
        let mut summary = format!(
            "chaos: {} in {:.0} s: {verdict}",
            self.scenario,
            self.took.as_secs_f64()
        );
        for note in &self.notes {
            summary.push_str("\n  ");
            summary.push_str(note);
        }
        summary
    }
}

const HEADER: [&str; 16] = [
    "scenario",
    "posted",
    "200",
    "not 200",
    "stored once",
    "lost",
    "stored twice",
    "unanswered",
    "limited",
    "replies recorded / at Twilio",
    "sent twice",
    "out of order",
    "pending",
    "dead letters",
    "drained (s)",
    "verdict",
];

pub fn render(rows: &[Row], took: Duration, seconds: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Reliability: `just test-chaos`\n\n\
         Written by `CHAOS_WRITE_REPORT=1 just test-chaos` \
         (`tools/e2e/tests/chaos/`). Each scenario starts every stage as its own \
         process on a private nats-server and a fresh database behind a TCP proxy, \
         drives signed webhooks from {customers} customers of each of 3 restaurants \
         (one every {pause:.1} s each) through the Twilio simulator, does its fault, \
         and audits once the traffic stops: every webhook answered 200 stored once \
         and answered once, replies in the order they were decided per conversation \
         (as Twilio took them), nothing pending on any durable consumer, no dead \
         letter. Ack wait {ack} ms, lease TTL {ttl} ms, outbound HTTP timeout {http} ms, \
         {partitions} partitions; {seconds} s of traffic per scenario after the fault \
         began (`CHAOS_SECONDS`). Whole run: {took:.0} s.\n",
        customers = crate::CUSTOMERS,
        pause = crate::PAUSE.as_secs_f64(),
        ack = fleet::ACK_WAIT_MS,
        ttl = fleet::LEASE_TTL_MS,
        http = fleet::OUTBOUND_HTTP_TIMEOUT_MS,
        partitions = fleet::PARTITIONS,
        seconds = seconds.as_secs(),
        took = took.as_secs_f64(),
    );
    let _ = writeln!(out, "| {} |", HEADER.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        HEADER.iter().map(|_| "---|").collect::<String>()
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.cells().join(" | "));
    }
    let _ = writeln!(
        out,
        "\n**Columns.** *not 200*: ingest's answers other than 200 by status, \
         `none` when no answer came (the stage was down): Twilio retries those. \
         *stored once*: accepted webhooks with exactly one `messages` row. \
         *sent twice*: messages Twilio took whose sid no row holds — the documented \
         outbound duplicate window (Twilio answered 201 and the sender died, froze or \
         timed out before recording the sid); counted, never hidden. A webhook stored \
         although its 200 never arrived is not a loss (the PubAck came first). \
         *limited*: stored and shown, and on purpose not answered by the bot: over \
         the customer's (20/min) or restaurant's inbound limit, which the router \
         counts when it handles a message, not when it arrived.\n"
    );
    let _ = writeln!(out, "## Scenarios\n");
    for row in rows {
        let _ = writeln!(out, "- **{}**: {}.", row.scenario, row.description);
        if row.audit.stored_unanswered_post > 0 {
            let _ = writeln!(
                out,
                "  - {} stored although ingest's answer never arrived.",
                row.audit.stored_unanswered_post
            );
        }
        for note in &row.notes {
            let _ = writeln!(out, "  - {note}.");
        }
        if let Err(e) = &row.verdict {
            let _ = writeln!(out, "  - **Failed**: {e}.");
        }
    }
    out
}
