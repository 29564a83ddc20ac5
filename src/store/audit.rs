//! The audit log: who changed what, when and from which address, as a chain of HMACs.
//!
//! Entry `n`'s `mac` is HMAC-SHA256, keyed by the audit key (which the store does not hold),
//! over entry `n - 1`'s mac and entry `n`'s fields. Ids run 1, 2, 3, … without gaps, so an
//! entry edited, removed or slipped in breaks the chain at that entry, and only the key's
//! holder could write a chain that holds. Appends are serialized: on SQLite by the write turn
//! (one engine per file), on PostgreSQL by a table lock in the appending transaction, so
//! several engines append to one chain.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::statements::{Statement, Val};
use super::{from_ms, ms, Backend, Result, Store};

/// An action to record: who, what (action and target), a short detail, from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    /// `ack`, `resolve`, `note`, `severity`, `declare`, `escalate`, `assign`,
    /// `add_responder`, `reload`, …
    pub action: String,
    /// What it acted on: `incident 12`, `config`, …
    pub target: String,
    pub detail: String,
    /// The client's IP address (empty when unknown).
    pub address: String,
}

/// A recorded entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(serialize_with = "crate::signal::rfc3339::serialize")]
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub address: String,
    pub mac: String,
}

/// What `tocsin audit verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditCheck {
    /// Every entry's mac holds; how many entries there are.
    Intact(u64),
    /// The first entry whose chain is broken, and how.
    Broken { id: i64, why: String },
}

/// The mac of entry `id` with `fields`, after the entry whose mac is `previous` ("" for the
/// first). The fields go in as a JSON array, so no field can run into the next.
pub fn audit_mac(key: &[u8], previous: &str, id: i64, fields: &NewAuditEntry) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    let content = serde_json::json!([
        previous,
        id,
        ms(fields.at),
        fields.actor,
        fields.action,
        fields.target,
        fields.detail,
        fields.address,
    ]);
    mac.update(content.to_string().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

const COLUMNS: &str = "id, at, actor, action, target, detail, address, mac";

/// Entries read per query while verifying.
const VERIFY_CHUNK: i64 = 1000;

impl Store {
    /// Append `entry` to the chain; returns it as recorded.
    pub async fn append_audit(&self, key: &[u8], entry: NewAuditEntry) -> Result<AuditEntry> {
        if let Some(writer) = self.sqlite_writer() {
            // The turn is held until the row is committed: no other write of this engine's
            // (the only one on the file) comes between the read of the last entry and it.
            let turn = self.write_turn().await;
            let last = last_entry(sqlx::query(LAST).fetch_optional(&self.pool).await?)?;
            let recorded = chained(key, last, entry);
            writer.write(vec![insert(&recorded)], turn).await?;
            return Ok(recorded);
        }
        let mut conn = self.pool.acquire().await?;
        let appended = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            if self.backend == Backend::Postgres {
                // Appends of every engine wait here in turn; readers are not held up.
                sqlx::query("LOCK TABLE audit_log IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
            }
            let last = last_entry(sqlx::query(LAST).fetch_optional(&mut *tx).await?)?;
            let recorded = chained(key, last, entry);
            insert(&recorded).execute(&mut tx).await?;
            tx.commit().await?;
            Ok(recorded)
        }
        .await;
        if appended.is_err() {
            // Not put back in the pool: see the module docs of `store`.
            conn.close_on_drop();
        }
        appended
    }

    /// Entries newest first, below id `before` when given, at most `limit`.
    pub async fn audit_entries(&self, before: Option<i64>, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry).collect()
    }

    /// Walk the chain from its first entry: the first entry whose mac does not hold (or
    /// that is missing), else how many entries there are.
    pub async fn verify_audit(&self, key: &[u8]) -> Result<AuditCheck> {
        let mut previous = String::new();
        let mut expected = 1;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE id >= $1 ORDER BY id LIMIT $2"
            ))
            .bind(expected)
            .bind(VERIFY_CHUNK)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok(AuditCheck::Intact((expected - 1) as u64));
            }
            for row in &rows {
                let found = entry(row)?;
                if found.id != expected {
                    return Ok(AuditCheck::Broken {
                        id: expected,
                        why: format!("entry {expected} is missing (the next is {})", found.id),
                    });
                }
                let fields = NewAuditEntry {
                    at: found.at,
                    actor: found.actor.clone(),
                    action: found.action.clone(),
                    target: found.target.clone(),
                    detail: found.detail.clone(),
                    address: found.address.clone(),
                };
                let mac = audit_mac(key, &previous, found.id, &fields);
                let equal = subtle::ConstantTimeEq::ct_eq(mac.as_bytes(), found.mac.as_bytes());
                if !bool::from(equal) {
                    return Ok(AuditCheck::Broken {
                        id: found.id,
                        why: format!(
                            "entry {} does not match its MAC: it, or the entry before it, was \
                             changed, or the audit key is not the one it was written with",
                            found.id
                        ),
                    });
                }
                previous = found.mac;
                expected += 1;
            }
        }
    }
}

const LAST: &str = "SELECT id, mac FROM audit_log ORDER BY id DESC LIMIT 1";

fn last_entry(row: Option<AnyRow>) -> Result<(i64, String)> {
    match row {
        Some(row) => Ok((row.try_get("id")?, row.try_get("mac")?)),
        None => Ok((0, String::new())),
    }
}

fn chained(key: &[u8], (last_id, last_mac): (i64, String), fields: NewAuditEntry) -> AuditEntry {
    let id = last_id + 1;
    let mac = audit_mac(key, &last_mac, id, &fields);
    AuditEntry {
        id,
        at: fields.at,
        actor: fields.actor,
        action: fields.action,
        target: fields.target,
        detail: fields.detail,
        address: fields.address,
        mac,
    }
}

fn insert(entry: &AuditEntry) -> Statement {
    Statement::new(
        format!("INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
        vec![
            Val::I64(entry.id),
            Val::I64(ms(entry.at)),
            Val::Str(entry.actor.clone()),
            Val::Str(entry.action.clone()),
            Val::Str(entry.target.clone()),
            Val::Str(entry.detail.clone()),
            Val::Str(entry.address.clone()),
            Val::Str(entry.mac.clone()),
        ],
    )
}

fn entry(row: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: from_ms(row.try_get("at")?),
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        detail: row.try_get("detail")?,
        address: row.try_get("address")?,
        mac: row.try_get("mac")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(detail: &str) -> NewAuditEntry {
        NewAuditEntry {
            at: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
            actor: "alice".into(),
            action: "ack".into(),
            target: "incident 1".into(),
            detail: detail.into(),
            address: "127.0.0.1".into(),
        }
    }

    #[tokio::test]
    async fn the_chain_holds_until_a_row_changes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/audit.db", dir.path().display());
        let store = Store::open(&url).await.unwrap();
        let key = b"k";
        for detail in ["one", "two", "three"] {
            store.append_audit(key, fields(detail)).await.unwrap();
        }
        assert_eq!(
            store.verify_audit(key).await.unwrap(),
            AuditCheck::Intact(3)
        );
        let newest = store.audit_entries(None, 2).await.unwrap();
        assert_eq!(newest.iter().map(|e| e.id).collect::<Vec<_>>(), vec![3, 2]);
        assert_eq!(
            store.audit_entries(Some(2), 10).await.unwrap()[0].detail,
            "one"
        );
        assert!(matches!(
            store.verify_audit(b"another key").await.unwrap(),
            AuditCheck::Broken { id: 1, .. }
        ));
        sqlx::query("UPDATE audit_log SET detail = 'edited' WHERE id = 2")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(matches!(
            store.verify_audit(key).await.unwrap(),
            AuditCheck::Broken { id: 2, .. }
        ));
        store.close().await;
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        let mut a = fields("x");
        a.actor = "al".into();
        a.action = "iceack".into();
        let mut b = fields("x");
        b.actor = "alice".into();
        b.action = "ack".into();
        assert_ne!(audit_mac(b"k", "", 1, &a), audit_mac(b"k", "", 1, &b));
    }
}
