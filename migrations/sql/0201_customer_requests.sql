-- Customer data requests carried out (`waiterctl customer export|forget`):
-- who asked for what, when, and what was done. The customer's number is not
-- kept here (a forgotten customer must not be findable by it); the
-- conversation id is, anonymised by then.
CREATE TABLE customer_requests (
    id              UUID PRIMARY KEY,
    restaurant_id   UUID NOT NULL REFERENCES restaurants (id) ON DELETE CASCADE,
    conversation_id UUID,
    kind            TEXT NOT NULL CHECK (kind IN ('export', 'forget')),
    -- The operator who ran it (`--operator`, else the OS user).
    operator        TEXT NOT NULL,
    -- Rows read or changed, by table.
    counts          JSONB NOT NULL DEFAULT '{}',
    done_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX customer_requests_restaurant ON customer_requests (restaurant_id, done_at DESC);
