-- Messages written in one transaction (a customer's message and the bot's
-- replies to it) share `created_at` (now() is the transaction's start), so
-- time alone cannot order a thread. `seq` is the order they were written in.
ALTER TABLE messages ADD COLUMN seq BIGSERIAL;
CREATE INDEX messages_conversation_order ON messages (conversation_id, created_at, seq);
