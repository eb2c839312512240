-- PRIMARY: users, roles and permissions (config) and customers (customer).
-- Idempotent (IF NOT EXISTS): on a database the split has already filled, it changes nothing.
CREATE SCHEMA IF NOT EXISTS config;
CREATE SCHEMA IF NOT EXISTS customer;

CREATE TABLE IF NOT EXISTS config.users (
    id bigserial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS config.roles (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS config.permissions (
    id bigserial PRIMARY KEY,
    code text NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS config.user_roles (
    user_id bigint NOT NULL REFERENCES config.users (id) ON DELETE CASCADE,
    role_id bigint NOT NULL REFERENCES config.roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);
CREATE TABLE IF NOT EXISTS config.role_permissions (
    role_id bigint NOT NULL REFERENCES config.roles (id) ON DELETE CASCADE,
    permission_id bigint NOT NULL REFERENCES config.permissions (id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission_id)
);
CREATE TABLE IF NOT EXISTS customer.customers (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS customer.addresses (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customer.customers (id) ON DELETE CASCADE,
    line1 text NOT NULL,
    city text NOT NULL,
    postcode text
);
CREATE TABLE IF NOT EXISTS customer.contacts (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customer.customers (id) ON DELETE CASCADE,
    email text,
    phone text
);
