-- Outgoing order webhooks (Standard Webhooks) per restaurant: where to
-- post, and the endpoint's `whsec_` secret sealed like the Twilio auth
-- tokens (XChaCha20-Poly1305 under WAITER_SECRET_KEY, bound to the
-- endpoint id). The secret is shown once, when the endpoint is added.
CREATE TABLE webhook_endpoints (
    id              UUID PRIMARY KEY,
    restaurant_id   UUID NOT NULL REFERENCES restaurants (id) ON DELETE CASCADE,
    url             TEXT NOT NULL CHECK (url ~ '^https?://'),
    secret_key_id   TEXT NOT NULL,
    secret_sealed   BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (restaurant_id, url)
);
