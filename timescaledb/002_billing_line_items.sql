-- One row per normalized billing line (FOCUS-aligned). Costs are exact numerics
-- and always carry their currency; nothing sums across currencies.
CREATE TABLE IF NOT EXISTS billing_line_items (
    charge_period_start  timestamptz NOT NULL,
    charge_period_end    timestamptz NOT NULL,
    provider             text        NOT NULL,
    billing_account_id   text        NOT NULL,
    billed_cost          numeric     NOT NULL,
    effective_cost       numeric     NOT NULL,
    billing_currency     char(3)     NOT NULL CHECK (billing_currency ~ '^[A-Z]{3}$'),
    charge_category      text        NOT NULL
        CHECK (charge_category IN ('Usage', 'Purchase', 'Tax', 'Credit', 'Adjustment')),
    billing_account_name text,
    sub_account_id       text,
    sub_account_name     text,
    service_name         text,
    service_category     text,
    sku_id               text,
    charge_description   text,
    region               text,
    resource_id          text,
    consumed_quantity    numeric,
    consumed_unit        text,
    model                text        NOT NULL DEFAULT 'unknown',
    token_type           text        NOT NULL DEFAULT 'other'
        CHECK (token_type IN ('input', 'output', 'cached_input', 'cache_write', 'other')),
    customer_id          text,
    project_id           text,
    tags                 jsonb       NOT NULL DEFAULT '{}'::jsonb,
    estimated            boolean     NOT NULL DEFAULT false,
    source               text        NOT NULL,
    ingest_run_id        bigint      NOT NULL,
    CHECK (charge_period_end >= charge_period_start)
);

-- The loader deletes by (source, billing account, charge day): this index makes that cheap.
CREATE INDEX IF NOT EXISTS billing_line_items_slice_idx
    ON billing_line_items (source, billing_account_id, charge_period_start);
