//! `reconciler schema`: creates the databases and tables for the configured layout.

use handlers::truth::MysqlPools;
use model::ShardLayout;

/// Runs every DDL statement (idempotent); returns how many ran.
pub async fn create(pools: &MysqlPools, layout: &ShardLayout) -> Result<usize, sqlx::Error> {
    let statements = model::schema::ddl(layout);
    for s in &statements {
        // Shard databases may live on other servers; run each statement where it belongs.
        let pool = match layout_database_index(layout, s) {
            Some(d) => pools.shard_pool(d),
            None => pools.meta_pool(),
        };
        sqlx::raw_sql(s).execute(pool).await?;
    }
    Ok(statements.len())
}

fn layout_database_index(layout: &ShardLayout, statement: &str) -> Option<u32> {
    (0..layout.databases).find(|d| statement.contains(&format!("`{}`", layout.database(*d))))
}

/// Drops every database of the layout (tests, benchmarks).
pub async fn drop_all(pools: &MysqlPools, layout: &ShardLayout) -> Result<(), sqlx::Error> {
    for s in model::schema::drop_all(layout) {
        let pool = match layout_database_index(layout, &s) {
            Some(d) => pools.shard_pool(d),
            None => pools.meta_pool(),
        };
        sqlx::raw_sql(&s).execute(pool).await?;
    }
    Ok(())
}
