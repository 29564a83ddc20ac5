//! Writing the core's changes and reading its state back after a restart.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::{AnyConnection, Connection, Row};

use super::model::{Changes, FirstNew, HeartbeatState, Lease, Snapshot};
use super::postgres::batch::Ran;
use super::queries::{id_list, linked_ids, IMPACT_LINKS_INSERT};
use super::statements::{push_rows, run_statements, Statement, Val};
use super::{json_column, ms, Result, Store, OPEN_STATUS};
use crate::incident::{Impact, Incident};
use crate::paging::PagingState;

/// How many of the latest resolved incidents a restart looks at for ones that may reopen.
const REOPEN_SCAN: usize = 1000;
use crate::rules::RuleState;
use crate::signal::Fingerprint;

impl Store {
    /// Write one batch of changes in one transaction: all of it lands, or none.
    pub async fn apply(&self, changes: &Changes) -> Result<()> {
        self.commit(changes).await?.wait().await
    }

    /// Write `changes` in one transaction, returning once it is committed (readers see it,
    /// it survives this process) with what tells when it is on disk too. Only a SQLite
    /// file's writer thread makes these two moments differ (see `sqlite::writer`).
    pub async fn commit(&self, changes: &Changes) -> Result<super::Durable> {
        self.submit(changes).await?.committed().await
    }

    /// Hand `changes` to the store: on a SQLite file this returns as soon as the writer
    /// thread has the batch, so the caller can go on (the engine handles its next inputs)
    /// while it is written; `Submitted::committed` waits for the commit. Everywhere else the
    /// batch is committed before this returns. Holds the write turn until committed.
    pub async fn submit(&self, changes: &Changes) -> Result<super::Submitted> {
        if changes.is_empty() {
            return Ok(super::Submitted::ready(Ok(super::Durable::done())));
        }
        if let (Some(writer), None) = (self.sqlite_writer(), &self.fencing) {
            let statements = plan(changes)?;
            let turn = self.write_turn().await;
            return writer.submit(statements, turn);
        }
        let _turn = self.write_turn().await;
        let mut conn = self.pool.acquire().await?;
        let written = self.apply_on(&mut conn, changes).await;
        if written.is_err() {
            // Not put back in the pool: see the module docs of `store`.
            conn.close_on_drop();
        }
        Ok(super::Submitted::ready(
            written.map(|()| super::Durable::done()),
        ))
    }

    /// As [`Store::submit`], for the engine's batches: on a SQLite file a large batch is
    /// turned into statements (its rows serialized) on the writer thread, not here, and on
    /// PostgreSQL a batch is committed on a thread of its own (`postgres::committer`), so
    /// the engine's task takes the next inputs and answers those already on disk meanwhile.
    pub async fn submit_shared(&self, changes: &Arc<Changes>) -> Result<super::Submitted> {
        // PostgreSQL: committed on the committer's thread while the engine takes the next
        // inputs (the engine hands over one batch at a time).
        if let (Some(committer), false) = (&self.committer, changes.is_empty()) {
            return Ok(committer.submit(self.clone(), Arc::clone(changes)));
        }
        match (self.sqlite_writer(), &self.fencing) {
            (Some(writer), None) if changes.rows() > PLAN_HERE_MAX_ROWS => {
                let turn = self.write_turn().await;
                let changes = Arc::clone(changes);
                writer.submit_plan(Box::new(move || plan(&changes)), turn)
            }
            // A small batch that pages: into the redo log, and its pages go while SQLite
            // commits it (see `redo_log`).
            (Some(writer), None) if !changes.pages.is_empty() => {
                let statements = plan(changes)?;
                let turn = self.write_turn().await;
                writer.submit_ahead(statements, turn)
            }
            _ => self.submit(changes).await,
        }
    }

    pub(super) async fn apply_on(&self, conn: &mut AnyConnection, changes: &Changes) -> Result<()> {
        if self.backend == super::Backend::Postgres {
            return match self.apply_joined(conn, changes, NewRows::Inserted).await {
                // A batch written again after a failure that left its outcome unknown, whose
                // earlier commit did land: it goes again with each row written over.
                Err(super::StoreError::Sql(sqlx::Error::Database(e)))
                    if e.is_unique_violation() =>
                {
                    self.apply_joined(conn, changes, NewRows::Upserted).await
                }
                written => written,
            };
        }
        let statements = plan_claimed(changes, self.fencing.as_deref(), NewRows::Upserted)?;
        let mut tx = conn.begin().await?;
        if let Some(fencing) = &self.fencing {
            // Holds a share lock on the lease row until commit: a takeover waits for this
            // write, and this write is refused once the lease has passed on.
            let sql = format!(
                "SELECT term FROM leader_lease WHERE name = 'engine' AND holder = $1 AND term = $2 \
                 AND expires_at >= {} {}",
                self.backend.now_ms(),
                self.backend.row_lock(true)
            );
            let held = sqlx::query(&sql)
                .bind(fencing.holder.as_str())
                .bind(fencing.term)
                .fetch_optional(&mut *tx)
                .await?;
            if held.is_none() {
                return Err(super::StoreError::Fenced { term: fencing.term });
            }
        }
        for statement in statements {
            statement.execute(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A batch on PostgreSQL: its statements joined (see `postgres::batch`), behind the
    /// leader's fence, with the notifications its inputs' engines wait for.
    async fn apply_joined(
        &self,
        conn: &mut AnyConnection,
        changes: &Changes,
        new_rows: NewRows,
    ) -> Result<()> {
        let statements = plan_claimed(changes, self.fencing.as_deref(), new_rows)?;
        let mut tx = conn.begin().await?;
        // The inputs' engines hear at the commit that their replies are there.
        let ids: Vec<i64> = changes.inbox.iter().map(|(id, _)| *id).collect();
        let notifications = match &self.inbox_signals {
            Some(_) => super::postgres::inbox_signals::done_notifications(&ids),
            None => Vec::new(),
        };
        let fence = self
            .fencing
            .as_ref()
            .map(|f| super::postgres::batch::Fence {
                holder: &f.holder,
                term: f.term,
            });
        let joined = super::postgres::batch::join(statements, fence, notifications);
        match super::postgres::batch::run(&mut tx, joined).await? {
            Ran::Done => Ok(tx.commit().await?),
            Ran::Fenced => Err(super::StoreError::Fenced {
                term: self.fencing.as_ref().map_or(0, |f| f.term),
            }),
            // A plan has no query that needs a row.
            Ran::RowMissing => Err(sqlx::Error::RowNotFound.into()),
        }
    }

    /// Run `statements` in one transaction, in order, up to the first that needs a row and
    /// changed none (see [`Statement::needing_row`]); returns how many ran. Writes from
    /// outside the engine (delivery outcomes and their timeline entries). On a SQLite file
    /// they go through the engine's writer connection: a write on another connection makes
    /// SQLite drop that connection's page cache, and the engine's next commit then read its
    /// pages back from the file. Committed, not fsynced: see the `synchronous` note in
    /// `sqlite::connect`.
    pub(super) async fn write_statements(&self, statements: Vec<Statement>) -> Result<usize> {
        let turn = self.write_turn().await;
        if let Some(writer) = self.sqlite_writer() {
            return writer.write(statements, turn).await;
        }
        let mut conn = self.pool.acquire().await?;
        let written = match self.backend {
            super::Backend::Postgres => write_joined(&mut conn, statements).await,
            super::Backend::Sqlite => run_statements(&mut conn, statements).await,
        };
        if written.is_err() {
            // Not put back in the pool: see the module docs of `store`.
            conn.close_on_drop();
        }
        written
    }

    /// Incidents that resolved on their own (not merged) at `since` or later, newest first,
    /// with their paging and impacts: a new impact that correlates with one reopens it.
    /// Looks at the latest resolved incidents only (`REOPEN_SCAN`).
    pub async fn reopenable(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(Incident, Option<PagingState>, Vec<Impact>)>> {
        let sql = format!(
            "SELECT data FROM incidents WHERE status = 'resolved' ORDER BY id DESC LIMIT {REOPEN_SCAN}"
        );
        let mut out = Vec::new();
        for row in sqlx::query(&sql).fetch_all(&self.pool).await? {
            let incident = json_column::<Incident>(&row, "data")?;
            let recent = incident.merged_into.is_none()
                && incident.resolved_by.as_deref() == Some(crate::incident::timeline::TOCSIN)
                && incident.resolved_at.is_some_and(|at| at >= since);
            if !recent {
                continue;
            }
            let paging = sqlx::query("SELECT data FROM paging WHERE incident_id = $1")
                .bind(incident.id)
                .fetch_optional(&self.pool)
                .await?
                .map(|row| json_column::<PagingState>(&row, "data"))
                .transpose()?;
            let impacts = self.impacts_of(incident.id).await?;
            out.push((incident, paging, impacts));
        }
        Ok(out)
    }

    /// Resolved incidents that still have a paging row (kept while they could reopen).
    pub async fn resolved_with_paging(&self) -> Result<Vec<i64>> {
        // Driven by the paging rows (open and reopenable incidents, a few), not by the
        // resolved incidents (the whole history).
        let rows = sqlx::query(
            "SELECT p.incident_id FROM paging p WHERE EXISTS \
             (SELECT 1 FROM incidents i WHERE i.id = p.incident_id AND i.status = 'resolved')",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<i64, _>("incident_id")?))
            .collect()
    }

    /// The state the core needs to go on: open incidents with their impacts and paging,
    /// rule states, leases left by an earlier version, heartbeats and the next ids.
    pub async fn load(&self) -> Result<Snapshot> {
        let mut snapshot = Snapshot::default();
        for row in sqlx::query(&format!("SELECT data FROM incidents WHERE {OPEN_STATUS}"))
            .fetch_all(&self.pool)
            .await?
        {
            snapshot
                .incidents
                .push(json_column::<Incident>(&row, "data")?);
        }
        let links = sqlx::query(&format!(
            "SELECT l.impact_ids FROM incidents i JOIN incident_impacts l ON l.incident_id = i.id \
             WHERE i.{OPEN_STATUS}"
        ))
        .fetch_all(&self.pool)
        .await?;
        snapshot.impacts = self.impacts_by_id(linked_ids(&links)?).await?;
        // Rows written before the ids left the incident row still carry them: the impact
        // rows say the same, and they are what counts.
        let mut impact_ids: HashMap<i64, Vec<i64>> = HashMap::new();
        for impact in &snapshot.impacts {
            impact_ids
                .entry(impact.incident_id)
                .or_default()
                .push(impact.id);
        }
        for incident in &mut snapshot.incidents {
            let mut ids = impact_ids.remove(&incident.id).unwrap_or_default();
            ids.sort_unstable();
            incident.impact_ids = ids;
        }
        for row in sqlx::query(&format!(
            "SELECT i.id AS incident_id, p.data FROM incidents i JOIN paging p \
             ON p.incident_id = i.id WHERE i.{OPEN_STATUS}"
        ))
        .fetch_all(&self.pool)
        .await?
        {
            let id: i64 = row.try_get("incident_id")?;
            snapshot
                .paging
                .push((id, json_column::<PagingState>(&row, "data")?));
        }
        for row in sqlx::query("SELECT id, rule, fingerprint, data FROM rule_states ORDER BY id")
            .fetch_all(&self.pool)
            .await?
        {
            let rule: String = row.try_get("rule")?;
            let fingerprint: String = row.try_get("fingerprint")?;
            let Ok(fingerprint) = fingerprint.parse::<Fingerprint>() else {
                continue;
            };
            let mut state = json_column::<RuleState>(&row, "data")?;
            state.row = row.try_get("id")?;
            snapshot.rule_states.push((rule, fingerprint, state));
        }
        // Impacts a person resolved while they fired: their rule states clear them later.
        let resolved_firing: Vec<i64> = snapshot
            .rule_states
            .iter()
            .flat_map(|(_, _, state)| state.held().iter().copied())
            .collect();
        if !resolved_firing.is_empty() {
            let held = self.impacts_by_id(resolved_firing).await?;
            snapshot.impacts.extend(held);
        }
        for row in sqlx::query("SELECT id, fingerprint, data FROM leases ORDER BY id")
            .fetch_all(&self.pool)
            .await?
        {
            let fingerprint: String = row.try_get("fingerprint")?;
            let Ok(fingerprint) = fingerprint.parse::<Fingerprint>() else {
                continue;
            };
            let lease = json_column::<Lease>(&row, "data")?;
            snapshot
                .leases
                .push((row.try_get("id")?, fingerprint, lease));
        }
        for row in sqlx::query("SELECT name, data FROM heartbeats")
            .fetch_all(&self.pool)
            .await?
        {
            let name: String = row.try_get("name")?;
            snapshot
                .heartbeats
                .push((name, json_column::<HeartbeatState>(&row, "data")?));
        }
        snapshot.availability = self.source_state(AVAILABILITY).await?;
        snapshot.silences = self.silences(None).await?;
        snapshot.overrides = self.overrides(None).await?;
        snapshot.cases = self.open_cases().await?;
        snapshot.next_case_id = self.next_case_id().await?;
        snapshot.next_incident_id = self.max_id("incidents").await? + 1;
        snapshot.next_impact_id = self.max_id("impacts").await? + 1;
        snapshot.next_page_id = self.max_id("outbox").await? + 1;
        snapshot.next_rule_state_row = self.max_id("rule_states").await? + 1;
        Ok(snapshot)
    }

    async fn max_id(&self, table: &str) -> Result<i64> {
        let row = sqlx::query(&format!("SELECT COALESCE(MAX(id), 0) AS m FROM {table}"))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("m")?)
    }
}

/// As [`run_statements`], on PostgreSQL: joined (see `postgres::batch`), and one by one
/// only when a statement that needs a row changed none.
async fn write_joined(conn: &mut AnyConnection, statements: Vec<Statement>) -> Result<usize> {
    let count = statements.len();
    let again = statements
        .iter()
        .any(|s| s.needs_row)
        .then(|| statements.clone());
    let mut tx = conn.begin().await?;
    let joined = super::postgres::batch::join(statements, None, Vec::new());
    match super::postgres::batch::run(&mut tx, joined).await? {
        Ran::Done => {
            tx.commit().await?;
            Ok(count)
        }
        Ran::Fenced | Ran::RowMissing => {
            tx.rollback().await?;
            run_statements(conn, again.unwrap_or_default()).await
        }
    }
}

/// Batches of up to this many rows (an alert and its page has ~8) are planned by
/// [`Store::submit_shared`]'s caller, and likely written there too (see `sqlite::writer`).
const PLAN_HERE_MAX_ROWS: usize = 32;

/// The statements that write one batch of changes, in order; run in one transaction.
/// The services' availability's row in `source_state` (beside the pull sources' memories).
pub const AVAILABILITY: &str = "availability";

fn plan(changes: &Changes) -> Result<Vec<Statement>> {
    plan_claimed(changes, None, NewRows::Upserted)
}

/// How a plan writes the impacts and rule states new to the store (`Changes::first_new`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NewRows {
    /// As plain inserts, which take PostgreSQL less time than an upsert that inserts: a
    /// row already there fails the batch.
    Inserted,
    /// As every other row: inserted, or written over the row already there. SQLite writes
    /// every batch this way: its redo log replays batches whether or not they were
    /// committed before.
    Upserted,
}

/// As [`plan`], the pages claimed for the fenced leader that writes them.
fn plan_claimed(
    changes: &Changes,
    fencing: Option<&super::Fencing>,
    new_rows: NewRows,
) -> Result<Vec<Statement>> {
    let mut out = Vec::new();
    let processed_at = ms(chrono::Utc::now());
    let rows = changes
        .inbox
        .iter()
        .map(|(id, reply)| {
            vec![
                Val::I64(*id),
                Val::I64(processed_at),
                Val::Str(reply.clone()),
            ]
        })
        .collect();
    push_rows(&mut out, INBOX_DONE.0, INBOX_DONE.1, rows);
    let mut rows = Vec::with_capacity(changes.incidents.len());
    for incident in &changes.incidents {
        rows.push(vec![
            Val::I64(incident.id),
            Val::Str(incident.status.as_str().to_string()),
            Val::I32(i32::from(incident.severity)),
            Val::OptStr(incident.queue.clone()),
            Val::I64(ms(incident.opened_at)),
            Val::Str(row_json(incident)?),
        ]);
    }
    push_rows(
        &mut out,
        "INSERT INTO incidents (id, status, severity, queue, opened_at, data) VALUES ",
        " ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
             severity = excluded.severity, queue = excluded.queue, data = excluded.data",
        rows,
    );
    let (mut rows, mut new) = (Vec::new(), Vec::new());
    for impact in &changes.impacts {
        let row = vec![
            Val::I64(impact.id),
            Val::I64(impact.incident_id),
            Val::Str(row_json(impact)?),
        ];
        if inserted(new_rows, changes, |first| first.is_new_impact(impact.id)) {
            new.push(row);
        } else {
            rows.push(row);
        }
    }
    push_rows(&mut out, IMPACTS_INSERT, IMPACTS_UPSERT_TAIL, rows);
    push_rows(&mut out, IMPACTS_INSERT, "", new);
    let rows = changes
        .impact_links
        .iter()
        .map(|(incident_id, impact_ids)| {
            vec![Val::I64(*incident_id), Val::Str(id_list(impact_ids))]
        })
        .collect();
    push_rows(&mut out, IMPACT_LINKS_INSERT, "", rows);
    push_rows(
        &mut out,
        super::queries::TIMELINE_INSERT,
        "",
        super::queries::timeline_rows(&changes.timeline)?,
    );
    push_keyed(
        &mut out,
        PAGING_UPSERT,
        changes.paging.iter().map(|(incident_id, state)| {
            Ok(match state {
                Some(state) => {
                    Keyed::Upsert(vec![Val::I64(*incident_id), Val::Str(row_json(state)?)])
                }
                None => Keyed::Delete(Statement::new(
                    "DELETE FROM paging WHERE incident_id = $1",
                    vec![Val::I64(*incident_id)],
                )),
            })
        }),
    )?;
    // Rows the engine numbers are never numbered again: a row deleted here is never one
    // written here, so the two can go in either order.
    push_deletes(
        &mut out,
        "DELETE FROM rule_states WHERE id IN (VALUES ",
        &changes.deleted_rule_states,
    );
    let (mut rows, mut new) = (Vec::new(), Vec::new());
    for (rule, fingerprint, state) in &changes.rule_states {
        let row = vec![
            Val::I64(state.row),
            Val::Str(rule.clone()),
            Val::Str(fingerprint.to_string()),
            Val::Str(row_json(state)?),
        ];
        if inserted(new_rows, changes, |first| {
            first.is_new_rule_state(state.row)
        }) {
            new.push(row);
        } else {
            rows.push(row);
        }
    }
    push_rows(&mut out, RULE_STATES_INSERT, RULE_STATES_UPSERT_TAIL, rows);
    push_rows(&mut out, RULE_STATES_INSERT, "", new);
    push_deletes(
        &mut out,
        "DELETE FROM leases WHERE id IN (VALUES ",
        &changes.deleted_leases,
    );
    if let Some(availability) = &changes.availability {
        out.push(Statement::new(
            "INSERT INTO source_state (name, data) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET data = excluded.data",
            vec![
                Val::Str(AVAILABILITY.to_string()),
                Val::Str(availability.clone()),
            ],
        ));
    }
    for (name, state) in &changes.heartbeats {
        out.push(Statement::new(
            "INSERT INTO heartbeats (name, data) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET data = excluded.data",
            vec![Val::Str(name.clone()), Val::Str(row_json(state)?)],
        ));
    }
    let mut rows = Vec::with_capacity(changes.silences.len());
    // A silence made and expired in one batch: its last state only (one row per key).
    let mut seen = std::collections::HashSet::new();
    for silence in changes.silences.iter().rev() {
        if seen.insert(silence.id.as_str()) {
            rows.push(vec![
                Val::Str(silence.id.clone()),
                Val::I64(ms(silence.starts_at)),
                Val::I64(ms(silence.ends_at)),
                Val::Str(row_json(silence)?),
            ]);
        }
    }
    push_rows(
        &mut out,
        "INSERT INTO silences (id, starts_at, ends_at, data) VALUES ",
        " ON CONFLICT (id) DO UPDATE SET starts_at = excluded.starts_at, \
             ends_at = excluded.ends_at, data = excluded.data",
        rows,
    );
    for (id, change) in &changes.overrides {
        out.push(match change {
            Some(o) => Statement::new(
                "INSERT INTO schedule_overrides (id, schedule, starts_at, ends_at, data) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
                 schedule = excluded.schedule, starts_at = excluded.starts_at, \
                 ends_at = excluded.ends_at, data = excluded.data",
                vec![
                    Val::Str(id.clone()),
                    Val::Str(o.schedule.clone()),
                    Val::I64(ms(o.start)),
                    Val::I64(ms(o.end)),
                    Val::Str(row_json(o)?),
                ],
            ),
            None => Statement::new(
                "DELETE FROM schedule_overrides WHERE id = $1",
                vec![Val::Str(id.clone())],
            ),
        });
    }
    for page in &changes.pages {
        let mut values = vec![
            Val::I64(page.id),
            Val::Str(page.delivery_id.clone()),
            Val::I64(page.incident_id),
            Val::Str(page.recipient.channel.as_str().to_string()),
            Val::I64(ms(page.created_at)),
            Val::I64(ms(page.created_at)),
            Val::Str(row_json(page)?),
        ];
        out.push(match fencing {
            None => Statement::new(OUTBOX_INSERT, values),
            Some(fencing) => {
                values.push(Val::Str(fencing.holder.clone()));
                values.push(Val::I64(ms(page.created_at + fencing.page_claims.of(page))));
                Statement::new(OUTBOX_INSERT_CLAIMED, values)
            }
        });
    }
    super::cases::plan(&mut out, &changes.cases, &changes.case_timeline)?;
    Ok(out)
}

/// Whether a row goes as a plain insert: written `Inserted`, and new by `is_new`.
fn inserted(new_rows: NewRows, changes: &Changes, is_new: impl Fn(&FirstNew) -> bool) -> bool {
    new_rows == NewRows::Inserted && changes.first_new.as_ref().is_some_and(is_new)
}

/// A row's JSON, in a buffer sized for a new alert's rows (serde_json's `to_string` starts
/// from 128 bytes and grows two or three times for each).
fn row_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    let mut out = Vec::with_capacity(ROW_JSON_BYTES);
    serde_json::to_writer(&mut out, value)?;
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

const ROW_JSON_BYTES: usize = 640;

/// One change to a table keyed by name: a row to write, or the delete of one key.
enum Keyed {
    Upsert(Vec<Val>),
    Delete(Statement),
}

/// Upserts go out as multi-row statements (`upsert`: head and tail, as for [`push_rows`]),
/// deletes one by one, in the order given: a key deleted and written again in one batch
/// ends written.
fn push_keyed(
    out: &mut Vec<Statement>,
    upsert: (&'static str, &'static str),
    changes: impl Iterator<Item = Result<Keyed>>,
) -> Result<()> {
    let mut rows = Vec::new();
    for change in changes {
        match change? {
            Keyed::Upsert(row) => rows.push(row),
            Keyed::Delete(delete) => {
                push_rows(out, upsert.0, upsert.1, std::mem::take(&mut rows));
                out.push(delete);
            }
        }
    }
    push_rows(out, upsert.0, upsert.1, rows);
    Ok(())
}

const OUTBOX_INSERT: &str = "INSERT INTO outbox (id, delivery_id, incident_id, channel, status, \
     attempts, next_attempt_at, created_at, data) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $7)";
const OUTBOX_INSERT_CLAIMED: &str = "INSERT INTO outbox (id, delivery_id, incident_id, channel, \
     status, attempts, next_attempt_at, created_at, data, claimed_by, claimed_until) \
     VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $7, $8, $9)";

/// The inputs applied, with their replies: (id, processed_at, reply) rows.
const INBOX_DONE: (&str, &str) = (
    "UPDATE inbox SET processed_at = v.column2, reply = v.column3 FROM (VALUES ",
    ") AS v WHERE inbox.id = v.column1 AND inbox.processed_at IS NULL",
);
const PAGING_UPSERT: (&str, &str) = (
    "INSERT INTO paging (incident_id, data) VALUES ",
    " ON CONFLICT (incident_id) DO UPDATE SET data = excluded.data",
);
const IMPACTS_INSERT: &str = "INSERT INTO impacts (id, incident_id, data) VALUES ";
const IMPACTS_UPSERT_TAIL: &str =
    " ON CONFLICT (id) DO UPDATE SET incident_id = excluded.incident_id, data = excluded.data";
const RULE_STATES_INSERT: &str = "INSERT INTO rule_states (id, rule, fingerprint, data) VALUES ";
// A row's rule and fingerprint never change: rule states follow their rule by name.
const RULE_STATES_UPSERT_TAIL: &str = " ON CONFLICT (id) DO UPDATE SET data = excluded.data";

/// `DELETE FROM table WHERE id IN (VALUES ($1), …)` for `ids`, chunked as [`push_rows`];
/// `head` is the statement up to the first row.
fn push_deletes(out: &mut Vec<Statement>, head: &'static str, ids: &[i64]) {
    let rows = ids.iter().map(|id| vec![Val::I64(*id)]).collect();
    push_rows(out, head, ")", rows);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::signal::{Signal, SourceKind};

    /// Rule states at `rows`, the first new row being 8.
    fn rule_states(rows: &[i64]) -> Changes {
        let at = chrono::DateTime::UNIX_EPOCH;
        let labels = BTreeMap::from([("alertname".to_string(), "Down".to_string())]);
        let signal = Arc::new(Signal::new(SourceKind::Alert, labels, at));
        Changes {
            rule_states: rows
                .iter()
                .map(|row| {
                    let state = RuleState {
                        row: *row,
                        ..RuleState::new(Arc::clone(&signal), at)
                    };
                    ("Down".to_string(), signal.fingerprint(), state)
                })
                .collect(),
            first_new: Some(FirstNew {
                impact: 1,
                rule_state_row: 8,
            }),
            ..Changes::default()
        }
    }

    /// The rows of each statement on `rule_states`, and whether it is an upsert.
    fn rule_state_writes(statements: &[Statement]) -> Vec<(Vec<i64>, bool)> {
        statements
            .iter()
            .filter(|s| s.sql.starts_with(RULE_STATES_INSERT))
            .map(|s| {
                let rows = s.values.iter().step_by(4).map(|v| match v {
                    Val::I64(row) => *row,
                    other => panic!("a row number, not {other:?}"),
                });
                (rows.collect(), s.sql.contains("ON CONFLICT"))
            })
            .collect()
    }

    /// Rows from the first new one on go as plain inserts, the others as upserts; a batch
    /// written again as upserts, or one that does not say where its new rows begin, writes
    /// each row over.
    #[test]
    fn new_rows_go_as_plain_inserts_and_the_others_as_upserts() {
        let changes = rule_states(&[5, 8, 9]);
        let inserted = plan_claimed(&changes, None, NewRows::Inserted).unwrap();
        assert_eq!(
            rule_state_writes(&inserted),
            vec![(vec![5], true), (vec![8, 9], false)]
        );
        let upserted = plan_claimed(&changes, None, NewRows::Upserted).unwrap();
        assert_eq!(rule_state_writes(&upserted), vec![(vec![5, 8, 9], true)]);
        let unknown = Changes {
            first_new: None,
            ..changes
        };
        let inserted = plan_claimed(&unknown, None, NewRows::Inserted).unwrap();
        assert_eq!(rule_state_writes(&inserted), vec![(vec![5, 8, 9], true)]);
    }
}
