-- Whether a customer may receive marketing (promo links, broadcasts) from
-- a restaurant: one row per customer who ever said STOP (or whom Twilio
-- reported unsubscribed, error 21610), with the latest change, its time and
-- what made it. No row: never opted out. Transactional messages about an
-- order in progress are not marketing and ignore this table.
CREATE TABLE marketing_consent (
    restaurant_id   UUID NOT NULL REFERENCES restaurants (id) ON DELETE CASCADE,
    -- The customer's address as Twilio sends it in `From`.
    customer        TEXT NOT NULL,
    opted_out       BOOLEAN NOT NULL,
    -- keyword: the customer wrote STOP / START (or their Arabic words);
    -- twilio_21610: a send or status callback said "unsubscribed recipient".
    source          TEXT NOT NULL CHECK (source IN ('keyword', 'twilio_21610')),
    -- The customer's words, when a keyword made the change.
    keyword         TEXT,
    changed_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, customer)
);
