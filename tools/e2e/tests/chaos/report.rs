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

/// Issue 8's defects, each with the test that fails without its fix.
const DEFECTS: &str = "\
## The defects of issue 8 and the tests that hold them

| defect | test |
|---|---|
| a staff message with NUL or another control character stalled a partition | `notifier/tests/notifier/rest.rs::a_staff_message_with_control_characters_is_refused_and_nothing_is_queued` (400); `nats/tests/bus/letters.rs` (SQLSTATE 22021 is permanent: dead-lettered, not retried) |
| a NUL in a customer's body | `tools/e2e/tests/hostile.rs::a_nul_in_a_customer_body_is_stored_visibly_with_the_original_kept` (U+FFFD in `body`, the exact bytes in `body_original`) |
| refused webhooks stored in full, streams without limits, audit table never pruned, no throttle | `hostile.rs::an_unsigned_flood_stays_within_caps_while_signed_webhooks_are_answered`, `hostile_values_in_every_field_do_not_jam_the_router` (a `To` of `%00`); `ingest/src/refusals.rs` unit tests; `nats/tests/bus/publishing.rs::stream_limits_are_applied…`; the `unsigned-flood` scenario above |
| ingest answered 403 before it knew the tenants | `ingest/tests/edge.rs::webhooks_get_503_not_403_until_the_tenant_directory_is_loaded`; `nats/tests/bus/publishing.rs::a_directory_whose_entries_were_rewritten_is_loaded` (the chaos suite found ingest unready for good when nats-server 2.9 never reported 0 pending) |
| the conversation stage starved its own pool | `conversation/tests/stage/pool.rs::one_connection_serves_every_partition_without_waiting_on_itself`; `conversation` unit test `the_pool_follows_the_partitions_unless_configured` |
| outbound could send twice when a send outlasted `ack_wait` | `outbound/src/lib.rs::a_send_must_fit_in_the_ack_wait` (refused at start); `nats/tests/bus/consumers.rs` (progress acks); the `sigstop-outbound` and `kill-9-outbound` scenarios above (the sent-twice column) |
| WebSocket sessions outlived their token, no caps, a consumer per socket | `notifier/tests/notifier/admission.rs` (4001 at expiry, foreign `Origin` 403, per-user and total caps, one consumer per process) |
| NATS open | `nats/tests/credentials.rs`, `tools/e2e/tests/nats_permissions.rs`; a cluster's servers in `NATS_URL`: `publishing.rs::a_cluster_url_list_connects_to_the_server_that_answers` |
| jitter on every backoff | `nats/src/worker/policy.rs::backoff_doubles_is_capped_and_jitters_within_bounds`; every retry loop draws from it (worker, directory follower, ingest's directory load, the notifier's feed, outbound's sid record) |
| slowloris | `ingest/tests/edge.rs::a_client_sending_its_request_slowly_is_cut_off_and_a_normal_one_is_served` |
| a newer envelope schema, an undecodable dialogue, a `since` older than retention | `letters.rs::an_envelope_of_a_newer_schema_waits_in_place_for_a_newer_reader`; `conversation/src/handler/dialogue.rs::a_state_that_does_not_decode_is_an_error_not_a_new_dialogue`; `notifier/tests/notifier/feed.rs::a_since_older_than_the_stream_gets_the_missed_events_frame` |
";

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
         `none` when no answer came (the stage was down): none is a 200, so Twilio \
         knows they were not taken. \
         *stored once*: accepted webhooks with exactly one `messages` row. \
         *sent twice*: messages Twilio took whose sid no row holds — the documented \
         outbound duplicate window (Twilio answered 201 and the sender died, froze or \
         timed out before recording the sid); counted, never hidden. A webhook stored \
         although ingest did not answer 200 (its PubAck came too late) is not a loss: \
         a retry of it is deduplicated by its MessageSid. \
         *limited*: stored and shown, and on purpose not answered by the bot: over \
         the customer's (20/min) or restaurant's inbound limit, which the router \
         counts at the time a message reached ingest, so the backlog after an \
         outage is not mistaken for a burst.\n"
    );
    let _ = writeln!(out, "## Scenarios\n");
    for row in rows {
        let _ = writeln!(out, "- **{}**: {}.", row.scenario, row.description);
        if row.audit.stored_unanswered_post > 0 {
            let _ = writeln!(
                out,
                "  - {} stored although ingest did not answer them 200 (the PubAck came too late).",
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
    let _ = writeln!(out, "\n{DEFECTS}");
    out
}
