-- Branches get a short code operators name them by (unique per
-- restaurant), what they offer (pickup, delivery or both) and their
-- opening hours: {"weekly": [{"day","opens","closes"}], "closures":
-- [{"from","to","note"}]} as the waiter-hours crate reads it; no weekly
-- hours = open around the clock.
ALTER TABLE branches
    ADD COLUMN code TEXT,
    ADD COLUMN offers_pickup BOOLEAN NOT NULL DEFAULT true,
    ADD COLUMN offers_delivery BOOLEAN NOT NULL DEFAULT true,
    ADD COLUMN schedule JSONB NOT NULL DEFAULT '{}',
    ADD CONSTRAINT branches_offer_something CHECK (offers_pickup OR offers_delivery);

-- Gives every row of `tbl` a key in `col` made of its English name,
-- lower-case and dashed, numbered when two rows of a restaurant would
-- collide (`fallback` for a name with no letters). Used for the rows that
-- exist before keys do; dropped by 0103.
CREATE FUNCTION waiter_fill_keys(tbl regclass, col text, fallback text) RETURNS void
LANGUAGE plpgsql AS $fill$
BEGIN
    EXECUTE format($sql$
        WITH named AS (
            SELECT id, restaurant_id,
                   coalesce(nullif(trim(BOTH '-' FROM lower(regexp_replace(name_en, '[^A-Za-z0-9]+', '-', 'g'))), ''), %L) AS base
            FROM %s
        ), numbered AS (
            SELECT id, base, row_number() OVER (PARTITION BY restaurant_id, base ORDER BY id) AS n FROM named
        )
        UPDATE %s t SET %I = CASE WHEN n = 1 THEN base ELSE base || '-' || n END
        FROM numbered WHERE numbered.id = t.id
    $sql$, fallback, tbl, tbl, col);
END
$fill$;

SELECT waiter_fill_keys('branches', 'code', 'branch');
ALTER TABLE branches ALTER COLUMN code SET NOT NULL;
CREATE UNIQUE INDEX branches_code ON branches (restaurant_id, code);
