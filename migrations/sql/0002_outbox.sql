-- Effects decided in a transaction and published after it commits
-- (transactional outbox): a crash between the commit and the publish is
-- healed by publishing what is still unpublished, in order, before the
-- next message of the same conversation or order is handled.
CREATE TABLE outbox (
    seq             BIGSERIAL PRIMARY KEY,
    -- The conversation or order the effect belongs to.
    aggregate_id    UUID NOT NULL,
    subject         TEXT NOT NULL,
    msg_id          TEXT NOT NULL,
    trace_id        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at    TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (aggregate_id, seq) WHERE published_at IS NULL;
CREATE INDEX outbox_stale ON outbox (created_at) WHERE published_at IS NULL;

-- Inputs a stage has applied, by envelope id: applying one twice is
-- refused here, inside the same transaction as its effects.
CREATE TABLE applied_inputs (
    stage           TEXT NOT NULL,
    input_id        TEXT NOT NULL,
    applied_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (stage, input_id)
);
