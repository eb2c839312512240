-- DATA: carriers and delivery matrix (reference), imports (workspace), integration history.
-- Idempotent (IF NOT EXISTS): on a database the split has already filled, it changes nothing.
CREATE SCHEMA IF NOT EXISTS reference;
CREATE SCHEMA IF NOT EXISTS workspace;
CREATE SCHEMA IF NOT EXISTS integration;

CREATE TABLE IF NOT EXISTS reference.carriers (
    id bigserial PRIMARY KEY,
    code text NOT NULL UNIQUE,
    name text NOT NULL
);
CREATE TABLE IF NOT EXISTS reference.services (
    id bigserial PRIMARY KEY,
    carrier_id bigint NOT NULL REFERENCES reference.carriers (id),
    code text NOT NULL,
    name text NOT NULL
);
CREATE TABLE IF NOT EXISTS reference.delivery_matrix (
    id bigserial PRIMARY KEY,
    service_id bigint NOT NULL REFERENCES reference.services (id),
    zone text NOT NULL,
    days integer NOT NULL
);
CREATE TABLE IF NOT EXISTS workspace.imports (
    id bigserial PRIMARY KEY,
    file_name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS workspace.import_rows (
    id bigserial PRIMARY KEY,
    import_id bigint NOT NULL REFERENCES workspace.imports (id) ON DELETE CASCADE,
    payload jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS integration.runs (
    id bigserial PRIMARY KEY,
    integration text NOT NULL,
    status text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE TABLE IF NOT EXISTS integration.events (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES integration.runs (id) ON DELETE CASCADE,
    at timestamptz NOT NULL DEFAULT now(),
    message text NOT NULL
);
