-- What idsyncd reads from the local catalog: the registered tables, parents before children
-- by foreign key, with their replicated columns.
CREATE SCHEMA order_a;
CREATE SCHEMA "Other Schema";
SET search_path = order_a, public;

CREATE TABLE order_a.zeta (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE "Other Schema"."Parent" (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE order_a.child (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE,
                            parent_id bigint REFERENCES "Other Schema"."Parent",
                            up bigint REFERENCES order_a.child);
CREATE TABLE order_a.grandchild (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE,
                                 child_id bigint REFERENCES order_a.child,
                                 parent_id bigint REFERENCES "Other Schema"."Parent");
CREATE TABLE order_a.loose (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE order_a.unregistered_child (id bigserial PRIMARY KEY,
                                         loose_id bigint REFERENCES order_a.loose);

-- A table is registered after the tables it references (see replication_references), in an
-- order unlike the one replicated_tables returns.
SELECT idsync.replicate('order_a.zeta', '{name}', 'lww');
SELECT idsync.replicate('"Other Schema"."Parent"', '{name}');
SELECT idsync.replicate('order_a.loose', '{name}');
SELECT idsync.replicate('order_a.child', '{name}');
SELECT idsync.replicate('order_a.grandchild', '{name}');

SELECT table_name, mode, columns, depth
FROM idsync.replicated_tables()
WHERE table_name LIKE 'order_a.%' OR table_name LIKE '"Other Schema".%';

SELECT idsync.unreplicate(t) FROM unnest(ARRAY['order_a.grandchild', 'order_a.zeta',
    'order_a.child', '"Other Schema"."Parent"', 'order_a.loose']::regclass[]) t;
SELECT count(*) AS left_registered FROM idsync.replicated_tables()
WHERE table_name LIKE 'order_a.%' OR table_name LIKE '"Other Schema".%';
RESET search_path;
