-- paycore, migration 5: read models as tables, for reporting with SQL.
-- `{schema}` is replaced by the (validated) schema name before running.
--
-- Written by one paycore server at a time (the one holding the read-model
-- writer's advisory lock; `read_model_checkpoints.writer` names it), from
-- the events, whole appends only; every other client only reads them.
-- Each projection's rows and its checkpoint change in one transaction, so a
-- reader that reads a table and its checkpoint in one transaction sees the
-- rows exactly as of that position. Derived data: the events stay the truth,
-- and a projection whose version changes is written again from the log
-- beside these tables and swapped in (migration 6).
--
-- Money is exact: `*_minor` columns hold minor units (cents) of `currency`,
-- whose `currency_exponent` gives the decimal point
-- (`balance_minor / 10 ^ currency_exponent`). Times are UTC. `state` holds
-- the resource as paycore folds it (postcard): for paycore, not for SQL.
CREATE TABLE {schema}.read_model_checkpoints (
    projection    text        NOT NULL PRIMARY KEY,
    version       integer     NOT NULL,
    -- Events below this position are applied.
    next_position bigint      NOT NULL,
    writer        text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- projection `directory`
CREATE TABLE {schema}.projects (
    id               text        NOT NULL PRIMARY KEY,
    name             text        NOT NULL,
    environment      text        NOT NULL,
    meta             jsonb       NOT NULL,
    created_at       timestamptz NOT NULL,
    created_position bigint      NOT NULL,
    updated_position bigint      NOT NULL,
    state            bytea       NOT NULL
);

CREATE TABLE {schema}.customers (
    id               text        NOT NULL PRIMARY KEY,
    project_id       text        NOT NULL,
    meta             jsonb       NOT NULL,
    created_at       timestamptz NOT NULL,
    created_position bigint      NOT NULL,
    updated_position bigint      NOT NULL,
    state            bytea       NOT NULL
);
CREATE INDEX customers_by_project ON {schema}.customers (project_id, created_position);

-- projection `accounts`
CREATE TABLE {schema}.accounts (
    id                     text        NOT NULL PRIMARY KEY,
    project_id             text        NOT NULL,
    customer_id            text,
    currency               text        NOT NULL,
    currency_exponent      smallint    NOT NULL,
    balance_minor          bigint      NOT NULL,
    allow_negative_balance boolean     NOT NULL,
    last_transaction_id    text,
    meta                   jsonb       NOT NULL,
    created_at             timestamptz NOT NULL,
    created_position       bigint      NOT NULL,
    updated_position       bigint      NOT NULL,
    state                  bytea       NOT NULL
);
CREATE INDEX accounts_by_project ON {schema}.accounts (project_id, created_position);
CREATE INDEX accounts_by_customer ON {schema}.accounts (customer_id) WHERE customer_id IS NOT NULL;

-- projection `transactions`: immutable, one row per balance change.
CREATE TABLE {schema}.transactions (
    id                  text        NOT NULL PRIMARY KEY,
    project_id          text        NOT NULL,
    account_id          text        NOT NULL,
    -- transfer_source, transfer_destination, card_payin, card_payin_refund,
    -- card_payin_refund_failure, bank_payout, bank_payout_failure,
    -- bank_payin, magic (sandbox)
    kind                text        NOT NULL,
    -- The transfer, payin, refund or payout that caused it (none for magic).
    cause_id            text,
    currency            text        NOT NULL,
    currency_exponent   smallint    NOT NULL,
    -- Signed: positive adds funds, negative removes them.
    value_minor         bigint      NOT NULL,
    balance_after_minor bigint      NOT NULL,
    created_at          timestamptz NOT NULL,
    position            bigint      NOT NULL
);
CREATE INDEX transactions_by_project ON {schema}.transactions (project_id, position);
CREATE INDEX transactions_by_account ON {schema}.transactions (account_id, position);

-- projection `transfers`
CREATE TABLE {schema}.transfers (
    id                         text        NOT NULL PRIMARY KEY,
    project_id                 text        NOT NULL,
    source_account_id          text        NOT NULL,
    destination_account_id     text        NOT NULL,
    source_transaction_id      text        NOT NULL,
    destination_transaction_id text        NOT NULL,
    currency                   text        NOT NULL,
    currency_exponent          smallint    NOT NULL,
    value_minor                bigint      NOT NULL,
    -- Set for a transfer between currencies: what the destination received.
    destination_currency       text,
    destination_value_minor    bigint,
    -- The rate applied (mid rate less the spread), as a decimal.
    rate_used                  numeric,
    meta                       jsonb       NOT NULL,
    created_at                 timestamptz NOT NULL,
    created_position           bigint      NOT NULL,
    updated_position           bigint      NOT NULL,
    state                      bytea       NOT NULL
);
CREATE INDEX transfers_by_project ON {schema}.transfers (project_id, created_position);

-- projection `resources`: cards and tokens, card payins and refunds, bank
-- accounts, payouts, payin references, bank payins, files.
CREATE TABLE {schema}.resources (
    id               text        NOT NULL PRIMARY KEY,
    -- card_token, card, card_payin, card_payin_refund, bank_account,
    -- bank_payout, bank_payin_reference, bank_payin, file
    kind             text        NOT NULL,
    project_id       text        NOT NULL,
    created_position bigint      NOT NULL,
    updated_position bigint      NOT NULL,
    state            bytea       NOT NULL
);
CREATE INDEX resources_by_project ON {schema}.resources (project_id, kind, created_position);

-- projection `fx-rates`
CREATE TABLE {schema}.fx_rates (
    -- `EUR/USD`: base, then quote.
    id               text    NOT NULL PRIMARY KEY,
    base_currency    text    NOT NULL,
    quote_currency   text    NOT NULL,
    -- The market rate and the spread in basis points; NULL once removed.
    mid_rate         numeric,
    spread_bps       integer,
    created_position bigint  NOT NULL,
    updated_position bigint  NOT NULL,
    state            bytea   NOT NULL
);
