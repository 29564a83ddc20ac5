//! Removing what `store.retention` no longer keeps: resolved incidents that resolved before
//! the cut-off, with their impacts, impact links, paging state, timeline and pages, as few
//! incidents to a transaction as the caller asks, so that the engine's own writes wait for
//! little.
//!
//! Incidents are walked in id order from a cursor the caller keeps; the walk ends at the
//! first incident opened after the cut-off (none past it can have resolved before it). An
//! incident with a page still waiting is kept, and so is the last row of each table whose
//! next id the engine takes from the largest one stored (incidents, impacts, pages): ids
//! are never given twice.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::statements::{Statement, Val};
use super::{from_ms, ms, Result, Store};

/// What one step of pruning did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Incidents removed.
    pub incidents: u64,
    /// Rows removed, every table together.
    pub rows: u64,
    /// Where the next step starts (`None`: the walk reached the cut-off; start again from
    /// the first incident next time).
    pub next: Option<i64>,
}

impl Store {
    /// Remove up to `batch` incidents past `after` that resolved before `before`.
    pub async fn prune_step(
        &self,
        before: DateTime<Utc>,
        after: i64,
        batch: i64,
    ) -> Result<Pruned> {
        let rows = sqlx::query(
            "SELECT id, status, opened_at, data FROM incidents WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(batch)
        .fetch_all(&self.pool)
        .await?;
        let last_id: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) AS m FROM incidents")
            .fetch_one(&self.pool)
            .await?
            .try_get("m")?;
        let mut reached_cutoff = false;
        let mut old = Vec::new();
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            if from_ms(row.try_get("opened_at")?) >= before {
                reached_cutoff = true;
                break;
            }
            let status: String = row.try_get("status")?;
            if status != "resolved" || id >= last_id {
                continue;
            }
            let data: String = row.try_get("data")?;
            let resolved_at = serde_json::from_str::<serde_json::Value>(&data)?
                .get("resolved_at")
                .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok());
            if resolved_at.is_some_and(|at| at < before) {
                old.push(id);
            }
        }
        let next = match rows.last() {
            Some(row) if !reached_cutoff && rows.len() as i64 == batch => Some(row.try_get("id")?),
            _ => None,
        };
        if old.is_empty() {
            return Ok(Pruned {
                next,
                ..Pruned::default()
            });
        }
        let sql = format!(
            "SELECT DISTINCT incident_id FROM outbox WHERE status = 'pending' AND incident_id IN ({})",
            placeholders(1, old.len())
        );
        let waiting = old
            .iter()
            .fold(sqlx::query(&sql), |q, id| q.bind(*id))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.try_get::<i64, _>("incident_id"))
            .collect::<Result<Vec<_>, _>>()?;
        old.retain(|id| !waiting.contains(id));
        if old.is_empty() {
            return Ok(Pruned {
                next,
                ..Pruned::default()
            });
        }
        let ids = placeholders(1, old.len());
        let values: Vec<Val> = old.iter().map(|id| Val::I64(*id)).collect();
        let statement = |sql: String| Statement::new(sql, values.clone());
        // Impacts are found through their incidents' link rows (impacts have no index on
        // their incident), by id; one a merge moved to another incident stays with it.
        let sql = format!("SELECT impact_ids FROM incident_impacts WHERE incident_id IN ({ids})");
        let links = old
            .iter()
            .fold(sqlx::query(&sql), |q, id| q.bind(*id))
            .fetch_all(&self.pool)
            .await?;
        let impact_ids = super::queries::linked_ids(&links)?;
        let mut impacts = Vec::new();
        for chunk in impact_ids.chunks(500) {
            let mut values = values.clone();
            values.extend(chunk.iter().map(|id| Val::I64(*id)));
            impacts.push(Statement::new(
                format!(
                    "DELETE FROM impacts WHERE id IN ({}) AND incident_id IN ({ids}) \
                     AND id < (SELECT MAX(id) FROM impacts)",
                    placeholders(old.len() + 1, chunk.len())
                ),
                values,
            ));
        }
        let mut statements = vec![
            statement(format!("DELETE FROM timeline WHERE incident_id IN ({ids})")),
            statement(format!(
                "DELETE FROM outbox WHERE incident_id IN ({ids}) \
                 AND id < (SELECT MAX(id) FROM outbox)"
            )),
            statement(format!(
                "DELETE FROM incident_impacts WHERE incident_id IN ({ids})"
            )),
            statement(format!("DELETE FROM paging WHERE incident_id IN ({ids})")),
            statement(format!("DELETE FROM incidents WHERE id IN ({ids})")),
        ];
        statements.splice(2..2, impacts);
        let rows = self.delete(statements).await?;
        Ok(Pruned {
            incidents: old.len() as u64,
            rows,
            next,
        })
    }

    /// Run `statements` in one transaction, in the store's write turn; the rows they removed.
    async fn delete(&self, statements: Vec<Statement>) -> Result<u64> {
        let _turn = self.write_turn().await;
        let mut conn = self.pool.acquire().await?;
        let removed = run_counting(&mut conn, statements).await;
        if removed.is_err() {
            // Not put back in the pool: see the module docs of `store`.
            conn.close_on_drop();
        }
        removed
    }

    /// The cut-off for `retention` at `now`.
    pub fn retention_cutoff(now: DateTime<Utc>, retention: std::time::Duration) -> DateTime<Utc> {
        let keep = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        from_ms(ms(now).saturating_sub(keep.num_milliseconds()))
    }
}

async fn run_counting(conn: &mut sqlx::AnyConnection, statements: Vec<Statement>) -> Result<u64> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let mut rows = 0;
    for statement in statements {
        rows += statement.execute(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(rows)
}

/// `$first, …` for `count` values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
