-- Content templates (Twilio ContentSids) per restaurant, message name and
-- language. `approved`: WhatsApp approved it, so it may be sent outside
-- the customer's 24-hour window. Replaces restaurants.content_templates,
-- whose entries ("<name>" for both languages, "<name>_<lang>" for one)
-- are copied here as approved, as they were treated before.
CREATE TABLE content_templates (
    restaurant_id   UUID NOT NULL REFERENCES restaurants (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    language        TEXT NOT NULL CHECK (language IN ('ar', 'en')),
    content_sid     TEXT NOT NULL CHECK (content_sid <> ''),
    approved        BOOLEAN NOT NULL DEFAULT false,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, name, language)
);

INSERT INTO content_templates (restaurant_id, name, language, content_sid, approved)
SELECT r.id, e.key, l.language, e.value, true
FROM restaurants r
CROSS JOIN LATERAL jsonb_each_text(r.content_templates) e
CROSS JOIN (VALUES ('ar'), ('en')) AS l (language)
WHERE e.key !~ '_(ar|en)$' AND e.value <> ''
ON CONFLICT DO NOTHING;

INSERT INTO content_templates (restaurant_id, name, language, content_sid, approved)
SELECT r.id, substring(e.key FROM '^(.*)_(?:ar|en)$'), substring(e.key FROM '_(ar|en)$'), e.value, true
FROM restaurants r
CROSS JOIN LATERAL jsonb_each_text(r.content_templates) e
WHERE e.key ~ '_(ar|en)$' AND e.value <> ''
ON CONFLICT (restaurant_id, name, language) DO UPDATE SET content_sid = EXCLUDED.content_sid;

ALTER TABLE restaurants DROP COLUMN content_templates;
