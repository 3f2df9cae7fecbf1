-- What refused webhooks may store: ingest counts them per (its process,
-- minute, endpoint, outcome, source address) and keeps a few truncated
-- samples; one row per such key, its count cumulative (reports replace,
-- never add, so a redelivered report changes nothing).
CREATE TABLE webhook_refusals (
    ingest_id   UUID NOT NULL,
    minute      TIMESTAMPTZ NOT NULL,
    endpoint    TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    source      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    count       BIGINT NOT NULL,
    -- Of `count`, answered without a sample: the source was over its threshold.
    throttled   BIGINT NOT NULL DEFAULT 0,
    samples     JSONB NOT NULL DEFAULT '[]',
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (minute, ingest_id, endpoint, outcome, source)
);
CREATE INDEX webhook_refusals_outcome ON webhook_refusals (outcome, minute DESC);

-- The audit log is pruned by age (ROUTER_AUDIT_RETENTION_DAYS).
CREATE INDEX webhook_audit_received ON webhook_audit (received_at);

-- A customer's body exactly as received, when the visible `body` differs:
-- PostgreSQL text cannot hold U+0000, which ingest shows as U+FFFD.
ALTER TABLE messages ADD COLUMN body_original BYTEA;
