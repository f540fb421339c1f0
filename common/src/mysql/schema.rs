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
    Ok(statements.len())
}

/// Creates only the reconciler's own tables in `act_meta` (audit log, checkpoints, run
/// ledger) when absent: components that write them call this at start, so a deployment
/// that never ran `reconciler schema` still works.
pub async fn ensure_own_tables(pools: &MysqlPools) -> Result<(), sqlx::Error> {
    for s in model::schema::own_tables(&pools.layout().meta_database()) {
        sqlx::raw_sql(&s).execute(pools.meta_pool()).await?;
    }
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
