-- The demo's normalized, package-like schema, the same on every node. Every table is
-- registered for replication; the references between them travel as natural keys.
CREATE EXTENSION IF NOT EXISTS idsync;
CREATE TABLE licenses (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE packages (id bigserial PRIMARY KEY, name text NOT NULL, version text,
                       UNIQUE NULLS NOT DISTINCT (name, version));
CREATE TABLE derivations (id bigserial PRIMARY KEY, file_name text NOT NULL UNIQUE,
                          system text NOT NULL);
CREATE TABLE derivation_outputs (id bigserial PRIMARY KEY,
                                 derivation_id bigint NOT NULL REFERENCES derivations,
                                 name text NOT NULL, path text NOT NULL,
                                 UNIQUE (derivation_id, name));
CREATE TABLE package_derivations (package_id bigint NOT NULL REFERENCES packages,
                                  derivation_id bigint NOT NULL REFERENCES derivations,
                                  PRIMARY KEY (package_id, derivation_id));
CREATE TABLE package_licenses (package_id bigint NOT NULL REFERENCES packages,
                               license_id bigint NOT NULL REFERENCES licenses,
                               PRIMARY KEY (package_id, license_id));
SELECT idsync.replicate('licenses', '{name}');
SELECT idsync.replicate('packages', '{name,version}', 'lww');
SELECT idsync.replicate('derivations', '{file_name}');
SELECT idsync.replicate('derivation_outputs', '{derivation_id,name}');
SELECT idsync.replicate('package_derivations', '{package_id,derivation_id}');
SELECT idsync.replicate('package_licenses', '{package_id,license_id}');

-- What the loaders gave insert_missing and how many ids it created, per transaction (local,
-- not replicated).
CREATE TABLE demo_loads (rows_loaded bigint NOT NULL, ids_created bigint NOT NULL);

-- One loader transaction: packages base .. base + n - 1 of a shared universe (so loaders and
-- nodes overlap), every tenth without a version; one or two licences each (as sets); one
-- derivation each with an "out" output, and a "dev" output for every other one; the links.
-- Tables are touched in a fixed order, so concurrent loaders never deadlock.
CREATE FUNCTION demo_load(base integer, n integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    gs integer[] := ARRAY(SELECT base + i FROM generate_series(0, n - 1) i);
    package_ids bigint[];
    derivation_ids bigint[];
    created bigint;
    outputs bigint;
    total_created bigint := 0;
    total_loaded bigint := 0;
BEGIN
    SELECT array_agg(m.id ORDER BY m.ord), count(*) FILTER (WHERE m.inserted)
    INTO package_ids, created
    FROM idsync.insert_missing('packages', '{name,version}',
        ARRAY(SELECT 'pkg-' || (g % 4000) FROM unnest(gs) g),
        ARRAY(SELECT CASE WHEN g % 10 = 0 THEN NULL ELSE (g / 4000) || '.' || (g % 7) END
              FROM unnest(gs) g)) m;
    total_created := total_created + created;
    total_loaded := total_loaded + n;

    WITH sets AS (
        SELECT s.set_key, s.ids FROM idsync.insert_missing_sets('licenses', '{name}',
            ARRAY(SELECT i FROM generate_series(1, n) i, generate_series(0, (gs[i] % 2)) k ORDER BY i, k),
            ARRAY(SELECT 'license-' || ((gs[i] * 7 + k * 13) % 30) FROM generate_series(1, n) i,
                  generate_series(0, (gs[i] % 2)) k ORDER BY i, k)) s
    ), links AS (
        INSERT INTO package_licenses (package_id, license_id)
        SELECT DISTINCT package_ids[s.set_key], l FROM sets s, unnest(s.ids) l ORDER BY 1, 2
        ON CONFLICT DO NOTHING RETURNING 1
    )
    SELECT count(*) INTO created FROM links;
    total_created := total_created + created;
    total_loaded := total_loaded + (SELECT sum(1 + g % 2) FROM unnest(gs) g);

    SELECT array_agg(m.id ORDER BY m.ord), count(*) FILTER (WHERE m.inserted)
    INTO derivation_ids, created
    FROM idsync.insert_missing('derivations', '{file_name,system}',
        ARRAY(SELECT format('/nix/store/%s-pkg-%s.drv', left(md5(g::text), 32), g) FROM unnest(gs) g),
        ARRAY(SELECT (ARRAY['x86_64-linux', 'aarch64-linux', 'x86_64-darwin'])[1 + g % 3] FROM unnest(gs) g)) m;
    total_created := total_created + created;
    total_loaded := total_loaded + n;

    SELECT count(*) FILTER (WHERE m.inserted), count(*) INTO created, outputs
    FROM idsync.insert_missing('derivation_outputs', '{derivation_id,name,path}',
        ARRAY(SELECT derivation_ids[i] FROM generate_series(1, n) i, unnest('{out,dev}'::text[]) o
              WHERE o = 'out' OR gs[i] % 2 = 0),
        ARRAY(SELECT o FROM generate_series(1, n) i, unnest('{out,dev}'::text[]) o
              WHERE o = 'out' OR gs[i] % 2 = 0),
        ARRAY(SELECT format('/nix/store/%s-pkg-%s-%s', left(md5(o || gs[i]), 32), gs[i], o)
              FROM generate_series(1, n) i, unnest('{out,dev}'::text[]) o
              WHERE o = 'out' OR gs[i] % 2 = 0)) m;
    total_created := total_created + created;
    total_loaded := total_loaded + outputs;

    WITH links AS (
        INSERT INTO package_derivations (package_id, derivation_id)
        SELECT DISTINCT package_ids[i], derivation_ids[i] FROM generate_series(1, cardinality(gs)) i
        ORDER BY 1, 2 ON CONFLICT DO NOTHING RETURNING 1
    )
    SELECT count(*) INTO created FROM links;
    total_created := total_created + created;
    total_loaded := total_loaded + cardinality(gs);

    INSERT INTO demo_loads VALUES (total_loaded, total_created);
END $$;
