-- Plain PostgreSQL: the same name and columns as the continuous aggregate, as a table.
-- The loader rewrites the touched (source, days) of it in the same transaction as the
-- slice it replaces (store/loader.py), so it is never behind or ahead of the line items.
CREATE TABLE IF NOT EXISTS billing_daily (
    day                timestamptz NOT NULL,
    provider           text        NOT NULL,
    billing_account_id text        NOT NULL,
    sub_account_id     text,
    service_name       text,
    service_category   text,
    region             text,
    model              text        NOT NULL,
    token_type         text        NOT NULL,
    customer_id        text,
    project_id         text,
    charge_category    text        NOT NULL,
    consumed_unit      text,
    billing_currency   char(3)     NOT NULL,
    source             text        NOT NULL,
    billed_cost        numeric     NOT NULL,
    effective_cost     numeric     NOT NULL,
    consumed_quantity  numeric,
    line_items         bigint      NOT NULL
);
CREATE INDEX IF NOT EXISTS billing_daily_day_idx ON billing_daily (day);
CREATE INDEX IF NOT EXISTS billing_daily_slice_idx ON billing_daily (source, billing_account_id, day);
