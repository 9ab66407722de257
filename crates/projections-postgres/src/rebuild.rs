//! Rebuilding a projection's tables online: written again from the log into
//! `rebuild_<table>` tables beside the served ones, then swapped in.
//!
//! The writer keeps the served tables following the log meanwhile (or, for
//! a projection an older version wrote, leaves them as they are: this
//! binary cannot fold events the old way). Once the rebuild's checkpoint
//! reaches the served one, one transaction builds the remaining indexes,
//! drops the served table, renames the rebuilt one (and its indexes and
//! primary key) to the served names, moves the checkpoint and deletes the
//! rebuild's row: a reader sees the old rows or the new ones, at a position
//! no older than before, never a table filling up.
//!
//! The rebuilt table copies the served one's columns, defaults and checks
//! (`LIKE … INCLUDING ALL EXCLUDING INDEXES`), its primary key from the
//! start (the writer's upserts need it), its other indexes at the swap
//! (built once over all rows rather than kept up row by row), and the
//! privileges granted on it at the swap, so a reporting role keeps reading.
//! A view over a served table blocks the swap (PostgreSQL will not drop a
//! table a view depends on): the writer logs PostgreSQL's refusal, keeps
//! the rebuild's progress, and tries again.

use tokio_postgres::{Client, GenericClient};

use crate::TablesError;
use crate::fold::Projection;
use crate::sql::{REBUILD_PREFIX, Tables, position_to_sql};
use paycore_store::Position;

/// A rebuild as `read_model_rebuilds` records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Requested {
    pub projection: String,
    pub version: i32,
    pub next_position: Position,
}

/// Every rebuild asked for or under way in `schema`.
pub(crate) async fn requested(
    client: &impl GenericClient,
    schema: &str,
) -> Result<Vec<Requested>, TablesError> {
    let rows = client
        .query(
            &format!("SELECT projection, version, next_position FROM {schema}.read_model_rebuilds"),
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Requested {
                projection: row.try_get(0)?,
                version: row.try_get(1)?,
                next_position: crate::sql::position_from_sql(row.try_get(2)?),
            })
        })
        .collect()
}

/// Asks for a rebuild of `projection` at `version` from position 0: a new
/// row, or one under way set back to 0 (its writer is fenced at its next
/// batch and starts again). `writer` names the server starting it, `None`
/// when an operator asks.
pub(crate) async fn request(
    client: &impl GenericClient,
    schema: &str,
    projection: &str,
    version: i32,
    writer: Option<&str>,
) -> Result<(), TablesError> {
    client
        .execute(
            &format!(
                "INSERT INTO {schema}.read_model_rebuilds (projection, version, next_position, writer) \
                 VALUES ($1, $2, 0, $3) ON CONFLICT (projection) DO UPDATE \
                 SET version = EXCLUDED.version, next_position = 0, writer = EXCLUDED.writer, \
                 requested_at = now(), updated_at = now()"
            ),
            &[&projection, &version, &writer],
        )
        .await?;
    Ok(())
}

/// An index of a served table, as the catalog describes it.
struct Index {
    name: String,
    primary: bool,
    unique: bool,
    method: String,
    /// Key columns (or expressions), as PostgreSQL prints them.
    keys: Vec<String>,
    /// The `WHERE` of a partial index.
    predicate: Option<String>,
}

impl Index {
    /// The statement creating this index on `table` under `name`.
    fn create_sql(&self, name: &str, table: &str) -> String {
        let unique = if self.unique { "UNIQUE " } else { "" };
        let mut sql = format!(
            "CREATE {unique}INDEX {name} ON {table} USING {} ({})",
            self.method,
            self.keys.join(", ")
        );
        if let Some(predicate) = &self.predicate {
            sql.push_str(&format!(" WHERE {predicate}"));
        }
        sql
    }
}

async fn indexes(client: &impl GenericClient, table: &str) -> Result<Vec<Index>, TablesError> {
    let rows = client
        .query(
            "SELECT c.relname, i.indisprimary, i.indisunique, am.amname, \
             ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k), \
             pg_get_expr(i.indpred, i.indrelid, true) \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam \
             WHERE i.indrelid = to_regclass($1) ORDER BY c.relname",
            &[&table],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Index {
                name: row.try_get(0)?,
                primary: row.try_get(1)?,
                unique: row.try_get(2)?,
                method: row.try_get(3)?,
                keys: row.try_get(4)?,
                predicate: row.try_get(5)?,
            })
        })
        .collect()
}

/// (Re)creates `projection`'s rebuild tables, empty, and sets its rebuild
/// checkpoint to 0 at `projection.version`, in one transaction.
pub(crate) async fn start(
    client: &mut Client,
    schema: &str,
    projection: &Projection,
    writer: &str,
) -> Result<(), TablesError> {
    let served = Tables::served(schema);
    let rebuilt = Tables::rebuild(schema);
    let transaction = client.transaction().await?;
    for table in projection.tables {
        let (from, to) = (served.table(table), rebuilt.table(table));
        transaction
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {to}; CREATE TABLE {to} (LIKE {from} INCLUDING ALL EXCLUDING INDEXES)"
            ))
            .await?;
        for index in indexes(&transaction, &from).await? {
            if index.primary {
                let name = format!("{REBUILD_PREFIX}{}", index.name);
                transaction
                    .execute(
                        &format!(
                            "ALTER TABLE {to} ADD CONSTRAINT {name} PRIMARY KEY ({})",
                            index.keys.join(", ")
                        ),
                        &[],
                    )
                    .await?;
            }
        }
    }
    request(
        &transaction,
        schema,
        projection.name,
        projection.version,
        Some(writer),
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(
        projection = projection.name,
        version = projection.version,
        "rebuilding the read-model tables from the log beside the served ones"
    );
    Ok(())
}

/// Drops the rebuild tables of a projection whose rebuild was called off
/// (its row deleted).
pub(crate) async fn drop_tables(
    client: &Client,
    schema: &str,
    projection: &Projection,
) -> Result<(), TablesError> {
    let rebuilt = Tables::rebuild(schema);
    for table in projection.tables {
        client
            .execute(&format!("DROP TABLE IF EXISTS {}", rebuilt.table(table)), &[])
            .await?;
    }
    Ok(())
}

/// Whether every rebuild table of `projection` exists (a resumed rebuild
/// needs them; someone may have dropped them).
pub(crate) async fn tables_exist(
    client: &impl GenericClient,
    schema: &str,
    projection: &Projection,
) -> Result<bool, TablesError> {
    let rebuilt = Tables::rebuild(schema);
    for table in projection.tables {
        let found: Option<String> = client
            .query_one("SELECT to_regclass($1)::text", &[&rebuilt.table(table)])
            .await?
            .try_get(0)?;
        if found.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Puts the rebuilt tables of `projection` in place of the served ones:
/// the served checkpoint moves from `served_at` (fenced like a batch) to
/// `rebuilt_to` at this version, in one transaction.
pub(crate) async fn swap(
    client: &mut Client,
    schema: &str,
    projection: &Projection,
    (served_at, rebuilt_to): (Position, Position),
    writer: &str,
) -> Result<(), TablesError> {
    let served = Tables::served(schema);
    let rebuilt = Tables::rebuild(schema);
    let transaction = client.transaction().await?;
    // First what takes long and locks nothing a reader uses: the indexes.
    let mut renames = Vec::new();
    for table in projection.tables {
        let (old, new) = (served.table(table), rebuilt.table(table));
        for index in indexes(&transaction, &old).await? {
            let building = format!("{REBUILD_PREFIX}{}", index.name);
            if !index.primary {
                transaction
                    .execute(&index.create_sql(&building, &new), &[])
                    .await?;
            }
            renames.push((*table, index, building));
        }
        copy_grants(&transaction, &old, &new).await?;
    }
    // Then the swap itself, under the served tables' exclusive locks until
    // the commit.
    for table in projection.tables {
        let (old, new) = (served.table(table), rebuilt.table(table));
        transaction
            .batch_execute(&format!("DROP TABLE {old}; ALTER TABLE {new} RENAME TO {table}"))
            .await?;
    }
    for (table, index, building) in &renames {
        let statement = if index.primary {
            format!(
                "ALTER TABLE {} RENAME CONSTRAINT {building} TO {}",
                served.table(table),
                index.name
            )
        } else {
            format!("ALTER INDEX {schema}.{building} RENAME TO {}", index.name)
        };
        transaction.execute(&statement, &[]).await?;
    }
    let moved = transaction
        .execute(
            &format!(
                "UPDATE {schema}.read_model_checkpoints SET version = $2, next_position = $3, writer = $4, \
                 updated_at = now() WHERE projection = $1 AND next_position = $5"
            ),
            &[
                &projection.name,
                &projection.version,
                &position_to_sql(rebuilt_to),
                &writer,
                &position_to_sql(served_at),
            ],
        )
        .await?;
    let finished = transaction
        .execute(
            &format!(
                "DELETE FROM {schema}.read_model_rebuilds WHERE projection = $1 AND next_position = $2 AND version = $3"
            ),
            &[&projection.name, &position_to_sql(rebuilt_to), &projection.version],
        )
        .await?;
    if moved != 1 || finished != 1 {
        // Rolled back when dropped: another writer, or an operator, moved
        // a checkpoint under this one.
        return Err(TablesError::Fenced {
            projection: projection.name,
        });
    }
    transaction.commit().await?;
    tracing::info!(
        projection = projection.name,
        version = projection.version,
        position = rebuilt_to,
        "rebuilt read-model tables swapped in"
    );
    Ok(())
}

/// Grants on `from` given again on `to` (owners' own rights included).
async fn copy_grants(client: &impl GenericClient, from: &str, to: &str) -> Result<(), TablesError> {
    let grants = client
        .query(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, \
             a.privilege_type, a.is_grantable \
             FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee \
             WHERE c.oid = to_regclass($1)",
            &[&from],
        )
        .await?;
    for grant in grants {
        let grantee: String = grant.try_get(0)?;
        let privilege: String = grant.try_get(1)?;
        let grantable: bool = grant.try_get(2)?;
        let option = if grantable { " WITH GRANT OPTION" } else { "" };
        client
            .execute(&format!("GRANT {privilege} ON {to} TO {grantee}{option}"), &[])
            .await?;
    }
    Ok(())
}
