-- Stress-test tables: a text key, and a two-column key whose NULLs the index treats as
-- distinct (idsync's lock slots keep those unique).
DROP TABLE IF EXISTS stress_name, stress_pair, observed;
CREATE TABLE stress_name (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE stress_pair (id bigserial PRIMARY KEY, name text NOT NULL, grp int, UNIQUE (name, grp));
-- Every (input row, returned id) pair that a client saw.
CREATE UNLOGGED TABLE observed (tbl text, name text, grp int, id bigint);
