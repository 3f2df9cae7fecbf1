-- The analytics read one restaurant's orders and customer messages over a
-- time range: these serve them without reading other tenants' rows (the
-- existing indexes lead with status, or with the conversation).
CREATE INDEX orders_restaurant_created ON orders (restaurant_id, created_at);
CREATE INDEX messages_restaurant_inbound ON messages (restaurant_id, created_at)
    WHERE direction = 'in';
