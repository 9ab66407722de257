-- paycore, migration 8: a card payin's refunds in the read-model tables.
-- `{schema}` is replaced by the (validated) schema name before running.
--
-- The `resources` projection's version went up with this migration, so the
-- first writer of the new version rebuilds the table from the log beside
-- this one (migration 6) and swaps it in: until then the rows written
-- before keep the default below (NULL, for refunds too), and a payin's
-- refunds cannot be listed from the tables.

-- projection `resources`
-- A card payin refund (`kind` `card_payin_refund`): the card payin it
-- refunds (`cpi_…`, a row of this table). NULL for every other kind.
ALTER TABLE {schema}.resources ADD COLUMN card_payin_id text;
CREATE INDEX resources_by_card_payin ON {schema}.resources (card_payin_id, created_position)
    WHERE card_payin_id IS NOT NULL;

-- A rebuild under way keeps the served table's columns (its indexes are
-- built from the served table's at the swap): the next writer starts it
-- again at the new version anyway, but its table stays a copy of the
-- served one meanwhile.
ALTER TABLE IF EXISTS {schema}.rebuild_resources
    ADD COLUMN IF NOT EXISTS card_payin_id text;
