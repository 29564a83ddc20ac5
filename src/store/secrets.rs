//! Secrets the engines generate and share through the store (the ack-link key when no file
//! names one): made once, by whichever engine asks first, and the same for every engine.

use sqlx::Row;

use super::{Result, Store};

impl Store {
    /// The secret `name`; `candidate` becomes it when the store has none yet. Engines that
    /// ask at once all get the first one stored.
    pub async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO stored_secrets (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT value FROM stored_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("value")?)
    }
}
