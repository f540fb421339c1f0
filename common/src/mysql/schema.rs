//! Runs `model::schema`'s DDL where each statement belongs (shard databases may live on
//! other servers). The only place DDL is executed; the statements themselves come from
//! `model::schema` alone.

use model::ShardLayout;

use super::MysqlPools;

fn pool_for<'a>(pools: &'a MysqlPools, layout: &ShardLayout, statement: &str) -> &'a sqlx::MySqlPool {
    match (0..layout.databases).find(|d| statement.contains(&format!("`{}`", layout.database(*d)))) {
        Some(d) => pools.shard_pool(d),
        None => pools.meta_pool(),
    }
}

/// Creates every database and table of the layout (idempotent); returns how many
/// statements ran.
pub async fn create(pools: &MysqlPools) -> Result<usize, sqlx::Error> {
    let layout = pools.layout().clone();
    let statements = model::schema::ddl(&layout);
    for s in &statements {
        sqlx::raw_sql(s).execute(pool_for(pools, &layout, s)).await?;
    }
    Ok(statements.len() + upgrade_own_tables(pools).await?)
}

/// Brings the reconciler's own tables made by earlier versions up to date
/// (`model::schema::own_table_upgrades`); returns how many upgrades ran.
pub async fn upgrade_own_tables(pools: &MysqlPools) -> Result<usize, sqlx::Error> {
    upgrade_own_tables_on(pools.meta_pool(), &pools.layout().meta_database()).await
}

/// [`upgrade_own_tables`] on the `act_meta` server's pool.
pub async fn upgrade_own_tables_on(pool: &sqlx::MySqlPool, meta: &str) -> Result<usize, sqlx::Error> {
    let mut ran = 0;
    for u in model::schema::own_table_upgrades(meta) {
        let found: Option<(String,)> = sqlx::query_as(
            "SELECT CAST(DATA_TYPE AS CHAR) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?",
        )
        .bind(meta)
        .bind(u.table)
        .bind(u.column)
        .fetch_optional(pool)
        .await?;
        if found.is_some_and(|(t,)| t.eq_ignore_ascii_case(u.data_type)) {
            continue;
        }
        tracing::info!(table = u.table, column = u.column, "upgrading the reconciler's own table");
        sqlx::raw_sql(&u.statement).execute(pool).await?;
        ran += 1;
    }
    Ok(ran)
}

/// Creates only the reconciler's own tables in `act_meta` (audit log, checkpoints, run
/// ledger) when absent: components that write them call this at start, so a deployment
/// that never ran `reconciler schema` still works.
pub async fn ensure_own_tables(pools: &MysqlPools) -> Result<(), sqlx::Error> {
    ensure_own_tables_on(pools.meta_pool(), &pools.layout().meta_database()).await
}

/// [`ensure_own_tables`] on the `act_meta` server's pool.
pub async fn ensure_own_tables_on(pool: &sqlx::MySqlPool, meta: &str) -> Result<(), sqlx::Error> {
    for s in model::schema::own_tables(meta) {
        sqlx::raw_sql(&s).execute(pool).await?;
    }
    upgrade_own_tables_on(pool, meta).await?;
    Ok(())
}

/// Drops every database of the layout (tests, benchmarks).
pub async fn drop_all(pools: &MysqlPools) -> Result<(), sqlx::Error> {
    let layout = pools.layout().clone();
    for s in model::schema::drop_all(&layout) {
        sqlx::raw_sql(&s).execute(pool_for(pools, &layout, &s)).await?;
    }
    Ok(())
}
