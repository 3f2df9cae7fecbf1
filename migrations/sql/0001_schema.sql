-- Waiter's schema. Amounts are integers in the currency's minor unit.

CREATE TABLE restaurants (
    id                      UUID PRIMARY KEY,
    slug                    TEXT NOT NULL UNIQUE,
    name_en                 TEXT NOT NULL,
    name_ar                 TEXT NOT NULL,
    -- The WhatsApp sender as Twilio writes it in `To`: whatsapp:+E164.
    whatsapp_number         TEXT NOT NULL UNIQUE,
    twilio_account_sid      TEXT NOT NULL,
    twilio_auth_token       TEXT NOT NULL,
    messaging_service_sid   TEXT,
    default_language        TEXT NOT NULL DEFAULT 'ar' CHECK (default_language IN ('ar', 'en')),
    currency                TEXT NOT NULL DEFAULT 'SAR',
    -- Inbound limits, messages per minute.
    restaurant_rate_per_minute INTEGER NOT NULL DEFAULT 600 CHECK (restaurant_rate_per_minute > 0),
    customer_rate_per_minute   INTEGER NOT NULL DEFAULT 20 CHECK (customer_rate_per_minute > 0),
    -- Outbound limit towards Twilio, messages per second.
    outbound_rate_per_second   INTEGER NOT NULL DEFAULT 80 CHECK (outbound_rate_per_second > 0),
    promo_links             TEXT[] NOT NULL DEFAULT '{}',
    support_contact         TEXT,
    payment_link_base       TEXT,
    delivery_fee            BIGINT NOT NULL DEFAULT 0 CHECK (delivery_fee >= 0),
    min_delivery_order      BIGINT NOT NULL DEFAULT 0 CHECK (min_delivery_order >= 0),
    staff_whatsapp          TEXT,
    -- Content templates (ContentSid) by message name, e.g. {"rating_prompt": "HX..."}.
    content_templates       JSONB NOT NULL DEFAULT '{}',
    bot_idle_resume_minutes INTEGER NOT NULL DEFAULT 60,
    rating_reask_minutes    INTEGER NOT NULL DEFAULT 60,
    next_order_number       BIGINT NOT NULL DEFAULT 1,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX restaurants_account ON restaurants (twilio_account_sid);
CREATE INDEX restaurants_service ON restaurants (messaging_service_sid) WHERE messaging_service_sid IS NOT NULL;

CREATE TABLE branches (
    id              UUID PRIMARY KEY,
    restaurant_id   UUID NOT NULL REFERENCES restaurants (id) ON DELETE CASCADE,
    name_en         TEXT NOT NULL,
    name_ar         TEXT NOT NULL,
    address         TEXT,
    latitude        DOUBLE PRECISION,
    longitude       DOUBLE PRECISION,
    delivery_radius_km DOUBLE PRECISION NOT NULL DEFAULT 0,
    staff_whatsapp  TEXT,
    active          BOOLEAN NOT NULL DEFAULT true,
    position        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX branches_restaurant ON branches (restaurant_id, position);

CREATE TABLE menu_categories (
    id              UUID PRIMARY KEY,
    restaurant_id   UUID NOT NULL REFERENCES restaurants (id) ON DELETE CASCADE,
    name_en         TEXT NOT NULL,
    name_ar         TEXT NOT NULL,
    position        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX menu_categories_restaurant ON menu_categories (restaurant_id, position);

CREATE TABLE menu_items (
    id              UUID PRIMARY KEY,
    restaurant_id   UUID NOT NULL REFERENCES restaurants (id) ON DELETE CASCADE,
    category_id     UUID NOT NULL REFERENCES menu_categories (id) ON DELETE CASCADE,
    name_en         TEXT NOT NULL,
    name_ar         TEXT NOT NULL,
    description_en  TEXT NOT NULL DEFAULT '',
    description_ar  TEXT NOT NULL DEFAULT '',
    price           BIGINT NOT NULL CHECK (price >= 0),
    discount_percent INTEGER NOT NULL DEFAULT 0 CHECK (discount_percent BETWEEN 0 AND 100),
    available       BOOLEAN NOT NULL DEFAULT true,
    -- Branches where the item is not available.
    unavailable_branches UUID[] NOT NULL DEFAULT '{}',
    position        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX menu_items_category ON menu_items (restaurant_id, category_id, position);

CREATE TABLE conversations (
    id              UUID PRIMARY KEY,
    restaurant_id   UUID NOT NULL REFERENCES restaurants (id) ON DELETE CASCADE,
    -- The customer's address as Twilio sends it in `From`.
    customer        TEXT NOT NULL,
    customer_name   TEXT,
    wa_id           TEXT,
    language        TEXT,
    unread_count    INTEGER NOT NULL DEFAULT 0,
    bot_active      BOOLEAN NOT NULL DEFAULT true,
    bot_paused_at   TIMESTAMPTZ,
    -- The bot dialogue's state (step, cart, choices).
    dialogue        JSONB NOT NULL DEFAULT '{}',
    last_message_at TIMESTAMPTZ,
    last_inbound_at TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (restaurant_id, customer)
);
CREATE INDEX conversations_recent ON conversations (restaurant_id, last_message_at DESC NULLS LAST, id);

CREATE TABLE messages (
    id              UUID PRIMARY KEY,
    restaurant_id   UUID NOT NULL REFERENCES restaurants (id) ON DELETE CASCADE,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- Inbound: Twilio's MessageSid. Outbound: the sid Twilio answered with.
    wa_sid          TEXT UNIQUE,
    direction       TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    author          TEXT NOT NULL CHECK (author IN ('customer', 'bot', 'staff', 'system')),
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL DEFAULT '',
    payload         JSONB NOT NULL DEFAULT '{}',
    -- Inbound: received. Outbound: pending, queued, sending, sent, delivered, read, failed, undelivered.
    status          TEXT NOT NULL,
    status_rank     INTEGER NOT NULL DEFAULT 0,
    error_code      TEXT,
    error_message   TEXT,
    -- Why the bot did not answer (over an inbound limit), if so.
    limited_reason  TEXT,
    -- The inbound message this one answers, if any.
    reply_to        UUID REFERENCES messages (id) ON DELETE SET NULL,
    -- Order of a reply among the replies to one inbound message.
    reply_index     INTEGER NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at         TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation ON messages (conversation_id, created_at, id);
CREATE INDEX messages_reply_to ON messages (reply_to) WHERE reply_to IS NOT NULL;

CREATE TABLE orders (
    id              UUID PRIMARY KEY,
    restaurant_id   UUID NOT NULL REFERENCES restaurants (id) ON DELETE CASCADE,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    number          BIGINT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('DRAFT', 'CONFIRMED', 'PREPARING',
                        'OUT_FOR_DELIVERY', 'DELIVERED', 'RATED', 'CANCELLED')),
    fulfilment      TEXT NOT NULL CHECK (fulfilment IN ('delivery', 'pickup')),
    branch_id       UUID REFERENCES branches (id) ON DELETE SET NULL,
    address         TEXT,
    payment_method  TEXT NOT NULL CHECK (payment_method IN ('cash', 'online')),
    -- Lines priced when the order was placed: [{item_id, name, quantity, unit_price, line_total}].
    lines           JSONB NOT NULL,
    subtotal        BIGINT NOT NULL,
    delivery_fee    BIGINT NOT NULL,
    total           BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    rating          SMALLINT CHECK (rating BETWEEN 1 AND 5),
    rating_comment  TEXT,
    rated_at        TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (restaurant_id, number)
);
CREATE INDEX orders_restaurant_status ON orders (restaurant_id, status, created_at DESC);
CREATE INDEX orders_conversation ON orders (conversation_id, created_at DESC);

CREATE TABLE order_status_history (
    id              BIGSERIAL PRIMARY KEY,
    order_id        UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    -- The command that made the change: applying it twice is refused here.
    command_id      UUID NOT NULL UNIQUE,
    from_status     TEXT,
    to_status       TEXT NOT NULL,
    actor           TEXT NOT NULL,
    reason          TEXT,
    at              TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX order_status_history_order ON order_status_history (order_id, at);

-- Every webhook request, accepted or refused.
CREATE TABLE webhook_audit (
    id              BIGSERIAL PRIMARY KEY,
    -- Idempotency key of the audit record itself (the envelope id).
    event_id        TEXT NOT NULL UNIQUE,
    endpoint        TEXT NOT NULL,
    restaurant_id   UUID REFERENCES restaurants (id) ON DELETE SET NULL,
    account_sid     TEXT,
    message_sid     TEXT,
    outcome         TEXT NOT NULL,
    reason          TEXT,
    params          JSONB NOT NULL DEFAULT '[]',
    received_at     TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_audit_restaurant ON webhook_audit (restaurant_id, received_at DESC);
CREATE INDEX webhook_audit_message ON webhook_audit (message_sid);
