-- Menu import (`waiterctl menu import`) keys items by a stable SKU and
-- categories by a key, both unique per restaurant; items may carry an
-- image. Existing rows get keys from their English names.
ALTER TABLE menu_categories ADD COLUMN key TEXT;
ALTER TABLE menu_items ADD COLUMN sku TEXT, ADD COLUMN image_url TEXT;

SELECT waiter_fill_keys('menu_categories', 'key', 'category');
SELECT waiter_fill_keys('menu_items', 'sku', 'item');
DROP FUNCTION waiter_fill_keys(regclass, text, text);

ALTER TABLE menu_categories ALTER COLUMN key SET NOT NULL;
ALTER TABLE menu_items ALTER COLUMN sku SET NOT NULL;
CREATE UNIQUE INDEX menu_categories_key ON menu_categories (restaurant_id, key);
CREATE UNIQUE INDEX menu_items_sku ON menu_items (restaurant_id, sku);
