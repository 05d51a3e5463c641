-- The demo's normalized, package-like schema.
CREATE EXTENSION IF NOT EXISTS idsync;
CREATE TABLE license (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE package (id bigserial PRIMARY KEY, name text NOT NULL, version text NOT NULL, UNIQUE (name, version));
CREATE TABLE package_license (package_id bigint NOT NULL REFERENCES package, license_id bigint NOT NULL REFERENCES license,
                              PRIMARY KEY (package_id, license_id));
