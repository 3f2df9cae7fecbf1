-- Things the bot must do later (the rating flow's "Later"): a sweep in the
-- conversation stage feeds each due reminder back into its conversation.
CREATE TABLE reminders (
    id              UUID PRIMARY KEY,
    restaurant_id   UUID NOT NULL REFERENCES restaurants (id) ON DELETE CASCADE,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    order_id        UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    due_at          TIMESTAMPTZ NOT NULL,
    fired_at        TIMESTAMPTZ
);
CREATE INDEX reminders_due ON reminders (due_at) WHERE fired_at IS NULL;
