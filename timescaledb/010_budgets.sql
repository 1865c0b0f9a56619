-- Plan tiers, customers and monthly budgets, synced from the config file by the
-- collector (`costmon migrate` / `costmon serve`): the file is the source of
-- truth, these tables let SQL panels join against it. Every amount has its
-- currency beside it; spend is only ever compared with a budget in its own currency.
CREATE TABLE IF NOT EXISTS plan_tiers (
    name          text        PRIMARY KEY,
    monthly_price numeric     NOT NULL CHECK (monthly_price >= 0),
    llm_budget    numeric     NOT NULL CHECK (llm_budget > 0),
    currency      char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    synced_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS customers (
    id              text        PRIMARY KEY,
    display_name    text        NOT NULL,
    tier            text        NOT NULL REFERENCES plan_tiers (name),
    budget_override numeric     CHECK (budget_override > 0),
    synced_at       timestamptz NOT NULL DEFAULT now()
);

-- One row per budget: the global one (name 'all'), per provider, per customer
-- (the customer's override or its tier's LLM budget, in the tier's currency).
CREATE TABLE IF NOT EXISTS budgets (
    scope         text        NOT NULL CHECK (scope IN ('global', 'provider', 'customer')),
    name          text        NOT NULL,
    monthly_limit numeric     NOT NULL CHECK (monthly_limit > 0),
    currency      char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    synced_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, name),
    CHECK (scope <> 'global' OR name = 'all')
);
