//! Pulled sources' memory: the alerts each last reported firing.

use sqlx::Row;

use super::{Result, Store};

impl Store {
    pub async fn source_state(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT data FROM source_state WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("data")).transpose()?)
    }

    pub async fn save_source_state(&self, name: &str, data: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO source_state (name, data) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET data = excluded.data",
        )
        .bind(name)
        .bind(data)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_source_state(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM source_state WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every source with a stored memory.
    pub async fn source_state_names(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM source_state ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }
}
