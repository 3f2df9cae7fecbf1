-- Twilio auth tokens are stored sealed (XChaCha20-Poly1305 under a key of
-- WAITER_SECRET_KEY, see the waiter-secrets crate) with the id of the key
-- that sealed them. Plain tokens of an older deployment stay in
-- twilio_auth_token_plaintext only until `waiterctl migrate` (or
-- `waiterctl secrets rotate`) seals them and clears the column.
ALTER TABLE restaurants RENAME COLUMN twilio_auth_token TO twilio_auth_token_plaintext;
ALTER TABLE restaurants ALTER COLUMN twilio_auth_token_plaintext DROP NOT NULL;
ALTER TABLE restaurants
    ADD COLUMN twilio_auth_token_key_id TEXT,
    ADD COLUMN twilio_auth_token_sealed BYTEA,
    ADD CONSTRAINT restaurants_auth_token_sealed_whole
        CHECK ((twilio_auth_token_key_id IS NULL) = (twilio_auth_token_sealed IS NULL)),
    ADD CONSTRAINT restaurants_auth_token_present
        CHECK (twilio_auth_token_sealed IS NOT NULL OR twilio_auth_token_plaintext IS NOT NULL);
CREATE INDEX restaurants_auth_token_key ON restaurants (twilio_auth_token_key_id);
