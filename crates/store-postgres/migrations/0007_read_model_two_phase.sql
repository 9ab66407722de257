-- paycore, migration 7: two-phase (pending) transfers in the read-model
-- tables. `{schema}` is replaced by the (validated) schema name before
-- running.
--
-- The `accounts` and `transfers` projections' versions went up with this
-- migration, so the first writer of the new version rebuilds both tables
-- from the log beside these (migration 6) and swaps them in: until then
-- the rows written before keep the defaults below (nothing pending, every
-- transfer posted, the balance available), which was true of them unless
-- they saw a pending transfer.

-- projection `accounts`
-- What pending transfers from this account hold: in `balance_minor`, but
-- not available to spend until they are posted, voided or expired. Never
-- negative.
ALTER TABLE {schema}.accounts ADD COLUMN pending_debits_minor bigint NOT NULL DEFAULT 0;
-- What pending transfers to this account will credit if posted: not in
-- `balance_minor` yet, nor available. Never negative.
ALTER TABLE {schema}.accounts ADD COLUMN pending_credits_minor bigint NOT NULL DEFAULT 0;
-- `balance_minor - pending_debits_minor`: what the account can send now.
ALTER TABLE {schema}.accounts ADD COLUMN available_minor bigint NOT NULL DEFAULT 0;
-- Until the rebuild swaps its rows in, the old ones show their balance as
-- available.
UPDATE {schema}.accounts SET available_minor = balance_minor;

-- projection `transactions`: its rows are unchanged; two more `kind`s,
-- `posted_transfer_source` and `posted_transfer_destination`, are the legs
-- of a posted pending transfer (`cause_id` the transfer). The holds of a
-- pending transfer move no balance and have no row here.

-- projection `transfers`
-- A plain transfer is `posted` when created (its legs are
-- `source_transaction_id` and `destination_transaction_id`). A pending one
-- (two-phase) holds `value_minor` under those two IDs while `pending`, and
-- ends once: `posted` (all or part of it moved, by the two
-- `posted_*_transaction_id` legs), `voided` or `expired` (nothing moved).
ALTER TABLE {schema}.transfers ADD COLUMN status text NOT NULL DEFAULT 'posted';
-- While `pending`: when the hold lapses unless posted or voided before.
ALTER TABLE {schema}.transfers ADD COLUMN expires_at timestamptz;
-- A posted pending transfer: what it moved (`value_minor` or less, in
-- `currency`). NULL for a plain transfer (it moved `value_minor`).
ALTER TABLE {schema}.transfers ADD COLUMN posted_value_minor bigint;
-- A posted pending transfer: its legs, the transactions that moved
-- `posted_value_minor` (kinds `posted_transfer_source` and
-- `posted_transfer_destination`, `cause_id` the transfer).
ALTER TABLE {schema}.transfers ADD COLUMN posted_source_transaction_id text;
ALTER TABLE {schema}.transfers ADD COLUMN posted_destination_transaction_id text;
-- When a pending transfer was posted, voided or expired; NULL while
-- pending and for a plain transfer.
ALTER TABLE {schema}.transfers ADD COLUMN ended_at timestamptz;

-- A rebuild under way keeps the served tables' columns: the next writer
-- starts it again at the new version anyway, but its tables stay a copy of
-- the served ones meanwhile.
ALTER TABLE IF EXISTS {schema}.rebuild_accounts
    ADD COLUMN IF NOT EXISTS pending_debits_minor bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS pending_credits_minor bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS available_minor bigint NOT NULL DEFAULT 0;
ALTER TABLE IF EXISTS {schema}.rebuild_transfers
    ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'posted',
    ADD COLUMN IF NOT EXISTS expires_at timestamptz,
    ADD COLUMN IF NOT EXISTS posted_value_minor bigint,
    ADD COLUMN IF NOT EXISTS posted_source_transaction_id text,
    ADD COLUMN IF NOT EXISTS posted_destination_transaction_id text,
    ADD COLUMN IF NOT EXISTS ended_at timestamptz;
