-- The restaurant's IANA time zone (opening hours are local) and whether it
-- is disabled: a disabled restaurant is neither routed nor answered, and
-- keeps all its history.
ALTER TABLE restaurants
    ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC',
    ADD COLUMN disabled_at TIMESTAMPTZ;
