-- Placements the order stage refused (the branch was closed when the
-- customer confirmed): kept so operators see demand outside hours, and so
-- the confirmation that follows a refused placement is answered, not
-- dead-lettered.
CREATE TABLE refused_orders (
    order_id        UUID PRIMARY KEY,
    restaurant_id   UUID NOT NULL REFERENCES restaurants (id) ON DELETE CASCADE,
    conversation_id UUID NOT NULL,
    branch_id       UUID REFERENCES branches (id) ON DELETE SET NULL,
    reason          TEXT NOT NULL,
    refused_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX refused_orders_restaurant ON refused_orders (restaurant_id, refused_at DESC);
